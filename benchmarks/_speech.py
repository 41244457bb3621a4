"""Speech for the benchmarks: espeak-ng phrases as decoded audio, and trimming their silence.

Every benchmark that needs a voice without a model download synthesises it here (Debian
``espeak-ng``; ``./dev setup`` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from realtime_nb.audio import Audio, decode

#: |sample| above this is "sound" for ``trim_silence`` (-40 dBFS).
TRIM_LEVEL = 328


def espeak(text: str, rate: int = 24_000) -> Audio:
    """``text`` spoken by espeak-ng, decoded at ``rate``; RuntimeError when espeak-ng is missing."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("the benchmarks need Debian espeak-ng to synthesise speech")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True)
        return decode(path, to_rate=rate)


def trim_silence(samples: np.ndarray) -> np.ndarray:
    """``samples`` from the first to the last one louder than -40 dBFS."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > TRIM_LEVEL)
    return samples[loud[0] : loud[-1] + 1]
