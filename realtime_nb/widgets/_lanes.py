"""Events → timeline lanes: the one place that says what the timeline shows.

Two steps, both pure Python:

1. :class:`Compactor` turns each :class:`~realtime_nb.client.eventlog.LoggedEvent` into a
   *compact event*, the dict the browser receives (live widget and static HTML export alike) and
   the PNG export draws from. Everything that needs state or knowledge of the protocol is worked
   out here, once: the lane and category of the event, the audio milliseconds an append or delta
   carries, the input-buffer level after it (the events replayed through the Session's own
   state mirror), for errors and refused client events their code, message and hint, and the
   label of a local marker.

2. :func:`build_lanes` groups compact events into what is drawn: event marks per lane with
   floods collapsed (same-type events of a lane within one time bin become one mark with a
   count), VAD speech segments, the input-buffer step line, response spans and error
   marks.

What ``timeline.js`` takes from here and what it recomputes: the static facts come from this
module, never restated in JS — the categories (colours, labels) and :func:`drawing_rules`
(rows, output-audio types, seam and speech-ending markers, commit minimum, bin width) as
traits, the marker labels in the compact events. The grouping of step 2 it must recompute:
the bins depend on the zoom of each view at each redraw; segments and spans are built
incrementally as batches arrive (live, or history merged in place after live batches), grow
with the clock between batches while open, and are needed for events the kernel no longer
holds (``Timeline.history_limit``). The browser tests check that both groupings agree on a
real trace, a long synthetic session, late history and a renewal seam.

A compact event has these keys (short, because thousands travel to the browser):

``s`` seq, ``t`` seconds since the log started, ``d`` direction (``"c"`` client, ``"s"``
server, ``"l"`` local marker), ``y`` event type, ``k`` category (see :data:`CATEGORIES`), ``p``
the audio-free payload (long strings clipped), and when they apply: ``ms`` audio milliseconds
carried (appends, output audio deltas), ``b`` ``[buffered_ms, appended_ms]`` after the event
(what a commit sent now would find, and audio appended since the last commit or clear),
``r`` response id, ``x`` error details (``code``, ``message``, ``hint``, ``param``,
``refused``), ``lb`` a local marker's label (:func:`marker_label`), ``note``.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from realtime_nb.client.eventlog import AUDIO_FIELDS, EventLog, LoggedEvent
from realtime_nb.client.hints import explain_commit_empty, hint_for
from realtime_nb.client.mirror import Mirror
from realtime_nb.protocol import COMMIT_MIN_MS, bytes_per_ms

__all__ = [
    "CATEGORIES",
    "Compactor",
    "ErrorMark",
    "Lanes",
    "Mark",
    "ResponseSpan",
    "SpeechSegment",
    "build_lanes",
    "category_of",
    "compact_log",
    "drawing_rules",
    "marker_label",
]

#: Event categories: colour and the row of the server lane they are drawn in (the client lane
#: has 2 rows: audio, the rest). Shared with ``timeline.js`` (sent to the browser as a trait).
CATEGORIES: dict[str, dict[str, Any]] = {
    "audio_in": {"color": "#78909c", "row": 0, "label": "input audio"},
    "audio_out": {"color": "#1e88e5", "row": 0, "label": "output audio"},
    "text": {"color": "#8e24aa", "row": 1, "label": "text / transcripts"},
    "vad": {"color": "#43a047", "row": 2, "label": "VAD"},
    "buffer": {"color": "#fb8c00", "row": 2, "label": "input buffer"},
    "response": {"color": "#00897b", "row": 3, "label": "response"},
    "item": {"color": "#6d4c41", "row": 3, "label": "conversation items"},
    "session": {"color": "#5e35b1", "row": 3, "label": "session"},
    "tools": {"color": "#c0ca33", "row": 3, "label": "MCP tools"},
    "other": {"color": "#9e9e9e", "row": 3, "label": "other"},
    "local": {"color": "#455a64", "row": 0, "label": "local marker"},
    "error": {"color": "#d32f2f", "row": 3, "label": "error"},
}
#: Rows in each lane (server: one per category row above); client events of any category but
#: ``audio_in`` go to row 1.
LANE_ROWS = {"c": 2, "s": 4, "l": 1}

_OUT_AUDIO = ("response.output_audio.delta", "response.audio.delta")
#: The renewal seam marker (``Session(renew=...)``): drawn as a boundary between two server
#: sessions, labelled with both ids.
SEAM = "realtime_nb.renewed"
SEAM_COLOR = "#6a1b9a"
#: Local markers that end every open VAD speech segment (no ``speech_stopped`` will come).
_ENDS_SPEECH = ("realtime_nb.disconnected", "realtime_nb.closed", SEAM)
#: Floods collapse per time bin of this many pixels (the widget and the PNG alike).
BIN_PX = 10


def seam_label(old: Any, new: Any) -> str:
    """The seam's label: ``renewed sess_ab12… → sess_cd34…`` (ids shortened to 12 chars)."""
    def short(v: Any) -> str:
        v = str(v) if v else "?"
        return v if len(v) <= 13 else v[:12] + "…"
    return f"renewed {short(old)} → {short(new)}"


