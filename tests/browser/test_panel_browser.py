"""The session panel end to end: JupyterLab 4 and Notebook 7, headless Chromium, a fake microphone.

Chromium's fake microphone plays an espeak-ng question followed by a few seconds of silence, in
a loop. The notebook runs ``%load_ext realtime_nb`` and ``%realtime --backend local`` (the offline
server inside the kernel). Two turns, one per capture path:

1. streaming mic, hands-free with the server's VAD: a click on Start, the question, the VAD ends
   the turn, the local server transcribes and answers;
2. record-and-send with ipywebrtc in manual mode: turn detection is switched off in the panel's
   own settings (the server's echo is awaited), one take is recorded with the panel's Record
   button, sent when it stops, committed and answered.

For each: the user's transcript and the assistant's reply appear in the page, and the assistant's
audio plays (the PlayerWidget reports ``played_ms > 0``). No console errors from our widgets;
screenshots of the final pages go to ``test-artifacts/panel-{lab,notebook}.png``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    ARTIFACTS,
    JupyterPage,
    notebook_in_chromium,
    notebook_root,
)

pytestmark = pytest.mark.browser

NOTEBOOK = "panel.ipynb"


def _cells(out: Path) -> list[str]:
    return [
        f"""import logging
logging.basicConfig(filename={str(out / "kernel.log")!r}, level=logging.WARNING,
                    format="%(asctime)s %(name)s %(message)s")
%load_ext realtime_nb""",
        "%realtime --backend local --name s",
        f"""import json, pathlib
from realtime_nb.widgets.panel import panel_for
OUT = pathlib.Path({str(out)!r})
panel = panel_for(s)
for name in ("echo_cancellation", "noise_suppression", "auto_gain_control"):
    panel.options[name].value = False   # the fake microphone's level, unprocessed
def _played(p):
    with open(OUT / "played.jsonl", "a") as f:
        f.write(json.dumps({{"item": p.item_id, "ms": p.played_ms, "event": p.event}}) + "\\n")
panel.player.on_played(_played)
def turns():
    return [{{"id": it.id, "role": it.role, "text": it.content_text,
             "done": (s.responses[it.response_id].status if it.response_id in s.responses
                      else None)}} for it in s.items.list()]
def _diag():  # what the kernel knows, for the failure message when a turn does not come
    print("errors", panel.errors, "last_error", s.last_error, "state", s.state)
    print("responses", [(r.id, r.status, r.status_details) for r in s.responses.values()])
    print("outbox", [label for label, _fn in panel._outbox._queue])
    print("mic", panel.mic.recording, panel.mic.status, repr(panel.mic.error))
    print("events", [(e.direction, e.type) for e in s.events if e.type not in (
        "input_audio_buffer.append", "response.output_audio.delta")][-25:])
