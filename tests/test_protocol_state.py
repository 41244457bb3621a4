"""The I/O-free session state machine, driven by scripted events (no sockets, no engines).

Speech is a loud tone and silence is zeros; a fake speech model turns each 32 ms frame into
probability 1.0 or 0.0, so VAD timings are exact.
"""

from __future__ import annotations

import base64

import pytest
from state_fixtures import FakeVad, silence, tone

from realtime_nb.protocol import Reply, SessionCore
from realtime_nb.vad import make_segmenter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def append(ms_bytes: bytes) -> dict:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(ms_bytes).decode()}


def core(**kw) -> SessionCore:
    kw.setdefault("clock", Clock())
    return SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter, **kw)


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def manual(c: SessionCore) -> None:
    c.handle({"type": "session.update", "session": {"type": "realtime",
                                                   "audio": {"input": {"turn_detection": None}}}})
    c.drain()


def test_session_created_carries_the_service_defaults():
    c = core()
    c.start()
    (ev,) = c.drain()
    s = ev["session"]
    assert ev["type"] == "session.created" and s["type"] == "realtime"
    assert s["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
        "silence_duration_ms": 200, "idle_timeout_ms": None, "create_response": True,
        "interrupt_response": True}
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["output_modalities"] == ["audio"] and s["expires_at"] > 0


def test_manual_commit_creates_a_user_item_and_a_transcription_job():
    c = core()
    manual(c)
    c.handle(append(tone(300)))
    assert c.drain() == []  # append has no reply
    c.handle({"type": "input_audio_buffer.commit", "event_id": "c1"})
    out = c.drain()
    assert types(out) == ["input_audio_buffer.committed", "conversation.item.added",
                          "conversation.item.done"]
    item = out[1]["item"]
    assert item["role"] == "user" and item["content"][0]["type"] == "input_audio"
    assert out[0]["item_id"] == item["id"] and out[0]["previous_item_id"] is None
    (job,) = c.take_jobs()
    assert job.kind == "transcribe" and len(job.payload["audio"]) == 300 * 48
    assert c.buffer.buffered_ms == 0


def test_commit_under_100ms_is_rejected_with_the_service_message_and_event_id():
    c = core()
    manual(c)
    c.handle(append(tone(50)))
    c.handle({"type": "input_audio_buffer.commit", "event_id": "commit_10"})
    (err,) = c.drain()
    assert err["type"] == "error"
    assert err["error"] == {
        "type": "invalid_request_error", "code": "input_audio_buffer_commit_empty",
        "message": "Error committing input audio buffer: buffer too small. Expected at least "
                   "100ms of audio, but buffer only has 50.00ms of audio.",
        "param": None, "event_id": "commit_10"}


def test_the_100ms_minimum_counts_since_the_last_commit_not_the_session():
    c = core()
    manual(c)
    c.handle(append(tone(200)))
    c.handle({"type": "input_audio_buffer.commit"})
    c.handle(append(tone(60)))
    c.handle({"type": "input_audio_buffer.commit"})
    out = c.drain()
    assert out[-1]["type"] == "error" and "60.00ms" in out[-1]["error"]["message"]


def test_clear_empties_the_buffer():
    c = core()
    manual(c)
    c.handle(append(tone(500)))
    c.handle({"type": "input_audio_buffer.clear"})
    c.handle({"type": "input_audio_buffer.commit"})
    out = c.drain()
    assert types(out) == ["input_audio_buffer.cleared", "error"]
    assert "0.00ms" in out[1]["error"]["message"]


def test_server_vad_turn_commits_at_speech_end_and_creates_a_response():
    c = core()
    c.handle(append(silence(500) + tone(1000) + silence(400)))
    out = c.drain()
    assert types(out)[:6] == [
        "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
        "response.created"]
    started, stopped, committed = out[0], out[1], out[2]
    # onset at the 500 ms mark (frame 15 starts at 480 ms), minus 300 ms of prefix padding
    assert started["audio_start_ms"] == 180
    # silence starts at 1500 ms (frame 47 at 1504 ms); the 200 ms window completes ~1696-1728 ms
    assert 1690 <= stopped["audio_end_ms"] <= 1760
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    kinds = [j.kind for j in c.take_jobs()]
    assert kinds == ["speculate", "transcribe", "respond"]


