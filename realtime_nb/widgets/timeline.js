// realtime_nb Timeline: a live event timeline of a Realtime session, drawn on a canvas.
//
// The kernel sends compact events (see realtime_nb/widgets/_compact.py for their keys) as custom
// messages: {type: "events", events: [...], now, live, sync?, final?} at most 10 times a second,
// and {type: "reset"} when it starts showing another log. initialize({model}) keeps ONE event
// store per model (all views share it) and asks for the history with {type: "sync", from, to}
// (on start, and when a batch reveals missing sequence numbers). render({model, el}) draws a
// view; redraws are coalesced on requestAnimationFrame and draw only what is in the time window.
// The lane facts (categories, rows, seam, commit minimum, ...) come from _lanes.py as traits and
// the marker labels in the events (see laneRules); the groupings (collapse per view's bin,
// speech segments, response spans) are recomputed here, live, by _lanes.build_lanes' rules:
// the _lanes docstring says why, and the browser tests compare both.
// {type: "stats"} is answered with {type: "stats", count, updates, last_ms, median_ms, max_ms,
// ...}: the JS time of each update (ingest of a batch + the redraw that shows it).
//
// The rooms of this file, in order (search for the "-----" headings):
//   helpers           constants, binary search, formatting
//   the store         Store: the events in seq order and the lane bookkeeping done per event
//   marks             collapse (floods → one mark per type and bin) and lanesSummary (tests)
//   the model side    ModelState: the kernel link (sync, holes, reset, stats) and the redraw
//                     scheduler (requestAnimationFrame, update timings); initialize()
//   a view            View: its DOM (toolbar, canvas, legend, details), the time window and the
//                     interaction (pan, zoom, keys, hover, pin), draw() and the toolbar's state
//   details           describeHit: the text of a tooltip and of the pinned details
//   painters          one function per lane (frames, grid, local markers, event marks, speech,
//                     input buffer, responses, errors, label strip); View.draw calls them in order
//   render            render() and the module's default export
//
// Why one file of ~1250 lines (over the project's ~600): anywidget 0.11 loads `_esm` as ONE
// module from a Blob URL (its loadEsm: `import(URL.createObjectURL(new Blob([esm])))`, or
// `import(href)` for an http(s) URL), so a relative `import "./store.js"` has nothing to resolve
// against. Splitting would need either a URL that serves the package's files (none in Jupyter
// Server, Voila or marimo without a server extension, and none in the offline HTML export) or a
// join step making the string the browser runs differ from the files on disk: the console's line
// numbers would then point into a generated blob, and anywidget's hot reload (ANYWIDGET_HMR)
// watches one file. The same single file also runs in timeline_html's offline page. So the rooms
// are kept apart inside the file instead: each is a class or a few small named functions.

// ------------------------------------------------------------------------------ helpers
const ROW_H = 13;
const LABEL_W = 84;
const FONT = "10px system-ui, -apple-system, 'Segoe UI', sans-serif";
const CHAR_W = 5.6; // average glyph width of FONT, to fit labels without measuring
const KEEP_TIMINGS = 2000;

// The lane facts this file does not restate, from Python: the categories (_categories:
// colour, label) and _lanes.drawing_rules() (_lane_rules: rows, output-audio delta types, the
// seam marker and its colour, the markers that end speech, the commit minimum, the collapse
// bin), in the shapes the store and the painters use. Both traits are set once per model.
function laneRules(model) {
  const r = model.get("_lane_rules");
  const cats = model.get("_categories");
  return {
    cats,
    laneRows: r.lane_rows, // rows in each lane: {c, s, l}
    rows: r.rows, // lane → category → row
    outAudio: new Set(r.out_audio),
    seam: r.seam,
    endsSpeech: new Set(r.ends_speech),
    seamColor: r.seam_color,
    commitMinMs: r.commit_min_ms,
    binPx: r.bin_px, // floods collapse per bin of this many pixels
    err: cats.error.color,
  };
}

// The ModelState of each widget model, by its _uid (lanesSummary looks them up).
const STATES = new Map();

