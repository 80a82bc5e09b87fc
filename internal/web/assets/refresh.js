// Replace the live part of the page every 2 s with a freshly rendered
// copy, so the scroll position and the language stay; on failure keep
// the last page and say so.
(function () {
  var note = document.getElementById("refresh-note");
  var text = note.textContent;
  function tick() {
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
      .finally(function () { setTimeout(tick, 2000); });
  }
  setTimeout(tick, 2000);
})();
