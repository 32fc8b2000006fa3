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
  var views = ["side", "overlay", "blink"];
  var blinkTimer = null;

  function setView(v) {
    if (!viewer) { return; }
    if (!viewer.querySelector(".overlay") && v !== "side") { v = "side"; }
    views.forEach(function (x) { viewer.classList.toggle("view-" + x, x === v); });
    document.querySelectorAll("[data-view]").forEach(function (b) {
      b.classList.toggle("on", b.getAttribute("data-view") === v);
    });
    viewer.setAttribute("data-current", v);
    if (blinkTimer) { clearInterval(blinkTimer); blinkTimer = null; }
    if (v === "blink") { startBlink(); }
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
    if (slider && clip) {
      var sync = function () {
        clip.style.width = slider.value + "%";
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

  // Activity log times in the reader's locale.
  document.querySelectorAll("time[data-ms]").forEach(function (el) {
    var ms = parseInt(el.getAttribute("data-ms"), 10);
    if (!isNaN(ms)) { el.textContent = new Date(ms).toLocaleString(); }
  });
})();
