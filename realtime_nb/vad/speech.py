"""The speech-probability contract shared by every VAD model, and the offline helper.

A *speech model* turns audio into one probability per fixed-length frame. Live code (the local
server) feeds each session's audio chunk by chunk through a :class:`SpeechStream`; offline code
(the VAD lab) calls :func:`speech_probabilities` once per recording. Both paths MUST give the very
same numbers, which every implementation guarantees: a stream's output never depends on how the
audio was cut into chunks.

Timeline: frame ``i`` of a stream covers ``[i * frame_ms, (i + 1) * frame_ms)`` milliseconds of
the audio fed to it, counted from the first sample the stream received (or since its last
``reset()``). Feed a stream everything appended to a session and frame ``i`` lies on the session's
cumulative input timeline.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from realtime_nb.audio import Audio

__all__ = ["SpeechModel", "SpeechStream", "speech_probabilities"]


@runtime_checkable
class SpeechStream(Protocol):
    """One audio stream's incremental speech detector (state lives here, not in the model).

    Not thread-safe: one stream belongs to one session and is fed from one task at a time.
    """

    @property
    def frame_ms(self) -> float:
        """Length of one probability frame in milliseconds (32.0 for Silero)."""
        ...

    @property
    def frames_done(self) -> int:
        """How many probabilities this stream has produced since creation or ``reset()``."""
        ...

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed the next chunk (1-D ``int16`` at the stream's sample rate, any length, even 0).

        Returns a ``float32`` array with the probability of every frame this chunk completed
        (possibly empty); the incomplete remainder is buffered for the next call.
        """
        ...

    def flush(self) -> np.ndarray:
        """Declare the end of the audio: return the probabilities of any frames still held back.

        A trailing partial frame is dropped. After ``flush()`` the stream refuses more audio until
        ``reset()``.
        """
        ...

    def reset(self) -> None:
        """Forget everything (state, buffered samples, frame count): start a new timeline."""
        ...


@runtime_checkable
class SpeechModel(Protocol):
    """A speech detector: creates independent streams that share the loaded model."""

    @property
    def name(self) -> str:
        """Short identifier, e.g. ``"silero-v6.2"`` or ``"energy"``."""
        ...

    @property
    def frame_ms(self) -> float:
        """Frame length of the streams this model creates, in milliseconds."""
        ...

    def new_stream(self, sample_rate: int = 24_000) -> SpeechStream:
        """A fresh stream accepting ``int16`` mono samples at ``sample_rate`` Hz."""
        ...


def speech_probabilities(audio: Audio, model: SpeechModel | None = None) -> np.ndarray:
    """Speech probability of every complete frame of a whole recording (``float32``).

    Exactly equal to streaming ``audio.samples`` through ``model.new_stream(audio.sample_rate)``
    in chunks of any sizes and then calling ``flush()``: this is what lets the VAD lab reproduce
    what the live server decided. ``model`` defaults to the shared Silero model
    (:func:`realtime_nb.vad.default_speech_model`).
    """
    if model is None:
        from realtime_nb.vad.silero import default_speech_model

        model = default_speech_model()
    stream = model.new_stream(audio.sample_rate)
    head = stream.process(audio.samples)
    tail = stream.flush()
    return np.concatenate([head, tail]).astype(np.float32, copy=False)
