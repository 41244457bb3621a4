"""realtime_nb.client.mirror's public surface: the names it exports and what they offer.

Pinned so that moving code out of ``mirror.py`` (the records went to ``client/items.py``, the
conversation's handlers to ``client/_conversation_mirror.py``) cannot change what a caller
imports from where, or what the Session, the widgets and notebooks read off the mirror and its
records.
"""

from __future__ import annotations

import dataclasses
import inspect

import realtime_nb.client as client
import realtime_nb.client.mirror as mirror

MIRROR_NAMES = ["ItemState", "Items", "Mirror", "ResponseState", "TranscriptSegment"]

#: Public methods and properties of Mirror (class attributes).
MIRROR_MEMBERS = [
    "active_response", "appended_since_ms", "audio_delta", "client_append", "client_error",
    "client_event", "config", "connection_lost", "from_log", "input_buffer_ms", "input_format",
    "item", "new_session", "output_format", "pending_approvals", "renewed", "server_event",
    "session_id", "speaking", "transcripts", "turn_detection",
]
#: Public state a new Mirror holds (instance attributes the Session and the widgets read).
MIRROR_STATE = [
    "active_response_id", "all_items", "buffer", "floor_bytes", "items", "last_buffer_op",
    "last_commit", "last_speech_started", "last_speech_stopped", "rate_limits", "responses",
    "session", "transcription_usage", "usage",
]
ITEM_STATE_FIELDS = [
    "id", "type", "role", "status", "item", "transcript", "transcript_done",
    "transcription_error", "segments", "transcript_logprobs", "text", "arguments", "name",
    "call_id", "response_id", "session_id", "in_conversation", "deleted", "audio_format",
    "audio_chunks", "audio_start_ms", "audio_end_ms", "truncated_ms", "carried_into",
    "server_label", "mcp_state", "tools", "output", "error", "approval_request_id", "approve",
    "reason", "_decoded",
]
ITEM_STATE_MEMBERS = ["audio", "audio_buffer", "audio_bytes", "content_text", "duration_ms",
                      "image_urls", "images", "kept_bytes", "thumbnail"]
RESPONSE_STATE_MEMBERS = ["audio", "done", "text"]
ITEMS_MEMBERS = ["get", "insert", "items", "keys", "last", "list", "remove", "values"]


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_mirror_exports_its_names_and_the_client_package_s_are_the_same_objects() -> None:
    assert sorted(mirror.__all__) == sorted(MIRROR_NAMES)
    for name in ("ItemState", "Items", "Mirror", "ResponseState"):
        assert getattr(mirror, name) is getattr(client, name)


def test_mirror_keeps_its_methods_properties_and_state() -> None:
    assert _public(mirror.Mirror) == set(MIRROR_MEMBERS)
    state = {name for name in vars(mirror.Mirror()) if not name.startswith("_")}
    assert state == set(MIRROR_STATE)
    assert list(inspect.signature(mirror.Mirror.audio_delta).parameters) == [
        "self", "event", "data"]
    assert list(inspect.signature(mirror.Mirror.connection_lost).parameters) == [
        "self", "reason"]


def test_the_records_keep_their_fields_and_members() -> None:
    fields = [f.name for f in dataclasses.fields(mirror.ItemState)]
    assert fields == ITEM_STATE_FIELDS
    assert _public(mirror.ItemState) - set(fields) == set(ITEM_STATE_MEMBERS)
    rs_fields = {f.name for f in dataclasses.fields(mirror.ResponseState)}
    assert _public(mirror.ResponseState) - rs_fields == set(RESPONSE_STATE_MEMBERS)
    assert _public(mirror.Items) == set(ITEMS_MEMBERS)
    assert [f.name for f in dataclasses.fields(mirror.TranscriptSegment)] == [
        "id", "speaker", "start", "end", "text"]