def marker_label(etype: str, payload: Any) -> str:
    """The label drawn beside a local marker: the seam's :func:`seam_label`, else the type
    without its ``realtime_nb.`` prefix (``connected``, ``closed``, ...)."""
    if etype == SEAM:
        p = payload if isinstance(payload, dict) else {}
        return seam_label(p.get("old_session_id"), p.get("new_session_id"))
    return etype.removeprefix("realtime_nb.")


def drawing_rules() -> dict[str, Any]:
    """The lane facts ``timeline.js`` receives (the widget's ``_lane_rules`` trait, and the
    HTML export's state) instead of restating them: the rows per lane and the row of each
    category in each lane (:func:`row_of`), the output-audio delta types, the seam marker, the
    markers that end speech, the seam colour, the commit minimum drawn on the buffer lane and
    the collapse bin in pixels. JSON-ready."""
    return {
        "lane_rows": dict(LANE_ROWS),
        "rows": {d: {k: row_of(d, k) for k in CATEGORIES} for d in LANE_ROWS},
        "out_audio": list(_OUT_AUDIO),
        "seam": SEAM,
        "ends_speech": list(_ENDS_SPEECH),
        "seam_color": SEAM_COLOR,
        "commit_min_ms": COMMIT_MIN_MS,
        "bin_px": BIN_PX,
    }
_REF = re.compile(r"^<audio (\d+) bytes #\d+>$")
#: Longest string kept in a payload shown in the browser.
MAX_STRING = 600
_SENT_KEEP = 4096
_DIRECTIONS = {"client": "c", "server": "s"}


def category_of(etype: str, direction: str = "s") -> str:
    """The category (see :data:`CATEGORIES`) of an event type."""
    if direction == "l" or etype.startswith("realtime_nb."):
        return "local"
    if etype == "error":
        return "error"
    if etype == "input_audio_buffer.append":
        return "audio_in"
    if etype in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"):
        return "vad"
    if etype.startswith("input_audio_buffer.") or etype.startswith("output_audio_buffer."):
        return "buffer"
    if etype in _OUT_AUDIO or etype in ("response.output_audio.done", "response.audio.done"):
        return "audio_out"
    if etype.startswith(("mcp_list_tools.", "response.mcp_call")):
        return "tools"
    if ("transcript" in etype or "text" in etype or "transcription" in etype
            or "function_call_arguments" in etype):
        return "text"
    if etype.startswith("response.") or etype == "rate_limits.updated":
        return "response"
    if etype.startswith("conversation."):
        return "item"
    if etype.startswith("session.") or etype.startswith("transcription_session."):
        return "session"
    return "other"


