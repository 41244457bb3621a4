"""StreamResampler: chunk-by-chunk resampling that equals resampling the whole signal at once."""

from __future__ import annotations

import numpy as np
import pytest
from audio_fixtures import stream_in_chunks, to_int16, tone
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_nb.audio import Audio, AudioError, StreamResampler

RATE_PAIRS = [(48_000, 24_000), (16_000, 24_000), (44_100, 24_000), (22_050, 24_000),
              (24_000, 16_000), (24_000, 8_000), (8_000, 24_000)]


@settings(max_examples=40, deadline=None)
@given(
    rates=st.sampled_from(RATE_PAIRS),
    n=st.integers(1, 20_000),
    sizes=st.lists(st.integers(1, 3000), max_size=12),
)
def test_streamed_length_is_within_one_sample_of_the_exact_duration(
    rates: tuple[int, int], n: int, sizes: list[int]
) -> None:
    src, dst = rates
    x = np.zeros(n, dtype=np.float32)
    y = stream_in_chunks(StreamResampler(src, dst), x, sizes)
    assert abs(len(y) - n * dst / src) <= 1


@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_streaming_in_20_ms_chunks_equals_resampling_at_once(src: int, dst: int) -> None:
    """Independent per-chunk resampling leaves audible seams; the stream must not."""
    x = to_int16(tone(440, 1000, src, amp=0.5) + tone(3100, 1000, src, amp=0.2))
    whole = Audio(x, src).resample(dst).samples.astype(np.float64)
    streamed = stream_in_chunks(StreamResampler(src, dst), x, [src // 50] * 49) * 32768.0
    assert len(streamed) == len(whole)
    assert np.abs(streamed - whole).max() <= 0.5 + 1e-3  # the batch path rounds to int16


def test_int16_chunks_are_scaled_to_float() -> None:
    r = StreamResampler(24_000, 24_000)
    out = r.process(np.array([16384, -32768], dtype=np.int16))
    assert out.dtype == np.float32 and out.tolist() == [0.5, -1.0]


def test_same_rate_passes_float_through_without_aliasing_the_input() -> None:
    r = StreamResampler(16_000, 16_000)
    x = np.array([0.1, 0.2], dtype=np.float32)
    out = r.process(x)
    x[0] = 9.0
    assert out.tolist() == pytest.approx([0.1, 0.2]) and len(r.flush()) == 0


def test_stream_output_is_float32() -> None:
    r = StreamResampler(48_000, 24_000)
    assert r.process(np.zeros(960, np.float64)).dtype == np.float32


@pytest.mark.parametrize("chunk", [np.zeros((2, 10), np.float32), np.zeros(10, np.int32)])
def test_stream_refuses_multichannel_or_other_dtypes(chunk: np.ndarray) -> None:
    with pytest.raises(AudioError):
        StreamResampler(48_000, 24_000).process(chunk)


@pytest.mark.parametrize(("src", "dst"), [(0, 24_000), (24_000, None), (48_000, 10**7)])
def test_stream_refuses_absurd_rates(src: int, dst: int | None) -> None:
    with pytest.raises(AudioError):
        StreamResampler(src, dst)  # type: ignore[arg-type]
