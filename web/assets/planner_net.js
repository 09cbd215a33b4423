/* The planner pages' one way to reach the API (draft list, editor, publish): every call answers
   { ok, status, body } and never rejects. A network error (offline, connection reset) answers
   status 0 with a Chinese message; an answer that is not JSON (a proxy's 502 page) answers its
   status with a Chinese message. So every caller handles failure in its `!r.ok` branch and no
   button or status is left waiting. Loaded after wangge.js. */
(function () {
  "use strict";

  function failure(status, message, code) {
    return { ok: false, status: status, network: status === 0, body: { error: { code: code, message: message } } };
  }

  function settle(promise) {
    return promise.then(function (response) {
      return response.json().then(function (json) {
        return { ok: response.ok, status: response.status, body: json };
      }, function () {
        return failure(response.status, "服务器答复无法读取（HTTP " + response.status + "），请稍后重试", "bad_answer");
      });
    }, function () {
      return failure(0, "网络错误：请检查网络后重试", "network");
    });
  }

  // A write or read of /api/v1 (as wangge.api: same origin, X-Wangge-Page for the login cookie).
  function call(method, path, body) {
    return settle(fetch("/api/v1" + path, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Wangge-Page": "1" },
      body: body === undefined || body === null ? undefined : JSON.stringify(body),
    }));
  }

  // A GET of a full URL, never from the cache (a draft's rows change under one generation id).
  function get(url) {
    return settle(fetch(url, { credentials: "same-origin", cache: "no-store" }));
  }

  // The message for a refused call: the API's own Chinese text, or ours for 401 and network.
  function problem(result, fallback) {
    if (result.status === 401) return "请先用规划员令牌登录（页面上方的“登录”）";
    var error = (result.body && result.body.error) || {};
    return error.message || fallback || ("请求失败（HTTP " + result.status + "）");
  }

  window.wgNet = { call: call, get: get, problem: problem };
})();
