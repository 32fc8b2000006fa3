// Depicted review UI: keyboard shortcuts, view toggles (side by side,
// overlay slider, blink). Plain JavaScript, no build step, no inline code.
(function () {
  "use strict";

  // Set once a shortcut leaves the page, so a second key press cannot
  // act on the page that is going away.
  var leaving = false;

  function submit(id) {
    var b = document.getElementById(id);
    if (b) { leaving = true; b.click(); }
  }

  function go(id) {
    var a = document.getElementById(id);
    if (a && a.href) { leaving = true; window.location.href = a.href; }
  }

  // Run page: the three views.
  var viewer = document.getElementById("viewer");
  var views = ["side", "overlay", "blink", "tint"];
  var blinkTimer = null;

  function setView(v) {
    if (!viewer) { return; }
    if (!viewer.querySelector("." + v)) { v = "side"; }
    views.forEach(function (x) { viewer.classList.toggle("view-" + x, x === v); });
    document.querySelectorAll("[data-view]").forEach(function (b) {
      b.classList.toggle("on", b.getAttribute("data-view") === v);
      b.setAttribute("aria-pressed", String(b.getAttribute("data-view") === v));
    });
    viewer.setAttribute("data-current", v);
    if (blinkTimer) { clearInterval(blinkTimer); blinkTimer = null; }
    if (v === "blink") { startBlink(); }
    // Boxes drawn while the panes were hidden had no size to scale by.
    if (v === "side" && typeof drawBoxes === "function" && panes) { drawBoxes(); }
    try { sessionStorage.setItem("dpxdt-view", v); } catch (e) { /* private mode */ }
  }

  function startBlink() {
    var box = viewer.querySelector(".blink");
    var label = document.getElementById("blink-label");
    blinkTimer = setInterval(function () {
      box.classList.toggle("show-ref");
      if (label) { label.textContent = box.classList.contains("show-ref") ? "reference" : "new"; }
    }, 600);
  }

  if (viewer) {
    document.querySelectorAll("[data-view]").forEach(function (b) {
      b.addEventListener("click", function () { setView(b.getAttribute("data-view")); });
    });
    var slider = document.getElementById("slider");
    var clip = document.getElementById("clip");
    // Wipe: the slider moves the edge of the new image over the reference;
    // onion skin: it sets how opaque the new image is.
    var overlayMode = "wipe";
    document.querySelectorAll("[data-overlay]").forEach(function (b) {
      b.addEventListener("click", function () {
        overlayMode = b.getAttribute("data-overlay");
        document.querySelectorAll("[data-overlay]").forEach(function (o) {
          var on = o === b;
          o.classList.toggle("on", on);
          o.setAttribute("aria-pressed", String(on));
        });
        viewer.classList.toggle("onion", overlayMode === "onion");
        if (slider) { slider.dispatchEvent(new Event("input")); }
      });
    });
    if (slider && clip) {
      var sync = function () {
        var onion = overlayMode === "onion";
        clip.style.width = onion ? "100%" : slider.value + "%";
        clip.style.opacity = onion ? String(slider.value / 100) : "1";
        var under = viewer.querySelector(".overlay .under");
        var img = clip.querySelector("img");
        if (under && img) { img.style.width = under.clientWidth + "px"; }
      };
      slider.addEventListener("input", sync);
      window.addEventListener("resize", sync);
      viewer.querySelectorAll("img").forEach(function (i) { i.addEventListener("load", sync); });
      sync();
    }
    var blinkStack = document.getElementById("blink-stack");
    if (blinkStack) {
      blinkStack.addEventListener("click", function () {
        if (blinkTimer) { clearInterval(blinkTimer); blinkTimer = null; } else { startBlink(); }
      });
    }
    var saved = null;
    try { saved = sessionStorage.getItem("dpxdt-view"); } catch (e) { /* private mode */ }
    setView(saved && views.indexOf(saved) >= 0 ? saved : "side");
  }

  // Run page: zoom (fit, 1:1, 2x), panning kept in step across the three
  // images, the list of changes that n/p walk, and ignore regions drawn by
  // dragging on the new or the diff image.
  var panes = Array.prototype.slice.call(document.querySelectorAll(".pane"));
  var changes = Array.prototype.slice.call(document.querySelectorAll("#changes .change"));
  var ignores = Array.prototype.slice.call(document.querySelectorAll("#ignores .ignore"));
  var pins = Array.prototype.slice.call(document.querySelectorAll("#thread .comment[data-x]"));
  var zooms = ["fit", "1", "2"];
  var zoom = "fit";
  var current = -1;
  // How far below the new image's rows the reference shows the same
  // content at the current change (bands moved above it).
  var refOffset = 0;

  function num(el, name) { return parseInt(el.getAttribute("data-" + name), 10) || 0; }
  function paneImg(p) { return p.querySelector("img"); }
  function isRef(p) { return p.getAttribute("data-pane") === "ref"; }
  // Screen pixels per image pixel; 0 while the pane is hidden.
  function scaleOf(p) {
    var i = paneImg(p);
    return i && i.naturalWidth ? i.clientWidth / i.naturalWidth : 0;
  }

  function addBox(p, cls, x, y, w, h) {
    var el = document.createElement("div");
    var s = scaleOf(p);
    el.className = "box " + cls;
    el.style.left = (x * s) + "px";
    el.style.top = (y * s) + "px";
    el.style.width = Math.max(2, w * s) + "px";
    el.style.height = Math.max(2, h * s) + "px";
    p.querySelector(".canvas").appendChild(el);
    return el;
  }

  // The rectangle last drawn with the mouse, in image pixels.
  var drawn = null;

  function drawBoxes() {
    panes.forEach(function (p) {
      p.querySelectorAll(".box").forEach(function (b) { b.remove(); });
      if (!scaleOf(p)) { return; }
      if (drawn && drawn.pane === p) {
        addBox(p, "drawing", drawn.x1, drawn.y1, drawn.x2 - drawn.x1 + 1, drawn.y2 - drawn.y1 + 1);
      }
      if (!isRef(p)) {
        ignores.forEach(function (li) {
          addBox(p, "ignored", num(li, "x"), num(li, "y"), num(li, "w"), num(li, "h"));
        });
        pins.forEach(function (li) {
          addBox(p, "pinned", num(li, "x"), num(li, "y"), num(li, "w"), num(li, "h"));
        });
      }
      if (current < 0) {
        // Before n or p: every change outlined, so the fit view shows them all.
        changes.forEach(function (c) {
          addBox(p, "mark faint", num(c, "x"), num(c, isRef(p) ? "ry" : "y"), num(c, "w"),
            num(c, isRef(p) ? "rh" : "h"));
        });
      } else {
        var c = changes[current];
        if (isRef(p)) {
          addBox(p, "mark", num(c, "x"), num(c, "ry"), num(c, "w"), num(c, "rh"));
        } else {
          addBox(p, "mark", num(c, "x"), num(c, "y"), num(c, "w"), num(c, "h"));
        }
      }
    });
  }

  function applyZoom(z) {
    zoom = z;
    if (viewer) {
      viewer.classList.toggle("zoomed", z !== "fit");
      viewer.classList.toggle("zoom-2", z === "2");
      viewer.setAttribute("data-zoom", z);
    }
    panes.forEach(function (p) {
      var i = paneImg(p);
      i.style.width = (z === "fit" || !i.naturalWidth) ? "" : (i.naturalWidth * parseInt(z, 10)) + "px";
    });
    document.querySelectorAll("button[data-zoom]").forEach(function (b) {
      b.classList.toggle("on", b.getAttribute("data-zoom") === z);
      b.setAttribute("aria-pressed", String(b.getAttribute("data-zoom") === z));
    });
    drawBoxes();
  }

  // Scrolls pane q to show image point (x, y) of the new image's rows
  // (the reference pane adds refOffset), unless it is there already; a
  // scroll we cause is marked so that its event is not passed on again.
  function scrollPane(q, x, y, center) {
    var s = scaleOf(q);
    if (!s) { return; }
    var top = (y + (isRef(q) ? refOffset : 0)) * s - (center ? q.clientHeight / 2 : 0);
    var left = x * s - (center ? q.clientWidth / 2 : 0);
    top = Math.max(0, Math.min(top, q.scrollHeight - q.clientHeight));
    left = Math.max(0, Math.min(left, q.scrollWidth - q.clientWidth));
    if (Math.abs(q.scrollTop - top) > 1 || Math.abs(q.scrollLeft - left) > 1) {
      q.dpxdtSync = true;
      q.scrollTop = top;
      q.scrollLeft = left;
    }
  }

  panes.forEach(function (p) {
    p.addEventListener("scroll", function () {
      if (p.dpxdtSync) { p.dpxdtSync = false; return; }
      var s = scaleOf(p);
      if (!s) { return; }
      var x = p.scrollLeft / s;
      var y = p.scrollTop / s - (isRef(p) ? refOffset : 0);
      panes.forEach(function (q) { if (q !== p) { scrollPane(q, x, y, false); } });
    });
    paneImg(p).addEventListener("load", function () {
      applyZoom(zoom);
      if (current >= 0) { centre(); }
    });
  });

  // Scrolls every pane to the current change and outlines it there.
  function centre() {
    var c = changes[current];
    refOffset = num(c, "ry") - num(c, "y");
    drawBoxes();
    panes.forEach(function (q) {
      scrollPane(q, num(c, "x") + num(c, "w") / 2, num(c, "y") + num(c, "h") / 2, true);
    });
  }

  // Selects change i (n, p, a click in the list): side by side, at least
  // 1:1, centred in all three panes.
  function showChange(i) {
    if (!changes.length) { return; }
    current = Math.max(0, Math.min(changes.length - 1, i));
    changes.forEach(function (c, n) { c.classList.toggle("selected", n === current); });
    changes[current].scrollIntoView({ block: "nearest" });
    if (viewer && viewer.getAttribute("data-current") !== "side") { setView("side"); }
    if (zoom === "fit") { applyZoom("1"); }
    centre();
    if (viewer) { viewer.scrollIntoView({ block: "nearest" }); }
  }

  // A zoom from the buttons or z: the current change stays in view.
  function zoomTo(z) {
    applyZoom(z);
    if (current >= 0) { centre(); }
  }

  if (panes.length) {
    document.querySelectorAll("button[data-zoom]").forEach(function (b) {
      b.addEventListener("click", function () { zoomTo(b.getAttribute("data-zoom")); });
    });
    changes.forEach(function (c, n) {
      c.querySelector("a").addEventListener("click", function (e) { e.preventDefault(); showChange(n); });
    });
    window.addEventListener("resize", drawBoxes);
    applyZoom("fit");
  }

  // Drawing an ignore region: drag on a drawable image; the corners fill
  // the form (pixels of the new image) and the name field takes the focus.
  var ignoreBox = document.getElementById("ignore-box");
  var drag = null;
  function imagePoint(p, e) {
    var i = paneImg(p);
    var r = i.getBoundingClientRect();
    var s = scaleOf(p);
    return {
      x: Math.max(0, Math.min(i.naturalWidth - 1, Math.floor((e.clientX - r.left) / s))),
      y: Math.max(0, Math.min(i.naturalHeight - 1, Math.floor((e.clientY - r.top) / s)))
    };
  }
  function dragRect() {
    return {
      x1: Math.min(drag.a.x, drag.b.x), y1: Math.min(drag.a.y, drag.b.y),
      x2: Math.max(drag.a.x, drag.b.x), y2: Math.max(drag.a.y, drag.b.y)
    };
  }
  document.querySelectorAll(".canvas.drawable").forEach(function (canvas) {
    var p = canvas.parentNode;
    canvas.addEventListener("mousedown", function (e) {
      if (e.button !== 0) { return; }
      e.preventDefault();
      var a = imagePoint(p, e);
      drawn = null;
      drawBoxes();
      drag = { pane: p, a: a, b: a, el: null, sx: e.clientX, sy: e.clientY };
    });
  });
  document.addEventListener("mousemove", function (e) {
    if (!drag) { return; }
    drag.b = imagePoint(drag.pane, e);
    var r = dragRect();
    if (drag.el) { drag.el.remove(); }
    drag.el = addBox(drag.pane, "drawing", r.x1, r.y1, r.x2 - r.x1 + 1, r.y2 - r.y1 + 1);
  });
  document.addEventListener("mouseup", function (e) {
    if (!drag) { return; }
    drag.b = imagePoint(drag.pane, e);
    var r = dragRect();
    // A click, not a drag (measured on the screen, whatever the zoom).
    var small = Math.abs(e.clientX - drag.sx) < 4 && Math.abs(e.clientY - drag.sy) < 4;
    if (drag.el) { drag.el.remove(); }
    // The rectangle also pins a comment, or previews a bulk approval.
    var rect = r.x1 + ":" + r.y1 + "-" + r.x2 + ":" + r.y2;
    var pin = document.getElementById("comment-region");
    if (!small && pin) { pin.value = rect; }
    var bulkHere = document.getElementById("bulk-here-region");
    if (!small && bulkHere) {
      bulkHere.value = rect;
      document.getElementById("bulk-here").disabled = false;
    }
    if (!small && ignoreBox) {
      drawn = { pane: drag.pane, x1: r.x1, y1: r.y1, x2: r.x2, y2: r.y2 };
      drawBoxes();
      ["x1", "y1", "x2", "y2"].forEach(function (k) {
        document.getElementById("ignore-" + k).value = r[k];
      });
      ignoreBox.open = true;
      document.getElementById("ignore-name").focus();
    }
    drag = null;
  });

  // Release page: a selection that j/k moves and Enter opens.
  var items = Array.prototype.slice.call(document.querySelectorAll(".run-item"));
  var selected = -1;
  function select(i) {
    if (!items.length) { return; }
    selected = Math.max(0, Math.min(items.length - 1, i));
    items.forEach(function (el, n) { el.classList.toggle("selected", n === selected); });
    items[selected].scrollIntoView({ block: "nearest" });
  }

  var help = document.getElementById("help");
  document.querySelectorAll("[data-help]").forEach(function (a) {
    a.addEventListener("click", function (e) { e.preventDefault(); if (help) { help.showModal(); } });
  });

  document.addEventListener("keydown", function (e) {
    // A held key repeats: never let one long press approve run after run.
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || leaving) { return; }
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) { return; }
    // Keys pressed on a form's buttons (the ignore form) stay with the form.
    if (t && t.closest && t.closest("form.inline-form")) { return; }
    var page = document.body.getAttribute("data-page");
    var key = e.key;
    if (key === "?") {
      if (help) { if (help.open) { help.close(); } else { help.showModal(); } }
    } else if (page === "run") {
      if (key === "j") { go("next"); }
      else if (key === "k") { go("prev"); }
      else if (key === "a") { submit("approve"); }
      else if (key === "r") { submit("reject"); }
      else if (key === "u") { go("up"); }
      else if (key === "t") {
        var cur = viewer ? viewer.getAttribute("data-current") : "side";
        setView(views[(views.indexOf(cur) + 1) % views.length]);
      } else if (key === "n") { showChange(current + 1); }
      else if (key === "p") { showChange(current < 0 ? 0 : current - 1); }
      else if (key === "z") { zoomTo(zooms[(zooms.indexOf(zoom) + 1) % zooms.length]); } else if (key === "i" && ignoreBox) {
        ignoreBox.open = true;
        document.getElementById("ignore-name").focus();
      } else if (key === " " && blinkTimer !== null) {
        e.preventDefault(); clearInterval(blinkTimer); blinkTimer = null;
      } else { return; }
    } else if (page === "release") {
      if (key === "j") { select(selected + 1); }
      else if (key === "k") { select(selected - 1); }
      else if (key === "Enter" && selected >= 0) {
        leaving = true;
        window.location.href = items[selected].querySelector("a").href;
      } else { return; }
    } else { return; }
    e.preventDefault();
  });

  // A release still receiving or processing: its progress, polled, and
  // the whole page again once it changes state.
  var live = document.getElementById("live");
  if (live && window.fetch) {
    var liveText = document.getElementById("live-text");
    var shown = document.getElementById("release-status");
    var poll = function () {
      fetch(live.getAttribute("data-live"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) { return; }
          if (shown && p.status !== shown.textContent) { window.location.reload(); return; }
          liveText.textContent = p.finished + " of " + p.total + " runs finished";
          setTimeout(poll, 2000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 2000);
  }

  // Destructive actions ask first: a form or the button that submits it
  // names what will happen in data-confirm.
  document.querySelectorAll("form").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      var by = e.submitter && e.submitter.getAttribute("data-confirm");
      var ask = by || f.getAttribute("data-confirm");
      if (ask && !window.confirm(ask)) { e.preventDefault(); leaving = false; }
    });
  });

  // Activity log times in the reader's locale.
  document.querySelectorAll("time[data-ms]").forEach(function (el) {
    var ms = parseInt(el.getAttribute("data-ms"), 10);
    if (!isNaN(ms)) { el.textContent = new Date(ms).toLocaleString(); }
  });
})();
