"""How the panel calls the session: one after another through the outbox, or as background
tasks, never holding the kernel, every failure recorded.

:class:`Outbox` is what keeps the panel from holding the kernel while keeping the wire in order:
every session call the panel makes (a mic chunk's ``input_audio_buffer.append``, a commit, a
``response.create``, a ``session.update`` from the settings) is *put* as a coroutine function
and runs on the owner loop after everything put before it. When the outbox is idle, what is put
starts at once, inside ``put``, and runs up to its first real wait (an append never waits while
the socket takes the data), so a mic chunk reaches the socket in the same turn of the loop, with
no task of its own; whatever does wait goes on as the outbox's task.

What the caller must know: ``put`` never raises for the call's failure (it goes to
``on_error(label, exc)``) and may be called from any thread (it is handed to the owner loop
through :class:`~realtime_nb.widgets._affinity.LoopAffinity`); :meth:`Outbox.join` waits for
everything put so far; :meth:`Outbox.cancel` drops the queue and cancels the running call.

:class:`PanelCalls` is what the panel's parts (the picture row, the approval rows, the WebRTC
call path) hold to act: the outbox, background tasks, the failure record the status line shows
(``errors``) and the way to ask the panel for a redraw.
"""

from __future__ import annotations

import asyncio
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from ._affinity import LoopAffinity

__all__ = ["Outbox", "PanelCalls"]


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, Any]:
    """Await the rest of ``coro``, which was started by hand and is ``waiting`` on what it
    yielded (a future, or None for a bare yield): hands that to the running task, then passes
    the task's wake-ups (values, exceptions, cancellation) on to ``coro`` as a task would."""
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task: the future failed, or cancel
            try:
                waiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration as stop:
                return stop.value


class Outbox:
    """Runs coroutine functions one after another, in the order put, on the owner loop.

    When nothing is queued or running, what is put starts at once, inside ``put``, and runs up
    to its first real wait (an append never waits while the socket takes the data): a mic
    chunk reaches the socket in the same turn of the loop, without a task of its own. Whatever
    does wait goes on as the outbox's task, and what is put meanwhile queues behind it.
    """

    def __init__(self, on_error: Callable[[str, BaseException], None],
                 affinity: LoopAffinity) -> None:
        self._queue: deque[tuple[str, Callable[[], Awaitable[Any]]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._in_start = False
        self._on_error = on_error
        self._affinity = affinity
        self.completed = 0

    def put(self, label: str, fn: Callable[[], Awaitable[Any]]) -> None:
        """Queue ``fn``; it runs after everything queued before it, on the owner loop, whatever
        thread calls (what is queued without a running loop runs at the next ``put`` or
        ``join`` inside it)."""
        self._affinity.call(self._put, label, fn)

    def _put(self, label: str, fn: Callable[[], Awaitable[Any]]) -> None:
        if not self._queue and not self._in_start and (self._task is None or self._task.done()):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._start_now(label, fn, loop)
                return
        self._queue.append((label, fn))
        self._start()

    def _start_now(self, label: str, fn: Callable[[], Awaitable[Any]],
                   loop: asyncio.AbstractEventLoop) -> None:
        """Run ``fn`` now up to its first wait; the rest (and the queue) as the task."""
        self._in_start = True  # what it puts meanwhile queues behind it
        try:
            coro = fn()
            if not isinstance(coro, types.CoroutineType):  # another awaitable: the usual way
                # mypy cannot infer a lambda whose parameter has a default (called with none)
                self._queue.appendleft((label, lambda aw=coro: _await(aw)))  # type: ignore[misc]
                self._start()
                return
            waiting = coro.send(None)
        except StopIteration:  # done without waiting: the usual append
            self.completed += 1
            self._start()
            return
        except asyncio.CancelledError:
            self.completed += 1
            self._start()
            return
        except Exception as exc:  # shown in the panel, never lost
            self._on_error(label, exc)
            self.completed += 1
            self._start()
            return
        finally:
            self._in_start = False
        self._task = loop.create_task(self._finish(label, coro, waiting),
                                      name="realtime_nb: panel outbox")

    async def _finish(self, label: str, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        try:
            await _resume(coro, waiting)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # shown in the panel, never lost
            self._on_error(label, exc)
        self.completed += 1
        await self._drain()

    def _start(self) -> None:
        if self._queue and (self._task is None or self._task.done()):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._task = loop.create_task(self._drain(), name="realtime_nb: panel outbox")

    def __len__(self) -> int:
        return len(self._queue)

    async def _drain(self) -> None:
        while self._queue:
            label, fn = self._queue.popleft()
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # shown in the panel, never lost
                self._on_error(label, exc)
            self.completed += 1

    async def join(self) -> None:
        """Wait until everything put so far (and anything put meanwhile) has run."""
        if self._queue:
            self._start()
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def cancel(self) -> None:
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class PanelCalls:
    """The panel's way of acting on the session, shared by its parts.

    Args:
        affinity: the owner loop (the panel's): browser messages are handed to it.
        on_change: called when something the panel shows changed (it schedules a redraw).

    Attributes: ``outbox`` (the :class:`Outbox`), ``errors`` (``(label, exception)`` of every
    failed call and session error, in order: the panel's ``errors``), ``closed`` (set by
    :meth:`close`; parts ignore the browser's input from then on).
    """

    def __init__(self, affinity: LoopAffinity, on_change: Callable[[], None]) -> None:
        self.affinity = affinity
        self.errors: list[tuple[str, BaseException]] = []
        self.outbox = Outbox(self.failed, affinity)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self._on_change = on_change

    def put(self, label: str, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn()`` after every call put before it (:meth:`Outbox.put`)."""
        self.outbox.put(label, fn)

    def spawn(self, coro: Coroutine[Any, Any, Any], label: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a background task of its own (what waits, out of the order); its
        failure is recorded under ``label``."""
        task = asyncio.get_running_loop().create_task(coro, name=f"realtime_nb: {label}")
        self.tasks.add(task)

        def done(tk: asyncio.Task[Any]) -> None:
            self.tasks.discard(tk)
            if not tk.cancelled() and tk.exception() is not None:
                self.failed(label, tk.exception())  # type: ignore[arg-type]

        task.add_done_callback(done)
        return task

    def failed(self, label: str, exc: BaseException, specific: bool = True) -> None:
        """Record a failure once; a panel action's label replaces a generic one."""
        for i, (_label, seen) in enumerate(self.errors):
            if seen is exc:
                if specific:
                    self.errors[i] = (label, exc)
                break
        else:
            self.errors.append((label, exc))
        self._on_change()

    def changed(self) -> None:
        """Ask the panel for a redraw of everything."""
        self._on_change()

    def on_loop(self, fn: Callable[..., Any]) -> Callable[..., None]:
        """``fn`` as a browser callback: run on the owner loop, whatever thread calls."""
        return self.affinity.wrap(fn)

    def close(self) -> None:
        """Drop what is queued, cancel the running call; parts ignore input from now on."""
        self.closed = True
        self.outbox.cancel()
