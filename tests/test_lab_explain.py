"""explain(): "why is my buffer empty?" on traces made with real local-server sessions.

Each trace reproduces one classic mistake end to end (the client sends, the server answers), then
explain() must name that cause — on the live session, on its EventLog round-tripped through
JSONL, and (where the check does not need audio) on plain lists of event dicts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from lab_fixtures import LabSpeech, lab_server, lab_speech  # noqa: F401

from realtime_nb import RealtimeError, Session, lab
from realtime_nb.audio import Audio
from realtime_nb.client import EventLog


@pytest.fixture(scope="module")
def phrase(lab_speech: LabSpeech) -> Audio:  # noqa: F811
    """Phrase A alone with a little silence around it (one VAD turn at 500 ms)."""
    return lab_speech.clean.slice_ms(400, 4600)


async def _vad_session(url: str, phrase: Audio) -> Session:
    s = Session(url=url)
    await s.connect()
    await s.update(turn_detection={"type": "server_vad", "silence_duration_ms": 500,
                                   "create_response": False}, transcription=None)
    await s.send_audio(phrase)
    await s.wait_for("input_audio_buffer.committed", timeout=15)
    return s


async def _append_unchecked_and_commit(session: Session, data: bytes) -> None:
    """Append ``data`` in 9600-byte chunks past the client's own checks (``force``), as a
    careless caller would, then commit: the mistake reaches the server."""
    for i in range(0, len(data), 9600):
        await session.append(data[i:i + 9600], force=True)
    await session.commit(wait=True)


def _roundtrip(session: Session, tmp_path: Path) -> lab.Causes:
    path = session.events.to_jsonl(tmp_path / "trace.jsonl")
    return lab.explain(path)


def _same(a: lab.Causes, b: lab.Causes) -> None:
    assert a.codes == b.codes
    for x, y in zip(a, b, strict=True):
        assert x.message == y.message
        assert [(e.type, e.detail) for e in x.evidence] == [(e.type, e.detail) for e in y.evidence]
        assert [e.t for e in y.evidence] == pytest.approx([e.t for e in x.evidence], abs=1e-5)


async def test_vad_auto_commit_then_commit(lab_server: str, phrase: Audio,  # noqa: F811
                                          tmp_path: Path) -> None:
    s = await _vad_session(lab_server, phrase)
    try:
        with pytest.raises(RealtimeError) as info:
            await s.commit(force=True, wait=True)  # the server's own answer
        assert info.value.code == "input_audio_buffer_commit_empty"
        causes = lab.explain(s)
        assert causes.codes == ["vad_auto_commit"]
        cause = causes[0]
        types = [e.type for e in cause.evidence]
        assert types == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                         "input_audio_buffer.committed", "input_audio_buffer.commit", "error"]
        times = [e.t for e in cause.evidence]
        assert times == sorted(times)
        stopped = s.events.of_type("input_audio_buffer.speech_stopped")[-1].event
        assert f"audio_end_ms={stopped['audio_end_ms']}" in cause.evidence[1].detail
        assert stopped["item_id"] in cause.message
        assert "turn_detection=None" in cause.message  # the fix, from the client's hints
        _same(causes, _roundtrip(s, tmp_path))
    finally:
        await s.close()


async def test_vad_auto_commit_refused_locally(lab_server: str, phrase: Audio) -> None:  # noqa: F811
    """Without force the Session refuses the commit itself; the cause is the same."""
    s = await _vad_session(lab_server, phrase)
    try:
        with pytest.raises(RealtimeError):
            await s.commit()
        causes = lab.explain(s.events)
        assert causes.codes == ["vad_auto_commit"]
        assert "refused locally" in causes[0].evidence[-1].detail
    finally:
        await s.close()


async def test_nothing_appended_then_commit(lab_server: str, tmp_path: Path) -> None:  # noqa: F811
    async with Session(url=lab_server) as s:
        await s.update(turn_detection=None)
        with pytest.raises(RealtimeError):
            await s.commit(force=True, wait=True)
        causes = lab.explain(s)
        assert causes.codes == ["nothing_appended"]
        assert [e.type for e in causes[0].evidence] == [
            "session start", "input_audio_buffer.commit", "error"]
        _same(causes, _roundtrip(s, tmp_path))
        plain = lab.explain([e.event for e in s.events])  # wire events only, no times
        assert plain.codes == ["nothing_appended"]
        assert all(e.t is None for e in plain[0].evidence)


async def test_nothing_appended_after_a_manual_commit(lab_server: str, phrase: Audio) -> None:  # noqa: F811
    async with Session(url=lab_server) as s:
        await s.update(turn_detection=None)
        await s.send_audio(phrase)
        await s.commit(wait=True)
        with pytest.raises(RealtimeError):
            await s.commit(force=True, wait=True)
        causes = lab.explain(s)
        assert causes.codes == ["nothing_appended"]
        assert "manual commit took the buffer" in causes[0].evidence[0].detail


async def test_float32_bytes_appended(lab_server: str, phrase: Audio, tmp_path: Path) -> None:  # noqa: F811
    async with Session(url=lab_server) as s:
        await s.update(turn_detection=None)
        await _append_unchecked_and_commit(s, phrase.to_float32().astype("<f4").tobytes())
        causes = lab.explain(s)
        assert causes.codes == ["float32_audio"]
        assert "float32" in causes[0].message
        assert all(e.type == "input_audio_buffer.append" for e in causes[0].evidence)
        _same(causes, _roundtrip(s, tmp_path))
        wire = lab.explain([s.events.full(e) for e in s.events])  # plain dicts with base64 audio
        assert wire.codes == ["float32_audio"]


async def test_float32_refused_locally_means_nothing_was_appended(
    lab_server: str, phrase: Audio  # noqa: F811
) -> None:
    async with Session(url=lab_server) as s:
        await s.update(turn_detection=None)
        with pytest.raises(RealtimeError):
            await s.append(phrase.to_float32().astype("<f4").tobytes())
        with pytest.raises(RealtimeError):
            await s.commit(force=True, wait=True)
        causes = lab.explain(s)
        assert set(causes.codes) == {"float32_audio", "nothing_appended"}
        nothing = causes[causes.codes.index("nothing_appended")]
        assert "refused locally" in nothing.message


async def test_44k1_pcm_appended_as_24k(lab_server: str, phrase: Audio, tmp_path: Path) -> None:  # noqa: F811
    async with Session(url=lab_server) as s:
        await s.update(turn_detection=None)
        await _append_unchecked_and_commit(s, phrase.resample(44100).to_pcm16())
        causes = lab.explain(s)
        assert causes.codes == ["wrong_sample_rate"]
        assert "slowed down" in causes[0].message
        assert "pitch" in causes[0].evidence[0].detail
        _same(causes, _roundtrip(s, tmp_path))


async def test_live_stream_at_44k1_is_caught_by_its_pacing(lab_server: str) -> None:  # noqa: F811
    """A microphone at 44.1 kHz delivers 1.84x the bytes of 24 kHz audio per second."""
    chunk = (np.random.default_rng(1).normal(0, 200, 4410)).astype("<i2").tobytes()  # 100 ms
    async with Session(url=lab_server) as s:
        await s.update(turn_detection=None)
        t0 = asyncio.get_running_loop().time()
        for i in range(24):
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.1 - asyncio.get_running_loop().time()))
            await s.append(chunk)
        causes = lab.explain(s)
    assert causes.codes == ["wrong_sample_rate"]
    assert "44100 Hz" in causes[0].message
    assert "1.84x real time" in causes[0].evidence[0].detail


async def test_rejected_top_level_turn_detection_update(
    lab_server: str, phrase: Audio, tmp_path: Path  # noqa: F811
) -> None:
    """turn_detection put outside 'session' is rejected; VAD stays on and commits by itself."""
    async with Session(url=lab_server) as s:
        sent = await s.send({"type": "session.update", "session": {"type": "realtime"},
                             "turn_detection": None}, validate=False)
        assert "event_id" not in sent
        err = await s.wait_for("error", timeout=5)
        assert err["error"]["code"] == "unknown_parameter"
        await s.update(transcription=None,
                       turn_detection={"type": "server_vad", "create_response": False,
                                       "silence_duration_ms": 500})
        await s.send_audio(phrase)
        await s.wait_for("input_audio_buffer.committed", timeout=15)
        with pytest.raises(RealtimeError):
            await s.commit(force=True, wait=True)
        causes = lab.explain(s)
        assert causes.codes == ["rejected_update", "vad_auto_commit"]
        rejected = causes[0]
        assert "turn_detection" in rejected.message
        assert "session.audio.input.turn_detection" in rejected.message  # the client's hint
        assert [e.type for e in rejected.evidence] == ["session.update", "error"]
        assert "Unknown parameter" in rejected.evidence[1].detail
        _same(causes, _roundtrip(s, tmp_path))
        as_dicts = lab.explain([e.to_dict() for e in s.events])
        assert as_dicts.codes == causes.codes


async def test_rejected_update_refused_locally(lab_server: str) -> None:  # noqa: F811
    async with Session(url=lab_server) as s:
        with pytest.raises(RealtimeError):
            await s.update(turn_detection="none")
        causes = lab.explain(s)
        assert causes.codes == ["rejected_update"]
        assert causes[0].evidence[-1].type == "refused locally"
        assert "null" in causes[0].message


async def test_a_healthy_session_has_no_cause(lab_server: str, phrase: Audio) -> None:  # noqa: F811
    """Correct audio, VAD committing on its own, no manual commit: nothing to explain."""
    s = await _vad_session(lab_server, phrase)
    try:
        causes = lab.explain(s)
        assert causes == []
        assert "No known cause" in str(causes)
    finally:
        await s.close()


async def test_no_speech_detected_with_vad_on(lab_server: str) -> None:  # noqa: F811
    async with Session(url=lab_server) as s:
        await s.update(turn_detection={"type": "server_vad", "create_response": False})
        hiss = np.random.default_rng(2).normal(0, 30, 36000).astype(np.int16)  # -60 dBFS
        await s.send_audio(Audio(hiss, 24000))
        with pytest.raises(RealtimeError):
            await s.commit(force=True, wait=True)
        assert lab.explain(s).codes == ["no_speech_detected"]


def test_explain_takes_only_event_collections() -> None:
    with pytest.raises(TypeError):
        lab.explain(42)
    assert lab.explain(EventLog()) == []


def test_reconnect_starts_a_new_empty_buffer() -> None:
    """Plain event dicts (as from another tool's trace): audio appended before a reconnect
    is gone, so the commit after it finds nothing."""
    pcm = "AAAA" * 1200  # 3600 bytes of base64 zeros
    session = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    events = [
        {"type": "session.created", "session": session, "t": 0.0},
        {"type": "input_audio_buffer.append", "audio": pcm, "event_id": "a1", "t": 0.1},
        {"type": "session.created", "session": session, "t": 2.0},
        {"type": "input_audio_buffer.commit", "event_id": "c1", "t": 2.1},
        {"type": "error", "t": 2.2, "error": {
            "type": "invalid_request_error", "code": "input_audio_buffer_commit_empty",
            "message": "buffer too small", "param": None, "event_id": "c1"}},
    ]
    causes = lab.explain(events)
    assert causes.codes == ["nothing_appended"]
    assert "re-opened" in causes[0].message
    assert [e.t for e in causes[0].evidence] == [2.0, 2.1, 2.2]
    without = lab.explain([events[0], events[1], *events[3:]])
    assert without.codes == ["too_little_audio"]  # 37.5 ms appended, manual mode
