"""The panel over WebRTC end to end: JupyterLab 4 and Notebook 7, headless Chromium, a fake mic.

The notebook opens ``Session(backend="local", transport="webrtc")`` and shows its panel. The
kernel mints a client secret on the local server; the page's ``WebRTCCall`` opens the fake
microphone (echo cancellation on), posts its SDP offer to ``/v1/realtime/calls`` with that
secret, plays the answer's audio track, and sends the call id back; the kernel attaches the
Session as the call's sideband. The fake microphone asks a question (espeak-ng) and loops:

* the server's VAD ends the turn, the transcript of both sides appears in the page, the
  sideband's events (``session.created``, ``input_audio_buffer.speech_started``,
  ``output_audio_buffer.started`` …) are in ``session.events`` and no audio delta is;
* the assistant's voice reaches the page: the call's inbound audio track carries energy and
  its ``<audio>`` element plays;
* the API key is nowhere in the page (a key-protected local server).

The fallbacks (refused microphone, blocked UDP, insecure page) are in
``test_webrtc_fallback_browser.py``. Screenshots: ``test-artifacts/webrtc-{lab,notebook}.png``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    JupyterPage,
    notebook_in_chromium,
    notebook_root,
    spoken_question_wav,
)

pytestmark = pytest.mark.browser

NOTEBOOK = "webrtc.ipynb"
KEY = "sk-browser-" + secrets.token_urlsafe(24)
#: Keeps every RTCPeerConnection of the page in window.__rtnbPcs (to read their stats).
PC_SPY = """(() => {
  const Orig = window.RTCPeerConnection;
  if (!Orig) return;
  window.__rtnbPcs = [];
  const Spy = function (...args) { const pc = new Orig(...args); window.__rtnbPcs.push(pc);
    return pc; };
  Spy.prototype = Orig.prototype;
  window.RTCPeerConnection = Spy;
})();"""
SETTINGS = ('{"audio": {"input": {"transcription": {"model": "whisper-1"}, '
            '"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}}')


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``QUESTION`` with 3 s of silence after it (longer than the shared fixture's 2.5 s)."""
    return spoken_question_wav(tmp_path_factory.mktemp("rtc-question"), silence_ms=3000)


def _setup(out: Path) -> str:
    return f"""import json, logging, os, pathlib
logging.basicConfig(filename={str(out / "kernel.log")!r}, level=logging.WARNING,
                    format="%(asctime)s %(name)s %(message)s")
import ipywidgets as widgets
import realtime_nb.client.backend as _backend
from realtime_nb import Session
from realtime_nb.server import LocalServer, ensure_local_server
from realtime_nb.widgets.panel import panel_for
OUT = pathlib.Path({str(out)!r})
server = ensure_local_server(api_key=os.environ["RTNB_TEST_KEY"])
def webrtc_session():
    return Session(url=server.url, api_key=os.environ["RTNB_TEST_KEY"], transport="webrtc")
def turns(s):
    return [{{"id": it.id, "role": it.role, "text": it.content_text,
             "done": (s.responses[it.response_id].status if it.response_id in s.responses
                      else None)}} for it in s.items.list()]"""


def _cells(out: Path) -> list[str]:
    return [
        _setup(out),
        f"""s = webrtc_session()
panel = panel_for(s, noise_suppression=False, auto_gain_control=False)  # echo cancellation on
panel.connect({SETTINGS})
panel""",
        """(OUT / "ready").write_text("1")""",
    ]


@pytest.fixture(scope="module", params=["lab", "notebook"])
def jp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
       question_wav: Path, jupyter_env: dict[str, str]) -> Iterator[JupyterPage]:
    app = request.param
    root = notebook_root(tmp_path_factory.mktemp(f"webrtc-{app}"), NOTEBOOK, _cells)
    with notebook_in_chromium(
        app, root, NOTEBOOK, {**jupyter_env, "RTNB_TEST_KEY": KEY},
        tmp_path_factory.mktemp(f"chromium-webrtc-{app}"), question_wav,
        viewport={"width": 1400, "height": 1500},
        chromium_args=["--disable-features=WebRtcHideLocalIpsWithMdns"], init_script=PC_SPY,
        screenshot_as=f"webrtc-{app}.png",
    ) as page_:
        page_.wait_for_file("ready", timeout_s=90)
        yield page_


