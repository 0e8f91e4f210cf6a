// The board's small enhancements; every page works the same without them.
// - keyboard shortcuts: c (new task), / (search), ? (this help);
// - live updates: Server-Sent Events from /events; on any change the page fetches itself
//   again and swaps its #results, so filters, sorting and paging stay as they are.
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
  if (!results || !window.EventSource) { return; }

  var connected = false;
  var pending = null;
  var fetching = false;
  var again = false;

  function refresh() {
    pending = null;
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("results");
        var current = document.getElementById("results");
        if (fresh && current) { current.replaceWith(document.importNode(fresh, true)); }
        document.documentElement.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next change or reconnection tries again */ })
      .then(function () {
        fetching = false;
        if (again) { again = false; refresh(); }
      });
  }

  function soon() {
    // Changes often come in bursts (a reshuffle, a run of new tasks): one fetch for each burst.
    if (pending === null) { pending = window.setTimeout(refresh, 150); }
  }

  var source = new EventSource("/events");
  source.addEventListener("ready", function () {
    if (connected) { soon(); }  // reconnected: something may have changed meanwhile
    connected = true;
    document.documentElement.setAttribute("data-live", "on");
  });
  source.addEventListener("change", soon);
  source.addEventListener("error", function () {
    document.documentElement.setAttribute("data-live", "off");
  });
})();
