"""Run widget callbacks on the event loop that owns the session, whatever thread delivers them.

Why this exists: with ipykernel 7 and JupyterLab 4.6 (jupyterlab_widgets 3), widget comm
messages may be handled on a kernel *subshell* thread that runs its own asyncio loop, not on the
main thread where cells run and where a Session's WebSocket lives (measured: a mic "stopped"
message and a player report arrived on ``subshell-…`` threads). asyncio objects are not
thread-safe: a task created there runs on the wrong loop, and ``websocket.send`` from it
interleaves with the main loop's writes — frames were silently lost. So every callback that a
browser message triggers and that touches the session is handed to the owner loop with
``call_soon_threadsafe`` (in order: messages keep their order).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LoopAffinity"]


class LoopAffinity:
    """Remembers the loop and thread that created an object, and runs calls there.

    Created inside a running loop (a kernel cell, an async test), that loop is the owner; created
    without one, calls run at once on the calling thread.
    """

    def __init__(self) -> None:
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self.thread = threading.current_thread()

    def here(self) -> bool:
        """Whether the caller already runs on the owner loop (or there is none)."""
        loop = self.loop
        if loop is None:
            return True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or loop.is_closed():  # the first is the hot path: one C call
            return True
        return running is None and threading.current_thread() is self.thread

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` now if on the owner loop, else as soon as the owner loop can."""
        if self.here():
            fn(*args)
        else:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(fn, *args)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., None]:
        """``fn`` as a callback that always runs on the owner loop (its result is dropped)."""

        def run(*args: Any) -> None:
            self.call(fn, *args)

        return run