// First index i in [lo, hi) with key(arr[i]) >= x (arr sorted by key).
function lowerBound(arr, x, key, lo = 0, hi = arr.length) {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(arr[mid]) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
const byT = (e) => e.t;
const byS = (e) => e.s;
const byT0 = (p) => p[0];

function median(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmtT(t) {
  return `${t.toFixed(3)} s`;
}

function niceStep(span, widthPx) {
  const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800, 3600];
  const target = span / Math.max(1, widthPx / 80);
  return steps.find((s) => s >= target) || 7200;
}

function fmtTick(t, step) {
  if (step >= 60 && t >= 60) {
    const m = Math.floor(t / 60);
    const s = Math.round(t - m * 60);
    return `${m}:${String(s).padStart(2, "0")}`;
  }
  const dec = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
  return `${t.toFixed(dec)} s`;
}

// ------------------------------------------------------------------------------ the store
// All events of the log in seq order, and the lanes kept up to date per event as batches
// arrive (live, or history merged in place after live batches).
class Store {
  constructor(rules) {
    this.rules = rules;
    this.reset();
  }

  reset() {
    this.events = []; // compact events, sorted by seq (= by time)
    this.lastSeq = -1;
    this.speech = []; // {t0, t1, a0, a1, item, seq0, seq1}
    this.responses = []; // {id, tCreated, tAudio, tLastAudio, tDone, deltas, audioMs, status}
    this.respById = new Map();
    this.buffer = []; // [t, buffered_ms, appended_ms]
    this.errors = []; // compact events carrying x
    this.locals = []; // local markers
    this.seams = []; // renewal seams (markers of type rules.seam)
  }

  // Add a batch; returns the first missing seq range [from, to) if the store has a hole.
  ingest(list) {
    let merge = null;
    for (const e of list) {
      if (e.s > this.lastSeq) {
        this.events.push(e);
        this.lastSeq = e.s;
        this.add(e);
      } else {
        const i = lowerBound(this.events, e.s, byS);
        if (i >= this.events.length || this.events[i].s !== e.s) (merge ||= []).push(e);
      }
    }
    if (merge) {
      // History arriving after live batches: put it in place and rebuild the lanes.
      this.events = this.events.concat(merge).sort((a, b) => a.s - b.s);
      this.rebuild();
    }
    return this.hole();
  }

  hole() {
    const ev = this.events;
    if (ev.length === this.lastSeq + 1) return null;
    if (!ev.length || ev[0].s !== 0) return [0, ev.length ? ev[0].s : 0];
    // Binary search for the first index whose seq is not its index.
    let lo = 0;
    let hi = ev.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ev[mid].s === mid) lo = mid + 1;
      else hi = mid;
    }
    return [lo, ev[lo].s];
  }

  rebuild() {
    const events = this.events;
    this.reset();
    this.events = events;
    this.lastSeq = events.length ? events[events.length - 1].s : -1;
    for (const e of events) this.add(e);
  }

  // Lane bookkeeping for one event (same rules as _lanes.build_lanes).
  add(e) {
    const y = e.y;
    const t = e.t;
    if (e.b) this.buffer.push([t, e.b[0], e.b[1]]);
    if (e.x) this.errors.push(e);
    if (e.d !== "s") {
      if (e.d === "l") this.locals.push(e);
      if (y === this.rules.seam) this.seams.push(e);
      if (this.rules.endsSpeech.has(y)) {
        for (const s of this.speech) if (s.t1 === null) { s.t1 = t; s.seq1 = e.s; }
      }
      return;
    }
    const p = e.p || {};
    if (y === "input_audio_buffer.speech_started") {
      for (const s of this.speech) if (s.t1 === null) { s.t1 = t; s.seq1 = e.s; }
      this.speech.push({ t0: t, t1: null, a0: p.audio_start_ms ?? null, a1: null,
        item: p.item_id ?? null, seq0: e.s, seq1: null });
    } else if (y === "input_audio_buffer.speech_stopped") {
      let seg = null;
      for (let i = this.speech.length - 1; i >= 0 && !seg; i--) {
        const s = this.speech[i];
        if (s.t1 === null && s.item === (p.item_id ?? null)) seg = s;
      }
      for (let i = this.speech.length - 1; i >= 0 && !seg; i--) {
        if (this.speech[i].t1 === null) seg = this.speech[i];
      }
      if (!seg) {
        seg = { t0: t, t1: null, a0: null, a1: null, item: p.item_id ?? null, seq0: e.s,
          seq1: null };
        this.speech.push(seg);
      }
      seg.t1 = t;
      seg.seq1 = e.s;
      seg.a1 = p.audio_end_ms ?? null;
    }
    const rid = e.r;
    if (rid === undefined || rid === null) return;
    let span = this.respById.get(rid);
    if (!span) {
      span = { id: rid, tCreated: y === "response.created" ? t : null, tAudio: null,
        tLastAudio: null, tDone: null, deltas: 0, audioMs: 0, status: null, seq0: e.s };
      this.respById.set(rid, span);
      this.responses.push(span);
    }
    if (this.rules.outAudio.has(y)) {
      span.deltas += 1;
      span.audioMs += e.ms || 0;
      if (span.tAudio === null) span.tAudio = t;
      span.tLastAudio = t;
    } else if (y === "response.done") {
      span.tDone = t;
      span.status = e.st ?? null;
    }
  }

  get tFirst() {
    return this.events.length ? this.events[0].t : 0;
  }

  get tLast() {
    return this.events.length ? this.events[this.events.length - 1].t : 0;
  }
}

// ------------------------------------------------------------------------------ marks
// Collapse events [i0, i1) into marks per lane (same rule as _lanes.collapse): events of a
// lane with the same type in the same bin floor(t / binS) become one mark, even with other types
// interleaved; events with an error never merge. visit(mark) is called in first-event order.
function collapse(events, i0, i1, binS, rows, visit) {
  const marks = [];
  const cur = { c: new Map(), s: new Map(), l: new Map() };
  for (let i = i0; i < i1; i++) {
    const e = events[i];
    const d = e.d;
    const b = binS ? Math.floor(e.t / binS) : 0;
    const lane = cur[d];
    const m = lane.get(e.y);
    if (binS && m && !e.x && !m.x && m.bin === b) {
      m.count += 1;
      m.t1 = e.t;
      m.seq1 = e.s;
      continue;
    }
    const n = { d, y: e.y, k: e.k, row: rows[d][e.k] ?? rows[d].other, t0: e.t, t1: e.t, count: 1,
      seq0: e.s, seq1: e.s, i, x: e.x || null, bin: b };
    lane.set(e.y, n);
    marks.push(n);
  }
  for (const m of marks) visit(m);
}

// The digest _lanes.Lanes.summary() gives, for comparing both implementations in tests.
export function lanesSummary(uid, binS = null) {
  const st = STATES.get(uid);
  if (!st) return null;
  const s = st.store;
  const marks = { c: [], s: [], l: [] };
  collapse(s.events, 0, s.events.length, binS, st.rules.rows, (m) => marks[m.d].push([m.seq0, m.count]));
  const last = s.buffer.length ? s.buffer[s.buffer.length - 1] : null;
  return {
    count: s.events.length,
    speech: s.speech.map((x) => [x.t0, x.t1, x.a0, x.a1]),
    responses: s.responses.map((r) => [r.id, r.tAudio, r.tDone, r.deltas,
      Math.round(r.audioMs * 10) / 10]),
    errors: s.errors.map((e) => e.s),
    buffer: s.buffer.length,
    last_buffer: last ? [last[1], last[2]] : null,
    marks,
    seams: s.seams.map((e) => [e.s, (e.p || {}).old_session_id ?? null,
      (e.p || {}).new_session_id ?? null]),
  };
}

// ------------------------------------------------------------------------------ the model side
// One per widget model, shared by all its views: the store, the link to the kernel (history
// sync, holes, reset, stats) and the redraw scheduler (one requestAnimationFrame for all views,
// with the timings {type: "stats"} reports).
class ModelState {
  constructor(model) {
    this.model = model;
    this.rules = laneRules(model);
    this.store = new Store(this.rules);
    this.views = new Set();
    this.raf = 0;
    this.ingestMs = 0;
    this.pendingUpdate = false;
    this.updates = []; // [events held, ms]
    this.draws = [];
    this.kernelNow = null;
    this.nowAt = 0;
    this.live = model.get("live");
    this.syncPending = false;
    this.askedHole = "";
    this.frame = () => this.drawViews();
    this.requestDraw = () => {
      if (!this.raf) this.raf = requestAnimationFrame(this.frame);
    };
  }

  // The kernel's clock (seconds since the log started) while live, else null.
  now() {
    if (!this.live || this.kernelNow === null) return null;
    return this.kernelNow + (performance.now() - this.nowAt) / 1000;
  }

