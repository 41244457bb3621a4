"""The Session's sending room: event ids, validation, the send queue and what a sent event does.

Every client event leaves through here: :meth:`_Sending._send_event` (validate, send, and with
``wait`` await the reply or the error answering it), :meth:`_Sending._transmit` (send now, or
queue while the socket is down), and :meth:`_Sending._append_raw` (the audio fast path: the
append's JSON is written by hand around the base64). :meth:`_Sending._record_client` is the one
place a sent event reaches the event log and the mirror, whether it went out at once or later
from the queue.

What the caller must know: while the Session is not connected, events wait in a queue bounded by
``send_queue_bytes`` (``send_queue_full`` beyond it) and go out in order after the next
(re)connect; a locally refused event is logged with its error and raised, never sent.

One room of :class:`~realtime_nb.client.session.Session` (a mixin; the state it uses is set by
``Session.__init__``). The module-level helpers (:func:`_wire`, :func:`_copy_json`,
:func:`_merge_patch`) are the JSON plumbing of outgoing events and of the accepted-config
bookkeeping (``session.user_config``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from realtime_nb.protocol import ProtocolError, bytes_per_ms, to_wire, validate_client_event
from realtime_nb.protocol.images import check_item_images

from ._waiting import _matcher, _Waiter
from .errors import RealtimeError
from .eventlog import StoredAudio, audio_ref
from .hints import hint_for

if TYPE_CHECKING:
    from ._parts import SessionParts  # the Session's members this room uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin


_APPEND_HEAD = '{"type":"input_audio_buffer.append","event_id":"'


# Which server event answers which client event (for wait=True).
_REPLIES: dict[str, str] = {
    "session.update": "session.updated",
    "input_audio_buffer.commit": "input_audio_buffer.committed",
    "input_audio_buffer.clear": "input_audio_buffer.cleared",
    "conversation.item.create": "conversation.item.added",
    "conversation.item.retrieve": "conversation.item.retrieved",
    "conversation.item.truncate": "conversation.item.truncated",
    "conversation.item.delete": "conversation.item.deleted",
    "response.create": "response.created",
    "response.cancel": "response.done",
    "output_audio_buffer.clear": "output_audio_buffer.cleared",
}


def _merge_patch(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge a session.update patch into the accumulated user patch."""
    out = dict(base)
    for k, v in patch.items():
        cur = out.get(k)
        if isinstance(v, Mapping) and isinstance(cur, dict) and (
            k not in ("turn_detection", "format") or cur.get("type") == v.get("type")
        ):
            out[k] = _merge_patch(cur, v)
        else:
            out[k] = _copy_json(v)
    return out


