"""Input noise reduction (realtime_nb.server.engines.denoise): the Speex suppressor, streaming.

Pins down: any chunking (odd byte counts included) gives exactly as many bytes out as in and the
same filtered stream; stationary noise is attenuated, more at strength 1 than at 0.5, and speech
kept; G.711 input is filtered in its own format; null or strength 0 means no filter.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_fixtures import espeak_speech

from realtime_nb.audio import ulaw_decode, ulaw_encode
from realtime_nb.server.engines.denoise import (
    MAX_SUPPRESSION_DB,
    InputNoiseFilter,
    default_noise_filter,
    noise_filter_status,
)

PCM = {"type": "audio/pcm", "rate": 24000}


def noise(seconds: float, rms: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, rms, round(seconds * 24000)) * 32767).astype(np.int16)


def run(filt: InputNoiseFilter, data: bytes, sizes: list[int]) -> bytes:
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out.append(filt.process(data[i:i + n]))
        assert len(out[-1]) == len(data[i:i + n])
        i, k = i + n, k + 1
    return b"".join(out)


def rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)


def test_the_installed_filter_is_speex() -> None:
    assert noise_filter_status() == "speex"


def test_any_chunking_gives_the_same_bytes_and_the_same_length() -> None:
    data = noise(1.5).tobytes()
    whole = run(InputNoiseFilter(PCM), data, [len(data)])
    assert len(whole) == len(data)
    for sizes in ([1, 3, 7], [481, 960], [4801]):  # odd sizes split PCM16 samples
        assert run(InputNoiseFilter(PCM), data, sizes) == whole, sizes


def test_stationary_noise_is_attenuated_by_about_the_strengths_depth() -> None:
    """After the noise estimate settles (1 s), white noise loses most of the strength's depth
    (measured here: 25 dB at strength 1 = 30 dB depth, 16 dB at 0.5, 10 dB at 0.25)."""
    data = noise(4.0)
    drop = {}
    for strength in (1.0, 0.5):
        filt = default_noise_filter({"type": "near_field", "strength": strength}, PCM)
        out = np.frombuffer(run(filt, data.tobytes(), [960]), "<i2")
        drop[strength] = rms_db(data[48000:]) - rms_db(out[48000:])
    assert drop[1.0] > 18 and drop[1.0] - drop[0.5] > 5, drop


def test_speech_in_noise_keeps_its_level_while_the_noise_drops() -> None:
    speech = espeak_speech("Please book a table for four people.").resample(24_000).samples
    pad = np.zeros(24000, np.int16)
    clean = np.concatenate([pad, speech, pad])
    nz = noise(len(clean) / 24000, rms=0.02, seed=3)
    filt = InputNoiseFilter(PCM)
    lag = round(filt.latency_ms * 24)
    out = np.frombuffer(run(filt, (clean + nz).tobytes(), [480]), "<i2")[lag:]
    voiced = slice(24000, 24000 + len(speech))
    tail = slice(len(clean) - 18000, len(clean) - lag)
    assert rms_db(out[voiced]) > rms_db(clean[voiced]) - 3  # speech kept within 3 dB
    assert rms_db(out[tail]) < rms_db(nz[tail]) - 10  # noise alone down by more than 10 dB


def test_g711_input_is_filtered_in_its_own_format() -> None:
    pcm8k = noise(2.0)[::3]
    data = ulaw_encode(pcm8k)
    out = run(InputNoiseFilter({"type": "audio/pcmu"}), data, [160, 77])
    assert len(out) == len(data)
    assert rms_db(ulaw_decode(out)[8000:]) < rms_db(pcm8k[8000:]) - 6


@pytest.mark.parametrize("config", [None, {}, {"type": "near_field", "strength": 0.0}])
def test_no_filter_for_null_or_zero_strength(config: dict | None) -> None:
    assert default_noise_filter(config, PCM) is None


def test_strength_one_is_the_full_depth() -> None:
    filt = default_noise_filter({"type": "far_field", "strength": 1.0}, PCM)
    assert filt is not None and filt.suppression_db == MAX_SUPPRESSION_DB


def test_without_pyspeex_noise_the_setting_is_accepted_and_said_not_applied(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from realtime_nb.server.engines import denoise

    monkeypatch.setattr(denoise, "speex_available", lambda: False)
    with caplog.at_level("WARNING", logger=denoise.__name__):
        assert default_noise_filter({"type": "near_field"}, PCM) is None
    assert "not applied" in caplog.text and "realtime_nb[noise]" in caplog.text
    assert denoise.noise_filter_status().startswith("not applied")


def test_engines_can_turn_noise_reduction_off_or_bring_their_own() -> None:
    from realtime_nb.server import LocalServer
    from realtime_nb.server.engines import Engines

    assert Engines(noise=False).noise_filter_factory() is None
    assert LocalServer(engines=Engines(noise=False)).noise_reduction == "off"
    mine = lambda config, fmt: None  # noqa: E731
    assert Engines(noise=mine).noise_filter_factory() is mine
    assert LocalServer(engines=Engines(noise=mine)).noise_reduction == "custom"
    assert Engines().noise_filter_factory() is default_noise_filter
    assert LocalServer().noise_reduction == "speex"


def test_single_byte_appends_never_run_the_filter_dry(caplog: pytest.LogCaptureFixture) -> None:
    """The delay is sized for any chunking: even one byte at a time (half a PCM16 sample, one
    G.711 sample) the output never has to be padded."""
    data = noise(0.5).tobytes()
    with caplog.at_level("WARNING"):
        run(InputNoiseFilter(PCM), data, [1])
        run(InputNoiseFilter({"type": "audio/pcma"}), ulaw_encode(noise(1.0)[::3]), [1])
    assert "ran dry" not in caplog.text
