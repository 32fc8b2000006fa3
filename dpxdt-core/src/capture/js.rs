//! JavaScript run inside the captured page: request tracking installed
//! before any page script, the wait for a settled page, the stability
//! stylesheet, masks and measurements.
//!
//! Apart from [`PRELUDE`], each script is a function expression; the
//! session calls it with JSON arguments through CDP `Runtime.evaluate` and
//! awaits the promise it may return (one round trip, no WebDriver script
//! wrapper).

/// Installed with `Page.addScriptToEvaluateOnNewDocument`: counts pending
/// `fetch` and XHR requests (the browser's load event does not), records
/// uncaught errors for the capture log, and answers `alert`, `confirm`
/// and `prompt` at once (dismissed, as a person who is not there would),
/// so a dialog cannot block the capture.
pub(crate) const PRELUDE: &str = r#"(() => {
  if (window.__dpxdt) return;
  const s = window.__dpxdt = { pending: new Map(), next: 0, errors: [], dialogs: [] };
  for (const kind of ['alert', 'confirm', 'prompt']) {
    window[kind] = function (message) {
      if (s.dialogs.length < 20) s.dialogs.push(kind + '(' + JSON.stringify(String(message === undefined ? '' : message)) + ')');
      return kind === 'confirm' ? false : (kind === 'prompt' ? null : undefined);
    };
  }
  const track = () => {
    const id = s.next++;
    s.pending.set(id, performance.now());
    return () => s.pending.delete(id);
  };
  const origFetch = window.fetch;
  if (origFetch) {
    window.fetch = function (...args) {
      const end = track();
      return origFetch.apply(this, args).finally(end);
    };
  }
  const origSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...args) {
    const end = track();
    this.addEventListener('loadend', end);
    return origSend.apply(this, args);
  };
  window.addEventListener('error', (e) => {
    if (e instanceof ErrorEvent) s.errors.push(String(e.message));
  }, true);
  window.addEventListener('unhandledrejection', (e) => {
    s.errors.push('unhandled rejection: ' + String(e.reason));
  });
})();"#;

/// `(resourceTimeout, quietMs)`: waits until the document is complete, no
/// tracked request is pending, every image in the viewport is decoded and
/// web fonts are loaded, and all of that stayed true for `quietMs`. Gives up
/// on stragglers after `resourceTimeout` ms and reports what it abandoned.
/// Resolves to `{href, waitedMs, abandoned: [..], status, errors, dialogs}`.
pub(crate) const SETTLE: &str = r#"function (resourceTimeout, quietMs) { return new Promise((done) => {
const start = performance.now();
let quietSince = null;
let lastEntries = performance.getEntriesByType('resource').length;
const busy = () => {
  const why = [];
  if (document.readyState !== 'complete') why.push('document ' + document.readyState);
  const s = window.__dpxdt;
  if (s) {
    const now = performance.now();
    for (const t of s.pending.values()) {
      if (now - t < resourceTimeout) { why.push('pending fetch/XHR'); break; }
    }
  }
  const h = window.innerHeight;
  for (const img of document.images) {
    if (img.complete) continue;
    const r = img.getBoundingClientRect();
    if (img.loading === 'lazy' && (r.top > h || r.bottom < 0)) continue;
    why.push('image ' + (img.currentSrc || img.src));
  }
  if (document.fonts && document.fonts.status !== 'loaded') why.push('web fonts');
  const entries = performance.getEntriesByType('resource').length;
  if (entries !== lastEntries) { lastEntries = entries; why.push('new resources'); }
  return why;
};
const tick = () => {
  const why = busy();
  const now = performance.now();
  if (why.length === 0) {
    if (quietSince === null) quietSince = now;
    // No extra animation frames: the screenshot itself renders a new frame.
    if (now - quietSince >= quietMs) { finish([]); return; }
  } else {
    quietSince = null;
    if (now - start > resourceTimeout) { finish(why.filter((w) => w !== 'new resources')); return; }
  }
  setTimeout(tick, 5);
};
const finish = (abandoned) => {
  const nav = performance.getEntriesByType('navigation')[0];
  done({
    href: location.href,
    waitedMs: Math.round(performance.now() - start),
    abandoned,
    status: nav && typeof nav.responseStatus === 'number' ? nav.responseStatus : 0,
    errors: window.__dpxdt ? window.__dpxdt.errors.slice(0, 20) : [],
    dialogs: window.__dpxdt ? window.__dpxdt.dialogs.slice() : [],
  });
};
tick();
}); }"#;

/// `(baseCss, hide, userCss)`: adds a stylesheet that freezes the page
/// (`baseCss`, e.g. [`FREEZE_CSS`]: animations and transitions jump to their
/// end, the caret is invisible), hides the `hideSelectors` and adds the
/// user's `injectCss`. Throws on an invalid selector. Then finishes every
/// running Web Animation. Returns the document height (as [`DOC_HEIGHT`]).
pub(crate) const STABILIZE: &str = r#"function (baseCss, hide, userCss) {
for (const sel of hide) {
  try { document.querySelector(sel); } catch (e) { throw new Error('invalid hideSelectors entry ' + JSON.stringify(sel)); }
}
let css = baseCss;
if (hide.length) css += '\n' + hide.join(',\n') + ' { visibility: hidden !important; }';
if (userCss) css += '\n' + userCss;
const style = document.createElement('style');
style.setAttribute('data-dpxdt', '');
style.textContent = css;
(document.head || document.documentElement).appendChild(style);
if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
if (document.getAnimations) {
  for (const a of document.getAnimations()) {
    try { a.finish(); } catch (e) { a.cancel(); }
  }
}
window.scrollTo(0, 0);
const de = document.documentElement, bd = document.body;
return Math.ceil(Math.max(de.scrollHeight, de.offsetHeight, bd ? bd.scrollHeight : 0, bd ? bd.offsetHeight : 0));
}"#;

/// `(resourceTimeout, quietMs, baseCss, hide, userCss)`: [`SETTLE`], then
/// [`STABILIZE`] in the same call. Resolves to what `SETTLE` does plus the
/// document `height`, or `stabilizeError` (an invalid `hideSelectors` entry).
pub(crate) static SETTLE_THEN_STABILIZE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        format!(
            "async function (resourceTimeout, quietMs, baseCss, hide, userCss) {{
const settled = await ({SETTLE})(resourceTimeout, quietMs);
try {{ settled.height = ({STABILIZE})(baseCss, hide, userCss); }}
catch (e) {{ settled.stabilizeError = String(e && e.message !== undefined ? e.message : e); }}
return settled;
}}"
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
const start = performance.now();
const tick = () => {
  let found;
  try { found = document.querySelector(sel); } catch (e) { done('invalid'); return; }
  if (found) { done('found'); return; }
  if (performance.now() - start > timeout) { done('timeout'); return; }
  setTimeout(tick, 10);
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

/// `()`: the document's full height in CSS pixels.
pub(crate) const DOC_HEIGHT: &str = r#"function () {
const d = document.documentElement, b = document.body;
return Math.ceil(Math.max(d.scrollHeight, d.offsetHeight, b ? b.scrollHeight : 0, b ? b.offsetHeight : 0));
}"#;

/// `()`: the browser's own user agent.
pub(crate) const USER_AGENT: &str = "function () { return navigator.userAgent; }";
