// realtime_nb MicWidget: browser microphone -> PCM16 LE mono 24 kHz chunks -> kernel.
//
// initialize({model}) owns the audio (stream, AudioContext, worklet) and starts/stops it when the
// `recording` trait changes; render({model, el}) only draws the UI and flips traits. Audio goes to
// the kernel as binary comm buffers: model.send({type: "audio", ...}, undefined, [arrayBuffer]).

const OUT_RATE = 24000;
const LEVEL_FLOOR_DB = -100;
const LEVEL_INTERVAL_MS = 100; // the `level` trait is updated at most 10 times a second

// The AudioWorklet processor, loaded from a Blob URL. It downmixes to mono, resamples to 24 kHz
// when the AudioContext runs at another rate (windowed-sinc, streamed), converts to PCM16 and
// posts one chunk of `chunkMs` at a time with its sequence number and RMS level.
const CAPTURE_WORKLET = String.raw`
const OUT_RATE = ${OUT_RATE};

class SincResampler {
  // Streamed band-limited resampler: each output sample is a Blackman-windowed sinc interpolation
  // of the input around its position; the cutoff sits below the lower of the two Nyquist rates.
  constructor(inRate, outRate) {
    this.step = inRate / outRate;
    const scale = Math.min(1, outRate / inRate);
    this.cutoff = 0.92 * scale;
    this.half = Math.ceil(12 / scale);
    this.ovs = 128;
    const n = this.half * this.ovs + 2;
    this.table = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const t = i / this.ovs;
      const x = Math.PI * this.cutoff * t;
      const sinc = t === 0 ? 1 : Math.sin(x) / x;
      const w = t >= this.half ? 0 : 0.42 + 0.5 * Math.cos(Math.PI * t / this.half)
        + 0.08 * Math.cos(2 * Math.PI * t / this.half);
      this.table[i] = this.cutoff * sinc * w;
    }
    this.hist = new Float32Array(0);
    this.pos = 0;
  }
  kernel(t) {
    const u = Math.abs(t) * this.ovs;
    const i = Math.floor(u);
    if (i + 1 >= this.table.length) return 0;
    const f = u - i;
    return this.table[i] + (this.table[i + 1] - this.table[i]) * f;
  }
  process(x) {
    const buf = new Float32Array(this.hist.length + x.length);
    buf.set(this.hist, 0);
    buf.set(x, this.hist.length);
    const out = new Float32Array(Math.ceil(buf.length / this.step) + 2);
    let n = 0;
    while (this.pos + this.half < buf.length) {
      const c = Math.floor(this.pos);
      const frac = this.pos - c;
      let acc = 0;
      for (let k = 1 - this.half; k <= this.half; k++) {
        const idx = c + k;
        if (idx >= 0) acc += buf[idx] * this.kernel(k - frac);
      }
      out[n++] = acc;
      this.pos += this.step;
    }
    const keep = Math.max(0, Math.floor(this.pos) - this.half);
    this.hist = buf.slice(keep);
    this.pos -= keep;
    return out.subarray(0, n);
  }
}

class RtnbCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.chunkSamples = Math.round(OUT_RATE * o.chunkMs / 1000);
    this.resampler = sampleRate === OUT_RATE ? null : new SincResampler(sampleRate, OUT_RATE);
    this.muted = !!o.muted;
    this.buf = new Int16Array(this.chunkSamples);
    this.fill = 0;
    this.sumSq = 0;
    this.seq = 0;
    this.frame = 0;
    this.running = true;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "muted") this.muted = !!m.muted;
      else if (m.type === "flush") {
        if (this.fill > 0) this.emit(true);
        this.port.postMessage({ type: "flushed", chunks: this.seq });
        this.running = false;
      }
    };
  }
  emit(final) {
    const n = this.fill;
    const pcm = final ? this.buf.slice(0, n) : this.buf;
    const rms = Math.sqrt(this.sumSq / Math.max(1, n));
    this.port.postMessage(
      { type: "chunk", seq: this.seq, frame: this.frame, samples: n, final, muted: this.muted,
        rms, pcm },
      [pcm.buffer],
    );
    this.seq += 1;
    this.frame += n;
    this.buf = new Int16Array(this.chunkSamples);
    this.fill = 0;
    this.sumSq = 0;
  }
  push(x) {
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      this.sumSq += v * v;
      const s = this.muted ? 0 : Math.max(-1, Math.min(1, v));
      this.buf[this.fill++] = Math.round(s < 0 ? s * 32768 : s * 32767);
      if (this.fill === this.chunkSamples) this.emit(false);
    }
  }
  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    let mono = input[0];
    if (input.length > 1) {
      mono = new Float32Array(input[0].length);
      for (const ch of input) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / input.length;
    }
    this.push(this.resampler ? this.resampler.process(mono) : mono);
    return true;
  }
}

registerProcessor("rtnb-capture", RtnbCapture);
`;

