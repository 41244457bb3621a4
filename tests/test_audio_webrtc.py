"""The frames every WebRTC peer of realtime_nb sends and reads (``realtime_nb.audio._webrtc``).

The kernel's call, the local server's call and the tests' caller share these; a change here
changes what all three put on the wire.
"""

from __future__ import annotations

import asyncio
import time

import av
import numpy as np
import pytest
from audio_fixtures import to_int16, tone

from realtime_nb.audio._webrtc import FRAME, RATE, FramePacer, frame_of, mono_float, opus_encoder


def test_a_frame_is_20_ms_of_48_khz_mono_int16_stamped_with_its_pts() -> None:
    samples = np.arange(FRAME, dtype=np.int16)
    frame = frame_of(samples, 5 * FRAME)
    assert (frame.sample_rate, frame.samples, frame.pts) == (48_000, 960, 4800)
    assert float(frame.time_base) == 1 / RATE
    assert np.array_equal(frame.to_ndarray().reshape(-1), samples)


def test_a_stereo_frame_keeps_its_level_through_aiortcs_stereo_conversion() -> None:
    """aiortc's Opus encoder converts every frame to s16 stereo first; FFmpeg upmixes mono at
    -3 dB, so a caller's speech would arrive at 0.71 of its level (enough to change what
    Whisper hears). The stereo frame carries the samples unchanged on both channels."""
    import av

    samples = np.full(FRAME, 10_000, dtype=np.int16)
    def through_aiortcs_conversion(frame: av.AudioFrame) -> np.ndarray:
        to_stereo = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        return to_stereo.resample(frame)[0].to_ndarray().reshape(-1)

    mono = through_aiortcs_conversion(frame_of(samples, 0))
    stereo = through_aiortcs_conversion(frame_of(samples, 0, stereo=True))
    assert abs(int(mono[0]) - 7071) <= 1  # the loss the stereo frame avoids
    assert np.array_equal(stereo, np.repeat(samples, 2))


def test_the_pacer_releases_frames_at_real_time_pace() -> None:
    async def go() -> tuple[list[int], float]:
        pacer = FramePacer()
        t0 = time.monotonic()
        pts = [await pacer.next_pts() for _ in range(6)]
        return pts, time.monotonic() - t0

    pts, elapsed = asyncio.run(go())
    assert pts == [0, 960, 1920, 2880, 3840, 4800]
    assert 0.095 <= elapsed < 0.3  # five 20 ms frames after the first


def test_a_stalled_pacer_restarts_its_clock_instead_of_bursting() -> None:
    """After a stall longer than STALL_S the next frames come at pace again, not all at once
    to catch up (a burst would reach the peer as a jump in its jitter buffer)."""
    async def go() -> float:
        pacer = FramePacer()
        await pacer.next_pts()
        time.sleep(0.35)  # noqa: ASYNC251 - the event loop is held on purpose
        await pacer.next_pts()  # late: the clock restarts here
        t0 = time.monotonic()
        for _ in range(3):
            await pacer.next_pts()
        return time.monotonic() - t0

    assert asyncio.run(go()) >= 0.05  # three frames at pace (60 ms); a burst takes ~0


def test_a_received_stereo_frame_reads_as_the_mean_of_its_channels() -> None:
    left = np.full(FRAME, 16384, np.int16)
    right = np.zeros(FRAME, np.int16)
    packed = np.stack([left, right], axis=1).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
    frame.sample_rate = RATE
    mono = mono_float(frame)
    assert mono.dtype == np.float32 and mono.shape == (FRAME,)
    assert np.allclose(mono, 0.25)


def test_a_frame_of_float_samples_is_refused() -> None:
    frame = av.AudioFrame.from_ndarray(np.zeros((1, FRAME), np.float32), format="flt",
                                       layout="mono")
    with pytest.raises(ValueError, match="unexpected decoded audio format flt"):
        mono_float(frame)


def test_the_opus_encoder_takes_the_frames_and_gives_packets() -> None:
    encoder = opus_encoder()
    x = to_int16(tone(440, 60, RATE, amp=0.25))
    packets = [p for i in range(3)
               for p in encoder.encode(frame_of(x[i * FRAME:(i + 1) * FRAME], i * FRAME))]
    assert packets and all(0 < p.size < 400 for p in packets)
