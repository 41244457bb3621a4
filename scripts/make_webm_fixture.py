"""Record tests/data/chromium_mediarecorder.webm with real Chromium's MediaRecorder.

What it does: speaks a sentence with Debian's ``espeak-ng -w``, turns it into a 48 kHz mono 16-bit
WAV, starts headless ``/usr/bin/chromium`` (through Playwright for Python) with that WAV as the
fake microphone, opens a page served from ``http://127.0.0.1:<port>/`` (a secure context, so
``getUserMedia`` works), and records about 3 s with
``new MediaRecorder(stream, {mimeType: "audio/webm;codecs=opus", audioBitsPerSecond: 128000})``
— the options ipywebrtc's ``AudioRecorder`` uses — started with a 500 ms timeslice so the
recording arrives as several ``dataavailable`` chunks, like a streaming recorder's.

Outputs (both committed, small):
  tests/data/chromium_mediarecorder.webm        the chunks concatenated: WebM/Opus, 48 kHz, mono,
                                                no duration in the header
  tests/data/chromium_mediarecorder.chunks.json the byte size of each chunk, in order, plus what
                                                was recorded (so tests can cut the real chunks)

Microphone constraints: echo cancellation on, noise suppression and automatic gain control off.
With echo cancellation on, Chromium delivers a mono track, as with ipywebrtc's default
``{audio: true}`` (with all processing off it records 2 channels); with automatic gain control
off the fake input is not clipped, so the recording keeps the source's level.
Run from the repository root:

    .venv/bin/python scripts/make_webm_fixture.py [--seconds 3] [--out tests/data/...webm]
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime_nb.audio import Audio  # noqa: E402  (after the path set-up above)

SENTENCE = "Hello from Chromium. This is a media recorder test, one two three."

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>MediaRecorder fixture</title></head>
<body><p id="state">idle</p>
<script>
async function record(seconds, timesliceMs) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: {echoCancellation: true, noiseSuppression: false, autoGainControl: false},
    video: false,
  });
  const mimeType = "audio/webm;codecs=opus";
  if (!MediaRecorder.isTypeSupported(mimeType)) throw new Error("unsupported " + mimeType);
  const rec = new MediaRecorder(stream, {mimeType, audioBitsPerSecond: 128000});
  const chunks = [];
  rec.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
  const stopped = new Promise((resolve) => { rec.onstop = resolve; });
  rec.start(timesliceMs);
  document.getElementById("state").textContent = "recording";
  await new Promise((r) => setTimeout(r, seconds * 1000));
  rec.stop();
  await stopped;
  stream.getTracks().forEach((t) => t.stop());
  const out = [];
  for (const blob of chunks) {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    out.push(btoa(s));
  }
  document.getElementById("state").textContent = "done";
  return {mimeType: rec.mimeType, chunks: out};
}
</script></body></html>
"""


def make_fake_mic(path: Path) -> None:
    """Write the espeak-ng sentence as a 48 kHz mono 16-bit WAV (the fake microphone)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), SENTENCE], check=True)
        speech = Audio.decode(raw.read_bytes()).resample(48_000)
    # Half a second of silence before and after, so the loop has audible gaps.
    pad = Audio.silence(500, 48_000)
    path.write_bytes(Audio.concat([pad, speech, pad]).to_wav())


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) in a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def record(seconds: float, timeslice_ms: int) -> tuple[str, list[bytes]]:
    """Record with Chromium; return (mimeType reported by the recorder, chunks in order)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        mic = tmpdir / "mic.wav"
        make_fake_mic(mic)
        (tmpdir / "index.html").write_text(PAGE, encoding="utf-8")
        server, url = serve(tmpdir)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic}"],
                )
                try:
                    context = browser.new_context()
                    context.grant_permissions(["microphone"], origin=url.rstrip("/"))
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    page.goto(url + "index.html")
                    result = page.evaluate(
                        "([s, t]) => record(s, t)", [seconds, timeslice_ms]
                    )
                    if errors:
                        raise RuntimeError(f"page errors: {errors}")
                finally:
                    browser.close()
        finally:
            server.shutdown()
    return result["mimeType"], [base64.b64decode(c) for c in result["chunks"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--timeslice-ms", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "tests/data/chromium_mediarecorder.webm")
    args = parser.parse_args(argv)

    mime, chunks = record(args.seconds, args.timeslice_ms)
    data = b"".join(chunks)
    if len(chunks) < 2 or not data.startswith(b"\x1a\x45\xdf\xa3"):
        raise SystemExit(f"unexpected recording: {len(chunks)} chunks, {len(data)} bytes")
    audio = Audio.decode(data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    meta = {
        "recorder": "Chromium MediaRecorder via scripts/make_webm_fixture.py",
        "mimeType": mime,
        "audioBitsPerSecond": 128000,
        "timeslice_ms": args.timeslice_ms,
        "seconds_recorded": args.seconds,
        "sentence": SENTENCE,
        "chunk_sizes": [len(c) for c in chunks],
    }
    args.out.with_suffix(".chunks.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"wrote {args.out} ({len(data)} bytes, {len(chunks)} chunks, {mime}); "
        f"decodes to {audio.duration_ms:.0f} ms at {audio.sample_rate} Hz, "
        f"peak {audio.peak_dbfs:.1f} dBFS"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