(OUT / "ready").write_text("1")""",
    ]


@pytest.fixture(scope="module", params=["lab", "notebook"])
def jp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
       question_wav: Path, jupyter_env: dict[str, str]) -> Iterator[JupyterPage]:
    """A Jupyter server of ``app`` and Chromium on the panel notebook, all cells run."""
    app = request.param
    root = notebook_root(tmp_path_factory.mktemp(f"panel-{app}"), NOTEBOOK, _cells)
    with notebook_in_chromium(
        app, root, NOTEBOOK, jupyter_env, tmp_path_factory.mktemp(f"chromium-panel-{app}"),
        question_wav, viewport={"width": 1400, "height": 1600}, screenshot_as=f"panel-{app}.png",
    ) as page_:
        page_.wait_for_file("ready", timeout_s=90)
        page_.page.wait_for_selector(".rtnb-panel .rtnb-mic-button", timeout=30_000)
        page_.wait_for_kernel("print(s.state)", "connected", timeout_s=60)
        yield page_


def turns(jp: JupyterPage) -> list[dict[str, Any]]:
    return json.loads(jp.execute("print(json.dumps(turns()))"))  # type: ignore[no-any-return]


def wait_turn(jp: JupyterPage, after: int = 0, user_id: str | None = None,
              timeout_s: float = 45) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait for a transcribed user turn and the finished answer that follows it.

    The turn is the first one beyond the first ``after`` items, or the user item ``user_id``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        items = turns(jp)
        start = next((n for n, i in enumerate(items) if i["id"] == user_id), len(items)) \
            if user_id else after
        user = next((i for i in items[start:] if i["role"] == "user"), None)
        later = items[items.index(user) + 1:] if user is not None else []
        answer = next((i for i in later if i["role"] == "assistant"), None)
        if (user is not None and user["text"].strip() and answer is not None
                and answer["done"] not in (None, "in_progress") and answer["text"].strip()):
            return user, answer
        if time.monotonic() > deadline:
            state = jp.execute("_diag()")
            log = jp.out / "kernel.log"
            raise AssertionError(f"no answered turn in {timeout_s} s: {items}\n{state}\n"
                                 f"{log.read_text()[-3000:] if log.exists() else ''}")
        jp.page.wait_for_timeout(300)


def played_ms(jp: JupyterPage, item: str, timeout_s: float = 20) -> tuple[int, str]:
    """Wait until the browser reports ``item`` played to its end, or cut; return (ms, how)."""
    deadline = time.monotonic() + timeout_s
    while True:
        path = jp.out / "played.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        final = [r for r in rows if r["item"] == item
                 and r["event"] in ("ended", "drained", "stopped")]
        if final:
            return int(final[-1]["ms"]), str(final[-1]["event"])
        assert time.monotonic() < deadline, f"the player did not finish {item}: {rows[-5:]}"
        jp.page.wait_for_timeout(200)


def page_shows(jp: JupyterPage, *texts: str, timeout_s: float = 10) -> None:
    """Wait until the panel's transcript in the page contains every one of ``texts``."""
    jp.page.wait_for_function(
        """(texts) => {
            const el = document.querySelector('.rtnb-panel .rtnb-transcript');
            return !!el && texts.every((t) => el.innerText.includes(t));
        }""", arg=list(texts), timeout=timeout_s * 1000)


