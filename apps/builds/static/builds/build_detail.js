/* A build's page, live on "build:<id>": a running step's tokens are appended as text as they
 * arrive; every change of a step (build.step) or of the build (build.status) fetches that
 * step's card, or the build's summary, rendered again by the server, so a finished step shows
 * its output as HTML (Markdown sanitised, code highlighted) and the figures, actions and
 * artifacts stay true. After a lost connection everything is fetched again. */
(function () {
  "use strict";

  var root = document.getElementById("build-detail");
  if (!root) return;
  var buildId = root.getAttribute("data-build");
  var summaryUrl = root.getAttribute("data-summary-url");
  var stepUrlTemplate = root.getAttribute("data-step-url");
  var announce = document.getElementById("build-announce");
  var streamed = {}; // step id -> the text streamed since it (last) started running
  var sawStart = {}; // steps whose start this page saw: it has all of their text
  var behind = {}; // steps whose card is refreshed because tokens came before "running"

  function stepUrl(stepId) {
    return stepUrlTemplate.replace(/\/0\/$/, "/" + stepId + "/");
  }

  function card(stepId) {
    return document.getElementById("step-" + stepId);
  }

  function showStream(stepId) {
    var element = card(stepId);
    if (!element) return;
    var stream = element.querySelector("[data-stream]");
    if (!stream) return;
    var text = streamed[stepId] || "";
    stream.textContent = text;
    stream.hidden = text === "";
    var note = element.querySelector(".build-joined");
    if (note) note.hidden = Boolean(sawStart[stepId]);
  }

  function refreshStep(stepId) {
    return OrchestraLive.fetchHtml("step-" + stepId, stepUrl(stepId), function (html) {
      var old = card(stepId);
      var fresh = OrchestraLive.fromHtml(html).firstElementChild;
      if (!old || !fresh) return;
      OrchestraLive.keepTyping(old, fresh); // an approval's notes
      var hadFocus = old.contains(document.activeElement);
      old.replaceWith(fresh);
      delete behind[stepId];
      if (fresh.getAttribute("data-status") === "running") showStream(stepId);
      else if (fresh.querySelector(".rendered-output")) delete streamed[stepId];
      if (hadFocus) {
        fresh.setAttribute("tabindex", "-1");
        fresh.focus({ preventScroll: true });
      }
    });
  }

  var summaryTimer = null;
  function refreshSummary() {
    clearTimeout(summaryTimer);
    summaryTimer = setTimeout(function () {
      OrchestraLive.fetchHtml("summary", summaryUrl, function (html) {
        document.getElementById("build-summary").innerHTML = html;
      });
    }, 100);
  }

  function refreshAll() {
    refreshSummary();
    document.querySelectorAll(".build-card[data-step]").forEach(function (element) {
      refreshStep(element.getAttribute("data-step"));
    });
  }

  function words(status) {
    return String(status).replace(/_/g, " ");
  }

  OrchestraLive.on("build:" + buildId, function (message) {
    var data = message.data || {};
    if (message.event === "build.token") {
      var stepId = String(data.step);
      streamed[stepId] = (streamed[stepId] || "") + data.content;
      var element = card(stepId);
      var stream = element && element.querySelector("[data-stream]");
      if (stream) {
        stream.hidden = false;
        stream.textContent = streamed[stepId];
      }
      if (element && element.getAttribute("data-status") !== "running" && !behind[stepId]) {
        behind[stepId] = true; // its start came before this page listened
        refreshStep(stepId);
      }
    } else if (message.event === "build.step") {
      var id = String(data.step);
      if (data.status === "running") {
        streamed[id] = "";
        sawStart[id] = true;
      }
      refreshStep(id);
      if (data.status !== "running" && data.status !== "queued") refreshSummary();
      announce.textContent = "Step " + data.name + ": " + words(data.status) + ".";
    } else if (message.event === "build.status") {
      refreshSummary();
      announce.textContent = "Build " + words(data.status) + ".";
    }
  });

  // The page subscribes from the running step's start (data-live-since, rendered by the
  // server), and again after a lost connection from the last event it got, so events sent
  // before it listened come first, in order. What they changed is also fetched again, in case
  // the server no longer kept them all.
  OrchestraLive.onState(function (state) {
    if (state === "live") refreshAll();
  });

  document.querySelectorAll('.build-card[data-status="running"]').forEach(function (element) {
    showStream(element.getAttribute("data-step"));
  });
})();
