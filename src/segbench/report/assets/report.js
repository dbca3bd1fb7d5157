/* segbench report.html: sortable tables, the Pareto plot's tooltips and backend toggles, the image browser.
   Plain JavaScript, no library, no network: every picture is a data URI in this page or a script beside it. */
(function () {
  "use strict";
  var DASH = "\u2013";

  /* ---------- sortable tables: click (or Enter on) a header; numeric columns are the right-aligned ones */
  function cellNumber(td) {
    var m = /^[+-]?\d+(\.\d+)?/.exec(td.textContent.trim());
    return m ? parseFloat(m[0]) : null;
  }
  function sortTable(table, col, th) {
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir);
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows), sign = dir === "ascending" ? 1 : -1;
    var numeric = th.classList.contains("r");
    rows.sort(function (a, b) {
      if (numeric) {
        var x = cellNumber(a.cells[col]), y = cellNumber(b.cells[col]);
        if (x === null && y === null) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return sign * (x - y);
      }
      return sign * a.cells[col].textContent.localeCompare(b.cells[col].textContent);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function makeSortable(table) {
    if (!table.tHead || !table.tBodies.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.classList.add("sortable");
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      th.title = "sort by this column";
      var go = function () { sortTable(table, col, th); };
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
    });
  }

  /* ---------- per-image table: an "A - B" column for any two models */
  function initDelta(table) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells), cols = [];
    heads.forEach(function (th, i) { var t = th.textContent; if (/ mIoU \(%\)$/.test(t)) cols.push([t.replace(/ mIoU \(%\)$/, ""), i]); });
    if (cols.length < 2) return;
    var th = document.createElement("th");
    th.className = "r";
    th.textContent = "A \u2212 B (points)";
    table.tHead.rows[0].appendChild(th);
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) { var td = tr.insertCell(-1); td.className = "r"; });
    var box = document.createElement("div"), selects = [];
    box.className = "toolbar";
    ["A", "B"].forEach(function (name, k) {
      var label = document.createElement("label"), sel = document.createElement("select");
      sel.id = "sb-delta-" + name.toLowerCase();
      cols.forEach(function (c, j) { var o = document.createElement("option"); o.value = String(c[1]); o.textContent = c[0]; sel.appendChild(o); });
      sel.selectedIndex = k;
      label.append(name + " ", sel);
      box.appendChild(label);
      selects.push(sel);
      sel.addEventListener("change", update);
    });
    function update() {
      var ia = +selects[0].value, ib = +selects[1].value;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
        var a = cellNumber(tr.cells[ia]), b = cellNumber(tr.cells[ib]), td = tr.cells[tr.cells.length - 1];
        td.textContent = a === null || b === null ? DASH : (a - b >= 0 ? "+" : "") + (a - b).toFixed(1);
      });
    }
    update();
    var wrap = table.parentNode;
    wrap.parentNode.insertBefore(box, wrap);
  }

  /* ---------- Pareto and roofline plots: tooltips and backend toggles */
  function initPlot(plot) {
    var tip = plot.querySelector(".tip"), pts = plot.querySelectorAll(".pt");
    function show(pt) {
      tip.textContent = "";
      pt.getAttribute("data-tip").split("\n").forEach(function (line, i) {
        var d = document.createElement(i ? "div" : "strong");
        d.textContent = line;
        tip.appendChild(d);
        if (!i) tip.appendChild(document.createElement("br"));
      });
      var r = pt.getBoundingClientRect(), pr = plot.getBoundingClientRect();
      tip.hidden = false;
      var left = r.right - pr.left + 8;
      if (left + tip.offsetWidth > pr.width) left = Math.max(0, r.left - pr.left - tip.offsetWidth - 8);
      tip.style.left = left + "px";
      tip.style.top = Math.max(0, r.top - pr.top - 10) + "px";
      pts.forEach(function (p) { p.classList.toggle("on", p === pt); });
    }
    pts.forEach(function (pt) {
      pt.setAttribute("tabindex", "0");
      pt.addEventListener("mouseenter", function () { show(pt); });
      pt.addEventListener("focus", function () { show(pt); });
      pt.addEventListener("mouseleave", function () { tip.hidden = true; pt.classList.remove("on"); });
      pt.addEventListener("blur", function () { tip.hidden = true; pt.classList.remove("on"); });
    });
    var backends = [];
    plot.querySelectorAll("[data-backend]").forEach(function (el) {
      var b = el.getAttribute("data-backend");
      if (backends.indexOf(b) < 0) backends.push(b);
    });
    var box = document.createElement("div");
    box.className = "toggles";
    box.append("Backends:");
    backends.forEach(function (b) {
      var label = document.createElement("label"), cb = document.createElement("input");
      cb.type = "checkbox";
      cb.checked = true;
      cb.value = b;
      cb.addEventListener("change", function () {
        plot.querySelectorAll("[data-backend]").forEach(function (el) {
          if (el.getAttribute("data-backend") === b) el.classList.toggle("off", !cb.checked);
        });
      });
      label.append(cb, " " + b);
      box.appendChild(label);
    });
    plot.parentNode.insertBefore(box, plot);
  }

  window.sbInit = { makeSortable: makeSortable, initDelta: initDelta, initPlot: initPlot };
  document.addEventListener("DOMContentLoaded", function () {
    var perImage = document.getElementById("sb-per-image");
    if (perImage) initDelta(perImage);
    document.querySelectorAll("main table").forEach(makeSortable);
    ["sb-pareto", "sb-roofline"].forEach(function (id) {
      var plot = document.getElementById(id);
      if (plot) initPlot(plot);
    });
    var root = document.getElementById("sb-browser");
    if (root && window.sbBrowser) window.sbBrowser(root, JSON.parse(document.getElementById("sb-data").textContent));
  });
})();
