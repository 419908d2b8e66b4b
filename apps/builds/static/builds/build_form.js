/* The Build page: the step composer (add and remove steps, renumbered as Django's formset
 * expects: steps-<n>-<field>, TOTAL_FORMS), a template replacing the composed steps, an agent
 * replacing a step's model; and the history's statuses, live from the "builds" channel.
 * The form posts to the server, which validates everything again. */
(function () {
  "use strict";

  var page = document.getElementById("build-page");
  if (!page) return;
  var list = document.getElementById("step-list");
  var template = document.getElementById("step-template");
  var addButton = document.getElementById("add-step");
  var total = document.getElementById("id_steps-TOTAL_FORMS");
  var templateSelect = document.getElementById("id_template");
  var composer = document.getElementById("build-steps");
  var max = Number(list.getAttribute("data-max")) || 20;
  var TONES = {
    running: "info", awaiting_approval: "warning", succeeded: "success", failed: "error",
    cancelled: "disabled"
  };

  function rows() {
    return Array.prototype.slice.call(list.querySelectorAll("[data-step-form]"));
  }

  // Field names, ids and labels follow each row's place: steps-0-name, id_steps-0-name...
  function renumber() {
    rows().forEach(function (row, index) {
      row.querySelectorAll("[name], [id], [for], [aria-describedby]").forEach(function (element) {
        ["name", "id", "for", "aria-describedby"].forEach(function (attribute) {
          var value = element.getAttribute(attribute);
          if (value) element.setAttribute(attribute, value.replace(/steps-(\d+|__prefix__)-/g, "steps-" + index + "-"));
        });
      });
      row.querySelectorAll("[data-step-number]").forEach(function (number) {
        number.textContent = String(index + 1);
      });
    });
    var count = rows().length;
    total.value = String(count);
    addButton.disabled = count >= max;
    rows().forEach(function (row) {
      row.querySelector("[data-remove-step]").disabled = count <= 1;
    });
  }

  function followAgent(row) {
    var agent = row.querySelector("select[name$='-agent']");
    var withAgent = agent && agent.value !== "";
    row.querySelectorAll(".build-model-field select").forEach(function (select) {
      select.disabled = withAgent;
    });
    row.querySelectorAll(".build-model-field").forEach(function (field) {
      field.setAttribute("data-off", withAgent ? "true" : "false");
    });
  }

  // A step's approval risk counts only when it requires approval.
  function followGate(row) {
    var gated = row.querySelector("input[name$='-requires_approval']");
    var risk = row.querySelector("select[name$='-approval_risk']");
    if (gated && risk) risk.disabled = !gated.checked;
  }

  function addStep() {
    if (rows().length >= max) return;
    var fragment = template.content.cloneNode(true);
    list.appendChild(fragment);
    renumber();
    var row = rows()[rows().length - 1];
    followAgent(row);
    followGate(row);
    row.querySelector("input[name$='-name']").focus();
  }

  function removeStep(row) {
    var index = rows().indexOf(row);
    row.remove();
    renumber();
    var left = rows();
    var next = left[Math.min(index, left.length - 1)];
    if (next) next.querySelector("input[name$='-name']").focus();
  }

  function followTemplate() {
    var chosen = templateSelect.value;
    composer.hidden = chosen !== "";
    composer.querySelectorAll("input, select, textarea, button").forEach(function (control) {
      if (control.type !== "hidden") control.disabled = chosen !== "";
    });
    document.querySelectorAll("#template-info [data-template]").forEach(function (item) {
      item.hidden = item.getAttribute("data-template") !== chosen;
    });
    if (!chosen) {
      rows().forEach(followAgent);
      rows().forEach(followGate);
      renumber();
    }
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest("[data-remove-step]");
    if (button) removeStep(button.closest("[data-step-form]"));
  });
  list.addEventListener("change", function (event) {
    var row = event.target.closest("[data-step-form]");
    if (event.target.matches("select[name$='-agent']")) followAgent(row);
    if (event.target.matches("input[name$='-requires_approval']")) followGate(row);
  });
  addButton.addEventListener("click", addStep);
  templateSelect.addEventListener("change", followTemplate);
  rows().forEach(followAgent);
  rows().forEach(followGate);
  renumber();
  if (templateSelect.value) followTemplate();

  // The history: a listed build's status changes as it runs.
  OrchestraLive.on("builds", function (message) {
    var data = message.data || {};
    var row = document.querySelector('.build-history tr[data-build="' + data.build + '"]');
    if (!row) return;
    var pill = row.querySelector(".build-status");
    pill.textContent = String(data.status).replace(/_/g, " ");
    pill.setAttribute("data-status", TONES[data.status] || "");
  });
})();
