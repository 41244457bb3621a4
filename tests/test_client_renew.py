"""Session renewal (``Session(renew=...)``) against the local server with a short session limit.

The local server ends sessions after ``max_duration_s`` exactly as the service does after 60
minutes (``session_expired``, close 1001), so a 3-second limit tests the whole seam in seconds:
the echo responder repeats the latest user message (or reports function outputs), which shows
what the *new* server session holds in its conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from reliability_fixtures import until

from realtime_nb import Session
from realtime_nb.client import EventLog, Mirror, RealtimeError, RenewPolicy
from realtime_nb.client.mirror import ItemState
from realtime_nb.client.renew import plan_carry
from realtime_nb.client.testing import FakeRealtimeServer
from realtime_nb.server import LocalServer
from realtime_nb.widgets._compact import compact_log
from realtime_nb.widgets._lanes import build_lanes

SILENCE = b"\0\0" * 12000  # 0.5 s


@pytest.fixture(scope="module")
def engines():
    from realtime_nb.server.engines import Engines

    return Engines.default()


@contextlib.asynccontextmanager
async def limited_server(engines, max_duration_s: float, *,
                         warm_up: bool) -> AsyncIterator[LocalServer]:
    """A local server whose sessions expire after ``max_duration_s``, stopped on exit."""
    srv = LocalServer(port=0, engines=engines, max_duration_s=max_duration_s)
    await srv.start(warm_up=warm_up)
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def short_server(engines):
    async with limited_server(engines, 3, warm_up=False) as srv:
        yield srv


def get_weather(city: str) -> dict:
    """Current weather of a city."""
    return {"city": city, "sky": "sunny"}


async def reply_text(s: Session) -> str:
    """Create a text response (no new user item) and return what the assistant said."""
    mark = len(s.events)
    await s.create_response(output_modalities=["text"], tool_choice="none")
    done = await s.wait_for("response.done", since=mark, timeout=20)
    return s.responses[done["response"]["id"]].text


async def test_renewal_carries_config_conversation_and_keeps_one_log(short_server) -> None:
    s = Session(url=short_server.url, renew=RenewPolicy(margin_s=1.0), record=False)
    dones: list[str] = []
    renewed: list[dict] = []
    s.on("response.done", lambda ev: dones.append(ev["response"]["id"]))
    s.on("realtime_nb.renewed", renewed.append)
    await s.connect()
    first_id = s.mirror.session_id
    await s.update(instructions="Be brief.", voice="verse", turn_detection=None)
    await s.use_tools(get_weather, respond=True)
    before = await s.say("apples and pears", output_modalities=["text"])
    assert before.text == 'You said: "apples and pears".'
    await until(lambda: s.seams, timeout=15)
    seam = s.seams[0]
    assert s.state in ("connected", "renewing")
    await until(lambda: s.state == "connected", timeout=15)
    # the seam marker: both ids, what was carried
    assert seam["old_session_id"] == first_id and seam["reason"] == "expires_at"
    assert seam["new_session_id"] != first_id
    user_id = next(i.id for i in s.items.list() if i.role == "user")
    assert user_id in seam["carried"] and before.output[0].id in seam["carried"]
    assert renewed and renewed[0]["new_session_id"] == seam["new_session_id"]
    # the new session sees the old conversation: the echo repeats the pre-seam user message
    assert await reply_text(s) == 'You said: "apples and pears".'
    # config carried: instructions, voice, turn detection, tools
    cfg = s.config
    assert cfg["id"] != first_id
    assert cfg["instructions"] == "Be brief."
    assert cfg["audio"]["output"]["voice"] == "verse"
    assert cfg["audio"]["input"]["turn_detection"] is None
    assert [t["name"] for t in cfg["tools"]] == ["get_weather"]
    # a turn after the seam works as usual, callbacks registered before it still fire
    after = await s.say("plums", output_modalities=["text"])
    assert after.text == 'You said: "plums".'
    assert before.id in dones and after.id in dones
    # one continuous log: the seam just before the new session's session.created, no
    # disconnect reported, carried creates noted
    log = s.events
    seam_entry = log.of_type("realtime_nb.renewed")[0]
    nxt = log.entries[log.entries.index(seam_entry) + 1]
    assert nxt.type == "session.created" and nxt.event["session"]["id"] == seam["new_session_id"]
    assert not log.of_type("realtime_nb.disconnected")
    carried_creates = [e for e in log.of_type("conversation.item.create") if e.note == "carried"]
    assert [e.event["item"]["id"] for e in carried_creates][:len(seam["carried"])] == \
        seam["carried"]
    # the mirror: each item once, carried items keep their place and first session
    ids = list(s.items)
    assert len(ids) == len(set(ids))
    assert ids[:2] == seam["carried"][:2]
    item = s.items[user_id]
    assert item.session_id == first_id and seam["new_session_id"] in item.carried_into
    assert item.text == "apples and pears"
    # a mirror rebuilt from the log agrees
    replay = Mirror.from_log(log)
    assert list(replay.items) == ids
    assert replay.items[user_id].carried_into == item.carried_into
    await s.close()


async def test_function_calls_and_outputs_are_carried(short_server) -> None:
    s = Session(url=short_server.url, renew=RenewPolicy(margin_s=1.0), record=False)
    await s.connect()
    await s.update(turn_detection=None)
    await s.use_tools(get_weather, respond=False)  # the output ends the conversation
    await s.say("what is the weather in Paris", output_modalities=["text"])
    await s.wait_for(lambda e: e.get("type") == "conversation.item.added"
                     and e["item"]["type"] == "function_call_output", since=0)
    n = len(s.seams)
    await until(lambda: len(s.seams) > n and s.state == "connected", timeout=15)
    seam = s.seams[-1]
    kinds = [s.items[i].type for i in seam["carried"]]
    assert kinds == ["message", "function_call", "function_call_output"]
    # the echo reports the carried function output under the carried call's name
    text = await reply_text(s)
    assert text == 'get_weather returned {"city": "Paris", "sky": "sunny"}.'
    await s.close()


@pytest.fixture
async def audio_server(engines):
    """Warm engines and a 6 s limit: a cold Whisper load must not outlast the session."""
    async with limited_server(engines, 6, warm_up=True) as srv:
        yield srv


async def test_audio_turns_before_and_after_the_seam(audio_server, tmp_path) -> None:
    from conftest import espeak_wav

    from realtime_nb.audio import to_pcm16

    first = to_pcm16(espeak_wav(tmp_path / "a.wav", "The blue whale is big."))
    second = to_pcm16(espeak_wav(tmp_path / "b.wav", "Green apples are sour."))
    s = Session(url=audio_server.url, renew=RenewPolicy(margin_s=2.0, wait_s=3),
                record=False)
    await s.connect()
    await s.update(turn_detection=None, transcription={"model": "whisper-1"})
    await s.send_audio(first)
    done = await s.commit(wait=True)
    user_id = done["item_id"]
    mark = len(s.events)
    await s.create_response()  # spoken answer (audio + transcript)
    resp = await s.wait_for("response.done", since=mark, timeout=30)
    assistant = s.responses[resp["response"]["id"]].output[0]
    await until(lambda: s.items[user_id].transcript_done, timeout=30)
    heard = s.items[user_id].transcript
    assert "whale" in heard.lower()
    assert assistant.audio_bytes and "whale" in assistant.transcript.lower()
    n = len(s.seams)
    await until(lambda: len(s.seams) > n and s.state == "connected", timeout=15)
    seam = s.seams[-1]
    assert user_id in seam["carried"] and assistant.id in seam["carried"]
    created = {e.event["item"]["id"]: e.event["item"] for e in
               s.events.of_type("conversation.item.create") if e.note == "carried"}
    assert created[user_id]["content"] == [{"type": "input_text", "text": heard}]
    assert created[assistant.id]["content"][0]["type"] == "output_text"
    # the user's recording and the answer's audio stay with their items across the seam
    assert s.items[user_id].audio_bytes and s.items[assistant.id].audio_bytes
    # the new session's conversation holds the old audio turn as its transcript
    assert "whale" in (await reply_text(s)).lower()
    # an audio turn after the seam
    await s.send_audio(second + SILENCE)
    done2 = await s.commit(wait=True)
    assert done2["item_id"] != user_id
    text = await reply_text(s)
    assert "apple" in text.lower()
    await s.close()


async def test_unexpected_session_expired_renews_without_reporting_a_loss() -> None:
    async with FakeRealtimeServer() as fake:
        s = Session(url=fake.url, renew=True, record=False)  # default margin: no timer yet
        lost: list[dict] = []
        errors: list[dict] = []
        s.on("realtime_nb.disconnected", lost.append)
        s.on("error", errors.append)
        await s.connect()
        await s.update(instructions="Stay.", turn_detection=None)
        await s.create_item(text="remember me", wait=True)
        waiting = asyncio.ensure_future(s.wait_for("conversation.item.added", timeout=20))
        old = s.mirror.session_id
        await fake.push({"type": "error", "event_id": "event_x", "error": {
            "type": "invalid_request_error", "code": "session_expired",
            "message": "Your session hit the maximum duration of 60 minutes.",
            "param": None, "event_id": None}})
        await fake.close_all(1001, "session expired")
        await until(lambda: s.seams and s.state == "connected", timeout=15)
        seam = s.seams[0]
        assert seam["reason"] == "session_expired" and seam["old_session_id"] == old
        assert not lost and not errors and s.last_error is None
        # a wait begun before the seam is answered by the new session (the carried item)
        added = await waiting
        assert added["item"]["id"] in seam["carried"]
        assert s.config["instructions"] == "Stay."
        assert s.events.of_type("error")  # the server's error is still in the log
        await s.close()


async def test_renew_false_still_surfaces_session_expired(short_server) -> None:
    s = Session(url=short_server.url, record=False)
    await s.connect()
    with pytest.raises(RealtimeError) as info:
        await s.wait_for("never.happens", timeout=10)
    assert info.value.code == "session_expired"
    await until(lambda: s.state == "disconnected", timeout=15)
    assert not s.seams and s.last_error.code == "session_expired"
    await s.close()


async def test_in_flight_response_finishes_before_the_switch_and_sends_queue() -> None:
    async with FakeRealtimeServer(reply_text="One. Two. Three. Four.",
                                  reply_audio_ms=300) as fake:
        fake.audio_interval = 0.05
        s = Session(url=fake.url, renew=RenewPolicy(wait_s=10), record=False)
        await s.connect()
        await s.update(turn_detection=None)
        await s.create_item(text="Count.")
        await s.create_response()
        await until(lambda: s.events.of_type("response.output_audio.delta"), timeout=15)
        renewal = asyncio.ensure_future(s.renew())
        await asyncio.sleep(0)
        seam = await renewal
        dones = s.events.of_type("response.done")
        marker = s.events.of_type("realtime_nb.renewed")[0]
        assert dones and dones[0].seq < marker.seq  # the answer ended before the switch
        assert s.responses[dones[0].event["response"]["id"]].status == "completed"
        assert seam["waited_s"] > 0
        # a send made while the switch is under way goes to the new session, after the carry
        renewal = asyncio.ensure_future(s.renew())
        for _ in range(100):  # the switch is quick on loopback: catch it between loop turns
            if s.state == "renewing":
                break
            await asyncio.sleep(0)
        assert s.state == "renewing"
        sent = await s.create_item(text="during the switch")
        await renewal
        added = await s.wait_for(lambda e: e.get("type") == "conversation.item.added"
                                 and e["item"]["id"] == sent["item"]["id"], since=0)
        assert added["item"]["id"] in s.items
        assert list(s.items)[-1] == sent["item"]["id"]
        await s.close()


async def test_a_response_cut_by_the_wait_limit_ends_incomplete() -> None:
    async with FakeRealtimeServer(reply_text="One. Two. Three. Four. Five. Six.",
                                  reply_audio_ms=400) as fake:
        fake.audio_interval = 0.1
        s = Session(url=fake.url, renew=RenewPolicy(wait_s=0), record=False)
        await s.connect()
        answer = asyncio.ensure_future(s.say("Count."))
        await until(lambda: s.events.of_type("response.output_audio.delta"), timeout=15)
        rid = s.mirror.active_response_id
        next_seam = asyncio.ensure_future(s.wait_for("realtime_nb.renewed"))
        seam = await s.renew()
        assert seam["cut_responses"] == [rid] and (await next_seam)["cut_responses"] == [rid]
        rs = await asyncio.wait_for(answer, 5)  # say() ends with the cut response
        assert rs.id == rid and rs is s.responses[rid]
        assert rs.status == "incomplete" and rs.status_details["reason"] == "renewed"
        assert Mirror.from_log(s.events).responses[rid].status_details["reason"] == "renewed"
        await s.close()


async def test_timeline_shows_the_seam_with_both_ids() -> None:
    async with FakeRealtimeServer() as fake:
        s = Session(url=fake.url, renew=True, record=False)
        await s.connect()
        await s.create_item(text="hello", wait=True)
        seam = await s.renew()
        lanes = build_lanes(compact_log(s.events))
        assert len(lanes.seams) == 1
        got = lanes.seams[0]
        assert (got.old_session_id, got.new_session_id) == (seam["old_session_id"],
                                                             seam["new_session_id"])
        assert got.carried == 1 and got.label.startswith("renewed sess_")
        assert lanes.summary()["seams"] == [[got.seq, got.old_session_id, got.new_session_id]]
        assert any(m.type == "realtime_nb.renewed" for m in lanes.marks["l"])
        # the buffer level starts over at the seam, like after a reconnect
        events = compact_log(s.events)
        at = next(e for e in events if e["y"] == "realtime_nb.renewed")
        assert at["b"] == [0.0, 0.0]
        await s.close()


def _item(i: str, role: str | None = "user", text: str = "", kind: str = "message",
          **kw) -> ItemState:
    it = ItemState(i, type=kind, role=role, status="completed", text=text,
                   in_conversation=True, **kw)
    return it


def test_plan_carry_limits_and_pairs() -> None:
    items = [
        _item("a", text="x" * 50),
        _item("b", role=None, kind="function_call", name="f", call_id="c1", arguments="{}"),
        _item("c", role=None, kind="function_call_output",
              item={"type": "function_call_output", "call_id": "c1", "output": "ok"}),
        _item("d", audio_chunks=[b"\0\0" * 10]),  # audio without a transcript
        _item("e", role="assistant", text="y" * 20),
    ]
    plan = plan_carry(items, RenewPolicy(max_items=None, max_chars=None))
    assert plan.carried == ["a", "b", "c", "e"]
    assert plan.dropped == [("d", "no text (audio without a transcript)")]
    # a char budget keeps the newest contiguous tail; an output never goes without its call
    plan = plan_carry(items, RenewPolicy(max_items=None, max_chars=25))
    assert plan.carried == ["b", "c", "e"]
    assert ("a", "over the carry limit") in plan.dropped
    plan = plan_carry(items, RenewPolicy(max_items=2, max_chars=None))
    assert plan.carried == ["e"]  # "c" made the cut but its call "b" did not
    assert ("c", "its function_call was not carried") in plan.dropped
    assert ("b", "over the carry limit") in plan.dropped
    # a barge-in-truncated answer carries the part that was heard (proportionally)
    cut = _item("t", role="assistant", transcript="abcdefghij", audio_chunks=[b"\0" * 4800],
                truncated_ms=50)
    plan = plan_carry([cut], RenewPolicy())
    assert plan.items[0]["content"] == [{"type": "output_text", "text": "abcde"}]


def test_plan_carry_keeps_mcp_calls_with_results_and_drops_listings_and_approvals() -> None:
    """An MCP call with its output (or error) is context the model keeps; the listing is made
    again by the new session from its config, and approvals belong to the old session."""
    items = [
        _item("l", role=None, kind="mcp_list_tools", server_label="calc",
              tools=[{"name": "add_numbers"}], mcp_state="completed"),
        _item("q", role=None, kind="mcp_approval_request", server_label="calc",
              name="add_numbers", arguments='{"a": 2, "b": 40}', mcp_state="approved"),
        _item("r", role=None, kind="mcp_approval_response", approval_request_id="q",
              approve=True),
        _item("k", role=None, kind="mcp_call", server_label="calc", name="add_numbers",
              arguments='{"a": 2, "b": 40}', output="42", approval_request_id="q",
              mcp_state="completed"),
        _item("f", role=None, kind="mcp_call", server_label="calc", name="fail_loudly",
              arguments="{}", error={"type": "tool_execution_error", "message": "no"},
              mcp_state="failed"),
        _item("w", role=None, kind="mcp_call", server_label="calc", name="add_numbers",
              arguments="{}", mcp_state="in_progress"),
        _item("p", role=None, kind="mcp_approval_request", server_label="calc",
              name="add_numbers", arguments="{}", mcp_state="pending"),
    ]
    plan = plan_carry(items, RenewPolicy(max_items=None, max_chars=None))
    assert plan.carried == ["k", "f"]
    assert plan.items[0] == {"type": "mcp_call", "id": "k", "server_label": "calc",
                             "name": "add_numbers", "arguments": '{"a": 2, "b": 40}',
                             "output": "42"}
    assert plan.items[1]["error"] == {"type": "tool_execution_error", "message": "no"}
    assert "output" not in plan.items[1]
    why = dict(plan.dropped)
    assert why["l"].startswith("the new session lists the MCP server's tools again")
    assert why["q"] == why["r"] == (
        "an answered MCP approval (the call it allowed is carried with its result)")
    assert why["w"] == "MCP call without a result"
    assert why["p"] == "an unanswered MCP approval request (the new session never asked it)"
    # name, arguments and result count against the character budget (f: 65, k: 30)
    plan = plan_carry(items, RenewPolicy(max_items=None, max_chars=70))
    assert plan.carried == ["f"]


def test_seam_survives_a_saved_log(tmp_path) -> None:
    log = EventLog()
    log.add("server", {"type": "session.created", "session": {"id": "sess_old"}})
    log.marker("realtime_nb.renewed", old_session_id="sess_old", new_session_id="sess_new",
               reason="expires_at", carried=[], dropped=[], waited_s=0.0)
    log.add("server", {"type": "session.created", "session": {"id": "sess_new"}})
    path = tmp_path / "trace.jsonl"
    log.to_jsonl(path)
    back = EventLog.from_jsonl(path)
    lanes = build_lanes(compact_log(back))
    assert [(x.old_session_id, x.new_session_id) for x in lanes.seams] == [
        ("sess_old", "sess_new")]


async def test_the_recording_folder_holds_one_log_across_the_seam(tmp_path) -> None:
    async with FakeRealtimeServer() as fake:
        s = Session(url=fake.url, renew=True, record=tmp_path)
        await s.connect()
        await s.say("before", output_modalities=["text"])
        seam = await s.renew()
        await s.say("after", output_modalities=["text"])
        folder = s.recording_folder
        live = [(i.id, i.content_text, i.carried_into) for i in s.items.list()]
        await s.close()
    assert folder is not None and folder.parent == tmp_path
    back = EventLog.from_folder(folder)
    marks = back.of_type("realtime_nb.renewed")
    assert [m.event["new_session_id"] for m in marks] == [seam["new_session_id"]]
    created = [e.event["session"]["id"] for e in back.of_type("session.created")]
    assert created == [seam["old_session_id"], seam["new_session_id"]]
    replay = Mirror.from_log(back)
    assert [(i.id, i.content_text, i.carried_into) for i in replay.items.list()] == live
    assert [len(i.carried_into) for i in replay.items.list()] == [1, 1, 0, 0]
