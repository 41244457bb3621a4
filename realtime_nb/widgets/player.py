"""``PlayerWidget``: streamed, low-latency playback of the assistant's audio in the browser.

The kernel sends PCM16 mono chunks as binary comm buffers (``play_chunk``); the browser queues
them in an AudioWorklet and reports how many milliseconds of each item it has played, 10 times a
second while playing and whenever an item ends, drains or is stopped. ``stop()`` cuts playback
at once and resolves with the exact milliseconds of the cut item that were played: what a
Session passes to ``conversation.item.truncate`` ("truncate by what was played, not by what was
received").

Progress reaches the kernel only while it is idle (a running cell holds comm messages back), so
``await player.stop()`` inside a cell would wait forever: in cells use ``player.stop(callback)``;
the awaitable form is for tasks running on the kernel's event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import pathlib
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anywidget
import numpy as np
import traitlets as t

from realtime_nb.audio import Audio, StreamResampler

from ._affinity import LoopAffinity

__all__ = ["Played", "PlayedFuture", "PlayerWidget"]

#: The rate the browser plays at; chunks at other rates are resampled in the kernel first.
SAMPLE_RATE = 24_000

_HERE = pathlib.Path(__file__).parent

PlayedEvent = Literal["started", "progress", "ended", "drained", "stopped"]


def _to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] (a StreamResampler's output) as PCM16 little-endian bytes."""
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


@dataclass(frozen=True)
class Played:
    """How much of an item the browser has played.

    ``event`` says why it was reported: ``"started"`` (output began, ``played_ms`` 0),
    ``"progress"`` (periodic, while playing), ``"ended"`` (the next item took over),
    ``"drained"`` (the queue ran empty: the item is done unless more audio comes),
    ``"stopped"`` (cut by ``stop()`` or the Stop button; ``played_ms`` is exact and the rest of
    the item's queued audio, ``dropped_ms``, was discarded). ``item_id`` is ``None`` when a stop
    found nothing playing or queued.
    """

    item_id: str | None
    played_ms: int
    event: PlayedEvent
    dropped_ms: int = 0


class PlayedFuture(concurrent.futures.Future):
    """The result of ``PlayerWidget.stop()``: a ``concurrent.futures.Future`` of a ``Played``.

    Use ``add_done_callback``, ``result()`` (from another thread only: the kernel's own thread
    would block the message that resolves it) or ``await`` it from a task on the event loop.
    """

    def __await__(self) -> Generator[Any, None, Played]:
        return asyncio.wrap_future(self).__await__()


PlayedCallback = Callable[[Played], Any]


