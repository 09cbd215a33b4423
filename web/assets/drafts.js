/* Draft list: start a draft from the active generation, or an auto-suggested partition. */
(function () {
  "use strict";
  var wg = window.wangge;
  var $ = function (id) { return document.getElementById(id); };

  function start(path, body) {
    wg.api("POST", path, body).then(function (r) {
      if (!r.ok) throw r.body.error || {};
      window.location.href = "/map/drafts/" + encodeURIComponent(r.body.id) + "/edit";
    }).catch(function (error) {
      $("msg").textContent = (error && error.message) || "失败";
    });
  }

  $("new").addEventListener("click", function () {
    start("/drafts", { name: $("name").value || "未命名草稿" });
  });
  $("suggest").addEventListener("click", function () {
    start("/drafts/suggest", { community: $("community").value });
  });
})();
