(function () {
  "use strict";
  // prefaudit pair browser. Data comes from the inert JSON block #pb-data; every dataset string is put on
  // the page with textContent (never innerHTML), so nothing in the data can become markup or script.
  var dataEl = document.getElementById("pb-data");
  var list = document.getElementById("pb-list");
  if (!dataEl || !list) { return; }
  var D = JSON.parse(dataEl.textContent);
  var VIEW = 400;
  var $ = function (id) { return document.getElementById(id); };
  var ui = { search: $("pb-search"), analyzer: $("pb-analyzer"), reason: $("pb-reason"), sort: $("pb-sort"),
             size: $("pb-size"), status: $("pb-status"), first: $("pb-first"), prev: $("pb-prev"),
             next: $("pb-next"), last: $("pb-last") };
  var rows = D.rows.map(function (r, i) {
    return { rank: i + 1, id: r[0], p: r[1], c: r[2], r: r[3], f: r[4], s: r[5], why: r[6], m: r[7], cut: r[8],
             hay: null };
  });
  var state = { page: 0, view: rows };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function hay(x) {
    if (x.hay === null) {
      x.hay = [x.id, x.p, x.c, x.r, x.why.join(" "), x.m.join(" ")].join("\u0000").toLowerCase();
    }
    return x.hay;
  }
  function minScore(x) {
    var best = Infinity;
    x.s.forEach(function (v) { if (v !== null && v < best) { best = v; } });
    return best;
  }
  function textBlock(label, text, tail, wasCut) {
    var full = text.trim();
    var box = el("div");
    box.appendChild(el("div", "lab", label + (wasCut ? " (cut for the report)" : "")));
    var t = el("div", "txt");
    var long = full.length > VIEW;
    var shortText = !long ? full : (tail ? "\u2026" + full.slice(full.length - VIEW + 1) : full.slice(0, VIEW - 1) + "\u2026");
    t.textContent = shortText;
    box.appendChild(t);
    if (long) {
      var b = el("button", "more", "show all (" + full.length + " characters)");
      b.type = "button";
      b.addEventListener("click", function () {
        var open = b.getAttribute("data-open") === "1";
        t.textContent = open ? shortText : full;
        b.textContent = open ? "show all (" + full.length + " characters)" : "show less";
        b.setAttribute("data-open", open ? "0" : "1");
      });
      box.appendChild(b);
    }
    return box;
  }
  function card(x) {
    var art = el("article", "ex");
    var hd = el("div", "hd");
    hd.appendChild(el("span", "", "#" + x.rank));
    var pid = el("code", "pid", x.id);
    hd.appendChild(pid);
    x.f.forEach(function (i) { hd.appendChild(el("span", "badge flag", D.analyzers[i])); });
    var sc = [];
    D.analyzers.forEach(function (a, i) { if (x.s[i] !== null) { sc.push(a + " " + x.s[i].toFixed(3)); } });
    if (sc.length) { hd.appendChild(el("span", "note", "scores: " + sc.join(", "))); }
    x.why.forEach(function (w) { hd.appendChild(el("span", "badge reason", w)); });
    D.meta.forEach(function (k, i) {
      if (x.m[i] !== null && x.m[i] !== "") { hd.appendChild(el("span", "note d", k + ": " + x.m[i])); }
    });
    art.appendChild(hd);
    var cols = el("div", "cols");
    cols.appendChild(textBlock("prompt", x.p, true, x.cut.indexOf(0) >= 0));
    cols.appendChild(textBlock("chosen", x.c, false, x.cut.indexOf(1) >= 0));
    cols.appendChild(textBlock("rejected", x.r, false, x.cut.indexOf(2) >= 0));
    art.appendChild(cols);
    return art;
  }
  function compute() {
    var q = (ui.search.value || "").trim().toLowerCase();
    var a = ui.analyzer.value === "" ? -1 : Number(ui.analyzer.value);
    var reason = ui.reason.value;
    var out = rows.filter(function (x) {
      if (a >= 0 && x.f.indexOf(a) < 0) { return false; }
      if (reason !== "" && x.why.indexOf(reason) < 0) { return false; }
      return q === "" || hay(x).indexOf(q) >= 0;
    });
    var key = ui.sort.value;
    if (key === "id") {
      out.sort(function (u, v) { return u.id < v.id ? -1 : (u.id > v.id ? 1 : 0); });
    } else if (key === "score") {
      out.sort(function (u, v) { return (minScore(u) - minScore(v)) || (u.rank - v.rank); });
    } else if (key.indexOf("score:") === 0) {
      var i = Number(key.slice(6));
      var val = function (x) { return x.s[i] === null ? Infinity : x.s[i]; };
      out.sort(function (u, v) { return (val(u) - val(v)) || (u.rank - v.rank); });
    } else if (key === "flags") {
      out.sort(function (u, v) { return (u.f.length - v.f.length) || (u.rank - v.rank); });
    }
    state.view = out;
    state.page = 0;
    render();
  }
  function render() {
    var size = Number(ui.size.value) || 25;
    var pages = Math.max(1, Math.ceil(state.view.length / size));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var start = state.page * size;
    var frag = document.createDocumentFragment();
    state.view.slice(start, start + size).forEach(function (x) { frag.appendChild(card(x)); });
    list.textContent = "";
    list.appendChild(frag);
    ui.status.textContent = state.view.length === 0 ? "no pair matches" :
      "pairs " + (start + 1) + "\u2013" + Math.min(start + size, state.view.length) + " of " +
      state.view.length + " matching (page " + (state.page + 1) + " of " + pages + ")";
    ui.first.disabled = ui.prev.disabled = state.page === 0;
    ui.next.disabled = ui.last.disabled = state.page >= pages - 1;
  }
  var timer = null;
  ui.search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(compute, 150); });
  [ui.analyzer, ui.reason, ui.sort].forEach(function (c) { c.addEventListener("change", compute); });
  ui.size.addEventListener("change", function () { state.page = 0; render(); });
  ui.first.addEventListener("click", function () { state.page = 0; render(); });
  ui.prev.addEventListener("click", function () { state.page -= 1; render(); });
  ui.next.addEventListener("click", function () { state.page += 1; render(); });
  ui.last.addEventListener("click", function () { state.page = 1e9; render(); });
  document.documentElement.setAttribute("data-browser", "ready");
  compute();
}());
