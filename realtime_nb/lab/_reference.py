"""Yardsticks for judging turns: reference speech segments, and the measurements against them.

A :class:`Reference` holds where speech really is, at two grains (all times integer ms on the
recording's timeline):

* ``regions`` — stretches of sound that belong to speech (words, with their short closures);
* ``utterances`` — what a person says in one go: regions joined across pauses shorter than
  ``pause_ms``. A turn that ends inside an utterance cut the speaker off.

Where it comes from:

* :meth:`Reference.from_segments` — hand-labelled segments (each segment is an utterance, and
  its own region);
* :func:`reference_from_clean` — a clean recording of the same speech (e.g. the source you later
  mixed with noise, or a close-talk microphone): frames whose level is within ``range_db`` of the
  loudest part count as sound;
* :func:`auto_reference` — the recording's own speech probabilities, used when you give nothing:
  a region is a run of frames with probability >= 0.15 holding at least one frame >= 0.5.
  This yardstick is the local server's own model, so it judges *settings* (how the segmentation
  uses the probabilities), not the model.

:func:`measure` scores one setting's turns against a reference; the definitions are in its
docstring.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from realtime_nb.audio import Audio, decode

__all__ = [
    "AUTO_LOW",
    "AUTO_SEED",
    "DEFAULT_PAUSE_MS",
    "DEFAULT_TOLERANCE_MS",
    "Reference",
    "auto_reference",
    "measure",
    "reference_from_clean",
]

#: Pauses shorter than this (ms) are inside an utterance; longer ones separate utterances.
DEFAULT_PAUSE_MS = 500
#: Differences up to this many ms are not counted as clipping or cutting (labels are not exact).
DEFAULT_TOLERANCE_MS = 20
#: Auto yardstick: a region needs one frame at or above this probability ...
AUTO_SEED = 0.5
#: ... and extends over neighbouring frames at or above this one.
AUTO_LOW = 0.15

Span = tuple[int, int]


def _clean_spans(spans: Iterable[Sequence[float]], what: str) -> tuple[Span, ...]:
    out: list[Span] = []
    for item in spans:
        try:
            start, end = item
        except (TypeError, ValueError):
            raise TypeError(f"{what} must be (start_ms, end_ms) pairs, got {item!r}") from None
        for v in (start, end):
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                raise TypeError(f"{what} times must be numbers of ms, got {item!r}")
        s, e = round(float(start)), round(float(end))
        if s < 0 or e <= s:
            raise ValueError(f"{what} need 0 <= start_ms < end_ms, got {item!r}")
        out.append((s, e))
    out.sort()
    merged: list[Span] = []
    for s, e in out:  # overlapping labels become one span
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return tuple(merged)


def _join(regions: Sequence[Span], pause_ms: float) -> tuple[Span, ...]:
    out: list[Span] = []
    for s, e in regions:
        if out and s - out[-1][1] < pause_ms:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return tuple(out)


@dataclass(frozen=True)
class Reference:
    """Where speech is: ``regions`` (fine) and ``utterances`` (joined across short pauses).

    ``source`` says where it came from: ``"labels"``, ``"clean recording"`` or ``"auto"``.
    """

    utterances: tuple[Span, ...]
    regions: tuple[Span, ...]
    source: str = "labels"

    @classmethod
    def from_segments(
        cls, segments: Iterable[Sequence[float]], *, pause_ms: float | None = None
    ) -> Reference:
        """Hand-labelled speech as ``(start_ms, end_ms)`` pairs.

        Each segment is one utterance. With ``pause_ms``, segments closer than that are joined
        into one utterance (label words, get utterances).
        """
        regions = _clean_spans(segments, "reference segments")
        utterances = regions if pause_ms is None else _join(regions, pause_ms)
        return cls(utterances, regions, "labels")

    @classmethod
    def coerce(cls, value: Any) -> Reference:
        """A Reference from a Reference, or from a list of ``(start_ms, end_ms)`` pairs."""
        if isinstance(value, Reference):
            return value
        return cls.from_segments(value)

    @property
    def speech_ms(self) -> int:
        """Total length of the regions."""
        return sum(e - s for s, e in self.regions)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "utterances": [list(u) for u in self.utterances],
                "regions": [list(r) for r in self.regions]}


def auto_reference(
    probs: np.ndarray, frame_ms: float = 32.0, *, pause_ms: float = DEFAULT_PAUSE_MS
) -> Reference:
    """The yardstick derived from a recording's speech probabilities (see the module docstring)."""
    p = np.asarray(probs, dtype=np.float64).ravel()
    low = p >= AUTO_LOW
    edges = np.diff(low.view(np.int8), prepend=0, append=0)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    seeds = np.concatenate([[0], np.cumsum(p >= AUTO_SEED)])
    seeded = seeds[ends] > seeds[starts]  # at least one seed frame inside the run
    regions = tuple(
        (round(s * frame_ms), round(e * frame_ms))
        for s, e, keep in zip(starts.tolist(), ends.tolist(), seeded.tolist(), strict=True)
        if keep
    )
    return Reference(_join(regions, pause_ms), regions, "auto")


