"""Sweeps over a corpus: many recordings, one grid, results per setting and per file.

People tune VAD for *their* audio — a folder of call recordings, a classroom set — not one clip.
:func:`sweep_corpus` runs the offline sweep of :func:`realtime_nb.lab.sweep` on every recording
(one work unit per recording: it is decoded, its speech probabilities are computed once and every
setting is segmented and measured, all on one worker; only the small per-setting records come
back, never audio), then pools the results per setting:

* the pooled record of a setting is measured as if the recordings were played one after another:
  counts are totals over the corpus, ``latency_ms`` is the median over every turn of every
  recording, ``latency_max_ms`` the worst, onset/offset errors the means over every utterance —
  so :meth:`CorpusResult.recommend` and :meth:`CorpusResult.heatmap` work on the corpus exactly
  as on one recording;
* :meth:`CorpusResult.per_file` (and ``per_file_dataframe``) keeps each recording's own record
  of each setting, to see which recordings a setting fails on.

Work runs through any ``concurrent.futures.Executor``; Dask's is the documented way to scale past
one machine::

    from dask.distributed import Client
    client = Client()                                  # or Client("tcp://scheduler:8786")
    result = lab.sweep_corpus("calls/", grid, executor=client.get_executor())

With a remote cluster, recordings named by path must be readable at that path on the workers
(shared storage); in-memory recordings (arrays, ``Audio``) are sent to the worker that sweeps them.
"""

from __future__ import annotations

import concurrent.futures as cf
import glob
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from realtime_nb.vad import TurnDetectionSettings

from ._records import RecordSequence, SettingResult
from ._reference import DEFAULT_PAUSE_MS, DEFAULT_TOLERANCE_MS, Reference
from ._settings import DEFAULT_GRID, Grid, expand_grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._recommend import Recommendation

__all__ = ["AUDIO_SUFFIXES", "Corpus", "CorpusResult", "FileSweep", "read_audacity_labels",
           "sweep_corpus"]

#: File suffixes a folder corpus picks up (whatever PyAV decodes; these are the usual ones).
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".webm", ".m4a", ".aiff", ".aif")
#: With ``executor=None``, a process pool is started only when the rest of the corpus is
#: estimated to take longer than this in the calling process (seconds).
AUTO_POOL_S = 4.0
_COUNTS = ("n_turns", "clipped_onsets", "premature_cutoffs", "false_starts",
           "missed_utterances", "missed_speech_ms", "errors")
_MEANS = ("onset_error_ms", "onset_abs_error_ms", "offset_error_ms", "offset_abs_error_ms")


def read_audacity_labels(path: str | os.PathLike[str]) -> list[tuple[float, float]]:
    """Speech segments from an Audacity label track export (``start<TAB>end<TAB>label`` per
    line, in seconds) as ``(start_ms, end_ms)`` pairs. Point labels (start == end) and the
    frequency lines of spectral labels (starting with ``\\``) are skipped."""
    out: list[tuple[float, float]] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("\\"):
            continue
        fields = line.split("\t")
        try:
            start, end = float(fields[0]), float(fields[1])
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{n}: not an Audacity label line "
                             f"(start<TAB>end<TAB>label, seconds): {line!r}") from None
        if end > start:
            out.append((start * 1000.0, end * 1000.0))
    return out


@dataclass(frozen=True)
class _Item:
    name: str
    source: Any
    labels: Any = None  # (start_ms, end_ms) pairs or a Reference, or None (auto yardstick)


class Corpus(Sequence[_Item]):
    """Named recordings, each with optional labels. Build one from

    * a folder (every file with a suffix in :data:`AUDIO_SUFFIXES`, recursively, sorted), or a
      glob pattern (``"calls/**/*.wav"``);
    * a list of files, arrays, ``Audio`` objects... (named by file stem, or ``item<i>``), or a
      mapping name → recording.

    ``labels``: a mapping name → ``(start_ms, end_ms)`` pairs (or a ``Reference``), a callable
    ``name -> pairs | None``, or ``"audacity"``: read ``<stem>.txt`` next to each audio file
    (an Audacity label track export; a file without one is measured against the automatic
    yardstick). ``sample_rate`` is for arrays, which carry none.
    """

    def __init__(self, recordings: Any, *, labels: Any = None, sample_rate: int | None = None
                 ) -> None:
        self.sample_rate = sample_rate
        named = _named(recordings)
        if not named:
            raise ValueError(f"The corpus {recordings!r} holds no recording.")
        names = [n for n, _ in named]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"Recording names must be unique; repeated: {dupes}. Pass a "
                             "mapping name -> recording to name them yourself.")
        self.items = [_Item(name, src, _labels_for(name, src, labels)) for name, src in named]

    @overload
    def __getitem__(self, i: int) -> _Item: ...
    @overload
    def __getitem__(self, i: slice) -> list[_Item]: ...
    def __getitem__(self, i: int | slice) -> _Item | list[_Item]:
        return self.items[i]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def names(self) -> list[str]:
        return [it.name for it in self.items]

    @property
    def labelled(self) -> int:
        """How many recordings carry labels."""
        return sum(it.labels is not None for it in self.items)

    def __repr__(self) -> str:
        return f"<Corpus {len(self)} recordings, {self.labelled} labelled>"