def test_transcription_is_speculated_at_the_pause_that_ends_the_turn():
    """At the first silent frame the turn so far is offered for early transcription; the commit's
    job names that speculation only when the turn really ended at that pause."""
    c = core()
    c.handle(append(tone(600) + silence(100) + tone(500) + silence(400)))
    jobs = c.take_jobs()
    specs = [j.payload["speculation"] for j in jobs if j.kind == "speculate"]
    (transcribe,) = [j for j in jobs if j.kind == "transcribe"]
    assert len(specs) == 2  # the 100 ms pause, then the real end
    assert transcribe.payload["speculation"] == specs[-1]
    spec_audio = next(j for j in jobs if j.kind == "speculate"
                      and j.payload["speculation"] == specs[-1]).payload["audio"]
    assert transcribe.payload["audio"].startswith(spec_audio)


def test_no_speculation_when_no_transcript_will_be_wanted():
    c = core()
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "create_response": False}}}}})
    c.handle(append(tone(600) + silence(400)))
    assert [j.kind for j in c.take_jobs()] == ["transcribe"]


def test_the_seed_failure_commit_after_vad_auto_commit_finds_an_empty_buffer():
    """Default session (server VAD on): speech then silence, then commit -> 0.00ms."""
    c = core()
    c.handle(append(tone(1000) + silence(600)))
    c.handle({"type": "input_audio_buffer.commit", "event_id": "evt_commit"})
    out = c.drain()
    assert "input_audio_buffer.committed" in types(out)
    err = out[-1]
    assert err["type"] == "error"
    assert err["error"]["code"] == "input_audio_buffer_commit_empty"
    assert err["error"]["message"].endswith("but buffer only has 0.00ms of audio.")
    assert err["error"]["event_id"] == "evt_commit"


def test_commit_during_speech_in_vad_mode_commits_the_turn_so_far():
    c = core()
    c.handle(append(tone(600)))
    c.handle({"type": "input_audio_buffer.commit"})
    out = c.drain()
    assert types(out)[:2] == ["input_audio_buffer.speech_started", "input_audio_buffer.committed"]


def _start_response(c: SessionCore, **response: object) -> str:
    """Send response.create (with ``response`` settings, if any), drop the events it caused,
    take the one job it queued and return that response's id."""
    c.handle({"type": "response.create", **({"response": response} if response else {})})
    c.drain()
    (job,) = c.take_jobs()
    return str(job.payload["response_id"])


def _run_response(c: SessionCore, text: str = "Hi there.", audio_ms: int = 400) -> str:
    (job,) = [j for j in c.take_jobs() if j.kind == "respond"]
    rid = job.payload["response_id"]
    c.response_output(rid, Reply(text=text))
    c.response_audio(rid, tone(audio_ms), text)
    c.response_finish(rid)
    return rid


def test_audio_response_event_sequence_matches_the_service():
    c = core()
    manual(c)
    c.handle({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}})
    c.handle({"type": "response.create"})
    c.drain()
    _run_response(c)
    seq = [t for t in types(c.drain()) if not t.endswith(".delta")]
    assert seq == [
        "response.output_item.added", "conversation.item.added", "response.content_part.added",
        "response.output_audio.done", "response.output_audio_transcript.done",
        "response.content_part.done", "response.output_item.done", "conversation.item.done",
        "response.done"]


def test_response_done_carries_usage_and_status():
    c = core()
    manual(c)
    c.handle({"type": "response.create"})
    c.drain()
    _run_response(c, audio_ms=1000)
    done = c.drain()[-1]["response"]
    assert done["status"] == "completed"
    assert done["usage"]["output_token_details"]["audio_tokens"] == 10
    assert done["output"][0]["content"][0]["transcript"] == "Hi there."