def wait_truncation(jp: JupyterPage, timeout_s: float = 30) -> dict[str, Any]:
    """Wait until the panel has truncated an answer on a barge-in; return its record."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = [t for t in json.loads(jp.execute("print(json.dumps(panel.truncations))"))
                if t["result"] != "pending"]
        if done:
            return done[0]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"no barge-in in {timeout_s} s"
        jp.page.wait_for_timeout(300)


def start_streaming(jp: JupyterPage) -> None:
    """Click the mic's Start and wait until the kernel sees it streaming.

    Once, in a clean-clone run, the first click after the notebook ran produced no audio at all
    for 45 s (the mic never left idle, no error). If the kernel does not see the mic start within
    10 s the click is repeated once, and said so; a mic that reports an error fails at once.
    """
    for attempt in (1, 2):
        jp.page.click(".rtnb-panel .rtnb-mic-button")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = jp.execute(
                "print(panel.mic.recording, panel.mic.status, repr(panel.mic.error))")
            recording, status, error = state.strip().split(" ", 2)
            assert status != "error", f"the mic failed to start: {error}"
            if recording == "True" and status == "recording":
                return
            jp.page.wait_for_timeout(200)
        print(f"the mic did not start within 10 s of click {attempt}: {state.strip()}")
        if recording == "True":  # started but not streaming: a second click would stop it
            break
    raise AssertionError(f"the mic did not start streaming: {jp.execute('_diag()')}")


def test_streaming_mic_turn_is_answered_played_and_barged_in(jp: JupyterPage) -> None:
    """Hands-free: the question is answered aloud; the microphone asks again (the fake one
    loops) while the answer plays, so the server's VAD hears speech and the panel cuts the
    answer where the browser says it was, and truncates it there."""
    before = len(turns(jp))
    start_streaming(jp)  # Start (hands-free, server VAD)
    user, answer = wait_turn(jp, before)
    cut = wait_truncation(jp)
    jp.page.click(".rtnb-panel .rtnb-mic-button")  # Stop
    jp.wait_for_kernel("print(panel.mic.recording)", "False")
    assert "capital" in user["text"].lower() or "france" in user["text"].lower(), user
    assert user["text"].strip() in answer["text"], "the local responder echoes what it heard"
    ms, how = played_ms(jp, answer["id"])
    assert ms > 0
    rows = [json.loads(x) for x in (jp.out / "played.jsonl").read_text().splitlines()]
    stopped = [r for r in rows if r["event"] == "stopped" and r["item"] == cut["item_id"]]
    assert cut["reason"] == "speech" and cut["result"] == "conversation.item.truncated", cut
    assert stopped and stopped[0]["ms"] == cut["audio_end_ms"] > 0, (stopped, cut)
    jp.wait_for_kernel(f"print(s.items[{cut['item_id']!r}].truncated_ms)",
                       str(cut["audio_end_ms"]))
    page_shows(jp, user["text"].strip(), answer["text"].strip()[:30], "cut at")
    ARTIFACTS.mkdir(exist_ok=True)
    jp.page.locator(".rtnb-panel").screenshot(path=str(ARTIFACTS / f"panel-{jp.app}-mic.png"))
    print(f"\n{jp.app} streaming: user {user['text']!r} → {answer['text']!r}, played {ms} ms "
          f"({how}); barge-in cut {cut['item_id']} at {cut['audio_end_ms']} ms")


def test_record_and_send_turn_in_manual_mode(jp: JupyterPage) -> None:
    page = jp.page
    page.click(".rtnb-panel .rtnb-capture-choice button:has-text('Record & send')")
    page.wait_for_selector(".rtnb-panel .rtnb-record-button", timeout=10_000)
    jp.wait_for_kernel("print(panel.capture)", "recorder")
    page.select_option(".rtnb-panel .rtnb-ctl-audio-input-turn-detection select", label="off")
    jp.wait_for_kernel("print(s.config['audio']['input']['turn_detection'])", "None")
    page.wait_for_selector(".rtnb-panel .rtnb-ctl-note:has-text('✓ server: null')",
                           timeout=10_000)
    jp.wait_for_kernel("print(panel.player.playing)", "False", timeout_s=30)
    before = len(turns(jp))
    page.click(".rtnb-panel .rtnb-record-button")
    jp.wait_for_kernel("print(panel.recorder.recording)", "True")
    page.wait_for_timeout(3800)  # the question (~2.3 s) and some silence
    page.click(".rtnb-panel .rtnb-record-button")
    jp.wait_for_kernel("print(bool(s.mirror.last_commit) and s.mirror.last_commit['by'])",
                       "client", timeout_s=20)
    committed = jp.execute("print(s.mirror.last_commit['item_id'])").strip()
    user, answer = wait_turn(jp, user_id=committed)
    assert len(turns(jp)) > before
    assert "capital" in user["text"].lower() or "france" in user["text"].lower(), user
    took = json.loads(jp.execute(
        "print(json.dumps([panel.recorder.takes, panel.recorder.last.duration_ms,"
        " sum(e.direction == 'client' and e.type == 'input_audio_buffer.commit'"
        " for e in s.events)]))"))
    assert took[0] == 1 and took[1] > 2500 and took[2] == 1, took
    ms, how = played_ms(jp, answer["id"])
    assert ms > 0
    page_shows(jp, user["text"].strip(), answer["text"].strip()[:30])
    page.wait_for_selector(".rtnb-panel .rtnb-recorder-status:has-text('take 1')")
    print(f"\n{jp.app} record & send: user {user['text']!r} → {answer['text']!r}, "
          f"played {ms} ms ({how}), take {took[1]:.0f} ms")


def test_no_console_errors_from_our_widgets(jp: JupyterPage) -> None:
    jp.page.wait_for_timeout(200)
    assert jp.our_console_errors() == []
