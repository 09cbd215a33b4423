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