def row_of(d: str, k: str) -> int:
    """The row of the lane of direction ``d`` a category ``k`` is drawn in."""
    if d == "c":
        return 0 if k == "audio_in" else 1
    if d == "l":
        return 0
    return min(int(CATEGORIES.get(k, CATEGORIES["other"])["row"]), LANE_ROWS["s"] - 1)


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
        buf = self.buffer
        buf.timeline_bytes += nbytes
        if buf.vad and not buf.speaking:
            # What Mirror.client_append does: idle audio is not buffered under server VAD.
            buf.start_bytes = buf.timeline_bytes

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
        body = ev.get("error") if isinstance(ev.get("error"), dict) else {}
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
        if etype in _OUT_AUDIO:
            out["ms"] = round((nbytes or 0) / self.out_bpm, 2)
        rid = view.get("response_id")
        if rid is None and etype.startswith("response.") and isinstance(view.get("response"),
                                                                         dict):
            rid = view["response"].get("id")
        if isinstance(rid, str):
            out["r"] = rid
        if etype == "conversation.item.input_audio_transcription.failed":
            body = view.get("error") if isinstance(view.get("error"), dict) else {}
            out["x"] = {"code": body.get("code"), "message": str(body.get("message", "")),
                        "hint": None, "param": body.get("param"), "refused": False}
        elif etype == "response.done":
            resp = view.get("response") if isinstance(view.get("response"), dict) else {}
            out["st"] = resp.get("status")
            details = resp.get("status_details") if isinstance(resp.get("status_details"),
                                                               dict) else {}
            if resp.get("status") == "failed":
                err = details.get("error") if isinstance(details.get("error"), dict) else {}
                out["x"] = {"code": err.get("code") or "response_failed",
                            "message": str(err.get("message") or "The response failed."),
                            "hint": None, "param": None, "refused": False}
        return out


def compact_log(log: EventLog | Iterable[LoggedEvent]) -> list[dict[str, Any]]:
    """All entries of ``log`` as compact events (see the module docstring)."""
    c = Compactor()
    return [c(e) for e in log]


# ---------------------------------------------------------------------- lanes
@dataclass
class Mark:
    """One drawn event mark: one event, or a run of ``count`` same-type events in one bin."""

    d: str
    type: str
    k: str
    row: int
    t0: float
    t1: float
    count: int
    seq0: int
    seq1: int
    index: int
    error: dict[str, Any] | None = None


@dataclass
class SpeechSegment:
    """VAD speech: received ``speech_started`` at ``t0`` → ``speech_stopped`` at ``t1`` (None:
    still open). ``audio_start_ms``/``audio_end_ms`` are the server's input-timeline positions."""

    t0: float
    t1: float | None
    audio_start_ms: float | None
    audio_end_ms: float | None
    item_id: str | None
    seq0: int
    seq1: int | None = None


@dataclass
class ResponseSpan:
    """One response: created at ``t_created``, first output audio delta at ``t_audio`` (None: no
    audio), ``response.done`` at ``t_done`` (None: still running)."""

    id: str
    t_created: float | None
    t_audio: float | None = None
    t_last_audio: float | None = None
    t_done: float | None = None
    deltas: int = 0
    audio_ms: float = 0.0
    status: str | None = None
    seq0: int = 0


@dataclass
class ErrorMark:
    """An ``error`` event, a refused client event (never sent), a failed transcription or a
    failed response: ``code``, ``message`` and the ``hint`` explaining it."""

    t: float
    seq: int
    d: str
    type: str
    code: str | None
    message: str
    hint: str | None
    refused: bool


@dataclass
class Seam:
    """A renewal seam: the local ``realtime_nb.renewed`` marker at ``t`` — the old server
    session ends and the new one (its conversation carried over) begins."""

    t: float
    seq: int
    old_session_id: str | None
    new_session_id: str | None
    reason: str | None
    carried: int
    dropped: int

    @property
    def label(self) -> str:
        return seam_label(self.old_session_id, self.new_session_id)


@dataclass
class Lanes:
    """What the timeline draws (see :func:`build_lanes`)."""

    marks: dict[str, list[Mark]] = field(default_factory=lambda: {"c": [], "s": [], "l": []})
    speech: list[SpeechSegment] = field(default_factory=list)
    buffer: list[tuple[float, float, float]] = field(default_factory=list)
    responses: list[ResponseSpan] = field(default_factory=list)
    errors: list[ErrorMark] = field(default_factory=list)
    seams: list[Seam] = field(default_factory=list)
    t_first: float = 0.0
    t_last: float = 0.0
    count: int = 0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest, the same shape as ``timeline.js``'s ``lanesSummary`` (tests)."""
        return {
            "count": self.count,
            "speech": [[s.t0, s.t1, s.audio_start_ms, s.audio_end_ms] for s in self.speech],
            "responses": [[r.id, r.t_audio, r.t_done, r.deltas, round(r.audio_ms, 1)]
                          for r in self.responses],
            "errors": [e.seq for e in self.errors],
            "buffer": len(self.buffer),
            "last_buffer": list(self.buffer[-1][1:]) if self.buffer else None,
            "marks": {d: [[m.seq0, m.count] for m in ms] for d, ms in self.marks.items()},
            "seams": [[s.seq, s.old_session_id, s.new_session_id] for s in self.seams],
        }


