"""``sweep()``: one recording, many turn-detection settings, one record per setting.

Backends:

* ``"offline"`` (default) — the local server's own VAD run directly: speech probabilities are
  computed once for the recording, then each setting only re-runs the segmentation
  (:func:`realtime_nb.vad.segment`, the very rules the server applies live). Microseconds per
  setting; no sockets.
* ``"local"`` — a real WebSocket session per setting against the local server (a private one
  for the sweep, or ``url=`` yours), audio sent faster than real time. Gives exactly the offline
  turns; it is there to prove it, and to measure the transport.
* ``"openai"`` — a session per setting against the OpenAI Realtime API (``OPENAI_API_KEY``),
  paced at real time. Each setting costs one session of the recording's length.

The replayed audio is the recording at 24 kHz followed by ``tail_ms`` of digital silence, so the
last turn can close; every backend gets these very samples.

semantic_vad settings are judged by the end-of-turn model (Smart Turn v3.2) exactly as the local
server judges them live: offline, each pause's question is answered once per recording and shared
by every eagerness. Without the model (``pipecat-ai`` missing, or ``turn_model=False``) both the
offline backend and the private local server use the length-rule fallback; a warning says so and
:attr:`SweepResult.semantic_vad` records it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from realtime_nb.audio import Audio
from realtime_nb.vad import (
    SemanticVadSettings,
    TurnDetectionSettings,
    segment,
    speech_probabilities,
)

from ._capture import RATE, recording_from
from ._records import SettingResult, SweepResult, Turn
from ._reference import (
    DEFAULT_PAUSE_MS,
    DEFAULT_TOLERANCE_MS,
    Reference,
    auto_reference,
)
from ._settings import DEFAULT_GRID, Grid, expand_grid
from ._socket import LocalServerThread, SocketJob, run_socket_job

__all__ = ["BACKENDS", "asweep", "offline_batch", "replay_audio", "sweep"]

BACKENDS = ("offline", "local", "openai")
#: With ``executor=None``, a process pool is started only when the rest of the sweep is
#: estimated to take longer than this in the calling process (seconds).
AUTO_POOL_S = 2.0
_PROBE = 8  # settings run in the calling process to estimate the cost per setting


def _tail_for(settings: Sequence[TurnDetectionSettings], frame_ms: float) -> int:
    """Silence that closes a turn under every setting: the longest silence window + margin."""
    need = 0.0
    for s in settings:
        longest = s.required_silence_ms(0.0) if isinstance(s, SemanticVadSettings) else float(
            s.silence_duration_ms)
        need = max(need, longest)
    frames = math.ceil(need / frame_ms) + 3
    return max(1000, int(math.ceil(frames * frame_ms / 100.0) * 100))


def replay_audio(recording: Audio, tail_ms: int) -> Audio:
    """The samples every backend replays: the recording at 24 kHz plus ``tail_ms`` of silence."""
    return Audio.concat([recording.resample(RATE), Audio.silence(tail_ms, RATE)], RATE)


def _end_ms(audio: Audio) -> int:
    return len(audio.samples) * 1000 // audio.sample_rate


def offline_batch(
    probs: np.ndarray,
    frame_ms: float,
    end_ms: int,
    settings: Sequence[TurnDetectionSettings],
    reference: Reference,
    tolerance_ms: float,
    decide: Callable[[int, int], float] | None = None,
) -> list[SettingResult]:
    """Segment and measure a batch of settings (a picklable job for any executor; ``decide``
    answers semantic_vad's end-of-turn questions, see :func:`realtime_nb.vad.segment`)."""
    out: list[SettingResult] = []
    for s in settings:
        turns = []
        for seg in segment(probs, frame_ms, s, end_ms=end_ms, decide=decide):
            onset_frame = round(seg.onset_ms / frame_ms)
            turns.append(Turn(
                start_ms=seg.start_ms, end_ms=seg.end_ms, closed=seg.closed,
                onset_ms=seg.onset_ms, offset_ms=seg.offset_ms,
                started_at_ms=float(round((onset_frame + 1) * frame_ms)),
                stopped_at_ms=float(seg.end_ms) if seg.closed else None,
                committed_at_ms=float(seg.end_ms) if seg.closed else None,
            ))
        out.append(SettingResult.build(s, turns, reference, backend="offline",
                                       tolerance_ms=tolerance_ms))
    return out


def _socket_result(job: SocketJob, reference: Reference, tolerance_ms: float, backend: str
                   ) -> SettingResult:
    turns = run_socket_job(job)
    return SettingResult.build(job.settings, turns, reference, backend=backend,
                               tolerance_ms=tolerance_ms)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="setting", disable=not enabled, delay=0.5,
                leave=False)


