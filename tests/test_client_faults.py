"""Faults: malformed and unknown server events, slow servers, dropped sockets, a server killed
mid-response, session expiry, reconnects — and nothing recorded is lost along the way.

Most tests use the scriptable fake server (:mod:`realtime_nb.client.testing`); expiry uses the
real local server with a 2-second session limit.
"""

from __future__ import annotations

import asyncio
import json
import warnings

import pytest
from reliability_fixtures import until

from realtime_nb import RealtimeError, Session
from realtime_nb.client import ProtocolWarning, RealtimeTimeout, ReconnectPolicy
from realtime_nb.client.testing import FakeRealtimeServer, tone_pcm16
from realtime_nb.server import LocalServer


@pytest.fixture
async def fake():
    async with FakeRealtimeServer() as srv:
        yield srv


def fast_policy() -> ReconnectPolicy:
    return ReconnectPolicy(max_attempts=20, initial_delay=0.05, max_delay=0.2, jitter=0.0)


# ---------------------------------------------------------------------- odd server events
async def test_malformed_frame_is_logged_and_the_session_goes_on(fake) -> None:
    async with Session(url=fake.url) as s:
        with pytest.warns(ProtocolWarning, match="not a JSON event"):
            await fake.push("{this is not json")
            await until(lambda: s.events[-1].type == "realtime_nb.malformed")
        assert s.events[-1].event["data"].startswith("{this is")
        rs = await s.say("still there?", output_modalities=["text"])
        assert rs.status == "completed" and s.state == "connected"


async def test_binary_and_non_object_frames_are_malformed_not_fatal(fake) -> None:
    async with Session(url=fake.url) as s:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProtocolWarning)
            await fake.push(b"\x00\x01binary")
            await fake.push("[1, 2, 3]")
            await fake.push('{"no_type": true}')
            await until(lambda: len(s.events.of_type("realtime_nb.malformed")) == 3)
        assert s.state == "connected"


async def test_unknown_server_event_is_logged_and_dispatched(fake) -> None:
    async with Session(url=fake.url) as s:
        seen: list[dict] = []
        s.on("*", seen.append)
        await fake.push({"type": "response.future_feature.delta", "event_id": "e1", "x": 1})
        await until(lambda: seen)
        assert seen[0]["type"] == "response.future_feature.delta"
        assert s.events[-1].type == "response.future_feature.delta"


async def test_events_with_missing_fields_do_not_break_the_mirror(fake) -> None:
    async with Session(url=fake.url) as s:
        warnings.simplefilter("ignore", ProtocolWarning)
        for ev in ({"type": "input_audio_buffer.committed"},
                   {"type": "response.done", "response": None},
                   {"type": "conversation.item.added", "item": "not an object"},
                   {"type": "conversation.item.input_audio_transcription.delta"},
                   {"type": "response.output_audio.delta", "item_id": "item_x",
                    "delta": "not base64!"},
                   {"type": "session.updated", "session": 42}):
            await fake.push(ev)
        await until(lambda: s.events[-1].type == "session.updated")
        assert any(w[0] == "protocol" and "transcription.delta" in w[1] for w in s.warnings)
        rs = await s.say("ok?", output_modalities=["text"])
        assert rs.status == "completed"


async def test_audio_delta_with_escaped_json_takes_the_slow_path(fake) -> None:
    async with Session(url=fake.url) as s:
        raw = tone_pcm16(50)
        import base64

        b64 = base64.b64encode(raw).decode().replace("/", "\\/")
        frame = ('{"type":"response.output_audio.delta","event_id":"e","response_id":"r",'
                 f'"item_id":"item_esc","output_index":0,"content_index":0,"delta":"{b64}"}}')
        await fake.push(frame)
        await until(lambda: "item_esc" in s.mirror.all_items)
        assert s.mirror.all_items["item_esc"].audio_bytes == raw


# ---------------------------------------------------------------------- slow servers
async def test_slow_session_created_times_out_the_connect() -> None:
    async with FakeRealtimeServer(created_delay=2.0) as fake:
        s = Session(url=fake.url, connect_timeout=0.3)
        with pytest.raises(RealtimeTimeout):
            await s.connect()
        assert s.state == "new"


async def test_slow_server_still_connects_and_answers() -> None:
    async with FakeRealtimeServer(created_delay=0.3, reply_delay=0.2) as fake, \
            Session(url=fake.url) as s:
        rs = await s.say("slow?", output_modalities=["text"])
        assert rs.status == "completed"


