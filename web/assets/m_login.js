// 扫码登录: the code rides in the URL fragment (never sent to a server, so never logged); this
// script shows who the link signs in as, and the person's tap posts the code in the form body.
(function () {
  "use strict";
  const form = document.getElementById("wg-login");
  if (!form) return;
  const status = document.getElementById("wg-status");
  const button = document.getElementById("wg-confirm");
  let code = "";
  try {
    code = decodeURIComponent(location.hash.slice(1)).trim();
  } catch (error) {
    code = "";
  }
  function fail(message) {
    status.textContent = message;
    status.classList.add("wg-m-bad");
  }
  if (!code) {
    fail("没有读到登录码：请用手机扫描管理员发给您的登录二维码。");
    return;
  }
  document.getElementById("wg-code").value = code;
  fetch("/m/login/preview", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code: code }),
    credentials: "same-origin",
    cache: "no-store",
  })
    .then(function (response) {
      return response.json().then(function (body) {
        return { ok: response.ok, body: body };
      });
    })
    .then(function (answer) {
      if (!answer.ok) {
        fail((answer.body.error && answer.body.error.message) || "登录链接无效。");
        return;
      }
      button.textContent = answer.body.label;
      button.hidden = false;
      status.textContent = "请确认身份，点按下面的按钮登录：";
    })
    .catch(function () {
      fail("网络不可用：请联网后重新打开此链接。");
    });
  form.addEventListener("submit", function () {
    button.disabled = true; // one tap, one sign-in
  });
})();