def test_text_modality_streams_text_deltas():
    c = core()
    manual(c)
    rid = _start_response(c, output_modalities=["text"])
    c.response_output(rid, Reply(text="one two three"))
    c.response_finish(rid)
    out = c.drain()
    deltas = [e["delta"] for e in out if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "one two three"
    assert next(e for e in out if e["type"] == "response.output_text.done")["text"] == (
        "one two three")


def test_second_response_while_active_is_rejected():
    c = core()
    manual(c)
    c.handle({"type": "response.create"})
    rid = c.active_response
    c.handle({"type": "response.create", "event_id": "r2"})
    err = c.drain()[-1]["error"]
    assert err["code"] == "conversation_already_has_active_response"
    assert rid in err["message"] and err["event_id"] == "r2"


def test_out_of_band_response_runs_beside_the_default_one():
    c = core()
    manual(c)
    c.handle({"type": "response.create"})
    c.handle({"type": "response.create", "response": {"conversation": "none",
                                                      "metadata": {"purpose": "summary"}}})
    out = c.drain()
    created = [e["response"] for e in out if e["type"] == "response.created"]
    assert len(created) == 2 and created[1]["conversation_id"] is None
    assert created[1]["metadata"] == {"purpose": "summary"}


def test_cancel_without_active_response_is_benign_error():
    c = core()
    c.handle({"type": "response.cancel"})
    assert c.drain()[0]["error"]["message"] == "Cancellation failed: no active response found"


def test_client_cancel_closes_open_item_and_reports_client_cancelled():
    c = core()
    manual(c)
    rid = _start_response(c)
    c.response_output(rid, Reply(text="A long answer."))
    c.response_audio(rid, tone(300), "A long")
    c.handle({"type": "response.cancel"})
    out = c.drain()
    done = out[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert not c.response_audio(rid, tone(100), "answer.")  # later audio is refused


def test_vad_speech_start_interrupts_the_active_response_with_turn_detected():
    c = core()
    c.handle(append(tone(500) + silence(400)))
    c.drain()
    c.take_jobs()
    assert c.active_response is not None
    c.handle(append(tone(300)))
    out = c.drain()
    done = next(e for e in out if e["type"] == "response.done")["response"]
    assert done["status_details"]["reason"] == "turn_detected"


def test_truncate_cuts_assistant_audio_and_rejects_beyond_its_length():
    c = core()
    manual(c)
    c.handle({"type": "response.create"})
    c.drain()
    _run_response(c, text="one two three four", audio_ms=1000)
    item_id = c.items[-1]["id"]
    c.drain()
    c.handle({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
              "audio_end_ms": 500})
    (ev,) = c.drain()
    assert ev == {**ev, "type": "conversation.item.truncated", "audio_end_ms": 500}
    assert c.items[-1]["content"][0]["transcript"] == "one two"
    c.handle({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
              "audio_end_ms": 900})
    assert c.drain()[0]["error"]["code"] == "item_truncate_invalid_audio_end_ms"


def test_items_create_with_previous_item_id_retrieve_and_delete():
    c = core()
    msg = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]}
    c.handle({"type": "conversation.item.create", "item": {**msg, "id": "item_a"}})
    c.handle({"type": "conversation.item.create", "item": {**msg, "id": "item_b"},
              "previous_item_id": "root"})
    assert [i["id"] for i in c.items] == ["item_b", "item_a"]
    c.drain()
    c.handle({"type": "conversation.item.create", "item": {**msg, "id": "item_c"},
              "previous_item_id": "item_b"})
    assert c.drain()[0]["previous_item_id"] == "item_b"
    c.handle({"type": "conversation.item.retrieve", "item_id": "item_c"})
    assert c.drain()[0]["item"]["id"] == "item_c"
    c.handle({"type": "conversation.item.delete", "item_id": "item_c"})
    (ev,) = c.drain()
    assert (ev["type"], ev["item_id"]) == ("conversation.item.deleted", "item_c")
    c.handle({"type": "conversation.item.delete", "item_id": "nope"})
    assert c.drain()[-1]["error"]["code"] == "item_not_found"


