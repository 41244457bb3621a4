"""Turn detection on a sequence of speech probabilities: the Realtime API's VAD semantics.

Pure Python, no I/O. Two entry points that MUST agree exactly:

* :class:`Segmenter` — live: ``push(prob)`` once per frame, returns
  :class:`SpeechStarted` / :class:`SpeechStopped` events (the server's state machine turns them into
  ``input_audio_buffer.speech_started`` / ``speech_stopped``).
* :func:`segment` — offline (the VAD lab): all probabilities at once → list of :class:`Segment`,
  vectorised with numpy so a sweep over many settings costs microseconds per setting.
  :func:`segment_stepwise` computes the same thing through :class:`Segmenter` and is the reference.

The settings it applies (``ServerVadSettings``, ``SemanticVadSettings``, read from the wire by
``settings_from_wire``) live in :mod:`realtime_nb.vad.settings`; ``make_segmenter`` builds the
live segmenter for a wire ``turn_detection`` object (what the session state machine calls).

Rules (times in integer milliseconds on the session's cumulative input timeline; frame ``i``
covers ``[t(i), t(i + 1))`` with ``t(i) = round(i * frame_ms)``):

* **Start.** Outside speech, the first frame with ``prob >= threshold`` is the *onset*; speech
  starts at ``t(onset)``. ``audio_start_ms = max(floor, t(onset) - prefix_padding_ms)``, where the
  floor is the previous segment's ``audio_end_ms`` (0 at first) or whatever the state machine last
  set with :meth:`Segmenter.reset_floor` (the start of the current input buffer after a commit or
  clear), whichever is later. Like the service, one frame above the threshold is enough.
* **Hysteresis.** Inside speech a frame counts as *silent* only when
  ``prob < neg_threshold = min(threshold, max(threshold - 0.15, 0.01))`` — the rule of Silero's
  own ``get_speech_timestamps``. Frames between the two thresholds keep the speech going (and
  reset a silence run), so a wobbling probability does not chop a word.
* **Stop.** Speech stops once a run of consecutive silent frames has lasted the required silence
  (server_vad: ``silence_duration_ms``), measured in whole frames, i.e. rounded up to the next
  frame boundary (200 ms → 7 frames of 32 ms = 224 ms; at least one frame).
  ``audio_end_ms = t(end of the frame that completed the silence window)`` — it includes the
  trailing silence; ``offset_ms`` is where that silence run began (where the speech really ended).
* **End of audio.** Offline, a segment still open when the probabilities run out is reported with
  ``end_ms`` = end of the audio and ``closed=False`` (:meth:`Segmenter.flush` live).

semantic_vad (fixed threshold 0.5, padding 300 ms) ends a turn at a pause only when an
end-of-turn model judges the turn complete (:mod:`realtime_nb.vad.turn`, Smart Turn v3.2):

* **Ask.** Once a silence run inside speech has lasted ``ASK_MS`` (64 ms, 2 frames) the segmenter
  emits a :class:`TurnCheck` naming the audio to judge: the turn from ``audio_start_ms`` to the
  start of the silence run (at most the last ``TURN_AUDIO_MS`` of it). Once per silence run.
* **Answer.** The owner computes the model's probability that the turn is complete on exactly that
  audio and hands it back with :meth:`Segmenter.decide` (offline: the ``decide`` callable of
  :func:`segment`). Until then the segmenter refuses frames that could end the turn
  (:attr:`Segmenter.blocked`), so when the answer arrives never changes what is decided.
* **Wait.** The silence that then ends the turn is :meth:`SemanticVadSettings.wait_ms` of that
  probability (complete → a short wait, unfinished → up to the eagerness's maximum wait); speech
  resuming before that keeps the turn open and the next pause is judged afresh.

Without a model (``decisions=False`` / no ``decide``) semantic_vad falls back to a rule on the
utterance length (:meth:`SemanticVadSettings.required_silence_ms`), which cannot tell "What time
is it?" from "I would like to order, um"; the segmenter says so in :attr:`Segmenter.semantic_rule`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime_nb.vad.settings import (
    SemanticVadSettings,
    ServerVadSettings,
    TurnDetectionSettings,
    settings_from_wire,
)

__all__ = [
    "ASK_MS",
    "HYSTERESIS",
    "TURN_AUDIO_MS",
    "Decide",
    "Segment",
    "Segmenter",
    "SemanticVadSettings",
    "ServerVadSettings",
    "SpeechStarted",
    "SpeechStopped",
    "TurnCheck",
    "TurnDetectionSettings",
    "VadEvent",
    "make_segmenter",
    "neg_threshold",
    "segment",
    "segment_stepwise",
    "settings_from_wire",  # this and the *Settings names: from vad.settings, kept importable here
]

#: How far below ``threshold`` a probability must fall to count as silence inside speech.
HYSTERESIS = 0.15
#: semantic_vad asks the end-of-turn model once a pause has lasted this long (rounded up to frames).
ASK_MS = 64
#: The longest stretch of a turn the end-of-turn model is given (the model uses the last 8 s; the
#: extra 100 ms keep the resampler's edge outside its window).
TURN_AUDIO_MS = 8100

#: ``decide(audio_start_ms, audio_end_ms) -> probability that the turn is complete``.
Decide = Callable[[int, int], float]


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began. ``audio_start_ms`` includes the prefix padding (wire field);
    ``onset_ms`` is the start of the first frame at or above the threshold."""

    audio_start_ms: int
    onset_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    """Speech ended. ``audio_end_ms`` includes the trailing silence window (wire field);
    ``offset_ms`` is where that silence began."""

    audio_end_ms: int
    offset_ms: int


