"""The teaching app under Voila: a real ``voila`` server, headless Chromium, a fake microphone.

The notebook served is ``notebooks/08_teaching_app.ipynb`` as shipped, with one cell appended
for the test (it names the test kernelspec too): the cell turns the browser's microphone
processing off (the fake microphone's own level), records what the player reports, and has a
background task write a snapshot of the kernel's session to a file four times a second — Voila
gives the page no way to run code in the kernel, so that file is how the test sees the kernel.

The student's path: the page shows the panel without code; a VAD setting changed in the page
(the silence window's readout) becomes a ``session.update`` in the kernel and the server's echo
is shown beside the control; Start on the microphone, the spoken question is transcribed and
answered on screen, and the answer plays in the page. Screenshot:
``test-artifacts/voila-teaching-app.png``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .conftest import (
    KERNEL_NAME,
    KNOWN_UNRELATED,
    REPO,
    _free_port,
    page_in_chromium,
    server_process,
)

pytestmark = pytest.mark.browser

#: Console messages of Voila's own page (its JupyterLab packages, an external font), not ours.
VOILA_UNRELATED = (*KNOWN_UNRELATED, "ERR_NAME_NOT_RESOLVED", "shared module",
                   "Failed to create module")


def _hooks(out: Path) -> str:
    return f"""import asyncio, json, pathlib
from realtime_nb.widgets.panel import panel_for
_OUT = pathlib.Path({str(out)!r})
_panel = panel_for(session)
for _name in ("echo_cancellation", "noise_suppression", "auto_gain_control"):
    _panel.options[_name].value = False
def _played(p):
    with open(_OUT / "played.jsonl", "a") as f:
        f.write(json.dumps({{"item": p.item_id, "ms": p.played_ms, "event": p.event}}) + "\\n")
_panel.player.on_played(_played)
async def _snapshots():
    while True:
        snap = {{
            "state": session.state,
            "turn_detection": session.config["audio"]["input"]["turn_detection"],
            "updates": [e.event for e in session.events
                        if e.direction == "client" and e.type == "session.update"],
            "recording": _panel.mic.recording,
            "turns": [{{"id": it.id, "role": it.role, "text": it.content_text,
                        "done": (session.responses[it.response_id].status
                                 if it.response_id in session.responses else None)}}
                      for it in session.items.list()],
        }}
        (_OUT / "snap.tmp").write_text(json.dumps(snap, default=str))
        (_OUT / "snap.tmp").replace(_OUT / "snap.json")
        await asyncio.sleep(0.25)
_snapshot_task = asyncio.get_running_loop().create_task(_snapshots())"""


@contextlib.contextmanager
def running_voila(notebook: Path, env: dict[str, str]) -> Iterator[str]:
    """``voila notebook`` on 127.0.0.1 on a free port (as ``./dev voila`` runs it); yield its URL.

    Logs to ``server.log`` beside the notebook; terminated (killed after 15 s) on exit.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = [str(Path(sys.executable).with_name("voila")), str(notebook), "--no-browser",
            "--Voila.ip=127.0.0.1", f"--Voila.port={port}",
            "--VoilaConfiguration.show_tracebacks=True"]
    # any answer will do: GET / itself would start a kernel
    with server_process(argv, name="voila", log=notebook.parent / "server.log",
                        ready_url=f"{url}voila/static/", env=env, cwd=notebook.parent,
                        any_answer_is_ready=True):
        yield url


class VoilaPage:
    """The Voila page and the kernel snapshots its appended cell writes."""

    def __init__(self, page: Any, out: Path, console: list[str]) -> None:
        self.page = page
        self.out = out
        self.console = console

    def snap(self, timeout_s: float = 60) -> dict[str, Any]:
        path = self.out / "snap.json"
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            assert time.monotonic() < deadline, "the kernel wrote no snapshot"
            self.page.wait_for_timeout(100)
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    def wait_snap(self, pred: Any, what: str, timeout_s: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not pred(snap := self.snap()):
            assert time.monotonic() < deadline, f"the kernel never had {what}: {snap}"
            self.page.wait_for_timeout(150)
        return snap


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory, question_wav: Path,
          jupyter_env: dict[str, str]) -> Iterator[VoilaPage]:
    root = tmp_path_factory.mktemp("voila")
    out = root / "out"
    out.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "08_teaching_app.ipynb", as_version=4)
    nb.metadata["kernelspec"] = {"display_name": "realtime_nb test", "language": "python",
                                 "name": KERNEL_NAME}
    nb.cells.append(nbformat.v4.new_code_cell(_hooks(out), id="test-hooks"))
    path = root / "08_teaching_app.ipynb"
    nbformat.write(nb, path)
    with (
        running_voila(path, jupyter_env) as url,
        page_in_chromium(url, tmp_path_factory.mktemp("chromium-voila"), question_wav,
                         viewport={"width": 1400, "height": 1600},
                         screenshot_as="voila-teaching-app.png") as (page, console),
    ):
        vp = VoilaPage(page, out, console)
        vp.page.wait_for_selector(".rtnb-panel .rtnb-mic-button", timeout=120_000)
        vp.wait_snap(lambda s: s["state"] == "connected", "a connected session")
        yield vp