def _named(recordings: Any) -> list[tuple[str, Any]]:
    if isinstance(recordings, Corpus):
        return [(it.name, it.source) for it in recordings.items]
    if isinstance(recordings, Mapping):
        return [(str(k), v) for k, v in recordings.items()]
    if isinstance(recordings, str | os.PathLike):
        path = Path(recordings)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            return [(str(p.relative_to(path).with_suffix("")), p) for p in files]
        if glob.has_magic(str(recordings)):
            files = sorted(Path(p) for p in glob.glob(str(recordings), recursive=True)
                           if Path(p).is_file())
            return [(p.stem if len({q.stem for q in files}) == len(files) else str(p), p)
                    for p in files]
        if path.is_file():
            return [(path.stem, path)]
        raise FileNotFoundError(f"No folder, file or matching files at {recordings!r}.")
    if isinstance(recordings, Sequence) and not isinstance(recordings, bytes | bytearray):
        out = []
        for i, src in enumerate(recordings):
            name = Path(src).stem if isinstance(src, str | os.PathLike) else f"item{i}"
            out.append((name, src))
        return out
    raise TypeError("A corpus is a folder, a glob pattern, a list of recordings or a mapping "
                    f"name -> recording, not {type(recordings).__name__}.")


def _labels_for(name: str, source: Any, labels: Any) -> Any:
    if labels is None:
        return None
    if labels == "audacity":
        if not isinstance(source, str | os.PathLike):
            return None
        sidecar = Path(source).with_suffix(".txt")
        return read_audacity_labels(sidecar) if sidecar.exists() else None
    if callable(labels):
        return labels(name)
    if isinstance(labels, Mapping):
        return labels.get(name)
    raise TypeError("labels must be a mapping name -> segments, a callable, or 'audacity'.")


@dataclass(frozen=True)
class FileSweep:
    """One recording's part of a corpus sweep: its ``records`` (one per setting, grid order),
    the yardstick they were measured against, and the replayed length (tail included)."""

    name: str
    duration_ms: int
    reference: Reference
    records: tuple[SettingResult, ...]
    seconds: float = 0.0  # work time on the worker


class InlineExecutor(cf.Executor):
    """Runs each job at once in the calling thread: one core, no pool (inside a worker: no
    nested pools; the benchmarks: one core measured)."""

    _max_workers = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


def sweep_file(item: _Item, settings: Sequence[TurnDetectionSettings], options: dict[str, Any]
               ) -> FileSweep:
    """The work unit: one recording, every setting (picklable, for any executor)."""
    from ._sweep import sweep

    t0 = time.perf_counter()
    result = sweep(item.source, options.get("sample_rate"), list(settings), "offline",
                   InlineExecutor(), reference=item.labels, tail_ms=options["tail_ms"],
                   pause_ms=options["pause_ms"], tolerance_ms=options["tolerance_ms"],
                   progress=False)
    return FileSweep(item.name, len(result.audio.samples) * 1000 // result.audio.sample_rate,
                     result.reference, tuple(result.records), time.perf_counter() - t0)


def _sweep_files(items: list[_Item], settings: list[TurnDetectionSettings],
                 options: dict[str, Any]) -> list[FileSweep]:
    return [sweep_file(it, settings, options) for it in items]


