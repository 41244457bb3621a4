"""Faults the network and the server inflict, with a real server process where it matters.

tests/test_client_faults.py covers malformed and unknown server events, slow servers, dropped
sockets (scripted fake server), expiry and automatic reconnects. Here: the local server
*process* is killed with SIGKILL in the middle of a spoken answer and started again on the same
port; a socket dies in the middle of a microphone-paced ``send_audio``. The Session must report
the fault, keep every event and every byte of audio it logged (also through a JSONL export and
import), refuse nothing that is still deliverable, and recover on ``reconnect()``: the config
restored, the queued events delivered in order.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from reliability_fixtures import ServerProcess, until

from realtime_nb import RealtimeError, Session
from realtime_nb.client.eventlog import EventLog
from realtime_nb.client.testing import FakeRealtimeServer, tone_pcm16


@pytest.fixture
def server_process() -> Iterator[list[ServerProcess]]:
    """The processes a test starts (all killed at the end, whatever happened)."""
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        proc.kill()


LONG_TEXT = " ".join(f"This is sentence number {i} of a long answer." for i in range(40))


async def test_a_server_killed_mid_answer_loses_nothing_and_a_reconnect_recovers(
    server_process: list[ServerProcess], tmp_path: Path
) -> None:
    first = ServerProcess()
    server_process.append(first)
    s = Session(url=first.url)
    await s.connect()
    await s.update(instructions="Keep this.", turn_detection=None)
    recording = tone_pcm16(500, freq=300)
    await s.append(recording)
    committed = await s.commit(wait=True)
    user_item = committed["item_id"]
    await s.create_item(text=LONG_TEXT)
    await s.create_response(conversation="none", input=[
        {"type": "message", "role": "user", "content": [{"type": "input_text",
                                                         "text": LONG_TEXT}]}])
    await s.wait_for("response.output_audio.delta", timeout=30)
    first.kill()
    await until(lambda: s.state == "disconnected", 10, "the drop reported")

    assert s.last_error is not None and s.last_error.code == "connection_closed"
    assert s.last_error.source == "connection" and not s.last_error.fatal
    before = list(s.events)
    deltas = s.events.of_type("response.output_audio.delta")
    assistant = s.mirror.all_items[deltas[0].event["item_id"]]
    heard = b"".join(s.events.audio_of(e) for e in deltas)
    assert heard and assistant.audio_bytes == heard
    assert s.item_audio(user_item).to_pcm16() == recording
    rid = deltas[0].event["response_id"]
    finished = any(e.event["response"]["id"] == rid for e in s.events.of_type("response.done"))

    with pytest.raises(RealtimeError) as info:  # asked too early: the server is still down
        await s.reconnect(timeout=5)
    assert info.value.code == "connect_failed" and s.state == "disconnected"
    queued_audio = tone_pcm16(300, freq=500)
    await s.append(queued_audio)
    assert [e["type"] for e in s.pending] == ["input_audio_buffer.append"]

    second = ServerProcess(port=first.port)
    server_process.append(second)
    await s.reconnect()
    assert s.state == "connected" and s.pending == []
    assert s.responses[rid].status == ("completed" if finished else "incomplete")
    await until(lambda: s.config is not None and s.config.get("instructions") == "Keep this.",
                10, "the config restored")
    assert s.config["audio"]["input"]["turn_detection"] is None
    new_item = (await s.commit(wait=True))["item_id"]
    assert s.item_audio(new_item).to_pcm16() == queued_audio, "the queued audio was delivered"
    rs = await s.say("Still there?", output_modalities=["text"])
    assert rs.text == 'You said: "Still there?".'

    assert list(s.events)[: len(before)] == before, "nothing logged before the kill was lost"
    assert s.item_audio(user_item).to_pcm16() == recording
    assert assistant.audio_bytes == heard
    markers = [e.type for e in s.events if e.direction == "local"]
    assert markers.index("realtime_nb.disconnected") < markers.index("realtime_nb.reconnected")
    await s.close()

    back = EventLog.from_jsonl(s.events.to_jsonl(tmp_path / "trace.jsonl"))
    assert [(e.direction, e.type, e.event) for e in back] == [
        (e.direction, e.type, e.event) for e in s.events]
    for old, new in zip(s.events, back, strict=True):
        if old.type in ("input_audio_buffer.append", "response.output_audio.delta"):
            assert back.audio_of(new) == s.events.audio_of(old)


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(vad=False) as server:
        yield server


def appends(fake: FakeRealtimeServer) -> list[bytes]:
    return [base64.b64decode(e["audio"]) for e in fake.received
            if e["type"] == "input_audio_buffer.append"]


async def test_a_drop_during_a_paced_send_audio_loses_no_chunk(fake: FakeRealtimeServer) -> None:
    """3 s of audio paced like a microphone; the socket dies after about 1 s. send_audio goes on
    (the rest is queued) and the log holds all 30 chunks in order. The first server got a
    prefix of them; after reconnect() the new server gets every queued chunk, in order. Only a
    chunk written into the dead socket before the drop was noticed can miss both servers (the
    protocol has no acknowledgements); it is still in the log, marked as sent, not queued."""
    port = fake.port
    s = Session(url=fake.url)
    await s.connect()
    await s.update(turn_detection=None)
    pcm = tone_pcm16(3000)
    sending = asyncio.ensure_future(s.send_audio(pcm, realtime=True))
    await asyncio.sleep(1.0)
    await fake.drop()
    async with asyncio.timeout(10):
        sent = await sending
    assert sent.chunks == 30 and s.state == "disconnected"
    queued = len(s.pending)
    got_first = appends(fake)
    await fake.stop()
    async with FakeRealtimeServer(port=port, vad=False) as fake2:
        await s.reconnect()
        await until(lambda: len(appends(fake2)) == queued, 10, "the queued chunks delivered")
        await s.clear(wait=True)  # a round trip: nothing else is on its way
        got_second = appends(fake2)
    entries = s.events.of_type("input_audio_buffer.append")
    logged = [s.events.audio_of(e) for e in entries]
    assert b"".join(logged) == pcm
    assert 3 <= len(got_first) <= 20 and got_first == logged[: len(got_first)]
    assert got_second == logged[len(logged) - queued:]
    assert [e.note for e in entries[len(logged) - queued:]] == ["queued"] * queued
    in_flight = len(logged) - queued - len(got_first)
    assert 0 <= in_flight <= 1, f"{in_flight} chunks written to the dead socket"
    await s.close()


async def test_append_and_commit_while_disconnected_are_both_queued(
    fake: FakeRealtimeServer,
) -> None:
    """Events sent while the socket is down are queued and sent in order after reconnect (the
    Session docstring): 300 ms appended then committed must become one item holding them."""
    port = fake.port
    s = Session(url=fake.url)
    await s.connect()
    await s.update(turn_detection=None)
    await fake.drop()
    await until(lambda: s.state == "disconnected")
    audio = tone_pcm16(300)
    await s.append(audio)
    await s.commit()
    await fake.stop()
    async with FakeRealtimeServer(port=port, vad=False):
        await s.reconnect()
        ev = await s.wait_for("input_audio_buffer.committed", timeout=5)
        assert s.item_audio(ev["item_id"]).to_pcm16() == audio
    await s.close()

