/* Shared by wangge's pages: the page's own data, the API, and DOM built from text.
   Data never becomes markup here: every value goes in with textContent, so a grid named
   "<svg onload=…>" is shown as those characters. */
(function () {
  "use strict";

  // The data the server rendered into <script type="application/json" id="wg-page">.
  function page() {
    var holder = document.getElementById("wg-page");
    return holder ? JSON.parse(holder.textContent) : {};
  }

  // Same-origin API call. Writes carry X-Wangge-Page so the login cookie may authorise them
  // (api/deps.py); a page on another site cannot send that header without a CORS preflight.
  function api(method, path, body) {
    return fetch("/api/v1" + path, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Wangge-Page": "1" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (json) {
        return { ok: response.ok, status: response.status, body: json };
      });
    });
  }

  // An element holding `text` as text; children may be nodes or strings (also text).
  function el(tag, text, attributes) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    return node;
  }

  function append(parent, parts) {
    parts.forEach(function (part) {
      if (part === null || part === undefined) return;
      parent.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    });
    return parent;
  }

  // Lines of text (or nodes) separated by <br>, in one element.
  function lines(tag, rows) {
    var node = document.createElement(tag);
    rows.forEach(function (row, i) {
      if (i) node.appendChild(document.createElement("br"));
      append(node, Array.isArray(row) ? row : [row]);
    });
    return node;
  }

  function gridHref(code) {
    return "/map/grids/" + encodeURIComponent(code);
  }

  window.wangge = { page: page, api: api, el: el, append: append, lines: lines, gridHref: gridHref };
})();