@dataclass(frozen=True)
class TurnCheck:
    """semantic_vad asks whether the turn is complete (see the module docstring).

    Judge the audio ``[audio_start_ms, audio_end_ms)`` of the segmenter's timeline — the turn up
    to where the current pause began, at most its last ``TURN_AUDIO_MS`` — and answer with
    :meth:`Segmenter.decide`. ``due_ms`` is the end of the first frame that cannot be pushed
    before the answer (the earliest the turn could end).
    """

    audio_start_ms: int
    audio_end_ms: int
    due_ms: int


VadEvent = SpeechStarted | SpeechStopped | TurnCheck


@dataclass(frozen=True)
class Segment:
    """One detected turn: ``[start_ms, end_ms)`` is what the service would commit.

    ``onset_ms``/``offset_ms`` bound the speech itself (without padding and trailing silence).
    ``closed`` is False when the audio ended before the silence window completed; then
    ``end_ms`` is the end of the audio.
    """

    start_ms: int
    end_ms: int
    onset_ms: int
    offset_ms: int
    closed: bool = True


def neg_threshold(threshold: float, hysteresis: float = HYSTERESIS) -> float:
    """Probability below which a frame inside speech counts as silence (never above threshold)."""
    return min(threshold, max(threshold - hysteresis, 0.01))


def _frame_count(silence_ms: float, frame_ms: float) -> int:
    """Whole frames needed to cover ``silence_ms`` (at least one)."""
    return max(1, math.ceil(silence_ms / frame_ms - 1e-9))


def _check_frame_ms(frame_ms: float) -> float:
    value = float(frame_ms)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"frame_ms must be a positive number, got {frame_ms!r}")
    return value


def _check_span(start_ms: int, silence_ms: int) -> tuple[int, int]:
    """The audio a TurnCheck judges: the turn up to the pause, at most its last TURN_AUDIO_MS."""
    return max(start_ms, silence_ms - TURN_AUDIO_MS), silence_ms


def _check_hysteresis(hysteresis: float) -> float:
    value = float(hysteresis)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"hysteresis must be >= 0, got {hysteresis!r}")
    return value


