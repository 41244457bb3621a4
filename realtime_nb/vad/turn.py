"""End-of-turn model for ``semantic_vad``: Smart Turn v3.2 run with onnxruntime directly.

Where the model comes from
--------------------------
pipecat (``pipecat-ai``, BSD-2) ships Smart Turn v3.2 inside its wheel as
``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx`` (8.7 MB). We take only that file:
the package is located with :func:`importlib.util.find_spec` (which does not import it — the
framework, loguru, numba... never load), the file is verified by SHA-256 and executed by our own
onnxruntime session (one thread), shared by every session of the process. Install it with the
``smartturn`` extra (``pip install 'realtime_nb[smartturn]'``, i.e. ``pipecat-ai==1.14.*``).

What the model sees
-------------------
Input: the last <= 8 s of a turn at 16 kHz (left-padded with zeros to exactly 8 s), as
Whisper-style log-mel features — 80 Slaney mel bands over a 400-point periodic-Hann STFT with a
160-sample hop (25 ms windows every 10 ms), reflect-padded and centred, 800 frames; the waveform
is first normalised to zero mean and unit variance over the whole padded 8 s; the log10 mel power
is floored at 1e-10, clamped to (max - 8) and mapped by ``(x + 4) / 4``. These are the parameters
of ``transformers.WhisperFeatureExtractor(chunk_length=8)``, which pipecat's own
``_whisper_features.py`` reproduces; :func:`log_mel_features` is our implementation of the same
transform (checked against pipecat's in the tests). Output: the probability that the speaker has
finished their turn.

Audio on our timeline is 24 kHz int16 (what the server's VAD receives); it is brought to 16 kHz
with :func:`realtime_nb.audio.resample_float` in one piece, so the very same slice of samples
always gives the very same probability — live in the server or offline in the VAD lab. Batched
inference is bit-identical to one call per input (checked by the tests), so the batch a decision
happens to share with other sessions never changes it.

Cost, measured on this project's machine (2 cores, AMD EPYC without AVX-512/VNNI): about 0.1 s
of CPU per decision — not the ~10 ms quoted for
faster CPUs — so a decision costs as much as several seconds of Silero VAD.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from realtime_nb.audio._resample import resample_float

from ._onnx import shared_session, verified_file

__all__ = [
    "MODEL_RATE",
    "SMART_TURN_SHA256",
    "SmartTurn",
    "TurnDecisions",
    "TurnModelUnavailable",
    "default_turn_model",
    "find_turn_model_file",
    "log_mel_features",
    "turn_model_available",
    "turn_model_status",
]

log = logging.getLogger(__name__)

#: SHA-256 of ``smart-turn-v3.2-cpu.onnx`` as shipped in pipecat-ai 1.14.0.
SMART_TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
_CARRIER = ("pipecat", "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx")

MODEL_RATE = 16_000
WINDOW_S = 8
N_SAMPLES = MODEL_RATE * WINDOW_S  # 128000
N_FFT = 400
HOP = 160
N_MELS = 80
N_FRAMES = N_SAMPLES // HOP  # 800 (the STFT gives 801; the last one is dropped)


class TurnModelUnavailable(RuntimeError):
    """onnxruntime or the Smart Turn model file is missing; the message says what to install."""


# ----------------------------------------------------------------------------- features
def _slaney_mel(hz: float | np.ndarray) -> np.ndarray:
    """Hertz → mel on the Slaney (Auditory Toolbox) scale: linear below 1 kHz, log above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3.0)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_slaney_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3.0)
    log_part = 1000.0 * np.exp((mel - 15.0) * (np.log(6.4) / 27.0))
    return np.where(mel >= 15.0, log_part, linear)