async def test_connect_is_cancel_safe() -> None:
    async with FakeRealtimeServer(created_delay=5.0) as fake:
        s = Session(url=fake.url)
        task = asyncio.ensure_future(s.connect())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert s.state == "new" and s._waiters == []


async def test_connection_refused_is_reported() -> None:
    async with FakeRealtimeServer() as fake:
        url = fake.url
    s = Session(url=url)
    with pytest.raises(RealtimeError) as info:
        await s.connect()
    assert info.value.code == "connect_failed" and info.value.source == "connection"


# ---------------------------------------------------------------------- drops and restarts
async def test_dropped_socket_is_reported_and_pending_waits_fail(fake) -> None:
    async with Session(url=fake.url) as s:
        gone: list[dict] = []
        s.on("realtime_nb.disconnected", gone.append)
        waiting = asyncio.ensure_future(s.wait_for("response.done"))
        await asyncio.sleep(0.05)
        await fake.drop()
        with pytest.raises(RealtimeError) as info:
            await waiting
        assert info.value.code == "connection_closed" and info.value.source == "connection"
        assert s.state == "disconnected" and s.last_error is info.value
        assert gone and gone[0]["realtime_error"] is info.value
        assert s.events[-1].type == "realtime_nb.disconnected"


async def test_killed_mid_response_then_reconnect_keeps_everything(fake) -> None:
    """The server dies while streaming a spoken answer: what arrived stays (log, audio,
    transcript), events sent while down are queued, and reconnect() restores the config
    and sends the queue, in order, to the new server session."""
    port = fake.port
    fake.audio_interval = 0.05
    fake.reply_text = "One. Two. Three. Four. Five. Six. Seven. Eight."
    s = Session(url=fake.url)
    await s.connect()
    await s.update(instructions="Be brief.")
    await s.create_item(text="Count.")
    await s.create_response()
    await until(lambda: len(s.events.of_type("response.output_audio.delta")) >= 2)
    await fake.drop()
    await until(lambda: s.state == "disconnected")
    received = [e for e in s.events if e.direction == "server"]
    deltas = s.events.of_type("response.output_audio.delta")
    cut = s.responses[deltas[0].event["response_id"]]
    # The server that streamed it is gone: nothing may still show it as playing.
    assert s.mirror.active_response is None and cut.done
    assert cut.status_details == {"type": "incomplete", "reason": "disconnected"}
    item = s.mirror.all_items[deltas[0].event["item_id"]]
    audio_before = item.audio_bytes
    assert audio_before == b"".join(s.events.audio_of(e) for e in deltas)
    await s.append(tone_pcm16(100))  # sent while down: queued
    assert s.pending[-1]["type"] == "input_audio_buffer.append"
    await fake.stop()
    async with FakeRealtimeServer(port=port) as fake2:
        await s.reconnect()
        assert s.state == "connected" and s.pending == []
        await until(lambda: len(fake2.received) >= 2)
        assert fake2.received[0]["type"] == "session.update"
        assert fake2.received[0]["session"]["instructions"] == "Be brief."
        assert fake2.received[1]["type"] == "input_audio_buffer.append"
        await until(lambda: s.config.get("instructions") == "Be brief.")
        assert [e for e in s.events if e.direction == "server"][:len(received)] == received
        assert item.audio_bytes == audio_before and s.items[item.id] is item
        markers = [e.type for e in s.events if e.direction == "local"]
        assert markers[-3:] == ["realtime_nb.reconnecting", "realtime_nb.connected",
                                "realtime_nb.reconnected"]
        assert "realtime_nb.disconnected" in markers
        assert s.responses[deltas[0].event["response_id"]].status == "incomplete"
        await s.close()


async def test_server_restart_close_code_is_reported(fake) -> None:
    async with Session(url=fake.url) as s:
        await fake.close_all(1012, "service restart")
        await until(lambda: s.state == "disconnected")
        assert "1012" in s.last_error.message and "service restart" in s.last_error.message


async def test_auto_reconnect_after_a_drop(fake) -> None:
    s = Session(url=fake.url, reconnect=fast_policy())
    await s.connect()
    await s.update(instructions="Remember me.")
    first = s.mirror.session_id
    await fake.drop()
    await until(lambda: s.mirror.session_id != first and s.state == "connected")
    await until(lambda: s.config["instructions"] == "Remember me.")
    rs = await s.say("back?", output_modalities=["text"])
    assert rs.status == "completed"
    await s.close()


