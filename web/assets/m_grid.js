/* 我的网格: my grid's boundary, its micro-grids and buildings (the grid API's GeoJSON, kept by the
   service worker for offline use), today's patrol track, and which micro-grids and buildings
   today's patrols visited (GET /api/v1/patrols/coverage?grid=…&from=today). */
(function () {
  "use strict";
  var wg = window.wangge;
  var phone = window.wgPhone;
  var data = phone.data;
  var code = data.grid;
  var view = window.wgMap.create("wg-m-map");
  var shift = (data.map && data.map.shift) || [0, 0];
  var VISITED = "#38a169";
  var NOT_VISITED = "#a0aec0";
  var state = { micro: null, buildings: null, coverage: null, tracks: [] };

  function message(text) { document.getElementById("wg-m-message").textContent = text || ""; }

  // GeoJSON from the API is WGS84: placed on the basemap with the page's shift.
  function layer(geojson, style) {
    return L.geoJSON(geojson, {
      style: style,
      coordsToLatLng: function (c) { return L.latLng(c[1] + shift[1], c[0] + shift[0]); },
      pointToLayer: function (feature, latlng) { return L.circleMarker(latlng, { radius: 4 }); },
    });
  }

  function tooltip(feature, text) {
    var label = document.createElement("span");
    label.textContent = text;
    return label;
  }

  // Micro-grids entered today (visits > 0); buildings not passed, by code (the coverage API
  // lists what was not visited).
  function visitedMicro() {
    var found = {};
    ((state.coverage && state.coverage.micro_grid_visits) || []).forEach(function (row) {
      if (row.visits > 0) found[row.code] = true;
    });
    return found;
  }

  function buildingsNotPassed() {
    var found = {};
    var features = (state.coverage && state.coverage.not_visited && state.coverage.not_visited.features) || [];
    features.forEach(function (feature) {
      if (feature.properties.kind === "building") found[feature.properties.code] = true;
    });
    return found;
  }

  function today() {
    var parts = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(new Date());
    return parts; // YYYY-MM-DD, Beijing time
  }

  function draw() {
    var micro = visitedMicro();
    var notPassed = buildingsNotPassed();
    var known = Boolean(state.coverage);
    if (state.micro) {
      var microLayer = layer(state.micro, function (feature) {
        var seen = micro[feature.properties.code];
        return { color: "#4a5568", weight: 1, fillColor: seen ? VISITED : NOT_VISITED, fillOpacity: seen ? 0.35 : 0.1 };
      }).addTo(view.map);
      microLayer.eachLayer(function (shape) {
        var p = shape.feature.properties;
        shape.bindTooltip(tooltip(shape.feature, (p.name || p.code) + (micro[p.code] ? "（今日已巡）" : "（今日未巡）")));
      });
      window.wgGrid.microLayer = microLayer;
    }
    if (state.buildings) {
      var buildingLayer = layer(state.buildings, function (feature) {
        var seen = known && !notPassed[feature.properties.code];
        return { color: seen ? VISITED : "#718096", weight: 1, fillOpacity: seen ? 0.6 : 0.2 };
      }).addTo(view.map);
      window.wgGrid.buildingLayer = buildingLayer;
    }
    state.tracks.forEach(function (track) {
      layer(track, function () { return { color: "#2b6cb0", weight: 4 }; }).addTo(view.map);
    });
  }

  function showCoverage() {
    var box = document.getElementById("wg-m-coverage");
    box.textContent = "";
    box.appendChild(wg.el("h2", "今日巡查"));
    var coverage = state.coverage;
    if (!coverage) { box.appendChild(wg.el("p", "今日巡查情况暂不可用", { class: "wg-m-muted" })); return; }
    [["micro_grids", "微网格"], ["buildings", "楼栋"], ["streets", "街巷长度"]].forEach(function (pair) {
      var figures = coverage[pair[0]];
      if (!figures || figures.share === null || figures.share === undefined) return;
      box.appendChild(wg.el("p", pair[1] + "覆盖：" + Math.round(figures.share * 100) + "%", { "data-share": pair[0] }));
    });
  }

  function load() {
    if (!code) {
      message("此登录没有指定网格");
      document.body.setAttribute("data-ready", "1");
      return Promise.resolve();
    }
    var segment = encodeURIComponent(code);
    var grid = encodeURIComponent(code);
    return Promise.all([
      phone.get("/grids/" + segment),
      phone.get("/grids?parent=" + grid + "&limit=5000"),
      phone.get("/buildings?grid=" + grid + "&limit=5000"),
      phone.get("/patrols/coverage?grid=" + grid + "&from=" + today()),
      phone.get("/patrols?grid=" + grid + "&from=" + today()),
    ]).then(function (answers) {
      var info = document.getElementById("wg-m-grid-info");
      info.textContent = "";
      if (!answers[0].ok) {
        message(phone.errorText(answers[0].body, answers[0].status));
        document.body.setAttribute("data-ready", "1");
        return;
      }
      var feature = answers[0].body;
      info.appendChild(wg.el("h2", (feature.properties.name || code) + "（" + code + "）"));
      if (answers[0].saved) info.appendChild(wg.el("p", "离线：显示上次保存的网格", { class: "wg-m-muted" }));
      var outline = layer(feature, function () { return { color: "#c53030", weight: 3, fill: false }; }).addTo(view.map);
      view.map.fitBounds(outline.getBounds());
      state.micro = answers[1].ok ? answers[1].body : null;
      state.buildings = answers[2].ok ? answers[2].body : null;
      state.coverage = answers[3].ok ? answers[3].body : null;
      var patrols = answers[4].ok ? answers[4].body.patrols || [] : [];
      return Promise.all(patrols.map(function (row) { return phone.get("/patrols/" + row.id); })).then(function (tracks) {
        state.tracks = tracks.filter(function (a) { return a.ok; }).map(function (a) { return a.body; });
        draw();
        showCoverage();
        document.body.setAttribute("data-ready", "1");
      });
    });
  }

  window.wgGrid = { state: state, microLayer: null, buildingLayer: null };
  load();
})();
