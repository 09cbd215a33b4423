/* 地址匹配 and 纠正地址, for the dispatch page (dispatch.js draws them into an event) and the event
   page (mounted below when the page data carries `geocodeFix`).
   - summary(geocode, labels, locator, gridCode): how the event's address was matched — precision, confidence, the
     place and the point used, a relative phrase, the complaint part, the candidate grids with
     their shares (a place spanning several grids goes to manual dispatch with them).
   - form(options): the dispatcher picks the right place (GET /geocode/places?q=) and saves the
     wording as an alias (POST /geocode/aliases), so the same wording matches next time; on an
     open event without a grid it may also place the event there (同时把本事件定位到该地点).
   - 定位到此网格 (人工定位): with a `locator` ({eventId, version, say, onPlaced}) each candidate
     grid gets a button that POSTs /events/{id}/location with the version the page read; a place
     spanning grids (409 spans_grids) offers its grids the same way.
   All text goes in with textContent (wangge.el); writes carry X-Wangge-Page (wangge.api). */
(function () {
  "use strict";
  var wg = window.wangge;
  var PLACE_LIMIT = 8;

  function label(table, key) { return (table && table[key]) || key || "—"; }

  function errorText(r) {
    var error = (r.body && r.body.error) || {};
    return (error.message || ("请求失败（HTTP " + r.status + "）")) + (error.where ? "（" + error.where + "）" : "");
  }

  function gridName(grid) {
    if (!grid) return "—";
    if (typeof grid === "string") return grid;
    return grid.name && grid.name !== grid.code ? grid.name + "（" + grid.code + "）" : grid.code;
  }

  function facts(rows) {
    var dl = wg.el("dl", null, { "class": "wg-facts" });
    rows.forEach(function (row) {
      if (row[1] === null || row[1] === undefined || row[1] === "") return;
      dl.appendChild(wg.el("dt", row[0]));
      dl.appendChild(wg.append(wg.el("dd"), [row[1]]));
    });
    return dl;
  }

  // Candidate grids with their shares; with a locator, a 定位到此网格 button each (`place`: the
  // gazetteer place the grids belong to, sent along so the point lands on the place's part).
  function shareList(grids, locator, place) {
    var list = wg.el("ol", null, { "class": "wg-grid-shares" });
    grids.forEach(function (candidate) {
      var share = Math.max(0, Math.min(1, Number(candidate.share) || 0));
      var meter = wg.el("meter", null, { min: "0", max: "1", value: String(share) });
      var item = wg.append(wg.el("li", null, { "data-grid": gridCode(candidate.grid) }), [
        wg.el("span", gridName(candidate.grid)), meter, wg.el("span", Math.round(share * 100) + "%", { "class": "wg-share" }),
      ]);
      if (locator) item.appendChild(locateButton(locator, candidate.grid, place, list));
      list.appendChild(item);
    });
    return list;
  }

  function gridCode(grid) { return grid && typeof grid === "object" ? grid.code : grid; }

  // ---- 人工定位 ----------------------------------------------------------------------------------
  // POST /events/{id}/location with the version the page read. Resolves to
  // {placed: event, text} on success, {spans: candidates} when a place spans grids, else
  // {refused: text}; nothing is retried behind the dispatcher's back.
  function locate(locator, body) {
    body.version = locator.version;
    return wg.api("POST", "/events/" + encodeURIComponent(locator.eventId) + "/location", body).then(function (r) {
      var error = (r.body && r.body.error) || {};
      if (r.ok) return { placed: r.body, text: "已定位到 " + placedName(r.body) };
      if (r.status === 409 && error.code === "stale_version") return { refused: "事件已被他人更新，请刷新后重试" };
      if (r.status === 409 && error.code === "spans_grids") return { spans: error.details || [] };
      return { refused: errorText(r) };
    }, function (error) {
      return { refused: "网络错误，未能定位：" + error.message };
    });
  }

  // "网格名（编码）" of the grid the event now lies in, from its assignment path.
  function placedName(e) {
    var step = ((e.assignment && e.assignment.path) || []).filter(function (s) { return s.code === e.grid_code; })[0];
    return step && step.name && step.name !== e.grid_code ? step.name + "（" + e.grid_code + "）" : e.grid_code;
  }

  // A 定位到此网格 button; while one request runs every button of `scope` waits.
  function locateButton(locator, grid, place, scope) {
    var code = gridCode(grid);
    var button = wg.el("button", "定位到此网格", { type: "button", "class": "wg-place-grid", "data-grid": code,
                                                  "aria-label": "定位到此网格：" + gridName(grid) });
    button.addEventListener("click", function () {
      var buttons = scope.querySelectorAll("button.wg-place-grid");
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
      locator.say("定位中…", "");
      var body = { grid_code: code };
      if (place) body.place = { kind: place.kind, code: place.code };
      locate(locator, body).then(function (result) {
        if (result.placed) { locator.say(result.text, "good"); locator.onPlaced(result.placed, result.text); return; }
        locator.say(result.refused || "该地点跨越多个网格，请选择其一", "bad");
        Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
      });
    });
    return button;
  }

  // gridCode: the grid the event lies in now (placed by hand after the match), or null.
  function summary(geocode, labels, locator, gridCode) {
    var section = wg.el("section", null, { "class": "wg-geocode", "data-precision": geocode.precision || "" });
    section.appendChild(wg.el("h3", "地址匹配"));
    var confidence = typeof geocode.confidence === "number" ? geocode.confidence.toFixed(2) : null;
    if (confidence !== null && typeof geocode.threshold === "number") {
      confidence += (geocode.confidence >= geocode.threshold ? "（达到" : "（低于") + "阈值 " + geocode.threshold.toFixed(2) + "）";
    }
    var relative = geocode.relative && geocode.relative.phrase
      ? geocode.relative.phrase + "：" + label(labels.relative, geocode.relative.effect) : null;
    var place = geocode.place && geocode.place.name
      ? geocode.place.name + "（" + label(labels.precision, geocode.place.kind) + "）" : null;
    section.appendChild(facts([
      ["匹配精度", (geocode.matched || geocode.precision ? label(labels.precision, geocode.precision) : "未匹配") +
                   (geocode.via_alias ? "（按地址别名）" : "")],
      ["置信度", confidence],
      ["地点", place],
      ["定位点", geocode.point ? label(labels.point, geocode.point.kind) : null],
      ["相对位置", relative],
      ["诉求内容", geocode.complaint || null],
      // A place spanning grids is said once, with its grids, below.
      ["说明", geocode.reason === "spans_grids" ? null : geocode.message || (geocode.reason ? label(labels.reason, geocode.reason) : null)],
    ]));
    var grids = geocode.grid_candidates || [];
    if (grids.length) {
      section.appendChild(wg.el("p", grids.length > 1 || geocode.needs_manual_dispatch
        ? "地点跨越 " + grids.length + " 个网格，" + (gridCode ? "现已定位到 " + gridCode + "：" : "需人工分派：")
        : "候选网格：", { "class": "wg-muted" }));
      var shares = shareList(grids, locator, null);
      Array.prototype.forEach.call(shares.children, function (item) {
        if (gridCode && item.dataset.grid === gridCode) item.className = "wg-placed-grid";
      });
      section.appendChild(shares);
    }
    var candidates = geocode.matched ? [] : (geocode.candidates || []);
    if (candidates.length) {
      section.appendChild(wg.el("p", "候选地点（未达阈值，未自动采用）：", { "class": "wg-muted" }));
      section.appendChild(wg.lines("div", candidates.slice(0, 5).map(function (c) {
        var name = (c.place && c.place.name) || (c.building && c.building.address) || c.name || c.code || "";
        return name + (typeof c.confidence === "number" ? " · " + c.confidence.toFixed(2) : "");
      })));
    }
    return section;
  }

  // options: {eventId, text, labels, onSaved(alias, created), locate: a locator or null (an open
  // event on no grid, a caller who may place it)}
  function form(options) {
    var labels = options.labels;
    var chosen = null;
    var busy = false;
    var node = wg.el("form", null, { "class": "wg-form wg-geocode-fix", id: "wg-geocode-fix" });
    node.appendChild(wg.el("b", "纠正地址"));
    node.appendChild(wg.el("p", "查找正确的地点并保存：以后同样的说法将直接匹配到该地点。", { "class": "wg-muted" }));
    var wording = wg.el("input", null, { name: "text", maxlength: "200", required: "required", autocomplete: "off" });
    wording.value = options.text || "";
    node.appendChild(wg.append(wg.el("label"), [wg.el("span", "说法"), wording]));
    var query = wg.el("input", null, { name: "q", type: "search", maxlength: "200", placeholder: "小区、楼栋、地标、道路名称",
                                       autocomplete: "off" });
    var find = wg.el("button", "查找", { type: "button", "class": "wg-find" });
    node.appendChild(wg.append(wg.el("label"), [wg.el("span", "查找地点"), query, find]));
    var results = wg.el("ol", null, { "class": "wg-place-results", "aria-label": "查找结果" });
    node.appendChild(results);
    var picked = wg.el("p", "尚未选择地点", { "class": "wg-muted wg-picked" });
    node.appendChild(picked);
    var alsoLocate = null;
    if (options.locate) {
      alsoLocate = wg.el("input", null, { type: "checkbox", name: "locate", checked: "checked" });
      node.appendChild(wg.append(wg.el("label", null, { "class": "wg-also-locate" }), [alsoLocate, "同时把本事件定位到该地点"]));
    }
    var save = wg.el("button", "保存为地址别名", { type: "submit" });
    save.disabled = true;
    node.appendChild(save);
    var message = wg.el("p", null, { "class": "wg-message", role: "status" });
    node.appendChild(message);
    var spans = wg.el("div", null, { "class": "wg-place-spans" });
    node.appendChild(spans);

    function say(text, tone) {
      message.textContent = text;
      message.className = "wg-message " + (tone === "bad" ? "wg-bad" : tone === "good" ? "wg-good" : "wg-muted");
    }

    function choose(place, button) {
      chosen = place;
      Array.prototype.forEach.call(results.querySelectorAll("button"), function (b) { b.classList.remove("wg-chosen"); });
      button.classList.add("wg-chosen");
      // Where it lies: what a dispatcher dispatching by hand needs next.
      picked.textContent = "已选：" + place.name + "（" + label(labels.precision, place.kind) + " " + place.code + "）" +
        (place.grid ? "，位于 " + place.grid.name + "（" + place.grid.code + "）" : "，不在任何网格内");
      picked.className = "wg-picked";
      save.disabled = false;
    }

    function search() {
      var q = query.value.trim();
      if (!q) { say("请输入要查找的地名", "bad"); query.focus(); return; }
      say("查找中…", "");
      find.disabled = true;
      wg.api("GET", "/geocode/places?q=" + encodeURIComponent(q) + "&limit=" + PLACE_LIMIT).then(function (r) {
        results.textContent = "";
        if (!r.ok) { say(errorText(r), "bad"); return; }
        r.body.places.forEach(function (place) {
          var usable = labels.targetKinds.indexOf(place.kind) >= 0;
          var text = place.name + " · " + label(labels.precision, place.kind) +
            (place.grid ? " · " + place.grid.name : "") + " · " + Number(place.confidence).toFixed(2);
          var button = wg.el("button", text, { type: "button", "data-kind": place.kind, "data-code": place.code });
          if (!usable) { button.disabled = true; button.title = "社区不能作为地址别名的目标，请选更具体的地点"; }
          button.addEventListener("click", function () { choose(place, button); });
          results.appendChild(wg.append(wg.el("li"), [button]));
        });
        say(r.body.places.length ? "找到 " + r.body.places.length + " 个地点，请选择正确的一个" :
            "没有找到「" + q + "」：" + label(labels.reason, r.body.reason), r.body.places.length ? "" : "bad");
      }, function (error) {
        say("网络错误，未能查找：" + error.message, "bad");
      }).then(function () { find.disabled = false; });
    }

    // After the alias: the event goes where the wording now points. A place spanning grids
    // answers with its grids (409 spans_grids); the dispatcher picks one.
    function placeAt(target, saved) {
      var place = { kind: target.kind, code: target.code };
      var locator = {
        eventId: options.locate.eventId, version: options.locate.version,
        say: function (text, tone) { say(text === "定位中…" ? text : saved + "；" + text, tone); },
        onPlaced: function (placed, text) { options.locate.onPlaced(placed, saved + "；" + text); },
      };
      spans.textContent = "";
      say(saved + "；定位中…", "");
      return locate(locator, { place: place }).then(function (result) {
        if (result.placed) { locator.say(result.text, "good"); locator.onPlaced(result.placed, result.text); return; }
        if (result.spans) {
          say(saved + "；该地点跨越 " + result.spans.length + " 个网格，请选择定位到哪一个：", "");
          spans.appendChild(shareList(result.spans, locator, place));
          return;
        }
        say(saved + "；未能定位：" + result.refused, "bad");
      });
    }

    find.addEventListener("click", search);
    query.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); search(); }
    });
    node.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy || !chosen) return;
      var body = { text: wording.value, target: { kind: chosen.kind, code: chosen.code } };
      if (options.eventId) body.event_id = options.eventId;
      busy = true;
      save.disabled = true;
      say("保存中…", "");
      wg.api("POST", "/geocode/aliases", body).then(function (r) {
        if (r.ok) {
          var name = r.body.target.name || chosen.name;
          // 200: the wording already meant this place, or the matcher already finds the place
          // by it (already_matches: nothing saved, the API says why).
          var saved = r.status === 201 ? "已保存：以后「" + r.body.text + "」将匹配到 " + name
                    : r.body.already_matches ? r.body.message || "该说法已能匹配到 " + name + "，无需保存"
                    : "该说法已指向 " + name + "，无需重复保存";
          say(saved, "good");
          if (options.onSaved) options.onSaved(r.body, r.status === 201);
          if (alsoLocate && alsoLocate.checked) return placeAt(r.body.target, saved);
        } else {
          say(errorText(r), "bad");
        }
      }, function (error) {
        say("网络错误，未能保存：" + error.message, "bad");
      }).then(function () { busy = false; save.disabled = !chosen; });
    });
    return node;
  }

  // How an event was placed by its address: its assignment's, or as its report line keeps it.
  function of(e) {
    if (e.assignment && e.assignment.geocode) return e.assignment.geocode;
    var report = (e.history || []).filter(function (h) { return h.action === "report"; })[0];
    return (report && report.details && report.details.geocode) || null;
  }

  // Who may place this event by hand, as the dispatch page decides from the event it read (the
  // event page's data says it: geocodeFix.locate).
  function canLocate(e, role, labels) {
    return labels.locators.indexOf(role) >= 0 && !e.grid_code && labels.finished.indexOf(e.status) < 0;
  }

  wg.geocode = { summary: summary, form: form, of: of, canLocate: canLocate };

  // The event page: its data says whether this caller may correct the address and place the event.
  var holder = document.getElementById("wg-geocode-fix-holder");
  var cfg = wg.page();
  if (!holder || !cfg.geocodeFix) return;
  var DONE_KEY = "wangge.located." + cfg.geocodeFix.eventId;
  // What placing says stands under 地址匹配's heading (the panel scrolls: it is brought into view).
  var status = wg.el("p", null, { "class": "wg-message wg-locate-message", role: "status" });
  var heading = document.querySelector(".wg-panel .wg-geocode h3");
  if (heading) heading.after(status); else holder.appendChild(status);
  function say(text, tone) {
    status.textContent = text;
    status.className = "wg-message wg-locate-message " + (tone === "bad" ? "wg-bad" : tone === "good" ? "wg-good" : "wg-muted");
    if (text) status.scrollIntoView({ block: "nearest" });
  }
  // What the last placement said, kept across the reload that shows the event where it now is.
  try {
    var done = window.sessionStorage.getItem(DONE_KEY);
    if (done) { window.sessionStorage.removeItem(DONE_KEY); say(done, "good"); }
  } catch (ignored) { /* storage refused: the page itself shows the new grid */ }
  var locator = null;
  if (cfg.geocodeFix.locate) {
    locator = {
      eventId: cfg.geocodeFix.locate.eventId, version: cfg.geocodeFix.locate.version, say: say,
      onPlaced: function (placed, text) {
        try { window.sessionStorage.setItem(DONE_KEY, text); } catch (ignored) { /* shown until the reload */ }
        window.location.reload();
      },
    };
    var list = document.querySelector(".wg-panel .wg-geocode .wg-grid-shares");
    if (list) {
      Array.prototype.forEach.call(list.querySelectorAll("li[data-grid]"), function (item) {
        item.appendChild(locateButton(locator, item.dataset.grid, null, list));
      });
    }
  }
  var open = wg.el("button", "纠正地址", { type: "button", "class": "wg-open-fix" });
  open.addEventListener("click", function () {
    open.remove();
    holder.appendChild(form(Object.assign({}, cfg.geocodeFix, { locate: locator })));
    holder.querySelector("input[name=q]").focus();
  });
  holder.insertBefore(open, holder.firstChild);
})();