async def test_send_queue_is_bounded() -> None:
    s = Session(backend="local", send_queue_bytes=20_000)
    await s.append(tone_pcm16(100))
    with pytest.raises(RealtimeError) as info:
        for _ in range(10):
            await s.append(tone_pcm16(100))
    assert info.value.code == "send_queue_full" and "connect" in info.value.hint


async def test_send_audio_cancelled_midway_leaves_log_and_mirror_consistent(fake) -> None:
    async with Session(url=fake.url) as s:
        await s.update(turn_detection=None)
        task = asyncio.ensure_future(s.send_audio(tone_pcm16(3000), chunk_ms=100,
                                                  realtime=True))
        await asyncio.sleep(0.35)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        appends = s.events.of_type("input_audio_buffer.append")
        assert 2 <= len(appends) < 30
        assert s.input_buffer_ms == pytest.approx(100 * len(appends))
        await until(lambda: len([e for e in fake.received
                                 if e["type"] == "input_audio_buffer.append"]) == len(appends))


async def test_http_401_is_a_fatal_auth_error() -> None:
    async with FakeRealtimeServer(require_key="right") as fake:
        s = Session(url=fake.url, api_key="wrong")
        with pytest.raises(RealtimeError) as info:
            await s.connect()
        err = info.value
        assert (err.code, err.fatal, err.source) == ("invalid_api_key", True, "server")
        assert "401" in err.message and "OPENAI_API_KEY" in err.hint
        assert s.state == "new" and s.last_error is err


async def test_client_events_reach_the_server_in_log_order(fake) -> None:
    async with Session(url=fake.url) as s:
        await s.update(turn_detection=None)
        await s.send_audio(tone_pcm16(300))
        await s.commit(wait=True)
        await s.clear(wait=True)
        sent = [e.event["event_id"] for e in s.events.client()]
        await until(lambda: len(fake.received) == len(sent))
        assert [e["event_id"] for e in fake.received] == sent


async def test_error_answering_a_sent_event_names_that_event(fake) -> None:
    async with Session(url=fake.url) as s:
        waiting = asyncio.ensure_future(s.wait_for("error"))
        await asyncio.sleep(0)
        sent = await s.send({"type": "conversation.item.delete", "item_id": "item_nope"})
        err_ev = await waiting
        assert err_ev["error"]["event_id"] == sent["event_id"]
        assert s.last_error.code == "item_not_found" and s.last_error.source == "server"
        assert s.last_error.event_id == sent["event_id"]


# ---------------------------------------------------------------------- session expiry
async def test_session_expiry_is_fatal_reported_and_reconnect_restores() -> None:
    srv = LocalServer(port=0, max_duration_s=2)
    await srv.start(warm_up=False)
    try:
        s = Session(url=srv.url)
        await s.connect()
        await s.update(instructions="Keep this.", turn_detection=None)
        rs = await s.say("before expiry", output_modalities=["text"])
        before = len(s.events)
        with pytest.raises(RealtimeError) as info:
            await s.wait_for("never.happens", timeout=10)
        err = info.value
        assert err.code == "session_expired" and err.fatal and err.source == "server"
        assert err.message.startswith("Your session hit the maximum duration of")
        assert err.message == err.event["error"]["message"]
        await until(lambda: s.state == "disconnected")
        assert s.last_error.code == "session_expired" and "reconnect" in s.last_error.hint
        await s.reconnect()
        await until(lambda: s.config["instructions"] == "Keep this.")
        assert s.config["audio"]["input"]["turn_detection"] is None
        assert s.responses[rs.id].text == rs.text and len(s.events) > before
        assert s.events.of_type("realtime_nb.reconnected")
        await s.close()
    finally:
        await srv.stop()


async def test_auto_reconnect_on_expiry() -> None:
    srv = LocalServer(port=0, max_duration_s=1)
    await srv.start(warm_up=False)
    try:
        s = Session(url=srv.url, auto_reconnect=True)
        s.policy.initial_delay = 0.05
        await s.connect()
        first = s.mirror.session_id
        await until(lambda: s.events.of_type("realtime_nb.reconnected"), timeout=15)
        assert s.mirror.session_id != first
        expired = [e for e in s.events.of_type("error")
                   if e.event["error"]["code"] == "session_expired"]
        assert expired
        await s.close()
    finally:
        await srv.stop()


