/* Home: the server renders every figure; this keeps them current from the live events
 * (live.js): "dashboard.figures" on metrics, and each alert on alerts. */
(function () {
  "use strict";

  var MAX_ALERTS = 20;

  function byData(name, value) {
    return document.querySelector("[" + name + '="' + CSS.escape(value) + '"]');
  }

  function showFigures(display) {
    document.querySelectorAll("[data-figure]").forEach(function (element) {
      var value = display[element.getAttribute("data-figure")];
      if (value !== undefined) element.textContent = value;
    });
  }

  function showHealth(health) {
    Object.keys(health).forEach(function (name) {
      var item = byData("data-health", name);
      if (!item) return;
      var pill = item.querySelector(".pill");
      pill.setAttribute("data-status", health[name].status);
      pill.textContent = health[name].status;
      item.querySelector(".health-message").textContent = health[name].message;
    });
  }

  function showStreams(streams) {
    var parts = Object.keys(streams).filter(function (name) { return name !== "total" && streams[name]; });
    var text = parts.map(function (name) { return name + " " + streams[name]; }).join(" · ");
    var element = document.getElementById("streams-detail");
    if (element) element.textContent = text || "none running";
  }

  function showCircuits(circuits) {
    var list = document.getElementById("open-circuits");
    var empty = document.getElementById("open-circuits-empty");
    if (!list) return;
    var template = document.getElementById("open-circuit-template");
    list.replaceChildren();
    circuits.forEach(function (circuit) {
      var item = template.content.firstElementChild.cloneNode(true);
      item.querySelectorAll(".circuit-name").forEach(function (name) { name.textContent = circuit.provider; });
      var pill = item.querySelector(".pill");
      pill.setAttribute("data-status", circuit.state);
      pill.textContent = circuit.label;
      item.querySelector(".circuit-error").textContent = circuit.error;
      var field = item.querySelector("input[name=provider_name]");
      if (field) field.value = circuit.provider;
      var next = item.querySelector("input[name=next]");
      if (next) next.value = location.pathname;
      list.appendChild(item);
    });
    if (empty) empty.hidden = circuits.length > 0;
  }

  // The same words as apps/dashboard/alerts.py alert_text().
  function alertText(event, data) {
    if (event === "circuit.opened") return ["Circuit opened: " + data.provider, data.error || "", "error"];
    if (event === "circuit.closed") return ["Circuit closed: " + data.provider, "", "ok"];
    if (event === "alert.raised") return [data.title || "", data.detail || "", data.severity || "info"];
    if (event === "alert.resolved") return ["Resolved: " + (data.title || ""), "", "ok"];
    if (event === "alert.acknowledged") return ["Acknowledged: " + (data.title || ""), "by " + data.acknowledged_by, "info"];
    var detail = Object.keys(data).map(function (key) { return key + ": " + data[key]; }).join(", ");
    return [event, detail, "info"];
  }

  function addAlert(message) {
    var list = document.getElementById("recent-alerts");
    if (!list) return;
    var words = alertText(message.event, message.data || {});
    var item = document.getElementById("alert-template").content.firstElementChild.cloneNode(true);
    var now = new Date();
    var time = item.querySelector("time");
    time.setAttribute("datetime", now.toISOString());
    time.textContent = now.toISOString().slice(11, 19);
    var pill = item.querySelector(".pill");
    pill.setAttribute("data-status", words[2]);
    pill.textContent = words[2];
    item.querySelector(".alert-title").textContent = words[0];
    item.querySelector(".alert-detail").textContent = words[1];
    item.setAttribute("data-event", message.event);
    list.prepend(item);
    while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
    var empty = document.getElementById("recent-alerts-empty");
    if (empty) empty.hidden = true;
  }

  OrchestraLive.on("metrics", function (message) {
    if (message.event !== "dashboard.figures") return;
    var data = message.data;
    showFigures(data.display);
    showHealth(data.health);
    showStreams(data.active_streams);
    showCircuits(data.open_circuits);
    var updated = document.getElementById("figures-updated");
    if (updated) {
      updated.setAttribute("datetime", data.at);
      updated.textContent = new Date(data.at).toISOString().slice(11, 19);
    }
  });

  // Open alerts (the alerts app's): one entry per alert, added when raised, marked when
  // acknowledged, removed when resolved.
  function showOpenAlert(message) {
    var list = document.getElementById("open-alerts");
    var data = message.data || {};
    if (!list || data.id === undefined) return;
    var item = list.querySelector('[data-alert="' + data.id + '"]');
    if (message.event === "alert.resolved") {
      if (item) item.remove();
    } else if (message.event === "alert.raised" && !item) {
      item = document.getElementById("open-alert-template").content.firstElementChild.cloneNode(true);
      item.setAttribute("data-alert", data.id);
      var pill = item.querySelector(".pill");
      pill.setAttribute("data-status", data.severity);
      pill.textContent = data.severity;
      item.querySelector(".alert-title").textContent = data.title;
      item.querySelector(".alert-detail").textContent = data.detail || "";
      list.prepend(item);
    } else if (message.event === "alert.acknowledged" && item) {
      item.querySelector(".alert-state").textContent = "acknowledged";
    }
    document.getElementById("open-alerts-empty").hidden = list.children.length > 0;
  }

  OrchestraLive.on("alerts", function (message) {
    addAlert(message);
    showOpenAlert(message);
  });
})();