class Segmenter:
    """Live turn detector: call :meth:`push` once per probability frame, in order.

    ``frame_ms`` is the frame length of the probabilities (32.0 for Silero). ``start_frame`` is the
    index of the first frame you will push on the session timeline (0 when the speech stream was
    started with the session), so every reported time is a session offset.

    ``decisions=True`` says an end-of-turn model will answer semantic_vad's :class:`TurnCheck`
    events (via :meth:`decide`); with ``False`` semantic_vad uses the length-rule fallback.
    server_vad never asks.
    """

    def __init__(
        self,
        settings: TurnDetectionSettings | None = None,
        frame_ms: float = 32.0,
        *,
        hysteresis: float = HYSTERESIS,
        start_frame: int = 0,
        decisions: bool = False,
    ) -> None:
        if not isinstance(start_frame, int) or start_frame < 0:
            raise ValueError(f"start_frame must be an int >= 0, got {start_frame!r}")
        self._frame_ms = _check_frame_ms(frame_ms)
        self._hysteresis = _check_hysteresis(hysteresis)
        self._decisions = bool(decisions)
        self._ask = _frame_count(ASK_MS, self._frame_ms)
        self._check: TurnCheck | None = None  # the current pause's question, once asked
        self._answer: float | None = None  # the model's probability for it, once given
        self._frame = start_frame
        self._floor = self._ms(start_frame)
        self._onset: int | None = None  # frame index of the onset while in speech
        self._start_ms = 0  # audio_start_ms of the open segment
        self._silence_start: int | None = None  # first frame of the current silence run
        self._needed = 1  # frames of silence that end the turn (for the current run)
        self.update_settings(settings if settings is not None else ServerVadSettings())

    # -- configuration ----------------------------------------------------------------------
    @property
    def settings(self) -> TurnDetectionSettings:
        return self._settings

    def update_settings(self, settings: TurnDetectionSettings) -> None:
        """Switch settings mid-stream (``session.update``): timeline and current state are kept;
        the new threshold and silence rule apply from the next frame."""
        if not isinstance(settings, ServerVadSettings | SemanticVadSettings):
            raise TypeError(f"Expected ServerVadSettings or SemanticVadSettings, got {settings!r}")
        self._settings = settings
        self._threshold = float(settings.threshold)
        self._neg = neg_threshold(self._threshold, self._hysteresis)
        self._prefix = settings.prefix_padding_ms
        self._model_rule = self._decisions and isinstance(settings, SemanticVadSettings)
        self._base = (_frame_count(settings.base_wait_ms, self._frame_ms)
                      if isinstance(settings, SemanticVadSettings) else 1)
        if not self._model_rule:
            self._check = self._answer = None
        if self._silence_start is not None and self._onset is not None:
            self._needed = self._silence_frames(self._silence_start - self._onset)

    @property
    def semantic_rule(self) -> str | None:
        """How semantic_vad decides here: ``"model"`` (an end-of-turn model answers
        :class:`TurnCheck`), ``"length-fallback"`` (no model: the utterance-length rule), or
        ``None`` for server_vad."""
        if not isinstance(self._settings, SemanticVadSettings):
            return None
        return "model" if self._model_rule else "length-fallback"

    @property
    def pending_check(self) -> TurnCheck | None:
        """The question asked at the current pause and not answered yet (else ``None``)."""
        return self._check if self._answer is None else None

    @property
    def blocked(self) -> bool:
        """True when the next frame must not be pushed before :meth:`decide` answers the pending
        check (it could be the frame that ends the turn)."""
        if self._check is None or self._answer is not None or self._silence_start is None:
            return False
        return self._frame + 1 - self._silence_start >= self._base

    def decide(self, check: TurnCheck, p_complete: float) -> bool:
        """Answer ``check`` with the model's probability that the turn is complete.

        Returns False (and changes nothing) when ``check`` is no longer the current question —
        speech resumed, the turn ended or it was answered already — so a late answer is harmless.
        """
        if check is not self._check or self._answer is not None:
            return False
        self._answer = min(1.0, max(0.0, float(p_complete)))
        self._needed = self._silence_frames(0)
        return True

    def reset_floor(self, ms: float) -> None:
        """The current input buffer now starts at ``ms`` (after a commit or clear): no later
        ``audio_start_ms`` will be earlier than that. Sets the floor (a fractional value is
        rounded up, so the start never precedes the buffer)."""
        self._floor = math.ceil(ms)

    # -- state --------------------------------------------------------------------------------
    @property
    def frame_ms(self) -> float:
        return self._frame_ms

    @property
    def now_ms(self) -> int:
        """End of the last frame pushed, on the session timeline."""
        return self._ms(self._frame)

    @property
    def frames_pushed(self) -> int:
        """Index of the next frame (``start_frame`` + frames pushed so far)."""
        return self._frame

    @property
    def in_speech(self) -> bool:
        return self._onset is not None

    @property
    def floor_ms(self) -> int:
        return self._floor

    @property
    def silence_started_ms(self) -> int | None:
        """While in speech: where the current run of silent frames began (``None`` when the
        last frame was speech or no turn is open). A turn that ends with this run reports it as
        :attr:`SpeechStopped.offset_ms`, so work started here (e.g. speculative transcription)
        can be matched to the turn that ends."""
        if self._onset is None or self._silence_start is None:
            return None
        return self._ms(self._silence_start)

    # -- driving ----------------------------------------------------------------------------
    def push(self, prob: float) -> list[VadEvent]:
        """Consume the next frame's probability; return the events it triggers (0 or 1)."""
        i = self._frame
        self._frame = i + 1
        p = float(prob)
        if self._onset is None:
            if p >= self._threshold:
                self._onset = i
                self._silence_start = None
                onset_ms = self._ms(i)
                self._start_ms = max(self._floor, onset_ms - self._prefix)
                return [SpeechStarted(self._start_ms, onset_ms)]
            return []
        if p >= self._neg:
            self._silence_start = None
            self._check = self._answer = None
            return []
        if (self._model_rule and self._check is not None and self._answer is None
                and self._silence_start is not None and i + 1 - self._silence_start >= self._base):
            self._frame = i
            raise RuntimeError("semantic_vad: answer the pending TurnCheck with decide() before "
                               "pushing this frame")
        if self._silence_start is None:
            self._silence_start = i
            self._needed = self._silence_frames(i - self._onset)
        run = i + 1 - self._silence_start
        events: list[VadEvent] = []
        if self._model_rule and self._check is None and run >= self._ask:
            lo, hi = _check_span(self._start_ms, self._ms(self._silence_start))
            self._check = TurnCheck(lo, hi, self._ms(self._silence_start + self._base))
            events.append(self._check)
        if run >= self._needed:
            end_ms = self._ms(i + 1)
            offset_ms = self._ms(self._silence_start)
            self._onset = None
            self._silence_start = None
            self._check = self._answer = None
            self._floor = max(self._floor, end_ms)
            events.append(SpeechStopped(end_ms, offset_ms))
        return events

    def push_many(self, probs: Iterable[float]) -> list[VadEvent]:
        """``push`` every probability in order; all events concatenated."""
        events: list[VadEvent] = []
        for p in probs:
            events.extend(self.push(p))
        return events

    def flush(self, end_ms: int | None = None) -> Segment | None:
        """End of the audio: the segment still open, if any, as ``closed=False`` (else None).

        ``end_ms`` is the end of the audio (default: end of the last frame; it may be later when
        a partial frame was never scored, never earlier). The segmenter returns to silence.
        """
        now = self.now_ms
        end = now if end_ms is None else int(end_ms)
        if end < now:
            raise ValueError(f"end_ms={end} is before the last frame pushed ({now} ms)")
        if self._onset is None:
            return None
        offset = end if self._silence_start is None else self._ms(self._silence_start)
        open_segment = Segment(self._start_ms, end, self._ms(self._onset), offset, closed=False)
        self._onset = None
        self._silence_start = None
        self._check = self._answer = None
        self._floor = max(self._floor, end)
        return open_segment

    # -- helpers ------------------------------------------------------------------------------
    def _ms(self, frame: int) -> int:
        return round(frame * self._frame_ms)

    def _silence_frames(self, speech_frames: int) -> int:
        settings = self._settings
        if self._model_rule:
            assert isinstance(settings, SemanticVadSettings)
            if self._answer is None:
                return 1 << 62  # no answer yet: this pause cannot end the turn
            return _frame_count(settings.wait_ms(self._answer), self._frame_ms)
        required = settings.required_silence_ms(speech_frames * self._frame_ms)
        return _frame_count(required, self._frame_ms)


