// realtime_nb PlayerWidget: low-latency playback of PCM16 24 kHz audio streamed from the kernel.
//
// The kernel sends {type: "audio", item_id, seq, sample_rate} with the PCM16 bytes as a binary
// buffer; initialize({model}) queues them in an AudioWorklet and reports back how much of each
// item was rendered ({type: "played", item_id, played_ms, event}, 10 times a second while
// playing, and when an item ends, drains or is stopped). {type: "stop", request_id} cuts at once,
// clears the queue and replies {type: "stopped", request_id, item_id, played_ms}: the exact
// number of milliseconds of the cut item that were played, for conversation.item.truncate.

const RATE = 24000;
const REPORT_MS = 100;

const PLAYER_WORKLET = String.raw`
class RtnbPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.prebuffer = Math.round(sampleRate * o.prebufferMs / 1000);
    this.reportEvery = Math.round(sampleRate * o.reportMs / 1000);
    this.queue = [];        // [{item, data: Float32Array, off}]
    this.buffered = 0;      // frames queued, not yet rendered
    this.item = null;       // item being (or last) rendered
    this.frames = new Map(); // item -> frames rendered
    this.started = false;   // false while (pre)buffering
    this.waited = 0;        // frames waited for the prebuffer to fill
    this.sinceReport = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }
  framesOf(item) { return this.frames.get(item) || 0; }
  report(event, item) {
    this.port.postMessage({ type: "played", item_id: item, played_frames: this.framesOf(item),
      event, buffered_frames: this.buffered });
  }
  onMessage(m) {
    if (m.type === "chunk") {
      this.queue.push({ item: m.item_id, data: m.samples, off: 0 });
      this.buffered += m.samples.length;
    } else if (m.type === "stop") {
      const cutting = this.started || this.queue.length > 0;
      const item = cutting ? (this.started ? this.item : this.queue[0].item) : null;
      const dropped = this.buffered;
      this.queue = [];
      this.buffered = 0;
      this.started = false;
      this.waited = 0;
      this.port.postMessage({ type: "stopped", request_id: m.request_id, item_id: item,
        played_frames: item === null ? 0 : this.framesOf(item), dropped_frames: dropped });
    } else if (m.type === "prebuffer") {
      this.prebuffer = Math.round(sampleRate * m.ms / 1000);
    }
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.started) {
      if (this.buffered === 0) return true;
      this.waited += out.length;
      if (this.buffered < this.prebuffer && this.waited < this.prebuffer) return true;
      this.started = true;
      this.port.postMessage({ type: "started", item_id: this.queue[0].item });
    }
    let i = 0;
    while (i < out.length && this.queue.length > 0) {
      const head = this.queue[0];
      if (head.item !== this.item) {
        if (this.item !== null && this.frames.has(this.item)) this.report("ended", this.item);
        this.item = head.item;
        if (this.frames.size > 256) this.frames.delete(this.frames.keys().next().value);
        this.frames.set(this.item, this.framesOf(this.item));
        this.sinceReport = 0;
      }
      const n = Math.min(out.length - i, head.data.length - head.off);
      out.set(head.data.subarray(head.off, head.off + n), i);
      head.off += n;
      i += n;
      this.buffered -= n;
      this.frames.set(this.item, this.framesOf(this.item) + n);
      this.sinceReport += n;
      if (head.off >= head.data.length) this.queue.shift();
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (this.queue.length === 0) {
      this.started = false;
      this.waited = 0;
      this.sinceReport = 0;
      this.report("drained", this.item);
    } else if (this.sinceReport >= this.reportEvery) {
      this.sinceReport = 0;
      this.report("progress", this.item);
    }
    return true;
  }
}
registerProcessor("rtnb-player", RtnbPlayer);
`;

// One state object per model, shared by initialize (which owns the audio) and render (which
// shows it). Keyed by the model's `_uid` trait.
const STATES = new Map();