def test_function_call_output_needs_a_known_call_id():
    c = core()
    c.handle({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_x", "output": "{}"}})
    err = c.drain()[0]["error"]
    assert err["message"] == "Tool call ID 'call_x' not found in conversation."


def test_function_call_round_trip_events():
    c = core()
    manual(c)
    rid = _start_response(c)
    c.response_output(rid, Reply(function_calls=[("get_weather", '{"city": "Paris"}')]))
    c.response_finish(rid)
    out = c.drain()
    done = next(e for e in out if e["type"] == "response.function_call_arguments.done")
    assert done["name"] == "get_weather" and done["arguments"] == '{"city": "Paris"}'
    call_id = done["call_id"]
    c.handle({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": call_id, "output": '{"temp": 20}'}})
    assert types(c.drain()) == ["conversation.item.added", "conversation.item.done"]


def test_voice_is_locked_after_assistant_audio():
    c = core()
    manual(c)
    c.handle({"type": "response.create"})
    c.drain()
    _run_response(c)
    c.drain()
    c.handle({"type": "session.update", "session": {"type": "realtime",
                                                   "audio": {"output": {"voice": "echo"}}}})
    err = c.drain()[0]["error"]
    assert err["code"] == "cannot_update_voice"
    assert err["message"] == "Cannot update a conversation's voice if assistant audio is present."


def test_rejected_update_keeps_the_old_config():
    c = core()
    before = c.session_object()
    c.handle({"type": "session.update", "session": {"type": "realtime", "instructions": "x",
                                                   "temperature": 0.5}})
    assert c.drain()[0]["type"] == "error"
    assert c.session_object() == before


def test_partial_update_is_merged_and_echoed_in_full():
    c = core()
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}}})
    td = c.drain()[0]["session"]["audio"]["input"]["turn_detection"]
    assert td["silence_duration_ms"] == 800 and td["threshold"] == 0.5


def test_session_expires_with_the_service_error_and_close_1001():
    clock = Clock()
    c = core(clock=clock, max_duration_s=120)
    assert c.next_deadline() == clock.t + 120
    clock.t += 121
    c.tick()
    err = c.drain()[0]["error"]
    assert err["code"] == "session_expired"
    assert err["message"] == "Your session hit the maximum duration of 2 minutes."
    assert c.closed and c.close_code == 1001


def test_idle_timeout_triggers_a_commit_and_a_response():
    clock = Clock()
    c = core(clock=clock)
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}}}})
    c.handle({"type": "response.create"})
    c.drain()
    _run_response(c, audio_ms=1000)
    c.drain()
    assert c.next_deadline() == pytest.approx(clock.t + 6.0)
    clock.t += 6.1
    c.handle(append(silence(200)))
    c.tick()
    assert types(c.drain())[:2] == ["input_audio_buffer.timeout_triggered",
                                    "input_audio_buffer.committed"]


def test_transcription_session_commits_without_responses():
    c = core(kind="transcription")
    c.start()
    assert c.drain()[0]["session"]["type"] == "transcription"
    c.handle(append(tone(600) + silence(400)))
    out = types(c.drain())
    assert "input_audio_buffer.committed" in out and "response.created" not in out
    c.handle({"type": "response.create"})
    assert c.drain()[0]["type"] == "error"


def test_g711_input_is_counted_at_8_bytes_per_ms():
    c = core()
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "format": {"type": "audio/pcmu"}, "turn_detection": None}}}})
    c.handle(append(b"\xff" * 800))  # 100 ms of mu-law
    assert c.buffer.buffered_ms == 100


def test_switching_to_g711_under_server_vad_keeps_detecting_turns():
    """The VAD hears G.711 input resampled to 24 kHz: a change of the input format alone (turn
    detection left as it was) must rebuild that path, as a change of turn detection does."""
    from realtime_nb.audio import Audio, convert

    c = core()
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "format": {"type": "audio/pcmu"}}}}})
    c.drain()
    speech = Audio.from_pcm16(silence(300) + tone(600) + silence(800), 24000)
    c.handle(append(convert(speech, format="audio/pcmu")))
    out = types(c.drain())
    assert out[:3] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                       "input_audio_buffer.committed"]


