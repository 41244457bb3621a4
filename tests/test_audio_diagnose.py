"""diagnose(): the findings, and the float32-as-PCM16 detector tested both ways.

The detector is the one that matters most (float32 bytes sent as PCM16 are the commonest
Realtime audio bug), and it must never cry wolf on real PCM16: the property tests throw speech,
tones (5 Hz to 0.45 of the rate, any level and phase, DC offsets up to 0.3 % of full scale),
noise and near-silence at it as PCM16 (must stay quiet), and the same kinds of signals as
float32 (must fire). Its documented blind spots (see ``looks_like_float32``) are outside these
ranges.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from audio_fixtures import noise, to_int16, tone
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_nb.audio import Audio, Finding, diagnose, looks_like_float32


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def test_clean_speech_has_no_findings(spoken_24k: Audio) -> None:
    assert diagnose(spoken_24k.to_pcm16()) == []


def test_an_audio_can_be_diagnosed_directly(spoken_24k: Audio) -> None:
    assert diagnose(spoken_24k) == []
    assert codes(diagnose(spoken_24k.slice_ms(0, 50))) == ["too_short"]


def test_empty_bytes_are_an_error() -> None:
    findings = diagnose(b"")
    assert codes(findings) == ["empty"] and findings[0].severity == "error"


def test_an_odd_byte_count_is_an_error_for_pcm16(spoken_24k: Audio) -> None:
    findings = diagnose(spoken_24k.to_pcm16() + b"\x00")
    assert codes(findings) == ["odd_length"]
    assert findings[0].severity == "error" and "odd" in findings[0].message


def test_a_wav_file_is_not_raw_pcm16(spoken_files: dict[str, bytes]) -> None:
    findings = diagnose(spoken_files["wav_s16"])
    assert codes(findings) == ["container_header"]
    assert "WAV" in findings[0].message and "to_pcm16" in findings[0].message


def test_float32_speech_is_reported_and_nothing_else(spoken_24k: Audio) -> None:
    """Level findings would describe noise, so only the real problem is reported."""
    findings = diagnose(spoken_24k.to_float32().tobytes())
    assert codes(findings) == ["float32_as_pcm16"]
    assert findings[0].severity == "error"
    assert "float32" in findings[0].message and "to_pcm16" in findings[0].message


def test_under_100_ms_is_too_short_to_commit() -> None:
    audio = Audio(to_int16(tone(440, 99, 24_000)), 24_000)
    findings = diagnose(audio.to_pcm16())
    assert codes(findings) == ["too_short"] and "100 ms" in findings[0].message
    assert diagnose(Audio(to_int16(tone(440, 100, 24_000)), 24_000).to_pcm16()) == []


def test_too_short_uses_the_given_rate() -> None:
    data = Audio(to_int16(tone(440, 150, 24_000)), 24_000).to_pcm16()  # 3600 samples
    assert codes(diagnose(data, 48_000)) == ["too_short"]  # 75 ms at 48 kHz


def test_all_zero_samples_are_reported_as_silent() -> None:
    findings = diagnose(bytes(48_000))
    assert codes(findings) == ["silent"] and "zero" in findings[0].message


def test_very_quiet_audio_is_silent() -> None:
    quiet = Audio(to_int16(noise(500, 24_000, amp=0.0001)), 24_000)
    assert quiet.peak_dbfs < -60
    assert codes(diagnose(quiet.to_pcm16())) == ["silent"]


def test_quiet_but_audible_speech_is_not_silent(spoken_24k: Audio) -> None:
    soft = Audio((spoken_24k.samples * 0.01).astype(np.int16), 24_000)  # -40 dB
    assert diagnose(soft.to_pcm16()) == []


def test_audio_amplified_into_the_rails_is_reported_as_clipping(spoken_24k: Audio) -> None:
    loud = np.clip(spoken_24k.samples.astype(np.int32) * 8, -32768, 32767).astype(np.int16)
    findings = diagnose(Audio(loud, 24_000).to_pcm16())
    assert codes(findings) == ["clipping"] and "%" in findings[0].message


def test_a_full_scale_sine_touching_the_rail_is_not_clipping() -> None:
    """Single samples at full scale are peaks, not clipping; runs of them are."""
    sine = np.rint(np.sin(2 * np.pi * 440 * np.arange(24_000) / 24_000) * 32767).astype(np.int16)
    assert diagnose(sine.tobytes()) == []


def test_findings_are_frozen_with_stable_fields() -> None:
    finding = diagnose(b"")[0]
    assert dataclasses.is_dataclass(finding)
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.code = "x"  # type: ignore[misc]
    assert {f.name for f in dataclasses.fields(finding)} == {"code", "message", "severity"}


# --------------------------------------------------------------------------- detector, both ways

def _pcm16_bytes(x: np.ndarray) -> bytes:
    return to_int16(x).astype("<i2").tobytes()


def _float32_bytes(x: np.ndarray) -> bytes:
    return np.asarray(x, dtype="<f4").tobytes()


def _detectable(x: np.ndarray) -> bool:
    """Float audio the detector promises to catch: at least 8 values above 1e-6, and not
    (nearly) constant (a median step of at least 1e-4 of the peak): a constant float pattern is
    as much a PCM16 buzz as it is a float signal."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    return bool(np.count_nonzero(np.abs(x) > 1e-6) >= 8
                and np.median(np.abs(np.diff(x))) >= 1e-4 * np.abs(x).max())


tone_params = st.fixed_dictionaries({
    "freq": st.floats(5, 10_800),  # up to 0.45 of the rate, where anti-alias filters end
    "amp": st.floats(1e-4, 1.0),
    "phase": st.floats(0, 2 * np.pi),
    "dc": st.floats(-0.003, 0.003),  # microphones' DC offsets are well under 0.3 % of full scale
    "n": st.integers(32, 6000),
})


