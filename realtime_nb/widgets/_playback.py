"""The assistant's voice in the page, and cutting it short: the panel's playback.

:class:`PlayerFeed` forwards ``response.output_audio.delta`` audio to the
:class:`~realtime_nb.widgets.PlayerWidget` in small batches (every ``flush_s``, ~40 ms, or at
once past 300 ms of audio) rather than one comm message per delta. On a barge-in it stops the
player at once and drops what was gathered; the browser then reports how many milliseconds of
the item were really played, and that report becomes the truncate
(:meth:`~realtime_nb.client.turn_taking.TurnTaking.heard`: the rules live beside the client).

What the caller must know: everything runs on the panel's loop; without a running loop audio
goes to the player at once.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from realtime_nb.client.turn_taking import TurnTaking

from ._outbox import PanelCalls
from .player import Played, PlayerWidget

__all__ = ["PlayerFeed"]


class PlayerFeed:
    """The panel's playback (see the module docstring); ``player`` is the widget.

    Args:
        turns: the session's turn rules (what a stop cancels and truncates).
        calls: the panel's :class:`~._outbox.PanelCalls`.
        flush_s: how long assistant audio may gather before it is sent to the player.
    """

    def __init__(self, turns: TurnTaking, calls: PanelCalls, flush_s: float) -> None:
        self.player = PlayerWidget()
        self.flush_s = flush_s
        self._turns = turns
        self._calls = calls
        self._handle: asyncio.TimerHandle | None = None
        self._pending: dict[str, bytearray] = {}
        self.player.on_played(calls.on_loop(self._on_played))

    def queue(self, ev: dict[str, Any]) -> None:
        """A ``response.output_audio.delta``: gather its audio for the player (sent every
        ``flush_s``, or at once past 300 ms of it)."""
        item_id = ev.get("item_id")
        delta = ev.get("delta")
        if not isinstance(item_id, str) or not isinstance(delta, str):
            return
        self._turns.playing(item_id, int(ev.get("content_index") or 0))
        buf = self._pending.setdefault(item_id, bytearray())
        buf += base64.b64decode(delta)
        if sum(len(b) for b in self._pending.values()) >= 48 * 300:
            self.flush()
        elif self._handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._handle = loop.call_later(self.flush_s, self.flush)

    def flush(self) -> None:
        """Send what was gathered to the player now (whole samples only)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        pending, self._pending = self._pending, {}
        for item_id, data in pending.items():
            if data:
                self.player.play_chunk(item_id, bytes(data[: len(data) // 2 * 2]))

    def barge_in(self, reason: str, force: bool = False) -> None:
        """Stop playback (the browser's report, ``_on_played``, then truncates) and, unless the
        server's VAD does it itself (``reason == "speech"``), cancel the running response
        (the rules: :class:`~realtime_nb.client.turn_taking.TurnTaking`)."""
        if not self._turns.interrupts(force):
            return
        self._pending.clear()
        reported = not self.player.stop().done()  # nothing sent since the last stop: no report
        self._turns.playback_stopped(reason, reported)

    def _on_played(self, played: Played) -> None:
        if played.event == "stopped" and \
                self._turns.heard(played.item_id, played.played_ms) is not None:
            self._calls.changed()

    def close(self) -> None:
        """Cancel a pending send to the player."""
        if self._handle is not None:
            self._handle.cancel()
