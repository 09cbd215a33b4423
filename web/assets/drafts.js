/* Draft list (网格草稿): start a draft from the active generation or an auto-suggested partition,
   discard one. Messages come from the API's JSON (Chinese) and go in as text. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };

  function say(text, ok) {
    var msg = $("msg");
    msg.textContent = text;
    msg.className = ok ? "wg-ok" : "";
  }

  var call = window.wgNet.call;  // never rejects: a network error is a Chinese message
  function failed(result) {
    return window.wgNet.problem(result, "操作失败（HTTP " + result.status + "）");
  }

  function start(path, body, button) {
    button.disabled = true;
    say("处理中…", true);
    call("POST", path, body).then(function (r) {
      if (!r.ok) { button.disabled = false; say(failed(r)); return; }
      say("已创建草稿 #" + r.body.id + "，正在打开…", true);
      window.location.href = "/map/drafts/" + encodeURIComponent(r.body.id) + "/edit";
    });
  }

  $("new").addEventListener("click", function () {
    start("/drafts", { name: $("name").value.trim() || "未命名草稿" }, $("new"));
  });

  $("suggest").addEventListener("click", function () {
    var community = $("community").value.trim();
    if (!community) { say("请填写社区编码"); $("community").focus(); return; }
    var body = { community: community };
    var low = parseInt($("households-min").value, 10), high = parseInt($("households-max").value, 10);
    if (!isNaN(low)) body.households_min = low;
    if (!isNaN(high)) body.households_max = high;
    start("/drafts/suggest", body, $("suggest"));
  });

  Array.prototype.forEach.call(document.querySelectorAll("button[data-discard]"), function (button) {
    button.addEventListener("click", function () {
      var id = button.dataset.discard;
      var row = button.closest("tr");
      var name = row.querySelector(".wg-name").textContent;
      if (!window.confirm("放弃草稿“" + name + "”？放弃后不能再编辑（记录保留）。")) return;
      button.disabled = true;
      say("处理中…", true);
      call("POST", "/drafts/" + encodeURIComponent(id) + "/discard",
             { version: Number(button.dataset.version) }).then(function (r) {
        if (!r.ok) { button.disabled = false; say(failed(r)); return; }
        row.parentNode.removeChild(row);
        say("已放弃草稿 #" + id, true);
      });
    });
  });
})();
