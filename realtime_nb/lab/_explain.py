"""``explain()``: "why is my input buffer empty?" answered from a session's event log.

Reads a live session (or its :class:`~realtime_nb.client.EventLog`), an exported JSONL trace, or
a plain list of event dicts, replays the input-buffer bookkeeping, and names each known cause
that applies, with the events (and times) that show it:

===================== ==========================================================================
code                  cause
===================== ==========================================================================
``vad_auto_commit``   turn detection was on and the server had already committed the audio at
                      speech end; the manual commit found an empty buffer
``nothing_appended``  a commit with no audio appended since the last commit / clear / start
``float32_audio``     appended bytes are float32 samples, not PCM16 (or were refused locally as
                      such and never sent)
``wrong_sample_rate`` appended PCM16 was recorded at another rate and sent as 24 kHz
``rejected_update``   a ``session.update`` was rejected (e.g. a field at the wrong level), so its
                      settings — often turn detection — never applied
``no_speech_detected`` turn detection on, audio appended, but the VAD heard no speech (audio
                      outside speech is not buffered)
``too_little_audio``  manual mode and less than 100 ms appended before the commit
===================== ==========================================================================

The first five are the classic ones; the codes are stable. Messages reuse the client's hint texts
(:mod:`realtime_nb.client.hints`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from realtime_nb.audio import looks_like_float32
from realtime_nb.client.hints import explain_commit_empty, hint_for
from realtime_nb.protocol import CLIENT_EVENTS

from ._ratecheck import RateFinding, pacing_rate, voice_rate

__all__ = ["CAUSE_CODES", "Cause", "Causes", "Evidence", "explain"]

CAUSE_CODES = (
    "vad_auto_commit",
    "nothing_appended",
    "float32_audio",
    "wrong_sample_rate",
    "rejected_update",
    "no_speech_detected",
    "too_little_audio",
)
_COMMIT_EMPTY = "input_audio_buffer_commit_empty"
_REF = re.compile(r"^<audio (\d+) bytes")
_MAX_EVIDENCE = 12


class Evidence(NamedTuple):
    """One piece of evidence: when (seconds on the log's clock; None if the events carry no
    times), the event type, and what it shows."""

    t: float | None
    type: str
    detail: str


@dataclass
class Cause:
    """A cause found in the log: stable ``code``, plain-language ``message`` (with the fix),
    and ``evidence`` — the events that show it, in time order."""

    code: str
    message: str
    evidence: list[Evidence] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"[{self.code}] {self.message}"]
        for ev in self.evidence:
            when = "" if ev.t is None else f"{ev.t:8.3f}s "
            lines.append(f"    {when}{ev.type}: {ev.detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message,
                "evidence": [ev._asdict() for ev in self.evidence]}


class Causes(list[Cause]):
    """The causes :func:`explain` found (a list, earliest evidence first)."""

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self]

    def __str__(self) -> str:
        if not self:
            return "No known cause of an empty input buffer was found in these events."
        return "\n\n".join(str(c) for c in self)

    def _repr_markdown_(self) -> str:
        if not self:
            return "_No known cause of an empty input buffer was found in these events._"
        parts = []
        for c in self:
            rows = "\n".join(
                f"  - `{'' if ev.t is None else f'{ev.t:.3f}s'}` **{ev.type}** — {ev.detail}"
                for ev in c.evidence)
            parts.append(f"- **`{c.code}`** — {c.message}\n{rows}")
        return "\n".join(parts)


# ---------------------------------------------------------------------- normalising the input
@dataclass
class _Entry:
    t: float | None
    direction: str
    type: str
    event: dict[str, Any]
    audio: bytes | None
    nbytes: int
    refused: Mapping[str, Any] | None


def _audio_size(event: Mapping[str, Any]) -> int:
    payload = event.get("audio")
    if isinstance(payload, str):
        m = _REF.match(payload)
        if m:
            return int(m.group(1))
        return len(payload) * 3 // 4
    return 0


def _from_log(log: Any) -> list[_Entry]:
    out = []
    for e in log:
        audio = log.audio_of(e) if e.audio else None
        ev = e.event if isinstance(e.event, dict) else {}
        refused = e.refused.to_dict() if e.refused is not None else None
        nbytes = len(audio) if audio is not None else _audio_size(ev)
        out.append(_Entry(e.t, e.direction, e.type, ev, audio, nbytes, refused))
    return out


def _decode_b64(payload: Any) -> bytes | None:
    if not isinstance(payload, str) or _REF.match(payload):
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def _from_dicts(items: Iterable[Mapping[str, Any]]) -> list[_Entry]:
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TypeError(f"explain() takes event dicts; item {n} is {type(item).__name__}")
        if isinstance(item.get("event"), Mapping) and "direction" in item:  # LoggedEvent.to_dict
            ev = dict(item["event"])
            direction = str(item["direction"])
            t = item.get("t")
            refused = item.get("refused")
        else:
            ev = dict(item)
            etype = ev.get("type")
            direction = "client" if etype in CLIENT_EVENTS else "server"
            t = ev.get("t") if isinstance(ev.get("t"), int | float) else None
            refused = None
        audio = _decode_b64(ev.get("audio")) if ev.get("type") == "input_audio_buffer.append" \
            else None
        nbytes = len(audio) if audio is not None else _audio_size(ev)
        out.append(_Entry(float(t) if isinstance(t, int | float) else None, direction,
                          str(ev.get("type", "?")), ev, audio, nbytes,
                          refused if isinstance(refused, Mapping) else None))
    return out


def _entries(events: Any) -> list[_Entry]:
    from realtime_nb.client import EventLog, LoggedEvent

    if isinstance(events, str | Path):  # a JSONL trace or a flight recorder's folder
        return _from_log(EventLog.load(events))
    if isinstance(events, EventLog):
        return _from_log(events)
    log = getattr(events, "events", None)
    if isinstance(log, EventLog):
        return _from_log(log)
    if isinstance(events, Sequence) and events and all(isinstance(e, LoggedEvent)
                                                       for e in events):
        holder = EventLog()
        holder.entries = list(events)
        return _from_log(holder)
    if isinstance(events, Iterable):
        return _from_dicts(list(events))
    raise TypeError("explain() takes a Session, an EventLog, a JSONL path, or a list of events; "
                    f"got {type(events).__name__}")


# ---------------------------------------------------------------------- helpers
def _turn_detection_of(session: Mapping[str, Any]) -> tuple[bool, Any]:
    """(present, value) of turn detection in a session object, GA or beta shape."""
    audio = session.get("audio")
    if isinstance(audio, Mapping):
        inp = audio.get("input")
        if isinstance(inp, Mapping) and "turn_detection" in inp:
            return True, inp["turn_detection"]
    if "turn_detection" in session:
        return True, session["turn_detection"]
    return False, None


def _format_of(session: Mapping[str, Any]) -> Any:
    audio = session.get("audio")
    if isinstance(audio, Mapping):
        inp = audio.get("input")
        if isinstance(inp, Mapping) and "format" in inp:
            return inp["format"]
    return session.get("input_audio_format")


def _is_pcm24(fmt: Any) -> bool:
    if fmt is None:
        return True
    if isinstance(fmt, str):
        return fmt in ("pcm16", "audio/pcm")
    if isinstance(fmt, Mapping):
        return fmt.get("type") == "audio/pcm"
    return False


def _mentions_turn_detection(obj: Any) -> bool:
    if isinstance(obj, Mapping):
        return any(k == "turn_detection" or _mentions_turn_detection(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_mentions_turn_detection(v) for v in obj)
    return False


def _err_text(err: Mapping[str, Any]) -> str:
    param = err.get("param")
    where = f" (param {param})" if param else ""
    return f"{err.get('code')}: {err.get('message')}{where}"


def _keys(ev: Mapping[str, Any]) -> str:
    top = [k for k in ev if k not in ("type", "event_id")]
    session = ev.get("session")
    inner = list(session) if isinstance(session, Mapping) else []
    return f"top-level keys {top}, session keys {inner}"


class _Found:
    def __init__(self) -> None:
        self.causes: dict[str, Cause] = {}
        self.first: dict[str, tuple[float, int]] = {}

    def add(self, code: str, message: str, evidence: Iterable[Evidence], order: int) -> None:
        cause = self.causes.get(code)
        if cause is None:
            cause = self.causes[code] = Cause(code, message)
        seen = {(e.t, e.type, e.detail) for e in cause.evidence}
        for ev in evidence:
            if (ev.t, ev.type, ev.detail) not in seen and len(cause.evidence) < _MAX_EVIDENCE:
                cause.evidence.append(ev)
                seen.add((ev.t, ev.type, ev.detail))
        cause.evidence.sort(key=lambda e: (e.t is None, e.t or 0.0))
        self.first.setdefault(code, (float("inf"), order))

    def result(self) -> Causes:
        def when(c: Cause) -> tuple[float, int]:
            ts = [e.t for e in c.evidence if e.t is not None]
            return (min(ts) if ts else float("inf"), self.first[c.code][1])

        return Causes(sorted(self.causes.values(), key=when))


# ---------------------------------------------------------------------- the walk
@dataclass
class _Buffer:
    """What the server's input buffer went through since the last boundary."""

    appended: int = 0  # bytes appended since the last commit / clear / session start
    boundary: Evidence | None = None  # the last commit / clear (None: session start)
    boundary_kind: str = "start"
    vad_commits: list[list[Evidence]] = field(default_factory=list)
    last_vad: dict[str, Any] | None = None
    speech: bool = False
    refused_appends: list[Evidence] = field(default_factory=list)
    first_append: Evidence | None = None


