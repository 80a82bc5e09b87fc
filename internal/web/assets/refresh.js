// Replace the live part of the page every 2 s with a freshly rendered
// copy, so the scroll position and the language stay; on failure keep
// the last page and say so. An operator action asks for a refresh at
// once with the "hazgate:refresh" event.
(function () {
  var note = document.getElementById("refresh-note");
  var text = note.textContent;
  var timer = null, busy = false, again = false;
  function tick() {
    clearTimeout(timer);
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live");
        if (fresh) document.getElementById("live").replaceWith(fresh);
        // counted for the browser test, and for a curious integrator
        document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
        note.textContent = text;
      })
      .catch(function () { note.textContent = note.dataset.paused; })
      .finally(function () {
        busy = false;
        if (again) { again = false; tick(); return; }
        timer = setTimeout(tick, 2000);
      });
  }
  document.addEventListener("hazgate:refresh", tick);
  timer = setTimeout(tick, 2000);
})();
