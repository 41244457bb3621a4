"""The packages listed in ``[tool.mypy] files`` of pyproject.toml pass the mypy type checker.

mypy runs in a child process (``python -m mypy``, this interpreter) from the checkout's root
with that configuration and a throw-away cache, so nothing is written to the repository and
nothing of mypy stays in the test process (in-process, mypy raises the interpreter's recursion
limit to 16384 and leaves it there, which changed what a later test's deeply nested schema did).
mypy is a test dependency (the ``test`` extra), so this never skips. It reads the types of
everything the packages import, numpy's and PyAV's included: some seconds.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_the_configured_packages_pass_mypy(tmp_path: Path) -> None:
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    assert files, "[tool.mypy] files names no package"
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
         "--cache-dir", str(tmp_path / "mypy_cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"mypy exited with {run.returncode}:\n{run.stdout}{run.stderr}"
    assert run.stdout.startswith("Success: no issues found in"), run.stdout

