"""``notebooks/marimo_quickstart.py`` under a real marimo server, headless Chromium, fake mic.

Twice: ``marimo run`` (the app: every cell runs when the page opens) and ``marimo edit
--headless`` (the editor: marimo 0.25 runs nothing on open, so the test presses its run-all
button, as a user would). Top-level ``await session.connect()`` runs in a cell; marimo
renders the anywidget parts of the panel (``marimo_panel``: mic, player, timeline, and HTML
mirrors of status, gauge, transcript). The app gives the page no code to run in the kernel, so
everything is checked in the page: the mic streams (the input-buffer gauge counts the appended
audio), the spoken question and the local server's answer appear in the transcript, the
player reports the answer played, and moving the marimo slider re-runs the cell that sends
``session.update``, whose output shows the server's echo. Screenshots:
``test-artifacts/marimo-{run,edit}.png``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    KNOWN_UNRELATED,
    REPO,
    _free_port,
    page_in_chromium,
    server_process,
)

pytestmark = pytest.mark.browser



@contextlib.contextmanager
def running_marimo(notebook: Path, mode: str) -> Iterator[str]:
    """``marimo {mode} notebook --headless`` (``run`` or ``edit``) on 127.0.0.1 on a free port;
    yield its URL.

    Logs to ``marimo.log`` beside the notebook; terminated (killed after 15 s) on exit.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = [str(Path(sys.executable).with_name("marimo")), "-y", mode, str(notebook),
            "--headless", "--host=127.0.0.1", f"--port={port}", "--no-token"]
    with server_process(argv, name="marimo", log=notebook.parent / "marimo.log",
                        ready_url=f"{url}health", cwd=notebook.parent,
                        any_answer_is_ready=True):
        yield url


@pytest.fixture(scope="module", params=["run", "edit"])
def page(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         question_wav: Path) -> Iterator[Any]:
    mode = request.param
    root = tmp_path_factory.mktemp(f"marimo-{mode}")
    notebook = root / "marimo_quickstart.py"
    shutil.copy(REPO / "notebooks" / "marimo_quickstart.py", notebook)
    with (
        running_marimo(notebook, mode) as url,
        page_in_chromium(url, tmp_path_factory.mktemp(f"chromium-marimo-{mode}"), question_wav,
                         viewport={"width": 1280, "height": 1600},
                         screenshot_as=f"marimo-{mode}.png") as (pg, console),
    ):
        pg.console_errors = console  # type: ignore[attr-defined]
        if mode == "edit":  # the editor's own run-all button (the last one; each cell has one)
            run_all_in_editor(pg)
        pg.wait_for_selector(".rtnb-mic-button", timeout=120_000)
        pg.wait_for_selector(".rtnb-html-view:has-text('connected')", timeout=60_000)
        yield pg


def run_all_in_editor(page: Any, timeout_s: float = 90) -> None:
    """Press the marimo editor's run-all button until the cells run (a press before the
    editor has connected to its kernel does nothing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        page.locator("[data-testid=run-button]").last.click(timeout=30_000)
        try:
            page.wait_for_selector(".rtnb-mic-button", timeout=10_000)
            return
        except Exception:
            assert time.monotonic() < deadline, "the editor's cells never ran"


def _echoed_silence_ms(page: Any) -> list[int]:
    """The silence_duration_ms values the update cell's outputs show (the server's echo)."""
    text = page.inner_text("body")
    return [int(x) for x in re.findall(r'"silence_duration_ms"\s*:\s*(\d+)', text)]


def test_the_anywidget_parts_render(page: Any) -> None:
    for part in (".rtnb-mic-button", ".rtnb-player-stop", ".rtnb-html-view"):
        assert page.locator(part).count() >= 1, part
    status = page.locator(".rtnb-html-view:has-text('connected')").first.inner_text()
    assert "backend local" in status, status
    assert page.locator(".rtnb-html-view:has-text('Nothing said yet')").count() == 1


def test_slider_cell_sends_session_update(page: Any) -> None:
    page.wait_for_function("() => /\"silence_duration_ms\"\\s*:\\s*500/.test(document.body"
                           ".innerText)", timeout=30_000)
    thumb = page.locator("[role=slider]").first  # marimo's slider (the volume is an <input>)
    thumb.focus()
    for _ in range(6):
        thumb.press("ArrowRight")  # 6 steps of 50 ms: 800
    page.wait_for_function("() => /\"silence_duration_ms\"\\s*:\\s*800/.test(document.body"
                           ".innerText)", timeout=30_000)
    assert 800 in _echoed_silence_ms(page)


def test_spoken_turn_is_answered_on_screen_and_played(page: Any) -> None:
    page.click(".rtnb-mic-button")  # Start: hands-free, server VAD
    page.wait_for_selector(".rtnb-mic-button:has-text('Stop')", timeout=15_000)
    # The mic streams: the gauge counts appended audio.
    page.wait_for_function(
        """() => [...document.querySelectorAll('*')].some((el) => el.shadowRoot &&
              /appended since last commit [1-9]/.test(el.shadowRoot.textContent))
           || /appended since last commit [1-9]/.test(document.body.innerText)""",
        timeout=15_000)
    answer = page.locator(".rtnb-turn-assistant .rtnb-turn-text:has-text('You said')").first
    answer.wait_for(timeout=60_000)
    user = page.locator(".rtnb-turn-user .rtnb-turn-text").first.inner_text()
    assert "capital" in user.lower() or "france" in user.lower(), user
    item = page.locator(".rtnb-turn-assistant").first.get_attribute("data-item-id")
    status = page.locator(f".rtnb-player:has-text('played {item}')")
    status.first.wait_for(timeout=30_000)
    page.click(".rtnb-mic-button")  # Stop
    played = re.search(rf"played {item} ([0-9.]+) s", status.first.inner_text())
    assert played and float(played.group(1)) > 0, status.first.inner_text()
    print(f"\nmarimo: {user!r} → {answer.inner_text()!r}, played {played.group(1)} s")


def test_no_console_errors_from_our_widgets(page: Any) -> None:
    ours = [m for m in page.console_errors if not any(k in m for k in KNOWN_UNRELATED)]
    assert ours == [], json.dumps(ours, indent=1)