def _workers_of(executor: Any) -> int:
    n = getattr(executor, "_max_workers", None)
    return n if isinstance(n, int) and n > 0 else (os.cpu_count() or 1)


def _batches(items: Sequence[Any], parts: int) -> list[list[Any]]:
    parts = max(1, min(parts, len(items)))
    size = math.ceil(len(items) / parts)
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _gather(executor: Any, fn: Callable[..., list[Any]], jobs: Iterable[tuple[Any, ...]],
            sizes: Sequence[int], bar: Any) -> list[list[Any]]:
    """Submit every job, advance the bar as each finishes, return results in job order."""
    futures = [executor.submit(fn, *args) for args in jobs]
    results: list[list[Any] | None] = [None] * len(futures)
    index = {id(f): i for i, f in enumerate(futures)}
    try:
        if all(isinstance(f, cf.Future) for f in futures):
            for f in cf.as_completed(futures):
                i = index[id(f)]
                results[i] = f.result()
                bar.update(sizes[i])
        else:  # executors whose futures only promise .result() (in submission order)
            for i, f in enumerate(futures):
                results[i] = f.result()
                bar.update(sizes[i])
    except BaseException:
        for f in futures:
            cancel = getattr(f, "cancel", None)
            if callable(cancel):
                cancel()
        raise
    return [r if r is not None else [] for r in results]


def _pool_context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _run_offline(
    settings: list[TurnDetectionSettings], probs: np.ndarray, frame_ms: float, end_ms: int,
    reference: Reference, tolerance_ms: float, executor: Any, progress: bool,
) -> list[SettingResult]:
    common = (probs, frame_ms, end_ms)
    bar = _progress(len(settings), progress, "VAD sweep (offline)")
    try:
        if executor is None:
            probe = settings[:_PROBE]
            t0 = time.perf_counter()
            records = offline_batch(*common, probe, reference, tolerance_ms)
            per_setting = (time.perf_counter() - t0) / max(1, len(probe))
            bar.update(len(probe))
            rest = settings[len(probe):]
            if not rest:
                return records
            workers = os.cpu_count() or 1
            if per_setting * len(rest) < AUTO_POOL_S or workers < 2:
                for batch in _batches(rest, math.ceil(len(rest) / 64)):
                    records += offline_batch(*common, batch, reference, tolerance_ms)
                    bar.update(len(batch))
                return records
            with cf.ProcessPoolExecutor(max_workers=min(workers, 8),
                                        mp_context=_pool_context()) as pool:
                batches = _batches(rest, min(workers, 8) * 4)
                done = _gather(pool, offline_batch,
                               [(*common, b, reference, tolerance_ms) for b in batches],
                               [len(b) for b in batches], bar)
            return records + [r for part in done for r in part]
        batches = _batches(settings, _workers_of(executor) * 4)
        done = _gather(executor, offline_batch,
                       [(*common, b, reference, tolerance_ms) for b in batches],
                       [len(b) for b in batches], bar)
        return [r for part in done for r in part]
    finally:
        bar.close()


