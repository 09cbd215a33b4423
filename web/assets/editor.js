/* wangge draft editor, the core: the grids in view (loaded per view from the GeoJSON API, never a
   whole district), their live statistics, the coverage check, the version every edit carries,
   and one path for every edit's answer. The tools (split, merge, create, delete, attributes,
   parent, buildings, publish) are in editor_tools.js. Every call goes through wgNet
   (web/assets/planner_net.js: never rejects, a Chinese message for network errors); one request
   at a time per page (`exclusive`: the sheet's buttons are disabled while it runs, a dragged
   boundary waits for it); the version only moves forward. Names and codes reach the page as
   text only. */
(function () {
  "use strict";
  var wg = window.wangge;
  var cfg = wg.page();
  var map = window[cfg.map];
  var state = {
    version: cfg.version, selected: null, stats: {}, check: null, checkedVersion: null,
    tool: "select", picked: [], target: null, editable: cfg.open && cfg.canEdit, loads: 0,
    busy: false, waiting: [],
  };
  var snap = { snappable: true, snapDistance: 20, allowSelfIntersection: false };
  var $ = function (id) { return document.getElementById(id); };
  var api = window.wgNet.call;
  if (map.pm && map.pm.setLang) map.pm.setLang("zh");

  function say(text, bad) {
    var el = $("wg-status");
    el.textContent = text;
    el.className = bad ? "wg-bad" : "wg-ok";
  }

  // The API's own Chinese message for a refused request (every error body carries one).
  var problem = window.wgNet.problem;

  // The draft's version only moves forward: an older answer arriving late cannot undo a newer one.
  function setVersion(version) {
    if (typeof version === "number" && !(version < state.version)) state.version = version;
    $("wg-version").textContent = state.version;
  }

  // One request at a time: while `job` runs the sheet's fieldset is disabled (every button and
  // input in it, each keeping its own disabled state for afterwards) and another tap is refused;
  // edits queued with `wait` (a dragged boundary) run after it, with the version it produced.
  function exclusive(job) {
    if (state.busy) {
      say("上一步仍在处理，请稍候", true);
      return Promise.resolve({ ok: false, busy: true });
    }
    state.busy = true;
    $("wg-busy-scope").disabled = true;
    return Promise.resolve().then(job).catch(function (error) {
      console.error(error);
      say("页面出错：" + error + "，请刷新", true);
      return { ok: false };
    }).then(function (result) {
      state.busy = false;
      $("wg-busy-scope").disabled = false;
      var next = state.waiting.shift();
      if (next) setTimeout(next, 0);
      return result;
    });
  }

  function colour(stats) {
    if (!stats || !stats.households_range) return "#3182ce";
    if (stats.households > stats.households_range[1]) return "#e53e3e";
    if (stats.households < stats.households_range[0]) return "#dd6b20";
    return "#38a169";
  }

  function styleOf(f) {
    var code = f.properties.code;
    var selected = code === state.selected, picked = state.picked.indexOf(code) >= 0;
    var target = code === state.target;
    return {
      color: target ? "#6b46c1" : picked ? "#2b6cb0" : selected ? "#1a202c" : "#2d3748",
      weight: target || picked ? 4 : selected ? 3 : 1.5,
      dashArray: picked ? "6 4" : null,
      fillColor: colour(state.stats[code]),
      fillOpacity: picked || target ? 0.55 : 0.35,
    };
  }

  var grids = L.geoJSON(null, {
    style: styleOf,
    onEachFeature: function (f, layer) {
      layer.bindTooltip(function () {
        return wg.el("div", f.properties.name + "（" + f.properties.code + "）");
      }, { sticky: true });
      layer.on("click", function () { tap(f.properties.code); });
      layer.on("pm:edit", function () { queueSave(f.properties.code, layer); });
    },
  }).addTo(map);
  // Children are drawn only as snapping targets: a new boundary can follow micro-grid edges.
  var children = L.geoJSON(null, {
    style: { color: "#718096", weight: 1, dashArray: "3 3", fillOpacity: 0 }, interactive: false,
  }).addTo(map);

  function layerOf(code) {
    var found = null;
    grids.eachLayer(function (l) { if (l.feature.properties.code === code) found = l; });
    return found;
  }

  function featureOf(code) {
    var layer = layerOf(code);
    return layer ? layer.feature : null;
  }

  // The view as a WGS84 bbox for the API. On GCJ-02 tiles the map's coordinates are shifted by
  // up to ~600 m, so the box is widened enough to cover the shift.
  function viewBox() {
    var b = map.getBounds().pad(0.15);
    var shift = cfg.outCrs === "EPSG:4326" ? 0 : 0.01;
    var clamp = function (v, lo, hi) { return Math.max(lo, Math.min(hi, v)); };
    return [clamp(b.getWest() - shift, -180, 179.999), clamp(b.getSouth() - shift, -90, 89.999),
            clamp(b.getEast() + shift, -179.999, 180), clamp(b.getNorth() + shift, -89.999, 90)]
      .map(function (v) { return v.toFixed(6); }).join(",");
  }

  // no-store: a draft's rows change under the same generation id, so a cached answer is stale.
  var getJSON = window.wgNet.get;

  function gridsUrl(level, limit) {
    return "/api/v1/grids?" + new URLSearchParams({
      generation: cfg.generation, level: level, bbox: viewBox(), limit: limit, out_crs: cfg.outCrs,
    }).toString();
  }

  // Statistics of the grids in view, asked by code in batches (a district has too many to ask
  // for by level).
  function loadStats(codes) {
    var batches = [];
    for (var i = 0; i < codes.length; i += 150) batches.push(codes.slice(i, i + 150));
    return Promise.all(batches.map(function (batch) {
      var query = batch.map(function (c) { return "codes=" + encodeURIComponent(c); }).join("&");
      return api("GET", "/drafts/" + cfg.draft + "/stats?" + query);
    })).then(function (answers) {
      answers.forEach(function (r) {
        if (r.ok) r.body.grids.forEach(function (s) { state.stats[s.code] = s; });
      });
    });
  }

  function load() {
    var ticket = ++state.loads;
    var jobs = [getJSON(gridsUrl(cfg.level, cfg.viewLimit))];
    if (cfg.childLevel) jobs.push(getJSON(gridsUrl(cfg.childLevel, cfg.viewLimit * 3)));
    return Promise.all(jobs).then(function (results) {
      if (ticket !== state.loads) return null;  // a newer view is on its way
      var shown = results[0];
      if (!shown.ok) { say("网格未能载入：" + problem(shown), true); return false; }
      var editing = state.selected && layerOf(state.selected) && layerOf(state.selected).pm.enabled();
      if (editing) layerOf(state.selected).pm.disable();
      grids.clearLayers();
      // More grids than one view holds: a partial set (in code order) would mislead, so none.
      if (!shown.body.hasMore) grids.addData(shown.body);
      children.clearLayers();
      var kids = results[1];
      if (kids && kids.ok && !kids.body.hasMore) children.addData(kids.body);
      state.truncated = shown.body.hasMore;
      var codes = shown.body.hasMore ? [] : shown.body.features.map(function (f) { return f.properties.code; });
      if (state.selected && codes.indexOf(state.selected) < 0) state.selected = null;
      return loadStats(codes).then(function () {
        if (ticket !== state.loads) return;
        restyle();
        if (state.selected && state.tool === "select") enableVertices(state.selected);
        renderStats();
        document.dispatchEvent(new CustomEvent("wg:loaded"));
      });
    });
  }

  function restyle() { grids.setStyle(styleOf); }

  function enableVertices(code) {
    grids.eachLayer(function (l) { if (l.pm.enabled()) l.pm.disable(); });
    var layer = layerOf(code);
    if (layer && state.editable && state.tool === "select") layer.pm.enable(snap);
  }

  // A tap on a grid: what it means depends on the tool (editor_tools.js listens for wg:tap).
  function tap(code) {
    var event = new CustomEvent("wg:tap", { detail: { code: code }, cancelable: true });
    if (!document.dispatchEvent(event)) return;  // a tool took it
    select(code);
  }

  function select(code) {
    state.selected = code;
    enableVertices(code);
    restyle();
    renderStats();
    document.dispatchEvent(new CustomEvent("wg:selected", { detail: { code: code } }));
  }

  function statsLine(s) {
    var range = s.households_range ? "（目标 " + s.households_range[0] + "–" + s.households_range[1] + "）" : "";
    var deviation = s.household_deviation === null ? "" :
      "，偏差 " + (s.household_deviation > 0 ? "+" : "") + s.household_deviation;
    return "户数 " + s.households + range + deviation + "；楼栋 " + s.buildings + "，监控 " + s.cameras +
      "，面积 " + (s.area_m2 / 10000).toFixed(2) + " 公顷";
  }

  function renderStats() {
    var s = state.stats[state.selected];
    var panel = $("wg-stats");
    panel.textContent = "";
    if (s) {
      wg.append(panel, [wg.el("b", s.name), " " + s.code, wg.el("br"), statsLine(s)]);
    } else {
      panel.textContent = state.editable ?
        "点选一个网格：拖动顶点调整边界（吸附到相邻网格与下级网格），或用下方工具。" :
        "点选网格查看统计。";
    }
    if (state.truncated) {
      wg.append(panel, [wg.el("br"), wg.el("span", "视野内网格超过 " + cfg.viewLimit + " 个：请放大后编辑。", { "class": "wg-bad" })]);
    }
    var over = Object.keys(state.stats).filter(function (c) {
      var x = state.stats[c];
      return layerOf(c) && x.households_range &&
        (x.households > x.households_range[1] || x.households < x.households_range[0]);
    });
    wg.append(panel, [wg.el("br"), "视野内超出户数范围："]);
    if (!over.length) panel.appendChild(document.createTextNode("无"));
    over.slice(0, 30).forEach(function (code, i) {
      var link = wg.el("a", code.slice(-3), { href: "#", title: code });
      link.addEventListener("click", function (event) {
        event.preventDefault();
        tap(code);
      });
      wg.append(panel, [i ? " " : null, link]);
    });
    $("wg-version").textContent = state.version;
  }

  // The grids an edit touched, with their fresh statistics (the edit's own answer).
  function renderTouched(touched) {
    var box = $("wg-touched");
    box.textContent = "";
    if (!touched || !touched.length) return;
    var list = wg.el("ul");
    touched.slice(0, 20).forEach(function (s) {
      list.appendChild(wg.append(wg.el("li"), [wg.el("b", s.name), " " + s.code + "：" + statsLine(s)]));
    });
    wg.append(box, ["本次涉及 " + touched.length + " 个网格：", list]);
  }

  function renderRecoded(recoded) {
    var box = $("wg-recoded");
    box.textContent = "";
    box.hidden = !(recoded && recoded.length);
    if (box.hidden) return;
    var list = wg.el("ul");
    recoded.slice(0, 50).forEach(function (r) {
      list.appendChild(wg.el("li", r.old_code + " → " + r.new_code + (r.parent_code ? "（上级 " + r.parent_code + "）" : "")));
    });
    wg.append(box, ["重新编码 " + recoded.length + " 个下级网格：", list]);
  }

  function runCheck() {
    if (!cfg.canEdit) {  // POST /coverage/checks needs write_grids: readers are not offered it
      $("wg-check").textContent = "覆盖检查需要规划员令牌";
      return Promise.resolve(null);
    }
    $("wg-check").textContent = "覆盖检查中…";
    var version = state.version;
    return api("POST", "/coverage/checks", { generation: cfg.generation }).then(function (r) {
      if (!r.ok) {
        $("wg-check").textContent = "覆盖检查未完成：" + problem(r);
        document.dispatchEvent(new CustomEvent("wg:check-failed", { detail: r }));
        return null;
      }
      state.check = r.body;
      state.checkedVersion = version;
      var s = r.body.summary;
      var report = $("wg-check");
      report.textContent = "";
      wg.append(report, [
        "覆盖检查：错误 ", wg.el("b", s.errors, s.errors ? { "class": "wg-bad" } : {}),
        "，提示 " + s.warnings + " · ",
        wg.el("a", "查看报告", { href: "/map/checks/" + encodeURIComponent(r.body.id), target: "_blank" }),
      ]);
      document.dispatchEvent(new CustomEvent("wg:checked", { detail: r.body }));
      return r.body;
    });
  }

  // Reload after someone else saved: their version, their grids.
  function reloadDraft() {
    return api("GET", "/drafts/" + cfg.draft).then(function (d) {
      if (d.ok) {
        setVersion(d.body.version);
        $("wg-base").textContent = d.body.base_generation;
        if (d.body.status !== "open") setEditable(false);
      }
      return load();
    }).then(runCheck);
  }

  // Every edit's answer goes through here: version, touched statistics, recoded codes, reload of
  // the view and a fresh check; or the API's message, and the map put back as the server has it.
  function applied(result, message) {
    if (result.ok) {
      setVersion(result.body.version);
      (result.body.touched || []).forEach(function (s) { state.stats[s.code] = s; });
      if (result.body.created && result.body.created.length) state.selected = result.body.created[0];
      if (result.body.removed && result.body.removed.indexOf(state.selected) >= 0) state.selected = null;
      say(message + "（版本 " + state.version + "）");
      renderTouched(result.body.touched);
      renderRecoded(result.body.recoded);
      document.dispatchEvent(new CustomEvent("wg:edited", { detail: result.body }));
      return load().then(runCheck).catch(function (error) {
        console.error(error);
        say("刷新失败：" + error, true);
      }).then(function () { return result; });
    }
    var error = (result.body && result.body.error) || {};
    if (result.network) {
      say("网络错误：未保存，请重试", true);
      return Promise.resolve(result);
    }
    if (error.code === "stale_draft") {
      say(problem(result) + " —— 已重新载入最新版本，请重做这一步。", true);
      return reloadDraft().then(function () { return result; });
    }
    say(problem(result, "保存失败"), true);
    if (error.code === "draft_closed") setEditable(false);
    return load().then(function () { return result; });  // put the map back as the server has it
  }

  // One edit: the draft's version (read when it is sent) is added to the body (or the query, for
  // DELETE). With `wait`, an edit that finds another request running waits for it instead of
  // being refused (a dragged boundary is not lost).
  function edit(method, path, body, message, wait) {
    if (!state.editable) { say("此草稿只读", true); return Promise.resolve({ ok: false }); }
    if (state.busy && wait) {
      say("上一步保存后接着保存这一步…");
      return new Promise(function (resolve) {
        state.waiting.push(function () { edit(method, path, body, message, wait).then(resolve); });
      });
    }
    return exclusive(function () {
      say("保存中…");
      var payload = Object.assign({ version: state.version }, body || {});
      if ($("wg-keep-codes").checked) payload.keep_codes = true;
      var url = "/drafts/" + cfg.draft + path;
      if (method === "DELETE") {
        url += (url.indexOf("?") < 0 ? "?" : "&") + "version=" + state.version;
        payload = undefined;
      }
      return api(method, url, payload).then(function (r) { return applied(r, message); });
    });
  }

  var pending = null;
  function queueSave(code, layer) {
    clearTimeout(pending);
    pending = setTimeout(function () {
      edit("POST", "/reshape", { code: code, geometry: layer.toGeoJSON(false).geometry, crs: cfg.outCrs },
           "已保存边界调整", true);
    }, 250);
  }

  function setEditable(editable) {
    state.editable = editable;
    Array.prototype.forEach.call(document.querySelectorAll(".wg-tools button"), function (b) {
      if (b.id === "wg-check-now") b.disabled = !cfg.canEdit;
      else if (b.id !== "wg-tool-select") b.disabled = !editable;
    });
    $("wg-keep-codes").disabled = !editable;
    if (!editable) grids.eachLayer(function (l) { if (l.pm.enabled()) l.pm.disable(); });
  }

  var moving = null;
  map.on("moveend", function () {
    clearTimeout(moving);
    moving = setTimeout(function () { load(); }, 200);
  });

  $("wg-undo").addEventListener("click", function () {
    edit("POST", "/undo", {}, "已撤销上一步");
  });
  $("wg-check-now").addEventListener("click", function () { exclusive(runCheck); });

  // 吸附 on/off (a phone has no Alt key): vertices being dragged and lines being drawn follow it.
  $("wg-snap").addEventListener("change", function () {
    snap.snappable = $("wg-snap").checked;
    if (map.pm.setGlobalOptions) map.pm.setGlobalOptions({ snappable: snap.snappable, snapDistance: snap.snapDistance });
    if (state.selected && state.tool === "select") enableVertices(state.selected);
    say(snap.snappable ? "吸附已打开" : "吸附已关闭：顶点和画线不再贴靠相邻边界");
  });

  window.wgEditor = {
    map: map, grids: grids, children: children, state: state, cfg: cfg, select: select, tap: tap,
    layerOf: layerOf, featureOf: featureOf, load: load, runCheck: runCheck, edit: edit, say: say,
    problem: problem, restyle: restyle, enableVertices: enableVertices, getJSON: getJSON,
    viewBox: viewBox, snap: snap, reloadDraft: reloadDraft, setEditable: setEditable, renderStats: renderStats,
    exclusive: exclusive, setVersion: setVersion, api: api,
  };

  setEditable(state.editable);
  if (cfg.bounds) map.fitBounds(cfg.bounds, { animate: false });
  else map.setView([31.3, 120.7], 14);
  // fitBounds fires moveend (which loads); the first load is awaited here for the ready mark.
  clearTimeout(moving);
  exclusive(function () {
    return load().then(function (shown) {
      if (cfg.focus && layerOf(cfg.focus)) select(cfg.focus);
      return runCheck().then(function () { return shown; });
    });
  }).then(function (shown) {
    if (shown === false || (shown && shown.ok === false)) return;  // already said why
    if (state.editable) say("就绪：点选网格开始编辑");
    else if (cfg.canEdit) say("此草稿已关闭，只读：可查看统计与检查");
    else say("只读：可查看网格与统计；编辑和覆盖检查需要规划员令牌");
  }).then(function () { document.body.dataset.ready = "1"; });
})();
