"""The flight recorder: every Session writes its events and audio to a folder as they happen;
the folder reads back (also after SIGKILL mid-turn) into an EventLog that replays, explains and
draws like the live one; keys never reach it; old folders can be listed and removed."""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from realtime_nb import Session, lab
from realtime_nb.audio import Audio, decode
from realtime_nb.client import EventLog
from realtime_nb.client.recorder import (
    FlightRecorder,
    read_recording,
    recordings,
    remove_recordings,
)
from realtime_nb.server import LocalServer

HERE = Path(__file__).parent


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("REALTIME_NB_RECORD_DIR", str(tmp_path / "rec"))
    return tmp_path / "rec"


async def _two_turns(session: Session, speech_wav: Path) -> None:
    await session.connect()
    await session.update(instructions="Be brief.")
    await session.say("Hello there, recorder.")
    await session.send_audio(Audio.decode(speech_wav))
    await session.send_audio(Audio(np.random.default_rng(1).normal(0, 30, 36_000)
                                   .astype(np.int16), 24_000))
    await session.wait_for("response.done", timeout=60)


def _same(a: EventLog, b: EventLog) -> None:
    assert [(e.seq, e.direction, e.type) for e in a] == [(e.seq, e.direction, e.type) for e in b]
    assert [round(e.t, 6) for e in a] == [round(e.t, 6) for e in b]
    assert [json.dumps(e.event, sort_keys=True, default=str) for e in a] == [
        json.dumps(e.event, sort_keys=True, default=str) for e in b]
    assert [a.audio_of(e) for e in a] == [b.audio_of(e) for e in b]


async def test_a_session_records_by_default_and_reads_back_whole(root, speech_wav):
    session = Session(backend="local")
    assert session.recording_folder is None  # nothing before the first connect
    try:
        await _two_turns(session, speech_wav)
        folder = session.recording_folder
        assert folder is not None and folder.parent == root
        assert session.recorder.flush(10)
        live = read_recording(folder)  # readable while the session runs
        assert live.recovered["closed"] is False and len(live) > 10
    finally:
        await session.close()
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["config.jsonl", "events.jsonl", "input.wav", "meta.json", "output.wav"]
    back = EventLog.from_folder(folder)
    _same(session.events, back)
    assert back.recovered == {"events": len(session.events), "audio_bytes":
                              session.events.audio.nbytes, "closed": True,
                              "damaged_lines": 0, "folder": str(folder)}
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["backend"] == "local" and meta["closed_at"] and meta["session_ids"]
    assert meta["events"] == len(session.events)
    configs = [json.loads(line) for line in (folder / "config.jsonl").read_text().splitlines()]
    assert [c["type"] for c in configs][:2] == ["session.created", "session.updated"]
    assert configs[1]["session"]["instructions"] == "Be brief."
    # the WAV files are ordinary files with correct headers once closed
    sent = b"".join(session.events.audio_of(e) for e in session.events
                    if e.type == "input_audio_buffer.append")
    heard = b"".join(session.events.audio_of(e) for e in session.events
                     if e.type == "response.output_audio.delta")
    for name, pcm in (("input.wav", sent), ("output.wav", heard)):
        raw = (folder / name).read_bytes()
        assert struct.unpack("<I", raw[40:44])[0] == len(pcm) == len(raw) - 44
        audio = decode(folder / name)
        assert audio.sample_rate == 24_000 and audio.to_pcm16() == pcm


async def test_replay_explain_and_timeline_from_a_folder(root, speech_wav):
    from realtime_nb.widgets import Timeline

    session = Session(backend="local")
    try:
        await _two_turns(session, speech_wav)
    finally:
        await session.close()
    folder = session.recording_folder
    seen: list[str] = []
    assert await EventLog.from_folder(folder).replay(lambda e: seen.append(e.type)) == len(
        session.events)
    assert seen == [e.type for e in session.events]
    assert [c.code for c in lab.explain(folder)] == [c.code for c in lab.explain(session)]
    tl = Timeline.from_jsonl(folder)
    assert tl.title == folder.name and len(tl.log) == len(session.events)


