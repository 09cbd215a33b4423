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

// The body is read whole before it goes into the cache: a put fed by a stream that breaks
// (the network drops mid-answer) would lose the entry already there.
function store(key, response) {
  const url = new URL(typeof key === "string" ? key : key.url, self.location.origin);
  return response.blob().then((body) =>
    caches.open(immutable(url) ? CACHE : DATA).then((cache) =>
      cache.put(
        key,
        new Response(body, {
          status: response.status,
          statusText: response.statusText,
          headers: response.headers,
        })
      )
    )
  );
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

// The answer is stored before the page gets it: once a page has read something, it is there
// for the next read offline.
function networkFirst(request, fallback) {
  return fetch(request)
    .then((response) => {
      if (!keepable(response)) return response;
      return store(request, response.clone()).then(
        () => response,
        () => response
      );
    })
    .catch(() => fromCache(request).then((hit) => hit || fallback()));
}

function cacheFirst(request) {
  return caches.match(request, { ignoreVary: true }).then(
    (hit) =>
      hit ||
      fetch(request).then((response) => {
        if (keepable(response)) store(request, response.clone()).catch(() => null);
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

// Fetch and keep one URL; a failed fetch is tried again a few times (true when kept).
function keepOne(url, tries) {
  return fetch(url, { credentials: "same-origin" })
    .then((response) => (keepable(response) ? store(url, response).then(() => true) : false))
    .catch(() =>
      tries > 1
        ? new Promise((resolve) => setTimeout(resolve, 300)).then(() => keepOne(url, tries - 1))
        : false
    );
}

// A page asks to keep some URLs (my tasks' event pages and answers) for later, offline; it is
// told how many were kept.
self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "keep" || !Array.isArray(data.urls)) return;
  const urls = data.urls.filter(
    (url) => typeof url === "string" && (url.startsWith("/m/") || url.startsWith("/api/v1/"))
  );
  let kept = 0;
  const done = urls.reduce(
    (chain, url) => chain.then(() => keepOne(url, 4).then((ok) => { kept += ok ? 1 : 0; })),
    Promise.resolve()
  );
  event.waitUntil(
    done.then(() => {
      if (event.ports && event.ports[0]) event.ports[0].postMessage({ asked: urls.length, kept });
    })
  );
});
