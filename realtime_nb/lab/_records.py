"""Sweep results: one :class:`SettingResult` per setting, gathered in a :class:`SweepResult`.

Everything is a plain dataclass with ``to_dict()``; :meth:`SweepResult.to_dataframe` gives a
pandas DataFrame when pandas is installed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from realtime_nb.audio import Audio
from realtime_nb.vad import TurnDetectionSettings

from ._reference import DEFAULT_TOLERANCE_MS, Reference, measure
from ._settings import settings_label, settings_params

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._recommend import Recommendation

__all__ = ["METRICS", "RecordSequence", "SettingResult", "SweepResult", "Turn"]

#: Per-setting measurements (see :func:`realtime_nb.lab.measure` for their definitions).
METRICS = (
    "n_turns",
    "clipped_onsets",
    "premature_cutoffs",
    "false_starts",
    "missed_utterances",
    "missed_speech_ms",
    "latency_ms",
    "latency_max_ms",
    "onset_error_ms",
    "onset_abs_error_ms",
    "offset_error_ms",
    "offset_abs_error_ms",
    "errors",
)


@dataclass(frozen=True)
class Turn:
    """One detected turn. Times are ms on the replayed audio's timeline (0 = its first sample).

    * ``start_ms`` / ``end_ms`` — ``audio_start_ms`` of ``speech_started`` (prefix padding
      included) and ``audio_end_ms`` of ``speech_stopped`` (trailing silence included): the audio
      the server commits. An open turn (``closed=False``: the audio ended first) ends at the end
      of the audio and was never committed.
    * ``onset_ms`` / ``offset_ms`` — where the VAD put the speech itself (first frame above the
      threshold; start of the silence that ended it). Known offline only (the wire does not carry
      them).
    * ``started_at_ms`` / ``stopped_at_ms`` / ``committed_at_ms`` — when the three events happened,
      on the same timeline: offline, the end of the frame that triggered them (the local server
      commits at once, so ``committed_at_ms == end_ms``); over a socket at real-time pace, the
      arrival time since the stream began, chunks being sent once their audio has happened (as
      from a microphone: a 100 ms chunk adds up to 100 ms). Against the local server at full
      speed the local server's rule is used (committed at ``end_ms``) and the arrival times of
      ``speech_started`` / ``speech_stopped`` stay None.
    * ``clipped_ms``, ``cut_off``, ``latency_ms`` — filled in by the yardstick (see
      :func:`realtime_nb.lab.measure`).
    """

    start_ms: int
    end_ms: int
    closed: bool = True
    onset_ms: int | None = None
    offset_ms: int | None = None
    started_at_ms: float | None = None
    stopped_at_ms: float | None = None
    committed_at_ms: float | None = None
    item_id: str | None = None
    clipped_ms: int = 0
    cut_off: bool = False
    latency_ms: float | None = None

    @property
    def span(self) -> tuple[int, int]:
        """``(start_ms, end_ms)``."""
        return (self.start_ms, self.end_ms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SettingResult:
    """What one setting did to the recording.

    ``turns`` are the detected turns as ``(start_ms, end_ms)`` pairs; ``segments`` the same as
    :class:`Turn` objects with every detail. The metrics (``n_turns``, ``clipped_onsets``,
    ``premature_cutoffs``, ``false_starts``, ``missed_utterances``, ``missed_speech_ms``,
    ``latency_ms`` (median), ``latency_max_ms``, onset/offset errors, and ``errors`` — the sum of
    the four counts) are measured against the yardstick named by ``yardstick``
    (``"auto"``, ``"labels"`` or ``"clean recording"``).
    """

    settings: TurnDetectionSettings
    segments: tuple[Turn, ...]
    backend: str = "offline"
    yardstick: str = "auto"
    n_turns: int = 0
    clipped_onsets: int = 0
    premature_cutoffs: int = 0
    false_starts: int = 0
    missed_utterances: int = 0
    missed_speech_ms: int = 0
    latency_ms: float | None = None
    latency_max_ms: float | None = None
    onset_error_ms: float | None = None
    onset_abs_error_ms: float | None = None
    offset_error_ms: float | None = None
    offset_abs_error_ms: float | None = None
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def build(
        cls,
        settings: TurnDetectionSettings,
        turns: Sequence[Turn],
        reference: Reference,
        *,
        backend: str,
        tolerance_ms: float = DEFAULT_TOLERANCE_MS,
        extra: dict[str, Any] | None = None,
    ) -> SettingResult:
        """Measure ``turns`` against ``reference`` and wrap everything up."""
        measured, metrics = measure(turns, reference, tolerance_ms=tolerance_ms)
        return cls(settings, tuple(measured), backend, reference.source, **metrics,
                   extra=dict(extra or {}))

    def rescore(self, reference: Reference, *, tolerance_ms: float = DEFAULT_TOLERANCE_MS
                ) -> SettingResult:
        """The same turns measured against another yardstick."""
        return SettingResult.build(self.settings, self.segments, reference, backend=self.backend,
                                   tolerance_ms=tolerance_ms, extra=self.extra)

    # ------------------------------------------------------------------ views
    @property
    def params(self) -> dict[str, Any]:
        """The setting's parameters (wire names, ``type`` first)."""
        return settings_params(self.settings)

    @property
    def label(self) -> str:
        return settings_label(self.settings)

    @property
    def turns(self) -> list[tuple[int, int]]:
        """Detected turns as ``(start_ms, end_ms)``."""
        return [t.span for t in self.segments]

    @property
    def speech_started_ms(self) -> list[int]:
        """``audio_start_ms`` of every ``speech_started``."""
        return [t.start_ms for t in self.segments]

    @property
    def speech_stopped_ms(self) -> list[int]:
        """``audio_end_ms`` of every ``speech_stopped`` (closed turns only)."""
        return [t.end_ms for t in self.segments if t.closed]

    @property
    def committed_ms(self) -> list[float]:
        """When each ``input_audio_buffer.committed`` happened (see :class:`Turn`)."""
        return [t.committed_at_ms for t in self.segments if t.committed_at_ms is not None]

    def metrics(self) -> dict[str, Any]:
        """The measurements as a dict (keys of :data:`METRICS`)."""
        return {k: getattr(self, k) for k in METRICS}

    def to_dict(self) -> dict[str, Any]:
        """Parameters, label, backend, yardstick, metrics, turns and turn details, flat."""
        out: dict[str, Any] = {**self.params, "label": self.label, "backend": self.backend,
                               "yardstick": self.yardstick, **self.metrics(),
                               "turns": self.turns,
                               "segments": [t.to_dict() for t in self.segments]}
        out.update(self.extra)
        return out

    def __repr__(self) -> str:
        lat = "-" if self.latency_ms is None else f"{self.latency_ms:.0f} ms"
        return (f"<SettingResult {self.label}: {self.n_turns} turns, {self.errors} errors "
                f"(clipped {self.clipped_onsets}, cut {self.premature_cutoffs}, false "
                f"{self.false_starts}, missed {self.missed_utterances}), latency {lat}>")


