"""A bad-audio corpus through ``realtime_nb.audio`` and ``Session.send_audio``, end to end.

Each input is either converted correctly — the server receives exactly ``to_pcm16(input)``, in
order, in chunks of at most 100 ms, and it is the input's signal (same pitch, same duration), not
noise — or refused: ``AudioError`` from the audio module, ``RealtimeError("invalid_audio")`` from
the Session, and then nothing reaches the wire. Nothing crashes or hangs (every send is bounded in
time), and a 30-minute recording converts in time and memory linear in its length without holding
the event loop.

Decoding details (every container and sample format, truncated and chunked MediaRecorder files,
raw PCM declarations, float32-as-PCM16) are pinned down in tests/test_audio_*.py; this file puts
the corpus through the Session and checks what actually reaches a server.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audio_fixtures import chromium_webm, correlation, encode_file, spoken, spoken_wav
from reliability_fixtures import dominant_hz, long_webm_opus, tone_f32, until

from realtime_nb import RealtimeError, Session
from realtime_nb.audio import AudioError, to_pcm16
from realtime_nb.client import AudioWarning
from realtime_nb.client.testing import FakeRealtimeServer

__all__ = ["chromium_webm", "spoken", "spoken_wav"]  # fixtures, used by name

SEND_TIMEOUT_S = 30.0


@pytest.fixture
async def session() -> AsyncIterator[tuple[Session, FakeRealtimeServer]]:
    """A connected Session (manual mode) and the fake server it talks to (no VAD: the server
    only stores what it gets)."""
    async with FakeRealtimeServer(vad=False) as fake, Session(url=fake.url) as s:
        await s.update(turn_detection=None)
        yield s, fake


def received_appends(fake: FakeRealtimeServer) -> list[bytes]:
    return [base64.b64decode(e["audio"]) for e in fake.received
            if e.get("type") == "input_audio_buffer.append"]


def count_appends(fake: FakeRealtimeServer) -> int:
    return sum(1 for e in fake.received if e.get("type") == "input_audio_buffer.append")


async def send_and_collect(s: Session, fake: FakeRealtimeServer, source: Any,
                           sample_rate: int | None = None) -> tuple[Any, list[bytes]]:
    """``send_audio`` bounded in time; returns its result and the chunks the server got for it."""
    before = count_appends(fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)
        async with asyncio.timeout(SEND_TIMEOUT_S):
            sent = await s.send_audio(source, sample_rate)
    await until(lambda: count_appends(fake) - before == sent.chunks, 10,
                "every chunk at the server")
    return sent, received_appends(fake)[before:]


def check_chunks(chunks: list[bytes]) -> None:
    assert chunks and all(0 < len(c) <= 4800 and len(c) % 2 == 0 for c in chunks)
    assert all(len(c) == 4800 for c in chunks[:-1]), "only the last chunk may be short"


# ----------------------------------------------------------------------------- conversions
def _wav(x: np.ndarray, rate: int, codec: str, fmt: str) -> bytes:
    return encode_file(x.astype(np.float64), rate, "wav", codec, fmt)


def _channels(n: int, seconds: float = 1.0, rate: int = 48_000) -> np.ndarray:
    """``n`` channels, a 440 Hz tone in the first only (the others silent)."""
    x = np.zeros((n, round(seconds * rate)))
    x[0] = tone_f32(440, seconds, rate, amp=0.6)
    return x


#: name -> (source builder, sample_rate for send_audio, amplitude of the mono tone expected:
#: 0.3 for the one-channel tones, the 0.6 tone averaged over 2 or 6 channels otherwise)
CONVERTED: dict[str, tuple[Callable[[], Any], int | None, float]] = {
    "8-bit WAV 22.05 kHz": (lambda: _wav(tone_f32(440, 1, 22_050), 22_050, "pcm_u8", "u8"),
                            None, 0.3),
    "24-bit WAV 48 kHz": (lambda: _wav(tone_f32(440, 1, 48_000), 48_000, "pcm_s24le", "s32"),
                          None, 0.3),
    "float32 WAV 44.1 kHz": (lambda: _wav(tone_f32(440, 1, 44_100), 44_100, "pcm_f32le", "flt"),
                             None, 0.3),
    "float32 WAV 48 kHz": (lambda: _wav(tone_f32(440, 1, 48_000), 48_000, "pcm_f32le", "flt"),
                           None, 0.3),
    "float32 array 44.1 kHz": (lambda: tone_f32(440, 1, 44_100), 44_100, 0.3),
    "float32 array 48 kHz": (lambda: tone_f32(440, 1, 48_000), 48_000, 0.3),
    "stereo WAV, tone on the left": (
        lambda: encode_file(_channels(2), 48_000, "wav", "pcm_s16le", "s16"), None, 0.3),
    "5.1 WAV, tone on one channel": (
        lambda: encode_file(_channels(6), 48_000, "wav", "pcm_s16le", "s16"), None, 0.1),
    "5.1 FLAC, tone on one channel": (
        lambda: encode_file(_channels(6), 48_000, "flac", "flac", "s16"), None, 0.1),
    "5.1 float32 array (samples, channels)": (
        lambda: _channels(6).T.astype(np.float32), 48_000, 0.1),
}


@pytest.mark.parametrize("name", list(CONVERTED))
async def test_odd_formats_reach_the_server_as_the_same_tone(
    name: str, session: tuple[Session, FakeRealtimeServer]
) -> None:
    """Whatever the container, bit depth, rate or channel count, the server gets exactly the
    audio module's PCM16: a 440 Hz tone of the same duration and of the downmixed level."""
    s, fake = session
    build, rate, amplitude = CONVERTED[name]
    source = build()
    expected = to_pcm16(source, rate)
    sent, chunks = await send_and_collect(s, fake, source, rate)
    check_chunks(chunks)
    got = b"".join(chunks)
    assert got == expected
    assert sent.duration_ms == pytest.approx(1000, abs=1)
    assert dominant_hz(got) == pytest.approx(440, abs=2), "pitch kept: the rate was read right"
    reference = tone_f32(440, 1, 24_000, amp=amplitude)
    samples = np.frombuffer(got, "<i2") / 32768.0
    assert correlation(samples, reference) > 0.99
    rms = float(np.sqrt(np.mean(samples ** 2)))
    assert rms == pytest.approx(float(np.sqrt(np.mean(reference ** 2))), rel=0.05)


