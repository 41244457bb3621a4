"""The event timeline without a browser: transport, lanes, static exports.

Pins down: the kernel batches new log entries into at most 10 messages a second on the running
loop (none lost, in order) and flushes on demand without one; history goes out in chunks at
attach and on the browser's ``sync`` request; stats requests round-trip; lanes computed from a
real recorded session (VAD segments, collapsed delta floods, error marks with message and hint,
input-buffer level as the Session's mirror has it); the PNG and standalone HTML exports; the
lane facts (rows, seam, commit minimum, marker labels, ...) have one home, in Python, which the
browser receives rather than restates.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from timeline_fixtures import REAL_TRACE, synthetic_log
from widget_comm import RecordingComm, browser_msg, recording_comm

from realtime_nb.client.errors import RealtimeError
from realtime_nb.client.eventlog import EventLog, audio_ref
from realtime_nb.widgets._compact import compact_log
from realtime_nb.widgets._lanes import build_lanes
from realtime_nb.widgets.timeline import Timeline, timeline_html, timeline_png

TIMELINE_JS = Path(__file__).parents[1] / "realtime_nb" / "widgets" / "timeline.js"

__all__ = ["recording_comm"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")


def sent(tl: Timeline) -> list[dict[str, Any]]:
    """The custom messages the widget sent, in order."""
    comm = tl.comm
    assert isinstance(comm, RecordingComm)
    return [content for content, _ in comm.custom()]


def event_batches(tl: Timeline, *, sync: bool | None = None) -> list[list[dict[str, Any]]]:
    return [m["events"] for m in sent(tl) if m["type"] == "events"
            and (sync is None or bool(m.get("sync")) == sync)]


def seqs(batches: list[list[dict[str, Any]]]) -> list[int]:
    return [e["s"] for b in batches for e in b]


def add_append(log: EventLog, t: float, nbytes: int = 4800) -> None:
    log.add("client", {"type": "input_audio_buffer.append", "event_id": f"e{len(log)}",
                       "audio": audio_ref(nbytes, len(log))}, t=log.t0 + t)


def add(log: EventLog, d: str, t: float, **event: Any) -> None:
    log.add(d, event, t=log.t0 + t)


@pytest.fixture(scope="module")
def real() -> EventLog:
    return EventLog.from_jsonl(REAL_TRACE)


# ---------------------------------------------------------------------------- transport
def test_history_goes_out_at_attach_in_chunks_in_order() -> None:
    log = synthetic_log(4500)
    tl = Timeline(log)
    tl.chunk_size = 2000  # the default; set for clarity
    msgs = sent(tl)
    assert msgs[0] == {"type": "reset"}
    batches = event_batches(tl, sync=True)
    assert [len(b) for b in batches] == [2000, 2000, 500]
    assert seqs(batches) == list(range(4500))
    assert [m.get("final") for m in msgs[1:]] == [False, False, True]


def test_no_trait_holds_the_log() -> None:
    """Only settings (and the module's code) are synced; the events travel as messages."""
    def state(tl: Timeline) -> dict[str, Any]:
        return {k: v for k, v in tl.get_state().items() if k not in ("_uid", "layout")}

    assert state(Timeline(synthetic_log(3000))) == state(Timeline(EventLog()))


async def test_live_entries_go_out_at_most_10_times_a_second_none_lost() -> None:
    log = EventLog()
    tl = Timeline(log)
    comm = tl.comm
    assert isinstance(comm, RecordingComm)
    times: list[float] = []
    original = comm.send

    def timed(*args: Any, **kwargs: Any) -> None:
        times.append(time.monotonic())
        original(*args, **kwargs)

    comm.send = timed  # type: ignore[method-assign]
    before = len(sent(tl))
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 1.2:  # ~1 event per ms for 1.2 s
        add_append(log, time.monotonic() - log.t0)
        n += 1
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.25)  # the last timer fires
    live = [m for m in sent(tl)[before:] if m["type"] == "events"]
    assert sum(len(m["events"]) for m in live) == n
    assert seqs([m["events"] for m in live]) == list(range(n))
    custom_times = [t for t, (m, _) in zip(times, comm.messages[-len(times):], strict=True)
                    if m.get("method") == "custom"]
    gaps = [b - a for a, b in itertools.pairwise(custom_times)]
    assert len(live) <= 14, f"{len(live)} messages for 1.2 s"
    assert min(gaps) >= 0.095, f"messages {min(gaps) * 1000:.0f} ms apart"
    assert all(m["live"] for m in live) and tl.live