def make_segmenter(turn_detection: Mapping[str, Any], frame_ms: float, *,
                   decisions: bool = False) -> Segmenter:
    """Build the live segmenter for a wire ``turn_detection`` object (server_vad or semantic_vad).

    What the session state machine (``protocol.SessionCore(make_segmenter=...)``) calls whenever
    turn detection is switched on or changed. ``decisions``: an end-of-turn model answers
    semantic_vad's questions (else the length-rule fallback).
    """
    return Segmenter(settings_from_wire(turn_detection), frame_ms=frame_ms, decisions=decisions)


def segment_stepwise(
    probs: Iterable[float],
    frame_ms: float = 32.0,
    settings: TurnDetectionSettings | None = None,
    *,
    hysteresis: float = HYSTERESIS,
    end_ms: int | None = None,
    decide: Decide | None = None,
) -> list[Segment]:
    """Reference for :func:`segment`: the same segments, computed by pushing frame by frame
    through a :class:`Segmenter` (what the live server does); each :class:`TurnCheck` is
    answered at once with ``decide(audio_start_ms, audio_end_ms)``."""
    segmenter = Segmenter(settings, frame_ms, hysteresis=hysteresis,
                          decisions=decide is not None)
    segments: list[Segment] = []
    opened: SpeechStarted | None = None
    for p in probs:
        for event in segmenter.push(p):
            if isinstance(event, SpeechStarted):
                opened = event
            elif isinstance(event, TurnCheck):
                assert decide is not None
                segmenter.decide(event, decide(event.audio_start_ms, event.audio_end_ms))
            else:
                assert opened is not None
                segments.append(
                    Segment(
                        opened.audio_start_ms, event.audio_end_ms, opened.onset_ms, event.offset_ms
                    )
                )
                opened = None
    last = segmenter.flush(end_ms)
    if last is not None:
        segments.append(last)
    return segments


