/* The Experiments page: the variant rows of the form (added and removed, renumbered as Django's
 * formset expects: variants-<n>-<field>, TOTAL_FORMS); and an experiment's page, whose figures
 * are fetched again, rendered by the server, on each "experiments" event about it and every
 * few seconds while it runs (call records are stored a moment after the answers). */
(function () {
  "use strict";

  var REFRESH_MS = 2500;

  function variantForm() {
    var list = document.getElementById("variant-list");
    if (!list) return;
    var template = document.getElementById("variant-template");
    var addButton = document.getElementById("add-variant");
    var total = document.getElementById("id_variants-TOTAL_FORMS");
    var max = Number(list.getAttribute("data-max")) || 10;
    var disabled = Boolean(list.closest("fieldset[disabled]"));

    function rows() {
      return Array.prototype.slice.call(list.querySelectorAll("[data-variant-form]"));
    }

    function renumber() {
      rows().forEach(function (row, index) {
        row.querySelectorAll("[name], [id], [for], [aria-describedby]").forEach(function (element) {
          ["name", "id", "for", "aria-describedby"].forEach(function (attribute) {
            var value = element.getAttribute(attribute);
            if (value) element.setAttribute(attribute, value.replace(/variants-(\d+|__prefix__)-/g, "variants-" + index + "-"));
          });
        });
        row.querySelectorAll("[data-variant-number]").forEach(function (number) {
          number.textContent = String(index + 1);
        });
      });
      var count = rows().length;
      total.value = String(count);
      if (disabled) return;
      addButton.disabled = count >= max;
      rows().forEach(function (row) {
        row.querySelector("[data-remove-variant]").disabled = count <= 2;
      });
    }

    addButton.addEventListener("click", function () {
      if (rows().length >= max) return;
      list.appendChild(template.content.cloneNode(true));
      renumber();
      var row = rows()[rows().length - 1];
      row.querySelector("select[name$='-type']").value = "treatment";
      row.querySelector("input[name$='-name']").focus();
    });
    list.addEventListener("click", function (event) {
      var button = event.target.closest("[data-remove-variant]");
      if (!button) return;
      var index = rows().indexOf(button.closest("[data-variant-form]"));
      button.closest("[data-variant-form]").remove();
      renumber();
      var left = rows();
      left[Math.min(index, left.length - 1)].querySelector("input[name$='-name']").focus();
    });
    renumber();
  }

  function experimentPage() {
    var root = document.getElementById("experiment-detail");
    if (!root) return;
    var id = root.getAttribute("data-experiment");
    var url = root.getAttribute("data-figures-url");
    var holder = document.getElementById("experiment-figures");
    var announce = document.getElementById("experiment-announce");

    function status() {
      var summary = holder.querySelector(".exp-summary");
      return summary ? summary.getAttribute("data-status") : "";
    }

    function refresh() {
      return OrchestraLive.fetchHtml("figures", url, function (html) {
        var focused = document.activeElement && holder.contains(document.activeElement) ? document.activeElement.id : "";
        holder.innerHTML = html;
        if (focused && document.getElementById(focused)) document.getElementById(focused).focus({ preventScroll: true });
      });
    }

    OrchestraLive.on("experiments", function (message) {
      var data = message.data || {};
      if (String(data.experiment) !== id) return;
      refresh();
      var words = {
        "experiment.started": "Experiment started.",
        "experiment.stopped": "Experiment stopped.",
        "experiment.phase": "A new phase began: " + (data.reason || ""),
        "canary.step": "Canary: " + (data.message || ""),
        "canary.rolled_back": "Canary rolled back: " + (data.message || "")
      };
      if (words[message.event]) announce.textContent = words[message.event];
    });
    // Events sent while the connection was down are not sent again: fetch what they changed.
    OrchestraLive.onState(function (state) {
      if (state === "live") refresh();
    });
    setInterval(function () {
      if (status() === "running" && !document.hidden) refresh();
    }, REFRESH_MS);
  }

  variantForm();
  experimentPage();
})();