async def test_a_quiet_log_sends_a_lone_event_at_once() -> None:
    """The throttle delays only what follows a recent send: a first event is not held back."""
    log = EventLog()
    tl = Timeline(log)
    add_append(log, 0.1)
    await asyncio.sleep(0.01)
    assert seqs(event_batches(tl, sync=False)) == [0]


def test_without_a_loop_entries_wait_for_the_interval_or_flush() -> None:
    log = EventLog()
    tl = Timeline(log)
    add_append(log, 0.0)  # nothing sent recently: goes out at once
    add_append(log, 0.01)
    add_append(log, 0.02)  # within 100 ms of the last send: held back
    assert seqs(event_batches(tl, sync=False)) == [0]
    assert tl.flush() == 2
    assert seqs(event_batches(tl, sync=False)) == [0, 1, 2]
    assert tl.flush() == 0


def test_live_history_is_capped_and_nothing_unsent_is_lost() -> None:
    """An hour of events must not pile up in the kernel: beyond history_limit the oldest live
    entries go (all were sent already), and every entry still reaches the view once."""
    log = EventLog()
    tl = Timeline(log)
    tl.history_limit = 100
    for i in range(1000):
        add_append(log, i * 0.2)  # 200 ms apart in log time, flushed as they come
        if i % 7 == 0:
            tl.flush()
    tl.flush()
    assert seqs(event_batches(tl, sync=False)) == list(range(1000))
    assert len(tl.events) <= 100 and tl.events[-1]["s"] == 999


def test_sync_request_sends_the_asked_range_in_chunks() -> None:
    log = synthetic_log(5000)
    tl = Timeline(log)
    tl.chunk_size = 1000
    before = len(sent(tl))
    browser_msg(tl, {"type": "sync", "from": 1500, "to": 3800})
    reply = sent(tl)[before:]
    assert [len(m["events"]) for m in reply] == [1000, 1000, 300]
    assert seqs([m["events"] for m in reply]) == list(range(1500, 3800))
    assert all(m["sync"] for m in reply) and reply[-1]["final"] and reply[-1]["total"] == 5000


def test_sync_includes_entries_still_waiting_for_the_timer() -> None:
    log = EventLog()
    tl = Timeline(log)
    for i in range(5):
        add_append(log, i * 0.001)
    before = len(sent(tl))
    browser_msg(tl, {"type": "sync", "from": 0})
    assert seqs([m["events"] for m in sent(tl)[before:]]) == [0, 1, 2, 3, 4]
    assert tl.flush() == 0  # nothing is sent twice


def test_stats_request_round_trip() -> None:
    tl = Timeline(EventLog())
    got: list[dict[str, Any]] = []
    fut = tl.request_stats(got.append)
    assert sent(tl)[-1] == {"type": "stats"}
    assert not fut.done()
    browser_msg(tl, {"type": "stats", "count": 10, "updates": 3, "median_ms": 1.5})
    assert fut.result(timeout=0) == {"count": 10, "updates": 3, "median_ms": 1.5}
    assert got == [fut.result()] and tl.stats == fut.result()


def test_close_stops_listening_to_the_log() -> None:
    log = EventLog()
    tl = Timeline(log)
    assert tl._on_entry in log.listeners
    tl.close()
    assert log.listeners == []
    add_append(log, 0.0)  # no error, nothing sent


