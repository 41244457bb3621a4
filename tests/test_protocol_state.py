"""The I/O-free session state machine, driven by scripted events (no sockets, no engines):
the input buffer and VAD turns, conversation items, responses, session config and expiry.

Speech is a loud tone and silence is zeros; a fake speech model turns each 32 ms frame into
probability 1.0 or 0.0, so VAD timings are exact (tests/state_fixtures.py). The WebRTC output
buffer, MCP and transcription detail have their own files (test_protocol_state_*.py).
"""

from __future__ import annotations

import pytest
from state_fixtures import (
    Clock,
    append,
    core,
    manual,
    run_response,
    silence,
    start_response,
    tone,
    types,
)

from realtime_nb.protocol import Reply


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


def test_audio_response_event_sequence_matches_the_service():
    c = core()
    manual(c)
    c.handle({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}})
    c.handle({"type": "response.create"})
    c.drain()
    run_response(c)
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
    run_response(c, audio_ms=1000)
    done = c.drain()[-1]["response"]
    assert done["status"] == "completed"
    assert done["usage"]["output_token_details"]["audio_tokens"] == 10
    assert done["output"][0]["content"][0]["transcript"] == "Hi there."


def test_text_modality_streams_text_deltas():
    c = core()
    manual(c)
    rid = start_response(c, output_modalities=["text"])
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
    rid = start_response(c)
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
    run_response(c, text="one two three four", audio_ms=1000)
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
    rid = start_response(c)
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
    run_response(c)
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
    run_response(c, audio_ms=1000)
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
