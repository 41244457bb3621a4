"""The local server attacked the way the world will: fuzzed, malformed, oversized and flooded.

One server (in its own thread) takes, in one test, a few hundred hypothesis-generated
connections — GA and beta dialect — each a short sequence of frames: mutated real events (wrong
types, missing and unknown keys at every depth), arbitrary JSON, malformed text and binary
frames. After each frame a probe (an event the server must refuse, with a known ``event_id``)
marks where the answers to that frame end. The oracle is the protocol's own validator, run in
the test: an event it refuses must be answered by exactly one ``error`` with its code (and, for
GA, its ``param``) and the event's ``event_id``; every answer is a well-formed server event; the
session never closes. Meanwhile a healthy session does text turns on the same server and must
see no error; afterwards the server holds no leaked session and a new session still works end
to end. Floods, oversized frames and the known crashes have their own tests below.

Speech recognition is replaced by an instant transcriber here (the fuzz is about the protocol
and the transport); VAD (Silero, batched), the echo responder and espeak-ng are the real ones.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_fixtures import (
    HandlerErrors,
    HealthySession,
    RawClient,
    ThreadedServer,
    quick_engines,
    until,
)
from websockets.exceptions import ConnectionClosed

from realtime_nb.protocol import SERVER_EVENTS, ProtocolError, validate_client_event
from realtime_nb.protocol.beta import BETA_TO_GA_EVENTS, BetaTranslator

PCM_100MS = base64.b64encode(b"\x10\x00\xf0\xff" * 1200).decode()

GA_TEMPLATES: list[dict[str, Any]] = [
    {"type": "session.update", "event_id": "e_update", "session": {
        "type": "realtime", "instructions": "Be brief.", "output_modalities": ["text"],
        "max_output_tokens": 100, "tool_choice": "auto", "tracing": "auto", "truncation": "auto",
        "tools": [{"type": "function", "name": "get_weather", "description": "d",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                               "prefix_padding_ms": 300,
                                               "silence_duration_ms": 200,
                                               "create_response": True,
                                               "interrupt_response": True},
                            "transcription": {"model": "whisper-1", "language": "en"},
                            "noise_reduction": {"type": "near_field"}},
                  "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy", "speed": 1.0}},
        "prompt": {"id": "pmpt_1", "version": "1", "variables": {"a": "b"}}}},
    {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}}},
    {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": None}}}},
    {"type": "input_audio_buffer.append", "event_id": "e_append", "audio": PCM_100MS},
    {"type": "input_audio_buffer.commit", "event_id": "e_commit"},
    {"type": "input_audio_buffer.clear"},
    {"type": "output_audio_buffer.clear"},
    {"type": "conversation.item.create", "previous_item_id": None, "item": {
        "type": "message", "id": "item_fuzz_a", "role": "user", "content": [
            {"type": "input_text", "text": "hello"},
            {"type": "input_audio", "audio": PCM_100MS, "transcript": "hi"}]}},
    {"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",
                                                  "content": [{"type": "output_text",
                                                               "text": "hi"}]}},
    {"type": "conversation.item.create", "item": {"type": "function_call", "id": "item_fc",
                                                  "call_id": "call_1", "name": "get_weather",
                                                  "arguments": "{}"}},
    {"type": "conversation.item.create", "item": {"type": "function_call_output",
                                                  "call_id": "call_1", "output": "{}"}},
    {"type": "conversation.item.retrieve", "item_id": "item_fuzz_a"},
    {"type": "conversation.item.truncate", "item_id": "item_fuzz_a", "content_index": 0,
     "audio_end_ms": 10},
    {"type": "conversation.item.delete", "item_id": "item_fuzz_a"},
    {"type": "response.create", "event_id": "e_response", "response": {
        "output_modalities": ["text"], "instructions": "x", "conversation": "none",
        "metadata": {"k": "v"}, "max_output_tokens": "inf",
        "input": [{"type": "item_reference", "id": "item_fuzz_a"},
                  {"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "x"}]}],
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "ash"}},
        "tool_choice": {"type": "function", "name": "get_weather"}}},
    {"type": "response.create", "response": {"output_modalities": ["text"]}},
    {"type": "response.cancel", "response_id": "resp_x"},
]

BETA_TEMPLATES: list[dict[str, Any]] = [
    {"type": "session.update", "session": {
        "modalities": ["text", "audio"], "voice": "alloy", "input_audio_format": "pcm16",
        "output_audio_format": "g711_ulaw", "input_audio_transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5}, "temperature": 0.8,
        "max_response_output_tokens": "inf", "instructions": "x", "tools": [],
        "tool_choice": "auto"}},
    {"type": "transcription_session.update", "session": {
        "input_audio_format": "pcm16", "input_audio_transcription": {"model": "whisper-1"},
        "turn_detection": None}},
    {"type": "response.create", "response": {
        "modalities": ["text"], "instructions": "x", "voice": "ash", "temperature": 0.7,
        "output_audio_format": "pcm16", "max_output_tokens": 50, "conversation": "none",
        "metadata": {"a": "b"}, "input": [{"type": "message", "role": "assistant",
                                           "content": [{"type": "text", "text": "hi"}]}]}},
    {"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",
                                                  "content": [{"type": "text", "text": "hi"}]}},
    *GA_TEMPLATES[3:7],
]

INTERESTING = st.sampled_from([
    "", "x" * 600, "realtime", "transcription", "audio/pcm", "audio/pcmu", "server_vad",
    "semantic_vad", "message", "user", "assistant", "system", "input_text", "input_audio",
    "output_text", "text", "audio", "function_call", "item_reference", "none", "auto", "inf",
    "whisper-1", "pcm16", "AAAA", "not base64!", PCM_100MS, 24000, 16000, 0, -1, 2**31, 0.5, 1.5,
])
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
                 INTERESTING)
JSON = st.recursive(LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4)), max_leaves=10)
KEYS = st.sampled_from(["type", "event_id", "session", "audio", "item", "item_id", "content",
                        "role", "text", "response", "input", "format", "rate", "turn_detection",
                        "output_modalities", "modalities", "voice", "metadata", "tools", "id"])
MALFORMED_TEXT = st.sampled_from([
    "", " ", "{", "}", "null", "true", "42", '"text"', "[]", "[1, 2]", '{"type": }',
    '{"type": "session.update"', "{'type': 'session.update'}", "NaN", "Infinity",
    '{"type": "input_audio_buffer.commit", "event_id": NaN}',
    '{"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, '
    '"audio_end_ms": 1e999}',
    '{"type": "input_audio_buffer.append", "audio": "' + "A" * 10 + '=="}',
    "\u0000", "\ufeff{}",
])


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


@st.composite
def mutated(draw: st.DrawFn, templates: list[dict[str, Any]]) -> Any:
    """A real event with up to three mutations: a value replaced, a key removed or added."""
    event: Any = copy.deepcopy(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(0, 3))):
        paths = [p for p in _paths(event) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if op == "set":
            parent[path[-1]] = draw(JSON)
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.one_of(KEYS, st.text(max_size=8)))] = draw(JSON)
        else:
            parent.append(draw(JSON))
    return event


def frames(beta: bool) -> st.SearchStrategy[str | bytes]:
    events = mutated(BETA_TEMPLATES if beta else GA_TEMPLATES)
    return st.one_of(
        events.map(json.dumps), events.map(json.dumps), events.map(json.dumps),
        JSON.map(json.dumps), MALFORMED_TEXT, st.binary(max_size=64),
    )


@st.composite
def connections(draw: st.DrawFn) -> tuple[bool, list[str | bytes]]:
    beta = draw(st.integers(0, 3)) == 0  # one connection in four speaks the beta dialect
    return beta, draw(st.lists(frames(beta), min_size=1, max_size=6))


class Reference:
    """What the server must answer, computed in the test with the protocol's own code."""

    def __init__(self, beta: bool) -> None:
        self.beta = BetaTranslator() if beta else None

    def expected_error(self, frame: str | bytes) -> tuple[str, str | None] | None:
        """The (code, param) the server must refuse ``frame`` with, or None if the frame is a
        valid event (whose answer depends on the session's state). Raises what the protocol
        code raises for frames it cannot handle (a crash the server must not share)."""
        if isinstance(frame, bytes):
            return "invalid_event", None
        try:
            event = json.loads(frame)
        except ValueError:
            return "invalid_json", None
        if self.beta is not None:
            try:
                event = self.beta.client_event(event)
            except ProtocolError as err:
                return err.code, None
        try:
            validate_client_event(event)
        except ProtocolError as err:
            return err.code, (None if self.beta is not None else err.param)
        return None