async def test_recording_can_be_turned_off_or_put_elsewhere(root, tmp_path, monkeypatch):
    off = Session(backend="local", record=False)
    await off.connect()
    await off.close()
    assert off.recording_folder is None and not root.exists()
    monkeypatch.setenv("REALTIME_NB_RECORD", "off")
    env_off = Session(backend="local")
    await env_off.connect()
    await env_off.close()
    assert env_off.recording_folder is None
    there = Session(backend="local", record=tmp_path / "elsewhere")
    await there.connect()
    await there.close()
    assert there.recording_folder.parent == tmp_path / "elsewhere"


async def test_the_key_never_reaches_the_folder(root, speech_wav):
    key = "sk-test-FLIGHT-RECORDER-SECRET-0123456789"
    async with LocalServer(api_key=key) as server:
        session = Session(url=server.url + "?model=gpt-realtime", api_key=key,
                          headers={"X-Custom-Secret": "hdr-SECRET-value-42"})
        try:
            await _two_turns(session, speech_wav)
        finally:
            await session.close()
    folder = session.recording_folder
    for path in folder.iterdir():
        data = path.read_bytes()
        assert key.encode() not in data and b"hdr-SECRET-value-42" not in data, path.name
        assert b"FLIGHT-RECORDER" not in data
    assert json.loads((folder / "meta.json").read_text())["url"].endswith("/v1/realtime")


def test_g711_audio_gets_its_own_wav(tmp_path):
    log = EventLog()
    formats = {"in": {"type": "audio/pcmu"}}
    rec = FlightRecorder(log, tmp_path / "f", formats=lambda: (formats["in"], "audio/pcm"))
    ulaw = bytes(range(256)) * 10
    log.add_event("client", {"type": "input_audio_buffer.append",
                             "audio": base64.b64encode(ulaw).decode()})
    rec.close()
    raw = (tmp_path / "f" / "input.pcmu.wav").read_bytes()
    tag, channels, rate = struct.unpack("<HHI", raw[20:28])
    assert (tag, channels, rate) == (7, 1, 8000)
    assert read_recording(tmp_path / "f").audio_of(
        read_recording(tmp_path / "f")[0]) == ulaw


def test_a_cut_short_folder_reads_up_to_what_was_written(tmp_path):
    log = EventLog()
    rec = FlightRecorder(log, tmp_path / "f")
    for i in range(20):
        log.add_event("client", {"type": "input_audio_buffer.append",
                                 "audio": base64.b64encode(bytes([i]) * 4800).decode()})
    assert rec.flush(5)
    # what a kill leaves: WAV header sizes not patched, the last event line half written,
    # the last chunk of audio missing
    folder = tmp_path / "f"
    wav = folder / "input.wav"
    wav.write_bytes(wav.read_bytes()[:-4800])
    ev = folder / "events.jsonl"
    ev.write_bytes(ev.read_bytes()[:-30])
    back = read_recording(folder)
    assert back.recovered["damaged_lines"] == 1 and back.recovered["closed"] is False
    assert len(back) == 19
    assert [back.audio_of(e) for e in back] == [bytes([i]) * 4800 for i in range(19)]


