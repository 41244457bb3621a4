"""The official ``openai`` SDK, pointed at the local server, holds full conversations.

Every event the server sends must validate against the SDK's GA types, so a third-party client
cannot tell the local server from the service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import typing

import pytest
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter
from websockets.exceptions import InvalidStatus

from realtime_nb.server import LocalServer

ADAPTER = TypeAdapter(RealtimeServerEvent)


def _event_models() -> dict[str, type]:
    union = typing.get_args(RealtimeServerEvent)[0]
    out = {}
    for model in typing.get_args(union):
        literal = model.model_fields["type"].annotation
        for name in typing.get_args(literal):
            out[name] = model
    return out


MODELS = _event_models()


def validate_event(ev: dict) -> None:
    """Validate against the SDK model for this event type (a targeted error when it fails)."""
    assert ev["type"] in MODELS, f"the SDK has no GA event type {ev['type']!r}"
    MODELS[ev["type"]].model_validate(ev)
    ADAPTER.validate_python(ev)


@pytest.fixture
async def server():
    async with LocalServer() as srv:
        yield srv


def client_for(server: LocalServer, key: str = "sk-local") -> AsyncOpenAI:
    return AsyncOpenAI(api_key=key, base_url="http://127.0.0.1:9/v1",
                       websocket_base_url=server.base_url)


async def collect(conn, until: str, timeout: float = 60.0, validate: bool = True) -> list[dict]:
    """Receive raw events until one of type ``until``; validate each against the SDK types."""
    events: list[dict] = []

    async def run() -> None:
        while True:
            ev = json.loads(await conn.recv_bytes())
            if validate:
                validate_event(ev)
            events.append(ev)
            if ev["type"] == until:
                return

    await asyncio.wait_for(run(), timeout)
    return events


async def send_audio(conn, pcm: bytes, chunk: int = 4800) -> None:
    for i in range(0, len(pcm), chunk):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + chunk]).decode())


async def test_spoken_turn_gives_transcript_text_and_audio(server, speech_pcm):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.session.update(session={"type": "realtime", "audio": {"input": {
            "transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}}})
        await send_audio(conn, speech_pcm + b"\0" * 48_000)
        events = await collect(conn, "response.done")
        events += [] if any(e["type"].endswith("transcription.completed") for e in events) else (
            await collect(conn, "conversation.item.input_audio_transcription.completed"))
    kinds = [e["type"] for e in events]
    assert kinds.count("input_audio_buffer.committed") == 1
    transcript = next(e["transcript"] for e in events
                      if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert "weather" in transcript.lower() and "paris" in transcript.lower()
    audio = b"".join(base64.b64decode(e["delta"]) for e in events
                     if e["type"] == "response.output_audio.delta")
    assert len(audio) > 48_000  # more than a second of reply
    said = next(e["transcript"] for e in events
                if e["type"] == "response.output_audio_transcript.done")
    assert "paris" in said.lower()
    done = events[kinds.index("response.done")]["response"]
    assert done["status"] == "completed" and done["usage"]["output_tokens"] > 0


async def test_seed_failure_commit_after_vad_auto_commit(server, speech_pcm):
    """Default session: speech + silence, then commit -> the service's exact error."""
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await send_audio(conn, speech_pcm + b"\0" * 48_000)
        await collect(conn, "input_audio_buffer.committed")
        await conn.input_audio_buffer.commit(event_id="commit_1")
        events = await collect(conn, "error")
    err = events[-1]["error"]
    assert err["code"] == "input_audio_buffer_commit_empty"
    assert err["event_id"] == "commit_1"
    assert err["message"] == ("Error committing input audio buffer: buffer too small. Expected at "
                              "least 100ms of audio, but buffer only has 0.00ms of audio.")


async def test_text_turn_in_text_modality(server):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "tell me a story"}]})
        await conn.response.create(response={"output_modalities": ["text"]})
        events = await collect(conn, "response.done")
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert "tell me a story" in text.lower()


async def test_function_call_round_trip(server):
    tool = {"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.session.update(session={"type": "realtime", "tools": [tool],
                                           "output_modalities": ["text"]})
        await conn.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]})
        await conn.response.create()
        events = await collect(conn, "response.done")
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert call["name"] == "get_weather" and "city" in json.loads(call["arguments"])
        await conn.conversation.item.create(item={
            "type": "function_call_output", "call_id": call["call_id"],
            "output": json.dumps({"temperature_c": 21})})
        await conn.response.create()
        events = await collect(conn, "response.done")
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert "21" in text


async def test_cancel_stops_the_response(server):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "say something long " * 20}]})
        await conn.response.create()
        await conn.response.cancel()
        events = await collect(conn, "response.done")
    done = events[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"]["reason"] == "client_cancelled"


async def test_transcription_intent_session(server, speech_pcm):
    client = client_for(server)
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        created = await collect(conn, "session.created")
        assert created[-1]["session"]["type"] == "transcription"
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": None}}})
        await send_audio(conn, speech_pcm)
        await conn.input_audio_buffer.commit()
        events = await collect(conn, "conversation.item.input_audio_transcription.completed")
    assert "paris" in events[-1]["transcript"].lower()
    assert not any(e["type"].startswith("response.") for e in events)


async def test_beta_dialect_is_translated(server):
    client = client_for(server)
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        first = json.loads(await conn.recv_bytes())
        assert first["type"] == "session.created"
        assert first["session"]["modalities"] == ["audio", "text"]
        assert first["session"]["input_audio_format"] == "pcm16"
        await conn.session.update(session={"modalities": ["text"], "turn_detection": None})
        await conn.conversation.item.create(item={
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]})
        await conn.response.create()
        seen: list[str] = []
        while "response.done" not in seen:
            seen.append(json.loads(await asyncio.wait_for(conn.recv_bytes(), 30))["type"])
    assert "conversation.item.created" in seen and "response.text.delta" in seen
    assert "conversation.item.added" not in seen and "response.output_text.delta" not in seen


async def test_retired_beta_is_refused_like_the_service():
    async with LocalServer(beta="retired") as srv:
        client = client_for(srv)
        async with client.beta.realtime.connect(model="gpt-realtime") as conn:
            ev = json.loads(await conn.recv_bytes())
            assert ev["error"]["code"] == "beta_api_shape_disabled"
            with pytest.raises(Exception) as info:
                await asyncio.wait_for(conn.recv_bytes(), 5)
            assert "4000" in str(info.value)


async def test_required_key_refuses_the_upgrade_with_401():
    async with LocalServer(api_key="sk-right") as srv:
        with pytest.raises(InvalidStatus) as info:
            async with client_for(srv, key="sk-wrong").realtime.connect(model="gpt-realtime"):
                pass
        assert info.value.response.status_code == 401
        async with client_for(srv, key="sk-right").realtime.connect(model="gpt-realtime") as c:
            assert (await collect(c, "session.created"))[0]["type"] == "session.created"


def test_server_refuses_non_loopback_unless_allowed():
    with pytest.raises(ValueError, match="loopback"):
        LocalServer(host="0.0.0.0")
    LocalServer(host="0.0.0.0", allow_remote=True)  # explicit opt-in is accepted