# ---------------------------------------------------------------------- WebRTC output buffer
def _speak(c: SessionCore, text: str = "hi") -> str:
    c.handle({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    c.handle({"type": "response.create"})
    rid = c.active_response
    c.drain()
    c.take_jobs()
    c.response_output(rid, Reply(text="Hello there. Bye."))
    c.response_audio(rid, tone(400), "Hello there.")
    c.response_audio(rid, tone(300), "Bye.")
    return rid


def test_webrtc_response_audio_goes_to_the_track_not_into_events():
    c = core(transport="webrtc")
    manual(c)
    rid = _speak(c)
    out = c.drain()
    assert "response.output_audio.delta" not in types(out)
    assert types(out).count("output_audio_buffer.started") == 1
    started = next(e for e in out if e["type"] == "output_audio_buffer.started")
    assert started["response_id"] == rid
    assert types(out).index("response.content_part.added") < types(out).index(
        "output_audio_buffer.started")
    assert [(k, r, len(p)) for k, r, p in c.take_playout()] == [
        ("audio", rid, 400 * 48), ("audio", rid, 300 * 48)]
    c.playout_idle(rid)  # a gap while the response is still generating: not the end
    assert c.drain() == [] and c.playing == rid
    c.response_finish(rid)
    assert types(c.drain())[-1] == "response.done"
    c.playout_idle(rid)
    (stopped,) = c.drain()
    assert stopped == {"type": "output_audio_buffer.stopped", "event_id": stopped["event_id"],
                       "response_id": rid}
    assert c.playing is None
    c.handle({"type": "conversation.item.retrieve", "item_id": c.items[-1]["id"]})
    retrieved = c.drain()[0]["item"]["content"][0]
    assert len(base64.b64decode(retrieved["audio"])) == 700 * 48  # the item still has its audio


def test_output_audio_buffer_clear_is_webrtc_only_and_cuts_the_track():
    ws = core()
    ws.handle({"type": "output_audio_buffer.clear", "event_id": "x"})
    (err,) = ws.drain()
    assert err["error"]["code"] == "invalid_value" and err["error"]["event_id"] == "x"
    c = core(transport="webrtc")
    manual(c)
    rid = _speak(c)
    c.response_finish(rid)
    c.drain()
    c.take_playout()
    c.handle({"type": "output_audio_buffer.clear"})
    (cleared,) = c.drain()
    assert cleared["type"] == "output_audio_buffer.cleared" and cleared["response_id"] == rid
    assert c.take_playout() == [("clear", rid, b"")]
    c.playout_idle(rid)  # the track reports the (cut) audio gone: no stopped after a clear
    assert c.drain() == []


def test_webrtc_barge_in_cancels_then_clears_the_playing_reply():
    c = core(transport="webrtc")
    rid = _speak(c)
    c.drain()
    c.handle(append(tone(300)))
    seq = types(c.drain())
    assert seq.index("input_audio_buffer.speech_started") < seq.index("response.done") < (
        seq.index("output_audio_buffer.cleared"))
    assert c.take_playout()[-1] == ("clear", rid, b"")
    assert c.playing is None


def test_websocket_sessions_never_emit_output_audio_buffer_events():
    c = core()
    rid = _speak(c)
    c.response_finish(rid)
    c.handle(append(tone(300)))
    assert not [t for t in types(c.drain()) if t.startswith("output_audio_buffer.")]
    assert c.take_playout() == []


# ------------------------------------------------------------------ MCP tools

LISTED = [
    {"name": "add_numbers", "input_schema": {"type": "object"}, "description": "Add.",
     "annotations": {"read_only": True}},
    {"name": "erase_everything", "input_schema": {"type": "object"}, "description": None,
     "annotations": None},
]


def _mcp_core(**tool: object) -> tuple[SessionCore, str]:
    """A manual-mode core with one MCP server configured and listed; returns the listing id."""
    c = core()
    manual(c)
    c.handle({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp",
         **tool}]}})
    c.drain()
    [job] = c.take_jobs()
    assert job.kind == "mcp_list"
    c.mcp_list_done(job.payload["item_id"], tools=LISTED)
    c.drain()
    return c, job.payload["item_id"]


