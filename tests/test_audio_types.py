"""realtime_nb.audio.Audio: the mono PCM16 + sample-rate value every part of the project passes."""

from __future__ import annotations

import io
import math
import wave

import numpy as np
import pytest
from audio_fixtures import to_int16, tone
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from realtime_nb.audio import Audio, AudioError

int16_arrays = arrays(np.int16, st.integers(1, 2000))


def test_from_pcm16_reads_little_endian_samples() -> None:
    audio = Audio.from_pcm16(b"\x01\x00\xff\xff\x00\x80", 24_000)
    assert audio.samples.tolist() == [1, -1, -32768]
    assert audio.sample_rate == 24_000


def test_from_pcm16_accepts_bytearray_and_memoryview() -> None:
    data = np.array([5, -7], dtype="<i2").tobytes()
    assert Audio.from_pcm16(bytearray(data)).samples.tolist() == [5, -7]
    assert Audio.from_pcm16(memoryview(data)).samples.tolist() == [5, -7]


def test_from_pcm16_refuses_odd_length() -> None:
    with pytest.raises(AudioError, match="odd number of bytes"):
        Audio.from_pcm16(b"\x00\x00\x01")


def test_audio_error_is_a_value_error() -> None:
    assert issubclass(AudioError, ValueError)


@pytest.mark.parametrize("samples", [
    np.zeros(4, dtype=np.float32),
    np.zeros((2, 4), dtype=np.int16),
    [0, 1, 2],
])
def test_samples_must_be_1d_int16(samples: object) -> None:
    with pytest.raises(AudioError, match="1-D int16"):
        Audio(samples, 24_000)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0, 999, 500_000, -24_000, None, True, 24_000.5, "24000"])
def test_absurd_or_missing_rates_are_refused(rate: object) -> None:
    with pytest.raises(AudioError):
        Audio(np.zeros(4, dtype=np.int16), rate)  # type: ignore[arg-type]


def test_integral_float_and_numpy_rates_become_int() -> None:
    assert Audio(np.zeros(1, np.int16), 24000.0).sample_rate == 24_000  # type: ignore[arg-type]
    rate = Audio(np.zeros(1, np.int16), np.int64(16000)).sample_rate  # type: ignore[arg-type]
    assert rate == 16_000 and type(rate) is int


def test_duration_and_len_count_samples() -> None:
    audio = Audio(np.zeros(2400, dtype=np.int16), 24_000)
    assert len(audio) == 2400
    assert audio.duration_ms == 100.0


def test_to_pcm16_is_little_endian_bytes_at_own_rate() -> None:
    audio = Audio(np.array([1, -2, 32767], dtype=np.int16), 16_000)
    assert audio.to_pcm16() == b"\x01\x00\xfe\xff\xff\x7f"


@settings(max_examples=60, deadline=None)
@given(int16_arrays)
def test_pcm16_float_pcm16_round_trip_is_exact(samples: np.ndarray) -> None:
    """int16 -> float32 (x / 32768) -> int16 must give back every sample unchanged."""
    audio = Audio(samples, 24_000)
    back = Audio.decode(audio.to_float32(), 24_000)
    assert np.array_equal(back.samples, samples)


@settings(max_examples=60, deadline=None)
@given(int16_arrays)
def test_pcm16_bytes_round_trip_is_exact(samples: np.ndarray) -> None:
    audio = Audio(samples, 8_000)
    assert np.array_equal(Audio.from_pcm16(audio.to_pcm16(), 8_000).samples, samples)


def test_to_float32_is_in_minus_one_to_one() -> None:
    f = Audio(np.array([-32768, 0, 32767], dtype=np.int16), 24_000).to_float32()
    assert f.dtype == np.float32
    assert f.tolist() == [-1.0, 0.0, 32767 / 32768]


def test_peak_and_rms_of_a_full_scale_square_wave() -> None:
    audio = Audio(np.array([-32768, 32767] * 100, dtype=np.int16), 24_000)
    assert audio.peak == 1.0
    assert audio.rms == pytest.approx(1.0, abs=1e-4)
    assert audio.peak_dbfs == 0.0


def test_rms_dbfs_of_a_half_scale_sine_is_about_minus_9() -> None:
    """A sine of amplitude 0.5 has RMS 0.5/sqrt(2): -9.03 dBFS."""
    audio = Audio(to_int16(tone(1000, 1000, 24_000, amp=0.5)), 24_000)
    assert audio.rms_dbfs == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert audio.peak_dbfs == pytest.approx(20 * math.log10(0.5), abs=0.01)


def test_silence_has_zero_levels_and_minus_infinite_dbfs() -> None:
    audio = Audio.silence(50, 16_000)
    assert len(audio) == 800
    assert audio.peak == 0.0 and audio.rms == 0.0
    assert audio.peak_dbfs == -math.inf and audio.rms_dbfs == -math.inf


