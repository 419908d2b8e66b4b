/* The Playground: sends the conversation as a "stream" message through live.js, shows the
 * tokens as they arrive, "cancel"s on Stop, and shows what "done" says of the call. The server
 * decides who may send (the /ws/ consumer refuses a viewer); the page only mirrors it. */
(function () {
  "use strict";

  var root = document.getElementById("playground");
  if (!root) return;
  var form = document.getElementById("play-form");
  var field = function (id) { return document.getElementById("play-" + id); };
  var model = field("model"), provider = field("provider"), strategy = field("strategy");
  var temperature = field("temperature"), maxTokens = field("max-tokens");
  var system = field("system"), message = field("message");
  var sendButton = field("send"), stopButton = field("stop"), clearButton = field("clear");
  var transcript = field("transcript"), empty = field("empty"), statusLine = field("status");
  var result = field("result"), callLink = field("call-link");
  var figures = field("figures"), resultNote = field("result-note");
  var settings = field("settings"), summary = field("summary");
  var canSend = root.getAttribute("data-can-send") === "true";

  var conversation = []; // what was said so far: {role, content}, sent with each message
  var running = null; // the stream on its way: {id, turn (its <li>), text so far, asked}
  var counter = 0;

  function setStatus(state, text) {
    statusLine.setAttribute("data-state", state);
    statusLine.textContent = text;
  }

  function refreshButtons() {
    var live = OrchestraLive.state() === "live";
    sendButton.disabled = !canSend || running !== null || !live;
    stopButton.disabled = running === null;
    clearButton.disabled = !canSend || running !== null;
  }

  function addTurn(role, text) {
    var item = document.createElement("li");
    item.className = "play-turn";
    item.setAttribute("data-role", role);
    var who = document.createElement("span");
    who.className = "play-who";
    who.textContent = role === "user" ? "You" : "Assistant";
    var body = document.createElement("div");
    body.className = "play-text";
    body.textContent = text;
    item.append(who, body);
    transcript.appendChild(item);
    transcript.hidden = false;
    empty.hidden = true;
    return item;
  }

  function markTurn(turn, state, words) {
    turn.setAttribute("data-state", state);
    var pill = document.createElement("span");
    pill.className = "pill";
    pill.setAttribute("data-status", state === "stopped" ? "warning" : "error");
    pill.textContent = words;
    turn.querySelector(".play-who").append(" ", pill);
  }

  function scrollDown() {
    transcript.scrollTop = transcript.scrollHeight;
  }

  // Only the providers serving the chosen model may be pinned.
  function filterProviders() {
    Array.prototype.forEach.call(provider.options, function (option) {
      if (!option.value) return;
      var serves = option.getAttribute("data-models").split(/\s+/);
      option.disabled = model.value !== "" && serves.indexOf(model.value) < 0;
    });
    if (provider.selectedOptions[0] && provider.selectedOptions[0].disabled) provider.value = "";
  }

  function ask(text) {
    var messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value });
    messages = messages.concat(conversation, [{ role: "user", content: text }]);
    counter += 1;
    var request = { type: "stream", id: "play-" + Date.now().toString(36) + "-" + counter, messages: messages };
    if (model.value) request.model = model.value;
    if (provider.value) request.provider = provider.value;
    if (strategy.value) request.strategy = strategy.value;
    if (temperature.value !== "") request.temperature = Number(temperature.value);
    if (maxTokens.value !== "") request.max_tokens = Number(maxTokens.value);
    return request;
  }

  function send(event) {
    event.preventDefault();
    if (!canSend || running) return;
    var text = message.value.trim();
    if (!text) {
      setStatus("error", "Write a message first.");
      message.focus();
      return;
    }
    var request = ask(text);
    if (!OrchestraLive.send(request)) {
      setStatus("error", "Not connected: wait until the header says Live, then send again.");
      return;
    }
    conversation.push({ role: "user", content: text });
    addTurn("user", text);
    running = { id: request.id, turn: addTurn("assistant", ""), text: "", asked: text };
    running.turn.setAttribute("data-state", "streaming");
    transcript.setAttribute("aria-busy", "true");
    message.value = "";
    result.hidden = true;
    setStatus("streaming", "Waiting for the answer…");
    refreshButtons();
    scrollDown();
  }

  function finished(state, text) {
    transcript.setAttribute("aria-busy", "false");
    running.turn.setAttribute("data-state", state);
    running = null;
    setStatus(state, text);
    refreshButtons();
    if (state !== "error" && !message.disabled) message.focus();
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms < 10000 ? Math.round(ms).toLocaleString("en") + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  function money(cost) {
    if (cost === null || cost === undefined) return "—";
    var trimmed = String(cost).replace(/(\.\d*?[1-9])0+$/, "$1").replace(/\.0+$/, ".00");
    return "$" + trimmed;
  }

  function showCallLink(callId) {
    var template = root.getAttribute("data-call-url");
    if (!template || !callId) {
      callLink.hidden = true;
      return;
    }
    callLink.href = template.replace(root.getAttribute("data-call-placeholder"), callId);
    callLink.hidden = false;
  }

  function showResult(done) {
    var usage = done.usage || {};
    var values = {
      provider: done.provider || "—",
      model: done.model || "—",
      latency: duration(done.latency_ms),
      ttft: duration(done.time_to_first_token_ms),
      tokens: (usage.prompt_tokens || 0).toLocaleString("en") + " / " +
        (usage.completion_tokens || 0).toLocaleString("en") + (usage.estimated ? " (estimated)" : ""),
      cost: money(done.cost)
    };
    Object.keys(values).forEach(function (name) {
      root.querySelector('[data-result="' + name + '"]').textContent = values[name];
    });
    showCallLink(done.call_id);
    figures.hidden = false;
    resultNote.hidden = true;
    result.hidden = false;
  }

  // An answer that did not finish: its record (if the call was made) is all there is to show.
  function showUnfinished(callId) {
    showCallLink(callId);
    figures.hidden = true;
    resultNote.hidden = false;
    result.hidden = callLink.hidden;
  }

  function summarise() {
    var parts = [model.value || "no model", provider.value || "any provider"];
    if (strategy.value) parts.push(strategy.selectedOptions[0].textContent);
    summary.textContent = parts.join(" · ");
  }

  function onReply(reply) {
    if (!running) return;
    if (reply.id === undefined && reply.type === "error") {
      // A message the server could not read at all (too large, say) names no id.
      reply = Object.assign({}, reply, { id: running.id });
    }
    if (reply.id !== running.id) return;
    if (reply.type === "token") {
      if (!running.text) setStatus("streaming", "Streaming the answer…");
      running.text += reply.content;
      running.turn.querySelector(".play-text").textContent = running.text;
      scrollDown();
    } else if (reply.type === "done") {
      conversation.push({ role: "assistant", content: running.text });
      showResult(reply);
      var reason = reply.finish_reason && reply.finish_reason !== "stop" ? " (finish reason: " + reply.finish_reason + ")" : "";
      finished("done", "Answered by " + reply.provider + " in " + duration(reply.latency_ms) + reason + ".");
    } else if (reply.type === "error" && reply.code === "cancelled") {
      // What was shown stays part of the conversation; an answer that never began does not.
      if (running.text) conversation.push({ role: "assistant", content: running.text });
      else conversation.pop();
      markTurn(running.turn, "stopped", "stopped");
      showUnfinished(reply.call_id);
      finished("stopped", "Stopped: the answer was cut off at your request.");
    } else if (reply.type === "error") {
      failed(reply.message || reply.code, reply.call_id);
    }
  }

  // The message did not get an answer: it leaves the conversation and goes back in the box.
  function failed(text, callId) {
    conversation.pop();
    running.turn.querySelector(".play-text").textContent = running.text;
    markTurn(running.turn, "error", "failed");
    if (!message.value) message.value = running.asked;
    showUnfinished(callId);
    finished("error", "Failed: " + text);
  }

  OrchestraLive.onMessage(onReply);
  OrchestraLive.onState(function (state) {
    if (running && state !== "live") {
      failed("the connection was lost, and the answer with it (a call may still be recorded).");
    }
    refreshButtons();
  });

  form.addEventListener("submit", send);
  message.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", function () {
    if (!running) return;
    if (OrchestraLive.send({ type: "cancel", id: running.id })) {
      stopButton.disabled = true;
      setStatus("stopping", "Stopping…");
    }
  });
  clearButton.addEventListener("click", function () {
    if (running) return;
    conversation = [];
    transcript.replaceChildren();
    transcript.hidden = true;
    empty.hidden = false;
    result.hidden = true;
    setStatus("idle", "New conversation.");
    message.focus();
  });
  model.addEventListener("change", filterProviders);
  form.addEventListener("change", summarise);
  filterProviders();
  summarise();
  // Below the two-column width the settings start folded, so the conversation is in view.
  if (window.matchMedia("(max-width: 1023px)").matches) settings.open = false;
  refreshButtons();
})();
