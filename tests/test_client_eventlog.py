"""The event log: audio kept aside and referenced, JSONL export/import, replay."""

from __future__ import annotations

import base64
import time

import pytest

from realtime_nb.client import EventLog, RealtimeError
from realtime_nb.client.testing import tone_pcm16


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_append_audio_is_stored_once_and_referenced() -> None:
    log = EventLog()
    audio = tone_pcm16(100)
    ev = {"type": "input_audio_buffer.append", "event_id": "e1", "audio": b64(audio)}
    entry = log.add_event("client", ev)
    assert entry.event["audio"] == f"<audio 4800 bytes #{entry.audio[0]}>"
    assert ev["audio"] == b64(audio), "the original event must not be modified"
    assert log.audio_of(entry) == audio
    assert log.full(entry) == ev


def test_output_audio_delta_and_item_audio_are_elided() -> None:
    log = EventLog()
    audio = tone_pcm16(20)
    delta = log.add_event("server", {"type": "response.output_audio.delta", "item_id": "i",
                                     "delta": b64(audio)})
    item = log.add_event("client", {"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "x"},
            {"type": "input_audio", "audio": b64(audio)}]}})
    assert delta.event["delta"].startswith("<audio 960 bytes #")
    assert item.event["item"]["content"][1]["audio"].startswith("<audio 960 bytes #")
    assert item.event["item"]["content"][0] == {"type": "input_text", "text": "x"}
    assert log.full(item)["item"]["content"][1]["audio"] == b64(audio)
    assert log.audio.nbytes == 2 * len(audio)


def test_events_without_audio_are_kept_as_they_are() -> None:
    log = EventLog()
    ev = {"type": "response.done", "response": {"id": "r"}}
    assert log.add_event("server", ev).event is ev


def test_refused_events_carry_their_error() -> None:
    log = EventLog()
    err = RealtimeError("unknown_parameter", "Unknown parameter: 'x'.", source="client")
    entry = log.add_event("client", {"type": "session.update", "x": 1}, refused=err)
    assert log.refused() == [entry] and entry.refused is err


def test_jsonl_round_trip_with_audio(tmp_path) -> None:
    log = EventLog()
    log.add_event("client", {"type": "input_audio_buffer.append", "audio": b64(tone_pcm16(50))})
    log.marker("realtime_nb.reconnected", session_id="sess_2")
    log.add_event("client", {"type": "input_audio_buffer.commit"},
                  refused=RealtimeError("input_audio_buffer_commit_empty", "m",
                                        source="client", hint="h"))
    log.add_event("server", {"type": "response.output_audio.delta", "delta": b64(b"\1\2" * 9)})
    back = EventLog.from_jsonl(log.to_jsonl(tmp_path / "t.jsonl"))
    assert [(e.seq, e.direction, e.type, e.event, e.note) for e in back] == [
        (e.seq, e.direction, e.type, e.event, e.note) for e in log]
    assert [back.audio_of(e) for e in back] == [log.audio_of(e) for e in log]
    assert back[2].refused.code == "input_audio_buffer_commit_empty"
    assert back[2].refused.hint == "h" and back[2].refused.source == "client"
    assert [e.t for e in back] == pytest.approx([e.t for e in log], abs=1e-5)


def test_jsonl_without_audio_keeps_only_references(tmp_path) -> None:
    log = EventLog()
    log.add_event("client", {"type": "input_audio_buffer.append", "audio": b64(b"\0" * 4800)})
    path = log.to_jsonl(tmp_path / "t.jsonl", audio=False)
    assert len(path.read_text()) < 600
    back = EventLog.from_jsonl(path)
    assert back[0].event["audio"] == "<audio 4800 bytes #0>" and back.audio_of(back[0]) == b""


async def test_replay_instantly_and_with_original_spacing() -> None:
    log = EventLog()
    log.add("server", {"type": "a"}, t=log.t0)
    log.add("server", {"type": "b"}, t=log.t0 + 0.3)
    log.add("client", {"type": "c"}, t=log.t0 + 0.4)
    seen: list[str] = []
    t = time.monotonic()
    assert await log.replay(lambda e: seen.append(e.type)) == 3
    assert time.monotonic() - t < 0.2 and seen == ["a", "b", "c"]
    seen.clear()

    async def collect(e) -> None:
        seen.append(e.type)

    t = time.monotonic()
    assert await log.replay(collect, speed=2.0, directions=("server",)) == 2
    assert seen == ["a", "b"] and time.monotonic() - t >= 0.14


def test_listeners_see_each_new_entry() -> None:
    log = EventLog()
    got = []
    log.listeners.append(got.append)
    entry = log.marker("realtime_nb.connected")
    assert got == [entry] and entry.direction == "local"
