"""Logged events → compact events: step 1 of the timeline, worked out once in the kernel.

:class:`Compactor` turns each :class:`~realtime_nb.client.eventlog.LoggedEvent` into a *compact
event*, the dict the browser receives (live widget and static HTML export alike) and the PNG
export draws from (after :func:`._lanes.build_lanes`). Everything that needs state or knowledge
of the protocol is worked out here: the lane and category of the event, the audio milliseconds
an append or delta carries, the input-buffer level after it (the events replayed through the
Session's own state mirror), for errors and refused client events their code, message and
hint, and the label of a local marker. Feed it the log's entries in order (it is stateful);
:func:`compact_log` does that for a whole log.

A compact event has these keys (short, because thousands travel to the browser):

``s`` seq, ``t`` seconds since the log started, ``d`` direction (``"c"`` client, ``"s"``
server, ``"l"`` local marker), ``y`` event type, ``k`` category (see
:data:`._lanes.CATEGORIES`), ``p`` the audio-free payload (long strings clipped), and when they
apply: ``ms`` audio milliseconds carried (appends, output audio deltas), ``b``
``[buffered_ms, appended_ms]`` after the event (what a commit sent now would find, and audio
appended since the last commit or clear), ``r`` response id, ``st`` the status a
``response.done`` reports, ``x`` error details (``code``,
``message``, ``hint``, ``param``, ``refused``), ``lb`` a local marker's label
(:func:`._lanes.marker_label`), ``note``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from realtime_nb.client.eventlog import AUDIO_FIELDS, EventLog, LoggedEvent
from realtime_nb.client.hints import explain_commit_empty, hint_for
from realtime_nb.client.mirror import Mirror
from realtime_nb.protocol import bytes_per_ms

from ._lanes import OUT_AUDIO, SEAM, category_of, marker_label

__all__ = ["MAX_STRING", "Compactor", "compact_log"]

_REF = re.compile(r"^<audio (\d+) bytes #\d+>$")
#: Longest string kept in a payload shown in the browser.
MAX_STRING = 600
_SENT_KEEP = 4096
_DIRECTIONS = {"client": "c", "server": "s"}


def _clip(value: Any, limit: int = MAX_STRING) -> Any:
    """``value`` with strings longer than ``limit`` clipped (copies only what changes).

    Hot path (every event of a live timeline): scalars are checked in place, and only the
    containers on the way to a clipped string are copied; ``value`` itself is never modified.
    """
    if type(value) is dict:
        return _clip_dict(value, limit)
    if isinstance(value, str):
        return value if len(value) <= limit else _clip_str(value, limit)
    if isinstance(value, dict):
        return _clip_dict(value, limit)
    if isinstance(value, list):
        return _clip_list(value, limit)
    return value


def _clip_str(value: str, limit: int) -> str:
    return value[:limit] + f"… (+{len(value) - limit} chars)"


def _clip_dict(value: dict[Any, Any], limit: int) -> dict[Any, Any]:
    return _clip_items(value, value.items(), dict, limit)


def _clip_list(value: list[Any], limit: int) -> list[Any]:
    return _clip_items(value, enumerate(value), list, limit)


def _clip_items(value: Any, items: Any, copy: Any, limit: int) -> Any:
    """Clip the ``(key, value)`` ``items`` of a dict or list; copy it once, on the first change."""
    out = None
    for k, v in items:
        tv = type(v)
        if tv is str:
            if len(v) <= limit:
                continue
            c: Any = _clip_str(v, limit)
        elif tv is int or tv is float or tv is bool or v is None:
            continue
        else:
            c = _clip(v, limit)
            if c is v:
                continue
        if out is None:
            out = copy(value)
        out[k] = c
    return value if out is None else out


def _audio_bytes(view: dict[str, Any], etype: str) -> int | None:
    key = AUDIO_FIELDS.get(etype)
    if key is None:
        return None
    m = _REF.match(str(view.get(key, "")))
    return int(m.group(1)) if m else None


#: (event type, direction) -> category: a handful of types make up a whole session.
_CATEGORY_CACHE: dict[tuple[str, str], str] = {}


def _object_at(body: dict[str, Any], key: str) -> dict[str, Any]:
    """``body[key]`` when it is a JSON object, else an empty one (a field absent or malformed)."""
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def _category(etype: str, d: str) -> str:
    k = _CATEGORY_CACHE.get((etype, d))
    if k is None:
        k = category_of(etype, d)
        if len(_CATEGORY_CACHE) < 4096:  # bounded: types come from the server
            _CATEGORY_CACHE[(etype, d)] = k
    return k


#: The server events that move the input buffer or change the formats: all the level mirror
#: replays (items, responses, transcripts and rate limits never change the level).
_LEVEL_EVENTS = frozenset((
    "session.created", "session.updated", "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped", "input_audio_buffer.timeout_triggered",
    "input_audio_buffer.committed", "input_audio_buffer.cleared", "error",
))


class _LevelMirror(Mirror):
    """The Session's :class:`~realtime_nb.client.mirror.Mirror` without the recordings: appends
    are counted (``append_bytes``), never stored, so replaying a long log costs no audio memory.
    Its buffer rules are the Session's own; only the events that can move the buffer or change
    the formats (:data:`_LEVEL_EVENTS`) are replayed, so a long answer's deltas cost nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._handlers = {k: v for k, v in self._handlers.items() if k in _LEVEL_EVENTS}

    def append_bytes(self, nbytes: int) -> None:
        """Audio of ``nbytes`` was appended: the buffer's own rules, as Mirror.client_append
        applies them (idle audio under turn detection is not buffered), without the bytes."""
        self.buffer.append(nbytes)
        self.buffer.drop_idle()

    def audio_delta(self, event: dict[str, Any], data: Any) -> None:  # pragma: no cover
        return


