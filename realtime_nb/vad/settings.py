"""Turn-detection settings: the wire's ``server_vad`` and ``semantic_vad`` as typed values.

``ServerVadSettings`` and ``SemanticVadSettings`` carry the service's defaults and validate their
ranges; ``settings_from_wire`` reads a wire ``turn_detection`` object into one of them. What the
settings mean for segmentation is :mod:`realtime_nb.vad.segmenter`'s module docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = [
    "Eagerness",
    "SemanticVadSettings",
    "ServerVadSettings",
    "TurnDetectionSettings",
    "settings_from_wire",
]

Eagerness = Literal["low", "medium", "high", "auto"]


def _check_ms(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int number of milliseconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 ms, got {value}")


@dataclass(frozen=True)
class ServerVadSettings:
    """``turn_detection: {"type": "server_vad", ...}`` with the service's real defaults.

    * ``threshold`` (0.0–1.0, default 0.5): speech probability at which speech starts; higher
      needs clearer speech.
    * ``prefix_padding_ms`` (default 300): audio kept before the detected onset; ``audio_start_ms``
      is the onset minus this (never before the current buffer's start or the previous turn).
    * ``silence_duration_ms`` (default **200** — the docs say 500 but the service sends 200):
      trailing silence that ends the turn; ``audio_end_ms`` includes it.
    """

    threshold: float = field(default=0.5, metadata={"doc": "speech starts at prob >= threshold"})
    prefix_padding_ms: int = field(default=300, metadata={"doc": "audio kept before the onset"})
    silence_duration_ms: int = field(default=200, metadata={"doc": "silence that ends a turn"})

    type: ClassVar[str] = "server_vad"

    def __post_init__(self) -> None:
        t = self.threshold
        if not isinstance(t, int | float) or isinstance(t, bool):
            raise TypeError(f"threshold must be a number, got {t!r}")
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"threshold must be between 0.0 and 1.0, got {t!r}")
        _check_ms("prefix_padding_ms", self.prefix_padding_ms)
        _check_ms("silence_duration_ms", self.silence_duration_ms)

    def required_silence_ms(self, speech_ms: float) -> float:
        """Trailing silence that ends a turn: always ``silence_duration_ms``."""
        return float(self.silence_duration_ms)


@dataclass(frozen=True)
class SemanticVadSettings:
    """``turn_detection: {"type": "semantic_vad", "eagerness": ...}``.

    The service waits for the user to *finish their thought*, up to a maximum wait of about
    8 s (``low``), 4 s (``medium``, and ``auto`` which is medium) or 2 s (``high``). Here an
    end-of-turn model (Smart Turn v3.2, :mod:`realtime_nb.vad.turn`) gives, at each pause, the
    probability ``p`` that the turn is complete, and the pause must last

    ``wait_ms(p) = base`` if ``p >= confidence``, else ``base + (max_wait - base) * (1 - p /
    confidence)``

    with ``base = max_wait / 8`` (low 1000 ms, medium 500 ms, high 250 ms) and ``confidence`` how
    sure the model must be (low 0.7, medium 0.5, high 0.3): a complete turn ends after ``base``,
    an unfinished one waits longer the surer the model is that it is unfinished, up to the max
    wait. For every ``p``, high < medium < low.

    **Fallback without the model** (``pipecat-ai`` not installed — see
    :func:`realtime_nb.vad.turn.turn_model_status`): the completeness judgement is replaced by the
    length of what was said, on the idea that a short utterance is more likely to be unfinished:
    ``required_silence_ms(speech_ms) = base + (max_wait - base) * max(0, 1 - speech_ms / 1000)**2``
    with ``speech_ms`` the time from the onset to the start of the current silence. It does not
    listen to what was said. Threshold (0.5) and prefix padding (300 ms) are fixed: the service
    rejects them for semantic_vad.
    """

    eagerness: Eagerness = field(default="auto", metadata={"doc": "low | medium | high | auto"})

    type: ClassVar[str] = "semantic_vad"
    threshold: ClassVar[float] = 0.5
    prefix_padding_ms: ClassVar[int] = 300
    MAX_WAIT_MS: ClassVar[dict[str, int]] = {"low": 8000, "medium": 4000, "high": 2000}
    CONFIDENCE: ClassVar[dict[str, float]] = {"low": 0.7, "medium": 0.5, "high": 0.3}
    SHORT_UTTERANCE_MS: ClassVar[float] = 1000.0

    def __post_init__(self) -> None:
        if self.eagerness not in ("low", "medium", "high", "auto"):
            raise ValueError(
                f"eagerness must be 'low', 'medium', 'high' or 'auto', got {self.eagerness!r}"
            )

    @property
    def max_wait_ms(self) -> int:
        """The longest trailing silence this eagerness waits for (auto = medium)."""
        level = "medium" if self.eagerness == "auto" else self.eagerness
        return self.MAX_WAIT_MS[level]

    @property
    def confidence(self) -> float:
        """How sure the end-of-turn model must be that the turn is complete to end it fast."""
        return self.CONFIDENCE["medium" if self.eagerness == "auto" else self.eagerness]

    @property
    def base_wait_ms(self) -> float:
        """The pause that ends a complete turn (``max_wait_ms / 8``)."""
        return self.max_wait_ms / 8.0

    def wait_ms(self, p_complete: float) -> float:
        """Pause that ends the turn when the model says it is complete with ``p_complete``."""
        p = float(p_complete)
        if not math.isfinite(p):
            raise ValueError(f"p_complete must be a finite probability, got {p_complete!r}")
        p = min(1.0, max(0.0, p))
        base, top, conf = self.base_wait_ms, float(self.max_wait_ms), self.confidence
        if p >= conf:
            return base
        return base + (top - base) * (1.0 - p / conf)

    def required_silence_ms(self, speech_ms: float) -> float:
        """Fallback without a model: trailing silence that ends a turn after ``speech_ms`` of
        speech (the length rule above)."""
        top = float(self.max_wait_ms)
        base = top / 8.0
        shortness = max(0.0, 1.0 - speech_ms / self.SHORT_UTTERANCE_MS)
        return base + (top - base) * shortness * shortness


TurnDetectionSettings = ServerVadSettings | SemanticVadSettings


def settings_from_wire(turn_detection: Mapping[str, Any] | None) -> TurnDetectionSettings | None:
    """Settings for a wire ``turn_detection`` object (``None`` = manual mode → ``None``).

    Missing fields take the service defaults; fields that do not steer segmentation
    (``create_response``, ``interrupt_response``, ``idle_timeout_ms``) are ignored. Wrong types or
    ranges raise ``TypeError``/``ValueError`` (the protocol layer validates the wire first).
    """
    if turn_detection is None:
        return None
    kind = turn_detection.get("type")
    if kind == "semantic_vad":
        return SemanticVadSettings(eagerness=turn_detection.get("eagerness", "auto"))
    if kind == "server_vad":
        defaults = ServerVadSettings()
        return ServerVadSettings(
            threshold=turn_detection.get("threshold", defaults.threshold),
            prefix_padding_ms=turn_detection.get("prefix_padding_ms", defaults.prefix_padding_ms),
            silence_duration_ms=turn_detection.get(
                "silence_duration_ms", defaults.silence_duration_ms
            ),
        )
    raise ValueError(f"turn_detection.type must be 'server_vad' or 'semantic_vad', got {kind!r}")
