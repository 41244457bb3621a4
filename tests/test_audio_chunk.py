"""Chunking for input_audio_buffer.append, and accumulating response audio deltas."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from audio_fixtures import to_int16, tone
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_nb.audio import (
    PCM,
    PCMA,
    PCMU,
    Audio,
    AudioBuffer,
    AudioChunk,
    AudioError,
    append_events,
    chunks,
    decode_format,
    encode,
)

EVENT_LIMIT = 15 * 1024 * 1024  # the Realtime API's largest client event


def test_100_ms_pcm_chunks_are_4800_bytes_and_the_last_is_the_rest() -> None:
    data = bytes(48 * 250)  # 250 ms
    out = list(chunks(data, PCM, 100))
    assert [len(c.data) for c in out] == [4800, 4800, 2400]
    assert [c.duration_ms for c in out] == [100.0, 100.0, 50.0]
    assert all(c.sample_rate == 24_000 and c.format == PCM for c in out)


def test_chunks_join_back_to_the_input(spoken_24k: Audio) -> None:
    data = spoken_24k.to_pcm16()
    assert b"".join(c.data for c in chunks(data, PCM, 20)) == data


@settings(max_examples=60, deadline=None)
@given(
    n_samples=st.integers(1, 30_000),
    chunk_ms=st.floats(10, 10_000, allow_nan=False),
    fmt=st.sampled_from([PCM, PCMU, PCMA]),
)
def test_chunks_are_sample_aligned_and_cover_everything(
    n_samples: int, chunk_ms: float, fmt: str
) -> None:
    width = 2 if fmt == PCM else 1
    data = bytes(range(256)) * (n_samples * width // 256) + bytes(n_samples * width % 256)
    out = list(chunks(data, fmt, chunk_ms, check=False))
    assert b"".join(c.data for c in out) == data
    assert all(len(c.data) % width == 0 for c in out)
    sizes = {len(c.data) for c in out[:-1]}
    assert len(sizes) <= 1  # every chunk but the last has the same size
    rate = 24_000 if fmt == PCM else 8_000
    assert sum(c.duration_ms for c in out) == pytest.approx(n_samples * 1000 / rate)


def test_an_odd_chunk_duration_rounds_to_whole_samples() -> None:
    out = list(chunks(bytes(48 * 100), PCM, 15.3))
    assert len(out[0].data) == 367 * 2  # 15.3 ms at 24 kHz = 367.2 samples


@pytest.mark.parametrize("chunk_ms", [0, 5, 9.99, 10_001, -100, float("nan"), True, "100", None])
def test_chunk_sizes_outside_10_ms_to_10_s_are_refused(chunk_ms: object) -> None:
    with pytest.raises(AudioError, match="chunk_ms"):
        chunks(bytes(4800), PCM, chunk_ms)  # type: ignore[arg-type]


def test_validation_happens_at_the_call_not_at_the_first_chunk() -> None:
    """Errors surface where the mistake is made, even if the iterator is never consumed."""
    with pytest.raises(AudioError):
        chunks(b"\x00\x00\x00", PCM)


def test_split_pcm16_samples_are_refused() -> None:
    with pytest.raises(AudioError, match="whole number of 2-byte samples"):
        chunks(bytes(4801), PCM)


def test_empty_data_is_refused() -> None:
    with pytest.raises(AudioError, match="No audio"):
        chunks(b"", PCM)


def test_a_wav_file_is_refused_instead_of_chunked_into_noise(
    spoken_files: dict[str, bytes],
) -> None:
    with pytest.raises(AudioError, match="WAV file"):
        chunks(spoken_files["wav_s16"], PCM)


def test_float32_bytes_are_refused_as_pcm16(spoken_24k: Audio) -> None:
    with pytest.raises(AudioError, match="float32"):
        chunks(spoken_24k.to_float32().tobytes(), PCM)


def test_check_false_chunks_whatever_it_is_given(spoken_24k: Audio) -> None:
    data = spoken_24k.to_float32().tobytes()
    assert b"".join(c.data for c in chunks(data, PCM, check=False)) == data


def test_an_audio_is_encoded_to_the_format_first(spoken: Audio) -> None:
    out = list(chunks(spoken, PCMU, 100))
    assert all(c.sample_rate == 8_000 for c in out)
    assert len(out[0].data) == 800
    assert b"".join(c.data for c in out) == encode(spoken, PCMU)


def test_other_sources_are_refused() -> None:
    with pytest.raises(AudioError, match="Audio or wire bytes"):
        chunks(np.zeros(100, np.int16), PCM)  # type: ignore[arg-type]


def test_a_chunk_knows_its_base64_and_its_event() -> None:
    chunk = AudioChunk(b"\x01\x02\x03\x04", 24_000, PCM, 2 / 24)
    assert chunk.to_base64() == "AQIDBA=="
    assert chunk.to_event() == {"type": "input_audio_buffer.append", "audio": "AQIDBA=="}


def test_chunks_are_frozen() -> None:
    chunk = AudioChunk(b"", 24_000, PCM, 0.0)
    with pytest.raises(AttributeError):
        chunk.data = b"x"  # type: ignore[misc]


def test_append_events_carry_the_audio_in_order(spoken_24k: Audio) -> None:
    data = spoken_24k.to_pcm16()
    events = list(append_events(data, PCM, 50))
    assert {e["type"] for e in events} == {"input_audio_buffer.append"}
    assert b"".join(base64.b64decode(e["audio"]) for e in events) == data
    assert len(events) == -(-len(data) // 2400)


def test_the_largest_allowed_chunk_stays_far_below_the_event_limit() -> None:
    audio = Audio(to_int16(tone(440, 10_000, 24_000)), 24_000)
    (event,) = append_events(audio, PCM, 10_000)
    assert len(json.dumps(event)) < EVENT_LIMIT / 10


# --------------------------------------------------------------------------- AudioBuffer

def test_buffer_accumulates_base64_deltas(spoken_24k: Audio) -> None:
    data = spoken_24k.to_pcm16()
    buf = AudioBuffer("audio/pcm")
    for i in range(0, len(data), 3000):
        buf.add_base64(base64.b64encode(data[i:i + 3000]).decode())
    assert np.array_equal(buf.audio.samples, spoken_24k.samples)
    assert buf.audio.sample_rate == 24_000
    assert buf.duration_ms == pytest.approx(spoken_24k.duration_ms)


def test_a_sample_split_across_deltas_is_completed_by_the_next_one() -> None:
    buf = AudioBuffer()
    buf.add(b"\x01\x00\x02")
    assert buf.audio.samples.tolist() == [1] and len(buf) == 1 and buf.nbytes == 3
    buf.add(b"\x00")
    assert buf.audio.samples.tolist() == [1, 2]


def test_buffer_to_wav_is_playable_wav(spoken_24k: Audio) -> None:
    buf = AudioBuffer(PCM)
    buf.add(spoken_24k.to_pcm16())
    wav = buf.to_wav()
    assert wav[:4] == b"RIFF"
    assert np.array_equal(Audio.from_wav(wav).samples, spoken_24k.samples)


def test_g711_buffer_decodes_at_8_khz(spoken: Audio) -> None:
    coded = encode(spoken, PCMA)
    buf = AudioBuffer({"type": "audio/pcma"})
    buf.add_base64(base64.b64encode(coded))
    assert buf.audio.sample_rate == 8_000
    assert np.array_equal(buf.audio.samples, decode_format(coded, PCMA).samples)


def test_invalid_base64_is_refused() -> None:
    with pytest.raises(AudioError, match="base64"):
        AudioBuffer().add_base64("not base64!")


def test_clear_empties_the_buffer() -> None:
    buf = AudioBuffer()
    buf.add(bytes(480))
    buf.clear()
    assert buf.nbytes == 0 and len(buf.audio) == 0 and buf.duration_ms == 0.0


def test_buffer_repr_names_format_and_duration() -> None:
    buf = AudioBuffer("g711_ulaw")
    buf.add(bytes(800))
    assert repr(buf) == "AudioBuffer(audio/pcmu, 100 ms)"
