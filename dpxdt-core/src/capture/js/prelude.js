// The capture prelude: runs in every frame before the frame's own scripts.
// `__PARAMS__` is replaced by the capture's parameters (see js.rs).
// Engine-neutral: plain DOM and JavaScript, no browser-specific API.
(() => {
  if (window.__dpxdt) return;
  const P = __PARAMS__;
  const realNow = performance.now.bind(performance);
  const realSetTimeout = window.setTimeout.bind(window);
  const realFetch = window.fetch;
  const s = {
    pending: new Map(), next: 0, errors: [], dialogs: [],
    now: realNow, setTimeout: realSetTimeout, frames: 0, timersRun: 0,
    // Whether virtual time still has timers to run within its budget.
    timersDue: () => false,
  };
  // Out of the page's reach: it cannot replace or delete it.
  Object.defineProperty(window, '__dpxdt', { value: s, writable: false, configurable: false, enumerable: false });
  const report = (message) => { if (s.errors.length < 100) s.errors.push(String(message)); };
  try { performance.setResourceTimingBufferSize(10000); } catch (e) {}

  for (const kind of ['alert', 'confirm', 'prompt']) {
    window[kind] = function (message) {
      if (s.dialogs.length < 20) s.dialogs.push(kind + '(' + JSON.stringify(String(message === undefined ? '' : message)) + ')');
      return kind === 'confirm' ? false : (kind === 'prompt' ? null : undefined);
    };
  }

  // Pending fetch and XHR requests (the load event does not count them).
  const track = () => {
    const id = s.next++;
    s.pending.set(id, realNow());
    return () => s.pending.delete(id);
  };
  if (realFetch) {
    window.fetch = function (...args) {
      const end = track();
      return realFetch.apply(this, args).finally(end);
    };
  }
  // Reading a response's body is part of the request: a page that sets a
  // timer when its data is parsed must find time where it left it.
  if (typeof Response === 'function') {
    for (const method of ['arrayBuffer', 'blob', 'bytes', 'formData', 'json', 'text']) {
      const real = Response.prototype[method];
      if (typeof real !== 'function') continue;
      Response.prototype[method] = function (...args) {
        const end = track();
        try {
          return real.apply(this, args).finally(end);
        } catch (e) {
          end();
          throw e;
        }
      };
    }
  }
  const origSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...args) {
    const end = track();
    this.addEventListener('loadend', end);
    try {
      return origSend.apply(this, args);
    } catch (e) {
      end();
      throw e;
    }
  };
  window.addEventListener('error', (e) => {
    if (e instanceof ErrorEvent) report(e.message);
  }, true);
  window.addEventListener('unhandledrejection', (e) => report('unhandled rejection: ' + String(e.reason)));

  // Seeded generators (mulberry32): the same numbers in every capture.
  const generator = (seed) => {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6D2B79F5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0;
    };
  };
  const nextRandom = generator(P.seed);
  Math.random = function random() { return nextRandom() / 4294967296; };

  // A page that asks for a media feature may draw by it: its modes are
  // then never taken from one load (see MEDIA_BLIND).
  const realMatchMedia = window.matchMedia;
  if (realMatchMedia) {
    window.matchMedia = function matchMedia(query) {
      if (/prefers-|forced-colors|inverted-colors/i.test(String(query))) s.mediaQueried = true;
      return realMatchMedia.call(window, query);
    };
  }

  // The locale, engine-neutral (the browser is also told, for Intl).
  if (P.locale) {
    const languages = Object.freeze([P.locale, P.locale.split('-')[0]].filter((l, i, all) => all.indexOf(l) === i));
    Object.defineProperty(Navigator.prototype, 'language', { get: () => P.locale, configurable: true });
    Object.defineProperty(Navigator.prototype, 'languages', { get: () => languages, configurable: true });
  }

  if (P.clock !== null) {
    // Seeded crypto: getRandomValues and randomUUID from their own stream.
    const nextByte4 = generator(P.seed ^ 0x9E3779B9);
    const cryptoObject = window.crypto;
    const realGetRandomValues = cryptoObject && cryptoObject.getRandomValues;
    if (realGetRandomValues) {
      const getRandomValues = function getRandomValues(array) {
        const integer = ArrayBuffer.isView(array) && !(array instanceof DataView)
          && !(array instanceof Float32Array) && !(array instanceof Float64Array);
        // Wrong types and oversized arrays: the browser's own error.
        if (!integer || array.byteLength > 65536) return realGetRandomValues.call(cryptoObject, array);
        const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
        for (let i = 0; i < bytes.length; i += 4) {
          const v = nextByte4();
          for (let k = 0; k < 4 && i + k < bytes.length; k++) bytes[i + k] = (v >>> (8 * k)) & 255;
        }
        return array;
      };
      Object.defineProperty(cryptoObject, 'getRandomValues', { value: getRandomValues, configurable: true, writable: true });
      if (typeof cryptoObject.randomUUID === 'function') {
        Object.defineProperty(cryptoObject, 'randomUUID', {
          value: function randomUUID() {
            const b = getRandomValues(new Uint8Array(16));
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
            return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
          },
          configurable: true, writable: true,
        });
      }
    }

    // Virtual time. The clock starts at P.clock and moves only when a
    // timer is due: `now` jumps to the earliest timer's due time, the
    // timer runs, and so on, as fast as the page allows, until no timer
    // is due within P.settleTime ms. Time moves only while the page is
    // loaded and waits for no request, font or image, so what a timer
    // finds does not depend on the network's speed.
    const T = P.clock;
    let now = 0;
    const RealDate = Date;
    const VirtualDate = function Date(...args) {
      if (!new.target) return new RealDate(T + now).toString();
      return Reflect.construct(RealDate, args.length ? args : [T + now], new.target);
    };
    Object.setPrototypeOf(VirtualDate, RealDate);
    VirtualDate.prototype = RealDate.prototype;
    // `new (new Date()).constructor()` is virtual too.
    Object.defineProperty(RealDate.prototype, 'constructor', { value: VirtualDate, configurable: true, writable: true });
    VirtualDate.now = () => T + now;
    window.Date = VirtualDate;
    // Intl formats "now" when given no date: the virtual now. `format` is
    // a getter of a bound function (`dates.map(fmt.format)` works).
    const dtf = Intl.DateTimeFormat.prototype;
    const formatGetter = Object.getOwnPropertyDescriptor(dtf, 'format');
    if (formatGetter && formatGetter.get) {
      Object.defineProperty(dtf, 'format', {
        configurable: true,
        get() {
          const bound = formatGetter.get.call(this);
          return (date) => bound(date === undefined ? T + now : date);
        },
      });
    }
    const realParts = dtf.formatToParts;
    if (typeof realParts === 'function') {
      Object.defineProperty(dtf, 'formatToParts', {
        configurable: true, writable: true,
        value: function formatToParts(date) { return realParts.call(this, date === undefined ? T + now : date); },
      });
    }
    Object.defineProperty(performance, 'now', { value: () => P.perfNow + now, configurable: true, writable: true });
    Object.defineProperty(performance, 'timeOrigin', { get: () => T - P.perfNow, configurable: true });

    // Page timers have ids 1, 2, ...; the prelude's own (animation frames,
    // idle callbacks) -1, -2, ..., which no clearTimeout of the page hits.
    const timers = new Map();
    const queue = [];
    let nextId = 1, nextOwnId = -1, order = 0, depth = 0;
    const insert = (t) => {
      let lo = 0, hi = queue.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const q = queue[mid];
        if (q.due < t.due || (q.due === t.due && q.order < t.order)) lo = mid + 1; else hi = mid;
      }
      queue.splice(lo, 0, t);
    };
    const earliest = () => {
      while (queue.length && queue[0].dead) queue.shift();
      return queue[0];
    };
    const callable = (fn) => (typeof fn === 'function' ? fn : () => (0, eval)(String(fn)));
    const schedule = (fn, delay, args, repeat, own) => {
      // As the browser converts a delay (WebIDL long): whole milliseconds,
      // NaN, infinite and out-of-range values 0.
      let ms = Number(delay) | 0;
      if (ms < 0) ms = 0;
      // Browsers hold deeply nested timers and intervals to 4 ms.
      if (ms < 4 && (repeat || depth >= 5)) ms = 4;
      const id = own ? nextOwnId-- : nextId++;
      const t = { id, due: now + ms, order: order++, fn: callable(fn), args, every: repeat ? ms : 0, depth: depth + 1 };
      timers.set(t.id, t);
      insert(t);
      kick();
      return t.id;
    };
    const cancel = (id) => {
      const t = timers.get(id);
      if (t) { t.dead = true; timers.delete(id); }
    };
    const cancelPage = (id) => { if (id > 0) cancel(id); };
    window.setTimeout = function setTimeout(fn, delay, ...args) { return schedule(fn, delay, args, false, false); };
    window.setInterval = function setInterval(fn, delay, ...args) { return schedule(fn, delay, args, true, false); };
    window.clearTimeout = function clearTimeout(id) { cancelPage(id); };
    window.clearInterval = function clearInterval(id) { cancelPage(id); };

    // Animation frames: every P.frameMs of virtual time while callbacks wait.
    const frameCallbacks = new Map();
    let frameTimer = 0, nextFrameId = 1, running = null;
    const runFrame = () => {
      frameTimer = 0;
      s.frames++;
      // Callbacks cancelled by an earlier one of the same frame do not run.
      running = new Map(frameCallbacks);
      frameCallbacks.clear();
      const stamp = performance.now();
      for (const [id, cb] of running) {
        if (!running.has(id)) continue;
        try { cb(stamp); } catch (e) { report(e && e.message || e); }
      }
      running = null;
    };
    window.requestAnimationFrame = function requestAnimationFrame(cb) {
      const id = nextFrameId++;
      frameCallbacks.set(id, cb);
      if (!frameTimer) {
        const next = (Math.floor(now / P.frameMs) + 1) * P.frameMs;
        frameTimer = schedule(runFrame, next - now, [], false, true);
      }
      return id;
    };
    window.cancelAnimationFrame = function cancelAnimationFrame(id) {
      frameCallbacks.delete(id);
      if (running) running.delete(id);
    };
    // Idle callbacks get 50 ms that run out as the page asks (one ms per
    // look), so a loop that works while time remains ends.
    const idleIds = new Map();
    let nextIdleId = 1;
    window.requestIdleCallback = function requestIdleCallback(cb) {
      const id = nextIdleId++;
      let left = 50;
      const deadline = Object.freeze({ didTimeout: false, timeRemaining: () => (left = Math.max(0, left - 1)) });
      idleIds.set(id, schedule(() => { idleIds.delete(id); cb(deadline); }, 0, [], false, true));
      return id;
    };
    window.cancelIdleCallback = function cancelIdleCallback(id) {
      cancel(idleIds.get(id));
      idleIds.delete(id);
    };

    // Whether the page may be moved on in time: loaded, and waiting for
    // no request (younger than the resource timeout), image or font.
    // What still loads after the resource timeout is abandoned, as the
    // capture's wait abandons it, and holds time no longer.
    const started = realNow();
    const mayAdvance = () => {
      const real = realNow();
      for (const since of s.pending.values()) if (real - since < P.resourceTimeout) return false;
      if (real - started >= P.resourceTimeout) return true;
      if (document.readyState !== 'complete') return false;
      if (document.fonts && document.fonts.status !== 'loaded') return false;
      for (const img of document.images) {
        if (!img.complete && img.loading !== 'lazy') return false;
      }
      return true;
    };
    s.timersDue = () => {
      const t = earliest();
      return !!t && t.due <= P.settleTime && s.timersRun < P.maxTimers && !s.timeStopped;
    };
    s.virtualNow = () => now;

    // The pump: one timer per task, so promises, events and responses
    // between two timers are handled as in a browser.
    const channel = new MessageChannel();
    let kicked = false;
    const kick = () => {
      if (!kicked) { kicked = true; channel.port2.postMessage(0); }
    };
    channel.port1.onmessage = () => {
      kicked = false;
      const t = earliest();
      if (!t) return;
      if (t.due > now) {
        if (t.due > P.settleTime || s.timeStopped) return;
        if (!mayAdvance()) {
          // One look every 5 ms, however many timers wait.
          kicked = true;
          realSetTimeout(() => { kicked = false; kick(); }, 5);
          return;
        }
        now = t.due;
      }
      if (s.timersRun >= P.maxTimers) {
        report('virtual time: stopped after ' + P.maxTimers + ' timers');
        return;
      }
      queue.shift();
      s.timersRun++;
      if (t.every) {
        t.due = now + t.every;
        t.order = order++;
        insert(t);
      } else {
        timers.delete(t.id);
      }
      const outer = depth;
      depth = t.depth;
      try { t.fn.apply(window, t.args); } catch (e) { report(e && e.message || e); }
      depth = outer;
      kick();
    };
  }

  // CSS animations and transitions off from the start, in this frame and
  // in every shadow root made in it (open or closed).
  const addFreezeCss = () => {
    const root = document.documentElement;
    if (!root || root.querySelector('style[data-dpxdt-freeze]')) return !!root;
    const style = document.createElement('style');
    style.setAttribute('data-dpxdt-freeze', '');
    style.textContent = P.freezeCss;
    (document.head || root).appendChild(style);
    return true;
  };
  if (!addFreezeCss()) document.addEventListener('readystatechange', addFreezeCss, { once: true });
  document.addEventListener('DOMContentLoaded', addFreezeCss);
  const shadowRoots = [];
  let shadowSheet = null;
  try {
    shadowSheet = new CSSStyleSheet();
    shadowSheet.replaceSync(P.freezeCss + '\n' + P.hostFreezeCss);
  } catch (e) { shadowSheet = null; }
  const freezeShadow = (root) => {
    if (!shadowSheet) return;
    try {
      if (!root.adoptedStyleSheets.includes(shadowSheet)) root.adoptedStyleSheets = [...root.adoptedStyleSheets, shadowSheet];
    } catch (e) {}
  };
  // A component that sets its own adopted sheets keeps the freeze sheet.
  const adopted = typeof ShadowRoot === 'function' && Object.getOwnPropertyDescriptor(ShadowRoot.prototype, 'adoptedStyleSheets');
  if (shadowSheet && adopted && adopted.set) {
    Object.defineProperty(ShadowRoot.prototype, 'adoptedStyleSheets', {
      configurable: true, enumerable: adopted.enumerable, get: adopted.get,
      set(sheets) {
        const list = Array.from(sheets || []);
        adopted.set.call(this, shadowRoots.includes(this) && !list.includes(shadowSheet) ? [...list, shadowSheet] : list);
      },
    });
  }
  const realAttachShadow = Element.prototype.attachShadow;
  if (realAttachShadow) {
    Element.prototype.attachShadow = function attachShadow(init) {
      const root = realAttachShadow.call(this, init);
      shadowRoots.push(root);
      freezeShadow(root);
      return root;
    };
  }
  // Every shadow root known: those made by script, and open ones found in
  // the tree (declarative shadow DOM), each once, nested ones included.
  const allShadowRoots = () => {
    const out = new Set(shadowRoots);
    const todo = [document, ...shadowRoots];
    while (todo.length) {
      for (const el of todo.pop().querySelectorAll('*')) {
        if (el.shadowRoot && !out.has(el.shadowRoot)) { out.add(el.shadowRoot); todo.push(el.shadowRoot); }
      }
    }
    return Array.from(out);
  };

  // Marquees and videos stand still at their start from the moment they
  // exist: a muted video may autoplay under any policy, and one that
  // played would have to be sought back to its first frame.
  const still = (el) => {
    try {
      if (el.localName === 'marquee') el.stop();
      else if (el.localName === 'video') { el.autoplay = false; el.pause(); }
    } catch (e) {}
  };
  const stopMovers = (root) => {
    for (const el of root.querySelectorAll('marquee, video')) still(el);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        still(n);
        if (n.firstElementChild) stopMovers(n);
      }
    }
  }).observe(document, { childList: true, subtree: true });

  // The first frame of an animated image at `src`, as a still image's
  // blob URL, or null (not animated, or not decodable here).
  const stills = new Map();
  const firstFrame = (src) => {
    if (!stills.has(src)) stills.set(src, decodeFirstFrame(src).catch((e) => {
      report('cannot show the first frame of ' + src + ': ' + (e && e.message || e));
      return null;
    }));
    return stills.get(src);
  };
  const decodeFirstFrame = async (src) => {
    if (typeof ImageDecoder !== 'function') return null;
    if (!src || src.startsWith('blob:')) return null;
    if (!/^(data:image\/(gif|png|apng|webp|avif)|https?:)/i.test(src)) return null;
    if (/^https?:/i.test(src) && /\.(jpe?g|svg|bmp|ico)([?#]|$)/i.test(src)) return null;
    const response = await realFetch.call(window, src);
    const type = (response.headers.get('content-type') || '').split(';')[0].trim();
    if (!/^image\/(gif|png|apng|webp|avif)$/.test(type)) return null;
    const decoder = new ImageDecoder({ data: response.body, type });
    try {
      await decoder.tracks.ready;
      const track = decoder.tracks.selectedTrack;
      if (!track || !track.animated) return null;
      const { image } = await decoder.decode({ frameIndex: 0 });
      const canvas = new OffscreenCanvas(image.displayWidth, image.displayHeight);
      canvas.getContext('2d').drawImage(image, 0, 0);
      image.close();
      return URL.createObjectURL(await canvas.convertToBlob({ type: 'image/png' }));
    } finally {
      decoder.close();
    }
  };
  const stillImage = async (img) => {
    // An image that never loaded is not animating.
    if (!img.complete || img.naturalWidth === 0) return;
    const still = await firstFrame(img.currentSrc || img.src);
    if (!still) return;
    if (!img.hasAttribute('width') && img.width) img.setAttribute('width', img.width);
    if (!img.hasAttribute('height') && img.height) img.setAttribute('height', img.height);
    img.removeAttribute('srcset');
    img.src = still;
    await img.decode().catch(() => {});
  };
  // Animated CSS backgrounds: only an image the page loaded (by CSS, or
  // by an <img> whose download CSS then shares) can be one, so elements
  // are looked at only when such an image is animated.
  const stillBackgrounds = async (roots) => {
    const loadedByCss = new Set();
    for (const e of performance.getEntriesByType('resource')) {
      if ((e.initiatorType === 'css' || e.initiatorType === 'img') && /^https?:/i.test(e.name)) loadedByCss.add(e.name);
    }
    const animated = new Map();
    await Promise.all(Array.from(loadedByCss, async (src) => {
      const still = await firstFrame(src);
      if (still) animated.set(src, still);
    }));
    if (!animated.size) return;
    for (const root of roots) {
      for (const el of root.querySelectorAll('*')) {
        const bg = getComputedStyle(el).backgroundImage;
        if (!bg || bg === 'none' || !bg.includes('url(')) continue;
        const replaced = bg.replace(/url\("([^"]*)"\)/g, (all, src) => (animated.has(src) ? 'url("' + animated.get(src) + '")' : all));
        if (replaced !== bg) el.style.setProperty('background-image', replaced, 'important');
      }
    }
  };
  const firstVideoFrame = (video) => new Promise((done) => {
    video.autoplay = false;
    video.pause();
    const settle = () => done();
    if (video.currentTime !== 0) {
      video.addEventListener('seeked', settle, { once: true });
      video.currentTime = 0;
    } else if (video.readyState < 2 && video.preload !== 'none' && !video.poster && video.currentSrc) {
      video.addEventListener('loadeddata', settle, { once: true });
      video.addEventListener('error', settle, { once: true });
    } else {
      done();
    }
    realSetTimeout(settle, P.freezeTimeout);
  });
  HTMLMediaElement.prototype.play = function play() { this.autoplay = false; return Promise.resolve(); };

  // Finishes running animations (shadow trees included), stops marquees,
  // and shows the first frame of animated images, backgrounds and videos.
  s.freeze = () => {
    const roots = [document, ...allShadowRoots()];
    for (const root of roots) {
      if (root !== document) freezeShadow(root);
      stopMovers(root);
    }
    if (document.getAnimations) {
      for (const a of document.getAnimations()) {
        try { a.finish(); } catch (e) { a.cancel(); }
      }
    }
    const work = [stillBackgrounds(roots)];
    for (const root of roots) {
      for (const img of root.querySelectorAll('img')) work.push(stillImage(img));
      for (const video of root.querySelectorAll('video')) work.push(firstVideoFrame(video));
    }
    // A straggler (an image that answers slowly) does not hold the capture.
    return Promise.race([Promise.all(work), new Promise((done) => realSetTimeout(done, P.freezeTimeout))]);
  };
  window.addEventListener('message', (e) => {
    if (e.data === '__dpxdt_freeze') s.freeze();
  });
})();
