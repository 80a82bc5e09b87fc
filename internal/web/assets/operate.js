// Operator actions: acknowledge an alarm, reset or bypass an interlock.
// Each is a same-origin JSON POST (the server refuses cross-origin ones);
// the server records it as an event with who (the account and the name
// typed here) and when. The buttons live in the refreshed part of the
// page, so clicks are caught on the document.
(function () {
  var result = document.getElementById("op-result");
  var nameInput = document.getElementById("op-name");
  var dialog = document.getElementById("bypass-dialog");
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
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-op]");
    if (!b) return;
    var op = b.dataset.op, name = b.dataset.name;
    if (op === "ack") {
      post("api/alarms/ack", { tag: b.dataset.tag, level: b.dataset.level }, b.textContent + " " + b.dataset.tag + " " + b.dataset.level, b);
    } else if (op === "reset") {
      if (!window.confirm(result.dataset.confirmReset.replace("%s", name))) return;
      post("api/interlocks/reset", { name: name }, b.textContent + " " + name, b);
    } else if (op === "unbypass") {
      post("api/interlocks/unbypass", { name: name }, b.textContent + " " + name, b);
    } else if (op === "bypass") {
      dialog.dataset.name = name;
      dialog.dataset.what = b.textContent + " " + name;
      document.getElementById("bypass-name").textContent = name;
      document.getElementById("bypass-reason").value = "";
      dialog.showModal();
    }
  });
  dialog.addEventListener("close", function () {
    if (dialog.returnValue !== "ok") return;
    var d = document.getElementById("bypass-for").value;
    post("api/interlocks/bypass", {
      name: dialog.dataset.name, for: d, reason: document.getElementById("bypass-reason").value.trim()
    }, dialog.dataset.what + " " + d);
  });
})();