def test_fatal_codes_follow_the_protocol_reference() -> None:
    from realtime_nb.client import FATAL_CODES

    for code in ("session_expired", "beta_api_shape_disabled", "invalid_api_key",
                 "insufficient_quota", "invalid_model"):
        assert code in FATAL_CODES
    assert "input_audio_buffer_commit_empty" not in FATAL_CODES
    assert RealtimeError("session_expired", "x").fatal
    assert not RealtimeError("unknown_parameter", "x").fatal


async def test_invalid_model_error_before_session_created_fails_connect() -> None:
    srv = LocalServer(port=0)
    await srv.start(warm_up=False)
    try:
        s = Session(url=srv.url.replace("/v1/realtime", "/v1/realtime?model=gpt-4o"))
        with pytest.raises(RealtimeError) as info:
            await s.connect()
        assert info.value.code == "invalid_model" and info.value.fatal
    finally:
        await srv.stop()



async def test_closing_mid_response_ends_it_in_the_mirror_and_in_a_replay(fake) -> None:
    """close() while a reply streams: the response ends ``incomplete`` (reason ``closed``),
    callbacks hear ``realtime_nb.closed``, and a mirror rebuilt from the log agrees."""
    from realtime_nb.client.mirror import Mirror

    fake.audio_interval = 0.05
    fake.reply_text = "One. Two. Three. Four. Five. Six."
    s = Session(url=fake.url)
    heard: list[str] = []
    s.on("realtime_nb.closed", lambda ev: heard.append(ev["type"]))
    await s.connect()
    await s.create_item(text="Count.")
    await s.create_response()
    await until(lambda: len(s.events.of_type("response.output_audio.delta")) >= 1)
    rid = s.events.of_type("response.output_audio.delta")[0].event["response_id"]
    await s.close()
    assert heard == ["realtime_nb.closed"]
    assert s.mirror.active_response is None
    assert s.responses[rid].status_details == {"type": "incomplete", "reason": "closed"}
    replay = Mirror.from_log(s.events)
    assert replay.active_response is None
    assert replay.responses[rid].status_details == {"type": "incomplete", "reason": "closed"}


async def test_commit_wait_returns_once_the_committed_item_is_in_items(fake) -> None:
    """A server that is slow to add the item after ``committed``: commit(wait=True) must still
    hand back an item_id that ``session.items`` knows."""

    tasks: list[asyncio.Future] = []

    def slow_item(conn, event) -> bool:
        if event["type"] != "input_audio_buffer.commit":
            return False

        async def answer() -> None:
            await conn.ws.send(json.dumps({"type": "input_audio_buffer.committed",
                                           "event_id": "event_c1", "previous_item_id": None,
                                           "item_id": "item_slow1"}))
            await asyncio.sleep(0.3)
            await conn.ws.send(json.dumps({
                "type": "conversation.item.added", "event_id": "event_c2",
                "previous_item_id": None,
                "item": {"id": "item_slow1", "type": "message", "object": "realtime.item",
                         "status": "completed", "role": "user",
                         "content": [{"type": "input_audio", "transcript": None}]}}))

        tasks.append(asyncio.ensure_future(answer()))
        return True

    fake.on_client_event = slow_item
    async with Session(url=fake.url) as s:
        await s.update(turn_detection=None)
        await s.append(tone_pcm16(200))
        reply = await s.commit(wait=True)
        assert reply["item_id"] == "item_slow1"
        assert s.items["item_slow1"].role == "user"


async def test_wait_for_since_finds_an_event_that_arrived_before_the_wait(fake) -> None:
    """``since=len(session.events)`` taken before an action: a reply that is already in the log
    when the wait starts is returned at once; without ``since`` only later events count."""
    async with Session(url=fake.url) as s:
        mark = len(s.events)
        await s.update(instructions="Be brief.", wait=False)
        await until(lambda: s.events.of_type("session.updated"))
        got = await s.wait_for("session.updated", since=mark, timeout=1)
        assert got["session"]["instructions"] == "Be brief."
        with pytest.raises(RealtimeTimeout):
            await s.wait_for("session.updated", timeout=0.3)
        later = len(s.events)
        with pytest.raises(RealtimeTimeout):  # nothing matching after the new mark
            await s.wait_for("session.updated", since=later, timeout=0.3)