def test_page_shows_the_panel_and_no_code(voila: VoilaPage) -> None:
    page = voila.page
    assert "connected" in page.inner_text(".rtnb-panel .rtnb-status-line")
    for part in (".rtnb-mic-button", ".rtnb-player-stop", ".rtnb-transcript", ".rtnb-controls",
                 ".rtnb-timeline"):
        assert page.locator(f".rtnb-panel {part}").count() >= 1, part
    body = page.inner_text("body")
    assert "Talk to a voice assistant" in body
    assert "await session.connect()" not in body, "Voila strips the code"


def test_vad_control_in_the_page_updates_the_session(voila: VoilaPage) -> None:
    page = voila.page
    key = ".rtnb-ctl[class*='server-vad--silence-duration-ms']"
    readout = page.locator(f".rtnb-panel {key} .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("800")
    page.keyboard.press("Enter")
    snap = voila.wait_snap(lambda s: s["turn_detection"].get("silence_duration_ms") == 800,
                           "silence_duration_ms 800 from the server")
    sent = [u["session"]["audio"]["input"]["turn_detection"] for u in snap["updates"]
            if "turn_detection" in u["session"].get("audio", {}).get("input", {})]
    assert sent[-1]["silence_duration_ms"] == 800, snap["updates"]
    row = page.locator(".rtnb-panel .rtnb-ctl-row").filter(has=page.locator(key)).last
    row.locator(".rtnb-ctl-note:has-text('✓ server: 800')").wait_for(timeout=10_000)
    print(f"\nVoila: the page's slider sent session.update ({len(snap['updates'])} in all); "
          f"the server echoed {snap['turn_detection']}")


def test_spoken_turn_is_transcribed_on_screen_and_played(voila: VoilaPage) -> None:
    page = voila.page
    before = len(voila.snap()["turns"])
    page.click(".rtnb-panel .rtnb-mic-button")  # Start: hands-free, server VAD
    voila.wait_snap(lambda s: s["recording"], "the mic recording")

    def answered(s: dict[str, Any]) -> bool:
        later = s["turns"][before:]
        users = [i for i in later if i["role"] == "user" and i["text"].strip()]
        return bool(users) and any(
            i["role"] == "assistant" and i["done"] not in (None, "in_progress")
            and i["text"].strip() for i in later[later.index(users[0]) + 1:])

    snap = voila.wait_snap(answered, "an answered spoken turn", timeout_s=60)
    later = snap["turns"][before:]
    user = next(i for i in later if i["role"] == "user" and i["text"].strip())
    answer = next(i for i in later[later.index(user) + 1:] if i["role"] == "assistant")
    page.click(".rtnb-panel .rtnb-mic-button")  # Stop
    assert "capital" in user["text"].lower() or "france" in user["text"].lower(), user
    page.wait_for_function(
        """(texts) => {
            const el = document.querySelector('.rtnb-panel .rtnb-transcript');
            return !!el && texts.every((t) => el.innerText.includes(t));
        }""", arg=[user["text"].strip(), answer["text"].strip()[:30]], timeout=10_000)
    deadline = time.monotonic() + 20
    while True:
        path = voila.out / "played.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        final = [r for r in rows if r["item"] == answer["id"]
                 and r["event"] in ("ended", "drained", "stopped")]
        if final:
            break
        assert time.monotonic() < deadline, f"the page did not play {answer['id']}: {rows[-5:]}"
        page.wait_for_timeout(200)
    assert final[-1]["ms"] > 0, final
    print(f"\nVoila: {user['text']!r} → {answer['text']!r}, played {final[-1]['ms']} ms "
          f"({final[-1]['event']})")


def test_no_console_errors_from_our_widgets(voila: VoilaPage) -> None:
    ours = [m for m in voila.console if not any(k in m for k in VOILA_UNRELATED)]
    assert ours == []