def _tone(p: dict[str, float]) -> np.ndarray:
    x = tone(p["freq"], p["n"] * 1000 / 24_000, 24_000, p["amp"], p["phase"])
    return np.clip(x + p["dc"], -1, 1)


@settings(max_examples=300, deadline=None)
@given(tone_params)
def test_detector_never_fires_on_pcm16_tones(p: dict[str, float]) -> None:
    assert not looks_like_float32(_pcm16_bytes(_tone(p)))


@settings(max_examples=200, deadline=None)
@given(amp=st.floats(1e-5, 1.0), n=st.integers(32, 6000), seed=st.integers(0, 2**32 - 1))
def test_detector_never_fires_on_pcm16_noise(amp: float, n: int, seed: int) -> None:
    x = np.clip(np.random.default_rng(seed).normal(0, amp, n), -1, 1)
    assert not looks_like_float32(_pcm16_bytes(x))


@settings(max_examples=100, deadline=None)
@given(level=st.integers(0, 64), n=st.integers(32, 6000), seed=st.integers(0, 2**32 - 1))
def test_detector_never_fires_on_pcm16_silence_and_hiss(level: int, n: int, seed: int) -> None:
    x = np.random.default_rng(seed).integers(-level, level + 1, n).astype("<i2")
    assert not looks_like_float32(x.tobytes())


@settings(max_examples=150, deadline=None)
@given(start=st.floats(0, 1), n=st.integers(32, 24_000), gain=st.floats(0.001, 4.0))
def test_detector_never_fires_on_pcm16_speech(
    spoken_24k: Audio, start: float, n: int, gain: float
) -> None:
    x = spoken_24k.to_float32().astype(np.float64) * gain
    i = int(start * (len(x) - 32))
    assert not looks_like_float32(_pcm16_bytes(np.clip(x[i:i + n], -1, 1)))


@settings(max_examples=300, deadline=None)
@given(tone_params)
def test_detector_fires_on_float32_tones(p: dict[str, float]) -> None:
    x = _tone(p)
    if _detectable(x):
        assert looks_like_float32(_float32_bytes(x))


@settings(max_examples=200, deadline=None)
@given(amp=st.floats(1e-4, 1.0), n=st.integers(32, 6000), seed=st.integers(0, 2**32 - 1))
def test_detector_fires_on_float32_noise(amp: float, n: int, seed: int) -> None:
    x = np.clip(np.random.default_rng(seed).normal(0, amp, n), -1, 1)
    assert looks_like_float32(_float32_bytes(x))


@settings(max_examples=150, deadline=None)
@given(start=st.floats(0, 1), n=st.integers(32, 24_000), gain=st.floats(0.001, 1.0),
       from_int16=st.booleans())
def test_detector_fires_on_float32_speech(
    spoken_24k: Audio, start: float, n: int, gain: float, from_int16: bool
) -> None:
    """Both float32 that came from int16 (x / 32768: low mantissa bits all zero) and float32
    from float processing (full mantissa) are recognised, silent stretches aside."""
    x = spoken_24k.to_float32().astype(np.float64)
    i = int(start * (len(x) - 32))
    segment = x[i:i + n] if from_int16 else x[i:i + n] * gain
    if _detectable(segment):
        assert looks_like_float32(_float32_bytes(segment))


@pytest.mark.parametrize("divisor", [2.0, 3.0, 4.0, 6.0, 8.0, 12.0])
def test_detector_never_fires_on_tones_at_simple_fractions_of_the_rate(divisor: float) -> None:
    """Tones at fs/4, fs/6, fs/8, ... repeat exactly, so a bad level and phase would repeat
    too: scan levels and phases exhaustively on a grid."""
    t = np.arange(480) / 24_000
    for amp in np.linspace(0.05, 1.0, 39):
        for phase in np.linspace(0, 2 * np.pi, 49)[:-1]:
            x = amp * np.sin(2 * np.pi * 24_000 / divisor * t + phase)
            for n in (32, 480):
                assert not looks_like_float32(_pcm16_bytes(x[:n])), (divisor, amp, phase, n)


@pytest.mark.parametrize("divisor", [3.0, 4.0, 6.0, 8.0, 12.0])
def test_detector_fires_on_float_tones_that_cross_zero_on_a_sample(divisor: float) -> None:
    """A float tone at fs/8 (fs/4, fs/6, ...) with phase 0 crosses zero on samples, where the
    computed sine is 1e-18 .. 1e-13, not 0: up to half the values are that tiny (hypothesis
    found 3000 Hz at 24 kHz, amplitude 1, phase 0)."""
    for n in (32, 100, 1000, 6000):
        t = np.arange(n) / 24_000
        for amp in (1e-4, 0.01, 0.5, 1.0):
            x = amp * np.sin(2 * np.pi * 24_000 / divisor * t)
            assert looks_like_float32(_float32_bytes(x)), (divisor, n, amp)


def test_detector_needs_at_least_16_floats() -> None:
    x = _float32_bytes(tone(440, 1, 24_000))  # 24 floats
    assert looks_like_float32(x)
    assert not looks_like_float32(x[:60])


def test_detector_samples_long_inputs_quickly(spoken_24k: Audio) -> None:
    """A 60 s float32 buffer is still recognised (the detector looks at evenly spaced values)."""
    x = np.tile(spoken_24k.to_float32(), 20)
    assert looks_like_float32(x.tobytes())
    assert not looks_like_float32(to_int16(x).tobytes())
