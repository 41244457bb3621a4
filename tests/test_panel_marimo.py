"""marimo_panel: the panel's anywidget parts and HTML mirrors, for marimo (no browser).

Server events go through the Session's own receive path (as in test_panel_transcript), the
session's panel redraws, and the marimo view's mirrors must show what the panel's ipywidgets
parts show; the layout is marimo's ``mo.vstack`` of ``mo.ui.anywidget`` elements. The real
marimo page is tested in tests/browser/test_marimo_browser.py.
"""

from __future__ import annotations

import pytest
from test_panel_transcript import assistant_turn, config, feed, user_turn
from widget_comm import recording_comm

from realtime_nb import Session
from realtime_nb.widgets.marimo_view import HTMLView, marimo_panel
from realtime_nb.widgets.panel import panel_for

__all__ = ["recording_comm"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")


async def test_mirrors_follow_the_panel_and_the_view_is_anywidgets_only() -> None:
    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    feed(s, type="session.created", session=config())
    view = marimo_panel(s, timeline=False)
    assert view.panel is panel_for(s), "the session's one panel does the work"
    assert "Nothing said yet." in view.transcript.value
    user_turn(s, "item_u1", None)
    feed(s, type="conversation.item.input_audio_transcription.completed", item_id="item_u1",
         content_index=0, transcript="What is the capital of France?")
    assistant_turn(s, "resp_1", "item_a1", "item_u1", ["Paris ", "<b>is</b> ", "the capital."])
    view.panel.refresh()
    html = view.transcript.value
    assert "What is the capital of France?" in html
    assert "Paris &lt;b&gt;is&lt;/b&gt; the capital." in html, "text arrives escaped"
    assert html.index("item_u1") < html.index("item_a1")
    for name in ("status", "gauge", "usage", "mode_note"):
        mirror = getattr(view, name)
        assert isinstance(mirror, HTMLView)
        assert mirror.value == getattr(view.panel, name).value, name
    assert "1 response" in view.usage.value
    layout = view.view().text
    assert layout.count("marimo-anywidget") >= 7  # 5 mirrors, the mic and the player
    assert "jupyter-widgets" not in layout
