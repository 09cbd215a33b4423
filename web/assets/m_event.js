/* 事件: the event on a map with my position, its history, the actions my role may take now
   (接单, 到场, 处置 with photos, 申请延期, 退回, 核查), and 导航 links to AMap / Baidu Maps whose
   GCJ-02 / BD-09 coordinates the server computed (web/mobile.py).

   Actions go through the offline queue (m_core.js) with an Idempotency-Key and the version last
   read. Several actions taken offline in a row each expect the version the one before leaves
   (every transition adds one); if the event moved on meanwhile the server refuses with 409 and
   the worker sees why. */
(function () {
  "use strict";
  var wg = window.wangge;
  var phone = window.wgPhone;
  var data = phone.data;
  var eventId = data.eventId;
  var TIME = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "numeric", day: "numeric",
    hour: "2-digit", minute: "2-digit",
  });
  // What a transition does to the state on the phone, until the server answers.
  var NEXT_STATE = { start: "processing", handle: "handled", return: "returned", verify: "closed", rework: "processing" };
  var ALLOWED_FROM = {
    start: ["dispatched"], arrive: ["dispatched", "processing"], handle: ["processing"],
    request_postpone: ["dispatched", "processing"], return: ["dispatched", "processing"],
    verify: ["handled"], rework: ["handled"],
  };
  var state = { event: null, queued: [], me: null, mapView: null, eventDot: null, meDot: null };

  function message(text) { document.getElementById("wg-m-message").textContent = text || ""; }

  function time(value) { return value ? TIME.format(new Date(value)) : "—"; }

  // ---- The map: the event and me ----
  function drawMap() {
    if (!window.L || !window.wgMap) return;
    if (!state.mapView) state.mapView = window.wgMap.create("wg-m-map");
    var view = state.mapView;
    var event = state.event;
    if (event && event.lon !== null && event.lon !== undefined && !state.eventDot) {
      state.eventDot = window.wgMap.dot(view.place(event.lon, event.lat), "#e53e3e", "事件 #" + eventId, 11)
        .addTo(view.map);
      view.map.setView(view.place(event.lon, event.lat), 17);
    }
    if (state.me) {
      var here = view.place(state.me.lon, state.me.lat);
      if (!state.meDot) state.meDot = window.wgMap.dot(here, "#3182ce", "我的位置", 8).addTo(view.map);
      else state.meDot.setLatLng(here);
      if (state.eventDot) {
        view.map.fitBounds(L.latLngBounds([state.eventDot.getLatLng(), here]).pad(0.3), { maxZoom: 18 });
      }
    }
  }

  function watchMe() {
    if (!navigator.geolocation) return;
    navigator.geolocation.watchPosition(
      function (fix) {
        state.me = { lon: fix.coords.longitude, lat: fix.coords.latitude, accuracy_m: fix.coords.accuracy };
        drawMap();
      },
      function () { /* no position: the map shows the event only */ },
      { enableHighAccuracy: true, maximumAge: 10000 }
    );
  }

  // ---- The event, as last read (and as my queued actions will leave it) ----
  function projected() {
    var event = state.event;
    var status = event.status;
    var version = event.version;
    state.queued.forEach(function (item) {
      version += 1;
      status = NEXT_STATE[item.body.action] || status;
    });
    return { status: status, version: version };
  }

  function renderEvent() {
    var event = state.event;
    var card = document.getElementById("wg-m-event");
    card.textContent = "";
    var names = data.categoryNames || {};
    card.appendChild(wg.el("h2", "#" + event.id + " " + (names[event.category_code] || event.category_code || "")));
    var tags = wg.el("div");
    tags.appendChild(wg.el("span", event.status_label || data.statusLabels[event.status], { class: "wg-m-tag", id: "wg-m-state" }));
    var level = event.warning && event.warning.level;
    if (level === "red") tags.appendChild(wg.el("span", "红色预警", { class: "wg-m-tag wg-m-red" }));
    if (level === "yellow") tags.appendChild(wg.el("span", "黄色预警", { class: "wg-m-tag wg-m-yellow" }));
    var supervised = (event.supervisions || []).length;
    if (supervised) tags.appendChild(wg.el("span", "督办 " + supervised, { class: "wg-m-tag wg-m-supervised" }));
    card.appendChild(tags);
    if (event.description) card.appendChild(wg.el("p", event.description));
    if (event.address) card.appendChild(wg.el("p", "地址：" + event.address, { class: "wg-m-muted" }));
    card.appendChild(wg.el("p", "处置期限：" + time(event.due_at), { class: "wg-m-muted" }));
    var path = event.placement && event.placement.path;
    if (path) {
      card.appendChild(wg.el("p", path.map(function (p) { return p.name; }).join(" › "), { class: "wg-m-muted" }));
    }
    if (state.queued.length) {
      var labels = state.queued.map(function (item) { return data.actionLabels[item.body.action] || item.body.action; });
      card.appendChild(wg.el("p", "待同步：" + labels.join("、"), { class: "wg-m-bad", id: "wg-m-pending" }));
    }
    renderHistory(event.history || []);
    renderActions();
    drawMap();
  }

  function renderHistory(lines) {
    var list = document.getElementById("wg-m-history");
    list.textContent = "";
    var distance = null;
    lines.slice().reverse().forEach(function (line) {
      var item = wg.el("li");
      var head = time(line.at) + " " + (line.action_label || line.action || "");
      if (line.from && line.status && line.from !== line.status) {
        head += "：" + (data.statusLabels[line.from] || line.from) + " → " + (data.statusLabels[line.status] || line.status);
      }
      item.appendChild(wg.el("div", head));
      var details = line.details || {};
      if (line.action === "arrive" && details.distance_m !== undefined && details.distance_m !== null) {
        item.appendChild(wg.el("div", "到场位置距事件 " + Math.round(details.distance_m) + " 米", { class: "wg-m-muted" }));
        if (distance === null) distance = details.distance_m;
      }
      if (line.note) item.appendChild(wg.el("div", line.note, { class: "wg-m-muted" }));
      list.appendChild(item);
    });
    var shown = document.getElementById("wg-m-distance");
    shown.textContent = distance === null ? "" : "到场：距事件 " + Math.round(distance) + " 米（服务器计算）";
    shown.setAttribute("data-distance", distance === null ? "" : String(distance));
  }

  function renderActions() {
    var holder = document.getElementById("wg-m-actions");
    holder.textContent = "";
    var now = projected();
    var allowed = state.event.allowed_actions || [];
    data.phoneActions.forEach(function (action) {
      var offered = state.queued.length
        ? (ALLOWED_FROM[action] || []).indexOf(now.status) >= 0 && canLater(action)
        : allowed.indexOf(action) >= 0;
      if (!offered) return;
      var button = wg.el("button", data.actionLabels[action] || action, {
        type: "button", class: "wg-m-button" + (action === "start" || action === "handle" ? " wg-m-primary" : ""),
        "data-action": action,
      });
      button.addEventListener("click", function () { choose(action); });
      holder.appendChild(button);
    });
  }

  // An action my role has at all (allowed_actions lists only what the current state allows).
  function canLater(action) {
    var mine = { field_staff: 1, handler: 1, dispatcher: 1, admin: 1 };
    if (action === "verify" || action === "rework") return data.role !== "handler";
    return Boolean(mine[data.role]);
  }

  // ---- Forms ----
  function field(form, label, input) {
    var id = "wg-m-f-" + input.getAttribute("name");
    input.setAttribute("id", id);
    form.appendChild(wg.el("label", label, { for: id }));
    form.appendChild(input);
  }

  function choose(action) {
    message("");
    if (action === "start" || action === "verify") { submit(action, {}); return; }
    if (action === "arrive") {
      message("正在取得我的位置…");
      phone.position().then(function (here) {
        message("");
        submit("arrive", { lon: here.lon, lat: here.lat, crs: "EPSG:4326" });
      }, function (error) { message(error.message + "，无法记录到场"); });
      return;
    }
    var form = document.getElementById("wg-m-form");
    form.textContent = "";
    form.hidden = false;
    form.appendChild(wg.el("h2", data.actionLabels[action] || action));
    var note = wg.el("textarea", null, { name: "note", rows: "3", maxlength: "2000" });
    if (action === "request_postpone") {
      field(form, "延期至（北京时间）", wg.el("input", null, { name: "deadline", type: "datetime-local", required: "required" }));
    }
    if (action === "handle") {
      field(form, "处置后照片", wg.el("input", null, {
        name: "photos", type: "file", accept: "image/*", capture: "environment", multiple: "multiple",
      }));
    }
    if (action !== "handle") note.setAttribute("required", "required");
    field(form, action === "handle" ? "处置情况" : "说明（原因）", note);
    form.appendChild(wg.el("button", "提交" + (data.actionLabels[action] || ""), { type: "submit", class: "wg-m-button wg-m-primary" }));
    var cancel = wg.el("button", "取消", { type: "button", class: "wg-m-button" });
    cancel.addEventListener("click", function () { form.hidden = true; form.textContent = ""; });
    form.appendChild(cancel);
    form.onsubmit = function (submitted) {
      submitted.preventDefault();
      var fields = { note: form.elements.note.value.trim() || undefined };
      if (action === "request_postpone") fields.deadline = form.elements.deadline.value + ":00+08:00";
      var files = action === "handle" ? Array.prototype.slice.call(form.elements.photos.files) : [];
      form.hidden = true;
      submit(action, fields, files).then(function () { form.textContent = ""; });
    };
    form.scrollIntoView({ block: "start" });
  }

  function submit(action, fields, files) {
    var now = projected();
    var body = Object.assign({ action: action, version: now.version }, fields);
    var photos = (files || []).map(function (file) {
      return { kind: "photo", eventId: eventId, stage: "after", blob: file, fileName: file.name, localId: phone.uuid() };
    });
    var chain = Promise.resolve();
    photos.forEach(function (photo) { chain = chain.then(function () { return phone.enqueue(photo); }); });
    return chain.then(function () {
      return phone.enqueue({
        kind: "transition", eventId: eventId, key: phone.uuid(), body: body,
        photoRefs: photos.map(function (photo) { return photo.localId; }),
      });
    }).then(function () {
      message(navigator.onLine ? "" : "已保存在手机上，联网后自动同步");
      return refreshQueued().then(renderEvent);
    });
  }

  function refreshQueued() {
    return phone.db.all("queue").then(function (items) {
      state.queued = items.filter(function (item) { return item.kind === "transition" && item.eventId === eventId; });
    });
  }

  function load() {
    return Promise.all([phone.get("/events/" + eventId), phone.get("/categories"), refreshQueued()])
      .then(function (answers) {
        if (answers[1].ok) {
          var names = {};
          answers[1].body.forEach(function (row) { names[row.code] = row.name; });
          data.categoryNames = names;
        }
        var answer = answers[0];
        if (!answer.ok) {
          message(phone.errorText(answer.body, answer.status));
          document.body.setAttribute("data-ready", "1");
          return;
        }
        state.event = answer.body;
        window.wgEvent.event = answer.body;
        renderEvent();
        if (answer.saved) message("离线：显示上次保存的事件");
        document.body.setAttribute("data-ready", "1");
      });
  }

  function renderNav() {
    var holder = document.getElementById("wg-m-nav");
    if (!data.nav) return;
    holder.appendChild(wg.el("a", "导航（高德地图）", { href: data.nav.amap, class: "wg-m-button", id: "wg-m-nav-amap", rel: "noreferrer" }));
    holder.appendChild(wg.el("a", "导航（百度地图）", { href: data.nav.baidu_web, class: "wg-m-button", id: "wg-m-nav-baidu", rel: "noreferrer", "data-app": data.nav.baidu_app }));
  }

  window.wgEvent = { load: load, event: null, state: state };
  renderNav();
  watchMe();
  phone.onSynced(function () { load(); });
  load();
})();
