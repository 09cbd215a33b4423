/* The phone pages' core: the offline queue (IndexedDB), its sync, the status line, the problems
   kept on screen until dismissed, the service worker, and my position.

   Every action (a report, a transition, a photo, a patrol and its points) is written to the queue
   first and then sent, online or not, so nothing is lost between a tap and the server. Each item
   carries what makes its replay harmless: a report its client_id, a transition an
   Idempotency-Key, points their times, a photo its bytes (the server keys photos by content).
   A refusal (409: the event moved on meanwhile; or any other 4xx) is kept as a problem, in
   Chinese, until the worker dismisses it — never swallowed. Text reaches the DOM as text only. */
(function () {
  "use strict";
  var wg = window.wangge;
  var listeners = [];
  var syncing = null;
  var pageData = wg.page();
  // One queue per signed-in token: on a shared phone, what one person queued is never sent with
  // the next person's sign-in (it waits in its own database until its owner signs in again).
  var DB_NAME = "wangge-m-t" + pageData.tokenId;
  var dbPromise = null;
  var OWNER_KEY = "wangge-m-owner";
  forgetOthersAnswers();

  // Saved answers (the service worker's data cache) are one person's: when someone else signs in
  // on this phone, they go, so nobody reads the last person's tasks or tracks offline.
  function forgetOthersAnswers() {
    var owner = null;
    try { owner = window.localStorage.getItem(OWNER_KEY); } catch (error) { return; }
    var me = String(pageData.tokenId);
    if (owner === me) return;
    if (owner !== null && window.caches) window.caches.delete("wangge-m-data");
    try { window.localStorage.setItem(OWNER_KEY, me); } catch (error) { /* private mode */ }
  }

  function openDb() {
    if (dbPromise) return dbPromise;
    dbPromise = new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        var db = request.result;
        db.createObjectStore("queue", { keyPath: "id", autoIncrement: true });
        db.createObjectStore("refs", { keyPath: "key" });
        db.createObjectStore("problems", { keyPath: "id", autoIncrement: true });
        db.createObjectStore("state", { keyPath: "key" });
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
    return dbPromise;
  }

  // One IndexedDB request in its own transaction, as a promise.
  function tx(store, mode, work) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var transaction = db.transaction(store, mode);
        var request = work(transaction.objectStore(store));
        transaction.oncomplete = function () { resolve(request ? request.result : undefined); };
        transaction.onerror = function () { reject(transaction.error); };
        transaction.onabort = function () { reject(transaction.error); };
      });
    });
  }

  var db = {
    all: function (store) { return tx(store, "readonly", function (s) { return s.getAll(); }); },
    get: function (store, key) { return tx(store, "readonly", function (s) { return s.get(key); }); },
    put: function (store, value) { return tx(store, "readwrite", function (s) { return s.put(value); }); },
    add: function (store, value) { return tx(store, "readwrite", function (s) { return s.add(value); }); },
    remove: function (store, key) { return tx(store, "readwrite", function (s) { return s.delete(key); }); },
  };

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 15) | 64;
    bytes[8] = (bytes[8] & 63) | 128;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); });
    return [hex.slice(0, 4), hex.slice(4, 6), hex.slice(6, 8), hex.slice(8, 10), hex.slice(10)]
      .map(function (part) { return part.join(""); }).join("-");
  }

  // ---- Reads: through the service worker, which answers from its cache when offline. ----
  function get(path) {
    if (wanted.indexOf("/api/v1" + path) < 0) wanted.push("/api/v1" + path);
    return fetch("/api/v1" + path, { credentials: "same-origin" }).then(function (response) {
      return response.json().then(function (body) {
        return {
          ok: response.ok,
          status: response.status,
          body: body,
          saved: response.headers.get("X-Wangge-Offline") === "1",
        };
      }, function () {
        return { ok: false, status: response.status, body: null, saved: false };
      });
    });
  }

  // ---- The queue ----
  function enqueue(item) {
    item.queuedAt = new Date().toISOString();
    return db.add("queue", item).then(function (id) {
      item.id = id;
      refreshStatus();
      sync();
      return item;
    });
  }

  function errorText(body, status) {
    var error = body && body.error;
    if (error && error.message) return error.message;
    return "服务器拒绝了这项操作（HTTP " + status + "）";
  }

  function describe(item) {
    var labels = pageData.actionLabels || {};
    if (item.kind === "transition") {
      var label = labels[item.body.action] || item.body.action;
      return "事件 #" + item.eventId + " 的「" + label + "」";
    }
    if (item.kind === "report") return "上报（" + (item.label || item.body.category_code) + "）";
    if (item.kind === "photo") return "照片";
    if (item.kind === "patrol_start") return "开始巡查";
    if (item.kind === "points") return "巡查轨迹（" + item.points.length + " 个点）";
    if (item.kind === "patrol_stop") return "结束巡查";
    return item.kind;
  }

  function ref(key) {
    return db.get("refs", key).then(function (row) { return row ? row.id : null; });
  }

  function send(method, path, body, extraHeaders) {
    var headers = { "X-Wangge-Page": "1" };
    var payload = body;
    if (!(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    Object.keys(extraHeaders || {}).forEach(function (name) { headers[name] = extraHeaders[name]; });
    return fetch("/api/v1" + path, {
      method: method, credentials: "same-origin", headers: headers, body: payload,
    }).then(function (response) {
      return response.json().then(
        function (json) { return { status: response.status, body: json }; },
        function () { return { status: response.status, body: null }; }
      );
    });
  }

  // What one queued item becomes on the wire; null when something it needs is missing.
  function request(item) {
    if (item.kind === "report") return Promise.resolve(["POST", "/reports", item.body]);
    if (item.kind === "photo") {
      var eventRef = item.eventId ? Promise.resolve(item.eventId) : ref("report:" + item.reportClientId);
      return eventRef.then(function (eventId) {
        if (!eventId) return null;
        var form = new FormData();
        form.append("file", item.blob, item.fileName || "photo.jpg");
        form.append("stage", item.stage);
        return ["POST", "/events/" + eventId + "/attachments", form];
      });
    }
    if (item.kind === "transition") {
      return Promise.all((item.photoRefs || []).map(function (local) { return ref("photo:" + local); }))
        .then(function (photoIds) {
          if (photoIds.some(function (id) { return !id; })) return null;
          var body = Object.assign({}, item.body);
          if (photoIds.length) body.photos = photoIds;
          return ["POST", "/events/" + item.eventId + "/transitions", body, { "Idempotency-Key": item.key }];
        });
    }
    if (item.kind === "patrol_start") {
      return Promise.resolve(["POST", "/patrols", { client_id: item.clientId, started_at: item.startedAt }]);
    }
    return ref("patrol:" + item.patrolClientId).then(function (patrolId) {
      if (!patrolId) return null;
      if (item.kind === "points") return ["POST", "/patrols/" + patrolId + "/points", { points: item.points }];
      return ["POST", "/patrols/" + patrolId + "/stop", { ended_at: item.endedAt }];
    });
  }

  function remember(item, body) {
    if (item.kind === "report") return db.put("refs", { key: "report:" + item.body.client_id, id: body.id });
    if (item.kind === "photo") return db.put("refs", { key: "photo:" + item.localId, id: body.id });
    if (item.kind === "patrol_start") return db.put("refs", { key: "patrol:" + item.clientId, id: body.id });
    return Promise.resolve();
  }

  function problem(item, title, message) {
    return db.add("problems", {
      at: new Date().toISOString(), title: title, message: message,
      eventId: item.eventId || null, kind: item.kind,
    });
  }

  // Send the queue in order, one item at a time. Stops (keeping the rest) when the network is
  // gone, the server is busy or the login has lapsed; a refused item becomes a problem.
  function runQueue() {
    var state = { sent: 0, refused: 0, stopped: null };
    function next() {
      return db.all("queue").then(function (items) {
        if (!items.length) return state;
        if (navigator.onLine === false) { state.stopped = "离线"; return state; }
        var item = items[0];
        return request(item).then(function (wire) {
          if (wire === null) {
            return problem(item, describe(item) + "未能提交", "它所依赖的上报或照片没有提交成功，已放弃。")
              .then(function () { return db.remove("queue", item.id); })
              .then(function () { state.refused += 1; return next(); });
          }
          return send(wire[0], wire[1], wire[2], wire[3]).then(function (answer) {
            var status = answer.status;
            if (status >= 200 && status < 300) {
              return remember(item, answer.body)
                .then(function () { return db.remove("queue", item.id); })
                .then(function () { state.sent += 1; return next(); });
            }
            if (status === 401) { state.stopped = "登录已失效，请重新登录后同步"; return state; }
            if (status === 429 || status >= 500) { state.stopped = "服务器暂时无法处理，稍后自动重试"; return state; }
            var title = describe(item) + (status === 409 ? "未能提交：事件已有变化" : "未能提交");
            return problem(item, title, errorText(answer.body, status))
              .then(function () { return db.remove("queue", item.id); })
              .then(function () { state.refused += 1; return next(); });
          });
        }, function () { state.stopped = "离线"; return state; });
      });
    }
    return next().catch(function () { state.stopped = "离线"; return state; });
  }

  function sync() {
    if (syncing) return syncing;
    var run = navigator.locks
      ? function () { return navigator.locks.request("wangge-m-sync", runQueue); }
      : runQueue;
    setStatus(null, true);
    syncing = run().then(function (state) {
      syncing = null;
      lastStop = state.stopped;
      return refreshStatus().then(function () {
        listeners.forEach(function (listener) { listener(state); });
        return state;
      });
    }, function () { syncing = null; return refreshStatus(); });
    return syncing;
  }

  // ---- What the worker sees: the status line and the problems ----
  var lastStop = null;

  function setStatus(count, busy) {
    var line = document.getElementById("wg-m-status");
    if (!line) return;
    var online = navigator.onLine && lastStop !== "离线";
    var parts = [online ? "在线" : "离线"];
    if (count === null || count === undefined) count = Number(line.getAttribute("data-queued") || 0);
    parts.push(count ? "待同步 " + count + " 条" : "已同步");
    if (busy) parts.push("同步中…");
    else if (lastStop && lastStop !== "离线") parts.push(lastStop);
    document.getElementById("wg-m-status-text").textContent = parts.join(" · ");
    line.setAttribute("data-queued", String(count));
    line.setAttribute("data-online", online ? "1" : "0");
    line.className = "wg-m-status" + (online ? "" : " wg-m-offline") + (count ? " wg-m-pending" : "");
  }

  function refreshStatus() {
    return Promise.all([db.all("queue"), db.all("problems")]).then(function (found) {
      setStatus(found[0].length, Boolean(syncing));
      showProblems(found[1]);
    });
  }

  function showProblems(problems) {
    var holder = document.getElementById("wg-m-problems");
    if (!holder) return;
    holder.textContent = "";
    problems.forEach(function (row) {
      var box = wg.el("div", null, { class: "wg-m-problem", role: "alert", "data-problem": String(row.id) });
      box.appendChild(wg.el("b", row.title));
      box.appendChild(wg.el("p", row.message));
      if (row.eventId) box.appendChild(wg.el("a", "查看事件", { href: "/m/events/" + row.eventId }));
      var dismiss = wg.el("button", "知道了", { type: "button", class: "wg-m-dismiss" });
      dismiss.addEventListener("click", function () {
        db.remove("problems", row.id).then(refreshStatus);
      });
      box.appendChild(dismiss);
      holder.appendChild(box);
    });
  }

  // ---- My position (WGS84, from the browser) ----
  function position(options) {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error("此浏览器不能定位")); return; }
      navigator.geolocation.getCurrentPosition(
        function (fix) {
          resolve({
            lon: fix.coords.longitude, lat: fix.coords.latitude,
            accuracy_m: fix.coords.accuracy, t: new Date(fix.timestamp).toISOString(),
          });
        },
        function (error) { reject(new Error(error.code === 1 ? "未允许定位" : "无法取得位置")); },
        Object.assign({ enableHighAccuracy: true, timeout: 15000, maximumAge: 10000 }, options || {})
      );
    });
  }

  // Keep URLs in the service worker's cache (pages and answers the worker may need offline).
  // Until a worker controls the page (its first visit), they are remembered, with every read
  // the page made, and handed over when it takes control. Resolves when the worker has them.
  var wanted = [];
  function keep(urls) {
    urls.forEach(function (url) { if (wanted.indexOf(url) < 0) wanted.push(url); });
    var worker = navigator.serviceWorker && navigator.serviceWorker.controller;
    if (!worker) return Promise.resolve(false);
    return new Promise(function (resolve) {
      var channel = new MessageChannel();
      var timer = setTimeout(function () { resolve(false); }, 20000);
      channel.port1.onmessage = function (reply) {
        clearTimeout(timer);
        resolve(reply.data.kept === reply.data.asked);
      };
      worker.postMessage({ type: "keep", urls: urls }, [channel.port2]);
    });
  }

  // Keep URLs and check that the cache holds each of them; ask again for the missing ones.
  function keepChecked(urls, rounds) {
    return keep(urls).then(function () {
      return Promise.all(urls.map(function (url) {
        return caches.match(url).then(function (hit) { return hit ? null : url; });
      }));
    }).then(function (missing) {
      missing = missing.filter(Boolean);
      if (!missing.length) return true;
      return rounds > 1 ? keepChecked(missing, rounds - 1) : false;
    });
  }

  function start() {
    var button = document.getElementById("wg-m-sync");
    if (button) button.addEventListener("click", function () { lastStop = null; sync(); });
    window.addEventListener("online", function () { lastStop = null; sync(); });
    window.addEventListener("offline", function () { setStatus(null, false); });
    var ready = Promise.resolve(false);
    var sw = pageData.sw;
    if (sw && navigator.serviceWorker) {
      if (navigator.serviceWorker.controller) {
        ready = Promise.resolve(true);  // this page and its reads came through the worker
      } else {
        ready = new Promise(function (resolve) {
          navigator.serviceWorker.addEventListener("controllerchange", function () {
            keepChecked([location.pathname + location.search].concat(wanted), 3).then(resolve);
          });
        });
      }
      navigator.serviceWorker.register(sw, { scope: "/m/" }).catch(function () {
        return null;  // pages still work without it, online
      });
    }
    ready.then(function (kept) { window.wgPhone.offlineReady = kept; });
    refreshStatus().then(sync);
    return ready;
  }

  window.wgPhone = {
    data: pageData,
    db: db,
    uuid: uuid,
    get: get,
    enqueue: enqueue,
    sync: sync,
    onSynced: function (listener) { listeners.push(listener); },
    position: position,
    keep: keep,
    errorText: errorText,
    refreshStatus: refreshStatus,
    ready: null,
    offlineReady: false,
  };
  window.wgPhone.ready = start();
})();