def sweep_corpus(
    corpus: Any,
    grid: Grid | TurnDetectionSettings = DEFAULT_GRID,
    executor: cf.Executor | None = None,
    *,
    labels: Any = None,
    sample_rate: int | None = None,
    tail_ms: int | None = None,
    pause_ms: float = DEFAULT_PAUSE_MS,
    tolerance_ms: float = DEFAULT_TOLERANCE_MS,
    files_per_job: int = 1,
    progress: bool = True,
) -> CorpusResult:
    """Sweep ``grid`` over every recording of ``corpus``; results per setting and per file.

    Args:
        corpus: a folder, a glob pattern, a list of recordings, a mapping name → recording, or a
            :class:`Corpus` (see it for names and ``labels``).
        grid: as for :func:`realtime_nb.lab.sweep`.
        executor: any ``concurrent.futures.Executor`` — ``client.get_executor()`` of a
            ``dask.distributed.Client`` to use a cluster, or a process pool. ``None``: the
            calling process, plus a process pool when the rest would take over
            :data:`AUTO_POOL_S` seconds.
        labels / sample_rate: see :class:`Corpus` (ignored when ``corpus`` is one).
        tail_ms, pause_ms, tolerance_ms: as for :func:`realtime_nb.lab.sweep` (one tail for
            every recording, so every recording's last turn can close under every setting).
        files_per_job: recordings per work unit (raise it for corpora of many tiny files).
        progress: a tqdm bar over recordings.

    Each recording is swept on one worker (decoded there, probabilities computed once there);
    only the per-setting records travel back.
    """
    from ._sweep import _gather, _pool_context, _progress, _tail_for

    if not isinstance(corpus, Corpus):
        corpus = Corpus(corpus, labels=labels, sample_rate=sample_rate)
    settings = expand_grid(grid)
    if files_per_job < 1:
        raise ValueError("files_per_job must be >= 1")
    if tail_ms is None:
        from realtime_nb.vad import default_speech_model

        tail_ms = _tail_for(settings, float(default_speech_model().frame_ms))
    options = {"tail_ms": int(tail_ms), "pause_ms": pause_ms, "tolerance_ms": tolerance_ms,
               "sample_rate": corpus.sample_rate}
    items = list(corpus.items)
    jobs = [items[i:i + files_per_job] for i in range(0, len(items), files_per_job)]
    bar = _progress(len(items), progress, "VAD corpus sweep")
    bar.unit = "recording"
    t0 = time.perf_counter()
    try:
        if executor is None:
            first = _sweep_files(jobs[0], settings, options)
            bar.update(len(jobs[0]))
            done = [first]
            rest = jobs[1:]
            per_job = time.perf_counter() - t0
            workers = os.cpu_count() or 1
            if rest and (per_job * len(rest) < AUTO_POOL_S or workers < 2):
                for job in rest:
                    done.append(_sweep_files(job, settings, options))
                    bar.update(len(job))
            elif rest:
                with cf.ProcessPoolExecutor(max_workers=min(workers, 8),
                                            mp_context=_pool_context()) as pool:
                    done += _gather(pool, _sweep_files,
                                    [(job, settings, options) for job in rest],
                                    [len(job) for job in rest], bar)
        else:
            done = _gather(executor, _sweep_files, [(job, settings, options) for job in jobs],
                           [len(job) for job in jobs], bar)
    finally:
        bar.close()
    files = [f for part in done for f in part]
    return CorpusResult(settings, files, tolerance_ms=tolerance_ms,
                        seconds=time.perf_counter() - t0)


