/* The phone pages' service worker (served by web/mobile.py at /m/sw.js, scope /m/).

   - Pages (/m/…) and API reads: network first, the last good answer when the network is gone
     (marked with the header X-Wangge-Offline: 1 so the page can say it shows saved data).
   - Hashed assets (/m/static/…) and Leaflet (/static/vendor/…): cache first; a hashed name never
     changes content, and a new deployment brings new names and a new cache.
   - Writes (POST …) are never touched here: the pages queue them in IndexedDB (m_core.js) and
     send them with idempotency keys when the network returns.
   Answers marked no-store (the login offer) and failed answers are never kept. */
"use strict";

const CONFIG = /*CONFIG*/{};
const CACHE = "wangge-m-" + CONFIG.version;
const DATA = "wangge-m-data";  // API answers and visited pages: kept across deployments

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) =>
      // One by one, so an answer that fails (an API not deployed yet) does not stop the rest.
      Promise.all(
        CONFIG.precache.map((url) =>
          fetch(url, { credentials: "same-origin" })
            .then((response) => (keepable(response) ? store(url, response) : null))
            .catch(() => null)
        )
      )
    ).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((names) =>
      Promise.all(
        names
          .filter((name) => name.startsWith("wangge-m-") && name !== CACHE && name !== DATA)
          .map((name) => caches.delete(name))
      )
    ).then(() => self.clients.claim())
  );
});

function keepable(response) {
  return (
    response.ok &&
    response.type === "basic" &&
    !(response.headers.get("Cache-Control") || "").includes("no-store")
  );
}

function immutable(url) {
  return url.pathname.startsWith("/m/static/") || url.pathname.startsWith("/static/vendor/");
}

function store(key, response) {
  const url = new URL(key, self.location.origin);
  return caches.open(immutable(url) ? CACHE : DATA).then((cache) => cache.put(key, response));
}

function fromCache(request) {
  return caches.match(request, { ignoreVary: true }).then((hit) => {
    if (!hit) return null;
    const headers = new Headers(hit.headers);
    headers.set("X-Wangge-Offline", "1");
    return hit.blob().then(
      (body) => new Response(body, { status: hit.status, statusText: hit.statusText, headers })
    );
  });
}

function offlinePage() {
  const html =
    '<!doctype html><html lang="zh-CN"><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1"><title>离线</title>' +
    '<body style="font:18px sans-serif;padding:1em"><h1>离线</h1>' +
    "<p>此页面尚未保存在手机上，联网后再打开。</p><p><a href=\"/m/\">我的任务</a></p></body></html>";
  return new Response(html, {
    status: 503,
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      "Cache-Control": "no-store",
      "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    },
  });
}

function offlineJson() {
  const body = { error: { code: "offline", message: "离线：没有保存的数据", where: null } };
  return new Response(JSON.stringify(body), {
    status: 503,
    headers: { "Content-Type": "application/json", "X-Wangge-Offline": "1" },
  });
}

function networkFirst(request, fallback) {
  return fetch(request)
    .then((response) => {
      if (keepable(response)) {
        const copy = response.clone();
        caches.open(DATA).then((cache) => cache.put(request, copy));
      }
      return response;
    })
    .catch(() => fromCache(request).then((hit) => hit || fallback()));
}

function cacheFirst(request) {
  return caches.match(request, { ignoreVary: true }).then(
    (hit) =>
      hit ||
      fetch(request).then((response) => {
        if (keepable(response)) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
  );
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (immutable(url)) {
    event.respondWith(cacheFirst(request));
  } else if (url.pathname.startsWith("/m/") || url.pathname === "/m") {
    if (url.pathname === "/m/sw.js") return;
    event.respondWith(networkFirst(request, offlinePage));
  } else if (url.pathname.startsWith("/api/v1/")) {
    event.respondWith(networkFirst(request, offlineJson));
  }
});

// A page asks to keep some URLs (my tasks' event pages and answers) for later, offline.
self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "keep" || !Array.isArray(data.urls)) return;
  const urls = data.urls.filter(
    (url) => typeof url === "string" && (url.startsWith("/m/") || url.startsWith("/api/v1/"))
  );
  event.waitUntil(
    urls.reduce(
      (chain, url) =>
        chain.then(() =>
          fetch(url, { credentials: "same-origin" })
            .then((response) => (keepable(response) ? store(url, response) : null))
            .catch(() => null)
        ),
      Promise.resolve()
    )
  );
});