def _respond_with_call(c: SessionCore, args: str = '{"a": 1}') -> tuple[str, dict]:
    c.handle({"type": "response.create"})
    [job] = c.take_jobs()
    rid = job.payload["response_id"]
    c.response_output(rid, Reply(mcp_calls=[("calc", "add_numbers", args)]))
    c.response_finish(rid)
    return rid, job.payload["request"]


def test_an_mcp_tool_in_session_update_asks_for_a_listing_after_session_updated():
    c = core()
    manual(c)
    c.handle({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp",
         "authorization": "tok-1"}]}})
    events = c.drain()
    assert types(events) == ["session.updated", "conversation.item.added",
                             "mcp_list_tools.in_progress"]
    assert "authorization" not in events[0]["session"]["tools"][0]
    [job] = c.take_jobs()
    assert job.payload["server"]["authorization"] == "tok-1"  # the job needs it; echoes do not
    c.handle({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp",
         "authorization": "tok-1", "require_approval": "never"}]}})
    assert types(c.drain()) == ["session.updated"]  # same server: no new listing
    assert c.take_jobs() == []


def test_a_response_waits_for_a_running_listing_and_then_sees_the_listed_tools():
    c = core()
    manual(c)
    c.handle({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp",
         "allowed_tools": ["add_numbers"]}]}})
    [listing] = c.take_jobs()
    c.handle({"type": "response.create"})
    assert c.take_jobs() == []  # the responder waits for the listing
    c.mcp_list_done(listing.payload["item_id"], tools=LISTED)
    [respond] = c.take_jobs()
    assert respond.kind == "respond"
    assert respond.payload["request"]["tools"] == [
        {"type": "mcp", "server_label": "calc", "name": "add_numbers", "description": "Add.",
         "input_schema": {"type": "object"}, "annotations": {"read_only": True}}]
    listing_item = next(it for it in c.items if it["type"] == "mcp_list_tools")
    assert [t["name"] for t in listing_item["tools"]] == ["add_numbers"]