class Compactor:
    """Turns logged events, fed in order, into compact events (see the module docstring).

    Stateful: it replays the events through the Session's own state mirror (recordings left
    out), so the input-buffer level it reports after each event is the Session's
    ``input_buffer_ms`` rule (appends count at once, VAD start/stop, commits at the VAD's
    ``audio_end_ms`` or where the client's commit was sent, clears), and a server ``error``
    gets the hint the Session gives it. Refused client events never reached the server and
    change nothing.
    """

    def __init__(self) -> None:
        self.mirror = _LevelMirror()
        self._sent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._out_bpm: tuple[Any, int] = (object(), 48)  # (the config it is of, bytes per ms)

    @property
    def out_bpm(self) -> int:
        """Bytes per ms of the output audio format (worked out once per session config)."""
        config, bpm = self._out_bpm
        if config is not self.mirror.session:
            try:
                bpm = bytes_per_ms(self.mirror.output_format)
            except ValueError:
                bpm = 48
            self._out_bpm = (self.mirror.session, bpm)
        return bpm

    def _level(self) -> list[float]:
        m = self.mirror
        return [round(m.input_buffer_ms, 1), round(m.appended_since_ms, 1)]

    def _server_error(self, ev: dict[str, Any]) -> dict[str, Any]:
        body = _object_at(ev, "error")
        code = body.get("code")
        eid = body.get("event_id")
        sent = self._sent.get(eid) if isinstance(eid, str) else None
        hint = hint_for(code, body.get("param"), body.get("message"), sent)
        if code == "input_audio_buffer_commit_empty":
            m = self.mirror
            hint = explain_commit_empty(
                m.input_buffer_ms, turn_detection=m.buffer.vad,
                appended_ms=m.appended_since_ms, last_commit=m.last_commit,
                cleared=m.last_buffer_op == "clear") or hint
        return {"code": code, "message": str(body.get("message", "")), "hint": hint,
                "param": body.get("param"), "event_id": eid, "refused": False,
                "answers": sent.get("type") if sent else None}

    def __call__(self, entry: LoggedEvent) -> dict[str, Any]:
        """The compact event of ``entry`` (call in log order)."""
        d = _DIRECTIONS.get(entry.direction, "l")
        etype = entry.type
        view = entry.event
        k = _CATEGORY_CACHE.get((etype, d)) or _category(etype, d)
        out: dict[str, Any] = {"s": entry.seq, "t": round(entry.t, 4), "d": d, "y": etype, "k": k,
                               "p": _clip_dict(view, MAX_STRING) if type(view) is dict
                               else _clip(view)}
        if entry.note:
            out["note"] = entry.note
        nbytes = _audio_bytes(view, etype) if etype in AUDIO_FIELDS else None
        m = self.mirror
        if d == "c":
            if entry.refused is not None:
                err = entry.refused
                out["x"] = {"code": err.code, "message": err.message, "hint": err.hint,
                            "param": err.param, "event_id": err.event_id, "refused": True}
                return out
            eid = view.get("event_id")
            if isinstance(eid, str):
                self._sent[eid] = view
                if len(self._sent) > _SENT_KEEP:
                    self._sent.popitem(last=False)
            if etype == "input_audio_buffer.append":
                m.append_bytes(nbytes or 0)
                out["ms"] = round((nbytes or 0) / m.buffer.bytes_per_ms, 2)
                out["b"] = self._level()
            elif etype != "conversation.item.create":
                m.client_event(view)
            return out
        if d == "l":
            out["lb"] = marker_label(etype, view)
            if etype in ("realtime_nb.reconnected", SEAM):
                m.new_session()
                out["b"] = self._level()
            return out
        if etype == "error":
            out["x"] = self._server_error(view)
        if etype in _LEVEL_EVENTS:
            buf = m.buffer
            before = (buf.timeline_bytes, buf.start_bytes, buf.speaking, m.floor_bytes, buf.vad)
            try:
                m.server_event(view)
            except Exception as exc:  # the timeline must survive odd events, like the Session
                out["note"] = f"timeline: {exc!r}"
            buf = m.buffer
            if before != (buf.timeline_bytes, buf.start_bytes, buf.speaking, m.floor_bytes,
                          buf.vad):
                out["b"] = self._level()
        if etype in OUT_AUDIO:
            out["ms"] = round((nbytes or 0) / self.out_bpm, 2)
        rid = view.get("response_id")
        if rid is None and etype.startswith("response.") and isinstance(view.get("response"),
                                                                         dict):
            rid = view["response"].get("id")
        if isinstance(rid, str):
            out["r"] = rid
        if etype == "conversation.item.input_audio_transcription.failed":
            body = _object_at(view, "error")
            out["x"] = {"code": body.get("code"), "message": str(body.get("message", "")),
                        "hint": None, "param": body.get("param"), "refused": False}
        elif etype == "response.done":
            resp = _object_at(view, "response")
            out["st"] = resp.get("status")
            details = _object_at(resp, "status_details")
            if resp.get("status") == "failed":
                failure = _object_at(details, "error")
                out["x"] = {"code": failure.get("code") or "response_failed",
                            "message": str(failure.get("message") or "The response failed."),
                            "hint": None, "param": None, "refused": False}
        return out


def compact_log(log: EventLog | Iterable[LoggedEvent]) -> list[dict[str, Any]]:
    """All entries of ``log`` as compact events (see the module docstring)."""
    c = Compactor()
    return [c(e) for e in log]
