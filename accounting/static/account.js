// Live updates of an account page; it works the same without them.
// Server-Sent Events from the address in #account's data-events say when something was
// booked for the account; the page then fetches itself again (/static/live.js) and swaps
// its figures, statement and per-day table, so its filters and paging stay as they are.
(function () {
  "use strict";

  var account = document.getElementById("account");
  if (!account || !account.dataset.events || !window.EventSource || !window.atesLive) {
    return;
  }

  var REGIONS = ["figures", "statement", "days"];

  function swap(fresh) {
    REGIONS.forEach(function (id) {
      var replacement = fresh.getElementById(id);
      var current = document.getElementById(id);
      if (replacement && current) {
        // the contents only: a screen reader announces what changes inside a live region
        current.replaceChildren.apply(current, Array.prototype.map.call(
          replacement.childNodes, function (node) { return document.importNode(node, true); }));
      }
    });
  }

  function delayOf(event) {
    // Bookings often come in bursts (one fetch for each); a day's close touches every
    // account: spread the pages' fetches over half a second.
    var everyone = false;
    try { everyone = JSON.parse(event.data).accounts === "all"; } catch (ignored) { /* resync */ }
    return everyone ? 150 + Math.random() * 500 : 150;
  }

  window.atesLive(account.dataset.events, swap, delayOf);
})();
