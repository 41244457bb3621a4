"""The panel's public surface: what ``realtime_nb.widgets.panel``, ``.controls`` and
``.transcript`` export, the ``SessionPanel`` methods' call signatures and its parts.

Pinned so that moving the panel's rooms into their own modules (the outbox, the redraw
scheduling, the HTML renderers, the capture modes, the MCP approval rows, the turn-taking rules)
cannot change what a caller imports, how it calls the panel, or which parts it finds on it.
"""

from __future__ import annotations

import inspect

import pytest
from widget_comm import recording_comm

from realtime_nb import Session
from realtime_nb.widgets import controls, panel, transcript

__all__ = ["recording_comm"]  # the fixture, used by name

#: Names a caller imports from realtime_nb.widgets.panel today (``__all__`` and the rest).
PANEL_NAMES = [
    "CALL_TIMEOUT_S", "GAUGE_FULL_MS", "PAD_MARGIN_MS", "PANEL_CSS", "SEMANTIC_MAX_WAIT_MS",
    "SessionPanel", "call_gauge_html", "display_session", "gauge_html", "panel_for",
    "usage_html",
]
CONTROLS_NAMES = ["DEFAULT", "LIVE_FIELDS", "OFF", "ON", "SUGGESTIONS", "ControlSpec",
                  "SessionControls", "control_specs"]
TRANSCRIPT_NAMES = ["TranscriptView", "item_text"]

SIGNATURES = {
    "__init__": "(self, session: 'Any', *, capture: 'str' = 'mic', mode: 'str' = 'hands-free', "
                "timeline: 'bool' = True, echo_cancellation: 'bool' = True, "
                "noise_suppression: 'bool' = True, auto_gain_control: 'bool' = True, "
                "mute_while_playing: 'bool' = False, refresh_s: 'float' = 0.15, "
                "audio_flush_s: 'float' = 0.04, **kwargs: 'Any') -> 'None'",
    "use_websocket": "(self, connect: 'bool' = True) -> 'asyncio.Task[Any] | None'",
    "connect": "(self, update: 'Mapping[str, Any] | None' = None) -> 'asyncio.Task[Any]'",
    "interrupt": "(self) -> 'None'",
    "idle": "(self) -> 'None'",
    "refresh": "(self) -> 'None'",
    "answer_approval": "(self, request_id: 'str', approve: 'bool') -> 'None'",
    "send_picture": "(self, image: 'Any', source: 'str' = 'picture') -> 'None'",
    "close": "(self) -> 'None'",
}

#: The parts and records a caller reads on a panel (attributes, in the class docstring).
PARTS = [
    "session", "mic", "player", "recorder", "call", "controls", "transcript", "timeline",
    "status", "gauge", "usage", "mode_note", "fallback_button", "connect_button",
    "capture_choice", "capture_box", "capture_row", "options", "picture_upload", "camera",
    "picture_text", "picture_row", "approvals", "style_html", "errors", "truncations",
    "pictures", "refresh_s", "audio_flush_s", "capture", "transport", "turns",
]


def test_the_panel_module_keeps_every_name_it_exported() -> None:
    assert all(hasattr(panel, name) for name in PANEL_NAMES)
    assert sorted(panel.__all__) == ["PANEL_CSS", "SessionPanel", "display_session",
                                     "panel_for"]


def test_names_that_moved_out_of_the_panel_module_are_the_objects_of_their_new_homes() -> None:
    from realtime_nb.client import turn_taking
    from realtime_nb.vad import SemanticVadSettings
    from realtime_nb.widgets import _call_path, _panel_html

    for name in ("PANEL_CSS", "GAUGE_FULL_MS", "usage_html", "gauge_html", "call_gauge_html"):
        assert getattr(panel, name) is getattr(_panel_html, name), name
    assert panel.CALL_TIMEOUT_S == _call_path.CALL_TIMEOUT_S
    assert panel.PAD_MARGIN_MS == turn_taking.PAD_MARGIN_MS
    assert panel.SEMANTIC_MAX_WAIT_MS == {**SemanticVadSettings.MAX_WAIT_MS, "auto": 4000}


def test_controls_and_transcript_keep_their_names() -> None:
    assert all(hasattr(controls, name) for name in CONTROLS_NAMES)
    assert all(hasattr(transcript, name) for name in TRANSCRIPT_NAMES)


def test_the_package_and_the_panel_module_export_the_same_objects() -> None:
    from realtime_nb import widgets

    assert widgets.SessionPanel is panel.SessionPanel
    assert widgets.panel_for is panel.panel_for


def test_session_panel_methods_keep_their_call_signatures() -> None:
    for name, signature in SIGNATURES.items():
        assert str(inspect.signature(getattr(panel.SessionPanel, name))) == signature, name


@pytest.mark.usefixtures("recording_comm")
def test_a_panel_has_every_documented_part() -> None:
    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    p = panel.SessionPanel(s, timeline=False)
    try:
        missing = [name for name in PARTS if not hasattr(p, name)]
        assert missing == []
        assert p.capture == "mic" and p.transport == "websocket"
        assert p.errors == [] and p.truncations == [] and p.pictures == []
    finally:
        p.close()
