/* Logs: the server renders the kept lines; each "log.record" on the logs channel (live.js) is
 * added at the bottom. Filtering (level, words, request id) hides lines in the page; pausing
 * holds new lines back until Resume; auto-scroll keeps the newest in view. At most data-kept
 * lines stay in the page, the oldest leave first. Export downloads the lines shown, as text. */
(function () {
  "use strict";

  var LEVELS = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };
  var root = document.getElementById("logs");
  if (!root) return;
  var list = document.getElementById("log-lines");
  var level = document.getElementById("logs-level");
  var search = document.getElementById("logs-search");
  var requestId = document.getElementById("logs-request-id");
  var pause = document.getElementById("logs-pause");
  var exportButton = document.getElementById("logs-export");
  var autoscroll = document.getElementById("logs-autoscroll");
  var count = document.getElementById("logs-count");
  var empty = document.getElementById("logs-empty");
  var kept = Number(root.getAttribute("data-kept")) || 500;
  var held = [];
  var paused = false;

  function shows(item) {
    var least = LEVELS[level.value] || 0;
    if ((LEVELS[item.getAttribute("data-level")] || 0) < least) return false;
    var id = requestId.value.trim();
    if (id && (item.getAttribute("data-request-id") || "").indexOf(id) < 0) return false;
    var words = search.value.trim().toLowerCase();
    return !words || item.textContent.toLowerCase().indexOf(words) >= 0;
  }

  function describe() {
    var total = list.children.length;
    var shown = list.querySelectorAll(".log-line:not([hidden])").length;
    var text = total === shown ? total + " lines" : shown + " of " + total + " lines shown";
    if (paused) text += " · paused, " + held.length + " new held back";
    count.textContent = text;
    empty.hidden = total > 0;
  }

  function toBottom() {
    if (autoscroll.checked) list.scrollTop = list.scrollHeight;
  }

  function filter() {
    Array.prototype.forEach.call(list.children, function (item) { item.hidden = !shows(item); });
    describe();
    toBottom();
  }

  function lineOf(data) {
    var item = document.getElementById("log-line-template").content.firstElementChild.cloneNode(true);
    item.setAttribute("data-level", data.level);
    item.setAttribute("data-request-id", data.request_id || "");
    var time = item.querySelector("time");
    time.setAttribute("datetime", data.at);
    time.textContent = new Date(data.at).toISOString().slice(11, 19);
    var pill = item.querySelector(".log-level");
    pill.setAttribute("data-status", String(data.level).toLowerCase());
    pill.textContent = data.level;
    item.querySelector(".log-logger").textContent = data.logger;
    var id = item.querySelector(".log-request-id");
    id.textContent = data.request_id || "";
    id.hidden = !data.request_id || data.request_id === "-";
    item.querySelector(".log-message").textContent = data.message;
    return item;
  }

  function add(items) {
    items.forEach(function (item) {
      item.hidden = !shows(item);
      list.appendChild(item);
    });
    while (list.children.length > kept) list.firstElementChild.remove();
    describe();
    toBottom();
  }

  function setPaused(next) {
    paused = next;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      var waiting = held;
      held = [];
      add(waiting);
    }
    describe();
  }

  OrchestraLive.on("logs", function (message) {
    if (message.event !== "log.record") return;
    var item = lineOf(message.data || {});
    if (paused) {
      held.push(item);
      if (held.length > kept) held.shift();
      describe();
    } else {
      add([item]);
    }
  });

  function exportShown() {
    var text = Array.prototype.filter.call(list.children, function (item) { return !item.hidden; })
      .map(function (item) {
        var id = item.getAttribute("data-request-id");
        return [
          item.querySelector("time").getAttribute("datetime"),
          item.getAttribute("data-level"),
          item.querySelector(".log-logger").textContent,
          id && id !== "-" ? "[" + id + "]" : "",
          item.querySelector(".log-message").textContent,
        ].filter(Boolean).join(" ");
      }).join("\n");
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text + "\n"], { type: "text/plain" }));
    link.download = "orchestra-logs-" + new Date().toISOString().replace(/[:.]/g, "-") + ".log";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  }

  [level, search, requestId].forEach(function (control) {
    control.addEventListener("input", filter);
  });
  pause.addEventListener("click", function () { setPaused(!paused); });
  exportButton.addEventListener("click", exportShown);
  autoscroll.addEventListener("change", toBottom);
  // A line's request id shows every line of that request.
  list.addEventListener("click", function (event) {
    var button = event.target.closest(".log-request-id");
    if (!button) return;
    requestId.value = button.textContent.trim();
    filter();
  });

  filter();
})();
