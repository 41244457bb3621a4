"""Benchmark of realtime_nb.lab: how fast an offline sweep runs, and the socket replay beside it.

One 60 s recording (espeak-ng phrases separated by 0.3–2.5 s pauses, light pink noise); a grid
of 100 server_vad settings (5 thresholds x 5 silence windows x 4 prefix paddings). Everything
runs in this process on one core (an inline executor; Silero uses one thread).

* ``lab_offline_per_setting_x_realtime`` — 60 s divided by the time one setting costs once the
  probabilities exist (segmentation + measurement against the yardstick). Goal ≥ 1000.
* ``lab_offline_sweep_x_realtime`` — the whole ``lab.sweep`` call (decoding, the one
  probability pass, the yardstick, 100 settings): 100 x 60 s of audio judged per second of work.
  Goal ≥ 1000.
* ``lab_settings_per_probability_pass`` — the reference measured in the same run: how many
  settings cost as much as one ``speech_probabilities`` pass over the recording. Goal ≥ 100
  (re-segmenting must be negligible next to the model).
* ``lab_socket_local_x_realtime`` — 8 of the settings replayed through real WebSocket sessions
  against a private local server (4 at a time, faster than real time); met when it runs ≥ 10x
  real time per setting *and* its turns equal the offline ones exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks import bench_vad
from realtime_nb import lab
from realtime_nb.audio import Audio
from realtime_nb.lab._corpus import InlineExecutor
from realtime_nb.lab._sweep import offline_batch, replay_audio
from realtime_nb.vad import default_speech_model, speech_probabilities

RATE = 24_000
PHRASES = (
    "turn on the kitchen lights please",
    "hello there. what is the weather like tomorrow in Paris",
    "I would like to book a table for two at eight",
    "can you remind me to call my sister",
    "play some quiet music",
)
GRID = {
    "threshold": [0.3, 0.4, 0.5, 0.6, 0.7],
    "silence_duration_ms": [200, 300, 500, 800, 1200],
    "prefix_padding_ms": [0, 150, 300, 500],
}


def recording_60s() -> Audio:
    """60 s of espeak-ng phrases separated by 0.3–2.5 s pauses, with light pink noise."""
    return bench_vad.recording_60s(PHRASES)


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def run() -> list[dict[str, Any]]:
    audio = recording_60s()
    seconds = audio.duration_ms / 1000
    settings = lab.expand_grid(GRID)
    n = len(settings)
    model = default_speech_model()
    speech_probabilities(Audio.silence(1000), model)  # load the model outside the timings

    tail = 1500
    replay = replay_audio(audio, tail)
    t_probs, probs = _best(lambda: speech_probabilities(replay, model), 3)
    ref = lab.auto_reference(probs, model.frame_ms)
    end_ms = len(replay.samples) * 1000 // RATE
    t_batch, records = _best(
        lambda: offline_batch(probs, model.frame_ms, end_ms, settings, ref, 20), 5)
    per_setting = t_batch / n
    turns = sum(r.n_turns for r in records)

    inline = InlineExecutor()
    t_sweep, result = _best(
        lambda: lab.sweep(audio, grid=GRID, executor=inline, tail_ms=tail, progress=False), 3)
    assert [r.turns for r in result] == [r.turns for r in records]

    socket_settings = settings[:: max(1, n // 8)][:8]
    offline8 = lab.sweep(audio, grid=socket_settings, executor=inline, tail_ms=tail,
                         progress=False)
    t0 = time.perf_counter()
    socket8 = lab.sweep(audio, grid=socket_settings, backend="local", tail_ms=tail,
                        concurrency=4, progress=False)
    t_socket = time.perf_counter() - t0
    agree = offline8.differences(socket8) == []
    socket_x = len(socket_settings) * (seconds + tail / 1000) / t_socket

    per_x = seconds / per_setting
    sweep_x = n * seconds / t_sweep
    ratio = t_probs / per_setting
    best = result.recommend()
    return [
        {
            "name": "lab_offline_per_setting_x_realtime",
            "value": per_x, "unit": "x real time",
            "reference": "60 s of audio / time of one setting (segmentation + measurement)",
            "goal": ">= 1000", "met": per_x >= 1000,
            "detail": (f"{n} settings in {t_batch * 1000:.1f} ms ({per_setting * 1e6:.0f} us "
                       f"each), {turns} turns in all"),
        },
        {
            "name": "lab_offline_sweep_x_realtime",
            "value": sweep_x, "unit": "x real time",
            "reference": f"{n} x 60 s / whole lab.sweep() call on one core",
            "goal": ">= 1000", "met": sweep_x >= 1000,
            "detail": (f"{t_sweep * 1000:.0f} ms for the sweep, of which the probability pass "
                       f"{t_probs * 1000:.0f} ms; recommended {lab.settings_label(best.settings)}"),
        },
        {
            "name": "lab_settings_per_probability_pass",
            "value": ratio, "unit": "settings",
            "reference": "speech_probabilities() over the same 61.5 s, same run",
            "goal": ">= 100", "met": ratio >= 100,
            "detail": (f"probabilities {t_probs * 1000:.0f} ms "
                       f"({(seconds + tail / 1000) / t_probs:.0f}x real time); one setting "
                       f"{per_setting * 1e6:.0f} us"),
        },
        {
            "name": "lab_socket_local_x_realtime",
            "value": socket_x, "unit": "x real time per setting",
            "reference": "8 settings x 61.5 s over WebSocket sessions / wall time",
            "goal": ">= 10 and identical to offline", "met": agree and socket_x >= 10,
            "detail": (f"{t_socket:.2f} s for 8 sessions (4 at a time); turns identical to "
                       f"offline: {agree}"),
        },
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure['name']}: {figure['value']:.4g} {figure['unit']} (goal {figure['goal']}; "
              f"{'met' if figure['met'] else 'NOT met'}) — {figure['detail']}")