@functools.cache
def _mel_matrix() -> np.ndarray:
    """``[N_MELS, N_FFT // 2 + 1]`` triangular filters, area-normalised (Slaney), 0–8 kHz."""
    bins = np.linspace(0.0, MODEL_RATE / 2, N_FFT // 2 + 1)
    edges = _slaney_hz(np.linspace(_slaney_mel(0.0), _slaney_mel(MODEL_RATE / 2), N_MELS + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lo) / (mid - lo)
    falling = (hi - bins[None, :]) / (hi - mid)
    tri = np.clip(np.minimum(rising, falling), 0.0, None)
    return tri * (2.0 / (hi - lo))


@functools.cache
def _window() -> np.ndarray:
    n = np.arange(N_FFT, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic Hann


def log_mel_features(samples_16k: np.ndarray) -> np.ndarray:
    """Whisper-style log-mel features ``[80, 800]`` (float32) of 16 kHz float audio.

    The input is the turn's audio in [-1, 1]; the *last* 8 s are used and a shorter input is
    left-padded with zeros (the end of the turn always sits at the end of the window), then
    transformed as described in the module docstring.
    """
    x = np.asarray(samples_16k, dtype=np.float32).ravel()
    if len(x) >= N_SAMPLES:
        x = x[len(x) - N_SAMPLES:]
    else:
        x = np.concatenate([np.zeros(N_SAMPLES - len(x), dtype=np.float32), x])
    x = (x - x.mean()) / np.sqrt(x.var() + np.float32(1e-7))  # float32, as the reference
    half = N_FFT // 2
    padded = np.concatenate([x[half:0:-1], x, x[-2:-half - 2:-1]]).astype(np.float64)
    frames = sliding_window_view(padded, N_FFT)[::HOP]  # [801, 400], a view
    spectrum = np.fft.rfft(frames * _window(), axis=1)
    power = spectrum.real**2 + spectrum.imag**2  # [801, 201]
    mel = np.log10(np.maximum(power[:-1] @ _mel_matrix().T, 1e-10)).T  # [80, 800]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


# ---------------------------------------------------------------------------- the model
def find_turn_model_file() -> Path:
    """Path of the verified Smart Turn v3.2 ONNX file inside the installed ``pipecat-ai``.

    Raises :class:`TurnModelUnavailable` when the package is missing or the file differs.
    """
    package, relative = _CARRIER
    spec = importlib.util.find_spec(package)  # a top-level package: located, not imported
    bases = (spec.submodule_search_locations or []) if spec is not None else []
    found, problems = verified_file((Path(base) / relative for base in bases),
                                    SMART_TURN_SHA256)
    if found is not None:
        return found
    detail = ("; ".join(problems) + ". ") if problems else ""
    raise TurnModelUnavailable(
        f"{detail}The Smart Turn v3.2 model was not found: install the 'smartturn' extra "
        "(pip install 'pipecat-ai==1.14.*'; only its ONNX file is used)."
    )


def _shared_session(path: Path) -> Any:
    return shared_session(path, TurnModelUnavailable, "onnxruntime is not installed.")


class SmartTurn:
    """Smart Turn v3.2: probability that a turn is complete, from its audio.

    All instances share one onnxruntime session (one thread) per process; ``run`` is
    thread-safe, so decisions may be computed in worker threads. ``model_path`` overrides the
    verified file (no hash check).
    """

    name = "smart-turn-v3.2"
    window_ms = WINDOW_S * 1000

    def __init__(self, model_path: str | os.PathLike[str] | None = None) -> None:
        path = Path(model_path) if model_path is not None else find_turn_model_file()
        self.model_path = path
        self._session = _shared_session(path)

    def features(self, samples: np.ndarray, sample_rate: int = 24_000) -> np.ndarray:
        """Model input ``[80, 800]`` for a turn's audio: 1-D int16 (PCM16) or float in [-1, 1]
        at ``sample_rate``; only the last 8 s matter."""
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"expected 1-D mono samples, got shape {x.shape}")
        # a little more than 8 s so the resampler's edge stays outside the window
        keep = WINDOW_S * sample_rate + sample_rate // 10
        x = x[max(0, len(x) - keep):]
        if x.dtype == np.int16:
            x = x.astype(np.float32) * np.float32(1 / 32768)
        x16 = resample_float(np.asarray(x, dtype=np.float32), sample_rate, MODEL_RATE)
        return log_mel_features(x16)

    def predict(self, samples: np.ndarray, sample_rate: int = 24_000) -> float:
        """Probability (0–1) that the turn whose audio ends with ``samples`` is complete."""
        return self.predict_many([samples], sample_rate)[0]

    def predict_many(self, inputs: Sequence[np.ndarray], sample_rate: int = 24_000,
                     batch_size: int = 8) -> list[float]:
        """:meth:`predict` for several turns, ``batch_size`` per inference call (results are
        bit-identical to one call each)."""
        out: list[float] = []
        for i in range(0, len(inputs), max(1, batch_size)):
            feats = np.stack([self.features(x, sample_rate) for x in inputs[i:i + batch_size]])
            (probs,) = self._session.run(None, {"input_features": feats})
            out.extend(float(p) for p in np.asarray(probs).reshape(-1))
        return out


_default: SmartTurn | None = None
_default_error: str | None = None
_default_lock = threading.Lock()


def default_turn_model() -> SmartTurn | None:
    """The process-wide Smart Turn model, or ``None`` when it cannot load.

    ``None`` means semantic_vad falls back to the utterance-length rule
    (:class:`realtime_nb.vad.SemanticVadSettings`); that is logged once as a warning, and the
    reason is kept in :func:`turn_model_status`.
    """
    global _default, _default_error
    with _default_lock:
        if _default is None and _default_error is None:
            try:
                _default = SmartTurn()
            except TurnModelUnavailable as exc:
                _default_error = str(exc)
                log.warning("semantic_vad: no end-of-turn model (%s) — falling back to the "
                            "utterance-length rule, which does not listen to what was said.", exc)
        return _default


def turn_model_status() -> str:
    """``"smart-turn-v3.2"`` when the model is loaded, else why semantic_vad uses the fallback."""
    model = default_turn_model()
    if model is not None:
        return model.name
    return f"length-rule fallback: {_default_error}"


def turn_model_available() -> bool:
    """Whether the Smart Turn model can be loaded (onnxruntime + the verified file)."""
    return default_turn_model() is not None


class TurnDecisions:
    """Offline answers to semantic_vad's questions on one recording (the ``decide`` of
    :func:`realtime_nb.vad.segment`): ``decisions(audio_start_ms, audio_end_ms)`` runs the model
    on that span of ``samples`` (int16, 24 kHz — the audio a live session's VAD receives), once
    per span: the answers are cached, so sweeping several eagerness values costs one inference
    per distinct pause. ``calls`` counts the inferences actually run."""

    def __init__(self, model: SmartTurn, samples: np.ndarray, sample_rate: int = 24_000) -> None:
        if sample_rate != 24_000:
            raise ValueError("TurnDecisions works on the 24 kHz VAD input (resample first)")
        self.model = model
        self.samples = np.asarray(samples)
        self.answers: dict[tuple[int, int], float] = {}
        self.calls = 0

    def __call__(self, audio_start_ms: int, audio_end_ms: int) -> float:
        key = (int(audio_start_ms), int(audio_end_ms))
        p = self.answers.get(key)
        if p is None:
            self.calls += 1
            p = self.model.predict(self.samples[key[0] * 24:key[1] * 24])
            self.answers[key] = p
        return p
