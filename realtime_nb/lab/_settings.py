"""Grids of turn-detection settings: expansion, labels and the wire form.

A *grid* names the settings a sweep tries. It is one of:

* a mapping of parameter → values, expanded as a Cartesian product::

      {"threshold": [0.3, 0.5, 0.7], "silence_duration_ms": [200, 500, 800]}

  server_vad keys are ``threshold``, ``prefix_padding_ms`` and ``silence_duration_ms`` (missing
  ones take the service defaults 0.5 / 300 / 200); ``{"eagerness": [...]}`` is a semantic_vad grid.
  A scalar value counts as a one-value list. ``"type"`` may be given for clarity;
* a sequence of settings: :class:`~realtime_nb.vad.ServerVadSettings` /
  :class:`~realtime_nb.vad.SemanticVadSettings`, wire ``turn_detection`` dicts, or further grid
  mappings (all concatenated in order).

Duplicates are dropped (first occurrence kept). Thresholds are rounded to 6 decimals so that a
``numpy.linspace`` grid never sends a number the service rejects for its decimal places.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from realtime_nb.vad import (
    SemanticVadSettings,
    ServerVadSettings,
    TurnDetectionSettings,
    settings_from_wire,
)

__all__ = [
    "DEFAULT_GRID",
    "Grid",
    "expand_grid",
    "settings_label",
    "settings_params",
    "turn_detection_wire",
]

Grid = Mapping[str, Any] | Sequence[Any]

#: What :func:`realtime_nb.lab.sweep` tries when no grid is given: 4 thresholds x 5 silence
#: windows at the default prefix padding (20 settings).
DEFAULT_GRID: dict[str, list[Any]] = {
    "threshold": [0.3, 0.5, 0.7, 0.9],
    "prefix_padding_ms": [300],
    "silence_duration_ms": [200, 300, 500, 800, 1200],
}

_SERVER_KEYS = ("threshold", "prefix_padding_ms", "silence_duration_ms")
_SEMANTIC_KEYS = ("eagerness",)


def _values(value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    if isinstance(value, np.ndarray):
        return value.ravel().tolist()
    return list(value)


def _ms(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of milliseconds, got {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    if (isinstance(value, float | np.floating) and math.isfinite(value)
            and float(value).is_integer()):
        return int(value)
    raise TypeError(f"{name} must be a whole number of milliseconds, got {value!r}")


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"threshold must be a number between 0.0 and 1.0, got {value!r}")
    return round(float(value), 6)


def _expand_mapping(grid: Mapping[str, Any]) -> list[TurnDetectionSettings]:
    keys = set(grid) - {"type"}
    kind = grid.get("type")
    semantic = bool(keys & set(_SEMANTIC_KEYS)) or kind == "semantic_vad"
    unknown = keys - set(_SERVER_KEYS) - set(_SEMANTIC_KEYS)
    if unknown:
        raise ValueError(
            f"Unknown grid parameter(s) {sorted(unknown)}: server_vad takes "
            f"{list(_SERVER_KEYS)}, semantic_vad takes ['eagerness']."
        )
    if kind not in (None, "server_vad", "semantic_vad"):
        raise ValueError(f"grid type must be 'server_vad' or 'semantic_vad', got {kind!r}")
    if semantic:
        mixed = keys & set(_SERVER_KEYS)
        if mixed:
            raise ValueError(
                f"semantic_vad has no {sorted(mixed)} (the service rejects them): sweep "
                "server_vad and semantic_vad settings as two grids in a list."
            )
        return [SemanticVadSettings(eagerness=e) for e in _values(grid.get("eagerness", "auto"))]
    defaults = ServerVadSettings()
    axes: list[list[Any]] = [  # a float axis and two int axes
        [_threshold(v) for v in _values(grid.get("threshold", defaults.threshold))],
        [_ms("prefix_padding_ms", v)
         for v in _values(grid.get("prefix_padding_ms", defaults.prefix_padding_ms))],
        [_ms("silence_duration_ms", v)
         for v in _values(grid.get("silence_duration_ms", defaults.silence_duration_ms))],
    ]
    return [ServerVadSettings(threshold=t, prefix_padding_ms=p, silence_duration_ms=s)
            for t, p, s in itertools.product(*axes)]


def _is_wire(obj: Mapping[str, Any]) -> bool:
    """A wire turn_detection dict: every value a scalar (a grid has at least one list)."""
    return all(isinstance(v, str | bool | int | float | type(None)) for v in obj.values())


def expand_grid(grid: Grid | TurnDetectionSettings) -> list[TurnDetectionSettings]:
    """The settings a grid stands for, in order, without duplicates (see the module docstring)."""
    if isinstance(grid, ServerVadSettings | SemanticVadSettings):
        items: list[TurnDetectionSettings] = [grid]
    elif isinstance(grid, Mapping):
        if _is_wire(grid) and "type" in grid:
            wire = settings_from_wire(grid)
            if wire is None:
                raise ValueError("A turn_detection of null (manual mode) has nothing to sweep.")
            items = [wire]
        else:
            items = _expand_mapping(grid)
    elif isinstance(grid, Sequence) and not isinstance(grid, str | bytes):
        items = []
        for entry in grid:
            items.extend(expand_grid(entry))
    else:
        raise TypeError(
            "grid must be a mapping of parameter -> values, settings, a turn_detection dict, or "
            f"a list of those; got {type(grid).__name__}"
        )
    seen: set[TurnDetectionSettings] = set()
    out: list[TurnDetectionSettings] = []
    for s in items:
        if s not in seen:
            seen.add(s)
            out.append(s)
    if not out:
        raise ValueError("The grid is empty: give at least one setting.")
    return out


def settings_params(settings: TurnDetectionSettings) -> dict[str, Any]:
    """The parameters of ``settings`` as a flat dict, ``type`` first (wire names)."""
    if isinstance(settings, SemanticVadSettings):
        return {"type": "semantic_vad", "eagerness": settings.eagerness}
    return {
        "type": "server_vad",
        "threshold": settings.threshold,
        "prefix_padding_ms": settings.prefix_padding_ms,
        "silence_duration_ms": settings.silence_duration_ms,
    }


def settings_label(settings: TurnDetectionSettings) -> str:
    """A short label for plots and tables, e.g. ``"thr 0.5 · pad 300 · sil 200"``."""
    if isinstance(settings, SemanticVadSettings):
        return f"semantic · {settings.eagerness}"
    return (f"thr {settings.threshold:g} · pad {settings.prefix_padding_ms} · "
            f"sil {settings.silence_duration_ms}")


def turn_detection_wire(
    settings: TurnDetectionSettings,
    *,
    create_response: bool | None = None,
    interrupt_response: bool | None = None,
) -> dict[str, Any]:
    """The wire ``turn_detection`` object for ``settings`` (optionally with the response flags)."""
    wire = settings_params(settings)
    if create_response is not None:
        wire["create_response"] = create_response
    if interrupt_response is not None:
        wire["interrupt_response"] = interrupt_response
    return wire