def test_a_failed_listing_explains_itself_and_leaves_no_tools():
    c = core()
    manual(c)
    c.handle({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp"}]}})
    c.drain()
    [job] = c.take_jobs()
    c.mcp_list_done(job.payload["item_id"], error="Could not reach MCP server 'calc'.")
    events = c.drain()
    assert types(events) == ["mcp_list_tools.failed", "error", "conversation.item.done"]
    assert events[1]["error"]["message"] == "Could not reach MCP server 'calc'."
    c.handle({"type": "response.create"})
    [respond] = c.take_jobs()
    assert respond.payload["request"]["tools"] == []
    c.response_failed(respond.payload["response_id"], "not needed")
    c.handle({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp"}]}})
    assert [j.kind for j in c.take_jobs()] == ["mcp_list"]  # the same config again retries


def test_an_mcp_call_without_approval_runs_inside_the_response_before_response_done():
    c, _ = _mcp_core(require_approval="never")
    rid, _ = _respond_with_call(c)
    kinds = types(c.drain())
    assert kinds[kinds.index("response.output_item.added"):] == [
        "response.output_item.added", "conversation.item.added",
        "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress"]  # and no response.done while the call runs
    [job] = c.take_jobs()
    assert job.kind == "mcp_call" and job.payload["name"] == "add_numbers"
    assert c.is_live(rid)
    c.mcp_call_done(job.payload["item_id"], output="3")
    tail = c.drain()
    assert types(tail) == ["response.mcp_call.completed", "response.output_item.done",
                           "conversation.item.done", "response.done"]
    assert tail[-1]["response"]["output"][0]["output"] == "3"


def test_approval_required_ends_the_response_at_the_request_and_approval_runs_the_call():
    c, _ = _mcp_core()  # require_approval left out: always
    _respond_with_call(c)
    events = c.drain()
    done = events[-1]
    assert done["type"] == "response.done" and not c.take_jobs()
    call, request = done["response"]["output"]
    assert call["approval_request_id"] == request["id"]
    c.handle({"type": "conversation.item.create", "item": {
        "type": "mcp_approval_response", "id": "appr_1", "approval_request_id": request["id"],
        "approve": True}})
    assert types(c.drain()) == ["conversation.item.added", "conversation.item.done",
                                "response.mcp_call.in_progress"]
    [job] = c.take_jobs()
    assert job.payload["item_id"] == call["id"]
    c.handle({"type": "response.create"})
    assert types(c.drain()) == ["response.created", "rate_limits.updated"]
    assert [j.kind for j in c.take_jobs()] == []  # a new response waits for the approved call
    c.mcp_call_done(call["id"], error={"type": "tool_execution_error", "message": "no"})
    events = c.drain()
    assert types(events)[:2] == ["response.mcp_call.failed", "conversation.item.done"]
    assert events[1]["item"]["error"] == {"type": "tool_execution_error", "message": "no"}
    [respond] = c.take_jobs()
    ran = next(it for it in respond.payload["request"]["conversation"] if it["id"] == call["id"])
    assert ran["error"]["message"] == "no"  # the responder sees the call's result


def test_approval_responses_must_name_an_unanswered_approval_request():
    c, listing = _mcp_core()
    _respond_with_call(c)
    request = c.drain()[-1]["response"]["output"][1]
    for target, code in [("item_nope", "item_not_found"), (listing, "item_not_found")]:
        c.handle({"type": "conversation.item.create", "event_id": "e1", "item": {
            "type": "mcp_approval_response", "id": f"a_{target}",
            "approval_request_id": target, "approve": True}})
        [err] = c.drain()
        assert (err["error"]["code"], err["error"]["event_id"]) == (code, "e1")
    answer = {"type": "mcp_approval_response", "approval_request_id": request["id"],
              "approve": False}
    c.handle({"type": "conversation.item.create", "item": {**answer, "id": "a1"}})
    c.drain()
    assert c.take_jobs() == []  # denied: nothing runs
    c.handle({"type": "conversation.item.create", "item": {**answer, "id": "a2"}})
    [err] = c.drain()
    assert err["error"]["code"] == "invalid_value"
    assert err["error"]["param"] == "item.approval_request_id"


def test_require_approval_never_filter_exempts_only_the_named_tools():
    c, _ = _mcp_core(require_approval={"never": {"tool_names": ["add_numbers"]}})
    _respond_with_call(c)
    assert [j.kind for j in c.take_jobs()] == ["mcp_call"]
    c2, _ = _mcp_core(require_approval={"never": {"read_only": False}})
    _respond_with_call(c2)
    assert c2.take_jobs() == []  # add_numbers is read-only: the filter does not match it


def test_a_session_starting_with_an_mcp_tool_lists_it_after_session_created():
    """A client secret or a call can bind a config with MCP tools: no session.update comes."""
    c = core(session_defaults={"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp"}]})
    c.start()
    assert types(c.drain()) == ["session.created", "conversation.item.added",
                                "mcp_list_tools.in_progress"]
    assert [j.kind for j in c.take_jobs()] == ["mcp_list"]
# ---------------------------------------------------------------------- transcription detail
LOGPROBS = "item.input_audio_transcription.logprobs"


def test_transcription_jobs_ask_for_logprobs_only_when_include_names_them():
    """...and only when transcription events will carry them (transcription on)."""
    c = core()
    manual(c)

    def commit_logprobs() -> bool:
        c.handle(append(tone(300)))
        c.handle({"type": "input_audio_buffer.commit"})
        return c.take_jobs()[0].payload["logprobs"]

    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "whisper-1"}}}}})
    assert commit_logprobs() is False
    c.handle({"type": "session.update", "session": {"type": "realtime", "include": [LOGPROBS]}})
    assert c.drain()[-1]["session"]["include"] == [LOGPROBS]
    assert commit_logprobs() is True
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": None}}}})
    assert commit_logprobs() is False


