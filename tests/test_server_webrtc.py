"""WebRTC calls on the local server (``POST /v1/realtime/calls``) and ``?call_id=`` sidebands.

The caller is our own aiortc peer (``webrtc_fixtures.Caller``: microphone track, ``oai-events``
data channel), the way a browser dials; the official Python SDK creates calls
(``client.realtime.calls.create``, multipart), attaches sidebands
(``client.realtime.connect(call_id=...)``) and hangs up (``client.realtime.calls.hangup``).
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import openai
import pytest
import websockets
from openai import AsyncOpenAI
from webrtc_fixtures import Caller

from realtime_nb.audio import Audio
from realtime_nb.server import LocalServer

pytestmark = pytest.mark.slow


@pytest.fixture
async def server():
    async with LocalServer() as srv:
        yield srv


@pytest.fixture
async def caller():
    c = Caller()
    yield c
    await c.close()


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> Audio:
    from conftest import espeak_wav

    wav = espeak_wav(tmp_path_factory.mktemp("rtc") / "q.wav", "What is the capital of France?")
    return Audio.decode(wav)


def sdk(server: LocalServer, key: str = "sk-local") -> AsyncOpenAI:
    return AsyncOpenAI(api_key=key, base_url=server.http_base_url,
                       websocket_base_url=server.base_url, max_retries=0)


def calls_url(server: LocalServer) -> str:
    return f"{server.http_base_url}/realtime/calls"


async def sdk_dial(server: LocalServer, caller: Caller, session: dict | None = None) -> None:
    """Create the call with the official SDK (multipart sdp + session) and apply the answer."""
    raw = await sdk(server).realtime.calls.with_raw_response.create(
        sdp=await caller.offer(), **({"session": session} if session else {}))
    assert raw.status_code == 201
    assert raw.headers["content-type"] == "application/sdp"
    await caller.answer(raw.content.decode(), raw.headers["location"])


async def _ask_for_a_long_reply(caller: Caller, sentence: str) -> None:
    """Send ``sentence`` four times as a user message and ask for a response: the local
    server's reply to it plays for several seconds."""
    await caller.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": sentence * 4}]}})
    await caller.send({"type": "response.create"})


async def test_a_spoken_turn_over_webrtc(server, caller, question, whisper):
    """Speech on the mic track → server VAD turn and transcript on the data channel; the reply
    is heard on the remote track (and says what the echo responder says), bracketed by
    output_audio_buffer.started/stopped, with no audio deltas in the events."""
    await sdk_dial(server, caller, {"type": "realtime", "instructions": "Be brief.", "audio": {
        "input": {"transcription": {"model": "whisper-1"}}}})
    assert caller.call_id.startswith("rtc_")
    (receiver,) = [t.receiver for t in server.calls[caller.call_id].pc.getTransceivers()]
    assert receiver._RTCRtpReceiver__jitter_buffer._prefetch == 1  # 60 ms less turn latency
    created = await caller.wait_for("session.created")
    assert created["session"]["instructions"] == "Be brief."
    caller.mic.say(question)
    heard = await caller.wait_for("conversation.item.input_audio_transcription.completed")
    assert "capital" in heard["transcript"].lower() and "france" in heard["transcript"].lower()
    started = await caller.wait_for("output_audio_buffer.started")
    done = await caller.wait_for("response.done")
    stopped = await caller.wait_for("output_audio_buffer.stopped")
    assert started["response_id"] == stopped["response_id"] == done["response"]["id"]
    types = caller.types()
    assert "response.output_audio.delta" not in types
    assert types.index("response.content_part.added") < types.index(
        "output_audio_buffer.started") < types.index("output_audio_buffer.stopped")
    assert types.index("response.done") < types.index("output_audio_buffer.stopped")
    # the reply's audio on the track, transcribed locally, is the reply's transcript
    t0 = caller.mic.spoken_until
    first = caller.loud_since(t0)
    assert first is not None
    reply = caller.audio_between(first - 0.1, time.monotonic())
    text = whisper.transcribe(reply).text.lower()
    assert "capital" in text and "france" in text, text
    said = done["response"]["output"][0]["content"][0]["transcript"]
    assert said.lower().startswith("you said")