def segment(
    probs: np.ndarray | Iterable[float],
    frame_ms: float = 32.0,
    settings: TurnDetectionSettings | None = None,
    *,
    hysteresis: float = HYSTERESIS,
    end_ms: int | None = None,
    decide: Decide | None = None,
) -> list[Segment]:
    """All turns in a recording's probabilities (offline; one call per setting in a sweep).

    Identical to :func:`segment_stepwise` (and so to the live :class:`Segmenter`), but it finds
    threshold crossings and silence runs with numpy and walks only those. ``end_ms`` is the end of
    the audio for a segment left open (default ``len(probs)`` frames).

    ``decide(audio_start_ms, audio_end_ms) -> probability`` is the end-of-turn model for
    semantic_vad, called at every pause the live segmenter would ask about (same spans; cache it
    across settings — a span's answer never depends on the setting). Without it semantic_vad uses
    the length-rule fallback; server_vad ignores it.
    """
    settings = settings if settings is not None else ServerVadSettings()
    if not isinstance(settings, ServerVadSettings | SemanticVadSettings):
        raise TypeError(f"Expected ServerVadSettings or SemanticVadSettings, got {settings!r}")
    frame_ms = _check_frame_ms(frame_ms)
    hysteresis = _check_hysteresis(hysteresis)
    p = np.asarray(probs, dtype=np.float64).ravel()  # float64: compare exactly as push() does
    n = len(p)
    last_ms = round(n * frame_ms)
    end_of_audio = last_ms if end_ms is None else int(end_ms)
    if end_of_audio < last_ms:
        raise ValueError(f"end_ms={end_of_audio} is before the last frame ({last_ms} ms)")

    threshold = float(settings.threshold)
    prefix = settings.prefix_padding_ms
    above = p >= threshold
    # Onsets can only be rising edges of `above`: the walk resumes either at frame 0 or right
    # after a silent frame, which is never above the threshold.
    rising = above.copy()
    rising[1:] &= ~above[:-1]
    onsets: list[int] = np.flatnonzero(rising).tolist()
    silent = ~(p >= neg_threshold(threshold, hysteresis))
    edges = np.diff(silent.view(np.int8), prepend=0, append=0)
    run_start_arr = np.flatnonzero(edges == 1)
    run_length_arr = np.flatnonzero(edges == -1) - run_start_arr
    run_starts: list[int] = run_start_arr.tolist()
    run_lengths: list[int] = run_length_arr.tolist()
    n_runs = len(run_starts)
    trailing_silence = bool(n_runs) and run_starts[-1] + run_lengths[-1] == n

    fixed = isinstance(settings, ServerVadSettings)
    ask = _frame_count(ASK_MS, frame_ms)
    needed = _frame_count(settings.required_silence_ms(0.0), frame_ms) if fixed else 0
    long_runs: list[int] = np.flatnonzero(run_length_arr >= needed).tolist() if fixed else []

    segments: list[Segment] = []
    floor = 0
    pos = 0
    while True:
        a = bisect_left(onsets, pos)
        if a == len(onsets):
            break
        onset = onsets[a]
        onset_ms = round(onset * frame_ms)
        start_ms = max(floor, onset_ms - prefix)
        first_run = bisect_left(run_starts, onset + 1)
        stop_run = -1
        stop_frames = 0
        if fixed:
            q = bisect_left(long_runs, first_run)
            if q < len(long_runs):
                stop_run, stop_frames = long_runs[q], needed
        elif decide is not None:
            for r in range(first_run, n_runs):
                if run_lengths[r] < ask:
                    continue
                s = run_starts[r]
                lo, hi = _check_span(start_ms, round(s * frame_ms))
                # ignored: not fixed, so a SemanticVadSettings (mypy cannot narrow by `fixed`)
                k = _frame_count(settings.wait_ms(decide(lo, hi)), frame_ms)  # type: ignore[union-attr]
                if run_lengths[r] >= k:
                    stop_run, stop_frames = r, k
                    break
        else:
            for r in range(first_run, n_runs):
                s = run_starts[r]
                required = settings.required_silence_ms((s - onset) * frame_ms)
                k = _frame_count(required, frame_ms)
                if run_lengths[r] >= k:
                    stop_run, stop_frames = r, k
                    break
        if stop_run < 0:
            # Still open at the end: offset is the trailing silence run's start, if any (such a
            # run began after the onset, since the onset frame is never silent).
            offset_ms = round(run_starts[-1] * frame_ms) if trailing_silence else end_of_audio
            segments.append(Segment(start_ms, end_of_audio, onset_ms, offset_ms, closed=False))
            break
        s = run_starts[stop_run]
        stop = s + stop_frames  # first frame after the silence window
        stop_ms = round(stop * frame_ms)
        segments.append(Segment(start_ms, stop_ms, onset_ms, round(s * frame_ms)))
        floor = max(floor, stop_ms)
        pos = stop
    return segments
