/* segbench report.html: the image browser. Every image's input, ground truth and each model's mask; overlay
   opacity; flip between models on the same frame; error view; zoom and pan shared by all panels; hover shows
   the true class and each model's class with its confidence when saved. State is mirrored on the root's data-* attributes. */
(function () {
  "use strict";
  var IGNORE_GREY = [128, 128, 128], WRONG_RED = [230, 20, 20];

  function el(tag, props, kids) {
    var e = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (k === "text") e.textContent = props[k]; else if (k === "cls") e.className = props[k]; else e.setAttribute(k, props[k]);
    });
    (kids || []).forEach(function (k) { e.append(k); });
    return e;
  }

  function decode(uri) {
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () {
        var c = document.createElement("canvas");
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        var ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0);
        resolve(ctx.getImageData(0, 0, c.width, c.height));
      };
      img.onerror = function () { reject(new Error("cannot decode a picture of the image browser")); };
      img.src = uri;
    });
  }

  window.sbBrowser = function (root, D) {
    var models = D.models, images = D.images, pending = {}, cache = {};
    var colourIndex = new Map();
    for (var i = 0; i < D.ncolours; i++) {
      var c = D.palette[i], key = (c[0] << 16) | (c[1] << 8) | c[2];
      if (!colourIndex.has(key)) colourIndex.set(key, i);
    }
    var S = { image: -1, model: 0, opacity: 0.6, errors: false, all: false, zoom: 1, tx: 0, ty: 0 };
    window.sbChunk = function (stem, rec) { if (pending[stem]) pending[stem](rec); };

    function labels(imageData) {
      var px = imageData.data, out = new Uint8Array(imageData.width * imageData.height);
      for (var p = 0, q = 0; p < out.length; p++, q += 4) {
        var k = colourIndex.get((px[q] << 16) | (px[q + 1] << 8) | px[q + 2]);
        out[p] = k === undefined ? D.ignore : k;
      }
      return out;
    }
    function record(k) {
      var stem = images[k].stem;
      if (D.embedded) return Promise.resolve(JSON.parse(document.getElementById("sb-img-" + k).textContent));
      return new Promise(function (resolve) {
        pending[stem] = resolve;
        document.head.appendChild(el("script", { src: D.folder + "/js/" + stem + ".js" }));
      });
    }
    function load(k) {
      if (cache[k]) return cache[k];
      cache[k] = record(k).then(function (rec) {
        var rows = Object.keys(rec.masks), conf = rec.confidence || {}, confRows = Object.keys(conf);
        var jobs = [decode(rec.image), rec.truth ? decode(rec.truth) : Promise.resolve(null)];
        rows.forEach(function (r) { jobs.push(decode(rec.masks[r])); });
        confRows.forEach(function (r) { jobs.push(decode(conf[r])); });
        return Promise.all(jobs).then(function (got) {
          var out = { rgb: got[0], truth: got[1] ? labels(got[1]) : null, masks: {}, confidence: {} };
          rows.forEach(function (r, j) { out.masks[r] = labels(got[2 + j]); });
          confRows.forEach(function (r, j) { out.confidence[r] = got[2 + rows.length + j].data; });
          return out;
        });
      });
      return cache[k];
    }

    /* ---- the page: toolbar, panels, hover line, legend, thumbnails */
    var sel = el("select", { id: "sb-image", "aria-label": "image" });
    images.forEach(function (im, k) { sel.appendChild(el("option", { value: String(k), text: im.name })); });
    var prev = el("button", { id: "sb-prev", type: "button", title: "previous image (\u2190)", text: "\u25C0" });
    var next = el("button", { id: "sb-next", type: "button", title: "next image (\u2192)", text: "\u25B6" });
    var modelButtons = models.map(function (m, j) {
      return el("button", { type: "button", "class": "sb-model", "data-row": String(m.row), title: "key " + (j + 1), text: m.label });
    });
    var opacity = el("input", { id: "sb-opacity", type: "range", min: "0", max: "100", value: "60", "aria-label": "mask opacity" });
    var errors = el("input", { id: "sb-errors", type: "checkbox" });
    var all = el("input", { id: "sb-all", type: "checkbox" });
    var zoomIn = el("button", { id: "sb-zoom-in", type: "button", text: "+" });
    var zoomOut = el("button", { id: "sb-zoom-out", type: "button", text: "\u2212" });
    var zoomReset = el("button", { id: "sb-zoom-reset", type: "button", text: "1:1" });
    var bar = el("div", { cls: "toolbar" }, [
      el("span", { cls: "group" }, [prev, sel, next]),
      el("span", { cls: "group", id: "sb-models", role: "group", "aria-label": "model shown" }, modelButtons),
      el("label", {}, ["Opacity ", opacity]),
      el("label", {}, [errors, " Errors"]), el("label", {}, [all, " All models"]),
      el("span", { cls: "group", "aria-label": "zoom" }, [zoomOut, zoomIn, zoomReset]),
    ]);
    var panelsBox = el("div", { cls: "panels", id: "sb-panels" });
    var hover = el("div", { cls: "hover", id: "sb-hover", text: "Hover a pixel to see its classes." });
    var legend = el("div", { cls: "legend", id: "sb-legend" });
    var thumbs = el("div", { cls: "thumbs", id: "sb-thumbs" });
    root.tabIndex = 0;
    root.append(bar, panelsBox, hover, legend, thumbs);
    if (!images.some(function (im) { return im.truth; })) errors.disabled = true;
    if (!models.length) all.disabled = true;

    function swatch(rgb, name) { return el("span", {}, [el("i", { style: "background:rgb(" + rgb.join(",") + ")" }), name]); }
    D.classes.forEach(function (name, k) { legend.appendChild(swatch(D.palette[k], name)); });
    legend.appendChild(swatch([0, 0, 0], "ignore"));
    legend.appendChild(swatch(WRONG_RED, "wrong (error view)"));
    legend.appendChild(swatch(IGNORE_GREY, "ignored (error view)"));

    var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { e.target.src = e.target.getAttribute("data-src"); observer.unobserve(e.target); }
      });
    }, { root: thumbs, rootMargin: "200px" }) : null;
    var thumbButtons = images.map(function (im, k) {
      var img = el("img", { alt: im.name, decoding: "async", "data-src": im.thumb, width: "96" });
      if (observer) observer.observe(img); else img.src = im.thumb;
      var b = el("button", { type: "button", title: im.name, "data-image": im.stem }, [img]);
      b.addEventListener("click", function () { show(k); });
      thumbs.appendChild(b);
      return b;
    });

    /* ---- panels: one canvas each, drawn from the decoded labels */
    var panels = [];
    function panelList() {
      var im = images[S.image], list = [{ kind: "image", title: "image " + im.name }];
      if (im.truth) list.push({ kind: "truth", title: "ground truth" });
      var shown = S.all ? models.map(function (m, j) { return j; }) : (models.length ? [S.model] : []);
      shown.forEach(function (j) {
        var m = models[j], v = im.miou[String(m.row)];
        var title = (S.all ? "" : "model " + (j + 1) + "/" + models.length + ": ") + m.label +
          (v === undefined || v === null ? "" : " \u00B7 mIoU " + (100 * v).toFixed(1) + "%");
        list.push({ kind: "model", row: String(m.row), title: title });
      });
      return list;
    }
    function build(data) {
      panelsBox.textContent = "";
      panels = panelList().map(function (p) {
        var canvas = el("canvas", { width: String(data.rgb.width), height: String(data.rgb.height) });
        var view = el("div", { cls: "view" }, [canvas]);
        var fig = el("figure", { cls: "panel", "data-kind": p.kind, "data-row": p.row || "" }, [el("figcaption", { text: p.title }), view]);
        panelsBox.appendChild(fig);
        wire(view, p);
        p.canvas = canvas;
        return p;
      });
    }
    function paint(data) {
      var a = S.opacity, rgb = data.rgb.data, n = data.rgb.width * data.rgb.height;
      panels.forEach(function (p) {
        var ctx = p.canvas.getContext("2d"), out = ctx.createImageData(data.rgb.width, data.rgb.height), o = out.data;
        var lab = p.kind === "truth" ? data.truth : p.kind === "model" ? data.masks[p.row] : null;
        var err = p.kind === "model" && S.errors && data.truth;
        for (var q = 0, k = 0; k < n; k++, q += 4) {
          var col = null;
          if (lab) {
            if (err) col = data.truth[k] === D.ignore ? IGNORE_GREY : (lab[k] !== data.truth[k] ? WRONG_RED : null);
            else col = D.palette[lab[k]];
          }
          for (var ch = 0; ch < 3; ch++) o[q + ch] = col ? rgb[q + ch] * (1 - a) + col[ch] * a : rgb[q + ch];
          o[q + 3] = 255;
        }
        ctx.putImageData(out, 0, 0);
      });
      transform();
    }

    /* ---- zoom and pan: one transform for every panel, in fractions of the panel */
    function clamp() {
      S.zoom = Math.min(32, Math.max(1, S.zoom));
      S.tx = Math.min(0, Math.max(1 - S.zoom, S.tx));
      S.ty = Math.min(0, Math.max(1 - S.zoom, S.ty));
    }
    function transform() {
      clamp();
      panels.forEach(function (p) {
        p.canvas.style.transform = "translate(" + (S.tx * 100) + "%," + (S.ty * 100) + "%) scale(" + S.zoom + ")";
      });
      root.setAttribute("data-zoom", S.zoom.toFixed(2));
    }
    function zoomAt(f, u, v) {
      var px = (u - S.tx) / S.zoom, py = (v - S.ty) / S.zoom;
      S.zoom *= f;
      clamp();
      S.tx = u - px * S.zoom;
      S.ty = v - py * S.zoom;
      transform();
    }
    function wire(view, p) {
      var drag = null;
      view.addEventListener("wheel", function (e) {
        e.preventDefault();
        var r = view.getBoundingClientRect();
        zoomAt(e.deltaY < 0 ? 1.25 : 0.8, (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
      }, { passive: false });
      view.addEventListener("pointerdown", function (e) {
        drag = { x: e.clientX, y: e.clientY, tx: S.tx, ty: S.ty, moved: false };
        view.setPointerCapture(e.pointerId);
      });
      view.addEventListener("pointermove", function (e) {
        var r = view.getBoundingClientRect();
        if (drag) {
          var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
          if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
          S.tx = drag.tx + dx / r.width;
          S.ty = drag.ty + dy / r.height;
          transform();
        }
        describe((e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
      });
      view.addEventListener("pointerup", function () {
        var click = drag && !drag.moved;
        drag = null;
        if (click && p.kind === "model" && !S.all) flip(1);
      });
    }

    /* ---- hover: the true class and each model's class under the pointer */
    function className(k) { return k === D.ignore ? "ignore" : (D.classes[k] || "class " + k); }
    function describe(u, v) {
      var data = current;
      if (!data) return;
      var w = data.rgb.width, h = data.rgb.height;
      var x = Math.floor((u - S.tx) / S.zoom * w), y = Math.floor((v - S.ty) / S.zoom * h);
      if (x < 0 || y < 0 || x >= w || y >= h) return;
      var k = y * w + x, parts = ["x " + x + ", y " + y];
      if (data.truth) parts.push("truth: " + className(data.truth[k]));
      models.forEach(function (m) {
        var lab = data.masks[String(m.row)];
        if (!lab) return;
        var mark = data.truth && data.truth[k] !== D.ignore ? (lab[k] === data.truth[k] ? " \u2713" : " \u2717") : "";
        var conf = data.confidence[String(m.row)];
        var pct = conf ? " (" + Math.round(conf[4 * k] / 2.55) + "%)" : "";
        parts.push(m.label + ": " + className(lab[k]) + pct + mark);
      });
      hover.textContent = parts.join(" \u00B7 ");
    }

    /* ---- state changes */
    var current = null, token = 0;
    function sync() {
      var im = images[S.image];
      root.setAttribute("data-image", im.stem);
      root.setAttribute("data-model", models.length ? models[S.model].label : "");
      root.setAttribute("data-opacity", String(S.opacity));
      root.setAttribute("data-view", S.errors ? "errors" : "mask");
      sel.value = String(S.image);
      modelButtons.forEach(function (b, j) { b.setAttribute("aria-pressed", String(j === S.model)); });
      thumbButtons.forEach(function (b, k) { b.classList.toggle("on", k === S.image); });
    }
    function redraw() {
      if (!current) return;
      build(current);
      paint(current);
      sync();
    }
    function show(k) {
      k = (k + images.length) % images.length;
      var mine = ++token;
      S.image = k;
      root.setAttribute("data-ready", "0");
      sync();
      thumbButtons[k].scrollIntoView({ block: "nearest", inline: "nearest" });
      return load(k).then(function (data) {
        if (mine !== token) return;
        current = data;
        redraw();
        root.setAttribute("data-ready", "1");
      });
    }
    function flip(step) {
      if (!models.length) return;
      S.model = (S.model + step + models.length) % models.length;
      redraw();
    }
    prev.addEventListener("click", function () { show(S.image - 1); });
    next.addEventListener("click", function () { show(S.image + 1); });
    sel.addEventListener("change", function () { show(+sel.value); });
    modelButtons.forEach(function (b, j) { b.addEventListener("click", function () { S.model = j; redraw(); }); });
    opacity.addEventListener("input", function () { S.opacity = opacity.value / 100; if (current) paint(current); sync(); });
    errors.addEventListener("change", function () { S.errors = errors.checked; if (current) paint(current); sync(); });
    all.addEventListener("change", function () { S.all = all.checked; redraw(); });
    zoomIn.addEventListener("click", function () { zoomAt(1.5, 0.5, 0.5); });
    zoomOut.addEventListener("click", function () { zoomAt(1 / 1.5, 0.5, 0.5); });
    zoomReset.addEventListener("click", function () { S.zoom = 1; S.tx = S.ty = 0; transform(); });
    root.addEventListener("keydown", function (e) {
      var t = e.target.tagName;
      if (t === "SELECT" || (t === "INPUT" && e.target.type === "range")) return;
      if (e.key === "ArrowRight") show(S.image + 1);
      else if (e.key === "ArrowLeft") show(S.image - 1);
      else if (e.key === " ") flip(e.shiftKey ? -1 : 1);
      else if (/^[1-9]$/.test(e.key) && +e.key <= models.length) { S.model = +e.key - 1; redraw(); }
      else if (e.key === "e" && !errors.disabled) { errors.checked = !errors.checked; errors.dispatchEvent(new Event("change")); }
      else if (e.key === "0") zoomReset.click();
      else if (e.key === "+" || e.key === "=") zoomIn.click();
      else if (e.key === "-") zoomOut.click();
      else return;
      e.preventDefault();
    });
    function fromHash() {
      var m = /^#image=(.+)$/.exec(location.hash);
      if (!m) return false;
      var stem = decodeURIComponent(m[1]);
      var k = images.findIndex(function (im) { return im.stem === stem; });
      if (k < 0) return false;
      show(k);
      root.scrollIntoView({ block: "start" });
      return true;
    }
    window.addEventListener("hashchange", fromHash);
    if (images.length && !fromHash()) show(0);
  };
})();
