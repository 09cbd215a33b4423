/* wangge draft editor, the tools: split along a line, merge grids of one parent, create a grid
   (draw, name, level, parent, kind), delete (with or without its children), attributes, parent
   change, building reassignment (publishing is in editor_publish.js). Each tool opens its form in the sheet; every edit goes through
   wgEditor.edit, so the version, statistics and the check refresh the same way. Text only. */
(function () {
  "use strict";
  var wg = window.wangge;
  var ed = window.wgEditor;
  var cfg = ed.cfg, state = ed.state, map = ed.map;
  var $ = function (id) { return document.getElementById(id); };
  var TOOLS = ["select", "split", "merge", "create", "delete", "attributes", "parent", "reassign", "publish"];
  var drawing = null;  // the Geoman shape being drawn ("Line", "Polygon") or null
  var drawn = null;    // the polygon drawn for a new grid (GeoJSON geometry)

  function option(select, value, label) {
    var node = wg.el("option", label);
    node.value = value;
    select.appendChild(node);
  }

  cfg.levels.forEach(function (lv) { option($("wg-create-level"), lv.name, lv.label + "（" + lv.name + "）"); });
  $("wg-create-level").value = cfg.level;
  Array.prototype.forEach.call(document.querySelectorAll(".wg-kinds"), function (select) {
    cfg.kinds.forEach(function (k) { option(select, k.name, k.label); });
  });

  function stopDrawing() {
    if (drawing) map.pm.disableDraw();
    drawing = null;
  }

  function startDrawing(shape) {
    stopDrawing();
    drawing = shape;
    map.pm.enableDraw(shape, Object.assign({ finishOn: null }, ed.snap));
  }

  // Switch tools: press its button, show its form, leave the others' state behind.
  function use(tool) {
    if (!state.editable && tool !== "select") { ed.say("此草稿只读", true); return; }
    stopDrawing();
    if (state.drawnLayer) { map.removeLayer(state.drawnLayer); state.drawnLayer = null; }
    state.tool = tool;
    state.picked = [];
    state.target = null;
    state.pickingTarget = false;
    buildings.clearLayers();
    state.buildingsPicked = [];
    TOOLS.forEach(function (name) {
      var button = document.querySelector('.wg-tools [data-tool="' + name + '"]');
      if (button) button.setAttribute("aria-pressed", String(name === tool));
      var form = $("wg-form-" + name);
      if (form) form.hidden = name !== tool;
    });
    ed.enableVertices(state.selected);  // vertices drag only with the select tool
    ed.restyle();
    var start = OPENERS[tool];
    if (start) start();
  }

  function needSelected() {
    if (state.selected) return true;
    ed.say("请先点选一个网格", true);
    return false;
  }

  function props(code) {
    var f = ed.featureOf(code);
    return f ? f.properties : {};
  }

  function numberOrNull(input) {
    var text = input.value.trim();
    return text === "" ? null : Number(text);
  }

  // ---- split -------------------------------------------------------------------------------
  function openSplit() {
    if (!needSelected()) return;
    startDrawing("Line");
    ed.say("在网格 " + state.selected + " 上画一条穿过它的线，完成后点“完成画线”");
  }

  // ---- merge -------------------------------------------------------------------------------
  function renderMerge() {
    var list = $("wg-merge-list"), keep = $("wg-merge-keep");
    list.textContent = "";
    while (keep.options.length > 1) keep.remove(1);
    state.picked.forEach(function (code) {
      list.appendChild(wg.el("li", (props(code).name || "") + "（" + code + "）"));
      option(keep, code, "保留 " + code);
    });
    $("wg-merge-go").disabled = state.picked.length < 2;
  }

  function openMerge() {
    if (state.selected) state.picked = [state.selected];
    renderMerge();
    ed.restyle();
    ed.say("轻点同一上级下相邻的网格加入合并（再点一次取消）");
  }

  $("wg-merge-go").addEventListener("click", function () {
    var parents = state.picked.map(function (c) { return props(c).parent_code; });
    if (parents.some(function (p) { return p !== parents[0]; })) {
      ed.say("只能合并同一上级下的网格", true);
      return;
    }
    var body = { codes: state.picked.slice() };
    if ($("wg-merge-keep").value) body.keep_code = $("wg-merge-keep").value;
    ed.edit("POST", "/merge", body, "已合并 " + body.codes.length + " 个网格").then(function (r) {
      if (r.ok) use("select");
    });
  });

  // ---- create ------------------------------------------------------------------------------
  function openCreate() {
    drawn = null;
    $("wg-create-parent").value = state.selected ? props(state.selected).parent_code || "" : "";
    $("wg-create-go").disabled = true;
    $("wg-create-hint").textContent = "在地图上逐点画出新网格的边界，点“完成画线”闭合。";
    loadParents($("wg-create-level").value);
    startDrawing("Polygon");
    ed.say("画出新网格的边界");
  }

  $("wg-create-redraw").addEventListener("click", function () { use("create"); });
  $("wg-create-level").addEventListener("change", function () {
    $("wg-create-parent").value = "";
    loadParents($("wg-create-level").value);
  });

  $("wg-create-go").addEventListener("click", function () {
    var name = $("wg-create-name").value.trim();
    if (!drawn) { ed.say("请先在地图上画出边界", true); return; }
    if (!name) { ed.say("请填写名称", true); $("wg-create-name").focus(); return; }
    var body = {
      geometry: drawn, crs: cfg.outCrs, name: name, level: $("wg-create-level").value,
      parent_code: $("wg-create-parent").value.trim() || null, kind: $("wg-create-kind").value,
    };
    var households = numberOrNull($("wg-create-households"));
    var population = numberOrNull($("wg-create-population"));
    if (households !== null) body.households = households;
    if (population !== null) body.population = population;
    // A grid of another level is not drawn on this page (it shows cfg.level): say where it is.
    var other = body.level !== cfg.level ? cfg.levels.filter(function (lv) { return lv.name === body.level; })[0] : null;
    var message = other ? "已新建" + other.label + "（本页只显示本层级，请在该层级的编辑页查看）" : "已新建网格";
    ed.edit("POST", "/grids", body, message).then(function (r) {
      if (r.ok) {
        if (state.drawnLayer) { map.removeLayer(state.drawnLayer); state.drawnLayer = null; }
        $("wg-create-name").value = "";
        use("select");
      }
    });
  });

  map.on("pm:create", function (e) {
    var geometry = e.layer.toGeoJSON(false).geometry;
    var shape = drawing;
    drawing = null;
    if (shape === "Line" && state.tool === "split") {
      map.removeLayer(e.layer);
      ed.edit("POST", "/split", { code: state.selected, line: geometry, crs: cfg.outCrs }, "已分割")
        .then(function () { use("select"); });
      return;
    }
    if (shape === "Polygon" && state.tool === "create") {
      drawn = geometry;
      state.drawnLayer = e.layer;
      $("wg-create-go").disabled = false;
      $("wg-create-hint").textContent = "边界已画好：填写名称、上级和类型后点“创建网格”。";
      ed.say("边界已画好，请填写属性");
      return;
    }
    map.removeLayer(e.layer);
  });

  Array.prototype.forEach.call(document.querySelectorAll(".wg-finish"), function (button) {
    button.addEventListener("click", function () {
      var draw = drawing && map.pm.Draw[drawing];
      if (!draw) { ed.say("没有正在画的线", true); return; }
      var layer = draw._layer;
      var points = layer && layer.getLatLngs ? layer.getLatLngs().length : 0;
      if (points < (drawing === "Line" ? 2 : 3)) {
        ed.say(drawing === "Line" ? "至少需要两个点" : "至少需要三个点", true);
        return;
      }
      draw._finishShape();
    });
  });

  // ---- delete ------------------------------------------------------------------------------
  function openDelete() {
    $("wg-delete-children").checked = false;
    $("wg-delete-go").disabled = !state.selected;
    $("wg-delete-what").textContent = state.selected ?
      "删除网格 " + (props(state.selected).name || "") + "（" + state.selected + "）？" : "请先点选要删除的网格。";
  }

  $("wg-delete-go").addEventListener("click", function () {
    if (!needSelected()) return;
    var code = state.selected;
    var query = $("wg-delete-children").checked ? "?with_children=true" : "";
    ed.edit("DELETE", "/grids/" + encodeURIComponent(code) + query, null, "已删除网格 " + code)
      .then(function (r) { if (r.ok) use("select"); });
  });

  // ---- attributes --------------------------------------------------------------------------
  function openAttributes() {
    var p = state.selected ? props(state.selected) : null;
    $("wg-attributes-go").disabled = !p;
    $("wg-attributes-what").textContent = p ? "网格 " + state.selected : "请先点选网格。";
    $("wg-attr-name").value = p ? p.name : "";
    $("wg-attr-kind").value = p ? p.kind : "";
    $("wg-attr-households").value = p && p.households !== null ? p.households : "";
    $("wg-attr-population").value = p && p.population !== null ? p.population : "";
  }

  $("wg-attributes-go").addEventListener("click", function () {
    if (!needSelected()) return;
    var p = props(state.selected), body = {};
    var name = $("wg-attr-name").value.trim();
    if (!name) { ed.say("名称不能为空", true); $("wg-attr-name").focus(); return; }
    if (name !== p.name) body.name = name;
    if ($("wg-attr-kind").value && $("wg-attr-kind").value !== p.kind) body.kind = $("wg-attr-kind").value;
    // An emptied 户数/人口 clears it (null: unknown); an unchanged one is not sent.
    var households = numberOrNull($("wg-attr-households"));
    var population = numberOrNull($("wg-attr-population"));
    if (households !== (p.households === undefined ? null : p.households)) body.households = households;
    if (population !== (p.population === undefined ? null : p.population)) body.population = population;
    if (!Object.keys(body).length) { ed.say("没有修改", true); return; }
    ed.edit("PATCH", "/grids/" + encodeURIComponent(state.selected), body, "已保存属性")
      .then(function (r) { if (r.ok) openAttributes(); });
  });

  // ---- parent ------------------------------------------------------------------------------
  // The level above `level` (cfg.levels is in rank order), or null for the top level.
  function levelAbove(level) {
    var names = cfg.levels.map(function (lv) { return lv.name; });
    var at = names.indexOf(level);
    return at > 0 ? names[at - 1] : null;
  }

  // Candidate parents: the grids of the level above `level` in view, as a datalist (codes, names).
  function loadParents(level) {
    var list = $("wg-parents");
    var above = levelAbove(level || cfg.level);
    list.textContent = "";
    if (!above) return;
    ed.getJSON("/api/v1/grids?" + new URLSearchParams({
      generation: cfg.generation, level: above, bbox: ed.viewBox(), limit: 300,
    }).toString()).then(function (r) {
      list.textContent = "";
      if (!r.ok) return;
      r.body.features.forEach(function (f) {
        option(list, f.properties.code, f.properties.name);
      });
    });
  }

  function openParent() {
    var p = state.selected ? props(state.selected) : null;
    $("wg-parent-go").disabled = !p;
    $("wg-parent-what").textContent = p ?
      "网格 " + state.selected + " 现在的上级：" + (p.parent_code || "无") : "请先点选网格。";
    $("wg-parent-code").value = "";
    loadParents();
  }

  $("wg-parent-go").addEventListener("click", function () {
    if (!needSelected()) return;
    var parent = $("wg-parent-code").value.trim();
    if (!parent) { ed.say("请填写新的上级编码", true); return; }
    ed.edit("PATCH", "/grids/" + encodeURIComponent(state.selected), { parent_code: parent },
            "已改上级为 " + parent).then(function (r) { if (r.ok) openParent(); });
  });

  // ---- building reassignment ---------------------------------------------------------------
  var buildings = L.geoJSON(null, {
    style: function (f) {
      var picked = state.buildingsPicked.indexOf(f.properties.code) >= 0;
      return { color: picked ? "#6b46c1" : "#975a16", weight: picked ? 3 : 1,
               fillColor: picked ? "#9f7aea" : "#d69e2e", fillOpacity: picked ? 0.8 : 0.4 };
    },
    onEachFeature: function (f, layer) {
      layer.bindTooltip(function () {
        return wg.el("div", (f.properties.address || f.properties.code) + "，" + (f.properties.households || 0) + " 户");
      }, { sticky: true });
      layer.on("click", function (e) {
        L.DomEvent.stop(e);
        var code = f.properties.code, at = state.buildingsPicked.indexOf(code);
        if (at >= 0) state.buildingsPicked.splice(at, 1); else state.buildingsPicked.push(code);
        buildings.setStyle(buildings.options.style);
        renderReassign();
      });
    },
  }).addTo(map);
  state.buildingsPicked = [];

  function loadBuildings() {
    if (state.tool !== "reassign") return;
    if (map.getZoom() < cfg.buildingsMinZoom) {
      buildings.clearLayers();
      ed.say("放大到 " + cfg.buildingsMinZoom + " 级以上才显示楼栋");
      return;
    }
    ed.getJSON("/api/v1/buildings?" + new URLSearchParams({
      bbox: ed.viewBox(), limit: 3000, out_crs: cfg.outCrs,
    }).toString()).then(function (r) {
      if (state.tool !== "reassign") return;
      if (!r.ok) { ed.say(ed.problem(r), true); return; }
      buildings.clearLayers();
      buildings.addData(r.body);
      buildings.bringToFront();
      ed.say("轻点楼栋选择（已选 " + state.buildingsPicked.length + " 栋）");
    });
  }
  map.on("moveend", loadBuildings);
  document.addEventListener("wg:loaded", function () { if (state.tool === "reassign") buildings.bringToFront(); });

  function renderReassign() {
    var list = $("wg-reassign-list");
    list.textContent = "";
    state.buildingsPicked.forEach(function (code) { list.appendChild(wg.el("li", code)); });
    $("wg-reassign-target").textContent = state.target ?
      (props(state.target).name || "") + "（" + state.target + "）" : "未选";
    $("wg-reassign-go").disabled = !(state.target && state.buildingsPicked.length);
  }

  function openReassign() {
    renderReassign();
    loadBuildings();
  }

  $("wg-reassign-pick").addEventListener("click", function () {
    state.pickingTarget = true;
    ed.say("轻点目标网格");
  });

  $("wg-reassign-go").addEventListener("click", function () {
    var body = { buildings: state.buildingsPicked.slice(), grid_code: state.target };
    ed.edit("POST", "/buildings/reassign", body, "已把 " + body.buildings.length + " 栋楼改划到 " + state.target)
      .then(function (r) {
        if (!r.ok) return;
        state.buildingsPicked = [];
        renderReassign();
        loadBuildings();
      });
  });

  // ---- taps on grids: each tool reads them its own way ---------------------------------------
  document.addEventListener("wg:tap", function (event) {
    var code = event.detail.code;
    if (state.tool === "merge") {
      event.preventDefault();
      var at = state.picked.indexOf(code);
      if (at >= 0) state.picked.splice(at, 1); else state.picked.push(code);
      state.selected = code;
      ed.restyle();
      renderMerge();
    } else if (state.tool === "reassign") {
      event.preventDefault();
      if (!state.pickingTarget && state.buildingsPicked.length === 0) {
        ed.say("先轻点楼栋，或点“选目标网格”", true);
        return;
      }
      state.target = code;
      state.pickingTarget = false;
      ed.restyle();
      renderReassign();
    } else if (state.tool === "split" || state.tool === "create") {
      if (drawing) event.preventDefault();  // taps while drawing place vertices
    }
  });
  document.addEventListener("wg:selected", function () {
    var refresh = { "delete": openDelete, attributes: openAttributes, parent: openParent };
    if (refresh[state.tool]) refresh[state.tool]();
    // ✂ 分割 tapped before a grid was chosen: choosing one now starts the line (after this tap,
    // so the tap that chose the grid is not taken as the line's first point).
    if (state.tool === "split" && !drawing) {
      setTimeout(function () { if (state.tool === "split" && !drawing) openSplit(); }, 0);
    }
  });
  document.addEventListener("wg:loaded", function () {
    if (state.tool === "attributes") openAttributes();
  });
  // ---- wiring ------------------------------------------------------------------------------
  var OPENERS = {
    split: openSplit, merge: openMerge, create: openCreate, "delete": openDelete,
    attributes: openAttributes, parent: openParent, reassign: openReassign,  // publish: editor_publish.js
  };
  TOOLS.forEach(function (tool) {
    var button = document.querySelector('.wg-tools [data-tool="' + tool + '"]');
    if (button) button.addEventListener("click", function () { use(state.tool === tool && tool !== "select" ? "select" : tool); });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".wg-cancel"), function (button) {
    button.addEventListener("click", function () { use("select"); ed.say("已取消"); });
  });

  ed.use = use;
  ed.openers = OPENERS;
  ed.option = option;
  ed.buildings = buildings;
})();
