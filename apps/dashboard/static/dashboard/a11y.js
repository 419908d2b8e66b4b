/* On every page of the site: unfold draws icons as ligatures (the word "search" in an icon
 * font), which screen readers would read out and which would join a control's name ("Log in
 * arrow_forward"). Icons beside words are decoration: hide them from assistive technology.
 * An icon that is all a control has gets the control's title as its name instead.
 * Links without an address that only run a script (the changelists' "Filters", which opens the
 * filter sheet) are buttons: reachable with Tab and pressed with Enter or Space. The
 * changelists' search box, which has only a placeholder, is named "Search". */
(function () {
  "use strict";

  function words(control) {
    var copy = control.cloneNode(true);
    copy.querySelectorAll(".material-symbols-outlined").forEach(function (icon) { icon.remove(); });
    return copy.textContent.trim();
  }

  function tidy(root) {
    root.querySelectorAll(".material-symbols-outlined:not([aria-hidden])").forEach(function (icon) {
      icon.setAttribute("aria-hidden", "true");
      var control = icon.closest("a, button, [role=button]");
      if (control && !words(control) && !control.getAttribute("aria-label")) {
        var name = control.getAttribute("title") || icon.textContent.trim().replace(/_/g, " ");
        control.setAttribute("aria-label", name);
      }
    });
  }

  function scriptButtons(root) {
    root.querySelectorAll("a:not([href])[x-on\\:click]:not([role])").forEach(function (link) {
      link.setAttribute("role", "button");
      link.setAttribute("tabindex", "0");
      link.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          link.click();
        }
      });
    });
  }

  function start() {
    tidy(document);
    scriptButtons(document);
    var searchbar = document.getElementById("searchbar");
    if (searchbar && !searchbar.labels.length && !searchbar.getAttribute("aria-label")) {
      searchbar.setAttribute("aria-label", "Search");
    }
    document.body.addEventListener("htmx:afterSwap", function (event) { tidy(event.target); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
