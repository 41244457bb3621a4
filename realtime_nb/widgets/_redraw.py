"""When the panel redraws, and how little it sends when it does.

Session events and panel actions only *request* a redraw (:meth:`RedrawSchedule.request`); the
schedule runs the panel's draw at most once per ``refresh_s``, in the turn of the loop that
brought a change whenever it can, so a flood of events costs a few redraws and no wake-ups of
its own. A request is *full* (everything: status, usage, transcript, controls, mode note) or
*live* (the parts that move while the mic streams: the input-buffer gauge and the timeline).

Then only what changed goes to the browser: :class:`PartMemo` rebuilds a part's HTML only when
one of the inputs it is built from changed, :func:`set_value` assigns only a new value, and
:func:`show_live` sends a live part's new value as one ``update`` message without traitlets'
generic machinery.

What the caller must know: the draw callback runs on the owner loop (requests from another
thread are handed to it); without a running loop a request draws at once; after
:meth:`RedrawSchedule.close` nothing is drawn again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import traitlets as t

from ._affinity import LoopAffinity

__all__ = ["PartMemo", "RedrawSchedule", "set_value", "show_live"]


class RedrawSchedule:
    """Runs ``draw(full)`` at most once per ``refresh_s`` seconds (see the module docstring).

    Attributes: ``refresh_s`` (settable), ``handle`` (the scheduled redraw: an
    ``asyncio.Handle`` for one in this turn of the loop, a ``TimerHandle`` for a later one, or
    None), ``last`` (``time.monotonic()`` of the last redraw).
    """

    def __init__(self, draw: Callable[[bool], None], refresh_s: float,
                 affinity: LoopAffinity) -> None:
        self.draw = draw
        self.refresh_s = refresh_s
        self.handle: asyncio.Handle | None = None
        self.last = float("-inf")
        self.closed = False
        self._affinity = affinity
        self._full = True  # False: only the live parts (gauge, timeline) need a redraw
        self._soon = False  # the scheduled redraw runs in this turn of the loop

    def request(self, full: bool = True) -> None:
        """Schedule a redraw — of everything when ``full``, else of the live parts (unless a
        full one is pending) — or redraw now without a running loop.

        Once the last redraw is ``refresh_s`` old, the redraw runs right after the current
        callbacks, in the turn of the loop that brought the change (a mic chunk, a server
        event): it costs no wake-up of its own. Before that, a timer is set for half a
        ``refresh_s`` after the time is up, and the first change after the time is up brings
        the redraw forward into its own turn. So a steady stream is drawn on its own beat
        (100 ms mic chunks: every other chunk), a flood at most every ``refresh_s``, and the
        last change is on screen at most 1.5 ``refresh_s`` after it happened.
        """
        if full:
            self._full = True
        if self.closed or (self.handle is not None and self._soon):
            return
        if not self._affinity.here():
            self._affinity.call(self.request, False)
            return
        now = time.monotonic()
        due = self.last + self.refresh_s
        if self.handle is not None:
            if now < due:
                return  # the timer set for this stays
            self.handle.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.run()
            return
        self._soon = now >= due
        self.handle = (loop.call_soon(self.run) if self._soon
                       else loop.call_later(due - now + self.refresh_s / 2, self.run))

    def run(self, full: bool = False) -> None:
        """Redraw now (``full``: everything), in place of the scheduled redraw."""
        if full:
            self._full = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self._soon = False
        if self.closed:
            return
        self.last = time.monotonic()
        full, self._full = self._full, False
        self.draw(full)

    def close(self) -> None:
        """Cancel the scheduled redraw; draw nothing from now on."""
        self.closed = True
        if self.handle is not None:
            self.handle.cancel()


class PartMemo:
    """What each part showed last, by the inputs it was built from."""

    def __init__(self) -> None:
        self._shown: dict[str, Any] = {}  # name -> (inputs, value), or the last value

    def part(self, name: str, inputs: tuple[Any, ...], build: Callable[[], str]) -> str:
        """``build()``, or what it gave last time for the same ``inputs`` (``==``; the session
        config by identity: it is replaced, never changed in place)."""
        shown = self._shown.get(name)
        if shown is not None and len(shown[0]) == len(inputs) and all(
                a is b or a == b for a, b in zip(shown[0], inputs, strict=True)):
            return shown[1]
        value = build()
        self._shown[name] = (inputs, value)
        return value

    def changed(self, name: str, value: Any) -> bool:
        """Whether ``value`` differs from the last one given for ``name`` (then kept)."""
        if name in self._shown and self._shown[name] == value:
            return False
        self._shown[name] = value
        return True


def set_value(w: widgets.HTML, value: str) -> None:
    """Set ``w.value`` only when it changes (no message for the same HTML)."""
    if w.value != value:
        w.value = value


def show_live(w: widgets.HTML, value: str) -> None:
    """Set ``w.value`` and send it to the browser: for the panel's live part (the input-buffer
    gauge), redrawn several times a second while the mic streams.

    The message is the one ipywidgets sends for a trait change (``update`` with the new
    ``value``), and ``w.value`` reads the new value; what is left out is traitlets' generic
    machinery around it (validating a ``str`` as a ``str``, looking for observers), which
    costs more than the message itself. If anything observes ``value``, or the widget holds
    its sync, the ordinary assignment is used.
    """
    try:
        values = w._trait_values
        if values.get("value") == value:
            return
        notifiers = w._trait_notifiers
        if "value" in notifiers or t.All in notifiers or w._holding_sync or w._property_lock:
            w.value = value
            return
        send = w._send
    except AttributeError:  # another ipywidgets/traitlets: the public way
        w.value = value
        return
    values["value"] = value
    send({"method": "update", "state": {"value": value}, "buffer_paths": []})
