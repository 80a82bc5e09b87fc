// Operator actions: acknowledge or shelve an alarm, reset or bypass an
// interlock. Each is a same-origin JSON POST (the server refuses
// cross-origin ones); the server records it as an event with who (the
// account and the name typed here) and when. The buttons live in the
// refreshed part of the page, so clicks are caught on the document.
(function () {
  var result = document.getElementById("op-result");
  var nameInput = document.getElementById("op-name");
  var dialog = document.getElementById("op-dialog");
  var pending = null; // what the dialog will post: {path, body, what}
  try { nameInput.value = localStorage.getItem("hazgate-operator") || ""; } catch (e) { /* storage off */ }
  nameInput.addEventListener("change", function () {
    try { localStorage.setItem("hazgate-operator", nameInput.value.trim()); } catch (e) { /* storage off */ }
  });
  function show(ok, msg) {
    result.hidden = false;
    result.className = ok ? "op-ok" : "op-failed";
    result.textContent = (ok ? result.dataset.ok : result.dataset.failed) + " " + msg;
  }
  function post(path, body, what, button) {
    body.by = nameInput.value.trim();
    if (button) button.disabled = true;
    return fetch(path, {
      method: "POST", cache: "no-store", credentials: "same-origin",
      // so that browsers without Sec-Fetch-Site still send our Origin
      referrerPolicy: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    })
      .then(function (r) {
        return r.json().catch(function () { return { ok: false, error: "HTTP " + r.status }; });
      })
      .then(function (rep) {
        show(rep.ok, rep.ok ? what + " (" + rep.who + ")" : what + ": " + rep.error);
      })
      .catch(function (e) { show(false, what + ": " + e); })
      .finally(function () {
        if (button) button.disabled = false;
        document.dispatchEvent(new Event("hazgate:refresh"));
      });
  }
  // ask asks for a duration and a reason, then posts.
  function ask(title, name, path, body, what) {
    pending = { path: path, body: body, what: what };
    document.getElementById("op-dialog-title").textContent = title;
    document.getElementById("op-dialog-name").textContent = name;
    document.getElementById("op-reason").value = "";
    dialog.returnValue = ""; // Escape keeps the last one: it must not be "ok"
    dialog.showModal();
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-op]");
    if (!b) return;
    var op = b.dataset.op, name = b.dataset.name, tag = b.dataset.tag, level = b.dataset.level;
    var what = b.textContent + " " + (name || tag + " " + level);
    if (op === "ack") {
      post("api/alarms/ack", { tag: tag, level: level }, what, b);
    } else if (op === "unshelve") {
      post("api/alarms/unshelve", { tag: tag, level: level }, what, b);
    } else if (op === "shelve") {
      ask(dialog.dataset.titleShelve, tag + " " + level, "api/alarms/shelve", { tag: tag, level: level }, what);
    } else if (op === "reset") {
      if (!window.confirm(result.dataset.confirmReset.replace("%s", name))) return;
      post("api/interlocks/reset", { name: name }, what, b);
    } else if (op === "unbypass") {
      post("api/interlocks/unbypass", { name: name }, what, b);
    } else if (op === "bypass") {
      ask(dialog.dataset.titleBypass, name, "api/interlocks/bypass", { name: name }, what);
    }
  });
  dialog.addEventListener("close", function () {
    var p = pending;
    pending = null;
    if (!p || dialog.returnValue !== "ok") return;
    p.body["for"] = document.getElementById("op-for").value;
    p.body.reason = document.getElementById("op-reason").value.trim();
    post(p.path, p.body, p.what + " " + p.body["for"]);
  });
})();