/** Why the microphone cannot work on this page at all, or "" if it may. */
function insecureReason() {
  if (!window.isSecureContext) {
    return (
      `The microphone needs a secure page, and ${location.origin} is not one. Open Jupyter over ` +
      "https, or on http://localhost / http://127.0.0.1 (e.g. through an SSH tunnel: " +
      "ssh -L 8888:localhost:8888 host)."
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "This browser has no microphone access (navigator.mediaDevices is missing); use a " +
      "current Chrome, Edge, Firefox or Safari.";
  }
  return "";
}

/** A message for the user that says what went wrong with getUserMedia and what to do. */
function explainMediaError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "The browser refused access to the microphone. Allow the microphone for this site " +
      "in the browser's site settings (the icon left of the address bar), then press Start again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found. Plug in a microphone (or enable it in the system's sound " +
      "settings), then press Start again.";
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return "The microphone could not be opened: another application may be using it, or the " +
      "system blocked it. Close the other application, then press Start again.";
  }
  return `The microphone could not be started (${name || "Error"}: ${err && err.message}).`;
}

function dbfs(rms) {
  return rms > 0 ? Math.max(LEVEL_FLOOR_DB, 20 * Math.log10(rms)) : LEVEL_FLOOR_DB;
}

function initialize({ model }) {
  let gen = 0; // bumped by every start/stop so a slow start can tell it was overtaken
  let take = 0;
  let session = null; // {ctx, stream, source, node, url, take, chunks, onFlushed}
  let lastLevelAt = 0;

  const setState = (attrs) => {
    for (const [k, v] of Object.entries(attrs)) model.set(k, v);
    model.save_changes();
  };

  const fail = (message) => {
    console.warn("[realtime_nb mic]", message);
    setState({ status: "error", error: message, recording: false, level: LEVEL_FLOOR_DB });
  };

  const teardown = (s) => {
    try { s.source && s.source.disconnect(); } catch (_e) { /* already disconnected */ }
    try { s.node && s.node.disconnect(); } catch (_e) { /* already disconnected */ }
    if (s.node) s.node.port.onmessage = null;
    for (const track of s.stream ? s.stream.getTracks() : []) track.stop();
    if (s.ctx && s.ctx.state !== "closed") s.ctx.close().catch(() => {});
    if (s.url) URL.revokeObjectURL(s.url);
    if (s.resumeOnClick) document.removeEventListener("pointerdown", s.resumeOnClick, true);
  };

  const onWorkletMessage = (s, m) => {
    if (m.type === "chunk") {
      s.chunks += 1;
      model.send(
        {
          type: "audio", take: s.take, seq: m.seq, sample_rate: OUT_RATE, samples: m.samples,
          t_ms: (m.frame * 1000) / OUT_RATE, final: m.final, muted: m.muted,
          level: dbfs(m.rms),
        },
        undefined,
        [m.pcm.buffer],
      );
      const now = performance.now();
      if (now - lastLevelAt >= LEVEL_INTERVAL_MS) {
        lastLevelAt = now;
        setState({ level: Math.round(dbfs(m.rms) * 10) / 10 });
      }
    } else if (m.type === "flushed" && s.onFlushed) {
      s.onFlushed();
    }
  };

  const openContext = async (stream, s) => {
    // Chromium honours AudioContext({sampleRate: 24000}) and resamples the microphone itself;
    // Firefox refuses to connect a microphone to a context of another rate: then fall back to the
    // device rate and resample in the worklet.
    const forceWorklet = !!model.get("_worklet_resample");
    const candidates = forceWorklet ? [{}] : [{ sampleRate: OUT_RATE }, {}];
    let lastErr = null;
    for (const opts of candidates) {
      const ctx = new AudioContext({ ...opts, latencyHint: "interactive" });
      try {
        const source = ctx.createMediaStreamSource(stream);
        s.ctx = ctx;
        s.source = source;
        return;
      } catch (err) {
        lastErr = err;
        ctx.close().catch(() => {});
      }
    }
    throw lastErr;
  };

  const start = async () => {
    if (session) return;
    const myGen = ++gen;
    const t0 = performance.now();
    const problem = insecureReason();
    if (problem) return fail(problem);
    setState({ status: "starting", error: "" });
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          echoCancellation: !!model.get("echo_cancellation"),
          noiseSuppression: !!model.get("noise_suppression"),
          autoGainControl: !!model.get("auto_gain_control"),
          channelCount: 1,
        },
        video: false,
      });
    } catch (err) {
      if (myGen === gen) fail(explainMediaError(err));
      return;
    }
    if (myGen !== gen || !model.get("recording")) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    take += 1;
    const s = { stream, take, chunks: 0, ctx: null, source: null, node: null, url: null };
    try {
      await openContext(stream, s);
      s.url = URL.createObjectURL(new Blob([CAPTURE_WORKLET], { type: "text/javascript" }));
      await s.ctx.audioWorklet.addModule(s.url);
      if (myGen !== gen) return teardown(s);
      s.node = new AudioWorkletNode(s.ctx, "rtnb-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { chunkMs: model.get("chunk_ms"), muted: !!model.get("muted") },
      });
      s.node.port.onmessage = (e) => onWorkletMessage(s, e.data);
      // The node outputs silence; connecting it to the destination keeps it pulled every quantum.
      s.source.connect(s.node).connect(s.ctx.destination);
      if (s.ctx.state !== "running") {
        // Autoplay rules may hold the context until the next click on the page.
        s.resumeOnClick = () => s.ctx.resume();
        document.addEventListener("pointerdown", s.resumeOnClick, true);
        s.ctx.resume().catch(() => {});
      }
    } catch (err) {
      teardown(s);
      if (myGen === gen) fail(`The audio pipeline could not be built (${err.name}: ${err.message}).`);
      return;
    }
    if (myGen !== gen) return teardown(s);
    session = s;
    const track = stream.getAudioTracks()[0];
    track.addEventListener("ended", () => {
      if (session === s) {
        fail("The microphone was disconnected. Plug it in again, then press Start again.");
      }
    });
    const settings = track.getSettings ? track.getSettings() : {};
    model.send({
      type: "started", take: s.take, context_rate: s.ctx.sampleRate, sample_rate: OUT_RATE,
      resampler: s.ctx.sampleRate === OUT_RATE ? "browser" : "worklet",
      chunk_ms: model.get("chunk_ms"), startup_ms: performance.now() - t0,
      device_rate: settings.sampleRate || null, label: track.label || "",
      settings: {
        echo_cancellation: settings.echoCancellation ?? null,
        noise_suppression: settings.noiseSuppression ?? null,
        auto_gain_control: settings.autoGainControl ?? null,
      },
    });
    setState({ status: "recording", error: "" });
  };

  const stop = async () => {
    gen += 1;
    const s = session;
    session = null;
    if (!s) {
      if (model.get("status") !== "error") setState({ status: "idle", level: LEVEL_FLOOR_DB });
      return;
    }
    // Ask the worklet for the partial last chunk, so the end of an utterance is not lost.
    await new Promise((resolve) => {
      s.onFlushed = resolve;
      s.node.port.postMessage({ type: "flush" });
      setTimeout(resolve, 500);
    });
    teardown(s);
    model.send({ type: "stopped", take: s.take, chunks: s.chunks });
    // A new start may have begun while the last chunk was flushed: leave its status alone.
    if (model.get("status") !== "error" && !model.get("recording")) {
      setState({ status: "idle", level: LEVEL_FLOOR_DB });
    }
  };

  const onRecording = () => (model.get("recording") ? start() : stop());
  const onMuted = () => {
    if (session && session.node) {
      session.node.port.postMessage({ type: "muted", muted: !!model.get("muted") });
    }
  };
  model.on("change:recording", onRecording);
  model.on("change:muted", onMuted);
  if (model.get("recording")) start();
  else if (model.get("status") !== "idle") setState({ status: "idle" });

  return () => {
    model.off("change:recording", onRecording);
    model.off("change:muted", onMuted);
    gen += 1;
    if (session) teardown(session);
    session = null;
  };
}

