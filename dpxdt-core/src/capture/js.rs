//! JavaScript run inside the captured page: request tracking installed
//! before any page script, the wait for a settled page, the stability
//! stylesheet, masks and measurements.
//!
//! Apart from [`prelude`], each script is a function expression; the
//! session calls it with JSON arguments through CDP `Runtime.evaluate` and
//! awaits the promise it may return (one round trip, no WebDriver script
//! wrapper).

/// Virtual milliseconds between two animation frames.
const FRAME_MS: u32 = 16;

/// Most timers (and animation frames) one document may run in virtual
/// time: a page that schedules without end stops here, reported.
const MAX_TIMERS: u32 = 100_000;

/// Longest wait for animated images and videos to show their first frame.
const FREEZE_TIMEOUT_MS: u64 = 3000;

/// What `performance.now()` answers when the page starts, with a frozen
/// clock: a page that has been open for one second.
const FROZEN_PERFORMANCE_NOW: f64 = 1000.0;

/// What the prelude is told: the capture's clock, seed, locale and
/// virtual-time budget.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PreludeParams<'a> {
    /// The instant the clock starts at (ms since the epoch), or `None` for
    /// the real clock and real timers.
    pub clock_ms: Option<i64>,
    /// Seed of `Math.random` and, with a frozen clock, of `crypto`.
    pub seed: u32,
    /// Virtual time the page's timers get.
    pub settle_time_ms: u64,
    /// Requests pending longer than this (real ms) no longer hold time.
    pub resource_timeout_ms: u64,
    /// `navigator.language`.
    pub locale: &'a str,
}

impl<'a> PreludeParams<'a> {
    /// The parameters `config` asks for.
    pub(crate) fn of(config: &'a crate::config::CaptureConfig) -> Self {
        PreludeParams {
            clock_ms: config.frozen_clock_ms(),
            seed: config.random_seed(),
            settle_time_ms: config.settle_time_ms(),
            resource_timeout_ms: config.resource_timeout().as_millis() as u64,
            locale: config.locale(),
        }
    }
}

/// The script installed with `Page.addScriptToEvaluateOnNewDocument`, which
/// runs in every frame (iframes included) before the frame's own scripts
/// (source: `js/prelude.js`, plain DOM and JavaScript for every engine).
///
/// In every frame it:
/// - counts pending `fetch` and XHR requests (the browser's load event does
///   not) and records uncaught errors for the capture log;
/// - answers `alert`, `confirm` and `prompt` at once (dismissed, as a person
///   who is not there would), so a dialog cannot block the capture;
/// - replaces `Math.random` with a generator seeded with `seed`, and sets
///   `navigator.language(s)` to the locale;
/// - with a frozen clock (`clock_ms` is `Some`): runs the page on virtual
///   time. `Date`, `performance.now()` and animation-frame timestamps start
///   at that instant and move only as timers run: `setTimeout`,
///   `setInterval`, `requestAnimationFrame` (every 16 virtual ms) and
///   `requestIdleCallback` run in order of their due time, as fast as the
///   page allows, until none is due within `settle_time_ms`. Time moves
///   only while the page is loaded and waits for no request, image or
///   font. `crypto.getRandomValues` and `crypto.randomUUID` are seeded too;
/// - adds the freeze stylesheet (`freeze_css`) once the document exists,
///   and to every shadow root made in it, open or closed; stops marquees;
/// - offers `__dpxdt.freeze()`, which finishes Web Animations, shows the
///   first frame of animated images, CSS backgrounds and videos, and
///   resolves when done.
///
/// The page's scripts see the replaced functions; the capture's own scripts
/// use the real ones kept in `__dpxdt` (`now`, `setTimeout`).
pub(crate) fn prelude(params: &PreludeParams<'_>, freeze_css: &str) -> String {
    let json = serde_json::json!({
        "clock": params.clock_ms,
        "seed": params.seed,
        "perfNow": FROZEN_PERFORMANCE_NOW,
        "frameMs": FRAME_MS,
        "settleTime": params.settle_time_ms,
        "maxTimers": MAX_TIMERS,
        "resourceTimeout": params.resource_timeout_ms,
        "locale": params.locale,
        "freezeCss": freeze_css,
        "hostFreezeCss": HOST_FREEZE_CSS,
        "freezeTimeout": FREEZE_TIMEOUT_MS,
    });
    PRELUDE_TEMPLATE.replace("__PARAMS__", &json.to_string())
}

const PRELUDE_TEMPLATE: &str = include_str!("js/prelude.js");