async def test_a_single_sample_is_sent_and_flagged_too_short(
    session: tuple[Session, FakeRealtimeServer]
) -> None:
    s, fake = session
    one = np.array([12_000], dtype=np.int16)
    with pytest.warns(AudioWarning, match="too_short"):
        sent = await s.send_audio(one, 24_000)
    await until(lambda: count_appends(fake) == 1)
    assert received_appends(fake) == [one.astype("<i2").tobytes()]
    assert sent.chunks == 1 and "too_short" in [f.code for f in sent.findings]


async def test_under_100_ms_is_sent_then_its_commit_is_refused_locally(
    session: tuple[Session, FakeRealtimeServer]
) -> None:
    """50 ms converts and is appended (with a too_short warning); the commit that would fail at
    the service is refused before the wire with the service's numbers."""
    s, fake = session
    wav = _wav(tone_f32(440, 0.05, 16_000), 16_000, "pcm_s16le", "s16")
    with pytest.warns(AudioWarning, match="too_short"):
        await s.send_audio(wav)
    assert s.input_buffer_ms == pytest.approx(50)
    with pytest.raises(RealtimeError) as info:
        await s.commit()
    assert info.value.code == "input_audio_buffer_commit_empty" and "50.00ms" in info.value.message
    assert not [e for e in fake.received if e["type"] == "input_audio_buffer.commit"]


async def test_a_truncated_browser_recording_sends_its_decodable_prefix(
    session: tuple[Session, FakeRealtimeServer], chromium_webm: bytes
) -> None:
    """A MediaRecorder file cut at 60 % (an upload that stopped early): the server gets the
    audio of the prefix — the same samples as the start of the whole file's conversion."""
    s, fake = session
    full = to_pcm16(chromium_webm)
    cut = chromium_webm[: len(chromium_webm) * 6 // 10]
    _sent, chunks = await send_and_collect(s, fake, cut)
    got = b"".join(chunks)
    check_chunks(chunks)
    assert got == to_pcm16(cut)
    assert 0.4 * len(full) < len(got) < 0.8 * len(full)
    a = np.frombuffer(got, "<i2").astype(np.float64)
    b = np.frombuffer(full[: len(got)], "<i2").astype(np.float64)
    assert correlation(a[:-2400], b[:-2400]) > 0.99  # the last chunk may differ by resampling


# ----------------------------------------------------------------------------- refusals
def _random_file(tmp_path: Path, name: str, seed: int) -> Path:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 8000, np.uint8).tobytes())
    return path


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.wav"
    path.write_text("hello\n" * 50)
    return path