function toFloat32(buffer) {
  const bytes = buffer instanceof ArrayBuffer
    ? new DataView(buffer)
    : new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const n = Math.floor(bytes.byteLength / 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = bytes.getInt16(2 * i, true) / 32768;
  return out;
}

function initialize({ model }) {
  const uid = model.get("_uid");
  const st = {
    events: new EventTarget(),
    ctx: null,
    node: null,
    gain: null,
    ready: null,
    playing: false,
    item: null,
    playedMs: 0,
    bufferedMs: 0,
    suspended: false,
    error: "",
    stop: () => stop(null),
    resume: () => st.ctx && st.ctx.resume(),
  };
  STATES.set(uid, st);
  const changed = () => st.events.dispatchEvent(new Event("change"));

  const setError = (message) => {
    st.error = message;
    console.warn("[realtime_nb player]", message);
    model.set("error", message);
    model.save_changes();
    changed();
  };

  const onWorklet = (m) => {
    if (m.type === "played") {
      st.item = m.item_id;
      st.playedMs = (m.played_frames * 1000) / RATE;
      st.bufferedMs = (m.buffered_frames * 1000) / RATE;
      st.playing = m.event === "progress" || (m.event === "ended" && m.buffered_frames > 0);
      model.send({ type: "played", item_id: m.item_id, played_ms: st.playedMs, event: m.event,
        buffered_ms: st.bufferedMs });
    } else if (m.type === "started") {
      st.playing = true;
      st.item = m.item_id;
      model.send({ type: "started", item_id: m.item_id, output_latency_ms: latencyMs() });
    } else if (m.type === "stopped") {
      st.playing = false;
      st.bufferedMs = 0;
      const playedMs = (m.played_frames * 1000) / RATE;
      if (m.item_id !== null) {
        st.item = m.item_id;
        st.playedMs = playedMs;
      }
      model.send({ type: "stopped", request_id: m.request_id, item_id: m.item_id,
        played_ms: playedMs, dropped_ms: (m.dropped_frames * 1000) / RATE });
    }
    changed();
  };

  const latencyMs = () => {
    if (!st.ctx) return null;
    return ((st.ctx.baseLatency || 0) + (st.ctx.outputLatency || 0)) * 1000;
  };

  const setup = async () => {
    const ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    if (ctx.sampleRate !== RATE) {
      ctx.close();
      throw new Error(`this browser ignored the requested ${RATE} Hz AudioContext rate ` +
        `(it runs at ${ctx.sampleRate} Hz)`);
    }
    const url = URL.createObjectURL(new Blob([PLAYER_WORKLET], { type: "text/javascript" }));
    try {
      await ctx.audioWorklet.addModule(url);
    } finally {
      URL.revokeObjectURL(url);
    }
    const node = new AudioWorkletNode(ctx, "rtnb-player", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { prebufferMs: model.get("prebuffer_ms"), reportMs: REPORT_MS },
    });
    const gain = ctx.createGain();
    gain.gain.value = model.get("volume");
    node.connect(gain).connect(ctx.destination);
    node.port.onmessage = (e) => onWorklet(e.data);
    st.ctx = ctx;
    st.node = node;
    st.gain = gain;
    const onState = () => {
      st.suspended = ctx.state === "suspended";
      changed();
    };
    ctx.addEventListener("statechange", onState);
    if (ctx.state !== "running") {
      // Autoplay rules: the context may wait for a click on the page.
      ctx.resume().catch(() => {});
      document.addEventListener("pointerdown", st.resume, true);
    }
    onState();
  };

  const ensure = () => {
    if (!st.ready) {
      st.ready = setup().catch((err) => {
        setError(`Audio playback could not start (${err.name}: ${err.message}).`);
        throw err;
      });
    }
    return st.ready;
  };

  const stop = (requestId) => {
    if (!st.ready) {
      model.send({ type: "stopped", request_id: requestId, item_id: null, played_ms: 0,
        dropped_ms: 0 });
      return;
    }
    st.ready.then(
      () => st.node.port.postMessage({ type: "stop", request_id: requestId }),
      () => model.send({ type: "stopped", request_id: requestId, item_id: null, played_ms: 0,
        dropped_ms: 0 }),
    );
  };

  const onCustom = (msg, buffers) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "audio") {
      if (msg.sample_rate !== RATE) {
        setError(`Audio at ${msg.sample_rate} Hz was sent; the player takes ${RATE} Hz only.`);
        return;
      }
      const samples = toFloat32(buffers[0]);
      ensure().then(
        () => st.node.port.postMessage({ type: "chunk", item_id: msg.item_id, samples },
          [samples.buffer]),
        () => {},
      );
    } else if (msg.type === "stop") {
      stop(msg.request_id ?? null);
    }
  };

  const onVolume = () => {
    if (st.gain) st.gain.gain.setTargetAtTime(model.get("volume"), st.ctx.currentTime, 0.01);
  };
  const onPrebuffer = () => {
    if (st.node) st.node.port.postMessage({ type: "prebuffer", ms: model.get("prebuffer_ms") });
  };
  model.on("msg:custom", onCustom);
  model.on("change:volume", onVolume);
  model.on("change:prebuffer_ms", onPrebuffer);

  return () => {
    model.off("msg:custom", onCustom);
    model.off("change:volume", onVolume);
    model.off("change:prebuffer_ms", onPrebuffer);
    document.removeEventListener("pointerdown", st.resume, true);
    if (st.node) {
      st.node.port.onmessage = null;
      st.node.disconnect();
    }
    if (st.ctx && st.ctx.state !== "closed") st.ctx.close().catch(() => {});
    STATES.delete(uid);
  };
}

