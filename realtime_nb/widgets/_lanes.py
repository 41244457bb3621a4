"""The timeline's lanes: the facts of what is drawn where, and the grouping into lanes.

Step 2 of the timeline (step 1, :mod:`._compact`, turns logged events into *compact events*,
whose keys are listed there):

- the facts: :data:`CATEGORIES` (colour, label, server-lane row), :func:`category_of`,
  :func:`row_of`, :data:`LANE_ROWS`, the renewal seam (:data:`SEAM`, :func:`seam_label`), local
  marker labels (:func:`marker_label`), the collapse bin (:data:`BIN_PX`);
- :func:`build_lanes` groups compact events into what is drawn: event marks per lane with
  floods collapsed (same-type events of a lane within one time bin become one mark with a
  count), VAD speech segments, the input-buffer step line, response spans and error marks.

What ``timeline.js`` takes from here and what it recomputes: the static facts come from this
module, never restated in JS — the categories (colours, labels) and :func:`drawing_rules`
(rows, output-audio types, seam and speech-ending markers, commit minimum, bin width) as
traits, the marker labels in the compact events. The grouping it must recompute: the bins
depend on the zoom of each view at each redraw; segments and spans are built incrementally as
batches arrive (live, or history merged in place after live batches), grow with the clock
between batches while open, and are needed for events the kernel no longer holds
(``Timeline.history_limit``). The browser tests check that both groupings agree on a real
trace, a long synthetic session, late history and a renewal seam.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from realtime_nb.protocol import COMMIT_MIN_MS

__all__ = [
    "BIN_PX",
    "CATEGORIES",
    "LANE_ROWS",
    "OUT_AUDIO",
    "SEAM",
    "ErrorMark",
    "Lanes",
    "Mark",
    "ResponseSpan",
    "Seam",
    "SpeechSegment",
    "build_lanes",
    "category_of",
    "collapse",
    "drawing_rules",
    "marker_label",
    "row_of",
    "seam_label",
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

#: The output audio delta types (the beta name too, for old traces).
OUT_AUDIO = ("response.output_audio.delta", "response.audio.delta")
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
        "out_audio": list(OUT_AUDIO),
        "seam": SEAM,
        "ends_speech": list(_ENDS_SPEECH),
        "seam_color": SEAM_COLOR,
        "commit_min_ms": COMMIT_MIN_MS,
        "bin_px": BIN_PX,
    }


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
    if etype in OUT_AUDIO or etype in ("response.output_audio.done", "response.audio.done"):
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
        if y in OUT_AUDIO:
            span.deltas += 1
            span.audio_ms += float(e.get("ms", 0))
            if span.t_audio is None:
                span.t_audio = t
            span.t_last_audio = t
        elif y == "response.done":
            span.t_done = t
            span.status = e.get("st")
    return lanes
