/* Loaded before folium's map script on maps with vector-tile layers: folium declares its layer
   control with `let`, out of web/assets/map.js's reach, so each control is noted here as it is
   made and map.js adds the tile layers to it. */
(function () {
  "use strict";
  window.wgLayerControls = [];
  L.Control.Layers.addInitHook(function () { window.wgLayerControls.push(this); });
})();
