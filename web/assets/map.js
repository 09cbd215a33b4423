/* Every folium page: tooltips, popups and links on the layers the page names, as text; the
   street's shading by open events; the locate-me button; the coverage report's zoom links.
   Runs after folium's own script, so the map and its layers exist. */
(function () {
  "use strict";
  var wg = window.wangge;
  var cfg = wg.page();
  var map = window[cfg.map];
  var open = cfg.open;  // street page: open events per grid code, counted this request

  function shown(value) {
    return value === null || value === undefined ? "-" : value;
  }

  function table(properties, fields, labels) {
    var body = wg.el("tbody");
    fields.forEach(function (field, i) {
      body.appendChild(wg.append(wg.el("tr"), [
        wg.el("th", labels[i]), wg.el("td", shown(properties[field])),
      ]));
    });
    return wg.append(wg.el("table", null, { "class": "wg-tooltip" }), [body]);
  }

  function tooltipFor(spec, properties) {
    if (spec.text !== undefined) return wg.el("div", spec.text);
    if (spec.labels) return table(properties, spec.fields, spec.labels);
    return wg.lines("div", spec.fields.map(function (field) { return String(shown(properties[field])); }));
  }

  function colour(count) {
    var shade = cfg.shade;
    for (var i = 0; i < shade.breaks.length; i++) if (count <= shade.breaks[i]) return shade.colours[i];
    return shade.colours[shade.colours.length - 1];
  }

  function bind(spec) {
    var layer = window[spec.layer];
    if (!layer) return;
    if (spec.tooltip && spec.tooltip.text !== undefined) {
      layer.bindTooltip(function () { return tooltipFor(spec.tooltip); }, { sticky: true });
    }
    if (!layer.eachLayer) return;
    if (spec.shade) {
      // folium's styler gives the outline; the fill follows this request's counts. Highlighting
      // resets to options.style, so the fill goes there too.
      var base = layer.options.style;
      layer.options.style = function (feature) {
        var style = Object.assign({}, base(feature));
        style.fillColor = colour(feature.properties.open);
        return style;
      };
    }
    layer.eachLayer(function (sub) {
      var properties = sub.feature.properties;
      if (open) properties.open = open[properties.code] || 0;
      if (spec.shade) layer.resetStyle(sub);
      if (spec.tooltip && spec.tooltip.fields) {
        sub.bindTooltip(function () { return tooltipFor(spec.tooltip, properties); }, { sticky: true });
      }
      if (spec.popup) {
        sub.bindPopup(function () {
          return wg.append(wg.el("div"), [
            wg.el("b", properties.name), " ", wg.el("a", "打开", { href: spec.popup + encodeURIComponent(properties.code) }),
          ]);
        });
      }
      if (spec.click) {
        sub.on("click", function () { window.location.href = spec.click + encodeURIComponent(properties.code); });
      }
    });
  }

  // A layer too large to inline comes as vector tiles (Leaflet.VectorGrid, web/street.py): the
  // same tooltip (as text), click and shading, read from each tile feature's properties.
  var tilePanes = 0;

  function tiled(spec) {
    if (!L.vectorGrid) return;
    // Leaflet 1.8 dropped DomEvent.fakeStop, which VectorGrid 1.3 calls on a click.
    if (!L.DomEvent.fakeStop) L.DomEvent.fakeStop = function (e) { e._stopped = true; };
    var pane = "wgTiles" + (tilePanes++);
    map.createPane(pane).style.zIndex = String(410 + tilePanes);  // above inline overlays, in order
    var styles = {};
    styles[spec.vectorLayer] = function (properties) {
      var style = Object.assign({}, spec.style);
      if (spec.shade) style.fillColor = colour(open ? open[properties.code] || 0 : 0);
      return style;
    };
    var layer = L.vectorGrid.protobuf(spec.tiles, {
      pane: pane,
      interactive: true,
      minZoom: spec.minZoom,
      maxNativeZoom: spec.maxNativeZoom,
      vectorTileLayerStyles: styles,
      getFeatureId: function (feature) { return feature.properties.code; },
    });
    var tooltip = L.tooltip({ sticky: true, className: "wg-tile-tooltip" });
    var highlighted = null;
    layer.on("mouseover", function (e) {
      var properties = Object.assign({}, e.layer.properties);
      if (open) properties.open = open[properties.code] || 0;
      if (spec.tooltip) tooltip.setContent(tooltipFor(spec.tooltip, properties)).setLatLng(e.latlng).addTo(map);
      if (highlighted !== null) layer.resetFeatureStyle(highlighted);
      highlighted = properties.code;
      layer.setFeatureStyle(highlighted, Object.assign({}, styles[spec.vectorLayer](properties), { weight: 3, color: "#e53e3e" }));
    });
    layer.on("mousemove", function (e) { tooltip.setLatLng(e.latlng); });
    layer.on("mouseout", function () {
      tooltip.remove();
      if (highlighted !== null) layer.resetFeatureStyle(highlighted);
      highlighted = null;
    });
    if (spec.click) {
      layer.on("click", function (e) {
        window.location.href = spec.click + encodeURIComponent(e.layer.properties.code);
      });
    }
    if (spec.show) layer.addTo(map);
    var controls = window.wgLayerControls || [];
    if (controls.length) controls[controls.length - 1].addOverlay(layer, spec.name);
    spec.vectorGrid = layer;
  }

  (cfg.layers || []).forEach(function (spec) { if (spec.tiles) tiled(spec); else bind(spec); });

  var locate = document.getElementById("wg-locate");
  if (locate) {
    locate.addEventListener("click", function () { map.locate({ setView: true, maxZoom: 18 }); });
    map.on("locationfound", function (e) { L.circleMarker(e.latlng, { radius: 8, color: "#e53e3e" }).addTo(map); });
  }

  // Coverage report: each listed finding zooms the map to itself.
  Array.prototype.forEach.call(document.querySelectorAll("a[data-finding]"), function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      map.fitBounds(cfg.findings[Number(link.dataset.finding)]);
    });
  });

  window.wgMap = map;
})();