def event_id_of(frame: str | bytes) -> str | None:
    """The ``event_id`` the server must echo in an error answering ``frame``."""
    if isinstance(frame, bytes):
        return None
    with contextlib.suppress(ValueError, RecursionError):
        event = json.loads(frame)
        if isinstance(event, dict) and isinstance(event.get("event_id"), str):
            return event["event_id"]
    return None


BETA_SERVER_EVENTS = {*SERVER_EVENTS, *BETA_TO_GA_EVENTS, "transcription_session.created",
                      "transcription_session.updated"}


def check_answers(frame: str | bytes, answers: list[dict[str, Any]], beta: bool,
                  expected: tuple[str, str | None] | None) -> None:
    # A GA local server never sends the beta-era item.created nor SIP's DTMF event.
    known = BETA_SERVER_EVENTS if beta else set(SERVER_EVENTS) - {
        "conversation.item.created", "input_audio_buffer.dtmf_event_received"}
    for ev in answers:
        assert ev.get("type") in known and isinstance(ev.get("event_id"), str), ev
    errors = [ev["error"] for ev in answers if ev["type"] == "error"]
    eid = event_id_of(frame)
    for err in errors:
        assert err.get("event_id") == eid, (frame[:300], err)
    if expected is not None:
        assert [(e["code"], e["param"] if not beta else None) for e in errors] == [expected], (
            frame[:300], errors)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(engines=quick_engines()) as srv:
        yield srv


