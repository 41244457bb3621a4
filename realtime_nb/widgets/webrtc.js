// realtime_nb WebRTCCall: the browser's side of a Realtime WebRTC call.
//
// initialize({model}) owns the call (microphone stream, RTCPeerConnection, the `oai-events` data
// channel, the <audio> element that plays the assistant); render({model, el}) only draws it.
// The kernel starts a call with a one-shot custom message {type: "start", url, secret,
// ice_timeout_ms}: the secret is an ephemeral `ek_` client secret, used once as the bearer of
// the SDP offer and then forgotten (it is never stored in a trait). The call id from the answer's
// Location header goes back to the kernel as {type: "call", call_id}; failures as
// {type: "failed", reason, message}, with reason one of insecure_context, no_webrtc,
// mic_denied, no_mic, mic_busy, offer_refused, network, ice_failed, ice_timeout.

const GATHER_MAX_MS = 1000; // ICE candidates gathered before the offer is posted, at most

function insecureReason() {
  if (!window.isSecureContext) {
    return (
      `WebRTC calls need a secure page (for the microphone), and ${location.origin} is not ` +
      "one. Open Jupyter over https, or on http://localhost / http://127.0.0.1 (e.g. through " +
      "an SSH tunnel: ssh -L 8888:localhost:8888 host)."
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "This browser has no microphone access (navigator.mediaDevices is missing).";
  }
  return "";
}

function mediaFailure(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return ["mic_denied", "The browser refused access to the microphone. Allow the microphone " +
      "for this site (the icon left of the address bar), then connect again."];
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return ["no_mic", "No microphone was found. Plug one in, then connect again."];
  }
  return ["mic_busy", `The microphone could not be opened (${name || "Error"}: ` +
    `${err && err.message}). Another application may be using it.`];
}

function initialize({ model }) {
  let gen = 0; // bumped by every start/hangup so a slow start can tell it was overtaken
  let call = null; // {pc, stream, dc, audio, timer}

  const setState = (attrs) => {
    for (const [k, v] of Object.entries(attrs)) model.set(k, v);
    model.save_changes();
  };

  const teardown = () => {
    const c = call;
    call = null;
    if (!c) return;
    clearTimeout(c.timer);
    try { c.dc && c.dc.close(); } catch (_e) { /* closed already */ }
    try { c.pc && c.pc.close(); } catch (_e) { /* closed already */ }
    for (const track of c.stream ? c.stream.getTracks() : []) track.stop();
    if (c.audio) {
      c.audio.pause();
      c.audio.srcObject = null;
      c.audio.remove();
    }
  };

  const fail = (reason, message) => {
    console.warn("[realtime_nb webrtc]", reason, message);
    teardown();
    setState({ status: "failed", failure: reason, error: message, assistant_speaking: false });
    model.send({ type: "failed", reason, message });
  };

  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_MAX_MS);
  });

  const start = async (msg) => {
    teardown();
    const myGen = ++gen;
    let secret = msg.secret;
    msg.secret = null;
    setState({ status: "starting", error: "", failure: "", assistant_speaking: false });
    const problem = insecureReason();
    if (problem) return fail("insecure_context", problem);
    if (typeof RTCPeerConnection === "undefined") {
      return fail("no_webrtc", "This browser has no WebRTC (RTCPeerConnection is missing).");
    }
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
      secret = null;
      if (myGen === gen) fail(...mediaFailure(err));
      return;
    }
    if (myGen !== gen) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    const pc = new RTCPeerConnection({
      iceServers: model.get("ice_servers") || [],
      iceTransportPolicy: model.get("ice_transport_policy") || "all",
    });
    const audio = document.createElement("audio");
    audio.autoplay = true;
    audio.className = "rtnb-call-audio";
    audio.style.display = "none";
    document.body.append(audio);
    const c = { pc, stream, audio, dc: null, timer: 0 };
    call = c;
    for (const track of stream.getAudioTracks()) {
      track.enabled = !model.get("muted");
      pc.addTrack(track, stream); // a sendrecv audio transceiver
    }
    pc.addEventListener("track", (e) => {
      audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      audio.play().catch((err) => console.warn("[realtime_nb webrtc] playback", err));
    });
    const dc = pc.createDataChannel("oai-events");
    c.dc = dc;
    dc.addEventListener("message", (e) => {
      let ev = null;
      try { ev = JSON.parse(e.data); } catch (_e) { return; }
      const type = ev && ev.type;
      if (type === "output_audio_buffer.started") setState({ assistant_speaking: true });
      else if (type === "output_audio_buffer.stopped" || type === "output_audio_buffer.cleared") {
        setState({ assistant_speaking: false });
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (call !== c) return;
      const st = pc.connectionState;
      model.send({ type: "state", state: st });
      if (st === "connected") {
        clearTimeout(c.timer);
        setState({ status: "connected" });
      } else if (st === "failed") {
        fail("ice_failed", "The call's media connection failed (ICE). UDP between this " +
          "browser and the server is probably blocked (a firewall, a VPN, a proxy). The " +
          "WebSocket path needs only TCP.");
      } else if (st === "closed" || st === "disconnected") {
        if (model.get("status") === "connected") {
          setState({ status: "ended", error: st === "disconnected"
            ? "The call's media connection was lost." : "", assistant_speaking: false });
        }
      }
    });
    let answer;
    let location;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      if (myGen !== gen) return;
      let resp;
      try {
        resp = await fetch(msg.url, {
          method: "POST",
          body: pc.localDescription.sdp,
          headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/sdp" },
        });
      } catch (err) {
        return fail("network", `The SDP offer could not be posted to ${msg.url} ` +
          `(${err.name}: ${err.message}). Is the server up, and does it allow this page's ` +
          "origin (CORS)?");
      } finally {
        secret = null;
      }
      const body = await resp.text();
      if (resp.status !== 201) {
        let text = `HTTP ${resp.status}`;
        try {
          const e = JSON.parse(body).error;
          text = `${e.code || resp.status}: ${e.message}`;
        } catch (_e) { /* not JSON */ }
        return fail("offer_refused", `The server refused the call (${text}).`);
      }
      location = resp.headers.get("Location") || "";
      answer = body;
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
    } catch (err) {
      if (myGen === gen) fail("offer_refused", `The call could not be set up (${err.name}: ${err.message}).`);
      return;
    }
    if (myGen !== gen) return;
    const callId = location.replace(/\/+$/, "").split("/").pop();
    model.send({ type: "call", call_id: callId, location });
    if (pc.connectionState !== "connected") {
      setState({ status: "connecting" });
      const ms = msg.ice_timeout_ms || 10000;
      c.timer = setTimeout(() => {
        if (call === c && pc.connectionState !== "connected") {
          fail("ice_timeout", `No media connection within ${(ms / 1000).toFixed(0)} s ` +
            `(ICE state ${pc.iceConnectionState}). UDP between this browser and the server ` +
            "is probably blocked (a firewall, a VPN, a proxy). The WebSocket path needs only TCP.");
        }
      }, ms);
    }
  };

  const hangup = () => {
    gen += 1;
    const had = !!call;
    teardown();
    if (had || model.get("status") !== "failed") {
      setState({ status: "ended", assistant_speaking: false });
    }
  };

  const onMsg = (msg) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "start") start(msg);
    else if (msg.type === "hangup") hangup();
  };
  const onMuted = () => {
    const c = call;
    for (const track of c && c.stream ? c.stream.getAudioTracks() : []) {
      track.enabled = !model.get("muted");
    }
  };
  model.on("msg:custom", onMsg);
  model.on("change:muted", onMuted);
  if (model.get("status") !== "idle" && model.get("status") !== "failed") {
    setState({ status: "idle" }); // a page reload lost the call this model had
  }
  model.send({ type: "ready" });
  return () => {
    model.off("msg:custom", onMsg);
    model.off("change:muted", onMuted);
    gen += 1;
    teardown();
  };
}