def explain(events: Any) -> Causes:
    """Name the known causes of an empty input buffer found in ``events``, with evidence.

    ``events``: a :class:`~realtime_nb.Session` (its live log), an
    :class:`~realtime_nb.client.EventLog`, the path of a JSONL trace
    (:meth:`EventLog.to_jsonl`) or of a flight recorder's session folder, a list of
    :class:`~realtime_nb.client.LoggedEvent`, or a list of
    event dicts (plain wire events — direction taken from the event type, times from a ``"t"``
    key if any — or ``LoggedEvent.to_dict()`` records). Audio checks (float32, sample rate) need
    the audio: live logs and traces exported with ``audio=True`` have it.

    Returns :class:`Causes` (a list of :class:`Cause`, earliest evidence first; empty when
    nothing known applies). See the module docstring for the codes.
    """
    entries = _entries(events)
    found = _Found()
    td_on: bool | None = None
    pcm24 = True
    buf = _Buffer()
    sent: dict[str, _Entry] = {}
    pending_updates: list[_Entry] = []
    started: dict[str, Evidence] = {}
    stopped: dict[str, tuple[Evidence, dict[str, Any]]] = {}
    f32_hits: list[Evidence] = []
    f32_checked = 0
    pcm_chunks: list[bytes] = []
    pacing: list[tuple[float, int]] = []
    first_append: Evidence | None = None  # the first append of the whole log
    sessions = 0  # session.created seen so far

    def ev_of(e: _Entry, detail: str) -> Evidence:
        return Evidence(e.t, e.type, detail)

    def reject(update: _Entry, err: Mapping[str, Any], err_entry: _Entry | None,
               order: int) -> None:
        code, param, message = err.get("code"), err.get("param"), err.get("message")
        hint = hint_for(code, param, message, update.event) or ""
        text = ("A session.update was rejected, so none of its settings applied — the session "
                f"kept its previous configuration ({_err_text(err)}).")
        if _mentions_turn_detection(update.event):
            state = {True: "on", False: "off", None: "as it was"}[td_on]
            text += (f" It was meant to change turn detection, which therefore stayed {state}.")
        if hint:
            text += " " + hint
        evidence = [ev_of(update, _keys(update.event))]
        if err_entry is not None:
            evidence.append(ev_of(err_entry, _err_text(err)))
        else:
            evidence.append(Evidence(update.t, "refused locally", _err_text(err)))
        found.add("rejected_update", text, evidence, order)

    def symptom(commit: _Entry | None, err: Mapping[str, Any], err_entry: _Entry,
                order: int) -> None:
        """A commit met an empty buffer: say why, from the buffer's history."""
        tail = [ev_of(commit, "manual commit")] if commit is not None else []
        tail.append(ev_of(err_entry, _err_text(err)) if err_entry.direction == "server"
                    else Evidence(err_entry.t, err_entry.type, "refused locally: "
                                  + _err_text(err)))
        appended_ms = buf.appended / 48.0
        if buf.vad_commits:
            last = buf.last_vad or {}
            message = explain_commit_empty(0.0, turn_detection=True, appended_ms=appended_ms,
                                           last_commit=last)
            found.add("vad_auto_commit", message, [*buf.vad_commits[-1], *tail], order)
        elif buf.appended == 0:
            message = explain_commit_empty(0.0, turn_detection=bool(td_on), appended_ms=0.0,
                                           last_commit=None if buf.boundary_kind == "start"
                                           else {"item_id": None},
                                           cleared=buf.boundary_kind == "clear")
            before = ([buf.boundary] if buf.boundary is not None
                      else [Evidence(entries[0].t if entries else None, "session start",
                                     "no input_audio_buffer.append since")])
            if buf.boundary_kind == "reconnect":
                message += (" The connection was re-opened since: the new server session's "
                            "buffer started empty, and audio appended before is gone.")
            if buf.refused_appends:
                message += (" Appends were attempted but refused locally, so they never "
                            "reached the server.")
            found.add("nothing_appended", message, [*before, *buf.refused_appends, *tail],
                      order)
        elif td_on and not buf.speech:
            message = explain_commit_empty(0.0, turn_detection=True, appended_ms=appended_ms)
            found.add("no_speech_detected", message, [
                Evidence(buf.first_append.t if buf.first_append else None,
                         "input_audio_buffer.append",
                         f"{appended_ms:.0f} ms appended since the last commit/clear, and no "
                         "input_audio_buffer.speech_started followed"), *tail], order)
        elif not td_on and appended_ms < 100:
            message = explain_commit_empty(appended_ms, turn_detection=False,
                                           appended_ms=appended_ms)
            found.add("too_little_audio", message, [
                Evidence(buf.first_append.t if buf.first_append else None,
                         "input_audio_buffer.append", f"only {appended_ms:.1f} ms appended"),
                *tail], order)

    for order, e in enumerate(entries):
        ev = e.event
        if e.direction == "client":
            eid = ev.get("event_id")
            refused = e.refused
            if e.type == "session.update":
                if refused is not None:
                    reject(e, refused, None, order)
                else:
                    pending_updates.append(e)
                    if isinstance(eid, str):
                        sent[eid] = e
            elif e.type == "input_audio_buffer.append":
                if refused is not None:
                    detail = "refused locally (never sent): " + _err_text(refused)
                    buf.refused_appends.append(ev_of(e, detail))
                    if refused.get("code") == "float32_audio":
                        f32_hits.append(ev_of(e, detail))
                    continue
                buf.appended += e.nbytes
                if buf.first_append is None:
                    buf.first_append = ev_of(e, f"{e.nbytes} bytes")
                if first_append is None:
                    first_append = buf.first_append
                if e.t is not None:
                    pacing.append((e.t, e.nbytes))
                if e.audio is not None and pcm24:
                    f32_checked += 1
                    if looks_like_float32(e.audio):
                        f32_hits.append(ev_of(e, f"{len(e.audio)} bytes that read as float32 "
                                              "samples in [-1, 1]"))
                    else:
                        pcm_chunks.append(e.audio)
            elif e.type == "input_audio_buffer.commit":
                if refused is not None:
                    if refused.get("code") == _COMMIT_EMPTY:
                        symptom(None, refused, e, order)
                elif isinstance(eid, str):
                    sent[eid] = e
            elif isinstance(eid, str) and refused is None:
                sent[eid] = e
            continue

        if e.direction != "server":
            continue
        if e.type == "session.created":
            if sessions:  # a new server session after a reconnect: its buffer starts empty
                buf = _Buffer(boundary=ev_of(e, "a new server session (reconnect): its input "
                                             "buffer started empty"), boundary_kind="reconnect")
            sessions += 1
        if e.type in ("session.created", "session.updated"):
            session = ev.get("session")
            if isinstance(session, Mapping):
                present, td = _turn_detection_of(session)
                if present:
                    td_on = td is not None
                pcm24 = _is_pcm24(_format_of(session))
            if e.type == "session.updated" and pending_updates:
                pending_updates.pop(0)
        elif e.type == "error":
            error = ev.get("error")
            err: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
            eid = err.get("event_id")
            source = sent.get(eid) if isinstance(eid, str) else None
            code = err.get("code")
            if source is None and code == _COMMIT_EMPTY:
                source = next((s for s in reversed(list(sent.values()))
                               if s.type == "input_audio_buffer.commit"), None)
            param = str(err.get("param") or "")
            if source is None and pending_updates and param and (
                    param.startswith("session")
                    or param.split(".")[0] in pending_updates[-1].event):
                source = pending_updates[-1]
            if source is not None and source.type == "session.update":
                if source in pending_updates:
                    pending_updates.remove(source)
                reject(source, err, e, order)
            elif code == _COMMIT_EMPTY:
                symptom(source, err, e, order)
        elif e.type == "input_audio_buffer.speech_started":
            buf.speech = True
            started[str(ev.get("item_id"))] = ev_of(
                e, f"audio_start_ms={ev.get('audio_start_ms')} (item {ev.get('item_id')})")
        elif e.type == "input_audio_buffer.speech_stopped":
            stopped[str(ev.get("item_id"))] = (ev_of(
                e, f"audio_end_ms={ev.get('audio_end_ms')} (item {ev.get('item_id')})"), ev)
        elif e.type == "input_audio_buffer.committed":
            item = str(ev.get("item_id"))
            if item in stopped:
                stop_ev, stop = stopped[item]
                chain = [x for x in (started.get(item), stop_ev) if x is not None]
                chain.append(ev_of(e, f"server VAD committed item {item}"))
                buf.vad_commits.append(chain)
                buf.last_vad = {"item_id": item, "by": "vad",
                                "audio_end_ms": stop.get("audio_end_ms")}
                buf.appended = 0
                buf.speech = False
            else:
                buf = _Buffer(boundary=ev_of(e, f"manual commit took the buffer (item {item})"),
                              boundary_kind="commit")
        elif e.type == "input_audio_buffer.cleared":
            buf = _Buffer(boundary=ev_of(e, "buffer cleared"), boundary_kind="clear")

    n_order = len(entries)
    if f32_hits and (len(f32_hits) >= max(1, 0.2 * f32_checked) or any(
            "refused locally" in h.detail for h in f32_hits)):
        sent_hits = [h for h in f32_hits if "refused locally" not in h.detail]
        text = hint_for("float32_audio") or ""
        if sent_hits:
            head = (f"{len(sent_hits)} of {f32_checked} appended chunks are float32 samples sent "
                    "as if they were PCM16: the server hears noise (its VAD finds no speech, or "
                    "speech where there is none, and transcripts are garbage). ")
        else:
            head = ("Float32 audio was refused locally, so it never reached the server (the "
                    "buffer stayed empty). ")
        shown = f32_hits if len(f32_hits) <= 4 else [*f32_hits[:3], f32_hits[-1]]
        found.add("float32_audio", head + text, shown, n_order)

    rate: RateFinding | None = pacing_rate(pacing) if pcm24 else None
    if rate is None and pcm_chunks:
        joined = b"".join(pcm_chunks)
        samples = np.frombuffer(joined[: len(joined) // 2 * 2], dtype="<i2")
        rate = voice_rate(samples)
    if rate is not None:
        if rate.direction == "high":
            guess = f"{rate.rate} Hz" if rate.rate else "44.1 or 48 kHz"
            what = (f"The appended audio looks like {guess} audio sent as 24 kHz PCM16: it plays "
                    "slowed down and too low, which throws VAD and transcription off.")
        else:
            guess = f"{rate.rate} Hz" if rate.rate else "8 or 16 kHz"
            what = (f"The appended audio looks like {guess} audio sent as 24 kHz PCM16: it plays "
                    "sped up and too high, which throws VAD and transcription off.")
        if rate.rate is not None:
            fix = hint_for("integer_below_min_value", "session.audio.input.format.rate", None,
                           {"session": {"audio": {"input": {"format": {"rate": rate.rate}}}}}
                           ) or ""
        else:
            fix = ("Keep the format {'type': 'audio/pcm', 'rate': 24000} and convert the audio "
                   "from its real rate instead — session.send_audio(samples, "
                   "sample_rate=REAL_RATE) resamples it for you (realtime_nb.audio.to_pcm16 "
                   "does the same offline).")
        anchor = first_append.t if first_append is not None else None
        found.add("wrong_sample_rate", f"{what} {fix}".strip(),
                  [Evidence(anchor, "input_audio_buffer.append", rate.detail)], n_order)
    return found.result()
