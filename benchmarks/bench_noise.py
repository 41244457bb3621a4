"""Benchmark of the local server's input noise filter (``audio.input.noise_reduction``).

Figures are ratios measured in this run (the machine is shared and noisy):

* ``noise_filter_vs_silero_cpu`` — CPU time of the Speex filter (:class:`InputNoiseFilter`, the
  server's path: 20 ms PCM16 24 kHz chunks, resampling included) per second of audio, divided by
  the CPU time of one Silero VAD stream on the same audio in the same chunks (what the server
  already spends per session). Goal ≤ 1: the filter must not cost more than the VAD beside it.
* ``noise_filter_x_realtime`` — seconds of audio filtered per CPU second (sessions one core
  could filter). Goal ≥ 100.
* ``append_with_filter_vs_without`` — ``SessionCore.append_audio`` with noise_reduction on over
  off (the whole append path, batched-VAD mode as on the server: the VAD itself runs later).
* ``white_noise_attenuation_db`` — level of 5 s of white noise (−26 dBFS) minus its level after
  the filter (strength 1), after the first second: how much the filter removes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from realtime_nb.protocol import SessionCore
from realtime_nb.server import make_segmenter
from realtime_nb.server.engines.denoise import InputNoiseFilter, default_noise_filter
from realtime_nb.vad import SileroVAD

RATE = 24_000
CHUNK = 480  # 20 ms, what browsers and the SDK examples append
PCM = {"type": "audio/pcm", "rate": RATE}


def _audio(seconds: float) -> np.ndarray:
    """Speech-like test input: a 200 Hz pulse train with formant-ish noise bursts in pink-ish
    noise (the filter's cost does not depend on the content much; its output is not judged
    here)."""
    rng = np.random.default_rng(0)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    voiced = (np.sin(2 * np.pi * 200 * t) > 0.95) * 0.3 * (np.sin(2 * np.pi * 0.5 * t) > 0)
    noise = np.cumsum(rng.normal(0, 0.01, n))
    noise -= np.convolve(noise, np.ones(240) / 240, mode="same")
    x = voiced + noise + rng.normal(0, 0.01, n)
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def _cpu(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def bench_cost(seconds: float = 20.0) -> list[dict]:
    x = _audio(seconds)
    chunks = [x[i:i + CHUNK] for i in range(0, len(x), CHUNK)]
    raw = [c.tobytes() for c in chunks]

    def filter_all() -> None:
        filt = InputNoiseFilter(PCM)
        for b in raw:
            filt.process(b)

    vad = SileroVAD()

    def silero_all() -> None:
        stream = vad.new_stream(RATE)
        for c in chunks:
            stream.process(c)

    filter_all()  # warm-up (the latency table, imports)
    silero_all()
    t_filter = _cpu(filter_all)
    t_silero = _cpu(silero_all)

    def append_all(nr: dict | None) -> Callable[[], None]:
        def run() -> None:
            core = SessionCore(vad_model=vad, make_segmenter=make_segmenter,
                               noise_filter=default_noise_filter)
            core.defer_vad = True
            core.handle({"type": "session.update", "session": {"type": "realtime", "audio": {
                "input": {"noise_reduction": nr}}}})
            for b in raw:
                core.append_audio(b)
                core.take_vad_input()
        return run

    t_on = _cpu(append_all({"type": "near_field"}))
    t_off = _cpu(append_all(None))
    ratio = t_filter / t_silero
    return [
        {
            "name": "noise_filter_vs_silero_cpu",
            "value": round(ratio, 3),
            "unit": "x Silero's CPU per second of audio",
            "reference": f"one Silero stream on the same audio: {t_silero / seconds * 1000:.2f} "
                         "ms CPU per s",
            "goal": "<= 1",
            "met": bool(ratio <= 1),
            "detail": f"filter {t_filter / seconds * 1000:.2f} ms CPU per s of audio, "
                      f"{CHUNK}-sample chunks at 24 kHz",
        },
        {
            "name": "noise_filter_x_realtime",
            "value": round(seconds / t_filter, 1),
            "unit": "x real time (sessions per core)",
            "reference": "real time",
            "goal": ">= 100",
            "met": bool(seconds / t_filter >= 100),
            "detail": f"{seconds:.0f} s of audio in {t_filter * 1000:.0f} ms CPU",
        },
        {
            "name": "append_with_filter_vs_without",
            "value": round(t_on / t_off, 2),
            "unit": "x the append path without noise_reduction",
            "reference": f"append path without the filter: {t_off / seconds * 1000:.2f} ms CPU "
                         "per s of audio",
            "goal": "informational",
            "met": True,
            "detail": f"with the filter: {t_on / seconds * 1000:.2f} ms CPU per s",
        },
    ]


def bench_attenuation() -> list[dict]:
    rng = np.random.default_rng(1)
    noise = np.round(rng.normal(0, 0.05, 5 * RATE) * 32767).astype(np.int16)
    filt = default_noise_filter({"type": "near_field", "strength": 1.0}, PCM)
    assert filt is not None
    data = noise.tobytes()
    out = np.frombuffer(b"".join(filt.process(data[i:i + 2 * CHUNK])
                                 for i in range(0, len(data), 2 * CHUNK)), "<i2")

    def level(v: np.ndarray) -> float:
        return 20 * np.log10(np.sqrt(np.mean((v[RATE:] / 32768.0) ** 2)))

    drop = level(noise) - level(out)
    return [{
        "name": "white_noise_attenuation_db",
        "value": round(float(drop), 1),
        "unit": "dB",
        "reference": f"the same noise unfiltered ({level(noise):.1f} dBFS)",
        "goal": ">= 15",
        "met": bool(drop >= 15),
        "detail": "strength 1 (30 dB suppression depth), after the first second",
    }]


def run(seconds: float = 20.0) -> list[dict]:
    """Every figure; ``seconds`` of audio for the cost figures (smaller for a smoke test)."""
    return bench_cost(seconds) + bench_attenuation()


if __name__ == "__main__":
    for row in run():
        mark = "OK  " if row["met"] else "MISS"
        print(f"{mark} {row['name']}: {row['value']} {row['unit']} (goal {row['goal']})")
        print(f"     reference: {row['reference']}; {row['detail']}")