  // -------------------------------------------------------------- redraw scheduling
  drawViews() {
    this.raf = 0;
    const t0 = performance.now();
    for (const v of this.views) v.draw();
    const drawMs = performance.now() - t0;
    this.draws.push(drawMs);
    if (this.draws.length > KEEP_TIMINGS) this.draws.splice(0, this.draws.length - KEEP_TIMINGS);
    if (this.pendingUpdate && this.views.size) {
      this.updates.push([this.store.events.length, this.ingestMs + drawMs]);
      if (this.updates.length > KEEP_TIMINGS) this.updates.splice(0, this.updates.length - KEEP_TIMINGS);
      this.ingestMs = 0;
      this.pendingUpdate = false;
    }
  }

  // -------------------------------------------------------------- the kernel link
  sync(from, to) {
    this.syncPending = true;
    this.model.send(to === undefined ? { type: "sync", from } : { type: "sync", from, to });
  }

  onMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "events") {
      this.receiveEvents(msg);
    } else if (msg.type === "reset") {
      this.store.reset();
      this.syncPending = true; // the kernel sends the history right after a reset
      this.requestDraw();
    } else if (msg.type === "stats") {
      this.model.send(this.statsReply());
    }
  }

  receiveEvents(msg) {
    const t0 = performance.now();
    if (typeof msg.now === "number") {
      this.kernelNow = msg.now;
      this.nowAt = t0;
    }
    if (typeof msg.live === "boolean") this.live = msg.live;
    const hole = this.store.ingest(msg.events || []);
    if (msg.sync && msg.final) this.syncPending = false;
    // Ask for what is missing once per hole (the kernel has it all; a static page may not).
    if (hole && !this.syncPending && this.askedHole !== `${hole}`) {
      this.askedHole = `${hole}`;
      this.sync(hole[0], hole[1]);
    }
    this.ingestMs += performance.now() - t0;
    this.pendingUpdate = true;
    this.requestDraw();
  }

  statsReply() {
    const ms = this.updates.map((u) => u[1]);
    const last = this.updates.length ? this.updates[this.updates.length - 1] : null;
    return {
      type: "stats",
      count: this.store.events.length,
      updates: this.updates.length,
      last_ms: last ? last[1] : null,
      median_ms: median(ms),
      max_ms: ms.length ? Math.max(...ms) : null,
      draws: this.draws.length,
      draw_median_ms: median(this.draws),
      draw_max_ms: this.draws.length ? Math.max(...this.draws) : null,
      recent: this.updates.slice(-50),
      views: this.views.size,
    };
  }
}

function initialize({ model }) {
  const uid = model.get("_uid");
  const st = new ModelState(model);
  STATES.set(uid, st);

  const onCustom = (msg) => st.onMessage(msg);
  model.on("msg:custom", onCustom);
  const onLive = () => {
    st.live = model.get("live");
    st.requestDraw();
  };
  model.on("change:live", onLive);
  // While live, time advances between events: redraw following views 4 times a second.
  const ticker = setInterval(() => {
    if (st.live && [...st.views].some((v) => v.follow)) st.requestDraw();
  }, 250);
  st.sync(0);

  return () => {
    model.off("msg:custom", onCustom);
    model.off("change:live", onLive);
    clearInterval(ticker);
    if (st.raf) cancelAnimationFrame(st.raf);
    STATES.delete(uid);
  };
}

// ------------------------------------------------------------------------------ a view
// One per render(): its DOM (toolbar, canvas, legend, pinned details), the time window it
// shows (following live or a fixed range) and the interaction that moves it; draw() paints a
// frame with the painters below.
class View {
  constructor(model, st, host) {
    this.model = model;
    this.st = st;
    this.follow = model.get("follow");
    this.span = model.get("window_s");
    this.range = null; // [t0, t1] when not following
    this.hits = [];
    this.pinned = null;
    this.hover = null;
    this.width = 600;
    this.errIndex = -1;
    this.cleanups = [];
    this.build(host);
  }

  build(host) {
    const root = el("div", "rtnb-timeline");
    root.tabIndex = 0;
    const bar = el("div", "rtnb-tl-bar");
    const title = el("span", "rtnb-tl-title", this.model.get("title") || "");
    const windows = el("span", "rtnb-tl-group");
    this.windowButtons = [[10, "10 s"], [60, "60 s"], [0, "All"]].map(([s, label]) => {
      const b = el("button", "rtnb-tl-btn", label);
      b.type = "button";
      b.title = s ? `Show the last ${label}` : "Show the whole log";
      b.dataset.span = String(s);
      b.addEventListener("click", () => this.setWindow(s));
      windows.append(b);
      return b;
    });
    this.followButton = el("button", "rtnb-tl-btn rtnb-tl-follow", "● Follow live");
    this.followButton.type = "button";
    this.followButton.title = "Keep the newest events in view (double-click the plot too)";
    this.followButton.addEventListener("click", () => this.setFollow(!this.follow));
    this.errButton = el("button", "rtnb-tl-btn rtnb-tl-errors", "");
    this.errButton.type = "button";
    this.errButton.title = "Jump to the next error";
    this.errButton.addEventListener("click", () => this.nextError());
    this.info = el("span", "rtnb-tl-info", "");
    const help = el("span", "rtnb-tl-help", "drag: pan · ctrl+wheel: zoom · click: pin");
    help.title = "Drag or shift+wheel to pan, ctrl+wheel to zoom, double-click to follow live. " +
      "Keys (click the timeline first): ←/→ pan, +/− zoom, f follow live, e next error, " +
      "Esc close details.";
    bar.append(title, windows, this.followButton, this.errButton, this.info, help);

    this.wrap = el("div", "rtnb-tl-canvas-wrap");
    this.canvas = el("canvas", "rtnb-tl-canvas");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "Event timeline");
    this.tip = el("div", "rtnb-tl-tip");
    this.tip.style.display = "none";
    this.wrap.append(this.canvas, this.tip);

    const legend = el("div", "rtnb-tl-legend");
    for (const [key, c] of Object.entries(this.st.rules.cats)) {
      if (key === "local") continue;
      const item = el("span", "rtnb-tl-legend-item", c.label || key);
      const chip = el("i", "rtnb-tl-chip");
      chip.style.background = c.color;
      item.prepend(chip);
      legend.append(item);
    }
    const extra = el("span", "rtnb-tl-legend-item", "refused (never sent)");
    const chip = el("i", "rtnb-tl-chip rtnb-tl-chip-refused");
    extra.prepend(chip);
    legend.append(extra);