class CorpusResult(RecordSequence):
    """A corpus sweep: one pooled :class:`SettingResult` per setting (grid order; see the module
    docstring for how results are pooled), and ``files``, each recording's :class:`FileSweep`.

    ``reference`` is the pooled yardstick (every recording's utterances, on the timeline of the
    recordings played one after another, recording ``k`` starting at ``offsets[k]`` ms);
    ``seconds`` the wall time of the sweep. Pooled records carry no turn list (``segments`` is
    empty): each recording's turns are in its ``files[k].records``.
    """

    backend = "offline"

    def __init__(self, settings: Sequence[TurnDetectionSettings], files: Sequence[FileSweep],
                 *, tolerance_ms: float = DEFAULT_TOLERANCE_MS, seconds: float = 0.0) -> None:
        self.settings = list(settings)
        self.files = list(files)
        self.tolerance_ms = tolerance_ms
        self.seconds = seconds
        self.offsets, at = [], 0
        for f in self.files:
            self.offsets.append(at)
            at += f.duration_ms
        self.duration_ms = at
        self.reference = _pooled_reference(self.files, self.offsets)
        self.records = [self._pool(i) for i in range(len(self.settings))]

    def _pool(self, i: int) -> SettingResult:
        """Setting ``i`` over the corpus, from the per-file records: exactly what measuring all
        turns against all utterances on one concatenated timeline gives (recordings do not
        interact), without its cost (which grows with the square of the corpus)."""
        per = [f.records[i] for f in self.files]
        metrics: dict[str, Any] = {k: sum(getattr(r, k) for r in per) for k in _COUNTS}
        latencies = [t.latency_ms for r in per for t in r.segments if t.latency_ms is not None]
        metrics["latency_ms"] = float(np.median(latencies)) if latencies else None
        metrics["latency_max_ms"] = max(latencies) if latencies else None
        hit = [len(f.reference.utterances) - r.missed_utterances
               for f, r in zip(self.files, per, strict=True)]  # utterances with a turn
        for key in _MEANS:
            pairs = [(w, getattr(r, key)) for w, r in zip(hit, per, strict=True)
                     if w and getattr(r, key) is not None]
            total = sum(w for w, _ in pairs)
            metrics[key] = sum(w * v for w, v in pairs) / total if total else None
        extra = {"files": len(self.files),
                 "files_with_errors": sum(r.errors > 0 for r in per)}
        return SettingResult(self.settings[i], (), "offline", self.reference.source, **metrics,
                             extra=extra)

    def __repr__(self) -> str:
        return (f"<CorpusResult {len(self.records)} settings x {len(self.files)} recordings "
                f"({self.duration_ms / 1000:.0f} s of audio), yardstick "
                f"{self.reference.source!r}, {len(self.reference.utterances)} utterances>")

    # ------------------------------------------------------------------ views
    def file(self, name: str) -> FileSweep:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"No recording named {name!r} in this sweep")

    def per_file(self, settings: TurnDetectionSettings | None = None, **params: Any
                 ) -> dict[str, SettingResult]:
        """Each recording's own record of one setting (``settings``, or the one setting whose
        parameters match ``params``)."""
        i = self.settings.index(self.find(settings, **params).settings)
        return {f.name: f.records[i] for f in self.files}

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per setting, pooled over the corpus (without the turn lists)."""
        out = []
        for r in self.records:
            row = r.to_dict()
            del row["turns"], row["segments"]
            out.append(row)
        return out

    def per_file_records(self) -> list[dict[str, Any]]:
        """One flat dict per (setting, recording): the per-file breakdown."""
        out = []
        for f in self.files:
            for r in f.records:
                row = {"file": f.name, **r.to_dict()}
                row.pop("segments")
                out.append(row)
        return out

    def to_dataframe(self) -> Any:
        """Pooled results, one row per setting (pandas)."""
        import pandas as pd

        return pd.DataFrame(self.to_records())

    def per_file_dataframe(self) -> Any:
        """The per-file breakdown, one row per setting and recording (pandas)."""
        import pandas as pd

        return pd.DataFrame(self.per_file_records())

    # ------------------------------------------------------------------ analysis
    def recommend(self) -> Recommendation:
        """The setting with the fewest errors over the whole corpus, then the lowest median
        latency (see :func:`realtime_nb.lab.recommend`), with the reason in words."""
        from ._recommend import recommend

        rec = recommend(self)  # type: ignore[arg-type]
        worst = sorted(self.per_file(rec.settings).items(), key=lambda kv: -kv[1].errors)
        failing = [(n, r.errors) for n, r in worst if r.errors]
        note = (f" Over {len(self.files)} recordings; it errs on {len(failing)} of them"
                + (" (most: " + ", ".join(f"{n} {e}" for n, e in failing[:3]) + ")."
                   if failing else "."))
        return replace(rec, reason=rec.reason + note)

    def heatmap(self, x: str, y: str, metric: str = "errors", **options: Any) -> Figure:
        """``metric`` (pooled over the corpus) over two swept parameters."""
        from ._plot import heatmap

        return heatmap(self, x, y, metric, **options)  # type: ignore[arg-type]


def _pooled_reference(files: Sequence[FileSweep], offsets: Sequence[int]) -> Reference:
    sources = {f.reference.source for f in files}
    source = sources.pop() if len(sources) == 1 else "labels where given, else auto"
    utterances = tuple((s + off, e + off) for f, off in zip(files, offsets, strict=True)
                       for s, e in f.reference.utterances)
    regions = tuple((s + off, e + off) for f, off in zip(files, offsets, strict=True)
                    for s, e in f.reference.regions)
    return Reference(utterances, regions, source)