def test_closed_marker_ends_live_mode() -> None:
    log = EventLog()
    tl = Timeline(log)
    add_append(log, 0.0)
    assert tl.live
    log.marker("realtime_nb.closed")
    tl.flush()
    assert not tl.live and event_batches(tl)[-1][-1]["y"] == "realtime_nb.closed"


def test_from_jsonl_shows_the_whole_trace(real: EventLog) -> None:
    tl = Timeline.from_jsonl(REAL_TRACE)
    assert tl.window_s == 0 and tl.title == REAL_TRACE.name and not tl.live
    assert seqs(event_batches(tl, sync=True)) == list(range(len(real)))


def test_timeline_of_a_session_uses_its_event_log() -> None:
    class FakeSession:
        events = synthetic_log(10)

    assert Timeline(FakeSession()).log is FakeSession.events


# ---------------------------------------------------------------------------- compact events
def test_appends_carry_their_audio_ms_in_the_session_input_format() -> None:
    log = EventLog()
    add(log, "server", 0.0, type="session.created", session={
        "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"},
                                                "turn_detection": None}}})
    add_append(log, 0.1, nbytes=4800)
    ev = compact_log(log)
    assert ev[1]["ms"] == 600  # G.711: 8 bytes per ms
    assert ev[1]["b"] == [600, 600]


def test_long_strings_are_clipped_in_the_payload_not_in_the_log() -> None:
    log = EventLog()
    text = "x" * 5000
    add(log, "client", 0.0, type="session.update", session={"instructions": text})
    ev = compact_log(log)
    shown = ev[0]["p"]["session"]["instructions"]
    assert len(shown) < 700 and shown.endswith("(+4400 chars)")
    assert log[0].event["session"]["instructions"] == text


# ---------------------------------------------------------------------------- lanes
def test_vad_segments_span_speech_started_to_stopped(real: EventLog) -> None:
    lanes = build_lanes(compact_log(real))
    started = real.of_type("input_audio_buffer.speech_started")
    stopped = real.of_type("input_audio_buffer.speech_stopped")
    assert len(lanes.speech) == len(started) == len(stopped) == 2
    for seg, a, b in zip(lanes.speech, started, stopped, strict=True):
        assert seg.t0 == pytest.approx(a.t, abs=1e-4) and seg.t1 == pytest.approx(b.t, abs=1e-4)
        assert seg.audio_start_ms == a.event["audio_start_ms"]
        assert seg.audio_end_ms == b.event["audio_end_ms"]
        assert seg.item_id == a.event["item_id"]


def test_a_speech_start_without_stop_stays_open_until_the_next_start() -> None:
    log = EventLog()
    add(log, "server", 1.0, type="input_audio_buffer.speech_started", audio_start_ms=500,
        item_id="a")
    add(log, "server", 3.0, type="input_audio_buffer.speech_started", audio_start_ms=2500,
        item_id="b")
    lanes = build_lanes(compact_log(log))
    assert [(s.t0, s.t1) for s in lanes.speech] == [(1.0, 3.0), (3.0, None)]


def test_delta_floods_collapse_into_one_mark_per_type_and_bin() -> None:
    log = EventLog()
    for i in range(37):  # 37 audio deltas interleaved with transcript deltas, in 0.37 s
        add(log, "server", 1.0 + i * 0.01, type="response.output_audio.delta", response_id="r",
            delta=audio_ref(4800, i))
        add(log, "server", 1.0 + i * 0.01 + 0.001, type="response.output_audio_transcript.delta",
            response_id="r", delta="w")
    add(log, "server", 1.6, type="response.output_audio.delta", response_id="r",
        delta=audio_ref(4800, 99))  # next bin
    ev = compact_log(log)
    marks = build_lanes(ev, bin_s=0.5).marks["s"]
    assert [(m.type.rsplit(".", 2)[-2], m.count) for m in marks] == [
        ("output_audio", 37), ("output_audio_transcript", 37), ("output_audio", 1)]
    assert marks[0].seq0 == 0 and marks[0].seq1 == 72
    assert len(build_lanes(ev, bin_s=None).marks["s"]) == 75  # no bin: every event shown