    this.detail = el("div", "rtnb-tl-detail");
    this.detail.style.display = "none";
    root.append(bar, this.wrap, legend, this.detail);
    host.append(root);
    this.root = root;

    const on = (target, type, fn, opts) => {
      target.addEventListener(type, fn, opts);
      this.cleanups.push(() => target.removeEventListener(type, fn, opts));
    };
    on(this.canvas, "pointermove", (e) => this.onMove(e));
    on(this.canvas, "pointerleave", () => this.setHover(null));
    on(this.canvas, "pointerdown", (e) => this.onDown(e));
    on(this.canvas, "wheel", (e) => this.onWheel(e), { passive: false });
    on(this.canvas, "dblclick", () => this.setFollow(true));
    on(root, "keydown", (e) => this.onKey(e));
    const ro = new ResizeObserver(() => this.st.requestDraw());
    ro.observe(this.wrap);
    this.cleanups.push(() => ro.disconnect());
    const onTraits = () => {
      this.follow = this.model.get("follow");
      this.span = this.model.get("window_s");
      if (this.follow) this.range = null;
      this.st.requestDraw();
    };
    for (const e of ["change:follow", "change:window_s"]) {  // one name per on() (anywidget)
      this.model.on(e, onTraits);
      this.cleanups.push(() => this.model.off(e, onTraits));
    }
    const onTitle = () => { title.textContent = this.model.get("title") || ""; };
    this.model.on("change:title", onTitle);
    this.cleanups.push(() => this.model.off("change:title", onTitle));
  }

  destroy() {
    for (const f of this.cleanups) f();
    this.root.remove();
  }

  // -------------------------------------------------------------- window and interaction
  setWindow(span) {
    this.span = span;
    this.range = null;
    this.follow = true;
    this.model.set("window_s", span);
    this.model.set("follow", true);
    this.model.save_changes();
    this.st.requestDraw();
  }

  setFollow(on) {
    this.follow = on;
    if (on) this.range = null;
    else this.range = this.currentRange();
    this.model.set("follow", on);
    this.model.save_changes();
    this.st.requestDraw();
  }

  stopFollowing(range) {
    this.range = range;
    if (this.follow) {
      this.follow = false;
      this.model.set("follow", false);
      this.model.save_changes();
    }
    this.st.requestDraw();
  }

  currentRange() {
    const s = this.st.store;
    const now = this.st.now();
    const right = Math.max(s.tLast, now ?? -Infinity);
    if (!this.follow && this.range) return this.range;
    if (this.span > 0) {
      const t1 = right + this.span * 0.03;
      return [t1 - this.span, t1];
    }
    const t0 = Math.min(0, s.tFirst);
    const span = Math.max(right - t0, 0.5);
    return [t0, t0 + span * 1.03];
  }

  plotX() {
    return [LABEL_W, Math.max(LABEL_W + 50, this.width - 8)];
  }

  tAt(px) {
    const [t0, t1] = this.drawnRange || this.currentRange();
    const [x0, x1] = this.plotX();
    return t0 + ((px - x0) / (x1 - x0)) * (t1 - t0);
  }

  onWheel(e) {
    if (!(e.ctrlKey || e.metaKey || e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY))) return;
    e.preventDefault();
    const [t0, t1] = this.currentRange();
    const span = t1 - t0;
    if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      const d = (e.shiftKey ? e.deltaY : e.deltaX) / (this.plotX()[1] - this.plotX()[0]) * span;
      this.stopFollowing([t0 + d, t1 + d]);
      return;
    }
    const at = this.tAt(e.offsetX);
    const f = Math.exp(e.deltaY * 0.002);
    const ns = Math.min(Math.max(span * f, 0.005), 1e6);
    const a = (at - t0) / span;
    this.stopFollowing([at - a * ns, at - a * ns + ns]);
  }

  // Keys (the timeline is focusable): ←/→ pan, +/− zoom, f or End: follow live,
  // e: next error, Escape: close the pinned details.
  onKey(e) {
    if (e.target !== this.root || e.ctrlKey || e.metaKey || e.altKey) return;
    const [t0, t1] = this.currentRange();
    const span = t1 - t0;
    const pan = (f) => this.stopFollowing([t0 + f * span, t1 + f * span]);
    const zoom = (f) => {
      const mid = (t0 + t1) / 2;
      this.stopFollowing([mid - (span * f) / 2, mid + (span * f) / 2]);
    };
    const actions = {
      ArrowLeft: () => pan(e.shiftKey ? -0.5 : -0.1),
      ArrowRight: () => pan(e.shiftKey ? 0.5 : 0.1),
      "+": () => zoom(0.5),
      "=": () => zoom(0.5),
      "-": () => zoom(2),
      f: () => this.setFollow(true),
      End: () => this.setFollow(true),
      e: () => this.nextError(),
      Escape: () => this.pin(null),
    };
    const act = actions[e.key];
    if (act) {
      e.preventDefault();
      act();
    }
  }

  onDown(e) {
    if (e.button !== 0) return;
    const startX = e.clientX;
    const range = this.currentRange();
    const [x0, x1] = this.plotX();
    let moved = false;
    const move = (ev) => {
      const dx = ev.clientX - startX;
      if (Math.abs(dx) > 3) moved = true;
      if (!moved) return;
      const dt = (-dx / (x1 - x0)) * (range[1] - range[0]);
      this.stopFollowing([range[0] + dt, range[1] + dt]);
    };
    const up = (ev) => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      if (!moved) this.pin(this.hitAt(ev.offsetX ?? 0, ev.offsetY ?? 0, ev));
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  hitAt(x, y, ev) {
    if (ev && ev.target !== this.canvas) {
      const r = this.canvas.getBoundingClientRect();
      x = ev.clientX - r.left;
      y = ev.clientY - r.top;
    }
    let best = null;
    let bestD = 6;
    for (const h of this.hits) {
      if (y < h.y0 - 2 || y > h.y1 + 2) continue;
      const d = x < h.x0 ? h.x0 - x : x > h.x1 ? x - h.x1 : 0;
      if (d < bestD || (d === 0 && best && h.prio > best.prio && bestD === 0)) {
        best = h;
        bestD = d;
      }
    }
    return best;
  }

  onMove(e) {
    const h = this.hitAt(e.offsetX, e.offsetY);
    this.setHover(h, e.offsetX, e.offsetY);
  }

  setHover(h, x = 0, y = 0) {
    this.hover = h;
    const tip = this.tip;
    if (!h) {
      tip.style.display = "none";
      this.canvas.style.cursor = "";
      return;
    }
    this.canvas.style.cursor = "pointer";
    tip.replaceChildren(...describeHit(h, this.st.store, 28));
    tip.style.display = "";
    const w = this.wrap.clientWidth;
    tip.style.left = `${Math.min(Math.max(0, x + 12), Math.max(0, w - 380))}px`;
    tip.style.top = `${y + 14}px`;
  }

  pin(h) {
    this.pinned = h;
    if (!h) {
      this.detail.style.display = "none";
      return;
    }
    const close = el("button", "rtnb-tl-btn rtnb-tl-close", "×");
    close.type = "button";
    close.title = "Close";
    close.addEventListener("click", () => this.pin(null));
    this.detail.replaceChildren(close, ...describeHit(h, this.st.store, Infinity));
    this.detail.style.display = "";
  }

  nextError() {
    const errs = this.st.store.errors;
    if (!errs.length) return;
    this.errIndex = (this.errIndex + 1) % errs.length;
    const e = errs[this.errIndex];
    const [t0, t1] = this.currentRange();
    const span = Math.min(t1 - t0, 10);
    this.stopFollowing([e.t - span / 2, e.t + span / 2]);
    this.pin({ kind: "mark", m: { d: e.d, y: e.y, k: e.k, t0: e.t, t1: e.t, count: 1,
      seq0: e.s, seq1: e.s, i: lowerBound(this.st.store.events, e.s, byS), x: e.x } });
  }

  // -------------------------------------------------------------- drawing
  // One frame: lay the lanes out and size the canvas (beginPaint), then the painters in
  // drawing order (later ones paint over earlier ones); they collect the hover targets and the
  // label strip's entries.
  draw() {
    const P = this.beginPaint();
    paintLaneFrames(P);
    paintTimeGrid(P);
    let errMarks = [];
    let scale = null;
    clipToPlot(P, () => {
      paintLocalMarkers(P);
      errMarks = paintEventMarks(P);
      paintSpeech(P);
      scale = paintInputBuffer(P);
    });
    paintBufferScale(P, scale);
    clipToPlot(P, () => {
      paintResponses(P);
      paintErrors(P, errMarks);
    });
    paintLabelStrip(P);
    this.hits = P.hits;
    this.updateToolbar();
  }

  // The frame's layout and the paint context P every painter reads (and adds hits/labels to).
  beginPaint() {
    const st = this.st;
    const store = st.store;
    const rules = st.rules;
    const cs = getComputedStyle(this.root);
    const fg = cs.color || "#222";
    const width = Math.max(200, Math.floor(this.wrap.clientWidth || 600));
    this.width = width;
    const lanes = laneLayout(rules.laneRows);
    const top = {};
    let y = 22;
    for (const [key, , h] of lanes) {
      top[key] = [y, y + h];
      y += h + 6;
    }
    const height = y + 14;
    const dpr = window.devicePixelRatio || 1;
    const c = this.canvas;
    if (c.width !== Math.round(width * dpr) || c.height !== Math.round(height * dpr)) {
      c.width = Math.round(width * dpr);
      c.height = Math.round(height * dpr);
      c.style.width = `${width}px`;
      c.style.height = `${height}px`;
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = FONT;
    g.textBaseline = "middle";

    const [t0, t1] = this.currentRange();
    this.drawnRange = [t0, t1];
    const [x0, x1] = this.plotX();
    const pxs = (x1 - x0) / (t1 - t0);
    const now = st.now();
    return {
      g, store, rules, cats: rules.cats, fg, width, height, lanes, top, t0, t1, x0, x1, pxs,
      X: (t) => x0 + (t - t0) * pxs,
      openEnd: Math.max(store.tLast, now ?? -Infinity), // where open segments and spans end
      hits: [], // hover targets: {kind, prio, x0, x1, y0, y1, ...}
      labels: [], // [x, text, color, bold]: the strip above the lanes, errors first
    };
  }

  updateToolbar() {
    const st = this.st;
    const store = st.store;
    for (const b of this.windowButtons) {
      b.classList.toggle("rtnb-active", Number(b.dataset.span) === this.span && !this.range);
    }
    this.followButton.classList.toggle("rtnb-active", this.follow);
    this.followButton.setAttribute("aria-pressed", String(this.follow));
    const nErr = store.errors.length;
    this.errButton.textContent = `⚠ ${nErr} error${nErr === 1 ? "" : "s"}`;
    this.errButton.style.display = nErr ? "" : "none";
    this.info.textContent = `${store.events.length} events${st.live ? " · live" : ""}` +
      (st.syncPending ? " · loading history…" : "");
  }
}

// ------------------------------------------------------------------------------ details
// Lines describing a hit (the tooltip, and the pinned details with maxLines = Infinity):
// summary, error message and hint, and the payload as JSON.
function describeHit(h, store, maxLines) {
  const out = [];
  const head = (text, cls = "rtnb-tl-tip-head") => out.push(el("div", cls, text));
  const json = (obj) => {
    let text = JSON.stringify(obj, null, 2) ?? "";
    if (Number.isFinite(maxLines)) {
      const lines = text.split("\n");
      if (lines.length > maxLines) {
        text = lines.slice(0, maxLines).join("\n") + `\n… ${lines.length - maxLines} more lines (click to pin)`;
      }
    }
    out.push(el("pre", "rtnb-tl-json", text));
  };
  if (h.kind === "mark") {
    const m = h.m;
    const lane = { c: "client", s: "server", l: "local" }[m.d];
    const ev = store.events[m.i];
    if (m.count > 1) {
      let ms = 0;
      for (let i = m.i, n = 0; i < store.events.length && n < m.count; i++) {
        const e = store.events[i];
        if (e.d === m.d && e.y === m.y) { ms += e.ms || 0; n++; }
      }
      head(`${lane} · ${m.y} ×${m.count} · seq ${m.seq0}–${m.seq1} · ${fmtT(m.t0)} – ${fmtT(m.t1)}` +
        (ms ? ` · ${(ms / 1000).toFixed(2)} s of audio` : ""));
      head("first of them:", "rtnb-tl-tip-sub");
    } else {
      head(`${lane} · ${m.y} · seq ${m.seq0} · ${fmtT(m.t0)}` + (ev && ev.ms ? ` · ${ev.ms} ms of audio` : ""));
    }
    if (m.x) {
      const x = m.x;
      const what = x.refused ? "Refused before sending (never reached the server)" : "Error";
      head(`${what}: [${x.code}] ${x.message}`, "rtnb-tl-tip-err");
      if (x.hint) head(`Hint: ${x.hint}`, "rtnb-tl-tip-hint");
    }
    if (ev && ev.b) head(`input buffer after it: ${ev.b[0]} ms buffered, ${ev.b[1]} ms appended since commit/clear`, "rtnb-tl-tip-sub");
    if (ev && ev.note) head(`note: ${ev.note}`, "rtnb-tl-tip-sub");
    if (ev) json(ev.p);
  } else if (h.kind === "speech") {
    const s = h.s;
    head(`VAD speech · ${fmtT(s.t0)} → ${s.t1 === null ? "still speaking" : fmtT(s.t1)}`);
    head(`audio_start_ms=${s.a0 ?? "?"} · audio_end_ms=${s.a1 ?? "…"}` +
      (s.a0 !== null && s.a1 !== null ? ` (${s.a1 - s.a0} ms of input audio)` : ""), "rtnb-tl-tip-sub");
    if (s.item) head(`item ${s.item}`, "rtnb-tl-tip-sub");
  } else if (h.kind === "response") {
    const r = h.r;
    head(`response ${r.id} · ${r.status ?? "in progress"}`);
    const parts = [];
    if (r.tCreated !== null) parts.push(`created ${fmtT(r.tCreated)}`);
    if (r.tAudio !== null) {
      parts.push(`first audio ${fmtT(r.tAudio)}` +
        (r.tCreated !== null ? ` (+${((r.tAudio - r.tCreated) * 1000).toFixed(0)} ms)` : ""));
    }
    if (r.tDone !== null) parts.push(`done ${fmtT(r.tDone)}`);
    head(parts.join(" · "), "rtnb-tl-tip-sub");
    head(`${r.deltas} audio deltas · ${(r.audioMs / 1000).toFixed(2)} s of audio`, "rtnb-tl-tip-sub");
  } else if (h.kind === "buffer") {
    head(`input buffer at ${fmtT(h.p[0])}`);
    head(`${h.p[1]} ms buffered (what a commit now would find) · ${h.p[2]} ms appended since the last commit/clear`, "rtnb-tl-tip-sub");
  }
  return out;
}

// ------------------------------------------------------------------------------ painters
// Each painter draws one lane (or layer) of a frame from the paint context P of
// View.beginPaint: g (the 2D context), store, rules (laneRules), cats (_categories), fg, width,
// height, lanes (laneLayout), top (lane key → [y0, y1]), the time window t0..t1 drawn in x0..x1 at pxs pixels a second, X
// (time → x), openEnd, and the hits and labels it adds to.

// The lanes top to bottom: [key, label, height in px].
function laneLayout(laneRows) {
  return [
    ["c", "client", laneRows.c * ROW_H + 4],
    ["s", "server", laneRows.s * ROW_H + 4],
    ["speech", "speech (VAD)", 18],
    ["buffer", "input buffer", 46],
    ["resp", "response audio", 22],
  ];
}

// Run paint with drawing clipped to the plot area (x0..x1).
function clipToPlot({ g, x0, x1, height }, paint) {
  g.save();
  g.beginPath();
  g.rect(x0, 0, x1 - x0, height);
  g.clip();
  paint();
  g.restore();
}

// Lane backgrounds and their names at the left.
function paintLaneFrames({ g, fg, lanes, top, x0, x1 }) {
  g.fillStyle = fg;
  g.globalAlpha = 0.045;
  for (const [key] of lanes) g.fillRect(x0, top[key][0], x1 - x0, top[key][1] - top[key][0]);
  g.globalAlpha = 0.8;
  g.textAlign = "right";
  for (const [key, label] of lanes) g.fillText(label, x0 - 6, (top[key][0] + top[key][1]) / 2);
  g.globalAlpha = 1;
}

// The time grid and the axis labels under the lanes.
function paintTimeGrid({ g, fg, top, t0, t1, x0, x1, X }) {
  const step = niceStep(t1 - t0, x1 - x0);
  g.textAlign = "center";
  g.strokeStyle = fg;
  g.lineWidth = 1;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const x = Math.round(X(t)) + 0.5;
    g.globalAlpha = 0.1;
    g.beginPath();
    g.moveTo(x, top.c[0]);
    g.lineTo(x, top.resp[1]);
    g.stroke();
    g.globalAlpha = 0.75;
    g.fillText(fmtTick(Math.abs(t) < step / 1e6 ? 0 : t, step), x, top.resp[1] + 10);
  }
  g.globalAlpha = 1;
}

