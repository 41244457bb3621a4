"""The kernel-side mirror agrees with the server's own state machine, event by event.

The server here is a bare :class:`SessionCore` (loudness VAD, no sockets): every client event is
given to both the core and the mirror, the core's server events are fed to the mirror, and the
mirror's buffer, VAD state, items and recordings must equal the core's.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime_nb.client.eventlog import EventLog
from realtime_nb.client.mirror import Mirror
from realtime_nb.client.testing import tone_pcm16
from realtime_nb.protocol import Reply, SessionCore
from realtime_nb.vad import EnergyVAD, make_segmenter


def silence(ms: float) -> bytes:
    return b"\0\0" * int(ms * 24)


class Pair:
    """A SessionCore (the server) and a Mirror (the client) driven in lockstep."""

    def __init__(self, vad: bool = True) -> None:
        self.core = SessionCore(vad_model=EnergyVAD(), make_segmenter=make_segmenter)
        self.mirror = Mirror()
        self.log = EventLog()
        self.held: list[dict] = []
        self.n = 0
        self.core.start()
        self.deliver()
        if not vad:
            self.client({"type": "session.update",
                         "session": {"type": "realtime", "audio": {"input": {
                             "turn_detection": None}}}})

    def client(self, ev: dict, hold: bool = False) -> None:
        if ev["type"] == "input_audio_buffer.append":
            self.mirror.client_append(base64.b64decode(ev["audio"]))
        else:
            self.mirror.client_event(ev)
        self.core.handle(ev)
        if not hold:
            self.deliver()
        else:
            self.held.extend(self.core.drain())

    def append(self, data: bytes, hold: bool = False) -> None:
        self.client({"type": "input_audio_buffer.append",
                     "audio": base64.b64encode(data).decode()}, hold)

    def deliver(self) -> None:
        events = self.held + self.core.drain()
        self.held = []
        for ev in events:
            view, refs = self.log.elide(ev)
            if ev["type"] == "response.output_audio.delta":
                self.mirror.audio_delta(view, self.log.audio.get(refs[0]))
            else:
                self.mirror.server_event(view)

    def run_jobs(self, text: str = "Sure. Here you go.", transcript: str = "hello") -> None:
        for job in self.core.take_jobs():
            if job.kind == "transcribe":
                self.core.transcription_done(job.payload["item_id"], transcript,
                                             emit=job.payload["emit"])
            else:
                rid = job.payload["response_id"]
                self.core.response_output(rid, Reply(text=text))
                if "audio" in job.payload["request"]["output_modalities"]:
                    self.core.response_audio(rid, tone_pcm16(250), text)
                self.core.response_finish(rid)
        self.deliver()

    def check(self) -> None:
        assert self.mirror.input_buffer_ms == pytest.approx(self.core.buffer.buffered_ms)
        assert self.mirror.speaking == self.core.buffer.speaking


def test_manual_mode_buffer_counts_every_append_until_commit() -> None:
    p = Pair(vad=False)
    for ms in (40, 30, 50):
        p.append(tone_pcm16(ms))
        p.check()
    assert p.mirror.input_buffer_ms == pytest.approx(120)
    p.client({"type": "input_audio_buffer.commit"})
    p.check()
    assert p.mirror.input_buffer_ms == 0


def test_manual_commit_maps_the_appended_audio_to_the_committed_item() -> None:
    p = Pair(vad=False)
    audio = tone_pcm16(150) + silence(50)
    p.append(audio[:4800])
    p.append(audio[4800:])
    p.client({"type": "input_audio_buffer.commit"})
    item_id = p.mirror.last_commit["item_id"]
    assert p.mirror.items[item_id].audio_bytes == audio == p.core.item_audio[item_id]
    assert p.mirror.last_commit["by"] == "client"


def test_clear_empties_the_buffer_and_drops_the_recording() -> None:
    p = Pair(vad=False)
    p.append(tone_pcm16(200))
    p.client({"type": "input_audio_buffer.clear"})
    p.check()
    p.append(tone_pcm16(120))
    p.client({"type": "input_audio_buffer.commit"})
    item_id = p.mirror.last_commit["item_id"]
    assert p.mirror.items[item_id].audio_bytes == p.core.item_audio[item_id]
    assert len(p.core.item_audio[item_id]) == 120 * 48


def test_vad_turn_is_buffered_while_speaking_and_committed_at_speech_end() -> None:
    p = Pair(vad=True)
    chunks = [silence(500), tone_pcm16(400), tone_pcm16(400), silence(600)]
    seen_speaking = False
    for c in chunks:
        for i in range(0, len(c), 2400):  # 50 ms appends
            p.append(c[i:i + 2400])
            p.check()
            seen_speaking |= p.mirror.speaking
    assert seen_speaking
    commit = p.mirror.last_commit
    assert commit is not None and commit["by"] == "vad"
    item_id = commit["item_id"]
    assert p.mirror.items[item_id].audio_bytes == p.core.item_audio[item_id]
    assert p.mirror.input_buffer_ms == 0


def test_vad_mirror_catches_up_when_server_events_arrive_late() -> None:
    """Appends count at send time, VAD events when they arrive: once in, both agree."""
    p = Pair(vad=True)
    audio = silence(400) + tone_pcm16(600) + silence(700)
    for i in range(0, len(audio), 4800):
        p.append(audio[i:i + 4800], hold=True)
    p.deliver()
    p.check()
    item_id = p.mirror.last_commit["item_id"]
    assert p.mirror.items[item_id].audio_bytes == p.core.item_audio[item_id]


def test_manual_commit_in_vad_mode_while_speaking_commits_the_turn_so_far() -> None:
    p = Pair(vad=True)
    p.append(silence(300))
    p.append(tone_pcm16(500))
    assert p.mirror.speaking
    p.client({"type": "input_audio_buffer.commit"})
    p.check()
    item_id = p.mirror.last_commit["item_id"]
    assert p.mirror.items[item_id].audio_bytes == p.core.item_audio[item_id]


def test_turn_detection_off_counts_from_the_update_not_from_its_echo() -> None:
    """update(turn_detection=None) then audio then commit, before any echo arrives: the server
    applied the update first, so the audio is buffered — and the mirror must say so."""
    p = Pair(vad=True)
    p.client({"type": "session.update", "event_id": "u1", "session": {
        "type": "realtime", "audio": {"input": {"turn_detection": None}}}}, hold=True)
    p.append(silence(300), hold=True)
    assert p.mirror.input_buffer_ms == pytest.approx(300)
    p.deliver()
    p.check()


def test_failed_commit_leaves_no_pending_commit_behind() -> None:
    p = Pair(vad=False)
    p.append(tone_pcm16(50))
    p.client({"type": "input_audio_buffer.commit", "event_id": "c1"})
    assert p.core.outbox == [] and not p.mirror._pending_ops
    p.append(tone_pcm16(100))
    p.client({"type": "input_audio_buffer.commit", "event_id": "c2"})
    p.check()
    item_id = p.mirror.last_commit["item_id"]
    assert p.mirror.items[item_id].audio_bytes == p.core.item_audio[item_id]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vad=st.booleans(), ops=st.lists(st.one_of(
    st.tuples(st.just("tone"), st.integers(10, 400)),
    st.tuples(st.just("silence"), st.integers(10, 600)),
    st.tuples(st.just("commit"), st.just(0)),
    st.tuples(st.just("clear"), st.just(0)),
    st.tuples(st.just("toggle"), st.just(0)),
), max_size=14), hold=st.booleans())
def test_mirror_buffer_and_recordings_equal_the_server_for_any_sequence(vad, ops, hold
                                                                         ) -> None:
    """Random appends, commits, clears and turn-detection toggles; with ``hold`` the server's
    events reach the mirror only at the end (a lagging connection)."""
    p = Pair(vad=vad)
    td_on = vad
    for op, ms in ops:
        p.n += 1
        if op == "tone":
            p.append(tone_pcm16(ms), hold)
        elif op == "silence":
            p.append(silence(ms), hold)
        elif op == "toggle":
            if hold:
                continue  # VAD toggles race with lagging VAD events; see the test above
            td_on = not td_on
            p.client({"type": "session.update", "event_id": f"e{p.n}", "session": {
                "type": "realtime", "audio": {"input": {
                    "turn_detection": {"type": "server_vad"} if td_on else None}}}}, hold)
        else:
            p.client({"type": f"input_audio_buffer.{op}", "event_id": f"e{p.n}"}, hold)
        if not hold:
            p.check()
    p.deliver()
    p.check()
    for item_id, audio in p.core.item_audio.items():
        assert p.mirror.all_items[item_id].audio_bytes == audio


def test_text_turn_items_responses_and_usage_follow_the_server() -> None:
    p = Pair(vad=False)
    p.client({"type": "conversation.item.create", "item": {
        "id": "item_u1", "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "hi"}]}})
    p.client({"type": "response.create", "response": {"output_modalities": ["text"]}})
    rs = p.mirror.active_response
    assert rs is not None and not rs.done
    p.run_jobs(text="Hello there.")
    assert p.mirror.active_response is None
    assert rs.done and rs.status == "completed" and rs.text == "Hello there."
    assert [i.role for i in p.mirror.items.list()] == ["user", "assistant"]
    assert p.mirror.items["item_u1"].text == "hi"
    assert p.mirror.usage["total_tokens"] == rs.usage["total_tokens"] > 0
    assert set(p.mirror.rate_limits) == {"requests", "tokens"}


def test_usage_totals_sum_every_response_done() -> None:
    p = Pair(vad=False)
    totals = 0
    for text in ("one", "two"):
        p.client({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text",
                                                            "text": text}]}})
        p.client({"type": "response.create", "response": {"output_modalities": ["text"]}})
        p.run_jobs(text=f"Answer {text}.")
        totals += list(p.mirror.responses.values())[-1].usage["total_tokens"]
    assert p.mirror.usage["total_tokens"] == totals


def test_response_audio_accumulates_per_assistant_item() -> None:
    p = Pair(vad=False)
    p.client({"type": "response.create"})
    p.run_jobs(text="Spoken answer.")
    rs = next(iter(p.mirror.responses.values()))
    item = rs.output[0]
    assert item.audio_bytes == p.core.item_audio[item.id]
    assert item.transcript == "Spoken answer."
    audio = rs.audio()
    assert audio.sample_rate == 24000 and abs(audio.duration_ms - 250) < 1


def test_input_transcription_lands_on_the_user_item() -> None:
    p = Pair(vad=False)
    p.client({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "whisper-1"}}}}})
    p.append(tone_pcm16(300))
    p.client({"type": "input_audio_buffer.commit"})
    p.run_jobs(transcript="what a tone")
    item = p.mirror.items[p.mirror.last_commit["item_id"]]
    assert item.transcript == "what a tone" and item.transcript_done
    assert p.mirror.transcripts()[item.id] == "what a tone"


def test_deleted_and_truncated_items_are_reflected() -> None:
    p = Pair(vad=False)
    p.client({"type": "response.create"})
    p.run_jobs(text="Spoken answer.")
    item_id = p.mirror.items.last.id
    p.client({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
              "audio_end_ms": 100})
    item = p.mirror.items[item_id]
    assert item.truncated_ms == 100
    # What the server keeps (and the user heard) is the first 100 ms; the rest stays at hand.
    assert item.audio().duration_ms == 100 and item.audio_bytes[:4800] == item.kept_bytes()
    assert item.audio(untruncated=True).duration_ms == item.duration_ms > 100
    rs = p.mirror.responses[item.response_id]
    assert rs.audio().duration_ms == 100
    p.client({"type": "conversation.item.delete", "item_id": item_id})
    assert item_id not in p.mirror.items
    assert p.mirror.all_items[item_id].deleted


def test_items_keep_server_order_with_previous_item_id() -> None:
    p = Pair(vad=False)
    for i in ("a", "b"):
        p.client({"type": "conversation.item.create", "item": {
            "id": f"item_{i}", "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": i}]}})
    p.client({"type": "conversation.item.create", "previous_item_id": "item_a", "item": {
        "id": "item_c", "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "c"}]}})
    assert list(p.mirror.items) == [i["id"] for i in p.core.items] == [
        "item_a", "item_c", "item_b"]


def test_session_config_is_the_last_echo() -> None:
    p = Pair(vad=True)
    p.client({"type": "session.update", "session": {"type": "realtime",
                                                     "instructions": "Be terse."}})
    assert p.mirror.config["instructions"] == "Be terse."
    assert p.mirror.config == p.core.session_object()


def test_created_item_audio_is_kept_as_the_items_recording() -> None:
    p = Pair(vad=False)
    audio = tone_pcm16(200)
    ev = {"type": "conversation.item.create", "item": {
        "id": "item_au", "type": "message", "role": "user",
        "content": [{"type": "input_audio", "audio": base64.b64encode(audio).decode()}]}}
    p.mirror.client_event({"type": ev["type"], "item": {"id": "item_au", "content": [
        {"audio": audio}]}})
    p.core.handle(ev)
    p.deliver()
    assert p.mirror.items["item_au"].audio_bytes == audio
    assert np.array_equal(p.mirror.items["item_au"].audio().samples,
                          np.frombuffer(audio, "<i2"))


def test_mirror_follows_mcp_listing_calls_and_approvals_as_the_core_makes_them() -> None:
    p = Pair(vad=False)
    p.client({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp"}]}})
    [listing] = p.core.take_jobs()
    item_id = listing.payload["item_id"]
    assert p.mirror.items[item_id].mcp_state == "in_progress"
    p.core.mcp_list_done(item_id, tools=[{"name": "add_numbers", "input_schema": {},
                                          "description": None, "annotations": None}])
    p.deliver()
    listed = p.mirror.items[item_id]
    assert (listed.type, listed.server_label, listed.mcp_state) == (
        "mcp_list_tools", "calc", "completed")
    assert [t["name"] for t in listed.tools] == ["add_numbers"]

    p.client({"type": "response.create"})
    [job] = p.core.take_jobs()
    rid = job.payload["response_id"]
    p.core.response_output(rid, Reply(mcp_calls=[("calc", "add_numbers", '{"a": 1, "b": 2}')]))
    p.core.response_finish(rid)
    p.deliver()
    call, request = p.mirror.responses[rid].output
    assert (call.type, call.name, call.arguments) == ("mcp_call", "add_numbers",
                                                      '{"a": 1, "b": 2}')
    assert call.approval_request_id == request.id and call.output is None
    assert p.mirror.pending_approvals() == [request]
    assert (request.server_label, request.mcp_state) == ("calc", "pending")

    p.client({"type": "conversation.item.create", "item": {
        "type": "mcp_approval_response", "id": "appr_1", "approval_request_id": request.id,
        "approve": True, "reason": "go"}})
    assert p.mirror.pending_approvals() == []
    assert (request.mcp_state, request.reason) == ("approved", "go")
    assert call.mcp_state == "in_progress"
    [run] = p.core.take_jobs()
    p.core.mcp_call_done(run.payload["item_id"], output="3")
    p.deliver()
    assert (call.output, call.mcp_state, call.error) == ("3", "completed", None)
    assert [it.id for it in p.mirror.items.list()] == [it["id"] for it in p.core.items]


def test_mirror_keeps_a_failed_mcp_call_s_error() -> None:
    p = Pair(vad=False)
    p.client({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp",
         "require_approval": "never"}]}})
    [listing] = p.core.take_jobs()
    p.core.mcp_list_done(listing.payload["item_id"], error="unreachable")
    p.deliver()
    assert p.mirror.items[listing.payload["item_id"]].mcp_state == "failed"
    p.core.mcp_servers["calc"]["status"] = "completed"  # pretend a listing worked meanwhile
    p.client({"type": "response.create"})
    [job] = p.core.take_jobs()
    rid = job.payload["response_id"]
    p.core.response_output(rid, Reply(mcp_calls=[("calc", "add_numbers", "{}")]))
    p.core.response_finish(rid)
    [run] = p.core.take_jobs()
    p.core.mcp_call_done(run.payload["item_id"], error={"type": "http_error", "code": 500,
                                                        "message": "oops"})
    p.deliver()
    [call] = p.mirror.responses[rid].output
    assert call.mcp_state == "failed" and call.error == {"type": "http_error", "code": 500,
                                                         "message": "oops"}
# ---------------------------------------------------------------------- transcription detail
def test_diarization_segments_are_kept_per_item_in_order_and_deduplicated_by_id() -> None:
    p = Pair(vad=False)
    p.append(tone_pcm16(300))
    p.client({"type": "input_audio_buffer.commit"})
    item_id = p.mirror.last_commit["item_id"]
    for seg_id, speaker, start, end, text in (("seg_1", "A", 0.0, 0.4, "Hello."),
                                              ("seg_2", "B", 0.5, 0.9, "Hi there."),
                                              ("seg_1", "A", 0.0, 0.45, "Hello!")):
        p.mirror.server_event({"type": "conversation.item.input_audio_transcription.segment",
                               "event_id": "event_x", "item_id": item_id, "content_index": 0,
                               "id": seg_id, "speaker": speaker, "start": start, "end": end,
                               "text": text})
    segs = p.mirror.items[item_id].segments
    assert [(s.id, s.speaker, s.text) for s in segs] == [("seg_2", "B", "Hi there."),
                                                         ("seg_1", "A", "Hello!")]
    assert segs[1].end == 0.45


def test_completed_transcription_keeps_its_logprobs() -> None:
    p = Pair(vad=False)
    p.append(tone_pcm16(300))
    p.client({"type": "input_audio_buffer.commit"})
    job = p.core.take_jobs()[0]
    lp = [{"token": " hello", "logprob": -0.25, "bytes": list(b" hello")}]
    p.core.transcription_done(job.payload["item_id"], "hello", logprobs=lp)
    p.deliver()
    item = p.mirror.items[job.payload["item_id"]]
    assert item.transcript == "hello" and item.transcript_logprobs == lp


def test_segment_events_are_known_server_events() -> None:
    from realtime_nb.protocol import SERVER_EVENTS

    assert "conversation.item.input_audio_transcription.segment" in SERVER_EVENTS
