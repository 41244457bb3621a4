"""The Session's waiting room: ``on`` / ``off`` callbacks and ``wait_for`` waiters.

Every server event the Session receives (and its own ``realtime_nb.*`` events) ends here: the
receive path (:mod:`._receiving`) calls :meth:`_Waiting._dispatch` for callbacks and resolves the
pending :class:`_Waiter` futures. What the caller must know: callbacks run on the event loop
(coroutine functions become tasks), their exceptions are logged and kept in
``session.callback_errors`` and never stop the session; a waiter is resolved at most once and
failed with the connection's error when it drops (:meth:`_Waiting._fail_waiters`).

This is one room of :class:`~realtime_nb.client.session.Session` (a mixin: it holds no state of
its own beyond what ``Session.__init__`` sets: ``_waiters``, ``_callbacks``, ``_tasks``,
``callback_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import RealtimeError, RealtimeTimeout, RealtimeWarning
from .hints import BETA_SERVER_EVENTS

if TYPE_CHECKING:
    from ._parts import SessionParts  # the Session's members this room uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin

logger = logging.getLogger("realtime_nb.client")

EventMatch = str | Iterable[str] | Callable[[dict[str, Any]], bool]
Callback = Callable[[dict[str, Any]], Any]


class _Waiter:
    """One pending wait: its match, its future, and which errors fail it (``error_for``: client
    event ids whose ``error`` answers it; ``any_error``: every error does)."""

    __slots__ = ("any_error", "error_for", "future", "match")

    def __init__(self, match: Callable[[dict[str, Any]], bool], future: asyncio.Future[Any],
                 error_for: set[str], any_error: bool) -> None:
        self.match = match
        self.future = future
        self.error_for = error_for
        self.any_error = any_error

    def accepts(self, event: dict[str, Any]) -> bool:
        """Whether ``event`` resolves this wait (a predicate that raises means no)."""
        try:
            return bool(self.match(event))
        except Exception:
            return False


def _matcher(match: EventMatch) -> Callable[[dict[str, Any]], bool]:
    if isinstance(match, str):
        return lambda ev: ev.get("type") == match
    if callable(match):
        return match
    types = frozenset(match)
    return lambda ev: ev.get("type") in types


def _warn_beta_name(event_type: str) -> None:
    """Listening for a beta event name never fires on a GA server (gotcha 15): say so."""
    ga = BETA_SERVER_EVENTS.get(event_type)
    if ga is not None:
        warnings.warn(f"'{event_type}' is the beta name of this event; GA servers send {ga}, "
                      "so this would never fire.", RealtimeWarning, stacklevel=3)


class _Waiting(SessionParts):
    """Callbacks (``on``/``off``) and waiters (``wait_for``) of the Session's server events."""

    def on(self, event_type: str, callback: Callback | None = None) -> Any:
        """Call ``callback(event)`` for each server event of ``event_type`` (``"*"``: all).

        Also receives the session's own events: ``realtime_nb.connected``,
        ``realtime_nb.disconnected``, ``realtime_nb.reconnected``, ``realtime_nb.closed`` (after
        :meth:`close`), and ``error`` for client-side
        refusals (the exception is under ``event["realtime_error"]``). Coroutine functions are
        scheduled as tasks. Exceptions in callbacks are logged and kept in
        ``callback_errors``; they never stop the session. Usable as a decorator:
        ``@session.on("response.done")``.
        """
        if callback is None:
            def deco(fn: Callback) -> Callback:
                self.on(event_type, fn)
                return fn
            return deco
        _warn_beta_name(event_type)
        self._callbacks.setdefault(event_type, []).append(callback)
        return callback

    def off(self, event_type: str, callback: Callback | None = None) -> None:
        """Remove ``callback`` (or every callback) for ``event_type``."""
        if callback is None:
            self._callbacks.pop(event_type, None)
            return
        cbs = self._callbacks.get(event_type, [])
        with contextlib.suppress(ValueError):
            cbs.remove(callback)

    def _dispatch(self, etype: str, event: dict[str, Any]) -> None:
        cbs = self._callbacks.get(etype)
        any_cbs = self._callbacks.get("*")
        if not cbs and not any_cbs:
            return
        for cb in [*(cbs or ()), *(any_cbs or ())]:
            try:
                result = cb(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._callback_done)
            except Exception as exc:
                self._callback_failed(exc)

    def _callback_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._callback_failed(task.exception())  # type: ignore[arg-type]

    def _callback_failed(self, exc: BaseException) -> None:
        self.callback_errors.append(exc)
        logger.error("realtime_nb callback failed: %r", exc, exc_info=exc)

    def _fail_waiters(self, err: RealtimeError) -> None:
        for w in list(self._waiters):
            if not w.future.done():
                w.future.set_exception(err)

    async def wait_for(
        self,
        match: EventMatch,
        timeout: float | None = 30.0,
        *,
        error_for: str | Iterable[str] | None = None,
        since: int | None = None,
    ) -> dict[str, Any]:
        """Wait for the next server event matching ``match`` and return it.

        ``match`` is an event type, several types, or a predicate on the (audio-free) event.
        Only events arriving after the call count, unless ``since`` is given: an index into
        :attr:`events` (take ``mark = len(session.events)`` before the action) from which
        server events already logged are searched first, so a reply that arrived before the
        wait began is not missed. Raises RealtimeError when the connection is
        lost or a fatal error arrives, when an ``error`` answers one of the client event ids in
        ``error_for``, and :class:`~.errors.RealtimeTimeout` after ``timeout`` seconds (None:
        wait forever). Cancel-safe.
        """
        if isinstance(match, str):
            _warn_beta_name(match)
        if since is not None:
            found = self._logged_match(_matcher(match), since)
            if found is not None:
                return found
        if self._state == "closed":
            raise RealtimeError("session_closed", "The session is closed: nothing more will "
                                "arrive.", source="client", fatal=False)
        ids = {error_for} if isinstance(error_for, str) else set(error_for or ())
        fut = asyncio.get_running_loop().create_future()
        waiter = _Waiter(_matcher(match), fut, ids, False)
        self._waiters.append(waiter)
        try:
            return await self._await(fut, timeout, match)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _logged_match(self, match: Callable[[dict[str, Any]], bool], since: int
                      ) -> dict[str, Any] | None:
        """The first server event logged at index ``since`` or later that ``match`` accepts."""
        entries = self.events.entries
        for entry in entries[max(0, since):]:
            if entry.direction != "server":
                continue
            try:
                ok = match(entry.event)
            except Exception:
                ok = False
            if ok:
                return self.events.full(entry)
        return None

    async def _await(self, fut: asyncio.Future[Any], timeout: float | None, what: Any) -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            name = what if isinstance(what, str) else getattr(what, "__name__", "event")
            raise RealtimeTimeout(
                f"No {name} within {timeout} s.",
                hint=("Check session.last_error and session.events for what happened instead."),
            ) from None
