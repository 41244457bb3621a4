"""A local server on its own event loop in a background thread: the one home of that pattern.

:func:`~realtime_nb.server.ensure_local_server` (the process-wide server a notebook's Session
uses) and the VAD lab's private server (:class:`realtime_nb.lab._socket.LocalServerThread`) both
run a :class:`~realtime_nb.server.LocalServer` this way, so the server keeps serving while
notebook cells run and never blocks the kernel's loop (nest-asyncio is not needed).

The caller must stop what it starts: :meth:`ServerThread.stop` stops the loop, which first
stops the server (closing its sessions) on that loop, then closes the loop. The thread is a
daemon, so a process that exits without stopping it does not hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from realtime_nb.server.app import LocalServer

__all__ = ["ServerThread"]


class ServerThread:
    """Run ``server`` on a new event loop in a daemon thread named ``name``.

    :meth:`start` returns once the server listens (its ``url`` and ``port`` are then valid) and
    raises what ``server.start()`` raised, or ``TimeoutError``. Everything that touches the
    server afterwards must run on :attr:`loop` (:meth:`call`).
    """

    def __init__(self, server: LocalServer, *, name: str = "realtime_nb-local-server") -> None:
        self.server = server
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the server's loop is running (started and not stopped)."""
        return self.loop is not None and self.loop.is_running()

    def start(self, *, warm_up: bool = True, timeout: float = 60.0) -> ServerThread:
        """Start the thread and the server on it (``warm_up`` goes to ``LocalServer.start``)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop
            try:
                loop.run_until_complete(self.server.start(warm_up=warm_up))
            except BaseException as err:  # raised in the caller's thread below
                failure.append(err)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(self.server.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the local server did not start within {timeout:g} s")
        if failure:
            raise failure[0]
        return self

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run ``coro`` on the server's loop from another thread and return its result."""
        assert self.loop is not None, "start() the server first"
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and its loop; wait up to ``timeout`` seconds for the thread."""
        loop, thread = self.loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self.loop = None
        self._thread = None