const LEVEL_MIN_DB = -60;

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "rtnb-mic";
  root.tabIndex = 0;
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", "Microphone");

  const button = document.createElement("button");
  button.className = "rtnb-mic-button";
  button.type = "button";

  const modeSelect = document.createElement("select");
  modeSelect.className = "rtnb-mic-mode";
  modeSelect.title = "Hands-free: press to start and stop. Push-to-talk: hold the button or the " +
    "space bar (while this widget has the focus).";
  for (const [value, label] of [["hands-free", "hands-free"], ["push-to-talk", "push-to-talk"]]) {
    const opt = document.createElement("option");
    opt.value = value;
    opt.textContent = label;
    modeSelect.append(opt);
  }

  const meter = document.createElement("div");
  meter.className = "rtnb-mic-meter";
  meter.title = "Input level (dBFS)";
  const bar = document.createElement("div");
  bar.className = "rtnb-mic-meter-bar";
  meter.append(bar);

  const status = document.createElement("span");
  status.className = "rtnb-mic-status";
  const error = document.createElement("div");
  error.className = "rtnb-mic-error";
  error.setAttribute("role", "alert");

  const row = document.createElement("div");
  row.className = "rtnb-row";
  row.append(button, modeSelect, meter, status);
  root.append(row, error);
  el.append(root);

  const pushToTalk = () => model.get("mode") === "push-to-talk";
  const setRecording = (on) => {
    if (!!model.get("recording") === on) return;
    model.set("recording", on);
    model.save_changes();
  };

  const draw = () => {
    const rec = !!model.get("recording");
    const st = model.get("status");
    if (pushToTalk()) button.textContent = rec ? "● Talking…" : "Hold to talk";
    else button.textContent = rec ? "■ Stop" : "● Start";
    button.classList.toggle("rtnb-active", rec);
    button.setAttribute("aria-pressed", String(rec));
    modeSelect.value = model.get("mode");
    const muted = !!model.get("muted");
    let text = st;
    if (st === "recording" && muted) text = "muted (assistant speaking)";
    status.textContent = text;
    root.classList.toggle("rtnb-muted", muted);
    const msg = model.get("error");
    error.textContent = msg;
    error.style.display = msg ? "" : "none";
  };
  const drawLevel = () => {
    const db = model.get("level");
    const frac = Math.max(0, Math.min(1, (db - LEVEL_MIN_DB) / -LEVEL_MIN_DB));
    bar.style.width = `${(frac * 100).toFixed(1)}%`;
    bar.classList.toggle("rtnb-clip", db > -1);
  };

  const onClick = () => {
    if (!pushToTalk()) setRecording(!model.get("recording"));
  };
  const onPointerDown = (e) => {
    if (!pushToTalk()) return;
    e.preventDefault();
    button.setPointerCapture?.(e.pointerId);
    setRecording(true);
  };
  const onPointerUp = () => {
    if (pushToTalk()) setRecording(false);
  };
  const onKeyDown = (e) => {
    if (e.code !== "Space" || !pushToTalk() || e.target === modeSelect) return;
    e.preventDefault();
    e.stopPropagation();
    if (!e.repeat) setRecording(true);
  };
  const onKeyUp = (e) => {
    if (e.code !== "Space" || !pushToTalk() || e.target === modeSelect) return;
    e.preventDefault();
    e.stopPropagation();
    setRecording(false);
  };
  const onFocusOut = (e) => {
    if (pushToTalk() && !root.contains(e.relatedTarget)) setRecording(false);
  };
  const onMode = () => {
    model.set("mode", modeSelect.value);
    if (model.get("recording")) model.set("recording", false);
    model.save_changes();
  };

  button.addEventListener("click", onClick);
  button.addEventListener("pointerdown", onPointerDown);
  button.addEventListener("pointerup", onPointerUp);
  button.addEventListener("pointercancel", onPointerUp);
  root.addEventListener("keydown", onKeyDown);
  root.addEventListener("keyup", onKeyUp);
  root.addEventListener("focusout", onFocusOut);
  modeSelect.addEventListener("change", onMode);

  // One name per on(): the anywidget model API (marimo's too) takes no space-separated lists.
  const events = ["change:recording", "change:status", "change:error", "change:mode",
    "change:muted"];
  for (const e of events) model.on(e, draw);
  model.on("change:level", drawLevel);
  draw();
  drawLevel();

  return () => {
    for (const e of events) model.off(e, draw);
    model.off("change:level", drawLevel);
    root.remove();
  };
}

export default { initialize, render };