def test_fuzzed_clients_get_the_right_errors_and_nobody_else_notices(
    server: ThreadedServer,
) -> None:
    healthy = HealthySession(server.url).start()
    stats = {"frames": 0, "refused": 0, "known_crashes": 0}

    @settings(max_examples=200, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(connections())
    def one_connection(conn: tuple[bool, list[str | bytes]]) -> None:
        beta, sent = conn
        reference = Reference(beta)
        with RawClient(server.url, beta=beta) as client:
            for frame in sent:
                try:
                    expected = reference.expected_error(frame)
                except (TypeError, RecursionError):
                    # A frame the protocol code itself cannot handle: the known crashes of
                    # test_beta_event_with_mixed_list_types_is_answered_not_fatal and the
                    # deep-nesting tests below. Whatever the server does, the session ends here.
                    stats["known_crashes"] += 1
                    client.send(frame)
                    with contextlib.suppress(ConnectionClosed, TimeoutError):
                        client.probe(timeout=5)
                    return
                client.send(frame)
                answers = client.probe()
                stats["frames"] += 1
                stats["refused"] += expected is not None
                check_answers(frame, answers, beta, expected)

    with HandlerErrors() as crashes:
        one_connection()
    healthy.stop()
    print(f"\nfuzz: {stats}, healthy session rounds: {healthy.rounds}")
    assert healthy.problems == [] and healthy.rounds >= 3, (healthy.problems, healthy.rounds)
    assert len(crashes.records) <= stats["known_crashes"], crashes.records
    assert stats["frames"] >= 300 and stats["refused"] >= 100, stats
    assert server.sessions() == 0, "every fuzzed session was released"
    finish = HealthySession(server.url, max_rounds=1).start().stop()
    assert finish.problems == [] and finish.rounds == 1


def test_a_flood_of_bad_events_is_answered_in_order(server: ThreadedServer) -> None:
    """3 000 bad events sent back to back: 3 000 errors come back, each echoing its event's
    id, in the order sent; a healthy session on the same server sees nothing of it."""
    healthy = HealthySession(server.url).start()
    n = 3000
    with RawClient(server.url) as flood:
        for i in range(n):
            flood.send({"type": "input_audio_buffer.commit", "event_id": f"flood_{i}"}
                       if i % 2 else {"type": "no.such.event", "event_id": f"flood_{i}"})
        got = [flood.recv(timeout=30)["error"] for _ in range(n)]
        assert flood.probe() == []
    healthy.stop()
    assert [e["event_id"] for e in got] == [f"flood_{i}" for i in range(n)]
    assert {e["code"] for e in got[1::2]} == {"input_audio_buffer_commit_empty"}
    assert {e["code"] for e in got[0::2]} == {"invalid_value"}
    assert healthy.problems == [] and healthy.rounds >= 1


def test_binary_and_malformed_frames_are_answered_and_the_session_goes_on(
    server: ThreadedServer,
) -> None:
    with RawClient(server.url) as client:
        client.send(b"\x00\x01\x02")
        assert [e["error"]["code"] for e in client.probe()] == ["invalid_event"]
        client.send("{not json")
        assert [e["error"]["code"] for e in client.probe()] == ["invalid_json"]
        client.send("[1, 2, 3]")
        assert [e["error"]["code"] for e in client.probe()] == ["invalid_json"]
        client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}})
        assert [e["type"] for e in client.probe()] == ["conversation.item.added",
                                                       "conversation.item.done"]