def _bin(t: float, bin_s: float) -> int:
    return math.floor(t / bin_s)


def collapse(events: Sequence[dict[str, Any]], d: str, bin_s: float | None) -> list[Mark]:
    """Marks of lane ``d``, in the order of their first event: events of that lane with the
    same type in the same bin (``floor(t / bin_s)``) become one mark with their count, even when
    other types are interleaved (audio and transcript deltas). Events with an error never merge.
    ``bin_s=None`` collapses nothing."""
    marks: list[Mark] = []
    cur: dict[str, tuple[int, Mark]] = {}
    for i, e in enumerate(events):
        if e["d"] != d:
            continue
        err = e.get("x")
        y = e["y"]
        b = _bin(e["t"], bin_s) if bin_s else 0
        got = cur.get(y)
        if bin_s and got is not None and err is None and got[1].error is None and got[0] == b:
            m = got[1]
            m.count += 1
            m.t1 = e["t"]
            m.seq1 = e["s"]
            continue
        m = Mark(d, y, e["k"], row_of(d, e["k"]), e["t"], e["t"], 1, e["s"], e["s"], i, err)
        cur[y] = (b, m)
        marks.append(m)
    return marks


def build_lanes(events: Sequence[dict[str, Any]], bin_s: float | None = None) -> Lanes:
    """Group compact events into lanes.

    ``bin_s``: width of the time bins within which floods collapse (see :func:`collapse`);
    pick it from the drawing's resolution (a few pixels' worth of seconds).
    """
    lanes = Lanes(count=len(events))
    if events:
        lanes.t_first = events[0]["t"]
        lanes.t_last = events[-1]["t"]
    for d in ("c", "s", "l"):
        lanes.marks[d] = collapse(events, d, bin_s)
    responses: dict[str, ResponseSpan] = {}
    for e in events:
        y = e["y"]
        t = e["t"]
        if "b" in e:
            lanes.buffer.append((t, float(e["b"][0]), float(e["b"][1])))
        if "x" in e:
            x = e["x"]
            lanes.errors.append(ErrorMark(t, e["s"], e["d"], y, x.get("code"),
                                          str(x.get("message", "")), x.get("hint"),
                                          bool(x.get("refused"))))
        if e["d"] != "s":
            if y == SEAM:
                p = e.get("p") or {}
                lanes.seams.append(Seam(t, e["s"], p.get("old_session_id"),
                                        p.get("new_session_id"), p.get("reason"),
                                        len(p.get("carried") or ()),
                                        len(p.get("dropped") or ())))
            if y in _ENDS_SPEECH:
                for s in lanes.speech:
                    if s.t1 is None:
                        s.t1, s.seq1 = t, e["s"]
            continue
        p = e.get("p") or {}
        if y == "input_audio_buffer.speech_started":
            for s in lanes.speech:
                if s.t1 is None:
                    s.t1, s.seq1 = t, e["s"]
            lanes.speech.append(SpeechSegment(t, None, p.get("audio_start_ms"), None,
                                              p.get("item_id"), e["s"]))
        elif y == "input_audio_buffer.speech_stopped":
            seg = next((s for s in reversed(lanes.speech)
                        if s.t1 is None and s.item_id == p.get("item_id")), None)
            if seg is None:
                seg = next((s for s in reversed(lanes.speech) if s.t1 is None), None)
            if seg is None:
                seg = SpeechSegment(t, None, None, None, p.get("item_id"), e["s"])
                lanes.speech.append(seg)
            seg.t1, seg.seq1 = t, e["s"]
            seg.audio_end_ms = p.get("audio_end_ms")
        rid = e.get("r")
        if rid is None:
            continue
        span = responses.get(rid)
        if span is None:
            span = responses[rid] = ResponseSpan(rid, t if y == "response.created" else None,
                                                 seq0=e["s"])
            lanes.responses.append(span)
        if y in _OUT_AUDIO:
            span.deltas += 1
            span.audio_ms += float(e.get("ms", 0))
            if span.t_audio is None:
                span.t_audio = t
            span.t_last_audio = t
        elif y == "response.done":
            span.t_done = t
            span.status = e.get("st")
    return lanes
