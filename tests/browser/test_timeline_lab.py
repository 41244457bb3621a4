"""The Timeline widget in JupyterLab, following a real Session on the local server.

Pins down the whole transport: the kernel streams batches to the browser while a conversation
runs as a task on the kernel's loop; the browser holds every event (none lost, none twice); a view
rendered after the session asks for the history (``sync``) and gets all of it; the browser answers
``stats`` requests and an update stays under 50 ms; no console errors from the widget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    JupyterPage,
    notebook_in_chromium,
    notebook_root,
)

pytestmark = pytest.mark.browser

NOTEBOOK = "timeline.ipynb"


def _cells(out: Path) -> list[str]:
    return [
        f"""import asyncio, json, pathlib, warnings
warnings.simplefilter("ignore")
from realtime_nb import Session
from realtime_nb.server import LocalServer
from realtime_nb.widgets.timeline import Timeline
OUT = pathlib.Path({str(out)!r})
srv = await LocalServer(port=0).start()
s = Session(url=srv.url)
await s.connect()
tl = Timeline(s, window_s=0, title="live session")
tl""",
        """async def conversation():
    await s.update(turn_detection=None)
    for _ in range(3):
        await s.send_audio(b"\\1\\0" * 24 * 800, realtime=True)  # 0.8 s, paced like a mic
        await s.commit(wait=True)
    try:
        await s.commit()            # refused locally: nothing appended since
    except Exception as exc:
        print(exc)
    await s.say("Hello there, how are you?")
    await asyncio.sleep(0.3)
    (OUT / "done").write_text(str(len(s.events)))
task = asyncio.ensure_future(conversation())""",
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, jupyter_env: dict[str, str]
        ) -> Iterator[JupyterPage]:
    """JupyterLab on a notebook that shows a Timeline of a running Session (no microphone)."""
    root = notebook_root(tmp_path_factory.mktemp("timeline-lab"), NOTEBOOK, _cells)
    with notebook_in_chromium(
        "lab", root, NOTEBOOK, jupyter_env, tmp_path_factory.mktemp("chromium-timeline"), None,
        viewport={"width": 1280, "height": 900}, screenshot_as="timeline-lab.png",
    ) as jp:
        jp.page.wait_for_selector(".rtnb-tl-canvas", timeout=60_000)
        yield jp


def stats_of(jp: JupyterPage, widget: str, count: int, timeout_s: float = 20) -> dict[str, Any]:
    """Ask the browser for ``widget``'s stats until it holds ``count`` events."""
    deadline = time.monotonic() + timeout_s
    while True:
        jp.execute(f"{widget}.stats = None; {widget}.request_stats()")
        jp.page.wait_for_timeout(150)  # the reply is handled once the kernel is idle
        got = jp.execute(f"print(json.dumps({widget}.stats))").strip()
        stats = json.loads(got)
        if stats is not None and stats["count"] == count:
            return stats
        assert time.monotonic() < deadline, f"{widget} holds {stats} in the browser, not {count}"


def test_the_browser_follows_a_live_session_without_losing_events(lab: JupyterPage) -> None:
    n = int(lab.wait_for_file("done", timeout_s=90).read_text())
    lab.page.wait_for_timeout(300)
    assert lab.execute("print(len(s.events), tl.flush())").split() == [str(n), "0"]
    live_batches = int(lab.execute("print(tl.messages_sent)"))
    assert live_batches > 10, "the session's events did not stream in batches"
    stats = stats_of(lab, "tl", n)
    print(f"\nJupyterLab timeline, {n} events: {stats}")
    assert stats["updates"] > 5 and stats["median_ms"] < 50


def test_a_view_rendered_later_gets_the_whole_history(lab: JupyterPage) -> None:
    n = int(lab.wait_for_file("done", timeout_s=90).read_text())
    lab.page.evaluate(
        """async () => {
            const app = window.jupyterapp;
            const nb = app.shell.currentWidget.content;
            nb.activeCellIndex = nb.widgets.length - 1;
            await app.commands.execute("notebook:insert-cell-below");
            nb.activeCell.model.sharedModel.setSource("late = Timeline(s, window_s=10)\\nlate");
            await app.commands.execute("notebook:run-cell");
        }""")
    lab.page.wait_for_function("() => document.querySelectorAll('.rtnb-tl-canvas').length >= 2",
                               timeout=30_000)
    stats = stats_of(lab, "late", n)
    assert stats["views"] == 1


def test_no_console_errors_from_the_timeline(lab: JupyterPage) -> None:
    lab.wait_for_file("done", timeout_s=90)
    assert lab.our_console_errors() == []