def wait_turn(jp: JupyterPage, session: str = "s", timeout_s: float = 60
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait for the user turn that holds the question, and its finished answer.

    The microphone opens before the media path is up, so the first turn may be the tail of
    the looping question: the first whole one is looked for."""
    deadline = time.monotonic() + timeout_s
    while True:
        items = json.loads(jp.execute(f"print(json.dumps(turns({session})))"))
        user = next((i for i in items if i["role"] == "user" and (
            "capital" in i["text"].lower() or "france" in i["text"].lower())), None)
        later = items[items.index(user) + 1:] if user is not None else []
        answer = next((i for i in later if i["role"] == "assistant"), None)
        if (user is not None and answer is not None and answer["text"].strip()
                and answer["done"] not in (None, "in_progress")):
            return user, answer
        if time.monotonic() > deadline:
            diag = jp.execute(f"print({session}.state, {session}.last_error, panel.errors, "
                              f"[e.type for e in {session}.events][-30:])")
            log = jp.out / "kernel.log"
            raise AssertionError(f"no answered turn in {timeout_s} s: {items}\n{diag}\n"
                                 f"{log.read_text()[-3000:] if log.exists() else ''}")
        jp.page.wait_for_timeout(300)


def inbound_audio(jp: JupyterPage) -> dict[str, Any]:
    """The page's call: inbound audio stats of its peer connection, and its <audio> element."""
    return jp.page.evaluate("""async () => {
        const pcs = (window.__rtnbPcs || []).filter((pc) => pc.connectionState === "connected");
        let energy = 0, packets = 0;
        for (const pc of pcs) {
            for (const r of (await pc.getStats()).values()) {
                if (r.type === "inbound-rtp" && r.kind === "audio") {
                    energy += r.totalAudioEnergy || 0; packets += r.packetsReceived || 0;
                }
            }
        }
        const a = document.querySelector("audio.rtnb-call-audio");
        return { pcs: pcs.length, energy, packets,
                 playing: !!a && !a.paused && a.currentTime > 0,
                 live: !!a && !!a.srcObject && a.srcObject.getAudioTracks().some(
                     (t) => t.readyState === "live") };
    }""")


def test_webrtc_call_is_answered_heard_and_mirrored_by_the_sideband(jp: JupyterPage) -> None:
    jp.wait_for_kernel("print(s.state)", "connected", timeout_s=60)
    call_id = jp.execute("print(s.call_id)").strip()
    assert call_id.startswith("rtc_")
    jp.page.wait_for_selector(".rtnb-call[data-status='connected']", timeout=20_000)
    user, answer = wait_turn(jp)
    assert "capital" in user["text"].lower() or "france" in user["text"].lower(), user
    assert user["text"].strip() in answer["text"], "the local responder echoes what it heard"
    jp.page.wait_for_function(
        """(texts) => {
            const el = document.querySelector('.rtnb-panel .rtnb-transcript');
            return !!el && texts.every((t) => el.innerText.includes(t));
        }""", arg=[user["text"].strip(), answer["text"].strip()[:30]], timeout=15_000)
    types = json.loads(jp.execute(
        "print(json.dumps([e.type for e in s.events if e.direction == 'server']))"))
    assert types[0] == "session.created"
    for expected in ("input_audio_buffer.speech_started", "input_audio_buffer.committed",
                     "conversation.item.input_audio_transcription.completed",
                     "output_audio_buffer.started", "response.done"):
        assert expected in types, expected
    assert "response.output_audio.delta" not in types
    marker = json.loads(jp.execute(
        "print(json.dumps([e.event for e in s.events if e.type == 'realtime_nb.connected']))"))
    assert marker[-1]["transport"] == "webrtc" and marker[-1]["call_id"] == call_id
    deadline = time.monotonic() + 15
    while not ((heard := inbound_audio(jp))["energy"] > 0 and heard["playing"]):
        assert time.monotonic() < deadline, f"the assistant was not heard: {heard}"
        jp.page.wait_for_timeout(300)
    assert heard["pcs"] == 1 and heard["live"] and heard["packets"] > 50, heard
    status = jp.page.inner_text(".rtnb-panel .rtnb-status-line")
    assert "WebRTC" in status and call_id in status, status
    html = jp.page.content()
    assert KEY not in html and KEY[11:23] not in html
    errors = [m for m in jp.our_console_errors() if "rtnb" in m or "realtime_nb" in m]
    assert errors == []
