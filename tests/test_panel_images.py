"""Pictures in the panel and the transcript, through the widget comm harness (no browser).

A real local server answers with a responder that reports the pictures it receives. Pinned
down: a file chosen in the panel's upload button (delivered as the browser sends it, content as
a comm buffer) and a camera snapshot (the CameraWidget's binary message) each reach the
responder as the very image, with the text typed beside it; in hands-free mode a response is
asked for, in push-to-talk it is not; a non-image upload shows in the status line without
breaking the panel; the transcript shows a thumbnail and the picture's size for a user item
with an image, and the usage line its image tokens; the camera widget asks the browser for a
snapshot with one custom message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from fake_session import until
from image_fixtures import image_bytes
from widget_comm import RecordingComm, browser_msg, recording_comm

from realtime_nb import RealtimeError, Session
from realtime_nb.protocol.images import decode_image_url
from realtime_nb.server import LocalServer
from realtime_nb.server.engines import CallableResponder, Engines
from realtime_nb.widgets import CameraWidget
from realtime_nb.widgets.panel import SessionPanel

__all__ = ["recording_comm"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    seen: list[Any] = []

    def respond(request) -> str:
        latest = request.latest_images
        seen.append(latest)
        return "; ".join(f"{i.width}x{i.height} {i.mime_type}" for i in latest) or "no picture"

    srv = LocalServer(port=0, engines=Engines(
        responder=CallableResponder(respond, takes="request")))
    await srv.start(warm_up=False)
    srv.seen = seen  # type: ignore[attr-defined]
    yield srv
    await srv.stop()


@pytest.fixture
async def panel(server: LocalServer) -> AsyncIterator[SessionPanel]:
    s = Session(url=server.url, record=False)
    p = SessionPanel(s, timeline=False)
    await p.connect({"output_modalities": ["text"]})
    await p.idle()
    yield p
    p.close()
    await s.close()


def upload_from_browser(widget: Any, name: str, data: bytes, mime: str) -> None:
    """What the page sends when a file is chosen: metadata in the state, content as a buffer."""
    widget.comm.handler({"content": {"data": {
        "method": "update",
        "state": {"value": [{"name": name, "type": mime, "size": len(data),
                             "last_modified": 0}]},
        "buffer_paths": [["value", 0, "content"]]}}, "buffers": [memoryview(data)]})


def replies(session: Session) -> list[str]:
    return [rs.text for rs in session.mirror.responses.values() if rs.done]


async def test_uploaded_file_with_its_text_reaches_the_responder_and_is_answered(
        server: LocalServer, panel: SessionPanel) -> None:
    png = image_bytes(200, 100, "PNG")
    panel.picture_text.value = "what is this?"
    upload_from_browser(panel.picture_upload, "chart.png", png, "image/png")
    await panel.idle()
    await until(lambda: replies(panel.session))
    assert replies(panel.session) == ["200x100 image/png"]
    (record,) = panel.pictures
    assert record == {"source": "upload: chart.png", "item_id": record["item_id"],
                      "text": "what is this?", "mime_type": "image/png", "width": 200,
                      "height": 100, "note": "", "responded": True}
    item = panel.session.items[record["item_id"]]
    assert item.text == "what is this?" and item.images[0].data == png
    assert panel.picture_text.value == "" and panel.picture_upload.value == ()
    await until(lambda: "image 255" in panel.usage.value)  # 85 + 170 for one 512-px tile


async def test_camera_snapshot_reaches_the_responder_as_the_same_jpeg(
        server: LocalServer, panel: SessionPanel) -> None:
    jpeg = image_bytes(320, 240, "JPEG")
    browser_msg(panel.camera, {"type": "snapshot", "mime_type": "image/jpeg", "width": 320,
                               "height": 240, "reason": "button"}, [memoryview(jpeg)])
    await panel.idle()
    await until(lambda: replies(panel.session))
    assert replies(panel.session) == ["320x240 image/jpeg"]
    assert server.seen[-1][0].data == jpeg  # type: ignore[attr-defined]
    assert panel.camera.last is not None and panel.camera.last.width == 320


async def test_push_to_talk_sends_the_picture_without_asking_for_a_response(
        server: LocalServer, panel: SessionPanel) -> None:
    panel.mic.mode = "push-to-talk"
    await panel.idle()
    await until(lambda: panel.session.mirror.buffer.vad is False)
    panel.send_picture(image_bytes(16, 16, "PNG"), "test")
    await panel.idle()
    assert [p["responded"] for p in panel.pictures] == [False]
    await asyncio.sleep(0.2)
    assert replies(panel.session) == []


async def test_a_very_large_picture_is_downsized_and_the_record_says_so(
        server: LocalServer, panel: SessionPanel) -> None:
    panel.send_picture(np.zeros((100, 3000, 3), np.uint8), "array")
    await panel.idle()
    (record,) = panel.pictures
    assert (record["width"], record["height"]) == (2048, 68)
    assert record["note"] == "downsized from 3000×100 to 2048×68 (max_side=2048)"
    await until(lambda: replies(panel.session))
    assert replies(panel.session) == ["2048x68 image/png"]


async def test_a_non_image_upload_is_shown_as_an_error_and_the_panel_goes_on(
        server: LocalServer, panel: SessionPanel) -> None:
    upload_from_browser(panel.picture_upload, "notes.txt", b"just text", "text/plain")
    await panel.idle()
    label, err = panel.errors[-1]
    assert label == "picture (upload: notes.txt)"
    assert isinstance(err, RealtimeError) and err.code == "invalid_image"
    panel.refresh()
    assert "invalid_image" in panel.status.value
    panel.send_picture(image_bytes(8, 8, "PNG"), "test")
    await panel.idle()
    await until(lambda: replies(panel.session))
    assert replies(panel.session) == ["8x8 image/png"]


async def test_transcript_row_of_a_picture_shows_a_thumbnail_and_its_size(
        server: LocalServer, panel: SessionPanel) -> None:
    ev = await panel.session.send_image(image_bytes(640, 480, "PNG"), text="look", wait=True)
    panel.transcript.refresh()
    row = panel.transcript.rows[ev["item"]["id"]]
    assert "640×480 PNG image" in row and "look" in row
    src = row.split('class="rtnb-turn-thumb" src="')[1].split('"')[0]
    thumb = decode_image_url(src)
    assert (thumb.mime_type, thumb.width, thumb.height) == ("image/jpeg", 96, 72)
    assert len(row) < 8000  # a thumbnail, not the picture


def test_camera_snap_asks_the_browser_with_one_custom_message() -> None:
    cam = CameraWidget()
    cam.snap()
    comm = cam.comm
    assert isinstance(comm, RecordingComm)
    assert comm.custom() == [({"type": "snap"}, [])]


def test_marimo_view_shows_the_panels_camera() -> None:
    """In marimo (anywidgets only) the camera is shown; its snapshots reach the same panel."""
    from realtime_nb.widgets.marimo_view import marimo_panel

    s = Session(url="ws://127.0.0.1:9/v1/realtime", record=False)
    view = marimo_panel(s, timeline=False)
    assert view.camera is view.panel.camera
    assert view.view().text.count("marimo-anywidget") >= 8  # 5 mirrors, mic, player, camera