/// Added to the freeze stylesheet inside shadow roots: a shadow tree's own
/// `:host` rules would otherwise win over the document's.
const HOST_FREEZE_CSS: &str = ":host, :host::before, :host::after {
  animation-delay: 0s !important;
  animation-duration: 0s !important;
  animation-iteration-count: 1 !important;
  transition-delay: 0s !important;
  transition-duration: 0s !important;
}";

/// Shared by the scripts below: the real clock and timer (the page's may be
/// frozen), and a walk over this document and every same-origin frame in it.
const HELPERS: &str = r#"const __real = window.__dpxdt || { now: performance.now.bind(performance), setTimeout: setTimeout.bind(window) };
const __documents = () => {
  const out = [];
  const walk = (win) => {
    let doc;
    try { doc = win.document; void doc.readyState; } catch (e) { return; }
    out.push([win, doc]);
    for (let i = 0; i < win.frames.length; i++) walk(win.frames[i]);
  };
  walk(window);
  return out;
};"#;

/// `(resourceTimeout, quietMs)`: waits until every document (the page and
/// its same-origin frames) is complete, has no tracked request pending, no
/// undecoded image in view, its web fonts loaded and no animation frame
/// due, and all of that stayed true for `quietMs`. Gives up on stragglers
/// after `resourceTimeout` ms and reports what it abandoned. Resolves to
/// `{href, waitedMs, abandoned: [..], status, errors, dialogs}`.
pub(crate) static SETTLE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("function (resourceTimeout, quietMs) {{ {HELPERS}\n{SETTLE_BODY} }}")
});

const SETTLE_BODY: &str = r#"return new Promise((done) => {
const start = __real.now();
let quietSince = null;
let lastEntries = performance.getEntriesByType('resource').length;
const busy = () => {
  const why = [];
  const now = __real.now();
  for (const [win, doc] of __documents()) {
    const where = win === window ? '' : ' in frame ' + doc.URL;
    if (doc.readyState !== 'complete') why.push('document ' + doc.readyState + where);
    const s = win.__dpxdt;
    if (s) {
      for (const t of s.pending.values()) {
        if (now - t < resourceTimeout) { why.push('pending fetch/XHR' + where); break; }
      }
      if (s.timersDue()) why.push('timers due in virtual time' + where);
    }
    const h = win.innerHeight;
    for (const img of doc.images) {
      if (img.complete) continue;
      const r = img.getBoundingClientRect();
      if (img.loading === 'lazy' && (r.top > h || r.bottom < 0)) continue;
      why.push('image ' + (img.currentSrc || img.src));
    }
    if (doc.fonts && doc.fonts.status !== 'loaded') why.push('web fonts' + where);
  }
  const entries = performance.getEntriesByType('resource').length;
  if (entries !== lastEntries) { lastEntries = entries; why.push('new resources'); }
  return why;
};
const tick = () => {
  const why = busy();
  const now = __real.now();
  if (why.length === 0) {
    if (quietSince === null) quietSince = now;
    // No extra animation frames: the screenshot itself renders a new frame.
    if (now - quietSince >= quietMs) { finish([]); return; }
  } else {
    quietSince = null;
    if (now - start > resourceTimeout) { finish(why.filter((w) => w !== 'new resources')); return; }
  }
  __real.setTimeout(tick, 5);
};
const finish = (abandoned) => {
  // Given up on: virtual time stops where it is in every document, so
  // what the screenshot shows does not depend on this machine's speed.
  if (abandoned.length) {
    for (const [win] of __documents()) { if (win.__dpxdt) win.__dpxdt.timeStopped = true; }
  }
  const nav = performance.getEntriesByType('navigation')[0];
  done({
    href: location.href,
    waitedMs: Math.round(__real.now() - start),
    abandoned,
    status: nav && typeof nav.responseStatus === 'number' ? nav.responseStatus : 0,
    errors: window.__dpxdt ? window.__dpxdt.errors.slice(0, 20) : [],
    dialogs: window.__dpxdt ? window.__dpxdt.dialogs.slice() : [],
  });
};
tick();
});"#;

/// `(baseCss, hide, userCss)`: adds a stylesheet that freezes the page
/// (`baseCss`, e.g. [`FREEZE_CSS`]: animations and transitions jump to their
/// end, the caret is invisible), hides the `hideSelectors` and adds the
/// user's `injectCss`. Throws on an invalid selector. Then, in every frame,
/// finishes running Web Animations and shows the first frame of animated
/// images and videos (the prelude's `freeze`; cross-origin frames are asked
/// by message). Resolves to the document height (as [`DOC_HEIGHT`]).
pub(crate) static STABILIZE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("async function (baseCss, hide, userCss) {{ {HELPERS}\n{STABILIZE_BODY} }}")
});

