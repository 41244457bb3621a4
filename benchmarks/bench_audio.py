"""Benchmark of realtime_nb.audio: WebM/Opus (a browser recording) to PCM16 24 kHz mono.

The input is 60 s of espeak-ng speech encoded as a browser's MediaRecorder would send it:
WebM/Opus, 48 kHz, mono, 128 kb/s (ipywebrtc's ``audioBitsPerSecond``), 20 ms packets. It is
made once with PyAV and kept in ``benchmarks/_data/`` (ignored by git).

Figures, all from one run, with both sides repeated and their medians compared:

* ``webm_opus_to_pcm16_vs_ffmpeg_cli`` — ``to_pcm16(webm_bytes)`` in process against the
  ffmpeg command line doing the same conversion of the same file
  (``ffmpeg -i in.webm -f s16le -ac 1 -ar 24000 -``, process start included, output read
  from a pipe): ffmpeg's time / ours. Goal >= 1.5.
* ``webm_opus_to_pcm16_x_realtime`` — 60 s of audio / our median time. Goal >= 500.
* ``webm_opus_to_pcm16_agreement_with_ffmpeg`` — correlation of our PCM16 with ffmpeg's (the
  same Opus decoder, different resamplers: soxr vs swresample). Goal >= 0.999, lengths equal
  within 2 ms.
* ``decode_then_soxr_vs_pyav_resampler`` — the design choice: PyAV's own ``AudioResampler``
  (swresample, straight to s16 mono 24 kHz inside the decode loop) / ours (decode to float,
  one soxr pass). Goal >= 1 (ours is the faster one).
* ``parallel_opus_decode_speedup`` — ``to_pcm16`` with Opus decoded sequentially / with the
  parallel segment decoding used for long Opus streams (on 2+ cores). Goal >= 1.
"""

from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._speech import espeak
from realtime_nb.audio import Audio, to_pcm16
from realtime_nb.audio import _parallel as parallel_decoding

SECONDS = 60
REPEATS = 7
DATA_DIR = Path(__file__).parent / "_data"
TEXT = (
    "Realtime audio in a notebook should just work. The browser records the microphone, "
    "the kernel converts it, and the model answers in a voice of its own. "
)


def _speech_48k(seconds: float) -> Audio:
    one = espeak(TEXT, 48_000)
    reps = int(np.ceil(seconds * 1000 / one.duration_ms))
    return Audio.concat([one] * reps).slice_ms(0, seconds * 1000)


def _encode_webm_opus(audio: Audio) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48_000, layout="mono")
        stream.codec_context.bit_rate = 128_000
        samples = audio.samples
        for i in range(0, len(samples), 960):
            frame = av.AudioFrame.from_ndarray(samples[None, i:i + 960], format="s16",
                                               layout="mono")
            frame.sample_rate = 48_000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def webm_file(seconds: int = SECONDS) -> Path:
    """The benchmark's WebM/Opus file (made on first use, then reused)."""
    path = DATA_DIR / f"speech_{seconds}s_48k_mono_opus.webm"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_encode_webm_opus(_speech_48k(seconds)))
    return path


def _ffmpeg_cli(path: Path) -> bytes:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("bench_audio needs the ffmpeg command line as its reference")
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-f", "s16le", "-ac", "1", "-ar", "24000", "-"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def _pyav_resampler(data: bytes) -> bytes:
    """The alternative design: swresample to s16 mono 24 kHz inside PyAV's decode loop."""
    out = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=24_000)
        for frame in container.decode(stream):
            out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(out).astype("<i2").tobytes()


def _sequential_to_pcm16(data: bytes) -> bytes:
    saved = parallel_decoding.PARALLEL_MIN_SECONDS
    parallel_decoding.PARALLEL_MIN_SECONDS = float("inf")
    try:
        return to_pcm16(data)
    finally:
        parallel_decoding.PARALLEL_MIN_SECONDS = saved


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _medians(candidates: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median time of each candidate; the candidates take turns so drift hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():  # warm-up: imports, page cache, thread pool
        fn()
    for _ in range(repeats):
        for name, fn in candidates.items():
            times[name].append(_timed(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    x = a[:n].astype(np.float64)
    y = b[:n].astype(np.float64)
    return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))


def run(repeats: int = REPEATS) -> list[dict[str, Any]]:
    path = webm_file()
    data = path.read_bytes()
    medians = _medians({
        "ours": lambda: to_pcm16(data),
        "ffmpeg_cli": lambda: _ffmpeg_cli(path),
        "pyav_resampler": lambda: _pyav_resampler(data),
        "ours_sequential": lambda: _sequential_to_pcm16(data),
    }, repeats)
    ours = np.frombuffer(to_pcm16(data), "<i2")
    ffmpeg = np.frombuffer(_ffmpeg_cli(path), "<i2")
    sequential = np.frombuffer(_sequential_to_pcm16(data), "<i2")
    corr = _correlation(ours, ffmpeg)
    length_ms = (len(ours) - len(ffmpeg)) / 24
    seq_diff = int(np.abs(ours.astype(np.int32) - sequential).max())
    times = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in medians.items())
    ratio = medians["ffmpeg_cli"] / medians["ours"]
    x_rt = SECONDS / medians["ours"]
    vs_swr = medians["pyav_resampler"] / medians["ours"]
    speedup = medians["ours_sequential"] / medians["ours"]
    common = f"{SECONDS} s WebM/Opus 48 kHz mono 128 kb/s ({len(data) // 1024} KiB); medians of " \
             f"{repeats}: {times}"
    return [
        {"name": "webm_opus_to_pcm16_vs_ffmpeg_cli", "value": ratio, "unit": "x",
         "reference": "ffmpeg CLI, same conversion of the same file, in this run",
         "goal": ">= 1.5", "met": ratio >= 1.5, "detail": common},
        {"name": "webm_opus_to_pcm16_x_realtime", "value": x_rt, "unit": "x real time",
         "reference": f"{SECONDS} s of audio", "goal": ">= 500", "met": x_rt >= 500,
         "detail": common},
        {"name": "webm_opus_to_pcm16_agreement_with_ffmpeg", "value": corr,
         "unit": "correlation", "reference": "ffmpeg CLI output of the same file",
         "goal": ">= 0.999 and lengths within 2 ms",
         "met": corr >= 0.999 and abs(length_ms) <= 2,
         "detail": f"length difference {length_ms:+.2f} ms; parallel vs sequential decode "
                   f"differ by at most {seq_diff} LSB"},
        {"name": "decode_then_soxr_vs_pyav_resampler", "value": vs_swr, "unit": "x",
         "reference": "PyAV AudioResampler (swresample to s16 mono 24 kHz) in the decode loop",
         "goal": ">= 1", "met": vs_swr >= 1, "detail": common},
        {"name": "parallel_opus_decode_speedup", "value": speedup, "unit": "x",
         "reference": "the same to_pcm16 with Opus decoded sequentially", "goal": ">= 1",
         "met": speedup >= 1, "detail": common},
    ]


if __name__ == "__main__":
    for figure in run():
        mark = "met" if figure["met"] else "NOT met"
        print(f"{figure['name']}: {figure['value']:.4g} {figure['unit']} "
              f"(goal {figure['goal']}; {mark}) — {figure['reference']}")
        print(f"    {figure['detail']}")
