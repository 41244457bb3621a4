// realtime_nb CameraWidget: the browser camera -> one JPEG snapshot at a time -> kernel.
//
// initialize({model}) owns the camera (the MediaStream and a hidden <video> that decodes it) and
// takes snapshots: video frame -> canvas -> JPEG Blob -> model.send({type: "snapshot", ...},
// undefined, [arrayBuffer]). render({model, el}) draws the buttons and a live preview only.
// The kernel asks for a snapshot with a custom message {type: "snap"}; the button does the same.

// initialize and render get different proxies of one model: they meet through a key kept in
// the model's `_camera_key` trait (set in this page only) and this page-wide registry.
const REGISTRY = new Map(); // key -> {stream, video, snap, listeners: Set<fn>}
let counter = 0;
const shared = (model) => REGISTRY.get(model.get("_camera_key"));

/** Why the camera cannot work on this page at all, or "" if it may. */
function insecureReason() {
  if (!window.isSecureContext) {
    return (
      `The camera needs a secure page, and ${location.origin} is not one. Open Jupyter over ` +
      "https, or on http://localhost / http://127.0.0.1 (e.g. through an SSH tunnel: " +
      "ssh -L 8888:localhost:8888 host). Uploading a picture file works anywhere."
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "This browser has no camera access (navigator.mediaDevices is missing); use a " +
      "current Chrome, Edge, Firefox or Safari, or upload a picture file instead.";
  }
  return "";
}

/** A message for the user that says what went wrong with getUserMedia and what to do. */
function explainCameraError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "The browser refused access to the camera. Allow the camera for this site in the " +
      "browser's site settings (the icon left of the address bar), then try again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No camera was found. Connect or enable a camera, or upload a picture file instead.";
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return "The camera could not be opened: another application may be using it. Close it, " +
      "then try again.";
  }
  return `The camera could not be started (${name || "Error"}: ${err && err.message}).`;
}

function initialize({ model }) {
  const state = { stream: null, video: null, opening: null, snap: null, listeners: new Set() };
  const key = `rtnb-camera-${++counter}-${Math.random().toString(36).slice(2)}`;
  REGISTRY.set(key, state);
  model.set("_camera_key", key);

  const setState = (attrs) => {
    for (const [k, v] of Object.entries(attrs)) model.set(k, v);
    model.save_changes();
  };
  const changed = () => { for (const fn of state.listeners) fn(); };

  const fail = (message) => {
    console.warn("[realtime_nb camera]", message);
    setState({ status: "error", error: message, live: false });
  };

  const close = () => {
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    if (state.video) state.video.srcObject = null;
    state.stream = null;
    state.video = null;
    changed();
  };

  /** Open the camera (once); resolves with the <video> once it shows frames, or null. */
  const open = () => {
    if (state.video) return Promise.resolve(state.video);
    if (state.opening) return state.opening;
    const problem = insecureReason();
    if (problem) {
      fail(problem);
      return Promise.resolve(null);
    }
    setState({ status: "starting", error: "" });
    state.opening = (async () => {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({
          audio: false,
          video: { width: { ideal: model.get("ideal_width") },
            height: { ideal: model.get("ideal_height") } },
        });
        const video = document.createElement("video");
        video.muted = true;
        video.playsInline = true;
        video.srcObject = stream;
        await video.play();
        if (!video.videoWidth) {
          await new Promise((resolve) => video.addEventListener("loadeddata", resolve,
            { once: true }));
        }
        state.stream = stream;
        state.video = video;
        setState({ status: "live", error: "" });
        changed();
        return video;
      } catch (err) {
        fail(explainCameraError(err));
        return null;
      } finally {
        state.opening = null;
      }
    })();
    return state.opening;
  };

  const snap = async (reason) => {
    const wasLive = !!state.video;
    const video = await open();
    if (!video) return;
    // a frame that is really from the camera (the first decoded frame may still be black)
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    const width = video.videoWidth;
    const height = video.videoHeight;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").drawImage(video, 0, 0, width, height);
    const blob = await new Promise((resolve) =>
      canvas.toBlob(resolve, "image/jpeg", model.get("quality")));
    if (!blob) return fail("The browser could not encode the snapshot as JPEG.");
    const buffer = await blob.arrayBuffer();
    model.send({ type: "snapshot", mime_type: "image/jpeg", width, height, reason },
      undefined, [buffer]);
    if (!wasLive && !model.get("live")) {
      close();
      setState({ status: "idle" });
    }
  };

  const onLive = () => {
    if (model.get("live")) open();
    else if (state.video) {
      close();
      if (model.get("status") !== "error") setState({ status: "idle" });
    }
  };
  const onMsg = (msg) => {
    if (msg && msg.type === "snap") snap("kernel");
  };
  state.snap = snap;
  model.on("change:live", onLive);
  model.on("msg:custom", onMsg);
  if (model.get("live")) open();
  else if (model.get("status") !== "idle") setState({ status: "idle" });

  return () => {
    model.off("change:live", onLive);
    model.off("msg:custom", onMsg);
    close();
    REGISTRY.delete(key);
  };
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "rtnb-camera";

  const snapButton = document.createElement("button");
  snapButton.type = "button";
  snapButton.className = "rtnb-camera-snap";
  snapButton.textContent = "Snapshot";
  snapButton.title = "Take a picture with the camera and send it into the conversation";

  const liveButton = document.createElement("button");
  liveButton.type = "button";
  liveButton.className = "rtnb-camera-live";
  liveButton.title = "Show the camera's picture here (the preview) until pressed again";

  const preview = document.createElement("video");
  preview.className = "rtnb-camera-preview";
  preview.muted = true;
  preview.playsInline = true;
  preview.autoplay = true;

  const status = document.createElement("span");
  status.className = "rtnb-camera-status";
  const error = document.createElement("div");
  error.className = "rtnb-camera-error";
  error.setAttribute("role", "alert");

  const row = document.createElement("div");
  row.className = "rtnb-row";
  row.append(snapButton, liveButton, status);
  root.append(row, preview, error);
  el.append(root);

  const draw = () => {
    const live = !!model.get("live");
    const st = model.get("status");
    liveButton.textContent = live ? "Hide preview" : "Preview";
    liveButton.classList.toggle("rtnb-active", live);
    status.textContent = st === "idle" ? "" : st;
    const msg = model.get("error");
    error.textContent = msg;
    error.style.display = msg ? "" : "none";
    const state = shared(model);
    const stream = live && state && state.stream ? state.stream : null;
    if (preview.srcObject !== stream) preview.srcObject = stream;
    preview.style.display = stream ? "" : "none";
  };

  const onSnap = () => {
    const state = shared(model);
    if (state && state.snap) state.snap("button");
  };
  const onLive = () => {
    model.set("live", !model.get("live"));
    model.save_changes();
  };
  snapButton.addEventListener("click", onSnap);
  liveButton.addEventListener("click", onLive);

  const events = ["change:live", "change:status", "change:error"];
  for (const e of events) model.on(e, draw);
  const state = shared(model);
  if (state) state.listeners.add(draw);
  draw();

  return () => {
    for (const e of events) model.off(e, draw);
    if (state) state.listeners.delete(draw);
    root.remove();
  };
}

export default { initialize, render };
