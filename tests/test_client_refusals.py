"""Classic mistakes are refused before they reach the wire, exactly as the service would refuse
them (same code, message and param — checked against the server's own state machine), plus a
hint with the fix. No socket is needed: a refused event is never queued nor sent.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from realtime_nb import RealtimeError, Session
from realtime_nb.client import hint_for
from realtime_nb.client.hints import explain_commit_empty
from realtime_nb.client.testing import tone_pcm16
from realtime_nb.protocol import SessionCore


def service_error(event: dict) -> dict:
    """What the service answers to ``event`` (via the server's state machine)."""
    core = SessionCore()
    core.start()
    core.drain()
    core.handle(event)
    errors = [e["error"] for e in core.drain() if e["type"] == "error"]
    assert errors, f"the server accepted {event}"
    return errors[0]


def update_event(**session) -> dict:
    return {"type": "session.update", "event_id": "evt_1", "session": {"type": "realtime",
                                                                       **session}}


async def refused(event: dict) -> RealtimeError:
    s = Session(backend="local")
    with pytest.raises(RealtimeError) as info:
        await s.send(event)
    assert s.pending == [], "a refused event must not be queued"
    assert s.events[-1].refused is info.value
    return info.value


CLASSIC = [
    # (event, words the hint must contain)
    ({"type": "session.update", "event_id": "e", "turn_detection": None,
      "session": {"type": "realtime"}}, ["session.audio.input.turn_detection", "outside"]),
    (update_event(turn_detection={"type": "server_vad"}), ["session.audio.input.turn_detection"]),
    (update_event(voice="marin"), ["session.audio.output.voice"]),
    (update_event(input_audio_format="pcm16"), ["session.audio.input.format",
                                                 "'type': 'audio/pcm', 'rate': 24000"]),
    (update_event(output_audio_format="g711_ulaw"), ["session.audio.output.format",
                                                     "audio/pcmu"]),
    (update_event(input_audio_transcription={"model": "whisper-1"}),
     ["session.audio.input.transcription"]),
    (update_event(input_audio_noise_reduction={"type": "near_field"}),
     ["session.audio.input.noise_reduction"]),
    (update_event(modalities=["text"]), ["session.output_modalities"]),
    (update_event(temperature=0.8), ["removed"]),
    (update_event(max_response_output_tokens=100), ["session.max_output_tokens"]),
    (update_event(speed=1.2), ["session.audio.output.speed"]),
    (update_event(audio={"input": {"turn_detection": "None"}}), ["null", "Python None"]),
    (update_event(audio={"input": {"turn_detection": "none"}}), ["null", "Python None"]),
    (update_event(audio={"input": {"turn_detection": {"type": "none"}}}), ["Python None"]),
    (update_event(audio={"input": {"format": "pcm16"}}), ["'type': 'audio/pcm', 'rate': 24000"]),
    (update_event(audio={"input": {"format": {"type": "audio/pcm", "rate": 16000}}}),
     ["24000", "send_audio", "16000"]),
    (update_event(audio={"input": {"format": {"type": "audio/pcm", "rate": 44100}}}),
     ["24000", "send_audio", "44100"]),
    (update_event(audio={"input": {"format": {"type": "audio/pcm", "rate": 48000}}}),
     ["24000", "send_audio"]),
    (update_event(audio={"input": {"turn_detection": {"type": "semantic_vad",
                                                      "threshold": 0.6}}}), ["server_vad"]),
    (update_event(output_modalities=["audio", "text"]), ["exactly one"]),
    ({"type": "session.update", "event_id": "e", "session": {"instructions": "x"}},
     ["session.type"]),
    ({"type": "response.create", "event_id": "e", "response": {"modalities": ["text"]}},
     ["response.output_modalities"]),
    ({"type": "response.create", "event_id": "e", "response": {"voice": "ash"}},
     ["response.audio.output.voice"]),
    ({"type": "conversation.item.create", "event_id": "e", "item": {
        "type": "message", "role": "user", "content": [{"type": "text", "text": "hi"}]}},
     ["input_text"]),
    ({"type": "conversation.item.create", "event_id": "e", "item": {
        "type": "message", "role": "assistant", "content": [{"type": "text", "text": "hi"}]}},
     ["output_text"]),
    ({"type": "response.audio.delta", "event_id": "e"}, ["server sends"]),
    ({"type": "transcription_session.update", "event_id": "e", "session": {}},
     ["session.update", "transcription"]),
]


@pytest.mark.parametrize(("event", "words"), CLASSIC, ids=lambda v: str(v)[:60])
async def test_classic_mistake_is_refused_like_the_service_with_a_hint(event, words) -> None:
    err = await refused(event)
    expected = service_error(event)
    assert (err.code, err.message, err.param) == (expected["code"], expected["message"],
                                                  expected["param"])
    assert err.source == "client" and not err.fatal
    assert err.event_id == event["event_id"]
    for w in words:
        assert w in err.hint, f"{w!r} missing from hint: {err.hint}"


async def test_update_keyword_shortcuts_build_the_nested_ga_event() -> None:
    s = Session(backend="local")
    ev = await s.update(turn_detection=None, voice="marin", instructions="Be brief.", wait=False)
    assert ev["session"] == {"type": "realtime", "instructions": "Be brief.", "audio": {
        "input": {"turn_detection": None}, "output": {"voice": "marin"}}}
    assert s.pending[-1]["session"] == ev["session"]


async def test_update_fills_session_type_for_a_typed_config() -> None:
    from realtime_nb.protocol import AudioConfig, AudioInput, SessionConfig

    s = Session(backend="local")
    ev = await s.update(SessionConfig(audio=AudioConfig(input=AudioInput(turn_detection=None))),
                        wait=False)
    assert ev["session"] == {"type": "realtime", "audio": {"input": {"turn_detection": None}}}


async def test_update_with_a_flat_dict_is_refused_with_the_ga_path() -> None:
    s = Session(backend="local")
    with pytest.raises(RealtimeError) as info:
        await s.update({"turn_detection": None})
    assert info.value.param == "session.turn_detection"
    assert "session.audio.input.turn_detection" in info.value.hint


async def test_update_keyword_for_a_removed_field_is_refused() -> None:
    s = Session(backend="local")
    with pytest.raises(RealtimeError) as info:
        await s.update(temperature=0.7)
    assert info.value.message == "Unknown parameter: 'session.temperature'."


async def test_float32_bytes_appended_as_pcm16_are_refused() -> None:
    s = Session(backend="local")
    samples = np.sin(np.arange(4800) / 10).astype("<f4") * 0.5
    with pytest.raises(RealtimeError) as info:
        await s.append(samples.tobytes())
    err = info.value
    assert (err.code, err.source, err.param) == ("float32_audio", "client", "audio")
    assert "float32" in err.message and "send_audio" in err.hint
    assert s.pending == [] and s.events.refused()[-1].refused is err


async def test_forced_float32_append_is_sent_anyway() -> None:
    s = Session(backend="local")
    samples = np.sin(np.arange(4800) / 10).astype("<f4") * 0.5
    await s.append(samples.tobytes(), force=True)
    assert s.pending[-1]["type"] == "input_audio_buffer.append"


async def test_send_audio_refuses_float32_bytes_and_converts_a_float32_array() -> None:
    s = Session(backend="local")
    samples = (np.sin(np.arange(24000) / 10) * 0.5).astype("<f4")
    with pytest.raises(RealtimeError) as info:
        await s.send_audio(samples.tobytes())
    assert info.value.code == "float32_audio"
    sent = await s.send_audio(samples, sample_rate=24000)
    assert sent.duration_ms == pytest.approx(1000) and sent.chunks == 10


async def test_send_audio_warns_about_silence_and_records_the_finding() -> None:
    s = Session(backend="local")
    with pytest.warns(Warning, match="silent"):
        await s.send_audio(b"\0\0" * 24000)
    assert [f.code for f in s.warnings] == ["silent"]


async def test_send_audio_resamples_to_the_session_rate() -> None:
    s = Session(backend="local")
    sent = await s.send_audio(np.zeros(16000, np.int16) + 1000, sample_rate=16000)
    assert sent.nbytes == 48000 and sent.format == {"type": "audio/pcm", "rate": 24000}


async def test_send_audio_reports_g711_durations_at_eight_bytes_per_ms() -> None:
    """The duration comes from the format's one ``bytes_per_ms``, not from a PCM16 guess."""
    from realtime_nb.client.testing import FakeRealtimeServer

    async with FakeRealtimeServer() as fake, Session(url=fake.url, record=False) as s:
        await s.update(input_format={"type": "audio/pcmu"}, turn_detection=None)
        sent = await s.send_audio(np.zeros(24000, np.int16) + 1000, sample_rate=24000)
    assert sent.format == {"type": "audio/pcmu"}
    assert sent.nbytes == 8000 and sent.duration_ms == pytest.approx(1000)


async def test_send_audio_takes_raw_pcm16_at_another_rate_and_files(speech_wav) -> None:
    s = Session(backend="local")
    sent = await s.send_audio((np.ones(16000, "<i2") * 1000).tobytes(), sample_rate=16000)
    assert sent.nbytes == 48000
    from_file = await s.send_audio(speech_wav)
    assert from_file.duration_ms > 2000 and from_file.chunks == -(-from_file.nbytes // 4800)


async def test_commit_with_nothing_appended_is_refused_with_the_service_message() -> None:
    s = Session(backend="local")
    await s.update(turn_detection=None, wait=False)  # not yet confirmed: the mirror says VAD
    with pytest.raises(RealtimeError) as info:
        await s.commit()
    err = info.value
    assert err.code == "input_audio_buffer_commit_empty"
    assert err.message == ("Error committing input audio buffer: buffer too small. Expected at "
                           "least 100ms of audio, but buffer only has 0.00ms of audio.")
    assert "Nothing was appended" in err.hint and err.source == "client"
    assert s.last_error is err


async def test_forced_commit_is_queued_for_the_server() -> None:
    s = Session(backend="local")
    await s.commit(force=True)
    assert s.pending[-1]["type"] == "input_audio_buffer.commit"


async def test_refusals_reach_error_callbacks_and_last_error() -> None:
    s = Session(backend="local")
    seen: list[dict] = []
    s.on("error", seen.append)
    with pytest.raises(RealtimeError) as info:
        await s.send({"type": "session.update", "session": {"type": "realtime", "voice": "x"}})
    assert seen[-1]["realtime_error"] is info.value is s.last_error
    assert seen[-1]["error"]["code"] == "unknown_parameter"


async def test_raw_send_without_validation_goes_out_as_given() -> None:
    s = Session(backend="local")
    ev = {"type": "session.update", "turn_detection": None}
    sent = await s.send(ev, validate=False)
    assert sent == ev and "event_id" not in sent and s.pending[-1] == ev


def test_error_str_carries_code_message_param_and_hint() -> None:
    err = RealtimeError("unknown_parameter", "Unknown parameter: 'session.voice'.",
                        param="session.voice", hint=hint_for("unknown_parameter",
                                                              "session.voice"))
    text = str(err)
    assert "[unknown_parameter]" in text and "session.voice" in text
    assert "Hint:" in text and "session.audio.output.voice" in text


@pytest.mark.parametrize(("code", "words"), [
    ("conversation_already_has_active_response", "response.done"),
    ("response_cancel_not_active", "truncate"),
    ("session_expired", "reconnect"),
    ("beta_api_shape_disabled", "OpenAI-Beta"),
    ("cannot_update_voice", "new session"),
    ("item_truncate_invalid_audio_end_ms", "played"),
])
def test_server_error_codes_have_hints(code, words) -> None:
    assert words in hint_for(code)


def test_commit_empty_explanations_name_the_cause() -> None:
    vad = explain_commit_empty(0.0, turn_detection=True, appended_ms=2000, last_commit={
        "item_id": "item_X", "by": "vad", "end_ms": 3210.0, "audio_end_ms": 3210})
    assert "3.21 s" in vad and "item_X" in vad and "turn_detection=None" in vad
    nospeech = explain_commit_empty(0.0, turn_detection=True, appended_ms=800)
    assert "no speech" in nospeech
    short = explain_commit_empty(40.0, turn_detection=False, appended_ms=40)
    assert "40.00 ms" in short and "100 ms" in short
    twice = explain_commit_empty(0.0, turn_detection=False, appended_ms=0,
                                 last_commit={"item_id": "item_Y", "by": "client"})
    assert "item_Y" in twice
    cleared = explain_commit_empty(0.0, turn_detection=False, appended_ms=0, cleared=True)
    assert "cleared" in cleared


def test_tone_helper_is_loud_enough_for_vad() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from realtime_nb.audio import diagnose

        assert diagnose(tone_pcm16(300)) == []