def _run_socket(
    settings: list[TurnDetectionSettings], replay: Audio, backend: str, url: str | None,
    realtime: bool, reference: Reference, tolerance_ms: float, executor: Any,
    concurrency: int | None, progress: bool, speech_model: Any, realtime_model: str,
    turn_model: Any = None,
) -> list[SettingResult]:
    pcm = replay.to_pcm16()
    end_ms = _end_ms(replay)
    server: LocalServerThread | None = None
    if backend == "local" and url is None:
        server = LocalServerThread(speech_model, turn_model=turn_model).start()
        url = server.url
    own_pool = executor is None
    if own_pool:
        executor = cf.ThreadPoolExecutor(
            max_workers=concurrency or (4 if backend == "local" else 8),
            thread_name_prefix="realtime_nb-lab")
    bar = _progress(len(settings), progress, f"VAD sweep ({backend})")
    try:
        jobs = [SocketJob(settings=s, pcm=pcm, end_ms=end_ms, url=url,
                          openai=backend == "openai", realtime_model=realtime_model,
                          realtime=realtime)
                for s in settings]
        done = _gather(executor, _socket_batch,
                       [([j], reference, tolerance_ms, backend) for j in jobs],
                       [1] * len(jobs), bar)
        return [r for part in done for r in part]
    finally:
        bar.close()
        if own_pool:
            executor.shutdown(wait=True)
        if server is not None:
            server.stop()


def _socket_batch(jobs: list[SocketJob], reference: Reference, tolerance_ms: float,
                  backend: str) -> list[SettingResult]:
    return [_socket_result(j, reference, tolerance_ms, backend) for j in jobs]