const LABELS = {
  idle: "no call",
  starting: "opening the microphone…",
  connecting: "connecting the media…",
  connected: "in call",
  failed: "failed",
  ended: "call ended",
};

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "rtnb-call";
  const row = document.createElement("div");
  row.className = "rtnb-row";
  const dot = document.createElement("span");
  dot.className = "rtnb-call-dot";
  const label = document.createElement("span");
  label.className = "rtnb-call-status";
  const speaking = document.createElement("span");
  speaking.className = "rtnb-call-speaking";
  const mute = document.createElement("button");
  mute.type = "button";
  mute.className = "rtnb-call-mute";
  const hang = document.createElement("button");
  hang.type = "button";
  hang.className = "rtnb-call-hangup";
  hang.textContent = "Hang up";
  const error = document.createElement("div");
  error.className = "rtnb-call-error";
  error.setAttribute("role", "alert");
  row.append(dot, label, speaking, mute, hang);
  root.append(row, error);
  el.append(root);

  const draw = () => {
    const st = model.get("status");
    root.dataset.status = st;
    label.textContent = `WebRTC · ${LABELS[st] || st}`;
    const live = st === "connected" || st === "connecting" || st === "starting";
    mute.style.display = live ? "" : "none";
    hang.style.display = live ? "" : "none";
    mute.textContent = model.get("muted") ? "Unmute" : "Mute";
    mute.classList.toggle("rtnb-active", !!model.get("muted"));
    speaking.textContent = model.get("assistant_speaking") ? "assistant speaking" : "";
    const msg = model.get("error");
    error.textContent = msg;
    error.style.display = msg ? "" : "none";
  };
  const onMute = () => {
    model.set("muted", !model.get("muted"));
    model.save_changes();
  };
  const onHang = () => model.send({ type: "hangup_request" });
  mute.addEventListener("click", onMute);
  hang.addEventListener("click", onHang);
  // One name per on(): the anywidget model API (marimo's too) takes no space-separated lists.
  const events = ["change:status", "change:error", "change:muted", "change:assistant_speaking"];
  for (const e of events) model.on(e, draw);
  draw();
  return () => {
    for (const e of events) model.off(e, draw);
    root.remove();
  };
}

export default { initialize, render };