def test_errors_never_merge_with_their_neighbours() -> None:
    log = EventLog()
    for i in range(3):
        add(log, "client", 1.0 + i * 0.01, type="input_audio_buffer.commit", event_id=f"c{i}")
    log.add("client", {"type": "input_audio_buffer.commit", "event_id": "bad"},
            refused=RealtimeError("input_audio_buffer_commit_empty", "too small",
                                  source="client", hint="append first"), t=log.t0 + 1.05)
    marks = build_lanes(compact_log(log), bin_s=1.0).marks["c"]
    assert [(m.count, m.error is not None) for m in marks] == [(3, False), (1, True)]


def test_error_marks_carry_message_and_hint(real: EventLog) -> None:
    lanes = build_lanes(compact_log(real))
    by_kind = [(e.type, e.code, e.refused) for e in lanes.errors]
    assert by_kind == [
        ("input_audio_buffer.commit", "input_audio_buffer_commit_empty", True),
        ("error", "input_audio_buffer_commit_empty", False),
        ("error", "response_cancel_not_active", False),
        ("session.update", "unknown_parameter", True),
        ("input_audio_buffer.commit", "input_audio_buffer_commit_empty", True),
    ]
    refused, server = lanes.errors[0], lanes.errors[1]
    assert refused.message.startswith("Error committing input audio buffer")
    assert refused.hint == real[refused.seq].refused.hint  # the Session's own hint
    # A server error carries no hint in the log: the timeline explains it like the Session.
    assert server.message == real[server.seq].event["error"]["message"]
    assert server.hint and "Server VAD already committed" in server.hint
    assert "beta" in (lanes.errors[3].hint or "")


def test_failed_responses_and_transcriptions_are_errors() -> None:
    log = EventLog()
    add(log, "server", 1.0, type="conversation.item.input_audio_transcription.failed",
        item_id="i", error={"code": "audio_unintelligible", "message": "Could not transcribe."})
    add(log, "server", 2.0, type="response.done", response={
        "id": "r", "status": "failed", "status_details": {"error": {
            "code": "insufficient_quota", "message": "You exceeded your current quota."}}})
    errors = build_lanes(compact_log(log)).errors
    assert [(e.code, e.message) for e in errors] == [
        ("audio_unintelligible", "Could not transcribe."),
        ("insufficient_quota", "You exceeded your current quota.")]


def test_response_spans_count_deltas_from_first_audio_to_done(real: EventLog) -> None:
    lanes = build_lanes(compact_log(real))
    assert len(lanes.responses) == len(real.of_type("response.created"))
    for span in lanes.responses:
        deltas = [e for e in real.of_type("response.output_audio.delta")
                  if e.event["response_id"] == span.id]
        done = next(e for e in real.of_type("response.done")
                    if e.event["response"]["id"] == span.id)
        assert span.deltas == len(deltas) > 0
        assert span.t_audio == pytest.approx(deltas[0].t, abs=1e-4)
        assert span.t_done == pytest.approx(done.t, abs=1e-4)
        nbytes = sum(int(re.search(r"<audio (\d+)", e.event["delta"]).group(1))  # type: ignore[union-attr]
                     for e in deltas)
        assert span.audio_ms == pytest.approx(nbytes / 48, abs=0.1)
        assert span.status == "completed"


def test_buffer_level_resets_at_commit_and_clear(real: EventLog) -> None:
    ev = compact_log(real)
    after = {e["y"]: e["b"] for e in ev if "b" in e and e["d"] == "s"
             and e["y"] in ("input_audio_buffer.committed", "input_audio_buffer.cleared")}
    assert after["input_audio_buffer.committed"][0] == 0
    assert after["input_audio_buffer.cleared"] == [0, 0]
    # push-to-talk part of the trace: 50 ms appended → the local refusal said 50 ms as well
    refused = [e for e in ev if e.get("x", {}).get("refused")][-1]
    level_before = next(e["b"] for e in reversed(ev[:ev.index(refused)]) if "b" in e)
    assert level_before[0] == pytest.approx(50.0)
    assert "50.00ms" in refused["x"]["message"]


