/* 巡查地图: each listed track zooms the map to itself and is drawn thicker while chosen. Layers,
   tooltips and shading come from map.js and the server; nothing here writes markup. */
(function () {
  "use strict";
  var wg = window.wangge;
  var cfg = wg.page();
  var map = window[cfg.map];
  var chosen = null;

  function trackLayer(id) {
    var found = null;
    (cfg.layers || []).forEach(function (spec) {
      var layer = window[spec.layer];
      if (!layer || !layer.eachLayer) return;
      layer.eachLayer(function (sub) {
        if (sub.feature && sub.feature.properties && String(sub.feature.properties.id) === id) found = sub;
      });
    });
    return found;
  }

  // A street's (or a community's) buildings nobody passed are too many to carry in the page
  // (web/patrol_pages.py): they come from the vector tiles /tiles/buildings, from zoom
  // spec.minZoom, and only those whose code the page lists are drawn (red), with their address.
  function unvisitedTiles(spec) {
    if (!spec || !L.vectorGrid || !map) return;
    if (!L.DomEvent.fakeStop) L.DomEvent.fakeStop = function (e) { e._stopped = true; };
    var unvisited = new Set(spec.rest.map(function (rest) { return spec.prefix + rest; }));
    map.createPane("wgUnvisited").style.zIndex = "420";
    var styles = {};
    styles[spec.vectorLayer] = function (properties) {
      return unvisited.has(properties.code) ? spec.style : [];
    };
    var layer = L.vectorGrid.protobuf(spec.tiles, {
      pane: "wgUnvisited",
      interactive: true,
      minZoom: spec.minZoom,
      maxNativeZoom: spec.maxNativeZoom,
      vectorTileLayerStyles: styles,
      getFeatureId: function (feature) { return feature.properties.code; },
    });
    var tooltip = L.tooltip({ sticky: true, className: "wg-tile-tooltip" });
    layer.on("mouseover", function (e) {
      var p = e.layer.properties || {};
      tooltip.setContent(wg.el("div", "未经过：" + (p.address || p.name || "") + "（" + p.code + "）"))
        .setLatLng(e.latlng).addTo(map);
    });
    layer.on("mousemove", function (e) { tooltip.setLatLng(e.latlng); });
    layer.on("mouseout", function () { tooltip.remove(); });
    layer.addTo(map);
    var controls = window.wgLayerControls || [];
    if (controls.length) controls[controls.length - 1].addOverlay(layer, spec.name);
    window.wgUnvisitedBuildings = { layer: layer, codes: unvisited };
  }
  unvisitedTiles(cfg.buildings);

  Array.prototype.forEach.call(document.querySelectorAll("a[data-track]"), function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var id = link.dataset.track;
      if (cfg.tracks[id]) map.fitBounds(cfg.tracks[id]);
      if (chosen) chosen.setStyle({ weight: 3 });
      chosen = trackLayer(id);
      if (chosen) { chosen.setStyle({ weight: 7 }); chosen.bringToFront(); }
    });
  });
})();
