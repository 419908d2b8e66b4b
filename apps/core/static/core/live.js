/* The dashboard's WebSocket client: the one module every live page uses (plain JavaScript),
 * loaded by the live pages' base template (core/live_page.html).
 *
 * A page names its channels on any element, data-live-channels="metrics alerts", and
 * registers handlers with OrchestraLive.on(channel, function (message) { ... }), where message
 * is the server's {"type": "event", "channel", "event", "data"}. This module then:
 *
 * - connects to /ws/ on the page's host; the browser sends the session cookie, with which the
 *   server authenticates the connection (a closed session ends it with code 4401: "Signed out");
 * - subscribes to each channel, and again to every one after each reconnection, with the id of
 *   the last event it got on the channel ("since"), so the server first sends what was
 *   published meanwhile, in order, then live events: nothing is missed while away;
 * - pings every 20 s; no pong within 10 s counts as a lost connection;
 * - reconnects after a loss with exponential backoff, 0.5, 1, 2, 4 and 8 s (each ±25 %), at
 *   most 5 attempts; after the fifth fails it shows "Disconnected" and a Retry button, which
 *   starts again (as does the browser coming back online);
 * - shows its state in #live-status (data-state: connecting, live, reconnecting, disconnected,
 *   signed-out), whose words are announced politely to screen readers.
 *
 * A page that does more than listen (the Playground) sends any protocol message with
 * OrchestraLive.send(message) (false when not connected) and gets every other message the
 * server sends (token, done, response, error...) through OrchestraLive.onMessage(listener).
 * Replies to a connection that was lost never arrive: such a page watches OrchestraLive.onState.
 *
 * A page that must show a channel's events from a given moment on (a build step streaming since
 * before the page opened) names where to start: data-live-since='{"build:42": "<event id>"}'
 * beside data-live-channels (the server renders it, apps.core.events.event_id_at), or
 * OrchestraLive.on(channel, handler, {since: id}) for a channel followed later.
 *
 * What a page does on an event is usually to fetch a part of itself again, rendered by the
 * server: OrchestraLive.fetchHtml(key, url, apply) gets it (the answer to an older fetch of the
 * same key is dropped), OrchestraLive.fromHtml(html) parses it, and
 * OrchestraLive.keepTyping(old, fresh) carries what the person was typing into the new part.
 *
 * Settings (for tests): window.OrchestraLiveSettings = {baseDelay: ms, maxAttempts: n,
 * pingEvery: ms, pongWithin: ms}, set before this script runs.
 */