def test_empty_audio_is_allowed_and_has_zero_levels() -> None:
    audio = Audio(np.zeros(0, dtype=np.int16), 24_000)
    assert len(audio) == 0 and audio.duration_ms == 0.0 and audio.peak == 0.0 and audio.rms == 0.0


def test_resample_changes_rate_and_keeps_duration() -> None:
    audio = Audio(to_int16(tone(440, 500, 48_000)), 48_000)
    out = audio.resample(24_000)
    assert out.sample_rate == 24_000
    assert len(out) == 12_000


def test_resample_to_own_rate_returns_same_object() -> None:
    audio = Audio(np.zeros(10, dtype=np.int16), 24_000)
    assert audio.resample(24_000) is audio


def test_resampling_digital_silence_keeps_it_digital_silence() -> None:
    """No dither: zeros stay zeros (soxr's own int16 output would add +-1 noise)."""
    for rate in (8_000, 16_000, 44_100, 48_000):
        assert not Audio.silence(500, rate).resample(24_000).samples.any()


def test_resample_keeps_a_tone_clean() -> None:
    """A 1 kHz tone resampled 44.1 -> 24 kHz must match a tone generated at 24 kHz (> 60 dB SNR)."""
    src = Audio(to_int16(tone(1000, 1000, 44_100, amp=0.5)), 44_100).resample(24_000)
    ref = to_int16(tone(1000, 1000, 24_000, amp=0.5)).astype(np.float64)
    got = src.samples.astype(np.float64)
    inner = slice(500, len(ref) - 500)  # ignore the filter's edges
    err = got[inner] - ref[inner]
    snr = 10 * np.log10(np.sum(ref[inner] ** 2) / np.sum(err**2))
    assert snr > 60


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 20_000),
    rates=st.sampled_from([(8000, 24000), (16000, 24000), (22050, 24000), (44100, 24000),
                           (48000, 24000), (24000, 8000), (24000, 16000), (48000, 44100)]),
)
def test_resampled_length_is_within_one_sample_of_the_exact_duration(
    n: int, rates: tuple[int, int]
) -> None:
    src, dst = rates
    audio = Audio(np.zeros(n, dtype=np.int16), src)
    out = audio.resample(dst)
    assert abs(len(out) - n * dst / src) <= 1


def test_slice_ms_takes_whole_samples() -> None:
    audio = Audio(np.arange(24_000, dtype=np.int16), 24_000)
    part = audio.slice_ms(100, 250)
    assert part.sample_rate == 24_000
    assert part.samples[0] == 2400 and len(part) == 3600


def test_slice_ms_defaults_to_the_end_and_clips_past_it() -> None:
    audio = Audio(np.arange(2400, dtype=np.int16), 24_000)
    assert len(audio.slice_ms(50)) == 1200
    assert len(audio.slice_ms(50, 10_000)) == 1200
    assert len(audio.slice_ms(5_000)) == 0


@pytest.mark.parametrize(("start", "end"), [(-1, 10), (20, 10), (float("nan"), None)])
def test_slice_ms_refuses_negative_or_reversed_bounds(start: float, end: float | None) -> None:
    with pytest.raises(AudioError, match="slice_ms"):
        Audio.silence(100).slice_ms(start, end)


def test_concat_joins_in_order() -> None:
    a = Audio(np.array([1, 2], dtype=np.int16), 8_000)
    b = Audio(np.array([3], dtype=np.int16), 8_000)
    out = Audio.concat([a, b])
    assert out.samples.tolist() == [1, 2, 3] and out.sample_rate == 8_000


def test_concat_refuses_mixed_rates() -> None:
    with pytest.raises(AudioError, match="one sample rate"):
        Audio.concat([Audio.silence(10, 8_000), Audio.silence(10, 16_000)])


def test_concat_of_nothing_needs_a_rate() -> None:
    with pytest.raises(AudioError, match="sample_rate"):
        Audio.concat([])
    assert len(Audio.concat([], sample_rate=24_000)) == 0


def test_to_wav_writes_a_16_bit_mono_wav_a_stdlib_reader_understands() -> None:
    samples = to_int16(tone(300, 100, 16_000))
    data = Audio(samples, 16_000).to_wav()
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16_000)
        frames = w.readframes(w.getnframes())
    assert np.array_equal(np.frombuffer(frames, "<i2"), samples)


def test_from_wav_reads_back_to_wav_exactly() -> None:
    samples = to_int16(tone(300, 100, 22_050))
    back = Audio.from_wav(Audio(samples, 22_050).to_wav())
    assert back.sample_rate == 22_050 and np.array_equal(back.samples, samples)


def test_from_wav_refuses_other_containers() -> None:
    with pytest.raises(AudioError, match=r"container='wav'.*Ogg"):
        Audio.from_wav(b"OggS" + bytes(100))


def test_repr_says_duration_and_rate() -> None:
    assert repr(Audio.silence(250, 16_000)) == "Audio(250.0 ms, 16000 Hz, 4000 samples)"
