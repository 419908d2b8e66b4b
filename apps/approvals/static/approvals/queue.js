/* The approval queue, live on "approvals": each event (a request made, decided, expired or
 * escalated) fetches the page's live part again (?part=live) and applies it: new requests'
 * cards are added in their place, decided ones dropped, a card whose policy changed
 * (escalated) redrawn with what was typed kept, the figures, the history and the sidebar's
 * badge redrawn. Cards nobody changed are left alone, with the notes being typed in them.
 * Every card's time to expiry counts down each second. */
(function () {
  "use strict";

  var root = document.getElementById("approval-queue");
  if (!root) return;
  var liveUrl = root.getAttribute("data-live-url");
  var announce = document.getElementById("queue-announce");
  var BADGE_CLASSES = "font-semibold h-[18px] leading-[18px] ml-2 px-1 relative rounded-xs text-center " +
    "text-[11px] whitespace-nowrap uppercase min-w-[18px] bg-red-100 text-red-700 dark:bg-red-500/20 dark:text-red-400";
  var timer = null;

  function title(card) {
    var heading = card.querySelector(".build-card-title");
    return heading ? heading.textContent.trim() : "a request";
  }

  function applyPending(fresh) {
    var list = document.getElementById("pending-list");
    var wanted = Array.prototype.slice.call(fresh.querySelectorAll("#pending-list > li[data-approval]"));
    var keep = {};
    var added = [];
    wanted.forEach(function (card, index) {
      var id = card.getAttribute("data-approval");
      keep[id] = true;
      var old = document.getElementById("approval-" + id);
      var node = card;
      if (old && old.getAttribute("data-version") === card.getAttribute("data-version")) {
        node = old;
      } else if (old) {
        OrchestraLive.keepTyping(old, card);
        old.remove();
      } else {
        added.push(card);
      }
      if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
    });
    Array.prototype.slice.call(list.children).forEach(function (card) {
      if (!keep[card.getAttribute("data-approval")]) card.remove();
    });
    document.getElementById("nothing-pending").hidden = wanted.length > 0;
    document.getElementById("pending-count").textContent = fresh.querySelector("#pending-count").textContent;
    if (added.length) {
      announce.textContent = "New request" + (added.length > 1 ? "s" : "") + ": " +
        added.map(title).join("; ") + ".";
    }
    tick();
  }

  function replaceSection(fresh, id) {
    var next = fresh.querySelector("#" + id);
    var old = document.getElementById(id);
    if (next && old) old.replaceWith(next);
  }

  // The sidebar's entry of this page: its badge counts the requests waiting.
  function setBadge(count) {
    document.querySelectorAll('#nav-sidebar-apps a[href$="/approval-queue/"]').forEach(function (link) {
      var badge = link.querySelector("span.min-w-\\[18px\\]");
      if (count === "0") {
        if (badge) badge.remove();
        return;
      }
      if (!badge) {
        badge = document.createElement("span");
        badge.className = BADGE_CLASSES;
        link.appendChild(badge);
      }
      badge.textContent = count;
    });
  }

  function refresh() {
    OrchestraLive.fetchHtml("live", liveUrl, function (html) {
      var fresh = OrchestraLive.fromHtml(html);
      applyPending(fresh);
      replaceSection(fresh, "approval-stats");
      replaceSection(fresh, "approval-history");
      setBadge(document.getElementById("pending-count").textContent.trim());
    });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 100);
  }

  // The first unit that is not zero and the next one unless zero: "23 h 59 min", "4 min",
  // "3 min 59 s" (as the page's server-side figures).
  function span(seconds) {
    var units = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
    var parts = [];
    for (var i = 0; i < units.length; i++) {
      var amount = Math.floor(seconds / units[i][0]);
      seconds -= amount * units[i][0];
      if (amount && parts.length < 2) parts.push(amount + " " + units[i][1]);
      else if (parts.length) break;
    }
    return parts.join(" ") || "0 s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (element) {
      var left = Math.round((Date.parse(element.getAttribute("datetime")) - now) / 1000);
      var text = left > 0 ? "expires in " + span(left) : "expired: settling it…";
      if (element.textContent !== text) element.textContent = text;
      element.setAttribute("data-urgency", left <= 0 ? "over" : left < 300 ? "soon" : "");
    });
  }

  OrchestraLive.on("approvals", function (message) {
    var data = message.data || {};
    if (message.event === "approval.escalated") {
      announce.textContent = "Request #" + data.id + " was escalated: an admin decides it now.";
    }
    soon();
  });
  // Events sent before this page listened (or while the connection was down) are not sent
  // again: the live part is fetched instead.
  OrchestraLive.onState(function (state) {
    if (state === "live") soon();
  });
  tick();
  setInterval(tick, 1000);
})();
