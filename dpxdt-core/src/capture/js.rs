//! JavaScript run inside the captured page: request tracking installed
//! before any page script, the wait for a settled page, the stability
//! stylesheet, masks and measurements.

/// Installed with `Page.addScriptToEvaluateOnNewDocument`: counts pending
/// `fetch` and XHR requests (the browser's load event does not) and records
/// uncaught errors for the capture log.
pub(crate) const PRELUDE: &str = r#"(() => {
  if (window.__dpxdt) return;
  const s = window.__dpxdt = { pending: new Map(), next: 0, errors: [] };
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

/// Async script: waits until the document is complete, no tracked request
/// is pending, every image in the viewport is decoded and web fonts are
/// loaded, and all of that stayed true for a short quiet period. Gives up on
/// stragglers after `arguments[0]` ms (the resource timeout) and reports
/// what it abandoned. Returns `{waitedMs, abandoned: [..], status, errors}`.
pub(crate) const SETTLE: &str = r#"
const resourceTimeout = arguments[0];
const quietMs = arguments[1];
const done = arguments[arguments.length - 1];
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
  });
};
tick();
"#;

/// Adds a stylesheet (`arguments[0]`) that freezes the page: animations and
/// transitions jump to their end, the caret is invisible, plus the
/// `hideSelectors` (`arguments[1]`) and the user's `injectCss`
/// (`arguments[2]`). Throws on an invalid selector. Then finishes every
/// running Web Animation. Returns the document height (as [`DOC_HEIGHT`]).
pub(crate) const STABILIZE: &str = r#"
const [baseCss, hide, userCss] = arguments;
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
"#;

/// The stylesheet [`STABILIZE`] always adds.
pub(crate) const FREEZE_CSS: &str = "*, *::before, *::after {
  animation-delay: 0s !important;
  animation-duration: 0s !important;
  animation-iteration-count: 1 !important;
  transition-delay: 0s !important;
  transition-duration: 0s !important;
  caret-color: transparent !important;
  scroll-behavior: auto !important;
}";

/// Async script: waits until `arguments[0]` matches an element, for at most
/// `arguments[1]` ms. Returns true when found.
pub(crate) const WAIT_FOR_SELECTOR: &str = r#"
const [sel, timeout] = arguments;
const done = arguments[arguments.length - 1];
const start = performance.now();
const tick = () => {
  let found;
  try { found = document.querySelector(sel); } catch (e) { done('invalid'); return; }
  if (found) { done('found'); return; }
  if (performance.now() - start > timeout) { done('timeout'); return; }
  setTimeout(tick, 10);
};
tick();
"#;

/// Paints a solid box (`arguments[1]` colour) over every element matching
/// one of the selectors in `arguments[0]`. Returns the selectors that
/// matched nothing; throws on an invalid selector.
pub(crate) const MASK: &str = r#"
const [sels, color] = arguments;
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
"#;

/// Returns the document's full height in CSS pixels.
pub(crate) const DOC_HEIGHT: &str = r#"
const d = document.documentElement, b = document.body;
return Math.ceil(Math.max(d.scrollHeight, d.offsetHeight, b ? b.scrollHeight : 0, b ? b.offsetHeight : 0));
"#;
