"""Grids of turn-detection settings: expansion, validation, labels and wire form."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_nb import lab
from realtime_nb.vad import SemanticVadSettings, ServerVadSettings


def test_mapping_expands_to_the_cartesian_product_with_defaults() -> None:
    got = lab.expand_grid({"threshold": [0.3, 0.5], "silence_duration_ms": [200, 500, 800]})
    assert len(got) == 6
    assert got[0] == ServerVadSettings(0.3, 300, 200)
    assert got[-1] == ServerVadSettings(0.5, 300, 800)


def test_numpy_values_become_wire_safe_numbers() -> None:
    """linspace gives 0.30000000000000004 and int64: the service wants plain numbers with few
    decimals, and the settings want int milliseconds."""
    got = lab.expand_grid({"threshold": np.linspace(0.1, 0.5, 5),
                           "silence_duration_ms": np.array([200, 400])})
    assert [s.threshold for s in got[::2]] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert all(type(s.silence_duration_ms) is int for s in got)
    with pytest.raises(TypeError):
        lab.expand_grid({"silence_duration_ms": [250.5]})


def test_semantic_grid_and_lists_of_grids_without_duplicates() -> None:
    got = lab.expand_grid([{"eagerness": ["low", "high"]}, ServerVadSettings(),
                           {"type": "server_vad"}, {"type": "semantic_vad", "eagerness": "low"}])
    assert got == [SemanticVadSettings("low"), SemanticVadSettings("high"), ServerVadSettings()]


def test_bad_grids_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown grid parameter"):
        lab.expand_grid({"silence_ms": [200]})
    with pytest.raises(ValueError, match="semantic_vad has no"):
        lab.expand_grid({"eagerness": ["low"], "prefix_padding_ms": [100]})
    with pytest.raises(ValueError):
        lab.expand_grid({"threshold": [1.5]})
    with pytest.raises(ValueError, match="type"):
        lab.expand_grid({"type": "none"})
    with pytest.raises(TypeError):
        lab.expand_grid(42)  # type: ignore[arg-type]


def test_wire_form_and_labels() -> None:
    s = ServerVadSettings(0.6, 100, 700)
    assert lab.turn_detection_wire(s, create_response=False) == {
        "type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 100,
        "silence_duration_ms": 700, "create_response": False}
    assert lab.settings_label(s) == "thr 0.6 · pad 100 · sil 700"
    assert lab.turn_detection_wire(SemanticVadSettings("high")) == {
        "type": "semantic_vad", "eagerness": "high"}