class RecordSequence(Sequence[SettingResult]):
    """A read-only sequence of :class:`SettingResult` in ``records`` (grid order), with
    :meth:`find`; shared by :class:`SweepResult` and the corpus sweep's result."""

    records: list[SettingResult]

    # ------------------------------------------------------------------ sequence
    @overload
    def __getitem__(self, i: int) -> SettingResult: ...
    @overload
    def __getitem__(self, i: slice) -> list[SettingResult]: ...
    def __getitem__(self, i: int | slice) -> SettingResult | list[SettingResult]:
        return self.records[i]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[SettingResult]:
        return iter(self.records)

    def find(self, settings: TurnDetectionSettings | None = None, **params: Any
             ) -> SettingResult:
        """The record of ``settings``, or the only one matching ``params`` (wire names)."""
        if settings is not None:
            for r in self.records:
                if r.settings == settings:
                    return r
            raise KeyError(f"{settings!r} is not in this sweep")
        hits = [r for r in self.records
                if all(r.params.get(k) == v for k, v in params.items())]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} settings match {params!r} (expected exactly one)")
        return hits[0]


class SweepResult(RecordSequence):
    """All settings' results (a read-only sequence of :class:`SettingResult`, grid order).

    Also holds what they were measured on: ``audio`` (the replayed audio: 24 kHz, with the tail
    of silence that closes the last turn), ``probabilities`` (speech probability per frame of
    ``frame_ms``), ``reference`` (the yardstick), ``backend``, ``tail_ms``.
    """

    def __init__(
        self,
        records: Sequence[SettingResult],
        *,
        audio: Audio,
        probabilities: np.ndarray | None,
        frame_ms: float,
        reference: Reference,
        backend: str,
        tail_ms: int,
        tolerance_ms: float = DEFAULT_TOLERANCE_MS,
    ) -> None:
        self.records = list(records)
        self.audio = audio
        self.probabilities = probabilities
        self.frame_ms = frame_ms
        self.reference = reference
        self.backend = backend
        self.tail_ms = tail_ms
        self.tolerance_ms = tolerance_ms
        #: How semantic_vad settings were judged: the end-of-turn model's name, ``"length-rule
        #: fallback: <why>"``, ``"the service"`` (OpenAI backend) or ``None`` (none swept).
        self.semantic_vad: str | None = None

    def __repr__(self) -> str:
        return (f"<SweepResult {len(self.records)} settings, backend={self.backend!r}, "
                f"yardstick={self.reference.source!r}, "
                f"{len(self.reference.utterances)} utterances in "
                f"{self.audio.duration_ms / 1000:.1f} s>")

    # ------------------------------------------------------------------ lookups
    def differences(self, other: SweepResult) -> list[tuple[TurnDetectionSettings, list[Any],
                                                           list[Any]]]:
        """Settings whose turns differ between two sweeps (e.g. offline and socket).

        Returns ``(settings, turns here, turns there)`` for each setting present in both whose
        ``(start_ms, end_ms, closed)`` lists differ; an empty list means full agreement.
        """
        theirs = {r.settings: r for r in other.records}
        out = []
        for r in self.records:
            o = theirs.get(r.settings)
            if o is None:
                continue
            mine = [(t.start_ms, t.end_ms, t.closed) for t in r.segments]
            them = [(t.start_ms, t.end_ms, t.closed) for t in o.segments]
            if mine != them:
                out.append((r.settings, mine, them))
        return out

    # ------------------------------------------------------------------ conversions
    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per setting (see :meth:`SettingResult.to_dict`)."""
        return [r.to_dict() for r in self.records]

    def to_dataframe(self) -> Any:
        """A pandas DataFrame, one row per setting (needs pandas: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_dataframe() needs pandas (pip install pandas); "
                              "to_records() gives the same rows as dicts.") from exc
        return pd.DataFrame(self.to_records())

    def rescore(self, reference: Reference | Sequence[Sequence[float]], *,
                tolerance_ms: float | None = None) -> SweepResult:
        """The same turns measured against another yardstick (labels, a clean recording...)."""
        ref = Reference.coerce(reference)
        tol = self.tolerance_ms if tolerance_ms is None else tolerance_ms
        return SweepResult(
            [r.rescore(ref, tolerance_ms=tol) for r in self.records], audio=self.audio,
            probabilities=self.probabilities, frame_ms=self.frame_ms, reference=ref,
            backend=self.backend, tail_ms=self.tail_ms, tolerance_ms=tol)

    # ------------------------------------------------------------------ analysis
    def recommend(self, reference: Reference | Sequence[Sequence[float]] | None = None
                  ) -> Recommendation:
        """The setting to use, with the reason in words (see :func:`realtime_nb.lab.recommend`).

        With ``reference`` the turns are first re-measured against it.
        """
        from ._recommend import recommend

        result = self if reference is None else self.rescore(reference)
        return recommend(result)

    def plot(self, audio: Audio | None = None, **options: Any) -> Figure:
        """Each setting's turns over the waveform (see :func:`realtime_nb.lab.plot_sweep`)."""
        from ._plot import plot_sweep

        return plot_sweep(self, audio, **options)

    def heatmap(self, x: str, y: str, metric: str = "errors", **options: Any) -> Figure:
        """``metric`` over two swept parameters (see :func:`realtime_nb.lab.heatmap`)."""
        from ._plot import heatmap

        return heatmap(self, x, y, metric, **options)

    def with_records(self, records: Sequence[SettingResult]) -> SweepResult:
        """A copy holding ``records`` instead (same audio, yardstick and backend)."""
        return SweepResult(records, audio=self.audio, probabilities=self.probabilities,
                           frame_ms=self.frame_ms, reference=self.reference,
                           backend=self.backend, tail_ms=self.tail_ms,
                           tolerance_ms=self.tolerance_ms)