async def test_buffer_level_matches_the_session_mirror_live() -> None:
    """Against a real local server: after each step the timeline's level is the Session's."""
    from realtime_nb import Session
    from realtime_nb.server import LocalServer

    warnings.simplefilter("ignore")
    async with LocalServer(port=0) as srv, Session(url=srv.url) as s:
        tl = Timeline(s)
        await s.update(turn_detection=None)

        def level() -> float:
            return next(e["b"][0] for e in reversed(tl.events) if "b" in e)

        await s.send_audio(b"\1\0" * 24 * 340)
        await asyncio.sleep(0.05)
        assert level() == pytest.approx(s.input_buffer_ms) == pytest.approx(340)
        await s.commit(wait=True)
        await s.send_audio(b"\1\0" * 24 * 120)
        await asyncio.sleep(0.05)
        assert level() == pytest.approx(s.input_buffer_ms) == pytest.approx(120)
        await s.clear(wait=True)
        await asyncio.sleep(0.05)
        assert level() == pytest.approx(s.input_buffer_ms) == 0
        await asyncio.sleep(0.15)
        # what was logged before the widget went out as history, the rest live, all of it
        history, live = seqs(event_batches(tl, sync=True)), seqs(event_batches(tl, sync=False))
        assert live and history + live == list(range(len(s.events)))


# ---------------------------------------------------------------------------- exports
def test_png_export_has_the_asked_size_and_marks_errors(tmp_path, real: EventLog) -> None:
    from PIL import Image

    path = timeline_png(real, tmp_path / "t.png", width=10, height=7, dpi=80)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data)).convert("RGB")
    assert img.size == (800, 560)
    px = np.asarray(img).reshape(-1, 3).astype(int)
    red = int(np.sum((px[:, 0] > 190) & (px[:, 1] < 80) & (px[:, 2] < 80)))
    assert red > 200, "the errors are not drawn in red"
    assert len(np.unique(px, axis=0)) > 50, "the image is nearly blank"


def test_png_default_height_grows_with_the_error_list(tmp_path, real: EventLog) -> None:
    from PIL import Image

    quiet = [e for e in real if e.refused is None and e.type != "error"]
    h_quiet = Image.open(timeline_png(quiet, tmp_path / "q.png", dpi=50)).size[1]
    h_errors = Image.open(timeline_png(real, tmp_path / "e.png", dpi=50)).size[1]
    assert h_errors > h_quiet


def test_html_export_embeds_events_and_drawing_code_offline(tmp_path, real: EventLog) -> None:
    path = timeline_html(real, tmp_path / "t.html")
    page = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="rtnb-timeline-events">(.*?)</script>',
                  page, re.S)
    assert m is not None
    assert json.loads(m.group(1)) == json.loads(json.dumps(compact_log(real)))
    code = TIMELINE_JS.read_text(encoding="utf-8")
    assert code.replace("</script", "<\\/script") in page
    outside_data = page.replace(m.group(0), "")
    assert not re.search(r"https?://|<link|<script[^>]+src=|@import", outside_data)


def test_html_export_cannot_be_broken_out_of_by_event_text(tmp_path) -> None:
    log = EventLog()
    add(log, "server", 0.1, type="response.output_audio_transcript.done",
        transcript="</script><script>alert(1)</script>")
    page = timeline_html(log, tmp_path / "x.html").read_text(encoding="utf-8")
    assert "</script><script>alert(1)" not in page


