/* wangge draft editor: pick a grid, drag its vertices (snapping to neighbours and micro-grids),
   cut it along a drawn line; every change is saved to the drafts API at once, then the coverage
   check and the grid statistics refresh. Writes go through wangge.api (web/assets/wangge.js).
   Names and codes reach the page as text only (tooltips, the statistics panel). */
(function () {
  "use strict";
  var wg = window.wangge;
  var cfg = wg.page();
  var map = window[cfg.map];
  var state = { version: cfg.version, selected: null, stats: {}, busy: false, check: null };
  var snap = { snappable: true, snapDistance: 20, allowSelfIntersection: false };
  var $ = function (id) { return document.getElementById(id); };
  var api = wg.api;

  function say(text, bad) {
    var el = $("wg-status");
    el.textContent = text;
    el.style.color = bad ? "#c53030" : "#2f855a";
  }

  function colour(stats) {
    if (!stats || !stats.households_range) return "#3182ce";
    if (stats.households > stats.households_range[1]) return "#e53e3e";
    if (stats.households < stats.households_range[0]) return "#dd6b20";
    return "#38a169";
  }

  var grids = L.geoJSON(null, {
    style: function (f) {
      var selected = f.properties.code === state.selected;
      return { color: selected ? "#1a202c" : "#2d3748", weight: selected ? 3 : 1.5,
               fillColor: colour(state.stats[f.properties.code]), fillOpacity: 0.35 };
    },
    onEachFeature: function (f, layer) {
      layer.bindTooltip(function () {
        return wg.el("div", f.properties.name + "（" + f.properties.code + "）");
      }, { sticky: true });
      layer.on("click", function () { select(f.properties.code); });
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

  function fetchLevel(level) {
    return fetch("/api/v1/grids?limit=5000&generation=" + cfg.generation + "&level=" + level +
                 "&out_crs=" + cfg.outCrs, { credentials: "same-origin" })
      .then(function (r) { return r.json(); });
  }

  function load() {
    var jobs = [fetchLevel(cfg.level),
                api("GET", "/drafts/" + cfg.draft + "/stats?level=" + cfg.level)];
    if (cfg.childLevel) jobs.push(fetchLevel(cfg.childLevel));
    return Promise.all(jobs).then(function (results) {
      state.stats = {};
      results[1].body.grids.forEach(function (s) { state.stats[s.code] = s; });
      grids.clearLayers();
      grids.addData(results[0]);
      children.clearLayers();
      if (results[2]) children.addData(results[2]);
      if (!state.fitted && grids.getLayers().length) { map.fitBounds(grids.getBounds()); state.fitted = true; }
      if (state.selected && !layerOf(state.selected)) state.selected = null;
      if (state.selected) select(state.selected);
      renderStats();
    });
  }

  function select(code) {
    grids.eachLayer(function (l) { if (l.pm.enabled()) l.pm.disable(); });
    state.selected = code;
    var layer = layerOf(code);
    if (layer) layer.pm.enable(snap);
    grids.setStyle(grids.options.style);
    renderStats();
  }

  function renderStats() {
    var s = state.stats[state.selected];
    var panel = $("wg-stats");
    panel.textContent = "";
    if (s) {
      var range = s.households_range ? "（目标 " + s.households_range[0] + "–" + s.households_range[1] + "）" : "";
      var deviation = s.household_deviation === null ? "" :
        "，偏差 " + (s.household_deviation > 0 ? "+" : "") + s.household_deviation;
      wg.append(panel, [
        wg.el("b", s.name), " " + s.code, wg.el("br"),
        "户数 " + s.households + range + deviation, wg.el("br"),
        "楼栋 " + s.buildings + "，监控 " + s.cameras + "，面积 " + (s.area_m2 / 10000).toFixed(2) + " 公顷",
      ]);
    } else {
      panel.textContent = "点选一个网格：拖动顶点调整边界（会吸附到相邻网格与微网格的顶点和边），或画线分割。";
    }
    var over = Object.keys(state.stats).filter(function (c) {
      var x = state.stats[c];
      return x.households_range && (x.households > x.households_range[1] || x.households < x.households_range[0]);
    });
    wg.append(panel, [wg.el("br"), "超出户数范围的网格："]);
    if (!over.length) panel.appendChild(document.createTextNode("无"));
    over.forEach(function (code, i) {
      var link = wg.el("a", code.slice(-3), { href: "#" });
      link.addEventListener("click", function (event) {
        event.preventDefault();
        select(code);
        map.fitBounds(layerOf(code).getBounds());
      });
      wg.append(panel, [i ? " " : null, link]);
    });
    $("wg-version").textContent = state.version;
  }

  function runCheck() {
    $("wg-check").textContent = "检查中…";
    return api("POST", "/coverage/checks", { generation: cfg.generation }).then(function (r) {
      if (!r.ok) { $("wg-check").textContent = r.body.error.message; return; }
      state.check = r.body;
      state.checkedVersion = state.version;
      var s = r.body.summary;
      var report = $("wg-check");
      report.textContent = "";
      wg.append(report, [
        "覆盖检查：错误 ", wg.el("b", s.errors), "，提示 " + s.warnings + " · ",
        wg.el("a", "查看", { href: "/map/checks/" + encodeURIComponent(r.body.id), target: "_blank" }),
      ]);
    });
  }

  function applied(result, message) {
    if (result.ok) {
      state.version = result.body.version;
      (result.body.touched || []).forEach(function (s) { state.stats[s.code] = s; });
      if (result.body.created && result.body.created.length) state.selected = result.body.created[0];
      say(message + "（版本 " + state.version + "）");
      return load().then(runCheck).catch(function (error) {
        console.error(error);
        say("刷新失败：" + error, true);
      });
    }
    var error = result.body.error || {};
    say(error.message || "保存失败", true);
    if (error.code === "stale_draft") {
      return api("GET", "/drafts/" + cfg.draft).then(function (d) { state.version = d.body.version; return load(); });
    }
    return load();  // put the map back as the server has it
  }

  var pending = null;
  function queueSave(code, layer) {
    clearTimeout(pending);
    pending = setTimeout(function () {
      say("保存中…");
      api("POST", "/drafts/" + cfg.draft + "/reshape",
          { code: code, geometry: layer.toGeoJSON(false).geometry, version: state.version, crs: cfg.outCrs })
        .then(function (r) { return applied(r, "已保存边界调整"); });
    }, 250);
  }

  map.on("pm:create", function (e) {
    if (e.shape !== "Line") return;
    var line = e.layer.toGeoJSON(false).geometry;
    map.removeLayer(e.layer);
    if (!state.selected) { say("请先点选要分割的网格", true); return; }
    say("分割中…");
    api("POST", "/drafts/" + cfg.draft + "/split",
        { code: state.selected, line: line, version: state.version, crs: cfg.outCrs })
      .then(function (r) { return applied(r, "已分割"); });
  });

  $("wg-split").addEventListener("click", function () {
    if (!state.selected) { say("请先点选要分割的网格", true); return; }
    map.pm.enableDraw("Line", snap);
    say("画一条穿过网格的线，双击结束");
  });
  $("wg-undo").addEventListener("click", function () {
    api("POST", "/drafts/" + cfg.draft + "/undo", { version: state.version })
      .then(function (r) { return applied(r, "已撤销上一步"); });
  });
  $("wg-check-now").addEventListener("click", runCheck);
  $("wg-publish").addEventListener("click", function () {
    var s = state.check && state.check.summary;
    if (!s) { say("请先运行覆盖检查", true); return; }
    if (s.errors) { say("覆盖检查还有错误，不能发布", true); return; }
    if (!window.confirm("发布后本草稿立即生效，事件与查询随之切换。确定发布？")) return;
    api("POST", "/drafts/" + cfg.draft + "/publish", { version: state.version, acknowledge_warnings: true })
      .then(function (r) {
        if (r.ok) say("已发布为第 " + r.body.generation + " 版，" + r.body.events_reassigned + " 个事件已改派");
        else say(r.body.error.message, true);
      });
  });

  window.wgEditor = { map: map, grids: grids, state: state, select: select, layerOf: layerOf };
  load().then(runCheck).then(function () { say("就绪：点选网格开始编辑"); document.body.dataset.ready = "1"; });
})();