// Local markers: dotted lines through all lanes; a renewal seam is a solid boundary labelled
// with both session ids.
function paintLocalMarkers({ g, store, rules, cats, top, t0, t1, X, hits, labels }) {
  const locals = store.locals;
  g.setLineDash([2, 3]);
  g.strokeStyle = cats.local.color;
  g.fillStyle = g.strokeStyle;
  g.textAlign = "left";
  const localColor = g.strokeStyle;
  for (let i = lowerBound(locals, t0, byT); i < locals.length && locals[i].t <= t1; i++) {
    const x = Math.round(X(locals[i].t)) + 0.5;
    const seam = locals[i].y === rules.seam;
    if (seam) {
      g.setLineDash([]);
      g.lineWidth = 2;
      g.strokeStyle = rules.seamColor;
    }
    g.beginPath();
    g.moveTo(x, 12);
    g.lineTo(x, top.resp[1]);
    g.stroke();
    labels.push([x + 3, locals[i].lb, g.strokeStyle, false]); // _lanes.marker_label
    if (seam) {
      g.lineWidth = 1;
      g.strokeStyle = localColor;
      g.setLineDash([2, 3]);
    }
    hits.push({ kind: "mark", prio: 1, x0: x - 2, x1: x + 2, y0: 0, y1: top.resp[1],
      m: { d: "l", y: locals[i].y, k: "local", t0: locals[i].t, t1: locals[i].t, count: 1,
        seq0: locals[i].s, seq1: locals[i].s, i: lowerBound(store.events, locals[i].s, byS),
        x: null } });
  }
  g.setLineDash([]);
}

