// Live updates of an account page; it works the same without them.
// Server-Sent Events from the address in #account's data-events say when something was
// booked for the account; the page then fetches itself again and swaps its figures,
// statement and per-day table, so its filters and paging stay as they are.
(function () {
  "use strict";

  var account = document.getElementById("account");
  if (!account || !account.dataset.events || !window.EventSource) { return; }

  var REGIONS = ["figures", "statement", "days"];
  var connected = false;
  var pending = null;
  var fetching = false;
  var again = false;

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    REGIONS.forEach(function (id) {
      var replacement = fresh.getElementById(id);
      var current = document.getElementById(id);
      if (replacement && current) {
        // the contents only: a screen reader announces what changes inside a live region
        current.replaceChildren.apply(current, Array.prototype.map.call(
          replacement.childNodes, function (node) { return document.importNode(node, true); }));
      }
    });
    document.documentElement.setAttribute("data-refreshed", String(Date.now()));
  }

  function refresh() {
    pending = null;
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) { swap(html); } })
      .catch(function () { /* the next change or reconnection tries again */ })
      .then(function () {
        fetching = false;
        if (again) { again = false; refresh(); }
      });
  }

  function soon(delay) {
    // Bookings often come in bursts: one fetch for each burst.
    if (pending === null) { pending = window.setTimeout(refresh, delay); }
  }

  function changed(event) {
    var everyone = false;
    try { everyone = JSON.parse(event.data).accounts === "all"; } catch (ignored) { /* resync */ }
    // A day's close touches every account: spread the pages' fetches over half a second.
    soon(everyone ? 150 + Math.random() * 500 : 150);
  }

  var source = new EventSource(account.dataset.events);
  source.addEventListener("ready", function () {
    if (connected) { soon(150); }  // reconnected: something may have been booked meanwhile
    connected = true;
    document.documentElement.setAttribute("data-live", "on");
  });
  source.addEventListener("change", changed);
  source.addEventListener("error", function () {
    document.documentElement.setAttribute("data-live", "off");
  });
})();
