"""Exact, model-free stand-ins for driving :class:`~realtime_nb.protocol.SessionCore` in tests.

``FakeVad`` calls a 32 ms frame speech (1.0) when its mean magnitude exceeds 1000 and silence
(0.0) otherwise, so VAD timings in a test follow from the audio to the frame; ``tone`` and
``silence`` make such audio. ``core()`` builds a SessionCore on them with a fixed ``Clock``;
``append``, ``types``, ``manual``, ``start_response`` and ``run_response`` are the steps the
state-machine tests (tests/test_protocol_state*.py) share.
"""

from __future__ import annotations

import base64

import numpy as np
from audio_fixtures import tone_pcm16

from realtime_nb.protocol import Reply, SessionCore
from realtime_nb.vad import make_segmenter

FRAME = 768  # 32 ms at 24 kHz


class _Stream:
    """1.0 for a loud 32 ms frame, 0.0 for a quiet one: exact VAD timings."""

    frame_ms = 32.0

    def __init__(self) -> None:
        self.rest = np.zeros(0, np.int16)

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = np.concatenate([self.rest, samples])
        n = len(x) // FRAME
        self.rest = x[n * FRAME:]
        frames = x[: n * FRAME].reshape(n, FRAME).astype(np.float32)
        return (np.abs(frames).mean(axis=1) > 1000).astype(np.float32)


class FakeVad:
    """A VAD model whose streams are :class:`_Stream`."""

    def new_stream(self, sample_rate: int = 24000) -> _Stream:
        return _Stream()


def tone(ms: int) -> bytes:
    """``ms`` of a 440 Hz tone as PCM16 24 kHz (loud: speech to :class:`FakeVad`)."""
    return tone_pcm16(440, ms, 24_000, amp=10_000 / 32768)


def silence(ms: int) -> bytes:
    """``ms`` of digital silence as PCM16 24 kHz."""
    return b"\0\0" * (ms * 24)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def append(ms_bytes: bytes) -> dict:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(ms_bytes).decode()}


def core(**kw) -> SessionCore:
    kw.setdefault("clock", Clock())
    return SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter, **kw)


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def manual(c: SessionCore) -> None:
    c.handle({"type": "session.update", "session": {"type": "realtime",
                                                   "audio": {"input": {"turn_detection": None}}}})
    c.drain()


def start_response(c: SessionCore, **response: object) -> str:
    """Send response.create (with ``response`` settings, if any), drop the events it caused,
    take the one job it queued and return that response's id."""
    c.handle({"type": "response.create", **({"response": response} if response else {})})
    c.drain()
    (job,) = c.take_jobs()
    return str(job.payload["response_id"])


def run_response(c: SessionCore, text: str = "Hi there.", audio_ms: int = 400) -> str:
    (job,) = [j for j in c.take_jobs() if j.kind == "respond"]
    rid = job.payload["response_id"]
    c.response_output(rid, Reply(text=text))
    c.response_audio(rid, tone(audio_ms), text)
    c.response_finish(rid)
    return rid
