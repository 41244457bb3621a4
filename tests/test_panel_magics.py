"""``%load_ext realtime_nb``, ``%realtime`` and the Session display hook, without a browser.

The magic runs in a real IPython shell inside the test's event loop (as in a kernel, where cells
run on the loop): it must return the panel at once, connect in the background and apply its
options with one ``session.update``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from widget_comm import recording_comm

from realtime_nb import Session
from realtime_nb.client.testing import FakeRealtimeServer
from realtime_nb.magics import realtime_settings
from realtime_nb.widgets.panel import SessionPanel, display_session, panel_for

__all__ = ["recording_comm"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "realtime_nb")
    yield sh
    for value in list(sh.user_ns.values()):
        if isinstance(value, Session):
            panel = vars(value).get("_rtnb_panel")
            if panel is not None:
                panel.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


async def _connected(panel: SessionPanel) -> None:
    for _ in range(200):
        await panel.idle()
        if panel.session.state == "connected" and panel.session.config is not None:
            await panel.idle()
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not connected: {panel.session.state}")


def test_settings_hold_only_what_was_asked_for() -> None:
    assert realtime_settings(transcription=None) == {}
    assert realtime_settings(vad="none", voice="marin", transcription="none") == {
        "audio": {"input": {"turn_detection": None, "transcription": None},
                  "output": {"voice": "marin"}}}
    assert realtime_settings(vad="semantic", language="fr", instructions="Be brief.") == {
        "audio": {"input": {"turn_detection": {"type": "semantic_vad"},
                            "transcription": {"model": "whisper-1", "language": "fr"}}},
        "instructions": "Be brief."}
    with pytest.raises(ValueError, match="--vad"):
        realtime_settings(vad="auto")


async def test_the_magic_returns_the_panel_at_once_and_connects_in_the_background(
        shell: InteractiveShell, fake: FakeRealtimeServer) -> None:
    panel = shell.run_line_magic(
        "realtime", f"--url {fake.url} --vad none --voice cedar "
        "--instructions 'Answer in one word.' --name s --no-timeline")
    assert isinstance(panel, SessionPanel)
    session = shell.user_ns["s"]
    assert isinstance(session, Session) and panel.session is session
    assert session.state in ("new", "connecting"), "a magic cannot await: nothing connected yet"
    assert "not connected" in panel.status.value or "connecting" in panel.status.value
    await _connected(panel)
    cfg = session.config
    assert cfg["audio"]["input"]["turn_detection"] is None
    assert cfg["audio"]["input"]["transcription"]["model"] == "whisper-1"
    assert cfg["audio"]["output"]["voice"] == "cedar"
    assert cfg["instructions"] == "Answer in one word."
    assert panel.mic.mode == "push-to-talk", "--vad none is push-to-talk"
    assert panel.timeline is None
    panel.refresh()
    assert "● connected" in panel.status.value


async def test_the_default_name_and_the_recorder_capture(shell: InteractiveShell,
                                                         fake: FakeRealtimeServer) -> None:
    panel = shell.run_line_magic("realtime", f"--url {fake.url} --capture recorder")
    assert shell.user_ns["_realtime_session"] is panel.session
    assert panel.capture == "recorder"
    assert panel.capture_box.children == (panel.recorder,)
    await _connected(panel)


async def test_running_the_magic_again_closes_the_previous_session(
        shell: InteractiveShell, fake: FakeRealtimeServer) -> None:
    first = shell.run_line_magic("realtime", f"--url {fake.url} --name s")
    await _connected(first)
    second = shell.run_line_magic("realtime", f"--url {fake.url} --name s")
    await _connected(second)
    assert first.session.state == "closed"
    assert shell.user_ns["s"] is second.session


async def test_a_bad_name_is_refused(shell: InteractiveShell) -> None:
    with pytest.raises(ValueError, match="identifier"):
        shell.run_line_magic("realtime", "--name 2fast")


class _KernelShell:
    kernel = object()


def test_a_session_displays_its_one_panel_in_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    monkeypatch.setattr(IPython, "get_ipython", lambda: _KernelShell())
    bundle: dict[str, Any] = s._repr_mimebundle_()  # type: ignore[attr-defined]
    panel = panel_for(s)
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == panel.model_id
    assert bundle["text/plain"] == repr(s)
    assert display_session(s)["application/vnd.jupyter.widget-view+json"]["model_id"] == \
        panel.model_id, "displaying again shows the same panel"
    panel.close()


def test_outside_a_kernel_a_session_displays_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert s._repr_mimebundle_() == {"text/plain": repr(s)}  # type: ignore[attr-defined]
    assert "_rtnb_panel" not in vars(s)
