"""realtime_nb.audio, .vad and .protocol pass the mypy type checker.

mypy runs in-process (``mypy.api.run``) with the settings of ``[tool.mypy]`` in pyproject.toml,
on the three packages of this checkout, with a throw-away cache (nothing is written to the
repository). mypy is a test dependency (the ``test`` extra), so this never skips. It reads the
types of everything the packages import, numpy's and PyAV's included: some seconds.
"""

from __future__ import annotations

from pathlib import Path

import mypy.api
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("audio", "vad", "protocol")


def test_audio_vad_and_protocol_pass_mypy(tmp_path: Path) -> None:
    paths = [str(ROOT / "realtime_nb" / name) for name in PACKAGES]
    stdout, stderr, status = mypy.api.run([
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(tmp_path / "mypy_cache"),
        *paths,
    ])
    assert status == 0, f"mypy exited with {status}:\n{stdout}{stderr}"
    assert stdout.startswith("Success: no issues found in"), stdout
