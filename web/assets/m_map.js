/* A Leaflet map for the phone pages (Leaflet from /static/vendor, tiles as configured). Positions
   from the phone are WGS84; on a GCJ-02 basemap they are shifted by the offset the server
   computed for this place (page data map.shift), and API layers are asked for in map.crs. */
(function () {
  "use strict";

  function create(elementId) {
    var config = window.wangge.page().map || { tiles: [], crs: "EPSG:4326", shift: [0, 0] };
    var map = L.map(elementId, { preferCanvas: true, zoomControl: true, attributionControl: true });
    config.tiles.forEach(function (tile) {
      L.tileLayer(tile.url, { attribution: tile.attribution, maxZoom: 19 }).addTo(map);
    });
    map.setView([31.3, 120.74], 14);
    return {
      map: map,
      crs: config.crs,
      // [lat, lng] on this map for a WGS84 lon/lat.
      place: function (lon, lat) { return [lat + config.shift[1], lon + config.shift[0]]; },
      // The map's lon/lat (in map.crs) of a tap.
      tapped: function (latlng) { return { lon: latlng.lng, lat: latlng.lat, crs: config.crs }; },
    };
  }

  // A small round marker with a text tooltip (never HTML).
  function dot(latlng, colour, text, radius) {
    var marker = L.circleMarker(latlng, {
      radius: radius || 9, color: "#fff", weight: 2, fillColor: colour, fillOpacity: 1,
    });
    if (text) {
      var label = document.createElement("span");
      label.textContent = text;
      marker.bindTooltip(label);
    }
    return marker;
  }

  window.wgMap = { create: create, dot: dot };
})();
