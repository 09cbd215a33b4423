/* 地址匹配 and 纠正地址, for the dispatch page (dispatch.js draws them into an event) and the event
   page (mounted below when the page data carries `geocodeFix`).
   - summary(geocode, labels): how the event's address was matched — precision, confidence, the
     place and the point used, a relative phrase, the complaint part, the candidate grids with
     their shares (a place spanning several grids goes to manual dispatch with them).
   - form(options): the dispatcher picks the right place (GET /geocode/places?q=) and saves the
     wording as an alias (POST /geocode/aliases), so the same wording matches next time.
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

  function summary(geocode, labels) {
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
        ? "地点跨越 " + grids.length + " 个网格，需人工分派：" : "候选网格：", { "class": "wg-muted" }));
      var list = wg.el("ol", null, { "class": "wg-grid-shares" });
      grids.forEach(function (candidate) {
        var share = Math.max(0, Math.min(1, Number(candidate.share) || 0));
        var meter = wg.el("meter", null, { min: "0", max: "1", value: String(share) });
        list.appendChild(wg.append(wg.el("li", null, { "data-grid": candidate.grid && candidate.grid.code || candidate.grid }), [
          wg.el("span", gridName(candidate.grid)), meter, wg.el("span", Math.round(share * 100) + "%", { "class": "wg-share" }),
        ]));
      });
      section.appendChild(list);
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

  // options: {eventId, text, labels, onSaved(alias, created)}
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
    var save = wg.el("button", "保存为地址别名", { type: "submit" });
    save.disabled = true;
    node.appendChild(save);
    var message = wg.el("p", null, { "class": "wg-message", role: "status" });
    node.appendChild(message);

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
          say(r.status === 201 ? "已保存：以后「" + r.body.text + "」将匹配到 " + name
                               : "该说法已指向 " + name + "，无需重复保存", "good");
          if (options.onSaved) options.onSaved(r.body, r.status === 201);
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

  wg.geocode = { summary: summary, form: form, of: of };

  // The event page: its data says whether this caller may correct the address.
  var holder = document.getElementById("wg-geocode-fix-holder");
  var cfg = wg.page();
  if (holder && cfg.geocodeFix) {
    var open = wg.el("button", "纠正地址", { type: "button", "class": "wg-open-fix" });
    open.addEventListener("click", function () {
      open.remove();
      holder.appendChild(form(cfg.geocodeFix));
      holder.querySelector("input[name=q]").focus();
    });
    holder.appendChild(open);
  }
})();
