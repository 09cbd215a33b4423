/* 巡查: start / stop; the track comes from navigator.geolocation.watchPosition and goes to the
   patrol API in batches through the offline queue. A patrol has a client_id made on the phone,
   points are keyed by their times on the server, so a batch sent twice adds nothing. The patrol
   under way (and the fixes not yet queued) are kept in IndexedDB: a reload resumes it. A GPX or
   GeoJSON track from another app can be uploaded (online). */
(function () {
  "use strict";
  var wg = window.wangge;
  var phone = window.wgPhone;
  var BATCH_POINTS = 30; // fixes per queued batch (the API takes up to 5,000)
  var BATCH_SECONDS = 20;
  var view = window.wgMap.create("wg-m-map");
  var line = L.polyline([], { color: "#2b6cb0", weight: 4 }).addTo(view.map);
  var patrol = null; // {key, clientId, startedAt, recorded, buffer: [points]}
  var watchId = null;
  var timer = null;

  function message(text) { document.getElementById("wg-m-message").textContent = text || ""; }

  function showState() {
    var text = patrol
      ? "巡查中 · 已记录 " + patrol.recorded + " 个点（开始于 " + new Date(patrol.startedAt).toLocaleTimeString("zh-CN") + "）"
      : "未在巡查";
    var shown = document.getElementById("wg-m-patrol-state");
    shown.textContent = text;
    shown.setAttribute("data-recorded", patrol ? String(patrol.recorded) : "0");
    document.getElementById("wg-m-start").disabled = Boolean(patrol);
    document.getElementById("wg-m-stop").disabled = !patrol;
  }

  function save() { return patrol ? phone.db.put("state", patrol) : phone.db.remove("state", "patrol"); }

  function flush() {
    if (!patrol || !patrol.buffer.length) return Promise.resolve();
    var points = patrol.buffer;
    patrol.buffer = [];
    return save().then(function () {
      return phone.enqueue({ kind: "points", patrolClientId: patrol.clientId, points: points });
    });
  }

  function onFix(fix) {
    if (!patrol) return;
    var point = {
      t: new Date(fix.timestamp).toISOString(),
      lon: fix.coords.longitude,
      lat: fix.coords.latitude,
      accuracy_m: fix.coords.accuracy,
    };
    if (point.t === patrol.lastT) return; // the same fix reported twice
    patrol.lastT = point.t;
    patrol.buffer.push(point);
    patrol.recorded += 1;
    line.addLatLng(view.place(point.lon, point.lat));
    if (patrol.recorded === 1) view.map.setView(view.place(point.lon, point.lat), 17);
    showState();
    (patrol.buffer.length >= BATCH_POINTS ? flush() : save());
  }

  function watch() {
    if (!navigator.geolocation) { message("此浏览器不能定位，无法记录轨迹"); return; }
    watchId = navigator.geolocation.watchPosition(onFix, function (error) {
      message(error.code === 1 ? "未允许定位，无法记录轨迹" : "暂时无法取得位置");
    }, { enableHighAccuracy: true, maximumAge: 0 });
    timer = setInterval(flush, BATCH_SECONDS * 1000);
  }

  function start() {
    message("");
    patrol = {
      key: "patrol", clientId: phone.uuid(), startedAt: new Date().toISOString(),
      recorded: 0, buffer: [], lastT: null,
    };
    line.setLatLngs([]);
    return save().then(function () {
      return phone.enqueue({ kind: "patrol_start", clientId: patrol.clientId, startedAt: patrol.startedAt });
    }).then(function () { showState(); watch(); });
  }

  function stop() {
    if (!patrol) return Promise.resolve();
    if (watchId !== null) navigator.geolocation.clearWatch(watchId);
    clearInterval(timer);
    watchId = null;
    var finished = patrol;
    return flush().then(function () {
      return phone.enqueue({ kind: "patrol_stop", patrolClientId: finished.clientId, endedAt: new Date().toISOString() });
    }).then(function () {
      patrol = null;
      return save();
    }).then(function () {
      showState();
      message("巡查已结束，共 " + finished.recorded + " 个点" + (navigator.onLine ? "" : "（联网后自动同步）"));
    });
  }

  function upload(submitted) {
    submitted.preventDefault();
    var form = submitted.target;
    var file = form.elements.file.files[0];
    if (!file) return;
    if (!navigator.onLine) { message("上传轨迹需要联网"); return; }
    var body = new FormData();
    body.append("file", file, file.name);
    fetch("/api/v1/patrols/upload", {
      method: "POST", credentials: "same-origin", headers: { "X-Wangge-Page": "1" }, body: body,
    }).then(function (response) {
      return response.json().then(function (json) { return { ok: response.ok, status: response.status, body: json }; });
    }).then(function (answer) {
      if (!answer.ok) { message("上传失败：" + phone.errorText(answer.body, answer.status)); return; }
      message("");
      document.getElementById("wg-m-patrol-state").textContent =
        "已上传轨迹：" + (answer.body.points || 0) + " 个点";
      form.reset();
    }, function () { message("上传失败：网络不可用"); });
  }

  document.getElementById("wg-m-start").addEventListener("click", start);
  document.getElementById("wg-m-stop").addEventListener("click", stop);
  document.getElementById("wg-m-upload").addEventListener("submit", upload);
  // A fix is worth keeping even if the page goes away: hand the buffer to the queue.
  document.addEventListener("visibilitychange", function () { if (document.hidden) flush(); });
  window.wgPatrol = { flush: flush, stop: stop, current: function () { return patrol; } };
  phone.db.get("state", "patrol").then(function (saved) {
    if (saved) { patrol = saved; watch(); }
    showState();
    document.body.setAttribute("data-ready", "1");
  });
})();