def test_widget_exports_what_it_shows(tmp_path, real: EventLog) -> None:
    tl = Timeline(real)
    page = tl.to_html(tmp_path / "w.html").read_text(encoding="utf-8")
    assert page == timeline_html(real, tmp_path / "w.html").read_text(encoding="utf-8")
    assert tl.to_png(tmp_path / "w.png", dpi=40).read_bytes()[:4] == b"\x89PNG"


def test_exports_of_an_empty_log(tmp_path) -> None:
    assert timeline_png(EventLog(), tmp_path / "e.png", dpi=40).stat().st_size > 1000
    assert '"rtnb-timeline-events">[]<' in timeline_html(EventLog(), tmp_path / "e.html") \
        .read_text(encoding="utf-8")


def test_mcp_events_are_drawn_as_tools_not_other() -> None:
    from realtime_nb.protocol.events import SERVER_EVENTS
    from realtime_nb.widgets._lanes import CATEGORIES, category_of

    mcp = [t for t in SERVER_EVENTS if "mcp" in t]
    assert len(mcp) == 8
    assert {category_of(t) for t in mcp} == {"tools"}
    assert CATEGORIES["tools"]["label"] == "MCP tools"


# ------------------------------------------------------------------ one home for lane facts
def test_the_browser_gets_the_lane_facts_from_python() -> None:
    """Rows, output-audio types, seam and speech-ending markers, the commit minimum and the bin
    width travel as the ``_lane_rules`` trait (and in the HTML export's state), as the categories
    do: the JS reads them instead of keeping its own copy."""
    from realtime_nb.protocol import COMMIT_MIN_MS
    from realtime_nb.widgets._lanes import CATEGORIES, LANE_ROWS, drawing_rules, row_of

    rules = Timeline(EventLog()).get_state()["_lane_rules"]
    assert rules == drawing_rules()
    assert rules["lane_rows"] == LANE_ROWS
    assert rules["rows"] == {d: {k: row_of(d, k) for k in CATEGORIES} for d in LANE_ROWS}
    assert rules["commit_min_ms"] == COMMIT_MIN_MS
    assert "response.output_audio.delta" in rules["out_audio"]
    assert rules["seam"] in rules["ends_speech"]


def test_the_html_export_carries_the_same_lane_facts(tmp_path) -> None:
    from realtime_nb.widgets._lanes import CATEGORIES, drawing_rules

    page = timeline_html(EventLog(), tmp_path / "r.html").read_text(encoding="utf-8")
    m = re.search(r'id="rtnb-timeline-state">(.*?)</script>', page, re.S)
    assert m is not None
    state = json.loads(m.group(1))
    assert state["_lane_rules"] == json.loads(json.dumps(drawing_rules()))
    assert state["_categories"] == CATEGORIES


def test_timeline_js_restates_no_lane_fact() -> None:
    """The facts of ``drawing_rules`` and the category colours appear in timeline.js nowhere:
    a second copy there could drift from _lanes without any test noticing until a browser run."""
    from realtime_nb.widgets._lanes import CATEGORIES, drawing_rules

    code = TIMELINE_JS.read_text(encoding="utf-8")
    rules = drawing_rules()
    literals = [*rules["out_audio"], *rules["ends_speech"], rules["seam_color"],
                *(c["color"] for c in CATEGORIES.values())]
    assert [lit for lit in literals if lit in code] == []


def test_local_markers_carry_the_label_drawn_beside_them() -> None:
    """The label is worked out once, in Python, for the widget and the PNG alike."""
    log = EventLog()
    add(log, "local", 0.1, type="realtime_nb.connected", session_id="sess_a")
    add(log, "local", 5.0, type="realtime_nb.renewed", old_session_id="sess_0123456789abcdef",
        new_session_id="sess_new")
    assert [e["lb"] for e in compact_log(log)] == [
        "connected", "renewed sess_0123456… → sess_new"]
    events = compact_log(synthetic_log(50))
    assert {"lb" in e for e in events if e["d"] == "l"} == {True}
    assert {"lb" in e for e in events if e["d"] != "l"} == {False}