def test_transcription_events_carry_logprobs_only_when_given():
    """The core sends the ``logprobs`` field only when the owner passes it (``None`` is sent as
    null: asked for, but the engine has none); without it the events look as they always did."""
    c = core(kind="transcription")
    c.handle(append(tone(300)))
    c.handle({"type": "input_audio_buffer.commit"})
    item_id = c.take_jobs()[0].payload["item_id"]
    c.drain()
    lp = [{"token": " hi", "logprob": -0.1, "bytes": [32, 104, 105]}]
    c.transcription_delta(item_id, "hi", logprobs=lp)
    c.transcription_done(item_id, "hi", logprobs=lp)
    c.transcription_delta(item_id, "hi")
    c.transcription_done(item_id, "hi")
    c.transcription_done(item_id, "hi", logprobs=None)
    d1, c1, d2, c2, c3 = c.drain()
    assert d1["logprobs"] == lp and c1["logprobs"] == lp
    assert "logprobs" not in d2 and "logprobs" not in c2
    assert c3["logprobs"] is None


def test_speculation_carries_the_transcription_settings_it_must_match():
    """A speculative transcription is only reusable by a turn that wants the same model,
    language, prompt and logprobs: the job says which it ran with."""
    c = core()
    c.handle({"type": "session.update", "session": {"type": "realtime", "include": [LOGPROBS],
              "audio": {"input": {"transcription": {"model": "whisper-1", "prompt": "Shaun"}}}}})
    c.handle(append(tone(600) + silence(800)))
    spec = next(j for j in c.take_jobs() if j.kind == "speculate")
    assert spec.payload["config"]["prompt"] == "Shaun" and spec.payload["logprobs"] is True


class Negate:
    """A stand-in noise filter: flips every PCM16 sample's sign (same length, exact)."""

    def __init__(self, config: dict, fmt: dict) -> None:
        self.config, self.fmt = config, fmt

    def process(self, data: bytes) -> bytes:
        import numpy as np

        return (-np.frombuffer(data, "<i2")).astype("<i2").tobytes()


def _filters(made: list) -> object:
    def make(config: dict | None, fmt: dict) -> Negate:
        made.append(Negate(config, fmt))
        return made[-1]
    return make


def test_noise_filter_runs_on_appended_audio_before_it_is_committed_and_retrieved():
    made: list[Negate] = []
    c = core(noise_filter=_filters(made))
    assert c.noise_filter is None and made == []  # noise_reduction is null by default
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": {"type": "far_field"}, "turn_detection": None}}}})
    assert made[-1].config == {"type": "far_field", "strength": 1.0}
    audio = tone(300)
    c.handle(append(audio))
    c.handle({"type": "input_audio_buffer.commit"})
    (job,) = c.take_jobs()
    assert job.payload["audio"] == Negate({}, {}).process(audio)
    c.drain()
    c.handle({"type": "conversation.item.retrieve", "item_id": job.payload["item_id"]})
    retrieved = c.drain()[0]["item"]["content"][0]["audio"]
    assert base64.b64decode(retrieved) == Negate({}, {}).process(audio)


def test_noise_reduction_null_turns_the_filter_off_and_a_change_builds_a_new_one():
    made: list[Negate] = []
    c = core(noise_filter=_filters(made))
    nr = {"type": "near_field", "strength": 0.5}
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": nr, "turn_detection": None}}}})
    first = c.noise_filter
    assert first is made[-1] and first.config == nr
    c.handle({"type": "session.update", "session": {"type": "realtime", "instructions": "x"}})
    assert c.noise_filter is first  # unrelated updates keep the filter (and its state)
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": {"type": "far_field"}}}}})
    assert c.noise_filter is not first and c.noise_filter.config["type"] == "far_field"
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": None}}}})
    assert c.noise_filter is None
    audio = tone(200)
    c.handle(append(audio))
    c.handle({"type": "input_audio_buffer.commit"})
    assert c.take_jobs()[0].payload["audio"] == audio


def test_noise_filter_is_rebuilt_for_a_new_input_format():
    made: list[Negate] = []
    c = core(noise_filter=_filters(made))
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "noise_reduction": {"type": "near_field"}}}}})
    c.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "format": {"type": "audio/pcmu"}}}}})
    assert [m.fmt["type"] for m in made] == ["audio/pcm", "audio/pcmu"]
