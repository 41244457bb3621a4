"""Picking a setting from a sweep, saying why in words, and applying it to a live session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime_nb.vad import (
    SemanticVadSettings,
    ServerVadSettings,
    TurnDetectionSettings,
    settings_from_wire,
)

from ._settings import settings_label, settings_params, turn_detection_wire

if TYPE_CHECKING:
    from ._records import SettingResult, SweepResult

__all__ = ["Recommendation", "apply", "recommend"]

_DEFAULT = ServerVadSettings()


@dataclass(frozen=True)
class Recommendation:
    """The recommended ``settings``, the ``reason`` in words, and the ``record`` behind it.

    ``turn_detection`` is the wire object to send (``apply(session, recommendation)`` does it).
    """

    settings: TurnDetectionSettings
    reason: str
    record: SettingResult

    @property
    def turn_detection(self) -> dict[str, Any]:
        return turn_detection_wire(self.settings)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": settings_params(self.settings), "reason": self.reason,
                "record": self.record.to_dict()}

    def __str__(self) -> str:
        return self.reason

    def _repr_markdown_(self) -> str:
        return f"**{settings_label(self.settings)}** — {self.reason}"


def _closeness(s: TurnDetectionSettings) -> tuple[float, ...]:
    """Tie-breaker: nearer the service defaults first (fewer surprises)."""
    if isinstance(s, SemanticVadSettings):
        return (1.0, 0.0, 0.0)
    return (0.0, abs(s.threshold - _DEFAULT.threshold),
            abs(s.prefix_padding_ms - _DEFAULT.prefix_padding_ms) / 1000.0)


def _rank_key(r: SettingResult) -> tuple[Any, ...]:
    no_turns = r.n_turns == 0
    latency = float("inf") if r.latency_ms is None else r.latency_ms
    return (no_turns, r.errors, latency, *_closeness(r.settings))


def _s(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _problems(r: SettingResult, utterances: int) -> str:
    parts = []
    if r.premature_cutoffs:
        parts.append(f"cut {_s(r.premature_cutoffs, 'utterance')} off before the speaker "
                     "finished")
    if r.clipped_onsets:
        parts.append(f"clipped the start of {_s(r.clipped_onsets, 'turn')}")
    if r.false_starts:
        parts.append(f"started {_s(r.false_starts, 'turn')} on no speech")
    if r.missed_utterances:
        parts.append(f"missed {r.missed_utterances} of {utterances} utterances")
    return ", ".join(parts) if parts else "made no error"


def _yardstick_words(result: SweepResult) -> str:
    ref = result.reference
    n = len(ref.utterances)
    where = {
        "auto": "found by the speech model in the recording itself",
        "labels": "in your reference labels",
        "clean recording": "in the clean recording",
    }.get(ref.source, f"in the {ref.source}")
    return f"{_s(n, 'utterance')} {where}"


def recommend(result: SweepResult) -> Recommendation:
    """Choose the setting with the fewest errors, then the lowest median latency.

    Errors are premature cut-offs + clipped onsets + false starts + missed utterances against
    the sweep's yardstick; settings that found no turn at all come last. Ties go to the setting
    nearest the service defaults (threshold 0.5, prefix padding 300 ms). The reason names the
    yardstick, what the chosen setting did, how it compares with the quickest setting that made
    errors, and what the service default did if it was in the grid.
    """
    records = list(result)
    if not records:
        raise ValueError("An empty sweep has nothing to recommend.")
    ranked = sorted(records, key=_rank_key)
    best = ranked[0]
    n_utt = len(result.reference.utterances)
    lat = ("no latency could be measured" if best.latency_ms is None
           else f"it commits {best.latency_ms / 1000:.2f} s after speech ends (median)")
    if best.n_turns == 0:
        reason = (f"No setting detected any turn in this recording ({_yardstick_words(result)})."
                  " Check that it holds speech at a usable level; a lower threshold helps "
                  "with quiet speech.")
        return Recommendation(best.settings, reason, best)
    clean = [r for r in records if r.errors == 0 and r.n_turns > 0]
    head = f"Use {settings_label(best.settings)}: against the {_yardstick_words(result)}, it "
    if best.errors == 0:
        reason = head + f"made no error and {lat}"
        if len(clean) > 1:
            reason += f", the quickest of the {len(clean)} error-free settings"
        reason += "."
    else:
        reason = (head + f"{_problems(best, n_utt)} — the fewest errors of all "
                  f"{len(records)} settings (none was error-free) — and {lat}.")
    faster = [r for r in records if r.latency_ms is not None and best.latency_ms is not None
              and r.latency_ms < best.latency_ms and r.errors > best.errors]
    if faster:
        quick = min(faster, key=lambda r: (r.latency_ms, r.errors))
        assert quick.latency_ms is not None and best.latency_ms is not None
        reason += (f" Quicker settings pay for it: {settings_label(quick.settings)} commits "
                   f"{(best.latency_ms - quick.latency_ms) / 1000:.2f} s sooner but "
                   f"{_problems(quick, n_utt)}.")
    default = next((r for r in records if r.settings == _DEFAULT), None)
    if default is not None and default is not best:
        reason += f" The service default ({settings_label(_DEFAULT)}) {_problems(default, n_utt)}"
        if default.latency_ms is not None:
            reason += f" with a median latency of {default.latency_ms / 1000:.2f} s"
        reason += "."
    if result.reference.source == "auto":
        reason += (" (The yardstick is the speech model's own view of the recording; give "
                   "reference= labels or a clean recording for an independent one.)")
    return Recommendation(best.settings, reason, best)


def _as_settings(choice: Any) -> TurnDetectionSettings:
    if isinstance(choice, Recommendation):
        return choice.settings
    if isinstance(choice, ServerVadSettings | SemanticVadSettings):
        return choice
    settings = getattr(choice, "settings", None)
    if isinstance(settings, ServerVadSettings | SemanticVadSettings):
        return settings
    if isinstance(choice, Mapping):
        parsed = settings_from_wire(choice)
        if parsed is None:
            raise ValueError("apply() sets turn detection; for manual mode call "
                             "session.update(turn_detection=None).")
        return parsed
    raise TypeError("apply() takes a Recommendation, a SettingResult, VAD settings or a "
                    f"turn_detection dict, got {type(choice).__name__}")


def _current_turn_detection(session: Any) -> Mapping[str, Any] | None:
    config = getattr(session, "config", None)
    if not isinstance(config, Mapping):
        return None
    audio = config.get("audio")
    if isinstance(audio, Mapping):
        td = (audio.get("input") or {}).get("turn_detection")
    else:
        td = config.get("turn_detection")
    return td if isinstance(td, Mapping) else None


async def apply(session: Any, choice: Any, *, wait: bool = True) -> dict[str, Any]:
    """Send ``session.update`` with the chosen turn detection; returns ``session.updated``.

    ``choice`` is a :class:`Recommendation`, a :class:`~realtime_nb.lab.SettingResult`, VAD
    settings or a wire ``turn_detection`` dict. The session's current ``create_response`` /
    ``interrupt_response`` (and, staying with server_vad, ``idle_timeout_ms``) are kept, so
    applying a tuned threshold does not silently switch automatic responses back on or off.
    A rejected update raises :class:`~realtime_nb.RealtimeError` (with ``wait``).
    """
    settings = _as_settings(choice)
    wire = turn_detection_wire(settings)
    current = _current_turn_detection(session)
    if current is not None:
        for key in ("create_response", "interrupt_response"):
            if isinstance(current.get(key), bool):
                wire[key] = current[key]
        if (wire["type"] == "server_vad" and current.get("type") == "server_vad"
                and current.get("idle_timeout_ms") is not None):
            wire["idle_timeout_ms"] = current["idle_timeout_ms"]
    return await session.update(turn_detection=wire, wait=wait)
