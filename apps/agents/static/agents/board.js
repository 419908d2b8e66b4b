/* The agent board: statuses live from "agents"; "Run a task" posts the form with fetch, gets
 * the task's id and follows its tokens on "agent_task:<id>" from the task's creation on
 * (OrchestraLive.on subscribes with a {"type": "subscribe", "since": ...} message, again after
 * each reconnection, so no token is missed); a page opened on a running task gets its tokens
 * from its start (data-live-since, rendered by the server); when the task ends its
 * panel is fetched again, rendered by the server. A card is fetched again when its agent's
 * tasks change. The server checks who may run or stop a task, whatever the page shows. */
(function () {
  "use strict";

  var root = document.getElementById("agent-board");
  if (!root) return;
  var form = document.getElementById("task-form");
  var panel = document.getElementById("task-panel");
  var statusLine = document.getElementById("task-status");
  var agentSelect = document.getElementById("id_agent");
  var prompt = document.getElementById("id_prompt");
  var runButton = document.getElementById("task-run");
  var current = root.getAttribute("data-task"); // the task the panel shows
  var text = ""; // its answer so far, as streamed
  var followed = {};
  var cardTimers = {};
  var TONES = { idle: "", busy: "info", error: "error" };
  var FINISHED = ["succeeded", "failed", "cancelled"];

  function url(attribute, id) {
    return root.getAttribute(attribute).replace(/\/0\/$/, "/" + id + "/");
  }

  function setStatus(state, words) {
    statusLine.setAttribute("data-state", state);
    statusLine.textContent = words;
  }

  function showText() {
    var stream = panel.querySelector("[data-stream]");
    if (stream) stream.textContent = text;
  }

  function refreshPanel() {
    if (!current) return;
    var taskId = current;
    OrchestraLive.fetchHtml("panel", url("data-task-url", taskId), function (html) {
      if (taskId !== current) return;
      var hadFocus = panel.contains(document.activeElement);
      panel.innerHTML = html;
      showText();
      var task = panel.querySelector("[data-task]");
      var status = task && task.getAttribute("data-status");
      if (status === "succeeded") setStatus("done", "Task #" + taskId + " succeeded.");
      else if (status === "failed") setStatus("error", "Task #" + taskId + " failed.");
      else if (status === "cancelled") setStatus("stopped", "Task #" + taskId + " was stopped.");
      if (hadFocus && task) {
        task.setAttribute("tabindex", "-1");
        task.focus({ preventScroll: true });
      }
    });
  }

  function refreshCard(agentId) {
    clearTimeout(cardTimers[agentId]);
    cardTimers[agentId] = setTimeout(function () {
      OrchestraLive.fetchHtml("card-" + agentId, url("data-card-url", agentId), function (html) {
        var old = document.getElementById("agent-" + agentId);
        if (!old) return;
        old.replaceWith(OrchestraLive.fromHtml(html).firstElementChild);
      });
    }, 150);
  }

  function onToken(message) {
    var data = message.data || {};
    if (String(data.task) !== current) return;
    text += data.content;
    showText();
  }

  function follow(taskId, since) {
    current = String(taskId);
    text = "";
    if (!followed[current]) {
      followed[current] = true;
      OrchestraLive.on("agent_task:" + current, onToken, { since: since });
    }
    refreshPanel();
  }

  function submit(event) {
    event.preventDefault();
    if (!prompt.value.trim()) {
      setStatus("error", "Write a prompt first.");
      prompt.focus();
      return;
    }
    runButton.disabled = true;
    setStatus("streaming", "Queuing the task…");
    fetch(location.pathname, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (answer) {
        if (!answer.ok) {
          setStatus("error", "Not run: " + ((answer.body.error || {}).message || "refused."));
          return;
        }
        follow(answer.body.task, answer.body.since);
        setStatus("streaming", "Task #" + answer.body.task + " queued: its answer streams in below.");
      })
      .catch(function () {
        setStatus("error", "Not run: the server could not be reached.");
      })
      .then(function () {
        runButton.disabled = false;
      });
  }

  function cancel(taskId) {
    var body = new FormData();
    body.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    body.append("action", "cancel");
    body.append("task", taskId);
    setStatus("stopping", "Stopping…");
    fetch(location.pathname, {
      method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(refreshPanel);
  }

  OrchestraLive.on("agents", function (message) {
    var data = message.data || {};
    if (message.event === "agent.status") {
      var pill = document.querySelector("#agent-" + data.agent + " .agent-status");
      if (pill) {
        pill.textContent = data.status;
        pill.setAttribute("data-status", TONES[data.status] || "");
      }
    } else if (message.event === "agent.task") {
      refreshCard(data.agent);
      if (FINISHED.indexOf(data.status) >= 0) {
        // The call's record reaches the figures a moment after the task ends.
        setTimeout(function () { refreshCard(data.agent); }, 3000);
      }
      if (String(data.task) === current) {
        if (data.status === "running") text = "";
        refreshPanel();
      }
    }
  });

  OrchestraLive.onState(function (state) {
    if (state !== "live") return;
    refreshPanel();
    document.querySelectorAll(".agent-card[data-agent]").forEach(function (card) {
      refreshCard(card.getAttribute("data-agent"));
    });
  });

  form.addEventListener("submit", submit);
  prompt.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  root.addEventListener("click", function (event) {
    var run = event.target.closest("[data-run-agent]");
    if (run && agentSelect) {
      agentSelect.value = run.getAttribute("data-run-agent");
      prompt.scrollIntoView({ block: "center" });
      prompt.focus();
    }
    var stop = event.target.closest("[data-cancel-task]");
    if (stop) {
      stop.disabled = true;
      cancel(stop.getAttribute("data-cancel-task"));
    }
  });
  if (current) follow(current);
})();
