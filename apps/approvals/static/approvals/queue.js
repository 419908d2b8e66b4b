/* The approval queue: a request made or decided elsewhere shows a "reload" notice (the page
 * does not move forms from under someone writing notes). */
(function () {
  "use strict";

  var notice = document.getElementById("queue-changed");
  if (!notice) return;
  OrchestraLive.on("approvals", function () {
    notice.hidden = false;
  });
})();
