/* Grid page: buildings (zoomed in only) and open events are fetched for the view from the
   GeoJSON API, never inlined. Their popups are built from text. */
(function () {
  "use strict";
  var wg = window.wangge;
  var cfg = wg.page();
  var map = window[cfg.map];

  function bbox() {
    var b = map.getBounds();
    return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(",");
  }

  function loader(layer, url, minZoom) {
    function load() {
      if (map.getZoom() < minZoom) { layer.clearLayers(); return; }
      fetch(url + "&bbox=" + bbox(), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (collection) { layer.clearLayers(); layer.addData(collection); });
    }
    map.on("moveend", load);
    load();
  }

  var buildings = L.geoJSON(null, {
    style: { color: "#975a16", weight: 1, fillOpacity: 0.3 },
    onEachFeature: function (feature, layer) {
      var p = feature.properties;
      layer.bindPopup(function () {
        return wg.lines("div", [p.address || p.code, "户数：" + (p.households === null ? "-" : p.households)]);
      });
    },
  }).addTo(map);
  loader(buildings, cfg.buildingsUrl, 16);

  var colours = cfg.statusColours, labels = cfg.statusLabels;
  var events = L.geoJSON(null, {
    pointToLayer: function (feature, latlng) {
      var p = feature.properties;
      return L.circleMarker(latlng, {
        radius: 7, color: p.overdue ? "#c53030" : "#ffffff", weight: p.overdue ? 3 : 1,
        fillColor: colours[p.status] || "#718096", fillOpacity: 0.9,
      });
    },
    onEachFeature: function (feature, layer) {
      var p = feature.properties;
      layer.bindPopup(function () {
        // The description is there only for callers entitled to it (the API decides).
        return wg.lines("div", [
          "#" + p.id + " " + (p.description || ""),
          [labels[p.status] || p.status, p.overdue ? "，" : null, p.overdue ? wg.el("b", "已逾期", { "class": "wg-late" }) : null],
          wg.el("a", "详情", { href: "/map/events/" + encodeURIComponent(p.id) }),
        ]);
      });
    },
  }).addTo(map);
  loader(events, cfg.eventsUrl, 0);
})();
