/* 我的任务: GET /api/v1/me/tasks, soonest deadline first (the API's order), warnings and 督办
   marks, counts at the top; the event pages and answers of my tasks are kept for offline use. */
(function () {
  "use strict";
  var wg = window.wangge;
  var phone = window.wgPhone;
  var COUNTS = [
    ["total", "全部"], ["dispatched", "待接单"], ["processing", "处置中"], ["handled", "待核查"],
    ["returned", "已退回"], ["red", "已逾期"], ["yellow", "将逾期"], ["supervised", "督办"],
  ];
  var TIME = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit",
  });

  function deadline(task) {
    if (!task.due_at) return "无期限";
    var level = task.warning && task.warning.level;
    var text = "期限 " + TIME.format(new Date(task.due_at));
    if (level === "red") return text + "（已逾期）";
    return text;
  }

  function render(answer) {
    var counts = document.getElementById("wg-m-counts");
    counts.textContent = "";
    COUNTS.forEach(function (pair) {
      var box = wg.el("div", null, { "data-key": pair[0], class: "wg-m-" + pair[0] });
      box.appendChild(wg.el("b", String(answer.counts[pair[0]] || 0)));
      box.appendChild(document.createTextNode(pair[1]));
      counts.appendChild(box);
    });
    var list = document.getElementById("wg-m-tasks");
    list.textContent = "";
    answer.tasks.forEach(function (task) {
      var level = task.warning && task.warning.level;
      var link = wg.el("a", null, {
        href: "/m/events/" + task.id, "data-event": String(task.id),
        class: level ? "wg-m-" + level : "",
      });
      var labels = phone.data.categoryNames || {};
      var title = wg.el("div", "#" + task.id + " " + (labels[task.category_code] || task.category_code), {
        class: "wg-m-title",
      });
      link.appendChild(title);
      var tags = wg.el("div");
      tags.appendChild(wg.el("span", task.status_label, { class: "wg-m-tag" }));
      if (level === "red") tags.appendChild(wg.el("span", "红色预警", { class: "wg-m-tag wg-m-red" }));
      if (level === "yellow") tags.appendChild(wg.el("span", "黄色预警", { class: "wg-m-tag wg-m-yellow" }));
      if (task.supervised) {
        tags.appendChild(wg.el("span", "督办 " + task.supervised, { class: "wg-m-tag wg-m-supervised" }));
      }
      if (task.assigned_to_me) tags.appendChild(wg.el("span", "派给我", { class: "wg-m-tag" }));
      link.appendChild(tags);
      link.appendChild(wg.el("div", deadline(task), { class: "wg-m-muted" }));
      if (task.description) link.appendChild(wg.el("div", task.description));
      var item = wg.el("li");
      item.appendChild(link);
      list.appendChild(item);
    });
    document.getElementById("wg-m-empty").hidden = answer.tasks.length > 0;
  }

  function load() {
    var updated = document.getElementById("wg-m-updated");
    updated.textContent = "加载中…";
    return Promise.all([phone.get("/me/tasks"), phone.get("/categories")]).then(function (answers) {
      var tasks = answers[0];
      if (answers[1].ok) {
        var names = {};
        answers[1].body.forEach(function (row) { names[row.code] = row.name; });
        phone.data.categoryNames = names;
      }
      if (!tasks.ok) {
        updated.textContent = phone.errorText(tasks.body, tasks.status);
        return;
      }
      window.wgTasks.answer = tasks.body;
      render(tasks.body);
      updated.textContent = tasks.saved ? "离线：显示上次保存的任务" : "更新于 " + TIME.format(new Date());
      document.body.setAttribute("data-ready", "1");
      // Keep each task's page and answer on the phone, for the basement.
      var urls = [];
      tasks.body.tasks.forEach(function (task) {
        urls.push("/m/events/" + task.id, "/api/v1/events/" + task.id);
      });
      if (!tasks.saved) phone.keep(urls);
    });
  }

  window.wgTasks = { load: load, answer: null };
  document.getElementById("wg-m-refresh").addEventListener("click", load);
  phone.onSynced(function (state) { if (state.sent) load(); });
  load();
})();