def test_an_append_over_15_mib_is_refused_and_the_session_goes_on(
    server: ThreadedServer,
) -> None:
    big = base64.b64encode(b"\x00" * (15 * 1024 * 1024 + 2)).decode()
    with RawClient(server.url) as client:
        client.send({"type": "input_audio_buffer.append", "event_id": "big", "audio": big})
        answers = client.probe(timeout=30)
        assert [(e["error"]["code"], e["error"]["event_id"]) for e in answers] == [
            ("audio_too_large", "big")]
        client.send({"type": "input_audio_buffer.commit", "event_id": "after"})
        errors = [e["error"] for e in client.probe()]
        assert [e["code"] for e in errors] == ["input_audio_buffer_commit_empty"], (
            "the refused audio was not buffered")


def test_a_frame_over_the_size_limit_closes_only_that_connection(
    server: ThreadedServer,
) -> None:
    """A 33 MiB frame exceeds the server's 32 MiB frame limit: that connection is closed with
    1009 (message too big); another connection, open meanwhile, goes on."""
    with RawClient(server.url) as other, RawClient(server.url) as client:
        client.send("x" * (33 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as info:
            client.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        other.send({"type": "input_audio_buffer.clear"})
        assert [e["type"] for e in other.probe()] == ["input_audio_buffer.cleared"]


# ----------------------------------------------------------------------------- known bugs
def _answered_and_alive(server: ThreadedServer, frame: str, *, beta: bool = False
                        ) -> list[dict[str, Any]]:
    """Send ``frame``; return the errors answering it, after checking the session lives on."""
    with HandlerErrors() as crashes, RawClient(server.url, beta=beta) as client:
        client.send(frame)
        try:
            answers = client.probe()
        except ConnectionClosed as exc:
            pytest.fail(f"the server closed the session ({exc}); it logged {crashes.records}")
        client.send({"type": "input_audio_buffer.clear"})
        assert [e["type"] for e in client.probe()] == ["input_audio_buffer.cleared"]
    assert crashes.records == []
    return [e["error"] for e in answers if e["type"] == "error"]


@pytest.mark.parametrize("event", [
    {"type": "session.update", "session": {"modalities": ["text", 1]}},
    {"type": "response.create", "response": {"modalities": [None, None]}},
    {"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",
                                                  "content": 5}},
    {"type": "response.create", "response": {"input": 5}},
], ids=["modalities-mixed", "modalities-nulls", "content-int", "input-int"])
def test_beta_event_with_mixed_list_types_is_answered_not_fatal(
    server: ThreadedServer, event: dict[str, Any]
) -> None:
    """A beta client's malformed event gets an ``error`` (invalid_type / invalid_value) like any
    other malformed event; the session stays open."""
    errors = _answered_and_alive(server, json.dumps(event), beta=True)
    assert len(errors) == 1 and errors[0]["code"] in ("invalid_type", "invalid_value")


def test_deeply_nested_json_is_refused_as_invalid_json() -> None:
    with ThreadedServer(engines=quick_engines()) as server:
        errors = _answered_and_alive(server, "[" * 100_000 + "]" * 100_000)
    assert [e["code"] for e in errors] == ["invalid_json"]


def test_a_deeply_nested_tool_schema_is_refused_not_fatal() -> None:
    nested: dict[str, Any] = {}
    node = nested
    for _ in range(900):
        node["a"] = {}
        node = node["a"]
    event = {"type": "session.update", "event_id": "deep", "session": {
        "type": "realtime", "tools": [{"type": "function", "name": "f", "parameters": nested}]}}
    with ThreadedServer(engines=quick_engines()) as server:
        errors = _answered_and_alive(server, json.dumps(event))
    assert len(errors) == 1 and errors[0]["event_id"] == "deep"


async def test_a_client_that_never_reads_cannot_grow_the_server_without_bound() -> None:
    """20 000 events whose errors are never read: either the server stops reading from that
    client (its sends block: TCP backpressure) or it drops the client; it never queues more
    than a few thousand answers for it."""
    from websockets.asyncio.client import connect

    with ThreadedServer(engines=quick_engines()) as server:
        ws = await connect(server.url, additional_headers={"Authorization": "Bearer k"},
                           max_size=None, max_queue=4)
        await ws.recv()
        event = json.dumps({"type": "input_audio_buffer.commit", "event_id": "x" * 500})
        queued: list[int] = []

        async def queue_size() -> int:
            return sum(c.queue.qsize() for c in server.server.sessions)

        with contextlib.suppress(TimeoutError, ConnectionClosed):
            for i in range(20_000):
                async with asyncio.timeout(2):  # a send blocked this long: backpressure works
                    await ws.send(event)
                if i % 1000 == 999:
                    await asyncio.sleep(0.05)
                    queued.append(server.call(queue_size()))
        await asyncio.sleep(0.5)
        queued.append(server.call(queue_size()))
        ws.transport.abort()
        await asyncio.sleep(0.1)  # let the loop close the socket before the server stops
    assert max(queued) <= 5_000, f"the server queued up to {max(queued)} unread answers"


async def _stalled_client(server: ThreadedServer, events: int) -> Any:
    """A client that sent ``events`` bad events and reads none of the answers."""
    from websockets.asyncio.client import connect

    ws = await connect(server.url, additional_headers={"Authorization": "Bearer k"},
                       max_size=None, max_queue=4)
    await ws.recv()
    event = json.dumps({"type": "input_audio_buffer.commit", "event_id": "x" * 500})
    with contextlib.suppress(TimeoutError):  # a send blocked for 2 s: the pipe is full
        for _ in range(events):
            async with asyncio.timeout(2):
                await ws.send(event)
    await asyncio.sleep(0.5)
    return ws


async def test_stop_returns_while_a_client_has_stopped_reading() -> None:
    """A notebook kernel busy in a long cell stops reading its socket; stopping the server must
    still end in bounded time (close_timeout, then abort)."""
    server = ThreadedServer(engines=quick_engines()).start()
    ws = await _stalled_client(server, 20_000)
    try:
        started = asyncio.get_running_loop().time()
        with contextlib.suppress(TimeoutError):
            server.call(server.server.stop(), timeout=12)
        took = asyncio.get_running_loop().time() - started
    finally:
        ws.transport.abort()
        await asyncio.sleep(0.1)
        server.stop()
    assert took < 11.5, f"LocalServer.stop() took {took:.0f} s (close_timeout is 10 s)"


async def test_a_flooding_client_that_disconnects_is_released_at_once() -> None:
    """A client floods events without reading its answers, then its connection drops: the
    server frees that session at once — none is left waiting for a reader that is gone."""
    with ThreadedServer(engines=quick_engines()) as server:
        ws = await _stalled_client(server, 20_000)
        ws.transport.abort()
        with contextlib.suppress(AssertionError):
            await until(lambda: server.sessions() == 0, 5)
        left = server.sessions()
    assert left == 0, f"{left} session(s) still held 5 s after the client vanished"