async def test_a_client_secret_dials_like_a_browser(server, caller):
    """The browser's way: a backend mints an ek_ secret bound to a config; the page posts its
    offer as application/sdp with that secret; the call starts with the bound config."""
    secret = await sdk(server).realtime.client_secrets.create(session={
        "type": "realtime", "instructions": "Speak like a pirate.",
        "audio": {"output": {"voice": "cedar"}}})
    resp = await caller.dial(calls_url(server), secret.value)
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"].startswith("/v1/realtime/calls/rtc_")
    assert "a=fingerprint:" in resp.text and "m=audio" in resp.text
    created = await caller.wait_for("session.created")
    assert created["session"]["instructions"] == "Speak like a pirate."
    assert created["session"]["audio"]["output"]["voice"] == "cedar"


async def test_sideband_sees_the_call_and_steers_it(server, caller):
    """The official SDK's sideband (connect(call_id=)) gets session.created, then the call's
    events; its session.update and response.create act on the call the browser holds."""
    await sdk_dial(server, caller)
    await caller.wait_for("session.created")
    async with sdk(server).realtime.connect(call_id=caller.call_id) as side:
        first = await side.recv()
        assert first.type == "session.created"
        assert first.session.id == caller.events[0]["session"]["id"]
        await side.session.update(session={"type": "realtime", "instructions": "Count.",
                                           "output_modalities": ["text"]})
        seen = []
        async for ev in side:
            seen.append(ev.type)
            if ev.type == "session.updated":
                break
        updated = await caller.wait_for("session.updated")
        assert updated["session"]["instructions"] == "Count."
        await side.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Hello from the backend"}]})
        await side.response.create()
        async for ev in side:
            seen.append(ev.type)
            if ev.type == "response.done":
                text = ev.response.output[0].content[0].text
                break
        assert "hello from the backend" in text.lower()
        dc = await caller.wait_for("response.done")
        assert dc["response"]["output"][0]["content"][0]["text"] == text
        # events the browser sends reach the sideband too (as their server replies)
        await caller.send({"type": "input_audio_buffer.clear"})
        async for ev in side:
            if ev.type == "input_audio_buffer.cleared":
                break


async def test_output_audio_buffer_clear_cuts_the_reply(server, caller):
    """output_audio_buffer.clear is valid on a call: the server emits cleared and the track
    goes quiet at once, mid-sentence."""
    await sdk_dial(server, caller, {"type": "realtime", "audio": {"input": {
        "turn_detection": None}}})
    await caller.wait_for("session.created")
    await _ask_for_a_long_reply(caller, "This is a long answer that goes on and on for a good "
                                "while, ")
    started = await caller.wait_for("output_audio_buffer.started")
    await caller.wait_for("response.done")
    first = None
    deadline = time.monotonic() + 10
    while first is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        first = caller.loud_since(0)
    assert first is not None
    await asyncio.sleep(0.5)  # half a second into playback
    sent = time.monotonic()
    await caller.send({"type": "output_audio_buffer.clear"})
    cleared = await caller.wait_for("output_audio_buffer.cleared")
    assert cleared["response_id"] == started["response_id"]
    await asyncio.sleep(1.0)
    tail = caller.audio_between(sent + 0.5, time.monotonic())
    assert len(tail.samples) >= 0.3 * 48_000  # a good stretch was heard after the cut
    assert tail.rms < 10 ** (-50 / 20), tail.rms_dbfs
    assert "output_audio_buffer.stopped" not in caller.types()



async def test_barge_in_clears_the_playing_reply(server, caller, question):
    """Speaking while the reply is still being heard (server VAD, interrupt_response) clears
    the output buffer: output_audio_buffer.cleared for the reply that was playing."""
    await sdk_dial(server, caller)
    await caller.wait_for("session.created")
    await _ask_for_a_long_reply(caller, "Here is a very long story about a lighthouse keeper "
                                "and the sea, ")
    started = await caller.wait_for("output_audio_buffer.started")
    await asyncio.sleep(0.5)
    mark = len(caller.events)
    caller.mic.say(question)
    await caller.wait_for("input_audio_buffer.speech_started", since=mark)
    cleared = await caller.wait_for("output_audio_buffer.cleared", since=mark)
    assert cleared["response_id"] == started["response_id"]


