/* 草稿差异: once the page is laid out, fit the map to the changed grids within the part of the
   map the panel leaves visible — above the panel on a phone (it covers the lower half), right of
   it on a desktop. The server's own fit (folium) is the fallback without this script. */
(function () {
  "use strict";
  var cfg = window.wangge.page();
  var map = window[cfg.map];
  var panel = document.querySelector(".wg-panel");
  if (!map || !cfg.fit || !panel) return;

  function fit() {
    var box = panel.getBoundingClientRect(), size = map.getSize();
    var phone = box.width >= size.x * 0.9;  // the panel spans the width: it sits at the bottom
    var options = phone ?
      { paddingTopLeft: [10, 10], paddingBottomRight: [10, Math.min(box.height, size.y * 0.7) + 10] } :
      { paddingTopLeft: [Math.min(box.right, size.x * 0.6) + 10, 10], paddingBottomRight: [10, 10] };
    map.fitBounds(cfg.fit, Object.assign({ animate: false }, options));
    document.body.dataset.fitted = phone ? "phone" : "desktop";
  }

  map.invalidateSize();
  fit();
})();