// The client and server lanes: collapsed marks of the visible events. Returns the error marks,
// which paintErrors draws on top of everything.
function paintEventMarks({ g, store, rules, cats, top, t0, t1, x0, x1, pxs, X, hits }) {
  const events = store.events;
  const binS = rules.binPx / pxs;
  const first = Math.floor(t0 / binS) * binS;
  const i0 = lowerBound(events, first, byT);
  const i1 = lowerBound(events, t1 + 1e-9, byT, i0);
  const errMarks = [];
  const marks = [];
  collapse(events, i0, i1, binS, rules.rows, (m) => { if (m.d !== "l") marks.push(m); });
  // Adjacent marks of one type (a flood spread over several bins) are drawn as one bar
  // labelled with its total count when it fits; each mark's own count is in its tooltip.
  const runs = new Map();
  const flush = (run) => {
    g.fillStyle = run.color;
    g.fillRect(run.x0, run.y, run.x1 - run.x0, ROW_H - 3);
    const label = `×${run.count}`;
    if (run.count > 1 && run.x1 - run.x0 >= label.length * CHAR_W + 4) {
      g.fillStyle = "#fff";
      g.textAlign = "center";
      g.fillText(label, (Math.max(run.x0, x0) + Math.min(run.x1, x1)) / 2, run.y + (ROW_H - 3) / 2 + 0.5);
    }
  };
  for (const m of marks) {
    const [ly0] = top[m.d];
    const mx0 = X(m.t0);
    const mx1 = Math.max(X(m.t1), mx0 + 2);
    if (m.x) {
      errMarks.push(m);
      continue;
    }
    const ry = ly0 + 2 + m.row * ROW_H;
    const key = m.d + m.y;
    const run = runs.get(key);
    if (run && mx0 - run.x1 <= rules.binPx) {
      run.x1 = Math.max(run.x1, mx1);
      run.count += m.count;
    } else {
      if (run) flush(run);
      runs.set(key, { x0: mx0, x1: mx1, count: m.count, y: ry,
        color: (cats[m.k] || cats.other).color });
    }
    hits.push({ kind: "mark", prio: 2, x0: mx0, x1: mx1, y0: ry, y1: ry + ROW_H - 3, m });
  }
  for (const run of runs.values()) flush(run);
  return errMarks;
}

