"""Wire formats: their names (GA, beta, GA dicts), rates and sizes, and conversion both ways."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import correlation, to_int16, tone

from realtime_nb.audio import (
    PCM,
    PCMA,
    PCMU,
    Audio,
    AudioError,
    bytes_per_ms,
    bytes_per_sample,
    convert,
    decode_format,
    encode,
    format_rate,
    normalize_format,
    to_pcm16,
    ulaw_encode,
)


@pytest.mark.parametrize(("name", "expected"), [
    ("audio/pcm", PCM), ("pcm16", PCM), ("audio/pcmu", PCMU), ("g711_ulaw", PCMU),
    ("audio/pcma", PCMA), ("g711_alaw", PCMA), ("AUDIO/PCM", PCM),
    ({"type": "audio/pcm", "rate": 24000}, PCM), ({"type": "audio/pcm"}, PCM),
    ({"type": "audio/pcmu"}, PCMU), ({"type": "audio/pcma"}, PCMA),
])
def test_format_names_normalise_to_the_ga_wire_type(name: object, expected: str) -> None:
    assert normalize_format(name) == expected


def test_objects_with_a_type_attribute_are_formats() -> None:
    @dataclass
    class Fmt:
        type: str
        rate: int | None = None

    assert normalize_format(Fmt("audio/pcmu")) == PCMU
    assert normalize_format(Fmt("audio/pcm", 24000)) == PCM


@pytest.mark.parametrize("fmt", [
    {"type": "audio/pcm", "rate": 16000},
    {"type": "audio/pcmu", "rate": 24000},
])
def test_a_rate_other_than_the_formats_own_is_refused(fmt: dict[str, object]) -> None:
    """GA refuses rate != 24000 for PCM (integer_below_min_value): refuse it here first."""
    with pytest.raises(AudioError, match="always"):
        normalize_format(fmt)


@pytest.mark.parametrize("fmt", ["pcm", "audio/opus", "g711", 16, None, {"rate": 24000}])
def test_unknown_formats_are_refused_with_the_valid_names(fmt: object) -> None:
    with pytest.raises(AudioError, match="audio/pcmu"):
        normalize_format(fmt)


@pytest.mark.parametrize(("fmt", "rate", "per_ms", "per_sample"), [
    ("audio/pcm", 24_000, 48, 2), ("pcm16", 24_000, 48, 2),
    ("audio/pcmu", 8_000, 8, 1), ("g711_alaw", 8_000, 8, 1),
])
def test_each_format_name_has_its_rate_and_byte_sizes(fmt: str, rate: int, per_ms: int,
                                                       per_sample: int) -> None:
    assert format_rate(fmt) == rate
    assert bytes_per_ms(fmt) == per_ms
    assert bytes_per_sample(fmt) == per_sample


def test_convert_defaults_to_pcm16_at_24_khz(spoken_wav: Path) -> None:
    assert convert(spoken_wav) == to_pcm16(spoken_wav)


@pytest.mark.parametrize("fmt", ["audio/pcmu", "g711_ulaw", {"type": "audio/pcmu"}])
def test_convert_to_ulaw_gives_8_khz_one_byte_samples(fmt: object, spoken_wav: Path,
                                                      spoken: Audio) -> None:
    data = convert(spoken_wav, format=fmt)
    assert len(data) / 8 == pytest.approx(spoken.duration_ms, abs=1)
    assert data == ulaw_encode(spoken.resample(8_000).samples)


@pytest.mark.parametrize("fmt", [PCMU, PCMA])
def test_g711_round_trip_keeps_the_speech(fmt: str, spoken_wav: Path, spoken: Audio) -> None:
    back = decode_format(convert(spoken_wav, format=fmt), fmt)
    assert back.sample_rate == 8_000
    reference = spoken.resample(8_000).samples
    assert len(back) == len(reference)
    assert correlation(back.samples, reference) > 0.99


def test_convert_an_array_to_alaw_needs_its_rate() -> None:
    with pytest.raises(AudioError, match="sample_rate is missing"):
        convert(np.zeros(100, np.float32), format=PCMA)


def test_encode_resamples_to_the_formats_rate() -> None:
    audio = Audio(to_int16(tone(440, 1000, 16_000)), 16_000)
    assert len(encode(audio, PCM)) == 48_000
    assert len(encode(audio, PCMU)) == 8_000


def test_decode_format_pcm_is_exact(spoken_24k: Audio) -> None:
    back = decode_format(spoken_24k.to_pcm16(), "audio/pcm")
    assert back.sample_rate == 24_000 and np.array_equal(back.samples, spoken_24k.samples)


def test_decode_format_refuses_split_pcm16_samples() -> None:
    with pytest.raises(AudioError, match="odd number"):
        decode_format(b"\x00\x01\x02", PCM)


def test_decode_format_takes_memoryviews() -> None:
    assert len(decode_format(memoryview(b"\xff" * 80), PCMU)) == 80
