/* Circuit breakers: a circuit that opens or closes while the page is open shows it at once. */
(function () {
  "use strict";

  OrchestraLive.on("alerts", function (message) {
    var state = { "circuit.opened": "open", "circuit.closed": "closed" }[message.event];
    if (!state) return;
    var row = document.querySelector('tr[data-provider="' + CSS.escape(message.data.provider) + '"]');
    if (!row) return;
    var pill = row.querySelector(".circuit-state");
    pill.setAttribute("data-status", state);
    pill.textContent = state;
    if (message.data.error) row.querySelector(".circuit-error").textContent = message.data.error;
    // The one rule (providers.selectors.provider_health): an open circuit is unhealthy; once
    // closed, the last probe or Test decides again.
    var health = row.querySelector(".provider-health");
    if (!health) return;
    var probe = health.getAttribute("data-probe");
    health.setAttribute("data-status", state === "open" ? "error" : probe);
    health.textContent = state === "open" ? "circuit open" : probe;
  });
})();
