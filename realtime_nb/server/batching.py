"""Model inference batched across the server's sessions: VAD frames and end-of-turn questions.

Both models are cheaper per item in batches, so the server collects work from every session
before running it:

* :class:`VadBatches` — a session whose appended audio awaits VAD is queued; a few milliseconds
  later (``LocalServer.vad_batch_s``) every queued session's audio goes through its speech model
  in one ``process_many`` call on the event loop (per model: sessions may use different ones).
  If the batch fails, each session's audio is processed alone.
* :class:`TurnBatches` — semantic_vad's end-of-turn questions run in the server's end-of-turn
  pool (``turn_workers`` threads); questions queued while every thread is busy are answered
  together in the next batch (``turn_batch`` per ``predict_many`` call). A question whose pause
  has already ended (speech resumed, session closed) is dropped unrun; a failed batch is
  answered question by question, and a failed question gets probability 0 (the turn then waits
  the eagerness's maximum).

Each answer goes to the session's core (``feed_probabilities`` / ``turn_decision``), then the
session is flushed. Both objects belong to one :class:`~realtime_nb.server.app.LocalServer` and
read its loop, pools and settings as they are at each call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    import numpy as np

    from realtime_nb.server.app import LocalServer
    from realtime_nb.server.connection import Connection

    class _BatchingSpeechModel(Protocol):
        """A speech model that batches its streams (like ``vad.SileroVAD``): the only kind
        whose sessions leave their VAD to :class:`VadBatches` (``Connection`` sets
        ``core.defer_vad`` when the model has ``process_many``)."""

        def process_many(self, work: Sequence[tuple[Any, np.ndarray]]) -> list[np.ndarray]: ...

__all__ = ["TurnBatches", "VadBatches"]

logger = logging.getLogger(__name__)


class VadBatches:
    """The sessions whose appended audio awaits VAD, run together on the server's loop."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self._dirty: dict[Connection, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    def schedule(self, conn: Connection) -> None:
        """Queue ``conn``; the batch runs ``vad_batch_s`` after the first queued session."""
        self._dirty[conn] = None
        loop = self.server.loop
        if self._timer is None and loop is not None:
            self._timer = loop.call_later(self.server.vad_batch_s, self._run)

    def _run(self) -> None:
        self._timer = None
        conns, self._dirty = list(self._dirty), {}
        by_model: dict[int, list[tuple[Connection, Any, Any]]] = {}
        for conn in conns:
            samples = conn.core.take_vad_input()
            stream = conn.core.vad_stream
            if samples is None or stream is None:
                continue
            by_model.setdefault(id(conn.vad_model), []).append((conn, stream, samples))
        for work in by_model.values():
            # (only sessions whose model has process_many defer VAD input: see the Protocol)
            model = cast("_BatchingSpeechModel", work[0][0].vad_model)
            try:
                probs = model.process_many([(stream, samples) for _, stream, samples in work])
            except Exception:
                logger.exception("batched VAD failed; falling back to per-session inference")
                probs = [stream.process(samples) for _, stream, samples in work]
            for (conn, _, _), p in zip(work, probs, strict=True):
                conn.core.feed_probabilities(p)
                conn.flush()


class TurnBatches:
    """semantic_vad's end-of-turn questions, answered in batches in the end-of-turn pool."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self._queue: list[tuple[Connection, Any, Any]] = []
        self._busy = 0  # batches running

    def schedule(self, conn: Connection, check: Any, audio: Any) -> None:
        """Queue ``conn``'s question ``check`` about ``audio`` (int16 24 kHz samples)."""
        self._queue.append((conn, check, audio))
        if self._busy < self.server.turn_workers:
            self._next()

    def clear(self) -> None:
        """Forget every queued question (the server is stopping)."""
        self._queue.clear()
        self._busy = 0

    def _next(self) -> None:
        # questions whose pause already ended (speech resumed, session gone) are dropped unrun
        size = self.server.turn_batch
        queue = [(c, chk, a) for c, chk, a in self._queue
                 if not c.core.closed and c.core.turn_check_open(chk)]
        batch, self._queue = queue[:size], queue[size:]
        if not batch:
            return
        pool, loop = self.server._turn_pool, self.server.loop
        if pool is None or loop is None:  # not started / stopping: answer here
            self._answered(batch, None)
            return
        model = batch[0][0].turn_model
        self._busy += 1
        fut = loop.run_in_executor(
            pool, functools.partial(model.predict_many, [a for _, _, a in batch],
                                    batch_size=size))
        fut.add_done_callback(lambda f: self._answered(batch, f))

    def _answered(self, batch: list[tuple[Connection, Any, Any]], fut: Any) -> None:
        if fut is not None:
            self._busy = max(0, self._busy - 1)
        probs: list[float] | None = None
        if fut is not None and not fut.cancelled() and fut.exception() is None:
            probs = fut.result()
        elif fut is not None and not fut.cancelled():
            logger.error("end-of-turn batch failed", exc_info=fut.exception())
        for k, (conn, check, audio) in enumerate(batch):
            if conn.core.closed:
                continue
            if probs is not None:
                p = probs[k]
            else:
                try:  # the batch failed (or the server is stopping): this question alone
                    p = conn.turn_model.predict(audio)
                except Exception:
                    # without a judgement the turn waits the full eagerness timeout
                    logger.exception("end-of-turn model failed; waiting the maximum")
                    p = 0.0
            conn.core.turn_decision(check, p)
            conn.flush()
        while self._queue and self._busy < self.server.turn_workers:
            before = len(self._queue)
            self._next()
            if len(self._queue) == before:
                break
