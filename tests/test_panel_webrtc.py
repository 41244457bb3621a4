"""The kernel's side of a WebRTC call placed by the browser (``Session(transport="webrtc")``).

No browser here: the page's part is played by the test. It answers the widget's ``ready``,
takes the one ``start`` message (URL and ephemeral secret), places the call as a browser would
(an aiortc peer posting its SDP offer with that secret to the local server) and sends the call
id back as the widget would. What is pinned down:

* the panel mints the secret in the kernel and hands only the ``ek_`` value to the page, in one
  custom message — never the API key, never in a trait (every message and every trait update
  of every widget is checked);
* the call id from the page attaches the Session as the call's sideband (``?call_id=``, the
  long-lived key) in a background task, and from then on the mirror and the log are the
  call's: ``session.created`` first, then the call's events, with
  ``output_audio_buffer.*`` instead of audio deltas;
* failures the page reports (insecure page, microphone refused, ICE timeout) are shown with
  their reason and the WebSocket path is offered, and taking it works.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import ipywidgets.comm
import pytest
from widget_comm import RecordingComm, browser_msg

from realtime_nb import Session
from realtime_nb.client.backend import Secret
from realtime_nb.client.webrtc import KernelCall, sideband_url
from realtime_nb.server import LocalServer
from realtime_nb.widgets.panel import SessionPanel
from realtime_nb.widgets.webrtc import WebRTCCall

pytestmark = pytest.mark.slow

KEY = "sk-test-" + secrets.token_urlsafe(24)


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    """Every comm a widget opens in the test, in order (each records what it sends)."""
    made: list[RecordingComm] = []

    def create(**kwargs: Any) -> RecordingComm:
        comm = RecordingComm(**kwargs)
        made.append(comm)
        return comm

    monkeypatch.setattr(ipywidgets.comm, "create_comm", create)
    yield made


@pytest.fixture
async def server() -> Any:
    async with LocalServer(api_key=KEY) as srv:
        yield srv


def everything_sent(comms: list[RecordingComm]) -> str:
    """Every message every widget sent to the front end (state, updates, custom), as text."""
    return json.dumps([m for c in comms for m, _b in c.messages], default=repr)


async def start_message(call: WebRTCCall, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            starts = [m for m, _b in call.comm.custom() if m.get("type") == "start"]
            if starts:
                return starts[-1]
            await asyncio.sleep(0.01)


async def as_browser(call: WebRTCCall) -> KernelCall:
    """What the page does with the start message: post the offer with the secret, report the
    call id."""
    msg = await start_message(call)
    peer = await KernelCall.place(msg["url"], Secret(msg["secret"]))
    browser_msg(call, {"type": "call", "call_id": peer.call_id,
                       "location": f"/v1/realtime/calls/{peer.call_id}"})
    browser_msg(call, {"type": "state", "state": "connected"})
    return peer


def test_sideband_url_replaces_model_with_call_id() -> None:
    url = sideband_url("wss://api.openai.com/v1/realtime?model=gpt-realtime", "rtc_abc")
    assert url == "wss://api.openai.com/v1/realtime?call_id=rtc_abc"
    assert sideband_url("ws://127.0.0.1:9/v1/realtime?model=m&x=1", "rtc_1") == \
        "ws://127.0.0.1:9/v1/realtime?x=1&call_id=rtc_1"


async def test_connect_without_a_call_says_how_to_get_one() -> None:
    session = Session(backend="local", transport="webrtc")
    with pytest.raises(Exception) as info:
        await session.connect()
    assert getattr(info.value, "code", None) == "webrtc_call_required"
    assert "press Connect" in info.value.hint and "KernelCall" in info.value.hint
    assert session.state == "new"


def test_transport_is_checked_and_switchable_while_not_connected() -> None:
    with pytest.raises(ValueError, match="websocket' or 'webrtc"):
        Session(backend="local", transport="sip")
    with pytest.raises(ValueError, match="transcription sessions use the WebSocket"):
        Session(backend="local", transport="webrtc", intent="transcription")
    session = Session(backend="local", transport="webrtc")
    assert "transport='webrtc'" in repr(session)
    session.transport = "websocket"
    assert session.transport == "websocket" and "transport=" not in repr(session)


async def test_page_call_id_attaches_the_sideband_and_the_key_never_reaches_the_page(
        comms: list[RecordingComm], server: LocalServer) -> None:
    session = Session(url=server.url, api_key=KEY, transport="webrtc")
    panel = SessionPanel(session, timeline=True)
    call = panel.call
    call_comm = call.comm
    assert panel.capture_box.children == (call,)
    assert panel.player.layout.display == "none"
    task = panel.connect()
    await asyncio.sleep(0.2)
    assert not call.comm.custom() or all(m.get("type") != "start"
                                         for m, _b in call.comm.custom())
    browser_msg(call, {"type": "ready"})  # the page loaded the widget: now it may start
    peer = await as_browser(call)
    try:
        await asyncio.wait_for(task, 20)
        assert session.state == "connected" and session.call_id == peer.call_id
        assert call.call_id == peer.call_id
        connected = [e for e in session.events if e.type == "realtime_nb.connected"]
        assert connected[-1].event["transport"] == "webrtc"
        assert connected[-1].event["call_id"] == peer.call_id
        server_types = [e.type for e in session.events if e.direction == "server"]
        assert server_types[0] == "session.created"
        # the sideband steers the call: a text turn, answered in the call
        reply = await session.say("Hello over the sideband.", timeout=30)
        assert reply.status == "completed" and "Hello over the sideband" in reply.text
        types = {e.type for e in session.events if e.direction == "server"}
        assert "response.output_audio.delta" not in types
        assert {"output_audio_buffer.started", "response.done"} <= types
        await session.wait_for("output_audio_buffer.stopped", timeout=30,
                               since=0)
        assert any(e.get("type") == "response.done" for e in peer.channel_events)
        panel.refresh()
        assert "WebRTC" in panel.status.value and peer.call_id in panel.status.value
        assert "audio track" in panel.gauge.value
        await session.close()  # hangs the call up
        await asyncio.sleep(0.3)
        assert peer.call_id not in server.calls
        assert call.comm.custom()[-1][0] == {"type": "hangup"}
    finally:
        await peer.close()
        panel.close()
    sent = everything_sent(comms)
    assert KEY not in sent and KEY[8:20] not in sent
    starts = [m for m, _b in call_comm.custom() if m.get("type") == "start"]
    assert len(starts) == 1 and starts[0]["secret"].startswith("ek_")
    assert starts[0]["url"] == f"{server.http_base_url}/realtime/calls"
    # the secret travelled in that message only: no trait, no other message
    assert sent.count(starts[0]["secret"]) == 1
    updates = [s for c in comms for s in c.updates()]
    assert not any("ek_" in json.dumps(s, default=repr) for s in updates)
    assert not any("ek_" in json.dumps(m.get("state", {}), default=repr)
                   for c in comms for m, _b in c.messages)


@pytest.mark.parametrize("reason", ["insecure_context", "mic_denied", "ice_timeout"])
async def test_page_failure_is_shown_and_the_websocket_path_is_offered(
        comms: list[RecordingComm], server: LocalServer, reason: str) -> None:
    session = Session(url=server.url, api_key=KEY, transport="webrtc")
    panel = SessionPanel(session, timeline=False)
    call = panel.call
    browser_msg(call, {"type": "ready"})
    task = panel.connect()
    await start_message(call)
    browser_msg(call, {"type": "failed", "reason": reason, "message": f"page says {reason}"})
    await asyncio.wait_for(task, 10)
    assert session.state == "new"
    _label, err = panel.errors[-1]
    assert err.code == f"webrtc_{reason}" and str(err.message) == f"page says {reason}"
    assert err.hint
    panel.refresh()
    assert f"webrtc_{reason}" in panel.status.value
    assert panel.fallback_button.layout.display != "none"
    await asyncio.wait_for(panel.use_websocket(), 20)
    assert session.transport == "websocket" and session.state == "connected"
    assert panel.capture_box.children == (panel.mic,)
    assert panel.player.layout.display != "none"
    assert panel.fallback_button.layout.display == "none"
    assert "WebSocket" in panel.status.value
    await session.close()
    panel.close()
    assert KEY not in everything_sent(comms)


async def test_ice_failure_after_the_call_was_placed_hangs_it_up(
        comms: list[RecordingComm], server: LocalServer) -> None:
    session = Session(url=server.url, api_key=KEY, transport="webrtc")
    panel = SessionPanel(session, timeline=False)
    call = panel.call
    browser_msg(call, {"type": "ready"})
    task = panel.connect()
    peer = await as_browser(call)
    try:
        await asyncio.wait_for(task, 20)
        assert session.state == "connected"
        browser_msg(call, {"type": "failed", "reason": "ice_failed", "message": "UDP blocked"})
        await panel.idle()
        assert session.state == "closed"
        assert panel.errors[-1][1].code == "webrtc_ice_failed"
        await asyncio.sleep(0.3)
        assert peer.call_id not in server.calls
    finally:
        await peer.close()
        panel.close()


async def test_no_page_means_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                           comms: list[RecordingComm]) -> None:
    import realtime_nb.widgets._call_path as panel_module

    monkeypatch.setattr(panel_module, "CALL_TIMEOUT_S", 0.2)
    panel = SessionPanel(Session(backend="local", transport="webrtc"), timeline=False)
    await asyncio.wait_for(panel.connect(), 5)
    assert panel.errors[-1][1].code == "webrtc_no_browser"
    panel.close()


def test_start_refuses_anything_but_an_ephemeral_secret(comms: list[RecordingComm]) -> None:
    call = WebRTCCall()

    async def go() -> None:
        with pytest.raises(ValueError, match="ephemeral"):
            call.start("http://127.0.0.1:1/v1/realtime/calls", Secret(KEY))
        with pytest.raises(TypeError):
            call.start("http://127.0.0.1:1/v1/realtime/calls", KEY)

    asyncio.run(go())
    assert KEY not in everything_sent(comms)
