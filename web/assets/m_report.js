/* 上报: a category from the catalogue, a description, photos, my position (browser geolocation,
   WGS84) or a tap on the map, an optional address. The report gets its client_id (a UUID) and its
   time when it is made, so sending it again — from the offline queue, after a lost answer — is
   the same report; its photos follow once the event exists (stage 处置前). */
(function () {
  "use strict";
  var wg = window.wangge;
  var phone = window.wgPhone;
  var chosen = null; // {lon, lat, crs, how}
  var view = window.wgMap.create("wg-m-map");
  var marker = null;

  function message(text) { document.getElementById("wg-m-message").textContent = text || ""; }

  function place(point) {
    chosen = point;
    var where = point.crs === "EPSG:4326" ? view.place(point.lon, point.lat) : [point.lat, point.lon];
    if (!marker) marker = window.wgMap.dot(where, "#e53e3e", "上报位置", 10).addTo(view.map);
    else marker.setLatLng(where);
    view.map.setView(where, Math.max(view.map.getZoom(), 17));
    document.getElementById("wg-m-where").textContent =
      "位置：" + point.lon.toFixed(6) + ", " + point.lat.toFixed(6) + "（" + point.how + "）";
  }

  function locate() {
    document.getElementById("wg-m-where").textContent = "正在定位…";
    return phone.position().then(function (here) {
      place({ lon: here.lon, lat: here.lat, crs: "EPSG:4326", how: "我的位置" });
    }, function (error) {
      document.getElementById("wg-m-where").textContent = "位置：" + error.message + "（可以在地图上点选）";
    });
  }

  function loadCategories() {
    return phone.get("/categories").then(function (answer) {
      var select = document.getElementById("wg-m-category");
      select.textContent = "";
      select.appendChild(wg.el("option", "请选择类别", { value: "" }));
      if (!answer.ok) { message("类别加载失败：" + phone.errorText(answer.body, answer.status)); return; }
      answer.body.forEach(function (row) {
        select.appendChild(wg.el("option", row.name + "（" + row.code + "）", { value: row.code }));
      });
    });
  }

  function report(submitted) {
    submitted.preventDefault();
    var form = submitted.target;
    var category = form.elements.category.value;
    var address = form.elements.address.value.trim();
    if (!category) { message("请选择类别"); return; }
    if (!chosen && !address) { message("请取得位置、在地图上点选，或填写地址"); return; }
    var clientId = phone.uuid();
    var body = {
      client_id: clientId,
      category_code: category,
      description: form.elements.description.value.trim() || null,
      address: address || null,
      reported_at: new Date().toISOString(),
    };
    if (chosen) { body.lon = chosen.lon; body.lat = chosen.lat; body.crs = chosen.crs; }
    var label = form.elements.category.selectedOptions[0].textContent;
    var files = Array.prototype.slice.call(form.elements.photos.files);
    phone.enqueue({ kind: "report", body: body, label: label }).then(function () {
      var chain = Promise.resolve();
      files.forEach(function (file) {
        chain = chain.then(function () {
          return phone.enqueue({
            kind: "photo", reportClientId: clientId, stage: "before", blob: file,
            fileName: file.name, localId: phone.uuid(),
          });
        });
      });
      return chain;
    }).then(function () {
      var made = wg.el("li", "已上报：" + label + (navigator.onLine ? "" : "（已保存，联网后自动同步）"), {
        "data-client-id": clientId,
      });
      document.getElementById("wg-m-reported").prepend(made);
      form.reset();
      chosen = null;
      if (marker) { marker.remove(); marker = null; }
      document.getElementById("wg-m-where").textContent = "位置：未取得（也可以在地图上点选）";
      message("");
    });
  }

  view.map.on("click", function (event) {
    var tapped = view.tapped(event.latlng);
    place({ lon: tapped.lon, lat: tapped.lat, crs: tapped.crs, how: "地图点选" });
  });
  document.getElementById("wg-m-locate").addEventListener("click", locate);
  document.getElementById("wg-m-report").addEventListener("submit", report);
  window.wgReport = { place: place };
  Promise.all([loadCategories(), locate()]).then(function () {
    document.body.setAttribute("data-ready", "1");
  });
})();
