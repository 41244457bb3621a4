"""The job payloads SessionCore hands out have exactly the keys ``protocol.jobs`` declares.

``realtime_nb.protocol.jobs`` types each kind's payload (a TypedDict per kind) for the code that
runs them (the local server's ``server.jobs``); these tests hold the declaration to what the
state machine really builds, so a key added or dropped on one side fails here.
"""

from __future__ import annotations

import base64
import functools
from typing import Any, get_type_hints

from state_fixtures import FakeVad, silence, tone

from realtime_nb.protocol import Job, Reply, SessionCore
from realtime_nb.protocol.jobs import (
    McpCallPayload,
    McpListPayload,
    RespondPayload,
    ResponseRequestDict,
    SpeculatePayload,
    TranscribePayload,
    TurnCheckPayload,
)
from realtime_nb.vad import make_segmenter

DECLARED = {"transcribe": TranscribePayload, "speculate": SpeculatePayload,
            "respond": RespondPayload, "turn_check": TurnCheckPayload,
            "mcp_list": McpListPayload, "mcp_call": McpCallPayload}


def _append(pcm: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


def _keys_fit(job: Job) -> None:
    declared = DECLARED[job.kind]
    required, optional = declared.__required_keys__, declared.__optional_keys__
    assert required <= job.payload.keys() <= required | optional, job.kind


class _AlwaysComplete:
    """An end-of-turn model that calls every pause the end of the turn."""

    def predict(self, audio: Any) -> float:
        return 1.0


def test_a_voice_turn_hands_out_speculate_transcribe_and_respond_payloads_as_declared() -> None:
    core = SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter)
    core.handle(_append(silence(500) + tone(1000) + silence(400)))
    jobs = core.take_jobs()
    assert [j.kind for j in jobs] == ["speculate", "transcribe", "respond"]
    for job in jobs:
        _keys_fit(job)
    request = jobs[-1].payload["request"]
    assert request.keys() == get_type_hints(ResponseRequestDict).keys()


def test_a_manual_commit_transcription_payload_may_leave_out_the_speculation() -> None:
    core = SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter)
    core.handle({"type": "session.update", "session": {
        "type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    core.handle(_append(tone(500)))
    core.handle({"type": "input_audio_buffer.commit"})
    [job] = core.take_jobs()
    assert job.kind == "transcribe"
    _keys_fit(job)


def test_semantic_vad_turn_check_payloads_are_as_declared() -> None:
    core = SessionCore(vad_model=FakeVad(),
                       make_segmenter=functools.partial(make_segmenter, decisions=True),
                       turn_model=_AlwaysComplete())
    core.handle({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": None, "turn_detection": {"type": "semantic_vad",
                                                  "create_response": False}}}}})
    core.defer_turn = True
    core.handle(_append(tone(800) + silence(300)))
    checks = [j for j in core.take_jobs() if j.kind == "turn_check"]
    assert checks
    for job in checks:
        _keys_fit(job)


def test_mcp_list_and_call_payloads_are_as_declared() -> None:
    core = SessionCore(vad_model=FakeVad(), make_segmenter=make_segmenter)
    core.handle({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://mcp.invalid/mcp",
         "require_approval": "never"}]}})
    [listing] = core.take_jobs()
    _keys_fit(listing)
    core.mcp_list_done(listing.payload["item_id"], tools=[
        {"name": "add_numbers", "input_schema": {"type": "object"}, "description": "Add.",
         "annotations": None}])
    core.handle({"type": "response.create"})
    [respond] = core.take_jobs()
    rid = respond.payload["response_id"]
    core.response_output(rid, Reply(mcp_calls=[("calc", "add_numbers", '{"a": 1}')]))
    core.response_finish(rid)
    [call] = core.take_jobs()
    assert call.kind == "mcp_call"
    _keys_fit(call)