function render({ model, el }) {
  const st = STATES.get(model.get("_uid"));
  const root = document.createElement("div");
  root.className = "rtnb-player";

  const stopButton = document.createElement("button");
  stopButton.className = "rtnb-player-stop";
  stopButton.type = "button";
  stopButton.textContent = "■ Stop audio";
  stopButton.title = "Stop the assistant's audio now (the kernel is told how much was heard).";

  const volume = document.createElement("input");
  volume.className = "rtnb-player-volume";
  volume.type = "range";
  volume.min = "0";
  volume.max = "1";
  volume.step = "0.01";
  volume.title = "Volume";

  const status = document.createElement("span");
  status.className = "rtnb-player-status";
  const error = document.createElement("div");
  error.className = "rtnb-player-error";
  error.setAttribute("role", "alert");

  const row = document.createElement("div");
  row.className = "rtnb-row";
  row.append(stopButton, volume, status);
  root.append(row, error);
  el.append(root);

  const draw = () => {
    let text = "idle";
    if (st && st.suspended) text = "click anywhere on the page to allow sound";
    else if (st && st.playing) {
      text = `playing ${st.item} ${(st.playedMs / 1000).toFixed(1)} s` +
        (st.bufferedMs > 0 ? ` (+${(st.bufferedMs / 1000).toFixed(1)} s queued)` : "");
    } else if (st && st.item !== null) text = `played ${st.item} ${(st.playedMs / 1000).toFixed(1)} s`;
    status.textContent = text;
    stopButton.disabled = !(st && st.playing);
    volume.value = String(model.get("volume"));
    const msg = model.get("error");
    error.textContent = msg;
    error.style.display = msg ? "" : "none";
  };
  const onStop = () => st && st.stop();
  const onVolumeInput = () => {
    model.set("volume", Number(volume.value));
    model.save_changes();
  };
  stopButton.addEventListener("click", onStop);
  volume.addEventListener("input", onVolumeInput);
  if (st) st.events.addEventListener("change", draw);
  model.on("change:volume", draw);  // one name per on(): the anywidget model API
  model.on("change:error", draw);
  draw();

  return () => {
    if (st) st.events.removeEventListener("change", draw);
    model.off("change:volume", draw);
    model.off("change:error", draw);
    root.remove();
  };
}

export default { initialize, render };
