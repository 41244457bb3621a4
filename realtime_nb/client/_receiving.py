"""The Session's receiving room: the frame fast path (frame in → log, mirror, matched waiters).

:meth:`_Receiving._recv_loop` reads the socket; :meth:`_Receiving._on_frame` handles each frame:
the base64 audio of ``response.output_audio.delta`` is cut out of the JSON without parsing it
(decoded only when someone uses it), every event is logged (audio aside in the log's store),
applied to the mirror, and delivered to matching waiters and callbacks (:mod:`._waiting`).
Server ``error`` events become :class:`~realtime_nb.client.errors.RealtimeError` here (with the
client event that caused them, when its ``event_id`` is known, for the hint).

What the caller must know: nothing here may raise into the receive loop (a bad event is logged
as a ``ProtocolWarning`` and skipped); ``session_expired`` with a renewal policy starts the
renewal instead of failing anyone.

One room of :class:`~realtime_nb.client.session.Session` (a mixin; the state it uses is set by
``Session.__init__``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import warnings
from collections import deque
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ._sending import _merge_patch
from .errors import ProtocolWarning, RealtimeError
from .eventlog import B64Audio, StoredAudio, audio_ref
from .hints import hint_for

if TYPE_CHECKING:
    from ._parts import SessionParts  # the Session's members this room uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin

logger = logging.getLogger("realtime_nb.client")


_AUDIO_DELTA = "response.output_audio.delta"


_AUDIO_DELTA_TAG = b'"response.output_audio.delta"'


_DELTA_KEY = re.compile(rb'"delta"\s*:\s*"')


class _Receiving(SessionParts):
    """The receive loop and what each server frame does (log, mirror, waiters, callbacks)."""

    async def _recv_loop(self, ws: ClientConnection, gen: int) -> None:
        recv = ws.recv
        on_frame = self._on_frame
        try:
            while True:
                data = await recv(decode=False)
                try:
                    on_frame(data)
                except Exception as exc:  # a bug or a truly malformed event: never stop
                    self._protocol_warning(f"could not handle a server event: {exc!r}")
        except ConnectionClosed as exc:
            self._connection_lost(gen, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._connection_lost(gen, exc)

    def _protocol_warning(self, message: str) -> None:
        self.warnings.append(("protocol", message))
        logger.warning("realtime_nb: %s", message)
        warnings.warn(message, ProtocolWarning, stacklevel=2)

    def _on_frame(self, data: bytes) -> None:
        t = time.monotonic()
        self._last_server_t = t
        audio: B64Audio | None = None
        ev: Any = None
        if _AUDIO_DELTA_TAG in data[:160]:
            # Fast path: cut the base64 audio out instead of parsing 10+ kB of JSON string;
            # it is decoded only when someone uses it.
            m = _DELTA_KEY.search(data, 0, 400)
            if m is not None:
                start = m.end()
                end = data.find(b'"', start)
                if end > 0 and data.find(b"\\", start, end) < 0:
                    try:
                        ev = json.loads((data[:start] + data[end:]).decode())
                    except ValueError:
                        ev = None
                    if isinstance(ev, dict) and ev.get("type") == _AUDIO_DELTA:
                        audio = B64Audio(data[start:end])
                    else:
                        ev = None
        if ev is None:
            try:
                ev = json.loads(data.decode() if isinstance(data, bytes) else data)
            except ValueError:
                self._malformed(data, t)
                return
            if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
                self._malformed(data, t)
                return
        etype: str = ev["type"]
        if audio is not None:
            ref = self.events.audio.put(audio)
            ev["delta"] = audio_ref(audio.nbytes, ref)
            self.events.add("server", ev, (ref,), t=t)
            try:
                self.mirror.audio_delta(ev, StoredAudio(self.events.audio, ref))
            except Exception as exc:
                self._protocol_warning(f"bad {etype}: {exc!r}")
            cbs = self._callbacks
            if self._waiters or (cbs and (etype in cbs or "*" in cbs)):
                full = dict(ev)
                full["delta"] = audio.data.decode("ascii", "replace")
                self._deliver(etype, ev, full)
            return
        view, refs = self.events.elide(ev)
        if refs and etype == _AUDIO_DELTA:
            # The slow path met an audio delta (escaped JSON, odd layout): same handling.
            pcm = self.events.audio.get(refs[0])
            self.events.add("server", view, refs, t=t)
            self.mirror.audio_delta(view, pcm)
            self._deliver(etype, view, ev)
            return
        self.events.add("server", view, refs, t=t)
        try:
            self.mirror.server_event(view)
        except Exception as exc:
            self._protocol_warning(f"bad {etype} event ({exc!r}); the mirror skipped it")
        if etype == "error":
            self._on_error_event(view)
            return
        if etype == "session.updated" and self._pending_updates:
            _eid, patch = self._pending_updates.popleft()
            self._user_patch = _merge_patch(self._user_patch, patch)
        self._deliver(etype, view, ev)

    def _deliver(self, etype: str, view: dict[str, Any], full: dict[str, Any]) -> None:
        if self._waiters:
            for w in list(self._waiters):
                if not w.future.done() and w.accepts(view):
                    w.future.set_result(full)
        if self._callbacks:
            self._dispatch(etype, full)

    def _malformed(self, data: bytes, t: float) -> None:
        text = data[:200].decode("utf-8", "replace")
        view = {"type": "realtime_nb.malformed", "data": text, "nbytes": len(data)}
        self.events.add("server", view, t=t, note="malformed")
        self._protocol_warning(f"the server sent a frame that is not a JSON event: {text[:80]!r}")
        self._dispatch("realtime_nb.malformed", view)

    def _on_error_event(self, ev: dict[str, Any]) -> None:
        error = ev.get("error")
        body: dict[str, Any] = error if isinstance(error, dict) else {}
        code = body.get("code")
        eid = body.get("event_id")
        sent = self._sent_event(eid) if eid else None
        err = RealtimeError(
            code, str(body.get("message", "")), param=body.get("param"), source="server",
            hint=hint_for(code, body.get("param"), body.get("message"), sent), event_id=eid,
            type=str(body.get("type", "invalid_request_error")), event=ev,
        )
        if code == "input_audio_buffer_commit_empty":
            err.hint = self._commit_hint() or err.hint
        if eid and self._pending_updates:
            self._pending_updates = deque(p for p in self._pending_updates if p[0] != eid)
        if code == "session_expired" and self.renew_policy is not None and self._state in (
                "connected", "renewing"):
            # Expected with renewal: no failure for anyone, the old socket's end is no news,
            # and the renewal (now, or the one already under way) carries on.
            task = self._renew_task
            if task is not None and not task.done() and self._renew_switched:
                self._renew_again = "session_expired"  # the new session, being set up
                return
            self._old_dead = True
            self._gen += 1
            if self._renew_now is not None:
                self._renew_now.set()
            if self._state == "connected":
                self._state = "renewing"
            self._start_renewal("session_expired")
            return
        if err.fatal:
            self._fatal = err
        self._record_error(err, dispatch=False)
        for w in list(self._waiters):
            if w.future.done():
                continue
            if w.any_error or err.fatal or (eid is not None and eid in w.error_for):
                w.future.set_exception(err)
                continue
            if w.accepts(ev):
                w.future.set_result(ev)
        self._dispatch("error", {**ev, "realtime_error": err})

    def _sent_event(self, event_id: str) -> dict[str, Any] | None:
        for entry in reversed(self.events.entries[-2000:]):
            if entry.direction == "client" and entry.event.get("event_id") == event_id:
                return entry.event
        return None

    def _record_error(self, err: RealtimeError, dispatch: bool) -> None:
        self.last_error = err
        if dispatch:
            self._dispatch("error", {"type": "error", "event_id": None,
                                     "error": {k: v for k, v in err.to_dict().items()
                                               if k in ("type", "code", "message", "param",
                                                        "event_id")},
                                     "realtime_error": err})