def reference_from_clean(
    clean: Any,
    sample_rate: int | None = None,
    *,
    pause_ms: float = DEFAULT_PAUSE_MS,
    range_db: float = 40.0,
    floor_dbfs: float = -60.0,
    frame_ms: float = 10.0,
    closure_ms: float = 60.0,
    min_region_ms: float = 30.0,
) -> Reference:
    """A reference from a clean recording of the speech (anything ``realtime_nb.audio`` decodes).

    A ``frame_ms`` frame is sound when its RMS level is above ``floor_dbfs`` and within
    ``range_db`` of the loudest frame. Sound runs closer than ``closure_ms`` (stop consonants)
    form one region; regions shorter than ``min_region_ms`` are dropped (clicks); regions closer
    than ``pause_ms`` form one utterance. Times are on the clean recording's timeline, which must
    be the timeline of the audio you sweep.
    """
    audio = clean if isinstance(clean, Audio) else decode(clean, sample_rate)
    hop = max(1, round(audio.sample_rate * frame_ms / 1000))
    n = len(audio.samples) // hop
    if n == 0:
        return Reference((), (), "clean recording")
    x = audio.samples[: n * hop].astype(np.float64).reshape(n, hop) / 32768.0
    rms = np.sqrt(np.mean(x * x, axis=1))
    with np.errstate(divide="ignore"):
        level = 20.0 * np.log10(rms)
    top = float(np.max(level))
    sound = (level > floor_dbfs) & (level >= top - range_db)
    edges = np.diff(sound.view(np.int8), prepend=0, append=0)
    runs = [
        (round(s * frame_ms), round(e * frame_ms))
        for s, e in zip(np.flatnonzero(edges == 1).tolist(),
                        np.flatnonzero(edges == -1).tolist(), strict=True)
    ]
    regions = tuple(r for r in _join(runs, closure_ms) if r[1] - r[0] >= min_region_ms)
    return Reference(_join(regions, pause_ms), regions, "clean recording")


# ---------------------------------------------------------------------- measuring turns
def _overlapping(spans: Sequence[Span], start: int, end: int) -> list[Span]:
    return [s for s in spans if s[0] < end and s[1] > start]


def _covered_ms(spans: Sequence[Span], cover: Sequence[Span]) -> int:
    total = 0
    for s, e in spans:
        for cs, ce in cover:
            lo, hi = max(s, cs), min(e, ce)
            if hi > lo:
                total += hi - lo
    return total


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def measure(
    turns: Sequence[Any],
    reference: Reference,
    *,
    tolerance_ms: float = DEFAULT_TOLERANCE_MS,
) -> tuple[list[Any], dict[str, Any]]:
    """Judge one setting's turns against ``reference``; returns ``(turns, metrics)``.

    ``turns`` are :class:`~realtime_nb.lab.Turn` objects in time order; the returned copies have
    ``clipped_ms``, ``cut_off`` and ``latency_ms`` filled in. Definitions (``tol`` =
    ``tolerance_ms``; a turn is ``[start_ms, end_ms)`` as committed):

    * **clipped onset** — speech before ``audio_start_ms`` that no turn committed: for the first
      region overlapping the turn, ``clipped_ms = start_ms - max(region start, previous turn's
      end)``; clipped when above ``tol``.
    * **premature cut-off** — a closed turn whose end falls inside an utterance, more than
      ``tol`` before the utterance ends: the speaker was still talking when the server committed.
    * **latency** — ``committed_at_ms`` minus the end of speech in the turn (end of the last
      region overlapping it, at most ``end_ms``).
    * **false start** — a turn overlapping no region; **missed** — an utterance no turn overlaps;
      ``missed_speech_ms`` — region time outside every turn.
    * **onset / offset error** — per utterance with turns: first turn's ``start_ms`` minus the
      utterance start (positive = late, i.e. clipped), last turn's ``end_ms`` minus the utterance
      end (positive = trailing silence kept); ``*_abs_*`` are mean absolute values.
    """
    regions, utterances = reference.regions, reference.utterances
    out: list[Any] = []
    latencies: list[float] = []
    clipped = cut = false_starts = 0
    prev_end = 0
    for turn in turns:
        s, e = turn.start_ms, turn.end_ms
        hits = _overlapping(regions, s, e)
        clip = 0
        latency = None
        if hits:
            clip = max(0, s - max(hits[0][0], prev_end))
            speech_end = min(hits[-1][1], e)
            if turn.committed_at_ms is not None:
                latency = float(turn.committed_at_ms - speech_end)
                latencies.append(latency)
        else:
            false_starts += 1
        is_cut = bool(turn.closed) and any(u[0] < e < u[1] - tolerance_ms for u in utterances)
        clipped += clip > tolerance_ms
        cut += is_cut
        out.append(replace(turn, clipped_ms=clip, cut_off=is_cut, latency_ms=latency))
        prev_end = max(prev_end, e)

    spans = [(t.start_ms, t.end_ms) for t in turns]
    onset_err: list[float] = []
    offset_err: list[float] = []
    missed = 0
    for us, ue in utterances:
        hit = _overlapping(spans, us, ue)
        if not hit:
            missed += 1
            continue
        onset_err.append(float(hit[0][0] - us))
        offset_err.append(float(hit[-1][1] - ue))
    metrics: dict[str, Any] = {
        "n_turns": len(turns),
        "clipped_onsets": int(clipped),
        "premature_cutoffs": int(cut),
        "false_starts": false_starts,
        "missed_utterances": missed,
        "missed_speech_ms": reference.speech_ms - _covered_ms(regions, spans),
        "latency_ms": _median(latencies),
        "latency_max_ms": max(latencies) if latencies else None,
        "onset_error_ms": _mean(onset_err),
        "onset_abs_error_ms": _mean([abs(v) for v in onset_err]),
        "offset_error_ms": _mean(offset_err),
        "offset_abs_error_ms": _mean([abs(v) for v in offset_err]),
        "errors": int(clipped) + int(cut) + false_starts + missed,
    }
    for key in ("latency_ms", "onset_error_ms", "onset_abs_error_ms", "offset_error_ms",
                "offset_abs_error_ms"):
        if metrics[key] is not None and not math.isfinite(metrics[key]):
            metrics[key] = None
    return out, metrics