(function () {
  "use strict";

  var config = { maxAttempts: 5, baseDelay: 500, maxDelay: 8000, pingEvery: 20000, pongWithin: 10000 };
  Object.keys(window.OrchestraLiveSettings || {}).forEach(function (name) {
    if (name in config) config[name] = Number(window.OrchestraLiveSettings[name]);
  });
  var handlers = {};
  var channels = [];
  var confirmed = {};
  var lastIds = {}; // channel -> the id of the latest event got on it, or where to start
  var stateListeners = [];
  var messageListeners = [];
  var socket = null;
  var attempts = 0;
  var retryTimer = null;
  var pingTimer = null;
  var pongTimer = null;
  var pingId = 0;
  var state = "idle";
  var started = false;

  var TEXT = {
    idle: "Not connected",
    connecting: "Connecting…",
    live: "Live",
    disconnected: "Disconnected",
    "signed-out": "Signed out: log in again for live updates"
  };

  function socketUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/";
  }

  function setState(next, text) {
    state = next;
    var holder = document.querySelector("[data-live-channels]");
    if (holder) holder.setAttribute("data-live-state", next);
    var box = document.getElementById("live-status");
    if (box) {
      box.setAttribute("data-state", next);
      var words = box.querySelector(".live-text");
      if (words) words.textContent = text || TEXT[next] || next;
      var retry = box.querySelector(".live-retry");
      if (retry) retry.hidden = next !== "disconnected";
    }
    stateListeners.forEach(function (listener) { listener(next); });
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  function subscribe(channel) {
    var message = { type: "subscribe", channel: channel };
    if (lastIds[channel]) message.since = lastIds[channel];
    send(message);
  }

  // Event ids are Redis stream ids, "<milliseconds>-<sequence>".
  function later(id, than) {
    if (!than) return true;
    var a = String(id).split("-").map(Number);
    var b = String(than).split("-").map(Number);
    return a[0] !== b[0] ? a[0] > b[0] : (a[1] || 0) > (b[1] || 0);
  }

  function startFrom(channel, since) {
    if (since && !lastIds[channel]) lastIds[channel] = String(since);
  }

  function stopTimers() {
    clearTimeout(retryTimer);
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
  }

  function connect() {
    stopTimers();
    if (attempts === 0) setState("connecting");
    confirmed = {};
    var ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (error) {
      lost();
      return;
    }
    socket = ws;
    // A connection that neither opens nor fails (a black hole) counts as failed after a while.
    pongTimer = setTimeout(function () { if (ws === socket) abandon("no answer"); }, config.pongWithin);
    ws.onopen = function () {
      if (ws !== socket) return;
      clearTimeout(pongTimer);
      channels.forEach(subscribe);
      if (channels.length === 0) live();
      pingTimer = setInterval(ping, config.pingEvery);
    };
    ws.onmessage = function (frame) {
      if (ws === socket) receive(frame.data);
    };
    ws.onclose = function (closed) {
      if (ws !== socket) return;
      socket = null;
      stopTimers();
      if (closed.code === 4401) {
        setState("signed-out");
        return;
      }
      lost();
    };
  }

  function live() {
    attempts = 0;
    setState("live");
  }

  // The connection is gone (or never came): try again later, or give up and say so.
  function lost() {
    attempts += 1;
    if (attempts > config.maxAttempts) {
      setState("disconnected");
      return;
    }
    var delay = Math.min(config.baseDelay * Math.pow(2, attempts - 1), config.maxDelay);
    delay = Math.round(delay * (0.75 + Math.random() * 0.5));
    setState("reconnecting", "Reconnecting (attempt " + attempts + " of " + config.maxAttempts + ")…");
    retryTimer = setTimeout(connect, delay);
  }

  // Drop the connection we have (dead or refused) without waiting for its close handshake.
  function abandon(reason) {
    var dead = socket;
    socket = null;
    stopTimers();
    if (dead) {
      try { dead.close(4000, reason); } catch (error) { /* already closing */ }
    }
    lost();
  }

  function ping() {
    pingId += 1;
    if (!send({ type: "ping", id: "live-" + pingId })) return;
    clearTimeout(pongTimer);
    pongTimer = setTimeout(function () { abandon("no pong"); }, config.pongWithin);
  }

  function receive(text) {
    var message;
    try {
      message = JSON.parse(text);
    } catch (error) {
      return;
    }
    if (message.type === "event") {
      if (message.id && later(message.id, lastIds[message.channel])) {
        lastIds[message.channel] = message.id;
      }
      (handlers[message.channel] || []).forEach(function (handler) {
        try {
          handler(message);
        } catch (error) {
          console.error("live handler of " + message.channel + " failed", error);
        }
      });
    } else if (message.type === "subscribed") {
      confirmed[message.channel] = true;
      if (channels.every(function (channel) { return confirmed[channel]; })) live();
    } else if (message.type === "pong") {
      clearTimeout(pongTimer);
    } else {
      messageListeners.forEach(function (listener) {
        try {
          listener(message);
        } catch (error) {
          console.error("live listener of " + message.type + " failed", error);
        }
      });
      if (message.type === "error" && message.code === "unavailable") {
        // The server's relay (Redis) is down: treat it as a lost connection and try later.
        abandon("unavailable");
      }
    }
  }

  function retry() {
    attempts = 0;
    connect();
  }

  function start(names) {
    names.forEach(function (name) {
      if (channels.indexOf(name) < 0) channels.push(name);
    });
    if (started) {
      names.forEach(subscribe);
      return;
    }
    started = true;
    connect();
  }

  function setUp() {
    var holder = document.querySelector("[data-live-channels]");
    var box = document.getElementById("live-status");
    if (box) {
      var button = box.querySelector(".live-retry");
      if (button) button.addEventListener("click", retry);
    }
    if (!holder) return;
    var since = {};
    try {
      since = JSON.parse(holder.getAttribute("data-live-since") || "{}");
    } catch (error) {
      console.warn("data-live-since is not JSON", error);
    }
    Object.keys(since).forEach(function (channel) { startFrom(channel, since[channel]); });
    start(holder.getAttribute("data-live-channels").split(/\s+/).filter(Boolean));
  }

  // --- the parts of a page fetched again -----------------------------------------------------
  var fetches = {}; // key -> the number of its latest fetch

  // The HTML at url, handed to apply(html) unless a later fetch of the same key was made
  // meanwhile (its answer is the one that counts). A failure is logged, not thrown.
  function fetchHtml(key, url, apply) {
    var number = (fetches[key] || 0) + 1;
    fetches[key] = number;
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (!response.ok) throw new Error(url + ": " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (fetches[key] === number) apply(html);
      })
      .catch(function (error) {
        console.warn("could not refresh the page's " + key, error);
      });
  }

  // The nodes of an HTML fragment, unattached (scripts in it do not run): the whole fragment,
  // whose .firstElementChild is the element when the fragment is one element.
  function fromHtml(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    return holder.content;
  }

  // What the person typed in old's text areas (an approval's notes), carried into fresh, the
  // same part rendered again, before it replaces old.
  function keepTyping(old, fresh) {
    old.querySelectorAll("textarea[id]").forEach(function (area) {
      var twin = fresh.querySelector("#" + CSS.escape(area.id));
      if (twin && area.value) twin.value = area.value;
    });
  }

  window.addEventListener("online", function () {
    if (state === "disconnected") retry();
  });

  window.OrchestraLive = {
    // Handlers get each event of the channel; register them before or after the page loads.
    // options.since: an event id; the channel's events after it come first (once).
    on: function (channel, handler, options) {
      startFrom(channel, options && options.since);
      (handlers[channel] = handlers[channel] || []).push(handler);
      if (started && channels.indexOf(channel) < 0) start([channel]);
    },
    onState: function (listener) { stateListeners.push(listener); },
    // Listeners get every message other than events, "subscribed" and "pong": replies.
    onMessage: function (listener) { messageListeners.push(listener); },
    state: function () { return state; },
    channels: function () { return channels.slice(); },
    send: send,
    retry: retry,
    fetchHtml: fetchHtml,
    fromHtml: fromHtml,
    keepTyping: keepTyping
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
