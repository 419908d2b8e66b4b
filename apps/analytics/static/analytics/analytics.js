/* The Analytics page: draws its charts with the Chart.js django-unfold ships (window.Chart,
 * loaded by unfold's skeleton), submits the form when a preset range is picked, and, while the
 * range ends now, fetches the page's figures again (?fragment=1) every data-refresh-seconds so
 * the open hour updates without a reload. window.OrchestraAnalytics.charts holds the charts. */
(function () {
  "use strict";

  var charts = {};
  window.OrchestraAnalytics = { charts: charts, refreshed: 0 };

  function label(iso, period) {
    var at = new Date(iso);
    var day = at.toISOString().slice(5, 10);
    return period === "hour" ? day + " " + at.toISOString().slice(11, 16) : day;
  }

  function dataset(name, values, color, extra) {
    var set = { label: name, data: values, borderColor: color, backgroundColor: color, borderWidth: 2, pointRadius: 2, tension: 0.2 };
    Object.keys(extra || {}).forEach(function (key) { set[key] = extra[key]; });
    return set;
  }

  function specs(data) {
    return {
      requests: { type: "bar", datasets: [
        dataset("Requests", data.requests, "#6366f1"),
        dataset("Errors", data.errors, "#dc2626"),
      ] },
      tokens: { type: "bar", stacked: true, datasets: [
        dataset("Input", data.inputTokens, "#0ea5e9"),
        dataset("Output", data.outputTokens, "#14b8a6"),
      ] },
      cost: { type: "line", datasets: [dataset("Cost", data.cost, "#16a34a", { fill: false })] },
      latency: { type: "line", log: true, datasets: [
        dataset("p50", data.p50, "#6366f1"),
        dataset("p95", data.p95, "#f59e0b"),
        dataset("p99", data.p99, "#dc2626"),
      ] },
    };
  }

  function draw() {
    var source = document.getElementById("analytics-chart-data");
    if (!source || !window.Chart) return;
    var data = JSON.parse(source.textContent);
    var labels = data.labels.map(function (iso) { return label(iso, data.period); });
    var all = specs(data);
    document.querySelectorAll("#analytics canvas[data-chart]").forEach(function (canvas) {
      var name = canvas.getAttribute("data-chart");
      var spec = all[name];
      if (charts[name]) charts[name].destroy();
      charts[name] = new window.Chart(canvas, {
        type: spec.type,
        data: { labels: labels, datasets: spec.datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          interaction: { mode: "index", intersect: false },
          plugins: { legend: { position: "bottom" } },
          scales: {
            x: { stacked: !!spec.stacked, ticks: { maxRotation: 0, autoSkip: true } },
            y: spec.log ? { type: "logarithmic" } : { stacked: !!spec.stacked, beginAtZero: true },
          },
        },
      });
    });
  }

  function customShown() {
    var custom = document.querySelector('#analytics-filters input[name="range"][value="custom"]');
    var dates = document.querySelector("#analytics-filters .analytics-custom");
    if (custom && dates) dates.hidden = !custom.checked;
  }

  function refresh(root) {
    var url = root.getAttribute("data-fragment-url");
    var every = Number(root.getAttribute("data-refresh-seconds")) * 1000;
    if (!url || !every) return;
    window.setInterval(function () {
      if (document.hidden) return;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          var target = document.getElementById("analytics-overview");
          if (html === null || !target) return;
          target.innerHTML = html;
          draw();
          window.OrchestraAnalytics.refreshed += 1;
        })
        .catch(function () { /* the next tick tries again */ });
    }, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("analytics");
    if (!root) return;
    var form = document.getElementById("analytics-filters");
    form.addEventListener("change", function (event) {
      customShown();
      if (event.target.name === "range" && event.target.value !== "custom") form.submit();
    });
    customShown();
    draw();
    refresh(root);
  });
})();