// VAD speech segments (speech_started → speech_stopped; an open one runs to openEnd, paler).
function paintSpeech({ g, store, cats, top, t0, t1, x0, x1, X, openEnd, hits }) {
  const [sy0, sy1] = top.speech;
  const vadColor = cats.vad.color;
  g.textAlign = "center";
  for (const s of store.speech) {
    const e1 = s.t1 ?? openEnd;
    if (e1 < t0 || s.t0 > t1) continue;
    const a = X(s.t0);
    const b = Math.max(X(e1), a + 2);
    g.fillStyle = vadColor;
    g.globalAlpha = s.t1 === null ? 0.45 : 0.85;
    g.fillRect(a, sy0 + 2, b - a, sy1 - sy0 - 4);
    g.globalAlpha = 1;
    const label = s.t1 === null ? `speaking… from ${s.a0 ?? "?"} ms`
      : `audio ${s.a0 ?? "?"}–${s.a1 ?? "?"} ms`;
    if (b - a > label.length * CHAR_W + 6) {
      g.fillStyle = "#fff";
      g.fillText(label, (Math.max(a, x0) + Math.min(b, x1)) / 2, (sy0 + sy1) / 2 + 0.5);
    }
    hits.push({ kind: "speech", prio: 1, x0: a, x1: b, y0: sy0, y1: sy1, s });
  }
}

// The input buffer: buffered (filled steps) and appended since commit/clear (dashed), and the
// commit minimum (100 ms). Returns the scale ({peak, yMin}) paintBufferScale labels.
function paintInputBuffer({ g, store, rules, cats, fg, top, t0, t1, x0, x1, X, openEnd, hits }) {
  const buf = store.buffer;
  const [by0, by1] = top.buffer;
  let j0 = lowerBound(buf, t0, byT0);
  if (j0 > 0) j0 -= 1;
  const j1 = Math.min(buf.length, lowerBound(buf, t1, byT0, j0) + 1);
  let peak = 150;
  for (let j = j0; j < j1; j++) peak = Math.max(peak, buf[j][1], buf[j][2]);
  peak *= 1.1;
  const Y = (v) => by1 - 1 - (v / peak) * (by1 - by0 - 3);
  if (j1 > j0) {
    const bufColor = cats.buffer.color;
    const end = Math.min(x1, X(openEnd));
    for (const [col, alpha, dashed, fill] of [[bufColor, 0.35, false, true], [bufColor, 1, false, false], [fg, 0.55, true, false]]) {
      const idx = dashed ? 2 : 1;
      g.beginPath();
      let px = Math.max(x0, X(buf[j0][0]));
      let lastY = Y(buf[j0][idx]);
      g.moveTo(px, fill ? Y(0) : lastY);
      if (fill) g.lineTo(px, lastY);
      for (let j = j0 + 1; j < j1; j++) {
        const x = Math.max(x0, X(buf[j][0]));
        const yv = Y(buf[j][idx]);
        if (x - px < 0.25 && j < j1 - 1) {
          // Same pixel column: keep the step's shape without thousands of segments.
          g.lineTo(x, yv);
        } else {
          g.lineTo(x, lastY);
          g.lineTo(x, yv);
        }
        px = x;
        lastY = yv;
      }
      g.lineTo(Math.max(px, end), lastY);
      if (fill) {
        g.lineTo(Math.max(px, end), Y(0));
        g.closePath();
        g.fillStyle = col;
        g.globalAlpha = alpha;
        g.fill();
      } else {
        g.strokeStyle = col;
        g.globalAlpha = alpha;
        g.lineWidth = 1.2;
        g.setLineDash(dashed ? [4, 3] : []);
        g.stroke();
      }
    }
    g.setLineDash([]);
    g.globalAlpha = 1;
    // hover targets: one per step in view, at most one per pixel column
    let lastX = -1;
    for (let j = j0; j < j1; j++) {
      const x = X(buf[j][0]);
      const nx = j + 1 < buf.length ? X(buf[j + 1][0]) : X(openEnd);
      if (nx - lastX < 1 && j < j1 - 1) continue;
      hits.push({ kind: "buffer", prio: 0, x0: Math.max(x, lastX), x1: Math.max(x + 1, nx), y0: by0, y1: by1, p: buf[j] });
      lastX = nx;
    }
  }
  // the commit minimum (100 ms)
  const yMin = Math.round(Y(rules.commitMinMs)) + 0.5;
  g.strokeStyle = rules.err;
  g.globalAlpha = 0.6;
  g.setLineDash([2, 3]);
  g.beginPath();
  g.moveTo(x0, yMin);
  g.lineTo(x1, yMin);
  g.stroke();
  g.setLineDash([]);
  g.globalAlpha = 1;
  return { peak, yMin };
}

