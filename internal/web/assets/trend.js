// Draws the trend of one tag from the local history (/api/history) as
// inline SVG: the band between the lowest and highest value of each slice
// and the mean as a line; red ticks on the time axis mark slices with bad
// samples. No library and nothing from elsewhere: a laptop on site may
// have no internet. The section sits outside the part refresh.js
// replaces, so the chosen tag stays; it reloads itself every 10 s.
(function () {
  var box = document.getElementById("trend");
  if (!box) return;
  var sel = document.getElementById("trend-tag");
  var span = document.getElementById("trend-span");
  var svg = document.getElementById("trend-svg");
  var note = document.getElementById("trend-note");
  var link = document.getElementById("trend-export");
  var NS = "http://www.w3.org/2000/svg";
  var W = 900, H = 260, L = 64, R = 12, T = 10, B = 26;

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  }
  function num(v) {
    var s = Math.abs(v) >= 1000 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3);
    return s.indexOf(".") >= 0 ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
  }
  // a time label: with the date over more than 36 h, with seconds
  // under 10 min
  function when(ms, span) {
    var d = new Date(ms), p = function (n) { return (n < 10 ? "0" : "") + n; };
    var hm = p(d.getHours()) + ":" + p(d.getMinutes());
    if (span < 600000) return hm + ":" + p(d.getSeconds());
    return span > 36 * 3600000 ? p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + hm : hm;
  }
  function draw(data) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var good = data.points.filter(function (p) { return p.count > 0; });
    svg.setAttribute("data-tag", data.tag);
    svg.setAttribute("data-points", String(good.length));
    if (!data.points.length) { note.textContent = box.getAttribute("data-empty"); return; }
    var t0 = Date.parse(data.from), t1 = Date.parse(data.to);
    var lo = Infinity, hi = -Infinity;
    good.forEach(function (p) { lo = Math.min(lo, p.min); hi = Math.max(hi, p.max); });
    if (!good.length) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    var pad = (hi - lo) * 0.05; lo -= pad; hi += pad;
    var x = function (ms) { return L + (ms - t0) / (t1 - t0) * (W - L - R); };
    var y = function (v) { return T + (hi - v) / (hi - lo) * (H - T - B); };
    for (var i = 0; i <= 4; i++) {
      var v = lo + (hi - lo) * i / 4;
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "grid" });
      el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, num(v));
    }
    for (var j = 0; j <= 4; j++) {
      var ms = t0 + (t1 - t0) * j / 4;
      el("text", { x: x(ms), y: H - 6, "text-anchor": j === 0 ? "start" : j === 4 ? "end" : "middle" }, when(ms, t1 - t0));
    }
    var upper = [], lower = [], mean = [];
    good.forEach(function (p) {
      var px = x(Date.parse(p.t)).toFixed(1);
      upper.push(px + "," + y(p.max).toFixed(1));
      lower.unshift(px + "," + y(p.min).toFixed(1));
      mean.push(px + "," + y(p.mean).toFixed(1));
    });
    if (good.length) {
      el("polygon", { points: upper.concat(lower).join(" "), "class": "band" });
      el("polyline", { points: mean.join(" "), "class": "mean" });
    }
    if (good.length <= 60) {
      // few points (a fresh start, a short span): mark each one
      good.forEach(function (p) {
        el("circle", { cx: x(Date.parse(p.t)).toFixed(1), cy: y(p.mean).toFixed(1), r: 2.5, "class": "dot" });
      });
    }
    data.points.forEach(function (p) {
      if (p.bad > 0) {
        var bx = x(Date.parse(p.t));
        el("line", { x1: bx, x2: bx, y1: H - B, y2: H - B + 6, "class": "badtick" });
      }
    });
    note.textContent = good.length ? "" : box.getAttribute("data-empty");
  }
  function load() {
    var tag = sel.value;
    if (!tag) return;
    var q = "tag=" + encodeURIComponent(tag) + "&span=" + encodeURIComponent(span.value);
    link.setAttribute("href", "api/history/export?" + q + "&format=csv");
    fetch("api/history?" + q + "&points=300", { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) return r.text().then(function (t) { throw new Error(t); });
        return r.json();
      })
      .then(draw)
      .catch(function (e) { note.textContent = box.getAttribute("data-failed") + " " + e.message; });
  }
  sel.addEventListener("change", load);
  span.addEventListener("change", load);
  load();
  setInterval(load, 10000);
})();
