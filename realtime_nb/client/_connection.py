"""The Session's connection room: dialing, attaching, reconnecting, closing, the flight recorder.

* :meth:`_Connection._dial` opens the WebSocket (the local server is started first for
  ``backend="local"``; a WebRTC sideband or a transcription session gets its own URL; HTTP(S)
  proxies from the environment are honoured except for loopback). It reads no event.
* :meth:`_Connection._attach` makes a dialed socket the live one: starts the receive loop
  (:mod:`._receiving`), awaits ``session.created``, re-sends your accepted config on a restore,
  re-creates carried items after a renewal, arms the renewal timer and flushes the send queue.
* :meth:`_Connection._connection_lost` turns an unexpected end into ``realtime_nb.disconnected``
  (failing the waiters) and, with a :class:`~realtime_nb.client.session.ReconnectPolicy`,
  schedules the automatic reconnect.

What the caller must know: ``_gen`` counts sockets; a socket's end is reported only while its
generation is current, so a socket replaced on purpose (reconnect, renewal, close) never looks
like a drop. The API key never appears in an error message (:func:`_clean`).

One room of :class:`~realtime_nb.client.session.Session` (a mixin; the state it uses is set by
``Session.__init__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from ._sending import _copy_json
from ._waiting import _matcher, _Waiter
from .backend import WS_LOGGER, Backend
from .errors import RealtimeError, RealtimeTimeout
from .hints import hint_for

if TYPE_CHECKING:
    from ._parts import SessionParts  # the Session's members this room uses (see ._parts)
    from .session import ReconnectPolicy, Session
else:
    SessionParts = object  # at run time a plain mixin

logger = logging.getLogger("realtime_nb.client")


_WS_HAS_PROXY = "proxy" in inspect.signature(ws_connect.__init__).parameters


def _session_id_of(frame: bytes | str) -> str | None:
    """The session id of a ``session.created`` frame (None for any other frame)."""
    try:
        ev = json.loads(frame)
    except ValueError:
        return None
    if not isinstance(ev, dict) or ev.get("type") != "session.created":
        return None
    session = ev.get("session")
    sid = session.get("id") if isinstance(session, dict) else None
    return sid if isinstance(sid, str) else None


def _clean(value: Any, backend: Backend) -> str:
    """str(value) with any credential of ``backend`` masked (belt and braces)."""
    text = str(value)
    for secret in [backend.api_key, *backend.extra_headers.values()]:
        if secret is not None and secret.reveal() and secret.reveal() in text:
            text = text.replace(secret.reveal(), "***")
    return text


class _Connection(SessionParts):
    """Opening, replacing and closing the Session's socket; reporting its loss."""

    async def __aenter__(self) -> Session:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: float | None = None, *, call_id: str | None = None
                      ) -> Session:
        """Open the socket and wait for ``session.created``; then send what was queued.

        With ``transport="webrtc"`` the socket is the sideband of a live call: pass its
        ``call_id`` (the ``rtc_…`` id the call's ``Location`` header gave; the panel and
        :class:`~realtime_nb.client.webrtc.KernelCall` do it for you). Raises RealtimeError:
        ``invalid_api_key`` (HTTP 401), ``connect_failed``, ``timeout``, ``call_not_found``,
        ``webrtc_call_required`` (a WebRTC session without a call), or the server's own error
        (``invalid_model``, ``beta_api_shape_disabled``, ...).
        """
        if call_id is not None:
            if self._transport != "webrtc":
                raise ValueError("call_id= is for transport='webrtc' sessions")
            if self._state == "connected" and call_id != self.call_id:
                raise RealtimeError("transport_in_use", f"This session is attached to call "
                                    f"{self.call_id}: close it first.", source="client",
                                    fatal=False)
            self.call_id = call_id
        if self._state == "connected":
            return cast("Session", self)  # a room of Session: self is the Session
        if self._transport == "webrtc" and self.call_id is None:
            err = RealtimeError(
                "webrtc_call_required", "A WebRTC session attaches to a call, and there is no "
                "call yet.", source="client", fatal=False,
                hint="Display the session and press Connect (its panel places the call from "
                "the browser and attaches this session), call panel_for(session).connect(), "
                "or dial from the kernel: await KernelCall.dial(session) "
                "(realtime_nb.client.webrtc).")
            self._record_error(err, dispatch=True)
            raise err
        previous = self._state
        self._state = "connecting"
        try:
            await self._open(timeout or self.connect_timeout, restore=bool(self._user_patch)
                             and previous != "new")
        except BaseException:
            if self._state == "connecting":
                self._state = "disconnected" if previous != "new" else "new"
            raise
        return cast("Session", self)

    async def reconnect(self, timeout: float | None = None) -> Session:
        """Open a new server session and restore it: your config, then the queued events.

        The event log, the items and recordings so far are kept (the log gets
        ``realtime_nb.reconnecting`` / ``realtime_nb.reconnected`` markers). The server-side
        conversation of the new session starts empty.
        """
        old = self._ws
        self._gen += 1  # the old socket's end is no news
        if old is not None and old.protocol.state is not State.CLOSED:
            with contextlib.suppress(Exception):
                await old.close()
        self._state = "reconnecting"
        self.events.marker("realtime_nb.reconnecting")
        try:
            await self._open(timeout or self.connect_timeout, restore=True)
        except BaseException:
            if self._state == "reconnecting":
                self._state = "disconnected"
            raise
        self._reconnects += 1
        return cast("Session", self)

    async def close(self) -> None:
        """Close the socket and stop background work (pending waits raise ``session_closed``).

        A WebRTC session also hangs its call up (``POST /v1/realtime/calls/{id}/hangup``;
        a call that already ended is no error)."""
        call_id = self.call_id if self._transport == "webrtc" else None
        was_connected = self._state == "connected"
        self._state = "closed"
        self._gen += 1
        if self._reconnect_task is not None and self._reconnect_task is not \
                asyncio.current_task():
            self._reconnect_task.cancel()
        self._cancel_renewal()
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._recv_task is not None:
            self._recv_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recv_task
            self._recv_task = None
        self._fail_waiters(RealtimeError("session_closed", "The session was closed.",
                                         source="client", fatal=False))
        if call_id is not None and was_connected:
            from .webrtc import hangup

            with contextlib.suppress(RealtimeError):
                await hangup(self._backend, call_id)
        self.events.marker("realtime_nb.closed")
        self.mirror.connection_lost("closed")
        self._dispatch("realtime_nb.closed", {"type": "realtime_nb.closed"})
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)

    async def create_client_secret(self, session: Mapping[str, Any] | None = None, *,
                                   expires_after_s: int = 600) -> Any:
        """Mint an ephemeral ``ek_`` client secret on this Session's server, for a browser.

        ``session`` is the config bound to it (default: a realtime session with this Session's
        model); ``expires_after_s`` is its lifetime (10..7200 s). Returns a
        :class:`~realtime_nb.client.client_secrets.ClientSecret` whose ``value`` is masked in
        reprs (``.value.reveal()`` is the ``ek_`` string). The long-lived key stays here; only
        the secret may go to a page. Starts the local server first if this is a local Session.
        Raises :class:`RealtimeError` with the server's code and param when it refuses.
        """
        from .client_secrets import create_client_secret

        if self._backend.name == "local" and not self._backend.url:
            await asyncio.to_thread(self._backend.start_local)
        return await create_client_secret(self._backend, session,
                                          expires_after_s=expires_after_s)

    @property
    def recording_folder(self) -> Path | None:
        """The folder the flight recorder writes (None before the first connect, or when
        recording is off)."""
        return self.recorder.folder if self.recorder is not None else None

    def _start_recorder(self) -> None:
        from .recorder import FlightRecorder, new_folder

        folder = new_folder(self._record_root)
        url = self._backend.url.split("?", 1)[0] if self._backend.url else ""
        if self.audio_memory_mb is not None:
            self.events.audio.ram_limit = int(self.audio_memory_mb * 2**20)
        self.events.event_limit = self.events_in_memory
        self.recorder = FlightRecorder(
            self.events, folder,
            formats=lambda: (self._input_format(), self.mirror.output_format),
            meta={"backend": self._backend.name, "url": url, "model": self.model,
                  "transport": self._transport, "intent": self.intent})

    async def _open(self, timeout: float, restore: bool) -> None:
        if self._record and (self.recorder is None or self.recorder.closed):
            try:
                self._start_recorder()
            except OSError as exc:  # an unwritable folder must not stop the session
                self._record = False
                self._protocol_warning(f"The flight recorder is off: {exc}")
        ws = await self._dial(timeout)
        await self._attach(ws, timeout, restore)

    async def _dial(self, timeout: float) -> ClientConnection:
        """Open the WebSocket (no event is read yet). Raises RealtimeError."""
        backend = self._backend
        if backend.name == "local" and not backend.url:
            await asyncio.to_thread(backend.start_local)
        url = backend.url
        if self._transport == "webrtc" and self.call_id is not None:
            from .webrtc import sideband_url

            url = sideband_url(url, self.call_id)
        elif self.intent == "transcription":
            from .backend import _with_query

            url = re.sub(r"([?&])model=[^&]*&?", r"\1", url).rstrip("?&")
            url = _with_query(url, intent="transcription")
        host = urlsplit(url).hostname or ""
        from realtime_nb.net import is_loopback

        loopback = is_loopback(host)
        logger.debug("connecting to %s", backend.display_url)
        self._fatal = None
        options: dict[str, Any] = {}
        if _WS_HAS_PROXY:  # websockets >= 15 honours HTTP(S)_PROXY; never for loopback
            options["proxy"] = None if loopback else True
        try:
            ws = await ws_connect(
                url,
                additional_headers=backend.headers(),
                user_agent_header="realtime_nb",
                compression=None,
                max_size=None,
                max_queue=256,
                open_timeout=timeout,
                close_timeout=2,
                ping_interval=20,
                ping_timeout=20,
                logger=WS_LOGGER,
                **options,
            )
        except InvalidStatus as exc:
            raise self._http_error(exc) from None
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            err = RealtimeError(
                "connect_failed",
                f"Could not open a WebSocket to {backend.display_url}: "
                f"{type(exc).__name__}: {_clean(exc, backend)}",
                source="connection", fatal=False,
                hint=("Is the server running and the URL right? backend='local' starts the "
                      "offline server for you."))
            self._record_error(err, dispatch=True)
            raise err from None
        return ws

    async def _attach(self, ws: ClientConnection, timeout: float, restore: bool,
                      renewal: dict[str, Any] | None = None,
                      carry: list[dict[str, Any]] | None = None) -> None:
        """Make ``ws`` the live socket: receive, await ``session.created``, restore, flush.

        ``renewal`` (the seam marker's fields) makes this the far side of a renewal seam: the
        marker is logged just before the new ``session.created``, and the ``carry`` items are
        re-created after the config."""
        backend = self._backend
        self._gen += 1
        gen = self._gen
        self._ws = ws
        loop = asyncio.get_running_loop()
        first: bytes | None = None
        if renewal is not None:
            first = await self._first_frame(ws, timeout)
            renewal["new_session_id"] = _session_id_of(first)
            if renewal["new_session_id"] is None:  # an error instead: fails below, no seam
                renewal = None
                carry = None
            else:
                self.events.marker("realtime_nb.renewed", **renewal)
                self.mirror.renewed(renewal.get("carried") or ())
        created: asyncio.Future[Any] = loop.create_future()
        waiter = _Waiter(_matcher("session.created"), created, set(), True)
        self._waiters.append(waiter)
        self._recv_task = loop.create_task(self._recv_loop(ws, gen),
                                           name="realtime_nb-session-recv")
        if first is not None:
            self._on_frame(first)
        try:
            async with asyncio.timeout(timeout):
                await created
        except TimeoutError:
            await self._discard(ws)
            raise RealtimeTimeout(
                f"No session.created within {timeout:g} s of connecting to "
                f"{backend.display_url}.", hint="The server is slow or not a Realtime server."
            ) from None
        except BaseException:
            await self._discard(ws)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        self._state = "connected"
        where = ({"transport": "webrtc", "call_id": self.call_id}
                 if self._transport == "webrtc" else {})
        if renewal is None:
            self.events.marker("realtime_nb.connected", url=backend.display_url,
                               session_id=self.mirror.session_id, restored=restore, **where)
            self._dispatch("realtime_nb.connected", {"type": "realtime_nb.connected",
                                                     "session_id": self.mirror.session_id})
        self._pending_updates.clear()
        if restore and self._user_patch:
            patch = _copy_json(self._user_patch)
            patch.setdefault("type", self._kind())
            ev = {"type": "session.update", "event_id": self._next_id(), "session": patch}
            self._record_client(ev, json.dumps(ev), note="restored")
            with contextlib.suppress(ConnectionClosed):  # a new drop is reported by recv
                await ws.send(json.dumps(ev))
        for item in carry or ():
            ev = {"type": "conversation.item.create", "event_id": self._next_id(), "item": item}
            text = json.dumps(ev)
            self._record_client(ev, text, note="carried")
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)
        self._schedule_renewal()
        if renewal is not None:
            # Waiters see it too: wait_for("realtime_nb.renewed"), and say() ends on it when
            # its response was cut at the seam (``cut_responses``).
            seam = {"type": "realtime_nb.renewed", **renewal}
            self._deliver("realtime_nb.renewed", seam, seam)
        elif restore:
            self.events.marker("realtime_nb.reconnected", session_id=self.mirror.session_id,
                               restored_config=bool(self._user_patch),
                               queued=len(self._queue))
            self._dispatch("realtime_nb.reconnected", {"type": "realtime_nb.reconnected",
                                                       "session_id": self.mirror.session_id})
        await self._flush_queue()

    async def _first_frame(self, ws: ClientConnection, timeout: float) -> bytes:
        """The new socket's first frame (``session.created``), read before anything else."""
        try:
            async with asyncio.timeout(timeout):
                data = await ws.recv(decode=False)
        except TimeoutError:
            await self._discard(ws)
            raise RealtimeTimeout(f"No session.created within {timeout:g} s of connecting to "
                                  f"{self._backend.display_url}.") from None
        except ConnectionClosed as exc:
            await self._discard(ws)
            raise RealtimeError("connect_failed", f"The new connection closed at once ({exc}).",
                                source="connection", fatal=False) from None
        return data if isinstance(data, bytes) else data.encode()

    async def _discard(self, ws: ClientConnection) -> None:
        """Drop a socket whose session never started (its end is not reported)."""
        self._gen += 1
        self._ws = None
        try:
            async with asyncio.timeout(0.5):
                await ws.close()
        except BaseException:
            ws.transport.abort()
        task, self._recv_task = self._recv_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _http_error(self, exc: InvalidStatus) -> RealtimeError:
        status = exc.response.status_code
        code, message = None, None
        with contextlib.suppress(Exception):
            body = json.loads(exc.response.body or b"{}")
            code = body["error"].get("code")
            message = body["error"].get("message")
        if code is None:
            code = {401: "invalid_api_key", 403: "authentication_error",
                    404: "not_found", 429: "rate_limited"}.get(status, "http_error")
        message = _clean(message or f"HTTP {status} at the WebSocket upgrade.", self._backend)
        err = RealtimeError(code, f"{message} (HTTP {status} at the WebSocket upgrade)",
                            source="server", fatal=status in (401, 403) or None,
                            hint=hint_for(code) or ("The server refused the connection."))
        self._record_error(err, dispatch=True)
        return err

    def _kind(self) -> str:
        cfg = self.mirror.config
        if isinstance(cfg, dict) and cfg.get("type") in ("realtime", "transcription"):
            return cfg["type"]
        return "transcription" if self.intent == "transcription" else "realtime"

    def _connection_lost(self, gen: int, exc: BaseException, force: bool = False) -> None:
        if gen != self._gen or self._state == "closed":
            return
        task = self._renew_task
        if not force and task is not None and not task.done():
            # The old session went away while a renewal is under way: it goes on.
            self._old_dead = True
            self._gen += 1
            if self._renew_now is not None:
                self._renew_now.set()
            return
        if self._renew_timer is not None:
            self._renew_timer.cancel()
            self._renew_timer = None
        code = reason = None
        if isinstance(exc, ConnectionClosed):
            rcvd = exc.rcvd
            code, reason = (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)
        err = self._fatal or (exc if isinstance(exc, RealtimeError) else None) or RealtimeError(
            "connection_closed",
            f"The connection closed unexpectedly (close code {code}"
            f"{': ' + reason if reason else ''}).",
            source="connection", fatal=False, hint=hint_for("connection_closed"),
        )
        self._state = "disconnected"
        self._ws = None
        self.last_error = err
        self.events.marker("realtime_nb.disconnected", code=code, reason=reason,
                           error=err.to_dict())
        self.mirror.connection_lost("disconnected")
        self._fail_waiters(err)
        self._dispatch("realtime_nb.disconnected", {"type": "realtime_nb.disconnected",
                                                    "code": code, "reason": reason,
                                                    "realtime_error": err})
        policy = self.policy
        if policy is not None and (not err.fatal or (err.code == "session_expired"
                                                     and policy.on_expiry)):
            self._reconnect_task = asyncio.get_running_loop().create_task(
                self._auto_reconnect(policy), name="realtime_nb-session-reconnect")

    async def _auto_reconnect(self, policy: ReconnectPolicy) -> None:
        for attempt in range(policy.max_attempts):
            await asyncio.sleep(policy.delay(attempt))
            if self._state in ("closed", "connected"):
                return
            try:
                await self.reconnect()
                return
            except RealtimeError as err:
                logger.info("realtime_nb: reconnect attempt %d failed: %s", attempt + 1,
                            err.code)
                if err.fatal and err.code != "session_expired":
                    break
        self.events.marker("realtime_nb.reconnect_failed", attempts=policy.max_attempts)