async def test_hangup_ends_the_call_and_its_sidebands(server, caller):
    await sdk_dial(server, caller)
    await caller.wait_for("session.created")
    async with sdk(server).realtime.connect(call_id=caller.call_id) as side:
        assert (await side.recv()).type == "session.created"
        await sdk(server).realtime.calls.hangup(caller.call_id)

        async def until_closed() -> None:
            async for _ in side:
                pass

        await asyncio.wait_for(until_closed(), 10)  # the sideband ends with the call
    for _ in range(50):
        if not server.calls and caller.pc.connectionState == "closed":
            break
        await asyncio.sleep(0.1)
    assert server.calls == {}
    assert caller.pc.connectionState == "closed"
    with pytest.raises(openai.NotFoundError):
        await sdk(server).realtime.calls.hangup(caller.call_id)


async def test_a_sideband_to_an_unknown_call_is_refused(server):
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{server.url}?call_id=rtc_nope",
                                      additional_headers={"Authorization": "Bearer sk"}):
            pass
    assert info.value.response.status_code == 404
    assert json.loads(info.value.response.body)["error"]["code"] == "call_not_found"


async def test_data_channel_errors_come_back_as_error_events(server, caller):
    await sdk_dial(server, caller)
    await caller.wait_for("session.created")
    caller.channel.send("{not json")
    err = await caller.wait_for("error")
    assert err["error"]["code"] == "invalid_json"
    await caller.send({"type": "session.update", "turn_detection": {"type": "server_vad"}})
    err = await caller.wait_for("error", since=caller.events.index(err) + 1)
    assert err["error"]["code"] == "unknown_parameter"


async def test_a_call_without_a_key_valid_sdp_or_a_realtime_secret_is_refused_saying_why(server):
    url = calls_url(server)
    c = Caller()
    try:
        offer = await c.offer()
    finally:
        await c.close()
    async with httpx.AsyncClient() as http:
        r = await http.post(url, content=offer, headers={"Content-Type": "application/sdp"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = await http.post(url, content=offer, headers={
            "Content-Type": "application/sdp", "Authorization": "Bearer ek_madeup"})
        assert r.status_code == 401
        r = await http.post(url, content="v=0\r\n", headers={
            "Content-Type": "application/sdp", "Authorization": "Bearer sk"})
        assert r.status_code == 400 and "m=audio" in r.json()["error"]["message"]
        r = await http.post(url, content=offer, headers={
            "Content-Type": "text/plain", "Authorization": "Bearer sk"})
        assert r.status_code == 400 and "application/sdp" in r.json()["error"]["message"]
        r = await http.get(url, headers={"Authorization": "Bearer sk"})
        assert r.status_code == 405
    secret = await sdk(server).realtime.client_secrets.create(
        session={"type": "transcription"})
    async with httpx.AsyncClient() as http:
        r = await http.post(url, content=offer, headers={
            "Content-Type": "application/sdp", "Authorization": f"Bearer {secret.value}"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "session.type"
    with pytest.raises(openai.BadRequestError) as info:
        await sdk(server).realtime.calls.create(sdp=offer, session={
            "type": "realtime", "turn_detection": {"type": "server_vad"}})
    assert info.value.code == "unknown_parameter"
    assert server.calls == {}


async def test_cors_lets_loopback_pages_dial_and_read_the_location(server):
    url = calls_url(server)
    async with httpx.AsyncClient() as http:
        pre = await http.options(url, headers={
            "Origin": "http://localhost:8888", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "http://localhost:8888"
        assert "Authorization" in pre.headers["access-control-allow-headers"]
        assert pre.headers["access-control-expose-headers"] == "Location"
        foreign = await http.options(url, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert "access-control-allow-origin" not in foreign.headers


async def test_stopping_the_server_ends_live_calls(caller):
    srv = await LocalServer().start()
    try:
        await sdk_dial(srv, caller)
        await caller.wait_for("session.created")
        assert len(srv.calls) == 1
    finally:
        await srv.stop()
    assert srv.calls == {} and not srv.sessions
    for _ in range(50):
        if caller.pc.connectionState == "closed":
            break
        await asyncio.sleep(0.1)
    assert caller.pc.connectionState == "closed"


def test_the_caller_mic_is_silent_between_utterances():
    """(The fixture itself: a mic that stops sending would starve server VAD of silence.)"""
    from webrtc_fixtures import FRAME, Microphone

    async def go() -> list[np.ndarray]:
        mic = Microphone()
        mic.say(Audio(np.full(FRAME + 10, 1000, np.int16), 48_000))
        return [(await mic.recv()).to_ndarray() for _ in range(3)]

    frames = asyncio.run(go())
    assert [int(np.abs(f).max()) for f in frames] == [1000, 1000, 0]