def _nan_wav(bad: float) -> bytes:
    x = tone_f32(440, 0.5, 24_000).astype(np.float64)
    x[1000] = bad
    return encode_file(x, 24_000, "wav", "pcm_f32le", "flt")


REFUSED: dict[str, tuple[Callable[[Path], Any], int | None, str]] = {
    "random bytes named .webm": (lambda d: _random_file(d, "clip.webm", 1), None,
                                 "Cannot decode"),
    "random bytes named .wav": (lambda d: _random_file(d, "clip.wav", 2), None,
                                 "Cannot decode"),
    "random bytes named .ogg": (lambda d: _random_file(d, "clip.ogg", 3), None,
                                 "Cannot decode"),
    "a text file named .wav": (_text_file, None, "known container header"),
    "a missing file": (lambda d: d / "missing.wav", None, "No such audio file"),
    "float32 WAV holding a NaN": (lambda d: _nan_wav(np.nan), None, "NaN or infinite"),
    "float32 WAV holding an inf": (lambda d: _nan_wav(np.inf), None, "NaN or infinite"),
    "float32 array holding a NaN": (lambda d: np.where(np.arange(2400) == 7, np.nan,
                                                       tone_f32(440, 0.1, 24_000)), 24_000,
                                    "NaN or infinite"),
    "float32 array holding -inf": (lambda d: np.full(2400, -np.inf, np.float32), 24_000,
                                   "NaN or infinite"),
    "float array without its rate": (lambda d: tone_f32(440, 0.1, 48_000), None,
                                     "sample_rate is missing"),
    "a WAV header with no samples": (lambda d: _wav(np.zeros(10), 24_000, "pcm_s16le",
                                                    "s16")[:44], None, "as WAV"),
    "the first 10 bytes of a WebM file": (lambda d: b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42",
                                          None, "WebM"),
}


@pytest.mark.parametrize("name", list(REFUSED))
async def test_unusable_audio_is_refused_clearly_and_nothing_is_sent(
    name: str, tmp_path: Path, session: tuple[Session, FakeRealtimeServer]
) -> None:
    s, fake = session
    build, rate, words = REFUSED[name]
    source = build(tmp_path)
    with pytest.raises(AudioError, match=words):
        to_pcm16(source, rate)
    with pytest.raises(RealtimeError) as info:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await s.send_audio(source, rate)
    assert info.value.code == "invalid_audio" and info.value.source == "client"
    assert words in info.value.message and info.value.hint
    assert isinstance(info.value.__cause__, AudioError)
    await s.clear(wait=True)  # a round trip: anything sent before it has arrived
    assert received_appends(fake) == []
    assert not s.events.of_type("input_audio_buffer.append")
    assert s.state == "connected"


async def test_empty_bytes_are_refused_with_the_sessions_error_type(
    session: tuple[Session, FakeRealtimeServer]
) -> None:
    """The Session has one error type (its module docstring): an empty input, like every other
    unusable input, is ``RealtimeError("invalid_audio")``, and is reported in ``last_error``."""
    s, fake = session
    for empty in (b"", b"\x01"):  # one byte is no whole sample either
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AudioWarning)
            with pytest.raises(RealtimeError) as info:
                await s.send_audio(empty)
        assert info.value.code == "invalid_audio"
    assert received_appends(fake) == []


async def test_an_audio_refusal_reaches_last_error_and_error_callbacks(
    tmp_path: Path, session: tuple[Session, FakeRealtimeServer]
) -> None:
    """The Session docstring promises that awaited helpers raise RealtimeError *and* that
    ``last_error`` and ``on("error")`` carry it — as they do for float32 bytes (refused by
    the same method)."""
    s, _fake = session
    seen: list[dict[str, Any]] = []
    s.on("error", seen.append)
    with pytest.raises(RealtimeError) as info:
        await s.send_audio(tmp_path / "missing.wav")
    assert s.last_error is info.value
    assert seen and seen[-1]["realtime_error"] is info.value


