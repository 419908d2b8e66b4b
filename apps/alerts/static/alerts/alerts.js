/* The Alerts page, live on "alerts": each event (raised, resolved, acknowledged, a circuit
 * opening or closing) fetches the list again with the page's filters (?part=live) and swaps it
 * in; a newly raised alert is announced to screen readers. */
(function () {
  "use strict";

  var root = document.getElementById("alerts-page");
  if (!root) return;
  var liveUrl = root.getAttribute("data-live-url");
  var announce = document.getElementById("alerts-announce");

  function apply(html) {
    var fresh = OrchestraLive.fromHtml(html).querySelector("#alerts-list-part");
    var old = document.getElementById("alerts-list-part");
    if (fresh && old) old.replaceWith(fresh);
  }

  OrchestraLive.on("alerts", function (message) {
    if (message.event === "alert.raised" && message.data && message.data.title) {
      announce.textContent = "New alert: " + message.data.title;
    }
    OrchestraLive.fetchHtml("alerts", liveUrl, apply);
  });
})();