class PlayerWidget(anywidget.AnyWidget):
    """Streams PCM16 audio to the browser and tracks what was actually played.

    Synced traits: ``volume`` (0..1), ``prebuffer_ms`` (audio gathered before an item starts, to
    ride over network jitter; an item shorter than that starts after ``prebuffer_ms`` anyway),
    ``error`` (a message from the browser, e.g. playback could not start).
    Kernel-side traits, updated from the browser's reports (observe them with ``observe``):
    ``playing``, ``item_id`` (the item playing or last played) and ``played_ms`` (of that item).
    """

    _esm = _HERE / "player.js"
    _css = _HERE / "widgets.css"

    volume = t.Float(1.0, min=0.0, max=1.0).tag(sync=True)
    prebuffer_ms = t.Int(60, min=0, max=2000).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    _uid = t.Unicode().tag(sync=True)

    playing = t.Bool(False, read_only=True)
    item_id = t.Unicode(None, allow_none=True, read_only=True)
    played_ms = t.Int(0, read_only=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("_uid", uuid.uuid4().hex)
        super().__init__(**kwargs)
        self._played: dict[str, int] = {}
        self._sent_ms: dict[str, float] = {}
        self._cut: set[str] = set()
        self._resamplers: dict[str, StreamResampler] = {}
        self._seq = itertools.count()
        self._request_ids = itertools.count(1)
        self._pending: dict[int, PlayedFuture] = {}
        self._callbacks: list[PlayedCallback] = []
        self._unstopped_audio = False
        # Browser messages may be delivered on a kernel subshell thread with its own loop:
        # handle them (and the user callbacks they trigger) on the loop that made the widget.
        self._affinity = LoopAffinity()
        self.on_msg(self._affinity.wrap(self._on_browser_msg))

    # ------------------------------------------------------------------ public API
    def play_chunk(self, item_id: str, pcm16: bytes | bytearray | memoryview,
                   sample_rate: int = SAMPLE_RATE) -> bool:
        """Queue PCM16 little-endian mono ``pcm16`` of ``item_id`` for playback.

        Chunks of one item play back to back in the order sent; a new ``item_id`` starts after
        the queued audio of the previous one. Audio at a rate other than 24 kHz is resampled
        (one stream per item, so chunk edges stay clean; call ``end_item`` at the end of such an
        item to send the resampler's last few milliseconds). Returns ``False`` and drops the chunk
        when ``item_id`` was cut by ``stop()`` (late deltas of an interrupted response).
        """
        if item_id in self._cut:
            return False
        audio = Audio.from_pcm16(pcm16, sample_rate)
        if audio.sample_rate != SAMPLE_RATE:
            rs = self._resamplers.get(item_id)
            if rs is None or rs.in_rate != audio.sample_rate:
                rs = self._resamplers[item_id] = StreamResampler(audio.sample_rate, SAMPLE_RATE)
            data = _to_pcm16(rs.process(audio.samples))
        else:
            data = bytes(pcm16)
        self._send_pcm(item_id, data)
        return True

    def end_item(self, item_id: str) -> None:
        """Say that all audio of ``item_id`` was sent (e.g. on ``response.output_audio.done``).

        Needed only for items sent at a rate other than 24 kHz: the resampler then hands over
        the last few milliseconds it holds back. Harmless otherwise.
        """
        rs = self._resamplers.pop(item_id, None)
        if rs is not None and item_id not in self._cut:
            self._send_pcm(item_id, _to_pcm16(rs.flush()))

    def _send_pcm(self, item_id: str, data: bytes) -> None:
        if not data:
            return
        ms = len(data) / 2 * 1000 / SAMPLE_RATE
        self._sent_ms[item_id] = self._sent_ms.get(item_id, 0.0) + ms
        self._unstopped_audio = True
        self.send(
            {"type": "audio", "item_id": item_id, "seq": next(self._seq),
             "sample_rate": SAMPLE_RATE},
            buffers=[data],
        )

    def stop(self, callback: PlayedCallback | None = None) -> PlayedFuture:
        """Stop playback now and clear the queue; resolve with what was played of the cut item.

        The browser replies with the exact ``played_ms`` of the item it cut (``Played`` with
        ``event="stopped"``; ``item_id`` ``None`` if nothing was playing). ``callback(played)``
        is called with it too. Later chunks of the cut item are dropped by ``play_chunk``.
        If no audio was sent since the last stop, the result is immediate.
        """
        future = PlayedFuture()
        if callback is not None:
            future.add_done_callback(lambda f: callback(f.result()))
        if not self._unstopped_audio:
            future.set_result(Played(None, 0, "stopped"))
            return future
        request_id = next(self._request_ids)
        self._pending[request_id] = future
        self.send({"type": "stop", "request_id": request_id})
        return future

    def on_played(self, callback: PlayedCallback, remove: bool = False) -> None:
        """Call ``callback(played: Played)`` on every report from the browser.

        Reports come 10 times a second while playing, and on start, item end, drain and stop
        (also a stop from the widget's own Stop button: ``event == "stopped"``).
        """
        if remove:
            self._callbacks.remove(callback)
        else:
            self._callbacks.append(callback)

    def played_ms_of(self, item_id: str) -> int:
        """Milliseconds of ``item_id`` the browser reported as played so far (0 if unknown).

        (The ``played_ms`` trait holds the same for the current item only.)
        """
        return self._played.get(item_id, 0)

    def sent_ms(self, item_id: str) -> float:
        """Milliseconds of ``item_id`` sent to the browser so far (at 24 kHz)."""
        return self._sent_ms.get(item_id, 0.0)

    # ------------------------------------------------------------------ browser -> kernel
    def _on_browser_msg(
        self, _widget: Any, content: dict[str, Any], _buffers: Sequence[Any]
    ) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind not in {"played", "started", "stopped"}:
            return
        item = content.get("item_id")
        played = round(float(content.get("played_ms", 0) or 0))
        if kind == "started":
            report = Played(item, self._played.get(item, 0) if item else 0, "started")
            self._set_state(item, report.played_ms, playing=True)
        elif kind == "played":
            event = content.get("event", "progress")
            if event not in {"progress", "ended", "drained"}:
                event = "progress"
            report = Played(item, played, event)
            if item is not None:
                self._played[item] = played
            playing = event == "progress" or (
                event == "ended" and float(content.get("buffered_ms", 0) or 0) > 0
            )
            self._set_state(item, played, playing=playing)
        else:
            report = Played(item, played, "stopped",
                            round(float(content.get("dropped_ms", 0) or 0)))
            self._unstopped_audio = False
            if item is not None:
                self._played[item] = played
                self._cut.add(item)
                self._resamplers.pop(item, None)
            self._set_state(item if item is not None else self.item_id,
                            played if item is not None else self.played_ms, playing=False)
            future = self._pending.pop(int(content.get("request_id") or 0), None)
            if future is not None and not future.done():
                future.set_result(report)
        self._dispatch(report)

    def _set_state(self, item: str | None, played: int, *, playing: bool) -> None:
        with self.hold_trait_notifications():
            self.set_trait("item_id", item)
            self.set_trait("played_ms", played)
            self.set_trait("playing", playing)

    def _dispatch(self, report: Played) -> None:
        for callback in list(self._callbacks):
            try:
                callback(report)
            except Exception:  # a user callback must not break playback tracking
                import traceback

                traceback.print_exc()
