// The board's small enhancements; every page works the same without them.
// - keyboard shortcuts: c (new task), / (search), ? (this help);
// - live updates (/static/live.js): Server-Sent Events from /events; on any change the page
//   fetches itself again and swaps its #results, so filters, sorting and paging stay as
//   they are.
(function () {
  "use strict";

  var help = document.getElementById("shortcuts");
  var hint = document.querySelector(".shortcuts-hint");
  if (hint) {
    hint.hidden = false;
    hint.querySelector("button").addEventListener("click", function () { toggleHelp(); });
  }

  function toggleHelp() {
    if (!help) { return; }
    if (help.open) { help.close(); } else { help.showModal(); }
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function focusSearch() {
    var search = document.getElementById("q");
    if (!search) { return false; }
    search.focus();
    search.select();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
    } else if (help && help.open) {
      return;
    } else if (event.key === "c") {
      event.preventDefault();
      window.location.assign("/new");
    } else if (event.key === "/") {
      event.preventDefault();
      if (!focusSearch()) { window.location.assign("/all#q"); }
    }
  });

  if (window.location.hash === "#q") { focusSearch(); }

  var results = document.getElementById("results");
  if (!results || !window.EventSource || !window.atesLive) { return; }

  // Changes often come in bursts (a reshuffle, a run of new tasks): one fetch for each burst.
  window.atesLive("/events", function (fresh) {
    var replacement = fresh.getElementById("results");
    var current = document.getElementById("results");
    if (replacement && current) { current.replaceWith(document.importNode(replacement, true)); }
  });
})();
