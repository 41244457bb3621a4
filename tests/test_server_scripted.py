"""The scripted test server (``realtime_nb.server.scripted``, public as ``client.testing``) runs
on the local server's connection seams (``server.connection.ConnectionHooks``): these tests pin
what each seam does, seen from a raw WebSocket client."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from websockets.asyncio.client import connect

from realtime_nb.client.testing import FakeRealtimeServer, tone_pcm16


def _open(fake: FakeRealtimeServer) -> Any:
    """A raw client (like the service, the server wants some key)."""
    return connect(fake.url, additional_headers={"Authorization": "Bearer sk-test"})


async def _next(ws: Any, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_a_binary_frame_gets_the_local_servers_invalid_event_error() -> None:
    async with FakeRealtimeServer() as fake, _open(fake) as ws:
        assert (await _next(ws))["type"] == "session.created"
        await ws.send(b"\x00\x01")
        error = await _next(ws)
        assert error["error"]["code"] == "invalid_event"
        assert error["error"]["message"] == (
            "Binary frames are not supported: send JSON text frames.")


async def test_trace_frames_follow_session_created_as_they_are() -> None:
    frames = ['{"type": "custom.one"}', "not json at all"]
    async with FakeRealtimeServer(trace=frames) as fake, _open(fake) as ws:
        assert (await _next(ws))["type"] == "session.created"
        assert [await asyncio.wait_for(ws.recv(), 5) for _ in frames] == frames


async def test_without_send_created_the_first_event_is_the_answer_to_the_client() -> None:
    async with FakeRealtimeServer(send_created=False) as fake, _open(fake) as ws:
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await _next(ws))["type"] == "input_audio_buffer.cleared"


async def test_a_swallowed_client_event_never_reaches_the_session() -> None:
    def swallow_clear(conn: Any, event: dict[str, Any]) -> bool:
        return event["type"] == "input_audio_buffer.clear"

    async with FakeRealtimeServer(on_client_event=swallow_clear) as fake, \
            _open(fake) as ws:
        await _next(ws)
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        await ws.send(json.dumps({"type": "response.create",
                                  "response": {"output_modalities": ["text"]}}))
        assert (await _next(ws))["type"] == "response.created"
        assert [e["type"] for e in fake.received] == ["input_audio_buffer.clear",
                                                      "response.create"]
        assert fake.connections[0].received == fake.received


async def test_without_vad_loud_audio_is_never_heard_as_speech() -> None:
    """``vad=False`` gives the session no VAD (engines ``vad=False``), not the Silero default:
    server_vad stays configured but detects nothing."""
    async with FakeRealtimeServer(vad=False) as fake, _open(fake) as ws:
        created = await _next(ws)
        assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        audio = base64.b64encode(tone_pcm16(1500)).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await ws.send(json.dumps({"type": "response.create",
                                  "response": {"output_modalities": ["text"]}}))
        assert (await _next(ws))["type"] == "response.created"  # no speech_started first
        assert fake.connections[0].core.id == created["session"]["id"]


async def test_a_hook_may_make_the_session_emit_and_flush_it_to_the_client() -> None:
    async def answer_clear_oddly(conn: Any, event: dict[str, Any]) -> bool:
        conn.core.emit("custom.from_the_hook", seen=event["type"])
        await conn.flush()
        return True

    async with FakeRealtimeServer(on_client_event=answer_clear_oddly) as fake, \
            _open(fake) as ws:
        await _next(ws)
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        event = await _next(ws)
        assert event["type"] == "custom.from_the_hook"
        assert event["seen"] == "input_audio_buffer.clear"
