"""The Session's renewal glue: outliving the service's session limit (``renew=``).

What to carry and how much is decided in :mod:`realtime_nb.client.renew` (``RenewPolicy``,
``plan_carry``, no I/O); this room runs it on the Session: the timer armed from ``expires_at``
(:meth:`_Renewing._schedule_renewal`), the public :meth:`_Renewing.renew`, and the switch itself
(:meth:`_Renewing._renew`): wait for quiet, dial a new socket (:mod:`._connection`), leave the
old one, and attach the new one with the ``realtime_nb.renewed`` seam marker and the carried
items.

What the caller must know: sends made during a renewal are queued and go to the new session;
when no new session can be opened the old one goes on while it lives
(``realtime_nb.renew_failed`` in the log), else the loss is reported as a disconnect.

One room of :class:`~realtime_nb.client.session.Session` (a mixin; the state it uses is set by
``Session.__init__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from .errors import RealtimeError
from .renew import RenewPolicy, plan_carry

if TYPE_CHECKING:
    from ._parts import SessionParts  # the Session's members this room uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin


async def _close_quietly(ws: ClientConnection) -> None:
    try:
        async with asyncio.timeout(2.0):
            await ws.close()
    except BaseException:
        ws.transport.abort()


class _Renewing(SessionParts):
    """Renewing the server session before it expires (and on ``session_expired``)."""

    @property
    def seams(self) -> list[dict[str, Any]]:
        """The renewal seams so far: the ``realtime_nb.renewed`` markers of the log (old and new
        session ids, reason, carried and dropped items), oldest first."""
        return [dict(e.event) for e in self.events.of_type("realtime_nb.renewed")]

    def _schedule_renewal(self) -> None:
        """Arm the timer that renews ``margin_s`` before this server session's ``expires_at``."""
        if self._renew_timer is not None:
            self._renew_timer.cancel()
            self._renew_timer = None
        policy = self.renew_policy
        cfg = self.mirror.config or {}
        expires = cfg.get("expires_at")
        if policy is None or not isinstance(expires, int | float) or expires <= 0:
            return
        delay = max(0.0, float(expires) - policy.margin_s - time.time())
        sid = self.mirror.session_id
        loop = asyncio.get_running_loop()
        self._renew_timer = loop.call_later(delay, self._renew_due, sid)

    def _renew_due(self, session_id: str | None) -> None:
        self._renew_timer = None
        if self._state == "connected" and self.mirror.session_id == session_id:
            self._start_renewal("expires_at")

    def _start_renewal(self, reason: str) -> asyncio.Task[None]:
        task = self._renew_task
        if task is None or task.done():
            self._renew_now = asyncio.Event()
            task = self._renew_task = asyncio.get_running_loop().create_task(
                self._renew(reason), name="realtime_nb-session-renew")
        return task

    def _cancel_renewal(self) -> None:
        if self._renew_timer is not None:
            self._renew_timer.cancel()
            self._renew_timer = None
        task = self._renew_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    async def renew(self) -> dict[str, Any]:
        """Renew the server session now (what ``renew=`` does before expiry); returns the seam.

        Waits (up to ``wait_s`` of the policy) for the active response and speech to end, opens
        a new server session, closes the old one, restores your config and carries the
        conversation over (see :mod:`realtime_nb.client.renew` for what is carried and the
        limit). Sends made meanwhile are queued and go to the new session. Works without
        ``renew=`` too (with the default :class:`RenewPolicy`). Raises RealtimeError when no
        new session could be opened (the old one then goes on if it still can).
        """
        if self._state not in ("connected", "renewing"):
            raise RealtimeError("not_connected", f"The session is {self._state}: there is "
                                "nothing to renew.", source="client", fatal=False,
                                hint="connect() (or reconnect()) instead.")
        before = len(self.seams)
        await asyncio.shield(self._start_renewal("manual"))
        seams = self.seams
        if len(seams) == before:
            raise self.last_error or RealtimeError("renew_failed", "The session was not "
                                                   "renewed.", source="client", fatal=False)
        return seams[-1]

    async def _quiesce(self, limit: float) -> None:
        """Wait until no response is active and the VAD hears no speech (at most ``limit`` s,
        less if the old session dies meanwhile)."""
        deadline = time.monotonic() + limit
        now_ev = self._renew_now
        while time.monotonic() < deadline and not (now_ev is not None and now_ev.is_set()):
            if self.mirror.active_response_id is None and not self.mirror.speaking:
                return
            step = min(0.05, max(0.0, deadline - time.monotonic()))
            if now_ev is None:
                await asyncio.sleep(step)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(step):
                    await now_ev.wait()

    async def _renew(self, reason: str) -> None:
        policy = self.renew_policy or RenewPolicy()
        timeout = policy.connect_timeout or self.connect_timeout
        old_ws = self._ws
        old_id = self.mirror.session_id
        t0 = time.monotonic()
        if reason != "session_expired" and not self._old_dead:
            await self._quiesce(policy.wait_s)
        waited = time.monotonic() - t0
        if self._state == "connected":
            self._state = "renewing"
        ws: ClientConnection | None = None
        err: RealtimeError | None = None
        for attempt in range(max(1, policy.attempts)):
            if attempt:
                await asyncio.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
            if self._state == "closed":
                return
            try:
                ws = await self._dial(timeout)
                break
            except RealtimeError as exc:
                err = exc
                if exc.fatal:
                    break
        if ws is None:
            self._renew_failed(err, old_ws)
            return
        # The switch: from here the old socket's frames and end are no news.
        self._renew_switched = True
        self._gen += 1
        old_task, self._recv_task = self._recv_task, None
        if old_task is not None and old_task is not asyncio.current_task():
            old_task.cancel()
        if old_ws is not None:
            closing = asyncio.get_running_loop().create_task(_close_quietly(old_ws))
            self._tasks.add(closing)
            closing.add_done_callback(self._tasks.discard)
        realtime = self._kind() == "realtime"
        plan = plan_carry(self.mirror.items.list(), policy) if realtime else None
        renewal = {"old_session_id": old_id, "reason": reason,
                   "carried": plan.carried if plan else [],
                   "dropped": [list(d) for d in plan.dropped] if plan else [],
                   "waited_s": round(waited, 3),
                   "cut_responses": [rid for rid, rs in self.mirror.responses.items()
                                     if rs.status == "in_progress"]}
        try:
            await self._attach(ws, timeout, restore=True, renewal=renewal,
                               carry=plan.items if plan else None)
        except RealtimeError as exc:
            self._renew_failed(exc, None)
            return
        finally:
            self._old_dead = False
            self._renew_switched = False
        self._reconnects += 1
        again, self._renew_again = self._renew_again, None
        if again is not None and self._state == "connected":
            # The new session expired while it was being set up (very short limits).
            self._renew_task = None
            self._start_renewal(again)

    def _renew_failed(self, err: RealtimeError | None, old_ws: ClientConnection | None) -> None:
        """No new session: go on with the old one while it lives, else report the loss."""
        err = err or RealtimeError("renew_failed", "No new session could be opened.",
                                   source="client", fatal=False)
        self.events.marker("realtime_nb.renew_failed", error=err.to_dict())
        self.last_error = err
        if (old_ws is not None and not self._old_dead and self._ws is old_ws
                and old_ws.protocol.state is State.OPEN):
            self._state = "connected"
            task = asyncio.get_running_loop().create_task(self._flush_queue())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._old_dead = False
        self._connection_lost(self._gen, err, force=True)