@pytest.mark.slow
def test_sigkill_mid_turn_loses_at_most_the_last_second(root, speech_wav, tmp_path):
    """A real kernel stand-in (tests/recorder_child.py) streams speech to the local server; it
    is killed with SIGKILL while a turn is under way. The folder holds every event and every
    audio byte it had logged a second before the kill."""
    env = {**os.environ, "REALTIME_NB_RECORD_DIR": str(root)}
    child = subprocess.Popen([sys.executable, str(HERE / "recorder_child.py"), str(speech_wav)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=env)
    reports: list[dict] = []
    folder = None
    try:
        assert child.stdout is not None
        start = time.time()
        for line in child.stdout:
            rec = json.loads(line)
            if "folder" in rec:
                folder = Path(rec["folder"])
                continue
            reports.append(rec)
            if rec["turn"] and rec["t"] - reports[0]["t"] > 4.0:
                break
            assert time.time() - start < 120, "the child never got into a turn"
        os.kill(child.pid, signal.SIGKILL)
        killed_at = time.time()
    finally:
        child.kill()
        child.wait(10)
    assert folder is not None
    back = EventLog.from_folder(folder)
    before = [r for r in reports if r["t"] <= killed_at - 1.0]
    assert before, "no report a second before the kill"
    assert back.recovered["closed"] is False
    assert len(back) >= before[-1]["events"]
    sent = sum(len(back.audio_of(e)) for e in back if e.type == "input_audio_buffer.append")
    assert sent >= before[-1]["input"]
    assert back.of_type("input_audio_buffer.speech_started")
    assert isinstance(lab.explain(folder), list)
    assert [r.closed for r in recordings(root)] == [False]


def test_recordings_are_listed_and_old_ones_removed(tmp_path):
    roots = tmp_path / "rec"
    made = []
    for _ in range(3):
        from realtime_nb.client.recorder import new_folder

        rec = FlightRecorder(EventLog(), new_folder(roots))
        rec.close()
        made.append(rec.folder)
    (roots / "not-a-session").mkdir()
    listed = recordings(roots)
    assert [r.path for r in listed] == sorted(made) and all(r.closed for r in listed)
    assert oct(roots.stat().st_mode & 0o777) == "0o700"
    assert remove_recordings(roots) == []  # nothing asked, nothing removed
    assert remove_recordings(roots, keep_last=1) == sorted(made)[:2]
    assert remove_recordings(roots, older_than_days=0) == sorted(made)[2:]
    assert recordings(roots) == [] and (roots / "not-a-session").is_dir()


async def test_audio_beyond_the_memory_window_is_read_back_from_the_recording(root, speech_wav):
    """With a tiny audio_memory_mb the event log keeps only recent audio in memory; older
    payloads (and the items' audio, which only refers to them) come back from the files."""
    session = Session(backend="local", audio_memory_mb=0.1, events_in_memory=40)
    try:
        await _two_turns(session, speech_wav)
        await session.send_audio(Audio.decode(speech_wav))
        await session.send_audio(Audio(np.random.default_rng(2).normal(0, 30, 36_000)
                                       .astype(np.int16), 24_000))
        await session.wait_for("response.done", timeout=60)
        assert session.recorder.flush(10)
        await session.send_audio(Audio(np.random.default_rng(3).normal(0, 30, 4800)
                                       .astype(np.int16), 24_000))  # one more put: spills now
        store = session.events.audio
        assert store.spilled > 0 and store.ram_bytes <= 0.1 * 2**20 + 48_000
        assert store.nbytes > 4 * store.ram_bytes
        items = session.items.list()
        user = next(it for it in items if it.role == "user" and it.audio_chunks)
        reply = next(it for it in items if it.role == "assistant" and it.audio_chunks)
        assert store._chunks[user.audio_chunks[0].ref] is None  # its audio has left memory
        assert session.events[0]._event is None  # so has the view of an old event
        assert session.events[0].event["type"] == session.events[0].type == "session.created"
        assert store._chunks[reply.audio_chunks[0].ref] is None
        user_pcm, reply_pcm = user.audio_bytes, reply.audio_bytes  # read back from the files
    finally:
        await session.close()
    back = EventLog.from_folder(session.recording_folder)
    _same(session.events, back)  # every payload still reads whole, wherever it lives
    sent = b"".join(back.audio_of(e) for e in back if e.type == "input_audio_buffer.append")
    heard = b"".join(back.audio_of(e) for e in back if e.type == "response.output_audio.delta")
    assert user_pcm and user_pcm in sent
    assert reply_pcm and reply_pcm in heard


def test_the_store_never_drops_what_the_recorder_has_not_written():
    from realtime_nb.client.eventlog import AudioStore

    store = AudioStore(ram_limit=10)
    for i in range(5):
        store.put(bytes([i]) * 8)
    assert store.spilled == 0 and store.ram_bytes == 40  # nothing located: all kept
    assert [store.get(i) for i in range(5)] == [bytes([i]) * 8 for i in range(5)]