const STABILIZE_BODY: &str = r#"
for (const sel of hide) {
  try { document.querySelector(sel); } catch (e) { throw new Error('invalid hideSelectors entry ' + JSON.stringify(sel)); }
}
let css = baseCss;
if (hide.length) css += '\n' + hide.join(',\n') + ' { visibility: hidden !important; }';
if (userCss) css += '\n' + userCss;
if (css) {
  const style = document.createElement('style');
  style.setAttribute('data-dpxdt', '');
  style.textContent = css;
  (document.head || document.documentElement).appendChild(style);
}
if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
const work = [];
const reached = new Set();
for (const [win] of __documents()) {
  reached.add(win);
  if (win.__dpxdt && win.__dpxdt.freeze) work.push(win.__dpxdt.freeze());
}
const ask = (win) => {
  for (let i = 0; i < win.frames.length; i++) {
    const child = win.frames[i];
    if (!reached.has(child)) { try { child.postMessage('__dpxdt_freeze', '*'); } catch (e) {} }
    try { ask(child); } catch (e) {}
  }
};
ask(window);
await Promise.all(work);
window.scrollTo(0, 0);
const de = document.documentElement, bd = document.body;
return Math.ceil(Math.max(de.scrollHeight, de.offsetHeight, bd ? bd.scrollHeight : 0, bd ? bd.offsetHeight : 0));
"#;

/// `(resourceTimeout, quietMs, baseCss, hide, userCss)`: [`SETTLE`], then
/// [`STABILIZE`] in the same call. Resolves to what `SETTLE` does plus the
/// document `height`, or `stabilizeError` (an invalid `hideSelectors` entry).
pub(crate) static SETTLE_THEN_STABILIZE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        format!(
            "async function (resourceTimeout, quietMs, baseCss, hide, userCss) {{
const settled = await ({settle})(resourceTimeout, quietMs);
try {{ settled.height = await ({stabilize})(baseCss, hide, userCss); }}
catch (e) {{ settled.stabilizeError = String(e && e.message !== undefined ? e.message : e); }}
return settled;
}}",
            settle = *SETTLE,
            stabilize = *STABILIZE,
        )
    });

/// The stylesheet the capture's [`STABILIZE`] adds.
pub(crate) const FREEZE_CSS: &str = "*, *::before, *::after {
  animation-delay: 0s !important;
  animation-duration: 0s !important;
  animation-iteration-count: 1 !important;
  transition-delay: 0s !important;
  transition-duration: 0s !important;
  caret-color: transparent !important;
  scroll-behavior: auto !important;
}";

/// `(sel, timeout)`: waits until `sel` matches an element, for at most
/// `timeout` ms. Resolves to `"found"`, `"invalid"` or `"timeout"`.
pub(crate) const WAIT_FOR_SELECTOR: &str = r#"function (sel, timeout) { return new Promise((done) => {
const real = window.__dpxdt || { now: performance.now.bind(performance), setTimeout: setTimeout.bind(window) };
const start = real.now();
const tick = () => {
  let found;
  try { found = document.querySelector(sel); } catch (e) { done('invalid'); return; }
  if (found) { done('found'); return; }
  if (real.now() - start > timeout) { done('timeout'); return; }
  real.setTimeout(tick, 10);
};
tick();
}); }"#;

/// `(sels, color)`: paints a solid box of `color` over every element
/// matching one of the selectors. Returns the selectors that matched
/// nothing; throws on an invalid selector.
pub(crate) const MASK: &str = r#"function (sels, color) {
const unmatched = [];
for (const sel of sels) {
  let els;
  try { els = document.querySelectorAll(sel); } catch (e) { throw new Error('invalid maskSelectors entry ' + JSON.stringify(sel)); }
  if (els.length === 0) unmatched.push(sel);
  for (const el of els) {
    const r = el.getBoundingClientRect();
    const d = document.createElement('div');
    d.setAttribute('data-dpxdt-mask', '');
    d.style.cssText = 'position:absolute;margin:0;padding:0;border:0;pointer-events:none;z-index:2147483647;'
      + 'left:' + (r.left + window.scrollX) + 'px;top:' + (r.top + window.scrollY) + 'px;'
      + 'width:' + r.width + 'px;height:' + r.height + 'px;';
    d.style.setProperty('background', color, 'important');
    document.documentElement.appendChild(d);
  }
}
return unmatched;
}"#;