def _copy_json(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _copy_json(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_copy_json(x) for x in v]
    return v


def _wire(obj: Any) -> Any:
    """Dataclass wire objects to plain JSON data; other values unchanged."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_wire(obj)
    if isinstance(obj, Mapping):
        return {k: _wire(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_wire(v) for v in obj]
    return obj


def _check_images(ev: dict[str, Any]) -> None:
    """Refuse the images of an item or inline response input as the local server does."""
    etype = ev.get("type")
    if etype == "conversation.item.create":
        check_item_images(ev.get("item"), "item")
    elif etype == "response.create":
        body = ev.get("response")
        for i, it in enumerate((body or {}).get("input") or () if isinstance(body, dict) else ()):
            check_item_images(it, f"response.input[{i}]")


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RealtimeError("invalid_value", "Invalid 'audio': expected base64-encoded audio "
                            "bytes.", param="audio", source="client", fatal=False,
                            hint="append() takes raw bytes or their base64 text.") from exc


class _Sending(SessionParts):
    """Event ids, local validation, the bounded send queue, and logging what was sent."""

    def _next_id(self) -> str:
        self._n += 1
        return f"evt_{self._tag}_{self._n}"

    async def send(self, event: Mapping[str, Any] | Any, *, validate: bool = True
                   ) -> dict[str, Any]:
        """Send any client event (a dict, or a wire dataclass); returns the event as sent.

        With ``validate`` (default) the event gets an ``event_id`` if it has none and is checked
        as the service checks it — a bad event is refused locally (RealtimeError with the
        service's code/message/param and a ``hint``) and never sent — and the classic mistakes
        are caught (commit on an empty buffer, float32 bytes as PCM16). ``validate=False`` sends
        the event exactly as given.
        """
        ev = _wire(event)
        if not isinstance(ev, dict):
            err = RealtimeError("invalid_json", "The server could not parse the event as a JSON "
                                "object.", source="client", hint="Client events are JSON objects "
                                "(Python dicts) with a 'type'.")
            self._refuse({"type": "?", "value": repr(ev)[:200]}, err)
        ev = dict(ev)
        if validate:
            ev.setdefault("event_id", self._next_id())
            self._validate(ev)
            etype = ev.get("type")
            if etype == "input_audio_buffer.commit":
                await self._check_commit(ev, None)
            elif etype == "input_audio_buffer.append":
                self._check_append(ev, _b64decode(ev["audio"]))
        await self._transmit(ev)
        return ev

    def _validate(self, ev: dict[str, Any]) -> None:
        try:
            validate_client_event(ev)
            _check_images(ev)
        except ProtocolError as exc:
            err = RealtimeError(exc.code, exc.message, param=exc.param, source="client",
                                hint=hint_for(exc.code, exc.param, exc.message, ev),
                                event_id=ev.get("event_id") if isinstance(ev.get("event_id"), str)
                                else None, type=exc.type, fatal=False)
            self._refuse(ev, err)

    def _refuse(self, ev: dict[str, Any], err: RealtimeError) -> None:
        """Log a client event refused locally, report it, and raise ``err``."""
        self.events.add_event("client", ev, refused=err, note="refused")
        self._record_error(err, dispatch=True)
        raise err

    def _socket_now(self) -> ClientConnection | None:
        """The socket an event may be written to right now, or None when it must be queued:
        not connected, socket not open, or events already waiting (order is kept)."""
        ws = self._ws
        if (ws is None or self._state != "connected" or self._queue or self._flushing
                or ws.protocol.state is not State.OPEN):
            return None
        return ws

    async def _transmit(self, ev: dict[str, Any], text: str | None = None) -> None:
        if text is None:
            text = json.dumps(ev)
        ws = self._socket_now()
        if ws is None:
            self._enqueue(ev, text, None)
            return
        self._record_client(ev, text)
        await self._send_text(ws, text)

    async def _send_text(self, ws: ClientConnection, text: str) -> None:
        try:
            await ws.send(text)
        except ConnectionClosed as exc:
            raise RealtimeError(
                "connection_closed", "The connection closed while the event was being sent "
                "(it may not have reached the server).", source="connection", fatal=False,
                hint=hint_for("connection_closed")) from exc

    def _enqueue(self, ev: dict[str, Any], text: str, raw: bytes | None) -> None:
        if self._state == "closed":
            raise RealtimeError("session_closed", "The session is closed: connect() again to "
                                "send events.", source="client", fatal=False)
        if self._queue_bytes + len(text) > self.send_queue_bytes:
            err = RealtimeError(
                "send_queue_full",
                f"{len(self._queue)} events ({self._queue_bytes} bytes) are already waiting for "
                "a connection.", source="client", fatal=False,
                hint="Connect (await session.connect() / reconnect()) before sending more.")
            self.last_error = err
            raise err
        self._queue.append((ev, text, raw))
        self._queue_bytes += len(text)

    async def _flush_queue(self) -> None:
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._queue:
                ws = self._ws
                if ws is None or ws.protocol.state is not State.OPEN:
                    return
                ev, text, raw = self._queue.popleft()
                self._queue_bytes -= len(text)
                self._record_client(ev, text, note="queued", raw=raw)
                with contextlib.suppress(ConnectionClosed):  # reported by the receive loop
                    await ws.send(text)
        finally:
            self._flushing = False

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Events waiting for a connection (sent in order after the next connect/reconnect)."""
        return [ev for ev, _t, _r in self._queue]

    def _record_client(self, ev: dict[str, Any], text: str, note: str | None = None,
                       raw: bytes | None = None) -> None:
        etype = ev.get("type")
        if etype == "input_audio_buffer.append" and raw is not None:
            ref = self.events.audio.put(raw)
            view = {**ev, "audio": audio_ref(len(raw), ref)}
            self.events.add("client", view, (ref,), note=note)
            self.mirror.client_append(StoredAudio(self.events.audio, ref))
            self._last_append_t = time.monotonic()
            return
        view, refs = self.events.elide(ev)
        self.events.add("client", view, refs, note=note)
        if etype == "input_audio_buffer.append":
            self.mirror.client_append(self.events.audio.get(refs[0]) if refs else b"")
            self._last_append_t = time.monotonic()
        elif etype == "conversation.item.create":
            item = ev.get("item")
            if refs and isinstance(item, dict) and isinstance(item.get("id"), str):
                self.mirror.client_event({"type": etype, "item": {"id": item["id"], "content": [
                    {"audio": self.events.audio.get(r)} for r in refs]}})
            if isinstance(item, dict) and isinstance(item.get("id"), str) and any(
                    isinstance(p, dict) and p.get("type") == "input_image"
                    for p in item.get("content") or ()):
                # the mirror keeps the very data URL strings the log view holds (no copy)
                self.mirror.client_event({"type": etype, "item": {"id": item["id"], "content": [
                    p for p in item["content"] if isinstance(p, dict)
                    and p.get("type") == "input_image"]}})
        elif etype == "session.update":
            session = ev.get("session")
            self._pending_updates.append((ev.get("event_id"), session if isinstance(
                session, dict) else {}))
            self.mirror.client_event(ev)
        else:
            self.mirror.client_event(ev)

    async def _send_event(self, ev: dict[str, Any], wait: bool, timeout: float | None,
                          reply: Callable[[dict[str, Any]], bool] | None = None,
                          error_for: Iterable[str] = ()) -> dict[str, Any]:
        """Validate, send, and (with ``wait``) await the reply or the error answering it.

        While not connected the event is queued and returned at once (nothing to wait for yet).
        """
        ev.setdefault("event_id", self._next_id())
        self._validate(ev)
        if not wait or self._state not in ("connected", "renewing"):
            await self._transmit(ev)
            return ev
        eid = ev["event_id"]
        rtype = _REPLIES[ev["type"]]
        match = reply or _matcher(rtype)
        fut = asyncio.get_running_loop().create_future()
        waiter = _Waiter(match, fut, {eid, *error_for}, False)
        self._waiters.append(waiter)
        try:
            await self._transmit(ev)
            return await self._await(fut, timeout, rtype)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def _append_raw(self, raw: bytes, eid: str | None = None) -> dict[str, Any]:
        eid = eid or self._next_id()
        b64 = base64.b64encode(raw).decode("ascii")
        text = f'{_APPEND_HEAD}{eid}","audio":"{b64}"}}'
        ws = self._socket_now()
        if ws is None:
            ev = {"type": "input_audio_buffer.append", "event_id": eid, "audio": b64}
            self._enqueue(ev, text, raw)
            return {"type": "input_audio_buffer.append", "event_id": eid,
                    "audio": f"<audio {len(raw)} bytes queued>"}
        events = self.events
        ref = events.audio.put(raw)
        view = {"type": "input_audio_buffer.append", "event_id": eid,
                "audio": audio_ref(len(raw), ref)}
        events.add("client", view, (ref,))
        self.mirror.client_append(StoredAudio(events.audio, ref))
        self._last_append_t = time.monotonic()
        await self._send_text(ws, text)
        return view

    def _queued_input_ms(self) -> float:
        """Milliseconds of audio in queued appends after the queue's last commit or clear."""
        n = 0
        for ev, _text, raw in self._queue:
            kind = ev.get("type")
            if kind == "input_audio_buffer.append":
                if raw is not None:
                    n += len(raw)
                elif isinstance(b64 := ev.get("audio"), str):  # queued by send()
                    n += len(b64) * 3 // 4 - b64[-2:].count("=")
            elif kind in ("input_audio_buffer.commit", "input_audio_buffer.clear"):
                n = 0
        return n / bytes_per_ms(self.mirror.input_format) if n else 0.0