// The input buffer's scale, left of the plot: its top value and the commit minimum.
function paintBufferScale({ g, rules, fg, top, x0 }, { peak, yMin }) {
  g.fillStyle = fg;
  g.globalAlpha = 0.6;
  g.textAlign = "right";
  g.fillText(`${Math.round(peak)} ms`, x0 - 6, top.buffer[0] + 5);
  g.fillStyle = rules.err;
  g.fillText(`${rules.commitMinMs} ms`, x0 - 6, yMin);
  g.globalAlpha = 1;
}

// Responses: pale lead-in from response.created, solid from first audio to done, labelled
// inside their bar when they fit, else to its right up to the next response.
function paintResponses({ g, store, rules, cats, fg, top, t0, t1, x0, x1, X, openEnd, hits }) {
  const [ry0, ry1] = top.resp;
  const rc = cats.audio_out.color;
  const respLabels = []; // [bar start, bar end, text]: placed once all bars are drawn
  for (const r of store.responses) {
    const end = r.tDone ?? openEnd;
    const start = r.tCreated ?? r.tAudio ?? end;
    if (end < t0 || start > t1) continue;
    if (r.tCreated !== null) {
      const a = X(r.tCreated);
      const b = Math.max(X(r.tAudio ?? end), a + 1.5);
      g.fillStyle = rc;
      g.globalAlpha = 0.2;
      g.fillRect(a, ry0 + 6, b - a, ry1 - ry0 - 12);
      g.globalAlpha = 1;
    }
    let a = X(start);
    let b = Math.max(X(end), a + 2);
    if (r.tAudio !== null) {
      a = X(r.tAudio);
      b = Math.max(X(end), a + 2);
      g.fillStyle = r.status === "failed" ? rules.err : rc;
      g.globalAlpha = r.tDone === null ? 0.55 : 0.95;
      g.fillRect(a, ry0 + 2, b - a, ry1 - ry0 - 4);
      g.globalAlpha = 1;
      let label = `×${r.deltas} Δ · ${(r.audioMs / 1000).toFixed(1)} s`;
      if (r.status && r.status !== "completed") label += ` · ${r.status}`;
      respLabels.push([a, b, label]);
    } else if (r.tDone !== null && r.status && r.status !== "completed") {
      g.fillStyle = r.status === "failed" ? rules.err : fg;
      g.textAlign = "left";
      g.fillText(r.status, X(r.tDone) + 3, (ry0 + ry1) / 2 + 0.5);
    }
    hits.push({ kind: "response", prio: 1, x0: Math.min(a, r.tCreated !== null ? X(r.tCreated) : a), x1: b, y0: ry0, y1: ry1, r });
  }
  let labelEnd = -Infinity;
  const starts = store.responses.map((r) => X(r.tCreated ?? r.tAudio ?? r.tDone ?? openEnd));
  for (const [a, b, label] of respLabels) {
    const w = label.length * CHAR_W;
    const ym = (ry0 + ry1) / 2 + 0.5;
    if (b - a > w + 6) {
      g.fillStyle = "#fff";
      g.textAlign = "center";
      g.fillText(label, (Math.max(a, x0) + Math.min(b, x1)) / 2, ym);
      continue;
    }
    const next = starts.find((x) => x > b + 1) ?? Infinity;
    if (b + 3 >= labelEnd && b + 3 + w < Math.min(next, x1)) {
      g.fillStyle = fg;
      g.globalAlpha = 0.8;
      g.textAlign = "left";
      g.fillText(label, b + 3, ym);
      g.globalAlpha = 1;
      labelEnd = b + 3 + w + 4;
    }
  }
}

// Errors on top: a red line through all lanes, a red block in its lane (dashed outline when
// refused before sending), a pointer above it and its code in the label strip.
function paintErrors({ g, rules, top, X, hits, labels }, errMarks) {
  const err = rules.err;
  for (const m of errMarks) {
    const x = Math.round(X(m.t0)) + 0.5;
    const [ly0, ly1] = top[m.d];
    g.strokeStyle = err;
    g.globalAlpha = 0.5;
    g.beginPath();
    g.moveTo(x, top.c[0] - 3);
    g.lineTo(x, top.resp[1]);
    g.stroke();
    g.globalAlpha = 1;
    if (m.x.refused) {
      g.setLineDash([3, 2]);
      g.lineWidth = 1.5;
      g.strokeRect(x - 3, ly0 + 1.5, 6, ly1 - ly0 - 3);
      g.setLineDash([]);
      g.lineWidth = 1;
    } else {
      g.fillStyle = err;
      g.fillRect(x - 3, ly0 + 1, 6, ly1 - ly0 - 2);
    }
    g.fillStyle = err;
    g.beginPath();
    g.moveTo(x - 5, ly0 - 7);
    g.lineTo(x + 5, ly0 - 7);
    g.lineTo(x, ly0 - 1);
    g.closePath();
    g.fill();
    labels.unshift([x - 3, `${m.x.refused ? "refused: " : ""}${m.x.code ?? m.y}`, err, true]);
    hits.push({ kind: "mark", prio: 5, x0: x - 5, x1: x + 5, y0: ly0 - 8, y1: ly1, m });
  }
}

// The label strip above the lanes: error codes first, then local markers, never overlapping.
function paintLabelStrip({ g, width, x0, labels }) {
  const taken = [];
  g.textAlign = "left";
  for (const [x, text, color, bold] of labels) {
    const a = Math.max(x, x0);
    const b = a + text.length * (bold ? CHAR_W * 1.08 : CHAR_W);
    if (b > width || taken.some(([p, q]) => a < q + 6 && b > p - 6)) continue;
    taken.push([a, b]);
    g.fillStyle = color;
    g.font = bold ? `bold ${FONT}` : FONT;
    g.fillText(text, a, 7);
  }
  g.font = FONT;
}

// ------------------------------------------------------------------------------ render
function render({ model, el: host }) {
  const st = STATES.get(model.get("_uid"));
  if (!st) {
    host.textContent = "realtime_nb Timeline: the widget's model did not initialize.";
    return () => {};
  }
  const view = new View(model, st, host);
  st.views.add(view);
  st.requestDraw();
  return () => {
    st.views.delete(view);
    view.destroy();
  };
}

export default { initialize, render };
