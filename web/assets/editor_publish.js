/* wangge draft editor, publishing: the check summary of the current version, warnings
   acknowledged, the API's message for every refusal, and — when another draft went live
   meanwhile and both changed the same grids — the per-grid rebase conflicts, each with a choice,
   sent to POST /drafts/{id}/rebase. Text only (textContent). */
(function () {
  "use strict";
  var wg = window.wangge;
  var ed = window.wgEditor;
  var cfg = ed.cfg, state = ed.state, option = ed.option;
  var $ = function (id) { return document.getElementById(id); };
  var renderedFor = null;  // the draft version whose check the summary shows

  // ---- publish -----------------------------------------------------------------------------
  // The kinds that were found, in Chinese, errors first.
  function byKind(summary) {
    var list = wg.el("ul", null, { "class": "wg-by-kind" });
    var kinds = Object.keys(summary.by_kind || {}).filter(function (k) { return summary.by_kind[k]; });
    var warning = function (k) { return cfg.warningKinds.indexOf(k) >= 0; };
    kinds.sort(function (x, y) { return warning(x) - warning(y); });
    kinds.forEach(function (kind) {
      var label = (cfg.findingLabels[kind] || kind) + "：" + summary.by_kind[kind] + (warning(kind) ? "（提示）" : "（错误）");
      list.appendChild(wg.el("li", label, warning(kind) ? {} : { "class": "wg-bad" }));
    });
    return list;
  }

  function renderSummary(report) {
    var box = $("wg-publish-summary"), s = report.summary;
    box.textContent = "";
    wg.append(box, [
      "覆盖检查（版本 " + state.checkedVersion + "）：错误 ", wg.el("b", s.errors), "，提示 ", wg.el("b", s.warnings),
      byKind(s),
    ]);
    if (s.errors) box.appendChild(wg.el("p", "有错误，不能发布：请先修正（查看报告）。", { "class": "wg-bad" }));
    $("wg-publish-ack-row").hidden = !s.warnings;
    // A second answer for the same version (two checks in flight) keeps the planner's tick.
    if (renderedFor !== state.checkedVersion) $("wg-publish-ack").checked = false;
    renderedFor = state.checkedVersion;
    $("wg-publish-ack-text").textContent = "我已查看 " + s.warnings + " 个提示，仍然发布";
    $("wg-publish-go").disabled = Boolean(s.errors);
  }

  function openPublish() {
    renderedFor = null;  // a newly opened form starts unticked
    $("wg-publish-result").textContent = "";
    $("wg-publish-go").disabled = true;
    $("wg-publish-summary").textContent = "覆盖检查中…";
    var fresh = state.check && state.checkedVersion === state.version;
    if (fresh) renderSummary(state.check);
    else ed.runCheck();  // its answer renders the summary (wg:checked)
  }

  var ACTIONS = {
    split: "分割", merge: "合并", recode: "改编码", "delete": "删除", create: "新建", reshape: "改边界",
    reparent: "改上级", update: "改属性", vertices: "改顶点",
  };
  var CONFLICTS = { both_changed: "双方都修改了", parent_removed: "上级已被删除", overlap: "边界重叠" };

  function side(label, change) {
    if (!change) return label + "：无";
    var area = change.area_m2 === null || change.area_m2 === undefined ? "已不存在" : Math.round(change.area_m2) + " m²";
    return label + "：" + (ACTIONS[change.action] || change.action || "未改") + "（" + (change.name || "") + "，" + area + "）";
  }

  // A refused publish: its message, and — when another draft was published meanwhile and both
  // changed the same grids — the per-grid conflicts, each with a choice, and a rebase button.
  // Returns a promise when it reloads the draft (the caller waits for it before the next request).
  function refused(result, fallback) {
    var box = $("wg-publish-result"), error = (result.body && result.body.error) || {};
    box.textContent = "";
    box.appendChild(wg.el("p", ed.problem(result, fallback), { "class": "wg-bad" }));
    if (error.code === "stale_draft") return ed.reloadDraft();
    if (error.code !== "rebase_conflicts") return null;
    var conflicts = error.details || [];
    var list = wg.el("ol", null, { "class": "wg-conflicts", id: "wg-conflicts" });
    conflicts.forEach(function (c) {
      var choice = wg.el("select", null, { "data-conflict": c.code, "aria-label": "如何解决 " + c.code });
      option(choice, "draft", "保留草稿的修改");
      option(choice, "active", "采用现行版本");
      if (c.resolution) choice.value = c.resolution;
      list.appendChild(wg.append(wg.el("li"), [
        wg.el("b", c.code), " " + (c.name || "") + "：" + (CONFLICTS[c.kind] || c.kind), wg.el("br"),
        side("草稿", c.draft), "；", side("现行" + (c.other_code && c.other_code !== c.code ? " " + c.other_code : ""), c.active),
        wg.el("br"), choice,
      ]));
    });
    var go = wg.el("button", "按所选解决冲突并变基", { type: "button", id: "wg-rebase-go", "class": "wg-primary" });
    go.addEventListener("click", function () { rebase(list); });
    var all = wg.el("div", null, { "class": "wg-row" });
    [["draft", "全部保留草稿"], ["active", "全部采用现行"]].forEach(function (pair) {
      var button = wg.el("button", pair[1], { type: "button", "data-all": pair[0] });
      button.addEventListener("click", function () {
        Array.prototype.forEach.call(list.querySelectorAll("select"), function (select) { select.value = pair[0]; });
      });
      all.appendChild(button);
    });
    wg.append(box, [wg.el("p", "与现行版本冲突的网格 " + conflicts.length + " 个："), all, list, go]);
    return null;
  }

  function rebase(list) {
    var resolutions = {};
    Array.prototype.forEach.call(list.querySelectorAll("select[data-conflict]"), function (select) {
      resolutions[select.dataset.conflict] = select.value;
    });
    // One rebase at a time: a second tap while it runs is refused (the fieldset is disabled).
    return ed.exclusive(function () {
      ed.say("变基中…");
      return ed.api("POST", "/drafts/" + cfg.draft + "/rebase", { version: state.version, resolutions: resolutions })
        .then(function (r) {
          if (!r.ok) {
            var message = r.network ? "网络错误：未变基，请重试" : ed.problem(r, "变基失败");
            ed.say(message, true);
            if (r.network) return null;  // the conflict list stays for another try
            return refused(r, "变基失败");
          }
          ed.setVersion(r.body.version);
          $("wg-base").textContent = r.body.base_generation;
          var done = "已变基到第 " + r.body.base_generation + " 版（解决冲突 " + (r.body.resolved || []).length + " 个），请确认后发布";
          $("wg-publish-result").textContent = "";
          return ed.load().then(ed.runCheck).then(function () { ed.say(done); });
        });
    });
  }

  $("wg-publish-go").addEventListener("click", function () {
    var report = state.check;
    if (!report || state.checkedVersion !== state.version) { openPublish(); return; }
    if (report.summary.warnings && !$("wg-publish-ack").checked) {
      ed.say("请先勾选“已查看提示”", true);
      return;
    }
    ed.exclusive(function () {
      ed.say("发布中…");
      return ed.api("POST", "/drafts/" + cfg.draft + "/publish",
                    { version: state.version, acknowledge_warnings: $("wg-publish-ack").checked })
        .then(function (r) {
        if (r.network) {
          ed.say("网络错误：未发布，请重试", true);
          $("wg-publish-result").textContent = "";
          $("wg-publish-result").appendChild(wg.el("p", "网络错误：未发布，请重试", { "class": "wg-bad" }));
          return null;
        }
        if (r.ok) {
          ed.setEditable(false);
          var rebased = r.body.rebase && r.body.rebase.rebased ? "（已先变基到第 " + r.body.rebase.base_generation + " 版）" : "";
          ed.say("已发布为第 " + r.body.generation + " 版" + rebased + "，" + r.body.events_reassigned + " 个事件已改派");
          var box = $("wg-publish-result");
          box.textContent = "";
          wg.append(box, [wg.el("p", "已发布。"), wg.el("a", "打开网格总览", { href: "/map/street" })]);
          $("wg-publish-go").disabled = true;
          return null;
        }
        ed.say(ed.problem(r, "发布失败"), true);
        return refused(r, "发布失败");
      });
    });
  });

  // A fresh check (after any edit, undo or 检查) refreshes the publish summary when it is open.
  document.addEventListener("wg:checked", function (event) {
    if (state.tool === "publish") renderSummary(event.detail);
  });
  // A check that failed (network, refusal) says so in the publish form rather than "检查中…".
  document.addEventListener("wg:check-failed", function (event) {
    if (state.tool !== "publish") return;
    $("wg-publish-summary").textContent = "覆盖检查未完成：" + ed.problem(event.detail) + "。点“✔ 检查”重试。";
    $("wg-publish-go").disabled = true;
  });

  ed.openers.publish = openPublish;
})();
