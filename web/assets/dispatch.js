/* 调度台 (/map/dispatch): the events to act on (filtered by state, warning, unit, category), one
   event's details, history and allowed actions, and a form per action. Every action POSTs to
   /api/v1/events/{id}/transitions with the event's version as last read; a refusal (409 stale
   version or illegal transition, 403, 422) is shown in Chinese as the API words it, then the event
   is read again — nothing is swallowed. Writes carry the login cookie and X-Wangge-Page
   (wangge.api). All text reaches the page with textContent. An event placed by address shows how
   it was matched, and dispatchers may correct the address (geocode_fix.js). */
(function () {
  "use strict";
  var wg = window.wangge;
  var cfg = wg.page();
  var map = window[cfg.map];
  var $ = function (id) { return document.getElementById(id); };

  var TIERS = { 3: "社区（三级）", 2: "街道（二级）", 1: "区级部门（一级）" };
  var SOURCES = { hotline_12345: "12345 热线", patrol: "网格员巡查", app: "群众 APP", official: "部门交办",
                  video: "视频监控", sensor: "物联感知", open311: "Open311" };
  var HISTORY_LABELS = Object.assign({ report: "上报", absorb: "合并重复上报" }, cfg.actionLabels);
  var DETAIL_LABELS = { tier: "层级", unit: "单位", assignee: "人员", due_at: "期限", from: "原期限", to: "新期限",
                        requested: "申请至", denied: "驳回申请", target: "合并到", duplicate: "重复事件",
                        rework: "返工次数", satisfaction: "满意度", handling_hours: "处置工时", on_time: "按期",
                        from_tier: "原层级", override: "人工改派", deadline_override: "人工期限",
                        from_grid: "原网格", to_grid: "定位到网格", moved_m: "定位点移入网格（米）" };
  var WARNING_RING = { red: "#e53e3e", yellow: "#ecc94b" };
  var LIST_LIMIT = 1000;
  // Fields each action's form asks for: [field, required, label]. Unlisted actions ask for a note.
  var FORMS = {
    accept: [["category"], ["tier"], ["deadline", false, "处置期限（可选，默认按规则）"], ["note", false, "备注"]],
    reject: [["note", true, "不予立案理由"]],
    dispatch: [["unit"], ["assignee"], ["deadline", false, "处置期限（可选）"], ["note", false, "派遣说明"]],
    start: [["note", false, "备注"]],
    handle: [["note", true, "处置情况"]],
    verify: [["note", false, "核查意见"]],
    rework: [["note", true, "返工原因"]],
    evaluate: [["satisfaction"], ["note", false, "评价说明"]],
    "return": [["note", true, "退回原因"]],
    request_postpone: [["deadline", true, "申请延期至"], ["note", true, "延期理由"]],
    approve_postpone: [["deadline", false, "批准期限（可选，默认按申请）"], ["note", false, "审批意见"]],
    deny_postpone: [["note", true, "驳回理由"]],
    escalate: [["escalate_tier"], ["deadline", false, "新处置期限（可选，默认按规则）"], ["note", true, "升级理由"]],
    cancel: [["note", true, "作废理由"]],
    merge: [["target"], ["note", false, "备注"]],
    supervise: [["note", true, "督办事由"], ["deadline", false, "督办期限（可选）"]],
  };
  var POSTPONE_DECISIONS = ["approve_postpone", "deny_postpone"];

  var state = {
    events: [], selected: null, event: null, form: null, draft: {}, busy: false, fix: null,
    units: {}, unitList: [], categories: {}, categoryList: [], fitted: false, timer: null,
  };

  // ---- time: shown and entered as local time where the street is ------------------------------
  var zone = cfg.timeZone;
  var timeFormat = new Intl.DateTimeFormat("zh-CN", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
  });
  var partsFormat = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric",
  });

  function when(iso) { return iso ? timeFormat.format(new Date(iso)) : "—"; }

  function zoneOffsetMs(date) {
    var p = {};
    partsFormat.formatToParts(date).forEach(function (part) { p[part.type] = Number(part.value); });
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(date.getTime() / 1000) * 1000;
  }

  // "2026-12-01T17:30" typed in a datetime-local input, read as the street's local time.
  function localInputToIso(value) {
    var guess = new Date(value + ":00Z");
    return new Date(guess.getTime() - zoneOffsetMs(guess)).toISOString();
  }

  function query(params) {
    return Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
    }).join("&");
  }

  function get(path) {
    return wg.api("GET", path).then(function (r) {
      if (!r.ok) throw new Error(errorText(r));
      return r.body;
    });
  }

  function errorText(r) {
    var error = (r.body && r.body.error) || {};
    var text = error.message || ("请求失败（HTTP " + r.status + "）");
    if (error.code === "validation_error" && error.where) text += "（" + error.where + "）";
    return text;
  }

  function say(text, tone) {
    var message = $("wg-message");
    message.textContent = text;
    message.className = "wg-message " + (tone === "bad" ? "wg-bad" : tone === "good" ? "wg-good" : "wg-muted");
  }

  function categoryName(code) { return state.categories[code] ? state.categories[code].name : code || "未分类"; }
  function unitName(code) { return state.units[code] ? state.units[code].name : code; }
  function badge(text, tone) { return wg.el("span", text, { "class": "wg-badge " + (tone || "") }); }

  // ---- the list -------------------------------------------------------------------------------
  function listParams() {
    var params = { status: "open", with_unplaced: "true", sort: "deadline", limit: LIST_LIMIT, out_crs: cfg.outCrs };
    var chosen = $("wg-f-state").value;
    if (chosen === "postpone") params.state = "dispatched,processing";
    else if (chosen) params.state = chosen;
    [["warning", "wg-f-warning"], ["unit", "wg-f-unit"], ["category", "wg-f-category"]].forEach(function (pair) {
      if ($(pair[1]).value) params[pair[0]] = $(pair[1]).value;
    });
    return params;
  }

  function loadList() {
    var postponeOnly = $("wg-f-state").value === "postpone";
    return get("/events?" + query(listParams())).then(function (collection) {
      state.events = collection.features.filter(function (f) {
        return !postponeOnly || f.properties.postponement_requested;
      });
      $("wg-list-count").textContent = "共 " + state.events.length + " 件" +
        (collection.hasMore ? "（只列出期限最近的 " + LIST_LIMIT + " 件）" : "");
      drawList();
      drawMarkers();
    });
  }

  function deadlineOf(p) { return p.status === "reported" ? p.accept_due_at : p.due_at; }

  function drawList() {
    var list = $("wg-list");
    list.textContent = "";
    state.events.forEach(function (feature) {
      var p = feature.properties;
      var first = wg.append(wg.el("div"), ["#" + p.id + " " + categoryName(p.category_code),
                                             badge(p.status_label || cfg.statusLabels[p.status], "wg-blue")]);
      if (p.warning) first.appendChild(badge(p.warning === "red" ? "逾期" : "黄色预警", "wg-" + p.warning));
      if (p.supervised) first.appendChild(badge("督办 " + p.supervised, "wg-purple"));
      if (p.postponement_requested) first.appendChild(badge("申请延期"));
      if (!feature.geometry) first.appendChild(badge("未定位"));
      var deadline = deadlineOf(p);
      var second = wg.el("div", (deadline ? "期限 " + when(deadline) : "无期限") + (p.description ? " · " + p.description : ""),
                         { "class": "wg-line2" });
      var button = wg.append(wg.el("button", null, { type: "button", "data-event": p.id }), [first, second]);
      button.addEventListener("click", function () {
        select(p.id);
        // On a phone the panels stack: bring the event's panel up to where the finger is.
        if (window.matchMedia("(max-width: 900px)").matches) $("wg-event").scrollIntoView();
      });
      var item = wg.append(wg.el("li", null, p.id === state.selected ? { "class": "wg-selected" } : {}), [button]);
      list.appendChild(item);
    });
    if (!state.events.length) list.appendChild(wg.el("li", "没有符合条件的事件", { "class": "wg-muted" }));
  }

  // ---- the map --------------------------------------------------------------------------------
  map.createPane("wgAreas").style.zIndex = 350;
  map.createPane("wgEvents").style.zIndex = 450;
  var areas = L.geoJSON(null, {
    renderer: L.canvas({ pane: "wgAreas" }), interactive: false,
    style: { color: "#4a5568", weight: 1.5, fillColor: "#ffffff", fillOpacity: 0.2 },
  }).addTo(map);
  var eventRenderer = L.canvas({ pane: "wgEvents" });
  var highlight = L.layerGroup().addTo(map);
  var markers = L.geoJSON(null, {
    pointToLayer: function (feature, latlng) {
      var p = feature.properties;
      var ring = WARNING_RING[p.warning];
      return L.circleMarker(latlng, {
        renderer: eventRenderer, radius: 7, color: ring || "#ffffff", weight: ring ? 3 : 1,
        fillColor: cfg.statusColours[p.status] || "#718096", fillOpacity: 0.95,
      });
    },
    onEachFeature: function (feature, layer) {
      var p = feature.properties;
      layer.bindTooltip(function () {
        return wg.lines("div", ["#" + p.id + " " + categoryName(p.category_code), p.status_label || p.status]);
      });
      layer.on("click", function () { select(p.id); });
    },
  }).addTo(map);

  function drawMarkers() {
    markers.clearLayers();
    markers.addData({ type: "FeatureCollection", features: state.events });
    drawHighlight(false);
  }

  function drawHighlight(pan) {
    highlight.clearLayers();
    var feature = state.events.filter(function (f) { return f.properties.id === state.selected && f.geometry; })[0];
    if (!feature) return;
    var c = feature.geometry.coordinates;
    L.circleMarker([c[1], c[0]], { renderer: eventRenderer, radius: 14, color: "#1a202c", weight: 3, fill: false,
                                   interactive: false }).addTo(highlight);
    if (pan && !map.getBounds().contains([c[1], c[0]])) map.panTo([c[1], c[0]]);
  }

  // ---- one event ------------------------------------------------------------------------------
  function select(id) {
    if (state.busy) return;
    state.selected = id;
    state.form = null;
    state.draft = {};
    state.fix = null;
    say("", "");
    if (window.history.replaceState) window.history.replaceState(null, "", "?event=" + encodeURIComponent(id));
    Array.prototype.forEach.call(document.querySelectorAll("#wg-list li"), function (li) {
      var button = li.querySelector("button");
      li.className = button && Number(button.dataset.event) === id ? "wg-selected" : "";
    });
    drawHighlight(true);
    return loadEvent();
  }

  function loadEvent() {
    var id = state.selected;
    return wg.api("GET", "/events/" + encodeURIComponent(id)).then(function (r) {
      if (id !== state.selected) return;
      if (!r.ok) {
        state.event = null;
        $("wg-event-body").textContent = "";
        say(errorText(r), "bad");
        return;
      }
      state.event = r.body;
      drawEvent();
    });
  }

  function facts(rows) {
    var dl = wg.el("dl", null, { "class": "wg-facts" });
    rows.forEach(function (row) {
      if (row[1] === null || row[1] === undefined || row[1] === "") return;
      dl.appendChild(wg.el("dt", row[0]));
      var dd = wg.el("dd");
      wg.append(dd, Array.isArray(row[1]) ? row[1] : [String(row[1])]);
      dl.appendChild(dd);
    });
    return dl;
  }

  function drawEvent() {
    var e = state.event;
    var holder = $("wg-event-body");
    holder.textContent = "";
    var title = wg.append(wg.el("h2"), ["事件 #" + e.id, badge(e.status_label, "wg-blue")]);
    if (e.warning && e.warning.level) title.appendChild(badge(e.warning.label_zh, "wg-" + e.warning.level));
    if (e.supervisions && e.supervisions.length) title.appendChild(badge("督办 " + e.supervisions.length, "wg-purple"));
    holder.appendChild(title);
    holder.appendChild(wg.append(wg.el("div", null, { "class": "wg-muted" }), [
      "版本 ", wg.el("span", e.version, { id: "wg-version" }), " · ",
      wg.el("a", "事件页", { href: "/map/events/" + encodeURIComponent(e.id) }),
    ]));
    var path = e.assignment && e.assignment.path && e.assignment.path.length
      ? e.assignment.path.map(function (step) { return step.name; }).join(" › ")
      : "未能定位到网格，需人工分派";
    var duplicates = (e.duplicate_candidates || []).map(function (id) {
      var link = wg.el("button", "#" + id, { type: "button", "class": "wg-linklike", "data-candidate": id });
      link.addEventListener("click", function () { select(id); });
      return link;
    });
    var supervisions = (e.supervisions || []).map(function (order) {
      return when(order.issued_at) + " " + (order.reason || "督办") + (order.due_at ? "（期限 " + when(order.due_at) + "）" : "");
    });
    var counts = [["延期", e.postpone_count], ["返工", e.rework_count], ["退回", e.return_count], ["升级", e.escalation_count]]
      .filter(function (pair) { return pair[1]; })
      .map(function (pair) { return pair[0] + " " + pair[1] + " 次"; }).join("，");
    holder.appendChild(facts([
      ["类别", e.category_code ? categoryName(e.category_code) + "（" + e.category_code + "）" : "未分类"],
      ["层级", TIERS[e.tier]],
      ["来源", SOURCES[e.source] || e.source],
      ["描述", e.description],
      ["地址", e.address],
      ["位置", path],
      ["处置单位", e.unit_code ? unitName(e.unit_code) : null],
      ["建议派往", !e.unit_code && proposedUnit(e) ? unitName(proposedUnit(e)) + "（按派遣规则）" : null],
      ["上报时间", when(e.reported_at)],
      ["立案期限", e.status === "reported" ? when(e.accept_due_at) : null],
      ["处置期限", e.due_at ? when(e.due_at) : null],
      ["预警", e.warning && e.warning.label_zh ? e.warning.label_zh : null],
      ["申请延期至", e.postponement_requested_until ? when(e.postponement_requested_until) : null],
      ["办理次数", counts],
      ["合并到", e.merged_into ? "#" + e.merged_into : null],
      ["重复上报", duplicates.length ? duplicates : null],
      ["督办", supervisions.length ? wg.lines("span", supervisions) : null],
    ].map(function (row) { return row[1] instanceof Node ? [row[0], [row[1]]] : row; })));
    var geocode = wg.geocode.of(e);
    if (geocode) holder.appendChild(wg.geocode.summary(geocode, cfg.geocodeLabels, locator(e), e.grid_code));
    if (canFix(e)) holder.appendChild(fixHolder(e));
    holder.appendChild(actionBar(e));
    holder.appendChild(wg.el("div", null, { id: "wg-form-holder" }));
    if (state.form) openForm(state.form);
    holder.appendChild(wg.el("h3", "办理记录"));
    holder.appendChild(historyList(e.history || []));
  }

  // 纠正地址: for those who may save aliases, on an event that came with an address. The form
  // node lives while the event stays selected, so a redraw keeps what was typed and found.
  function canFix(e) {
    return cfg.geocodeFixers.indexOf(cfg.role) >= 0 && e.address;
  }

  // 定位到此网格: an open event on no grid, placed by hand with the version last read; then the
  // event and the queue are read again (it leaves 待人工分派).
  function locator(e) {
    if (!wg.geocode.canLocate(e, cfg.role, cfg.geocodeLabels)) return null;
    return {
      eventId: e.id, version: e.version, say: say,
      onPlaced: function (placed, text) {
        say(text, "good");
        if (state.selected !== e.id) return;
        state.fix = null;
        Promise.all([loadEvent(), loadList()]).catch(showError);
      },
    };
  }

  function fixHolder(e) {
    var holder = wg.el("div", null, { id: "wg-fix-holder" });
    if (state.fix) return wg.append(holder, [state.fix]);
    var open = wg.el("button", "纠正地址", { type: "button", "class": "wg-open-fix" });
    open.addEventListener("click", function () {
      var geocode = wg.geocode.of(e) || {};
      state.fix = wg.geocode.form({ eventId: e.id, text: geocode.address_text || e.address, labels: cfg.geocodeLabels,
                                    locate: locator(e) });
      holder.textContent = "";
      holder.appendChild(state.fix);
      state.fix.querySelector("input[name=q]").focus();
    });
    return wg.append(holder, [open]);
  }

  function offered(e) {
    return (e.allowed_actions || []).filter(function (action) {
      // A postponement can be decided only while one is pending.
      return POSTPONE_DECISIONS.indexOf(action) < 0 || e.postponement_requested_until;
    });
  }

  function actionBar(e) {
    var bar = wg.el("div", null, { "class": "wg-actions" });
    bar.appendChild(wg.el("h3", "可执行操作"));
    var actions = offered(e);
    if (!actions.length) bar.appendChild(wg.el("p", "当前状态下您的角色无可执行操作", { "class": "wg-muted" }));
    actions.forEach(function (action) {
      var button = wg.el("button", cfg.actionLabels[action] || action,
                         { type: "button", "data-action": action, "class": state.form === action ? "wg-chosen" : "" });
      button.addEventListener("click", function () {
        state.draft = {};
        state.form = state.form === action ? null : action;
        drawEvent();
      });
      bar.appendChild(button);
    });
    return bar;
  }

  function historyList(history) {
    var list = wg.el("ol", null, { "class": "wg-history" });
    history.forEach(function (h) {
      var line = [when(h.at) + " " + (HISTORY_LABELS[h.action] || h.action_label || h.action)];
      if (h.from && h.from !== h.status) line[0] += "：" + (cfg.statusLabels[h.from] || h.from) + " → " + (cfg.statusLabels[h.status] || h.status);
      line[0] += "（版本 " + h.version + "）";
      var rows = [line];
      if (h.actor) rows.push(h.actor);
      if (h.note) rows.push(h.note);
      var details = Object.keys(h.details || {}).filter(function (k) { return DETAIL_LABELS[k] && h.details[k] !== null; })
        .map(function (k) { return DETAIL_LABELS[k] + " " + detailValue(k, h.details[k]); });
      if (details.length) rows.push(details.join("，"));
      list.appendChild(wg.lines("li", rows));
    });
    return list;
  }

  function detailValue(key, value) {
    if (key === "unit") return unitName(value);
    if (key === "tier" || key === "from_tier") return TIERS[value] || value;
    if (typeof value === "boolean") return value ? "是" : "否";
    if (/^\d{4}-\d\d-\d\dT/.test(String(value))) return when(value);
    return String(value);
  }

  // ---- action forms ---------------------------------------------------------------------------
  function field(label, control) {
    return wg.append(wg.el("label"), [wg.el("span", label), control]);
  }

  function select_(name, options, chosen) {
    var control = wg.el("select", null, { name: name });
    options.forEach(function (option) {
      var node = wg.el("option", option[1], { value: option[0] });
      if (String(option[0]) === String(chosen)) node.selected = true;
      control.appendChild(node);
    });
    return control;
  }

  // The unit the dispatch rules propose for this event, when the API says (GET /events/{id}).
  function proposedUnit(e) {
    return (e.proposal && e.proposal.unit_code) || null;
  }

  function defaultTier(category) {
    var known = state.categories[category];
    return (known && known.default_tier) || 3;
  }

  var BUILDERS = {
    category: function (e) {
      var options = state.categoryList.map(function (c) {
        return [c.code, c.code + " " + c.name + (c.kind === "component" ? "（部件）" : "（事件）")];
      });
      return field("类别", select_("category_code", options, e.category_code || (options[0] || [""])[0]));
    },
    tier: function (e) {
      var proposed = defaultTier(e.category_code);
      var options = [3, 2, 1].map(function (t) { return [t, TIERS[t] + (t === proposed ? "（建议）" : "")]; });
      return field("层级", select_("tier", options, e.tier || proposed));
    },
    escalate_tier: function (e) {
      var current = e.tier || 3;
      var options = [2, 1].filter(function (t) { return t < current; }).map(function (t) { return [t, TIERS[t]]; });
      return field("升级到", select_("tier", options, current - 1));
    },
    unit: function (e) {
      var proposed = proposedUnit(e);
      var options = [["", "按规则推荐（由系统选择）"]].concat(state.unitList.map(function (u) {
        return [u.code, u.name + " · " + (TIERS[u.tier] || "") + (u.code === proposed ? "（规则推荐）" : "")];
      }));
      return field("处置单位", select_("unit", options, proposed || ""));
    },
    assignee: function (e) {
      var options = [["", "按规则（所在网格的专职网格员）"]].concat((e.staff || []).map(function (person) {
        return [person.id, person.name + " · " + (person.role_label || person.role || "")];
      }));
      var proposed = e.proposal && e.proposal.assignee;
      return field("处置人员", select_("assignee", options, proposed || ""));
    },
    satisfaction: function () {
      return field("满意度", select_("satisfaction", [[5, "5 非常满意"], [4, "4 满意"], [3, "3 一般"], [2, "2 不满意"], [1, "1 非常不满意"]], 5));
    },
    target: function (e) {
      var candidates = e.duplicate_candidates || [];
      var input = wg.el("input", null, { name: "target", type: "number", min: "1", required: "required" });
      if (candidates.length) input.value = candidates[0];
      var holder = wg.append(wg.el("span"), [input]);
      candidates.forEach(function (id) {
        var pick = wg.el("button", "#" + id, { type: "button" });
        pick.addEventListener("click", function () { input.value = id; });
        holder.appendChild(pick);
      });
      return field(candidates.length ? "合并到原事件（候选）" : "合并到原事件编号", holder);
    },
    note: function (e, required, label) {
      var attributes = { name: "note", maxlength: "4000" };
      if (required) attributes.required = "required";
      return field(label + (required ? "（必填）" : ""), wg.el("textarea", null, attributes));
    },
    deadline: function (e, required, label) {
      var attributes = { name: "deadline", type: "datetime-local" };
      if (required) attributes.required = "required";
      return field(label + "（北京时间）", wg.el("input", null, attributes));
    },
  };

  function openForm(action) {
    var e = state.event;
    var form = wg.el("form", null, { "class": "wg-form", id: "wg-form", "data-action": action });
    form.appendChild(wg.el("b", cfg.actionLabels[action] || action));
    if (action === "approve_postpone" || action === "deny_postpone") {
      form.appendChild(wg.el("p", "申请延期至 " + when(e.postponement_requested_until) + "，现处置期限 " + when(e.due_at)));
    }
    (FORMS[action] || [["note", false, "备注"]]).forEach(function (spec) {
      form.appendChild(BUILDERS[spec[0]](e, spec[1], spec[2]));
    });
    // A refused attempt keeps what was typed (the form is rebuilt for the event's new version).
    Object.keys(state.draft).forEach(function (name) {
      if (form.elements[name] && state.draft[name] !== "") form.elements[name].value = state.draft[name];
    });
    if (form.elements.category_code && form.elements.tier) {
      form.elements.category_code.addEventListener("change", function () {
        form.elements.tier.value = String(defaultTier(form.elements.category_code.value));
      });
    }
    form.appendChild(wg.el("button", "提交「" + (cfg.actionLabels[action] || action) + "」", { type: "submit" }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit(action, form);
    });
    $("wg-form-holder").appendChild(form);
  }

  var NUMBERS = ["tier", "assignee", "target", "satisfaction"];

  function submit(action, form) {
    if (state.busy) return;
    var e = state.event;
    var body = { action: action, version: e.version };
    state.draft = {};
    Array.prototype.forEach.call(form.elements, function (control) {
      if (!control.name) return;
      var value = control.value.trim();
      state.draft[control.name] = control.value;
      if (!value) return;
      if (control.name === "deadline") body.deadline = localInputToIso(value);
      else if (NUMBERS.indexOf(control.name) >= 0) body[control.name] = Number(value);
      else body[control.name] = value;
    });
    state.busy = true;
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = true; });
    say("提交中…", "");
    var label = cfg.actionLabels[action] || action;
    return wg.api("POST", "/events/" + encodeURIComponent(e.id) + "/transitions", body).then(function (r) {
      if (r.ok) {
        say("已" + label + "：事件现为「" + (cfg.statusLabels[r.body.status] || r.body.status) + "」（版本 " + r.body.version + "）", "good");
        state.form = null;
        state.draft = {};
      } else {
        say(errorText(r) + "。已重新读取事件，请核对后再操作。", "bad");
      }
    }, function (error) {
      say("网络错误，未能提交：" + error.message, "bad");
    }).then(function () {
      state.busy = false;
      return Promise.all([loadEvent(), loadList()]);
    });
  }

  // ---- filters, first load, refresh -----------------------------------------------------------
  ["wg-f-state", "wg-f-warning", "wg-f-unit", "wg-f-category"].forEach(function (id) {
    $(id).addEventListener("change", function () { loadList().catch(showError); });
  });

  function showError(error) { say("读取失败：" + error.message, "bad"); }

  function stamp() {
    $("wg-updated").textContent = "列表更新于 " + timeFormat.format(new Date()) + "（每 " + cfg.refreshSeconds + " 秒自动刷新）";
  }

  function refresh() {
    if (document.hidden || state.busy) return Promise.resolve();
    var jobs = [loadList()];
    if (state.selected && !state.form && !state.fix) jobs.push(loadEvent());  // an open form is not pulled away
    return Promise.all(jobs).then(stamp).catch(showError);
  }

  window.wgDispatch = { map: map, state: state, select: select, loadList: loadList, refresh: refresh };

  Promise.all([
    get("/units").then(function (units) {
      state.unitList = units;
      units.forEach(function (u) {
        state.units[u.code] = u;
        $("wg-f-unit").appendChild(wg.el("option", u.name, { value: u.code }));
      });
    }),
    get("/categories").then(function (categories) {
      state.categoryList = categories;
      categories.forEach(function (c) {
        state.categories[c.code] = c;
        $("wg-f-category").appendChild(wg.el("option", c.code + " " + c.name, { value: c.code }));
      });
    }),
    get("/grids?" + query({ level: "community", limit: 5000, out_crs: cfg.outCrs })).then(function (collection) {
      areas.addData(collection);
      if (areas.getLayers().length) map.fitBounds(areas.getBounds());
    }),
  ]).then(loadList).then(function () {
    stamp();
    var wanted = Number(new URLSearchParams(window.location.search).get("event"));
    return wanted > 0 ? select(wanted) : null;
  }).catch(showError).then(function () {
    document.body.dataset.ready = "1";
    state.timer = setInterval(refresh, cfg.refreshSeconds * 1000);
  });
})();