def test_integer_scaled_float_wav_is_refused_like_the_same_array(spoken: Any) -> None:
    """int16 sample values written into a float32 WAV (a common soundfile/scipy mistake) play as
    full-scale clipping. ``from_array`` refuses such samples ("they look integer-scaled"); the
    same samples inside a WAV file must not turn into noise instead."""
    x = spoken.samples.astype(np.float64)  # values up to ~27 000, float dtype
    with pytest.raises(AudioError, match="integer-scaled"):
        to_pcm16(x.astype(np.float32), spoken.sample_rate)
    wav = encode_file(x, spoken.sample_rate, "wav", "pcm_f32le", "flt")
    with pytest.raises(AudioError, match="integer-scaled"):
        to_pcm16(wav)


# ----------------------------------------------------------------------------- 30 minutes
_HUGE_SCRIPT = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from reliability_fixtures import dominant_hz, long_webm_opus
from realtime_nb.audio import to_pcm16

out = {}
for minutes in (3, 30):
    data = long_webm_opus(minutes)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c0 = time.process_time()
    pcm = to_pcm16(data)
    cpu = time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = len(pcm) // 2
    slices = [pcm[2 * i:2 * (i + 24000)] for i in (24000, n // 2, n - 48000)]
    out[minutes] = {"bytes": len(pcm), "input_bytes": len(data), "cpu_s": cpu,
                    "peak_delta_bytes": (peak - base) * 1024,
                    "pitch": [dominant_hz(s) for s in slices]}
    del pcm, data
print(json.dumps(out))
"""


def test_thirty_minutes_of_browser_opus_converts_in_linear_time_and_memory() -> None:
    """A 30-minute WebM/Opus recording (11 MB) converts to 86 MB of PCM16, the tone intact at
    the start, middle and end. In a fresh process (so that peak memory is its own): CPU time
    at most 2.5x proportional to a 3-minute recording's (no quadratic step), and the peak extra
    memory at most 16 bytes per output byte (the decoder holds float32 at 48 kHz: 8 bytes per
    output byte is the floor of a non-streaming design; measured about 12.5)."""
    proc = subprocess.run([sys.executable, "-c", _HUGE_SCRIPT, str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=240, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    small, huge = out["3"], out["30"]
    for minutes, r in ((3, small), (30, huge)):
        seconds = r["bytes"] / 48_000
        assert seconds == pytest.approx(minutes * 60, abs=minutes * 0.2 + 0.1)
        assert all(p == pytest.approx(440, abs=2) for p in r["pitch"]), r
    assert huge["cpu_s"] <= 2.5 * 10 * max(small["cpu_s"], 0.05), out
    assert huge["peak_delta_bytes"] <= 16 * huge["bytes"], (
        f"{huge['peak_delta_bytes'] / 2**20:.0f} MiB peak for {huge['bytes'] / 2**20:.0f} MiB "
        "of PCM16")


async def test_thirty_minutes_through_send_audio_keep_the_loop_free_and_lose_nothing(
    session: tuple[Session, FakeRealtimeServer]
) -> None:
    """While 30 minutes are converted (in a worker thread) and streamed as 18 000 appends, the
    event loop keeps ticking (no stall over 0.5 s), and the server, the Session's log and its
    input-buffer mirror all hold every chunk, in order."""
    s, fake = session
    data = long_webm_opus(30)
    gaps: list[float] = []
    stop = asyncio.Event()
    # What the whole test suite has piled up in this process is not the session's: freeze it
    # out of the collector, so a full collection (0.6 s over a heap of 1.5 M objects, measured)
    # scans what a kernel running this session would hold, not a thousand tests' leftovers.
    gc.collect()
    gc.freeze()

    async def heartbeat() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    beat = asyncio.ensure_future(heartbeat())
    try:
        async with asyncio.timeout(120):
            sent = await s.send_audio(data)
            await until(lambda: count_appends(fake) >= sent.chunks, 60, "every append")
    finally:
        stop.set()
        await beat
        gc.unfreeze()
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f} s"
    logged = [s.events.audio_of(e) for e in s.events.of_type("input_audio_buffer.append")]
    got = received_appends(fake)
    assert len(got) == sent.chunks == len(logged) >= 18_000
    assert got == logged
    total = sum(len(c) for c in got)
    assert total == sent.nbytes and s.input_buffer_ms == pytest.approx(total / 48)
    assert dominant_hz(got[9000] + got[9001]) == pytest.approx(440, abs=2)
