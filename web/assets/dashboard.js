/* 一屏全览 (/map/dashboard): communities or grids shaded by a chosen KPI, open events by state
   (overdue ringed red, yellow-warned ringed yellow, 督办 marked), state counts, the queue of
   events waiting to be accepted or dispatched, and trend and ranking charts (Apache ECharts).
   Everything is fetched from the API and refetched every cfg.refreshSeconds, without a reload.
   Text reaches the DOM with textContent; the charts draw on a canvas and their tooltips render
   as rich text (renderMode "richText"), never as HTML built from data. */
(function () {
  "use strict";
  var wg = window.wangge;
  var cfg = wg.page();
  var map = window[cfg.map];
  var $ = function (id) { return document.getElementById(id); };

  var KPIS = [
    { key: "closure_rate", label: "结案率", kind: "rate", good: "high" },
    { key: "on_time_rate", label: "按期结案率", kind: "rate", good: "high" },
    { key: "response_rate", label: "响应率", kind: "rate", good: "high" },
    { key: "rework_rate", label: "返工率", kind: "rate", good: "low" },
    { key: "overdue_now", label: "逾期数", kind: "count", good: "low" },
    { key: "satisfaction", label: "满意度", kind: "score", good: "high" },
    { key: "received", label: "受理数", kind: "count", good: null },
    { key: "supervised", label: "督办数", kind: "count", good: "low" },
    { key: "mean_handling_hours", label: "平均处置时长", kind: "hours", good: "low" },
  ];
  var KPI = {};
  KPIS.forEach(function (k) { KPI[k.key] = k; });
  // Bad → good (ColorBrewer RdYlGn); a KPI with no better direction is shaded in blues.
  var RED_TO_GREEN = ["#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850"];
  var BLUES = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"];
  var NO_DATA = "#cbd5e0";
  var WARNING_RING = { red: "#e53e3e", yellow: "#ecc94b" };
  var WARNING_LABEL = { red: "红色预警（已逾期）", yellow: "黄色预警" };
  var SUPERVISED_RING = "#6b46c1";
  var QUEUE_SHOWN = 40;

  var state = {
    kpi: "on_time_rate", level: "community", rankGroup: "community", periodChoice: "30",
    interval: "auto", outlines: {}, kpis: {}, events: [], counts: {}, categories: {},
    fitted: false, refreshes: 0, timer: null,
  };

  // ---- formatting ----------------------------------------------------------------------------
  var zone = cfg.timeZone;
  var dayFormat = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" });
  var timeFormat = new Intl.DateTimeFormat("zh-CN", {
    timeZone: zone, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
  });
  var clockFormat = new Intl.DateTimeFormat("zh-CN", {
    timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function formatValue(kpi, value) {
    if (value === null || value === undefined) return "无数据";
    if (kpi.kind === "rate") return (value * 100).toFixed(1) + "%";
    if (kpi.kind === "score") return value.toFixed(2) + " 分";
    if (kpi.kind === "hours") return value.toFixed(1) + " 工时";
    return String(value);
  }

  function when(iso) { return iso ? timeFormat.format(new Date(iso)) : "—"; }

  // A deadline as "剩 3.5 小时" / "超 2 天" from now (wall-clock time, for the queue only).
  function remaining(iso) {
    if (!iso) return "";
    var hours = (new Date(iso).getTime() - Date.now()) / 3600000;
    var amount = Math.abs(hours) >= 48 ? Math.round(Math.abs(hours) / 24) + " 天" : Math.abs(hours).toFixed(1) + " 小时";
    return (hours >= 0 ? "剩 " : "超 ") + amount;
  }

  // ---- periods (local days where the street is, like the API) ---------------------------------
  function localToday() {
    var parts = dayFormat.format(new Date()).split("-").map(Number);
    return new Date(Date.UTC(parts[0], parts[1] - 1, parts[2]));
  }
  function ymd(day) { return day.toISOString().slice(0, 10); }

  function period() {
    var end = localToday();
    var y = end.getUTCFullYear(), m = end.getUTCMonth();
    var start;
    if (state.periodChoice === "month") start = new Date(Date.UTC(y, m, 1));
    else if (state.periodChoice === "quarter") start = new Date(Date.UTC(y, m - (m % 3), 1));
    else if (state.periodChoice === "year") start = new Date(Date.UTC(y, 0, 1));
    else start = new Date(end.getTime() - (Number(state.periodChoice) - 1) * 86400000);
    var days = Math.round((end - start) / 86400000) + 1;
    return { from: ymd(start), to: ymd(end), days: days };
  }

  function interval(days) {
    if (state.interval !== "auto") return state.interval;
    return days <= 45 ? "day" : days <= 190 ? "week" : "month";
  }

  function query(params) {
    return Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
    }).join("&");
  }

  function get(path) {
    return wg.api("GET", path).then(function (r) {
      if (!r.ok) throw new Error((r.body.error && r.body.error.message) || ("HTTP " + r.status));
      return r.body;
    });
  }

  // ---- the map: shaded areas below, events above (each in its own pane and canvas) -------------
  map.createPane("wgAreas").style.zIndex = 350;
  map.createPane("wgEvents").style.zIndex = 450;
  var areaRenderer = L.canvas({ pane: "wgAreas" });
  var eventRenderer = L.canvas({ pane: "wgEvents" });

  function classes(values, kpi) {
    var sorted = values.filter(function (v) { return v !== null && v !== undefined; })
      .sort(function (a, b) { return a - b; });
    var breaks = [];
    for (var i = 1; i < 5 && sorted.length; i++) {
      var value = sorted[Math.min(sorted.length - 1, Math.ceil((i * sorted.length) / 5) - 1)];
      if (breaks.indexOf(value) < 0) breaks.push(value);
    }
    if (sorted.length && breaks[breaks.length - 1] === sorted[sorted.length - 1]) breaks.pop();
    var palette = kpi.good === null ? BLUES : kpi.good === "high" ? RED_TO_GREEN : RED_TO_GREEN.slice().reverse();
    var count = breaks.length + 1;
    var colours = [];
    for (var c = 0; c < count; c++) {
      colours.push(palette[count === 1 ? 2 : Math.round((c * (palette.length - 1)) / (count - 1))]);
    }
    return {
      breaks: breaks, colours: colours, min: sorted[0], max: sorted[sorted.length - 1],
      colour: function (v) {
        if (v === null || v === undefined) return NO_DATA;
        for (var j = 0; j < breaks.length; j++) if (v <= breaks[j]) return colours[j];
        return colours[colours.length - 1];
      },
    };
  }

  var scale = null;
  var areas = L.geoJSON(null, {
    renderer: areaRenderer,
    style: function (feature) {
      var row = state.kpis[state.level] && state.kpis[state.level].byKey[feature.properties.code];
      var value = row ? row[state.kpi] : null;
      return { color: "#2d3748", weight: state.level === "community" ? 2 : 1, fillOpacity: 0.6,
               fillColor: scale ? scale.colour(value) : NO_DATA };
    },
    onEachFeature: function (feature, layer) {
      layer.bindTooltip(function () { return areaTooltip(feature.properties); }, { sticky: true });
    },
  }).addTo(map);

  function areaTooltip(properties) {
    var report = state.kpis[state.level];
    var row = (report && report.byKey[properties.code]) || {};
    var kpi = KPI[state.kpi];
    var rows = [
      ["名称", properties.name], ["编码", properties.code],
      [kpi.label, formatValue(kpi, row[kpi.key])],
      ["受理数", row.received === undefined ? "—" : row.received],
      ["结案数", row.closed === undefined ? "—" : row.closed],
      ["逾期数", row.overdue_now === undefined ? "—" : row.overdue_now],
    ];
    var body = wg.el("tbody");
    rows.forEach(function (pair) { body.appendChild(wg.append(wg.el("tr"), [wg.el("th", pair[0]), wg.el("td", pair[1])])); });
    return wg.append(wg.el("table", null, { "class": "wg-tooltip" }), [body]);
  }

  var supervisedRings = L.layerGroup().addTo(map);
  var events = L.geoJSON(null, {
    pointToLayer: function (feature, latlng) {
      var p = feature.properties;
      if (p.supervised) {
        L.circleMarker(latlng, { renderer: eventRenderer, radius: 12, color: SUPERVISED_RING, weight: 2,
                                 dashArray: "4 3", fill: false, interactive: false }).addTo(supervisedRings);
      }
      var ring = WARNING_RING[p.warning];
      return L.circleMarker(latlng, {
        renderer: eventRenderer, radius: 7, color: ring || "#ffffff", weight: ring ? 3 : 1,
        fillColor: cfg.statusColours[p.status] || "#718096", fillOpacity: 0.95,
      });
    },
    onEachFeature: function (feature, layer) {
      var p = feature.properties;
      layer.bindTooltip(function () { return wg.lines("div", eventLines(p)); });
      layer.bindPopup(function () {
        var lines = eventLines(p);
        lines.push(wg.el("a", "在调度台处理", { href: "/map/dispatch?event=" + encodeURIComponent(p.id) }));
        return wg.lines("div", lines);
      });
    },
  }).addTo(map);

  function categoryName(code) { return state.categories[code] || code || "未分类"; }

  function eventLines(p) {
    var lines = ["#" + p.id + " " + categoryName(p.category_code) + " · " + (p.status_label || cfg.statusLabels[p.status] || p.status)];
    if (p.warning) lines.push(WARNING_LABEL[p.warning]);
    if (p.supervised) lines.push("督办 " + p.supervised + " 次");
    if (p.postponement_requested) lines.push("申请延期，待审批");
    var deadline = p.status === "reported" ? p.accept_due_at : p.due_at;
    if (deadline) lines.push((p.status === "reported" ? "立案期限 " : "处置期限 ") + when(deadline));
    if (p.description) lines.push(p.description);
    return lines;
  }

  function outlines(level) {
    if (state.outlines[level]) return Promise.resolve(state.outlines[level]);
    return get("/grids?" + query({ level: level, limit: 5000, out_crs: cfg.outCrs })).then(function (collection) {
      state.outlines[level] = collection;
      return collection;
    });
  }

  function drawAreas() {
    return outlines(state.level).then(function (collection) {
      var report = state.kpis[state.level];
      var kpi = KPI[state.kpi];
      scale = classes(report ? report.rows.map(function (r) { return r[kpi.key]; }) : [], kpi);
      areas.clearLayers();
      areas.addData(collection);
      if (!state.fitted && areas.getLayers().length) {
        map.fitBounds(areas.getBounds());
        state.fitted = true;
      }
      drawLegend();
    });
  }

  function legendRow(swatch, label) {
    return wg.append(wg.el("div"), [swatch, label]);
  }

  function drawLegend() {
    var legend = $("wg-legend");
    var kpi = KPI[state.kpi];
    legend.textContent = "";
    legend.appendChild(wg.el("b", kpi.label + "（" + $("wg-period").selectedOptions[0].textContent + "）"));
    if (scale && scale.min !== undefined) {
      var breaks = scale.breaks, last = scale.colours.length - 1;
      scale.colours.forEach(function (colour, i) {
        var label = last === 0 ? formatValue(kpi, scale.min) + " – " + formatValue(kpi, scale.max)
          : i === 0 ? "≤ " + formatValue(kpi, breaks[0])
          : i === last ? "> " + formatValue(kpi, breaks[last - 1])
          : formatValue(kpi, breaks[i - 1]) + " – " + formatValue(kpi, breaks[i]);
        var swatch = wg.el("i");
        swatch.style.background = colour;
        legend.appendChild(legendRow(swatch, label));
      });
    }
    var none = wg.el("i");
    none.style.background = NO_DATA;
    legend.appendChild(legendRow(none, "无数据"));
    [[WARNING_RING.red, "红圈：已逾期"], [WARNING_RING.yellow, "黄圈：黄色预警"], [SUPERVISED_RING, "紫色虚线圈：督办"]]
      .forEach(function (pair) {
        var ring = wg.el("i", null, { "class": "wg-ring" });
        ring.style.border = "3px " + (pair[1].indexOf("督办") >= 0 ? "dashed " : "solid ") + pair[0];
        legend.appendChild(legendRow(ring, pair[1]));
      });
  }

  // ---- open events: counts, queue, markers -----------------------------------------------------
  // Only the properties this page reads (id comes anyway; status names are in cfg.statusLabels):
  // a district's open events are tens of thousands, and each unread property is bytes on the wire.
  var EVENT_FIELDS = ["category_code", "description", "status", "warning", "supervised",
                      "postponement_requested", "accept_due_at", "due_at"].join(",");

  function allOpenEvents() {
    var collected = [];
    function page(offset) {
      return get("/events?" + query({ status: "open", with_unplaced: "true", limit: 5000, offset: offset,
                                      out_crs: cfg.outCrs, fields: EVENT_FIELDS }))
        .then(function (collection) {
          collected = collected.concat(collection.features);
          if (collection.hasMore && collection.numberReturned) return page(offset + collection.numberReturned);
          return collected;
        });
    }
    return page(0);
  }

  var COUNTS = [
    { key: "open", label: "在办", test: function () { return true; } },
    { key: "reported", label: "待立案", states: ["reported"] },
    { key: "to_dispatch", label: "待派遣", states: ["accepted", "returned"] },
    { key: "dispatched", label: "已派遣", states: ["dispatched"] },
    { key: "processing", label: "处置中", states: ["processing"] },
    { key: "handled", label: "待核查", states: ["handled"] },
    { key: "red", label: "红色预警", tone: "wg-red", test: function (p) { return p.warning === "red"; } },
    { key: "yellow", label: "黄色预警", tone: "wg-yellow", test: function (p) { return p.warning === "yellow"; } },
    { key: "supervised", label: "督办中", tone: "wg-purple", test: function (p) { return p.supervised > 0; } },
    { key: "postpone", label: "待审批延期", test: function (p) { return Boolean(p.postponement_requested); } },
  ];

  function drawCounts() {
    var holder = $("wg-counts");
    holder.textContent = "";
    COUNTS.forEach(function (c) {
      var n = state.events.filter(function (f) {
        var p = f.properties;
        return c.states ? c.states.indexOf(p.status) >= 0 : c.test(p);
      }).length;
      state.counts[c.key] = n;
      var chip = wg.append(wg.el("span", null, { "class": "wg-count " + (c.tone || ""), "data-key": c.key }),
                           [c.label, wg.el("b", n)]);
      if (c.states) chip.style.borderLeftColor = cfg.statusColours[c.states[0]];
      holder.appendChild(chip);
    });
  }

  function deadlineOf(p) { return p.status === "reported" ? p.accept_due_at : p.due_at; }

  function drawQueue(listId, countId, states) {
    var items = state.events.map(function (f) { return f.properties; })
      .filter(function (p) { return states.indexOf(p.status) >= 0; })
      .sort(function (a, b) {
        var da = deadlineOf(a), db = deadlineOf(b);
        if (da && db) return new Date(da) - new Date(db);
        return da ? -1 : db ? 1 : a.id - b.id;
      });
    $(countId).textContent = "（" + items.length + " 件）";
    var list = $(listId);
    list.textContent = "";
    items.slice(0, QUEUE_SHOWN).forEach(function (p) {
      var first = wg.append(wg.el("div"), ["#" + p.id + " " + categoryName(p.category_code)]);
      if (p.status === "returned") first.appendChild(wg.el("span", "已退回", { "class": "wg-badge wg-blue" }));
      if (p.warning) first.appendChild(wg.el("span", p.warning === "red" ? "逾期" : "预警", { "class": "wg-badge wg-" + p.warning }));
      if (p.supervised) first.appendChild(wg.el("span", "督办", { "class": "wg-badge wg-purple" }));
      var deadline = deadlineOf(p);
      var second = wg.el("div", (deadline ? "期限 " + when(deadline) + "（" + remaining(deadline) + "）" : "无期限") +
                         (p.description ? " · " + p.description : ""), { "class": "wg-line2" });
      var link = wg.append(wg.el("a", null, { href: "/map/dispatch?event=" + encodeURIComponent(p.id), "data-event": p.id }), [first, second]);
      list.appendChild(wg.append(wg.el("li"), [link]));
    });
    if (items.length > QUEUE_SHOWN) {
      list.appendChild(wg.el("li", "另有 " + (items.length - QUEUE_SHOWN) + " 件，见调度台", { "class": "wg-muted" }));
    }
    if (!items.length) list.appendChild(wg.el("li", "无", { "class": "wg-muted" }));
  }

  function drawEvents() {
    supervisedRings.clearLayers();
    events.clearLayers();
    events.addData({ type: "FeatureCollection", features: state.events });
    drawCounts();
    drawQueue("wg-queue-accept", "wg-queue-accept-count", ["reported"]);
    drawQueue("wg-queue-dispatch", "wg-queue-dispatch-count", ["accepted", "returned"]);
  }

  // ---- charts ---------------------------------------------------------------------------------
  var trendChart = echarts.init($("wg-trend"), null, { renderer: "canvas" });
  var rankChart = echarts.init($("wg-rank"), null, { renderer: "canvas" });
  window.addEventListener("resize", function () { trendChart.resize(); rankChart.resize(); });
  var TOOLTIP = { trigger: "axis", renderMode: "richText", confine: true };

  // Every period from `from` to `to`, as the API names them (date_trunc: a week starts on Monday).
  function periodStarts(from, to, unit) {
    var day = new Date(from + "T00:00:00Z"), end = new Date(to + "T00:00:00Z"), starts = [];
    if (unit === "week") day = new Date(day.getTime() - ((day.getUTCDay() + 6) % 7) * 86400000);
    if (unit === "month") day = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), 1));
    while (day <= end) {
      starts.push(ymd(day));
      day = unit === "month" ? new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth() + 1, 1))
                             : new Date(day.getTime() + (unit === "week" ? 7 : 1) * 86400000);
    }
    return starts;
  }

  function drawTrend(trend) {
    // The API lists the periods that have figures; the chart shows the quiet ones as zeros.
    var known = {};
    trend.rows.forEach(function (row) { known[row.period] = row; });
    var rows = periodStarts(trend.from, trend.to, trend.interval).map(function (start) {
      return known[start] || { period: start, received: 0, closed: 0, closed_on_time: 0, overdue: 0 };
    });
    var pick = function (key) { return rows.map(function (r) { return r[key]; }); };
    trendChart.setOption({
      animation: false,
      tooltip: TOOLTIP,
      legend: { top: 0 },
      grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: pick("period").map(function (d) { return d.slice(5); }) },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: "受理", type: "bar", data: pick("received"), itemStyle: { color: "#3182ce" } },
        { name: "结案", type: "bar", data: pick("closed"), itemStyle: { color: "#38a169" } },
        { name: "按期结案", type: "line", data: pick("closed_on_time"), itemStyle: { color: "#2f855a" } },
        { name: "逾期", type: "line", data: pick("overdue"), itemStyle: { color: "#e53e3e" } },
      ],
    }, true);
  }

  function drawRank() {
    var report = state.kpis["rank:" + state.rankGroup];
    var kpi = KPI[state.kpi];
    var rows = (report ? report.rows : []).filter(function (r) { return r[kpi.key] !== null && r[kpi.key] !== undefined; });
    rows.sort(function (a, b) { return kpi.good === "low" ? a[kpi.key] - b[kpi.key] : b[kpi.key] - a[kpi.key]; });
    rows = rows.slice(0, 15);
    var scaleFactor = kpi.kind === "rate" ? 100 : 1;
    rankChart.setOption({
      animation: false,
      tooltip: { trigger: "axis", renderMode: "richText", confine: true,
                 valueFormatter: function (v) { return formatValue(kpi, v / scaleFactor); } },
      grid: { left: 8, right: 56, top: 8, bottom: 8, containLabel: true },
      xAxis: { type: "value", name: kpi.kind === "rate" ? "%" : "" },
      yAxis: { type: "category", inverse: true, data: rows.map(function (r) { return r.name || r.key; }),
               axisLabel: { width: 130, overflow: "truncate" } },
      series: [{
        name: kpi.label, type: "bar", itemStyle: { color: "#3182ce" },
        data: rows.map(function (r) { return Math.round(r[kpi.key] * scaleFactor * 100) / 100; }),
        label: { show: true, position: "right", formatter: function (item) { return formatValue(kpi, item.value / scaleFactor); } },
      }],
    }, true);
  }

  // ---- loading and refreshing -----------------------------------------------------------------
  function indexed(report) {
    report.byKey = {};
    report.rows.forEach(function (row) { report.byKey[row.key] = row; });
    return report;
  }

  function loadKpis(slot, groupBy, p) {
    return get("/kpis?" + query({ group_by: groupBy, from: p.from, to: p.to })).then(function (report) {
      state.kpis[slot] = indexed(report);
    });
  }

  function updateExport(p) {
    $("wg-export").href = "/api/v1/kpis.xlsx?" + query({ group_by: state.rankGroup, from: p.from, to: p.to });
  }

  // ---- today's patrol coverage (巡查覆盖率) of the street ---------------------------------------
  function percent(figure) {
    return figure && figure.share !== null && figure.share !== undefined
      ? Math.round(figure.share * 1000) / 10 + "%" : "—";
  }

  function loadPatrols() {
    var street = state.street
      ? Promise.resolve(state.street)
      : get("/grids?" + query({ level: "street", limit: 1 })).then(function (collection) {
        var first = collection.features[0];
        state.street = first ? first.properties.code : null;
        return state.street;
      });
    return street.then(function (code) {
      if (!code) return;
      $("wg-patrol-map").href = "/map/patrols?" + query({ grid: code });
      return get("/patrols/coverage?" + query({ grid: code, summary: "true" })).then(function (c) {
        var line = $("wg-patrol");
        line.className = "wg-patrol";
        line.dataset.share = c.micro_grids && c.micro_grids.share !== null ? String(c.micro_grids.share) : "";
        line.textContent = "今日巡查：" + c.workers + " 人 · 微网格 " + percent(c.micro_grids) +
          " · 楼栋 " + percent(c.buildings) + " · 街巷 " + percent(c.streets);
      });
    }).catch(function (error) {
      var line = $("wg-patrol");
      line.className = "wg-patrol wg-muted";
      line.textContent = "今日巡查：暂无法读取（" + error.message + "）";
    });
  }

  function refresh() {
    var p = period();
    updateExport(p);
    var jobs = [
      allOpenEvents().then(function (found) { state.events = found; drawEvents(); }),
      loadKpis(state.level, state.level, p).then(drawAreas),
      loadKpis("rank:" + state.rankGroup, state.rankGroup, p).then(drawRank),
      get("/kpis/trend?" + query({ interval: interval(p.days), from: p.from, to: p.to })).then(drawTrend),
      loadPatrols(),
    ];
    return Promise.all(jobs).then(function () {
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
      var stamp = $("wg-updated");
      stamp.className = "wg-muted";
      stamp.textContent = "更新于 " + clockFormat.format(new Date()) + "（每 " + cfg.refreshSeconds + " 秒自动刷新）";
    }).catch(function (error) {
      var stamp = $("wg-updated");
      stamp.className = "wg-bad";
      stamp.textContent = "刷新失败：" + error.message + "（稍后自动重试）";
    });
  }

  function schedule() {
    clearInterval(state.timer);
    state.timer = setInterval(function () {
      if (!document.hidden) refresh();  // a wall screen in another tab need not poll
    }, cfg.refreshSeconds * 1000);
  }

  KPIS.forEach(function (k) {
    $("wg-kpi").appendChild(wg.el("option", k.label, { value: k.key }));
  });
  $("wg-kpi").value = state.kpi;

  $("wg-kpi").addEventListener("change", function (event) {
    state.kpi = event.target.value;
    drawAreas();
    drawRank();
  });
  $("wg-level").addEventListener("change", function (event) {
    state.level = event.target.value;
    var p = period();
    loadKpis(state.level, state.level, p).then(drawAreas);
  });
  $("wg-rank-group").addEventListener("change", function (event) {
    state.rankGroup = event.target.value;
    var p = period();
    updateExport(p);
    loadKpis("rank:" + state.rankGroup, state.rankGroup, p).then(drawRank);
  });
  $("wg-period").addEventListener("change", function (event) { state.periodChoice = event.target.value; refresh(); });
  $("wg-interval").addEventListener("change", function (event) { state.interval = event.target.value; refresh(); });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  window.wgDashboard = { map: map, state: state, areas: areas, events: events, charts: { trend: trendChart, rank: rankChart },
                         refresh: refresh, period: period };

  get("/categories").then(function (categories) {
    categories.forEach(function (c) { state.categories[c.code] = c.name; });
  }).catch(function () { /* codes are shown instead of names */ }).then(refresh).then(function () {
    document.body.dataset.ready = "1";
    schedule();
  });
})();
