// Live updates of a dashboard page; every page works the same without them.
// atesLive(events, swap, delayOf) listens to the Server-Sent Events at the address
// `events`: after a "change" (delayOf(event) milliseconds later, 150 by default; a burst
// of changes makes one fetch) or a reconnection, the page fetches itself again and hands
// the fresh document to swap(fresh), so its filters and paging stay as they are.
// <html data-live> says whether it listens ("on"/"off"), data-refreshed when it last fetched.
window.atesLive = function (events, swap, delayOf) {
  "use strict";

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
        swap(new DOMParser().parseFromString(html, "text/html"));
        document.documentElement.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next change or reconnection tries again */ })
      .then(function () {
        fetching = false;
        if (again) { again = false; refresh(); }
      });
  }

  function soon(delay) {
    if (pending === null) { pending = window.setTimeout(refresh, delay); }
  }

  var source = new EventSource(events);
  source.addEventListener("ready", function () {
    if (connected) { soon(150); }  // reconnected: something may have changed meanwhile
    connected = true;
    document.documentElement.setAttribute("data-live", "on");
  });
  source.addEventListener("change", function (event) {
    soon(delayOf ? delayOf(event) : 150);
  });
  source.addEventListener("error", function () {
    document.documentElement.setAttribute("data-live", "off");
  });
};