/// `()`: whether the page would look the same loaded afresh with other
/// media features: no script in it asked for one (`matchMedia`, recorded
/// by the prelude), no canvas, and every frame readable.
pub(crate) static MEDIA_BLIND: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("function () {{ {HELPERS}\n{MEDIA_BLIND_BODY} }}"));

const MEDIA_BLIND_BODY: &str = r#"
const docs = __documents();
for (const [win, doc] of docs) {
  if (!win.__dpxdt || win.__dpxdt.mediaQueried) return false;
  if (doc.querySelector('canvas')) return false;
}
let frames = 0;
const count = (win) => {
  for (let i = 0; i < win.frames.length; i++) { frames++; try { count(win.frames[i]); } catch (e) { return; } }
};
count(window);
return docs.length === frames + 1;
"#;

/// `()`: the document's full height in CSS pixels.
pub(crate) const DOC_HEIGHT: &str = r#"function () {
const d = document.documentElement, b = document.body;
return Math.ceil(Math.max(d ? d.scrollHeight : 0, d ? d.offsetHeight : 0, b ? b.scrollHeight : 0, b ? b.offsetHeight : 0));
}"#;

/// `()`: the browser's own user agent.
pub(crate) const USER_AGENT: &str = "function () { return navigator.userAgent; }";

/// `(regions)`: for each `[x1, y1, x2, y2]` rectangle (page pixels, corners
/// inclusive), a CSS selector of the smallest element whose box covers it
/// (the deepest one among equals), or `null` when no single element does.
pub(crate) const LOCATE: &str = r#"function (regions) {
const unique = (sel) => { try { return document.querySelectorAll(sel).length === 1; } catch (e) { return false; } };
const path = (el) => {
  const parts = [];
  for (; el && el.nodeType === 1; el = el.parentElement) {
    if (el.id && unique('#' + CSS.escape(el.id))) { parts.unshift('#' + CSS.escape(el.id)); break; }
    if (el === document.body || el === document.documentElement) { parts.unshift(el.localName); break; }
    let part = el.localName;
    const classes = Array.from(el.classList).slice(0, 2);
    if (classes.length) part += '.' + classes.map((c) => CSS.escape(c)).join('.');
    const parent = el.parentElement;
    if (parent && Array.from(parent.children).filter((c) => c !== el && c.matches(part)).length > 0) {
      part += ':nth-child(' + (Array.prototype.indexOf.call(parent.children, el) + 1) + ')';
    }
    parts.unshift(part);
  }
  return parts.join(' > ');
};
const all = Array.from(document.querySelectorAll('body *'))
  .filter((el) => !el.hasAttribute('data-dpxdt-mask'))
  .map((el) => [el, el.getBoundingClientRect()])
  .filter(([, r]) => r.width > 0 && r.height > 0);
const sx = window.scrollX, sy = window.scrollY;
return regions.map(([x1, y1, x2, y2]) => {
  let best = null, bestArea = Infinity;
  for (const [el, r] of all) {
    const left = r.left + sx, top = r.top + sy;
    if (left <= x1 && top <= y1 && left + r.width >= x2 + 1 && top + r.height >= y2 + 1) {
      const area = r.width * r.height;
      if (area <= bestArea) { best = el; bestArea = area; }
    }
  }
  return best ? path(best) : null;
});
}"#;

/// `()`: the absolute http(s) URLs the rendered page links to, fragments
/// dropped, each once: `<a>`/`<area>` hrefs and `<iframe>`/`<frame>`
/// sources in the page and its same-origin frames, and those inside
/// `<noscript>` (resolved against each document's `<base href>`).
pub(crate) static LINKS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("function () {{ {HELPERS}\n{LINKS_BODY} }}"));

const LINKS_BODY: &str = r#"
const out = new Set();
const add = (href, base) => {
  if (href === null) return;
  try {
    const u = new URL(href.trim(), base);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return;
    u.hash = '';
    out.add(u.href);
  } catch (e) {}
};
const visit = (root, base) => {
  for (const a of root.querySelectorAll('a[href], area[href]')) add(a.getAttribute('href'), base);
  for (const f of root.querySelectorAll('iframe[src], frame[src]')) add(f.getAttribute('src'), base);
};
for (const [, doc] of __documents()) {
  visit(doc, doc.baseURI);
  for (const n of doc.querySelectorAll('noscript')) {
    visit(new DOMParser().parseFromString(n.textContent, 'text/html'), doc.baseURI);
  }
}
return Array.from(out);
"#;
