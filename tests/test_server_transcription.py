"""Transcription detail and noise reduction on the local server, judged by the official SDK.

Pins down: ``include: ["item.input_audio_transcription.logprobs"]`` gives token logprobs on the
delta and completed events (parsed by the SDK's ``RealtimeServerEvent`` adapter, joining to the
transcript, all ≤ 0) in realtime and transcription sessions, and none without it; ``language``
and ``prompt`` reach Whisper (a non-English language with the English-only model fails with a
clear event); the server reports which engine runs each model name; ``noise_reduction`` filters
appended audio before VAD and transcription (turns in heavy noise end sooner, the filtered audio
is in ``conversation.item.retrieve``), and ``null`` turns it off.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from engine_fixtures import SENTENCES, espeak_speech
from test_server_sdk import ADAPTER, client_for, collect, send_audio

from realtime_nb.server import LocalServer
from realtime_nb.server.__main__ import engine_lines

LOGPROBS = "item.input_audio_transcription.logprobs"
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


@pytest.fixture
async def server():
    async with LocalServer() as srv:
        yield srv


def pcm_of(text: str, voice: str = "en-us") -> bytes:
    return espeak_speech(text, voice=voice).resample(24_000).samples.astype("<i2").tobytes()


async def transcribe_once(server: LocalServer, pcm: bytes, session: dict) -> list[dict]:
    """One manual-commit turn in a transcription session; the events up to the transcript."""
    async with client_for(server).realtime.connect(extra_query={"intent": "transcription"}) as c:
        await collect(c, "session.created")
        await c.session.update(session={"type": "transcription", **session})
        await collect(c, "session.updated")
        await send_audio(c, pcm)
        await c.input_audio_buffer.commit()
        return await collect(c, COMPLETED)


def check_logprobs(events: list[dict]) -> str:
    """The logprobs of the delta and completed events, parsed by the SDK; returns the text."""
    deltas = [ADAPTER.validate_python(e) for e in events if e["type"] == DELTA]
    done = ADAPTER.validate_python(next(e for e in events if e["type"] == COMPLETED))
    assert done.transcript and done.logprobs
    assert "".join(lp.token for lp in done.logprobs).strip() == done.transcript
    assert all(lp.logprob <= 0 for lp in done.logprobs)
    assert all(bytes(lp.bytes).decode() == lp.token for lp in done.logprobs)
    assert deltas and all(d.logprobs for d in deltas)
    assert [lp for d in deltas for lp in d.logprobs] == done.logprobs
    for d in deltas:
        assert "".join(lp.token for lp in d.logprobs).strip() == d.delta.strip()
    return done.transcript


async def test_realtime_session_with_include_gets_token_logprobs(server, speech_pcm):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.session.update(session={"type": "realtime", "include": [LOGPROBS],
                                           "audio": {"input": {
                                               "transcription": {"model": "whisper-1"},
                                               "turn_detection": {"type": "server_vad",
                                                                  "silence_duration_ms": 700}}}})
        await send_audio(conn, speech_pcm + b"\0" * 48_000)
        events = await collect(conn, COMPLETED)
    assert "paris" in check_logprobs(events).lower()


async def test_transcription_session_with_include_gets_token_logprobs(server, speech_pcm):
    events = await transcribe_once(server, speech_pcm, {
        "include": [LOGPROBS], "audio": {"input": {
            "transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": None}}})
    assert "weather" in check_logprobs(events).lower()


async def test_no_logprobs_without_include(server, speech_pcm):
    events = await transcribe_once(server, speech_pcm, {"audio": {"input": {
        "transcription": {"model": "gpt-4o-mini-transcribe"}, "turn_detection": None}}})
    assert not any("logprobs" in e for e in events if e["type"] in (DELTA, COMPLETED))
    assert ADAPTER.validate_python(events[-1]).logprobs is None


async def test_prompt_reaches_whisper_and_steers_the_spelling(server):
    pcm = pcm_of("I talked to Sean yesterday.", voice="en")
    cfg = {"model": "whisper-1"}
    plain = await transcribe_once(server, pcm, {"audio": {"input": {
        "transcription": cfg, "turn_detection": None}}})
    steered = await transcribe_once(server, pcm, {"audio": {"input": {
        "transcription": {**cfg, "prompt": "Shaun"}, "turn_detection": None}}})
    assert "Sean" in plain[-1]["transcript"] and "Shaun" in steered[-1]["transcript"]


async def test_english_language_is_used_and_another_fails_with_a_clear_message(server, speech_pcm):
    ok = await transcribe_once(server, speech_pcm, {"audio": {"input": {
        "transcription": {"model": "whisper-1", "language": "en"}, "turn_detection": None}}})
    assert "paris" in ok[-1]["transcript"].lower()
    async with client_for(server).realtime.connect(extra_query={"intent": "transcription"}) as c:
        await collect(c, "session.created")
        await c.session.update(session={"type": "transcription", "audio": {"input": {
            "transcription": {"model": "whisper-1", "language": "fr"}, "turn_detection": None}}})
        await send_audio(c, speech_pcm)
        await c.input_audio_buffer.commit()
        events = await collect(c, "conversation.item.input_audio_transcription.failed")
    failed = ADAPTER.validate_python(events[-1])
    assert failed.error.code == "unsupported_language"
    assert "English-only" in failed.error.message and "'fr'" in failed.error.message


def test_the_server_says_which_engine_runs_each_transcription_model():
    server = LocalServer()
    table = server.transcription_engines
    assert table["gpt-4o-transcribe-diarize"] == table["whisper-1"]
    assert "Whisper tiny.en" in table["whisper-1"]
    banner = "\n".join(engine_lines(server))
    assert "gpt-4o-transcribe-diarize" in banner and "pocketsphinx ->" in banner
    assert "noise_reduction: speex" in banner


# ---------------------------------------------------------------------- noise reduction
def noisy(text: str, snr_db: float, seed: int, kind: str = "white",
          voice: str = "en-us") -> tuple[bytes, float]:
    """``text`` (espeak-ng) in white or pink noise at ``snr_db`` (1 s of noise before, 1.5 s
    after); returns the PCM16 24 kHz bytes and where the speech ends, in ms."""
    speech = espeak_speech(text, voice=voice).resample(24_000).samples.astype(np.float64)
    end_ms = (24_000 + np.flatnonzero(np.abs(speech) > 300)[-1]) / 24
    clean = np.concatenate([np.zeros(24_000), speech, np.zeros(36_000)])
    rng = np.random.default_rng(seed)
    nz = rng.normal(0, 1, len(clean))
    if kind == "pink":
        spectrum = np.fft.rfft(nz)
        k = np.arange(len(spectrum))
        k[0] = 1
        nz = np.fft.irfft(spectrum / np.sqrt(k), len(clean))
    power = np.mean(speech[speech != 0] ** 2)
    nz *= np.sqrt(power / np.mean(nz ** 2) / 10 ** (snr_db / 10))
    return np.clip(np.round(clean + nz), -32768, 32767).astype("<i2").tobytes(), end_ms


async def turn_ends(server: LocalServer, pcm: bytes, nr: dict | None) -> list[int]:
    """``audio_end_ms`` of every speech_stopped in a server_vad transcription session."""
    async with client_for(server).realtime.connect(extra_query={"intent": "transcription"}) as c:
        await collect(c, "session.created")
        await c.session.update(session={"type": "transcription", "audio": {"input": {
            "transcription": None, "noise_reduction": nr,
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}})
        await collect(c, "session.updated")
        await send_audio(c, pcm)
        await c.input_audio_buffer.clear()  # answered after everything appended was decided
        events = await collect(c, "input_audio_buffer.cleared")
    return [e["audio_end_ms"] for e in events if e["type"] == "input_audio_buffer.speech_stopped"]


async def test_noise_reduction_ends_turns_in_very_heavy_noise_sooner(server):
    """In pink noise at -5 dB SNR Silero keeps hearing speech after the last word, so turns end
    late; with ``noise_reduction`` the last turn of each sentence ends (``speech_stopped``
    ``audio_end_ms``, the filter's constant 69 ms delay included) sooner after the speech does.
    Ten sentences, mean lateness; a turn still open when the audio (1.5 s of noise after the
    speech) runs out counts as ending there, a bound that favours the unfiltered side. (At 0 dB
    and above the filter's delay makes ends ~50 ms later instead: see the README's "Noise
    reduction" table.)"""
    late: dict[str, list[float]] = {"on": [], "off": []}
    turns = {"on": 0, "off": 0}
    for k, text in enumerate(SENTENCES[:10]):
        pcm, end_ms = noisy(text, -5.0, seed=k, kind="pink", voice=("en-us", "en")[k % 2])
        for mode, nr in (("on", {"type": "near_field"}), ("off", None)):
            ends = await turn_ends(server, pcm, nr)
            turns[mode] += len(ends)
            last = ends[-1] if ends and ends[-1] > end_ms else len(pcm) / 48
            late[mode].append(last - end_ms)
    on, off = np.mean(late["on"]), np.mean(late["off"])
    print(f"turn end after speech end, pink noise -5 dB: {off:.0f} ms without, {on:.0f} ms with; "
          f"turns {turns}")
    assert on < off - 150, late


async def test_retrieve_returns_the_filtered_audio_and_null_turns_the_filter_off(server):
    pcm, _ = noisy(SENTENCES[2], 10.0, seed=7)
    retrieved = {}
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        for mode, nr in (("on", {"type": "far_field", "strength": 1.0}), ("off", None)):
            await conn.session.update(session={"type": "realtime", "audio": {"input": {
                "turn_detection": None, "noise_reduction": nr}}})
            updated = await collect(conn, "session.updated")
            assert updated[-1]["session"]["audio"]["input"]["noise_reduction"] == nr
            await send_audio(conn, pcm)
            await conn.input_audio_buffer.commit()
            item_id = (await collect(conn, "input_audio_buffer.committed"))[-1]["item_id"]
            await conn.conversation.item.retrieve(item_id=item_id)
            got = (await collect(conn, "conversation.item.retrieved"))[-1]["item"]
            retrieved[mode] = base64.b64decode(got["content"][0]["audio"])
    assert retrieved["off"] == pcm  # unfiltered: exactly what was appended
    assert len(retrieved["on"]) == len(pcm) and retrieved["on"] != pcm
    sent = np.frombuffer(pcm, "<i2").astype(float)
    got_on = np.frombuffer(retrieved["on"], "<i2").astype(float)
    tail = slice(len(sent) - 9000, len(sent) - 2000)  # the trailing noise after the sentence
    assert np.sqrt(np.mean(got_on[tail] ** 2)) < np.sqrt(np.mean(sent[tail] ** 2)) / 4


def test_keywords_join_the_prompt_and_a_single_languages_entry_is_the_language():
    """What reaches the engine for the gpt-transcribe options (no model needed to check it)."""
    from realtime_nb.server.jobs import _asr_options

    cfg = {"model": "gpt-transcribe", "prompt": "Names:", "keywords": ["Shaun", "Kaitlyn"],
           "languages": ["en"], "delay": "low"}
    assert _asr_options({"config": cfg, "logprobs": True}) == (
        "gpt-transcribe", "en", "Names: Shaun, Kaitlyn", True)
    assert _asr_options({"config": {"model": "whisper-1", "languages": ["en", "fr"]}}) == (
        "whisper-1", None, None, False)
