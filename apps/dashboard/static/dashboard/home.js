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

  OrchestraLive.on("alerts", addAlert);
})();