def sweep(
    audio: Any,
    sample_rate: int | None = None,
    grid: Grid | TurnDetectionSettings = DEFAULT_GRID,
    backend: str = "offline",
    executor: cf.Executor | None = None,
    *,
    reference: Reference | Sequence[Sequence[float]] | None = None,
    url: str | None = None,
    realtime: bool | None = None,
    concurrency: int | None = None,
    tail_ms: int | None = None,
    pause_ms: float = DEFAULT_PAUSE_MS,
    tolerance_ms: float = DEFAULT_TOLERANCE_MS,
    speech_model: Any = None,
    realtime_model: str = "gpt-realtime",
    progress: bool = True,
    turn_model: Any = None,
) -> SweepResult:
    """Replay one recording under every setting of ``grid``; one :class:`SettingResult` each.

    Args:
        audio: the recording — an ``Audio``, a file, container bytes, a numpy array (give
            ``sample_rate``), mic chunks, a :class:`~realtime_nb.lab.Recorder`, or a session /
            event log (the audio it appended). Brought to 24 kHz.
        grid: parameter → values (Cartesian product), or a list of settings / wire dicts
            (see :mod:`realtime_nb.lab._settings`). Default: 4 thresholds x 5 silence windows.
        backend: ``"offline"`` (default), ``"local"`` or ``"openai"`` (module docstring).
        executor: any ``concurrent.futures.Executor`` (a process pool, Dask's
            ``client.get_executor()``, a Ray-backed executor...) to spread the work. ``None``:
            offline, the calling process, plus a process pool when the rest of the sweep would
            take over ``AUTO_POOL_S`` seconds; socket backends, a thread pool of ``concurrency``
            sessions (4 local, 8 OpenAI).
        reference: speech segments to measure against (``(start_ms, end_ms)`` pairs or a
            :class:`Reference`); default: derived from the recording's speech probabilities.
        url: a running server for the ``"local"`` backend (default: a private one).
        realtime: pace the socket replay at real time (default: True for OpenAI only).
        tail_ms: silence appended to close the last turn (default: the longest silence window
            in the grid plus a margin, at least 1 s).
        pause_ms / tolerance_ms: the yardstick's utterance pause and error tolerance.
        speech_model: the speech model (default Silero, as the local server).
        realtime_model: the OpenAI model for ``backend="openai"``.
        progress: show a progress bar (tqdm) for sweeps that take more than half a second.
        turn_model: the end-of-turn model for semantic_vad settings (default: Smart Turn v3.2
            when ``pipecat-ai`` is installed, as the local server; ``False``: the length-rule
            fallback). Compare ``grid=[{"eagerness": [...]}, {"silence_duration_ms": [...]}]``
            to see semantic_vad and server_vad on the same recording.

    The speech probabilities are always computed once (they feed the offline segmentation and
    the default yardstick). Returns a :class:`SweepResult` in grid order. Blocks until done: from
    a coroutine, or against a server running on the calling event loop, use :func:`asweep`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if url is not None and backend == "offline":
        raise ValueError("url= is for the socket backends: pass backend='local' with it.")
    settings = expand_grid(grid)
    if backend == "openai" and url is None:
        from realtime_nb.client.backend import resolve_backend

        resolve_backend("openai", None, None, realtime_model)  # no key: fail before any work
    if speech_model is None:
        from realtime_nb.vad import default_speech_model

        speech_model = default_speech_model()
    frame_ms = float(speech_model.frame_ms)
    recording = recording_from(audio, sample_rate)
    tail = _tail_for(settings, frame_ms) if tail_ms is None else int(tail_ms)
    if tail < 0:
        raise ValueError(f"tail_ms must be >= 0, got {tail_ms!r}")
    replay = replay_audio(recording, tail)
    probs = speech_probabilities(replay, speech_model)
    end_ms = _end_ms(replay)
    ref = (auto_reference(probs, frame_ms, pause_ms=pause_ms) if reference is None
           else Reference.coerce(reference))
    semantic = [s for s in settings if isinstance(s, SemanticVadSettings)]
    model, rule = _turn_model(turn_model, bool(semantic), backend)
    if backend == "offline":
        plain: list[TurnDetectionSettings] = [
            s for s in settings if not isinstance(s, SemanticVadSettings)]
        done = (_run_offline(plain, probs, frame_ms, end_ms, ref, tolerance_ms, executor,
                             progress) if plain else [])
        if semantic:  # in this process: the model's answers are shared by every eagerness
            from realtime_nb.vad.turn import TurnDecisions

            decide = TurnDecisions(model, replay.samples) if model is not None else None
            done += offline_batch(probs, frame_ms, end_ms, semantic, ref, tolerance_ms, decide)
        by_setting = {r.settings: r for r in done}
        records = [by_setting[s] for s in settings]
    else:
        pace = (backend == "openai") if realtime is None else bool(realtime)
        records = _run_socket(settings, replay, backend, url, pace, ref, tolerance_ms, executor,
                              concurrency, progress, speech_model, realtime_model,
                              turn_model=False if turn_model is False else model)
    result = SweepResult(records, audio=replay, probabilities=probs, frame_ms=frame_ms,
                         reference=ref, backend=backend, tail_ms=tail, tolerance_ms=tolerance_ms)
    result.semantic_vad = rule
    return result


def _turn_model(turn_model: Any, needed: bool, backend: str) -> tuple[Any, str | None]:
    """The end-of-turn model for semantic settings and how semantic_vad was judged (for the
    result), warning when the length-rule fallback stands in for the model."""
    if not needed or backend == "openai":
        return None, ("the service" if needed else None)
    from realtime_nb.vad.turn import default_turn_model, turn_model_status

    if turn_model is False:
        model, why = None, "length-rule fallback: turn_model=False"
    elif turn_model is not None:
        model, why = turn_model, str(getattr(turn_model, "name", type(turn_model).__name__))
    else:
        model = default_turn_model()
        why = turn_model_status()
    if model is None:
        warnings.warn(f"semantic_vad settings are judged by the {why} — it does not listen to "
                      "what was said; install the 'smartturn' extra (pipecat-ai) for the model.",
                      stacklevel=3)
    return model, why



async def asweep(*args: Any, **kwargs: Any) -> SweepResult:
    """:func:`sweep` in a worker thread, awaitable: the event loop keeps running meanwhile.

    Use it from coroutines and notebooks (the kernel stays responsive), and whenever the server
    you sweep against runs on the calling loop (``async with LocalServer() as s:
    await lab.asweep(audio, backend="local", url=s.url)``) — the blocking :func:`sweep` would
    stall that server.
    """
    return await asyncio.to_thread(sweep, *args, **kwargs)
