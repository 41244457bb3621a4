"""MCP tools on the local server, driven by the official ``openai`` SDK against a real MCP server.

The MCP server is the ``mcp`` package's MCPServer over streamable HTTP on loopback
(``mcp_fixtures.py``). Every server event is parsed with the SDK's ``RealtimeServerEvent`` type
adapter, so the MCP items and events have the service's shapes. What these tests pin about the
order of events is what the official clients show of the service (see the README's MCP section):
listing items are made outside responses; a call's arguments stream inside the response and the
call runs before ``response.done``; the model answers from the output only on the next
``response.create``; a call needing approval ends its response at the approval request, and an
approving ``mcp_approval_response`` runs it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp_fixtures import mcp_server  # noqa: F401  (fixture)
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter
from widget_comm import recording_comm  # noqa: F401  (fixture)

from realtime_nb.server import LocalServer

pytest.importorskip("mcp")

ADAPTER = TypeAdapter(RealtimeServerEvent)
LABEL = "calc"


@pytest.fixture
async def server():
    srv = await LocalServer().start(warm_up=False)  # text turns: no speech engines needed
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
def mcp(mcp_server):  # noqa: F811
    mcp_server.reset()
    return mcp_server


def client_for(server: LocalServer) -> AsyncOpenAI:
    return AsyncOpenAI(api_key="sk-local", base_url="http://127.0.0.1:9/v1",
                       websocket_base_url=server.base_url)


async def collect(conn: Any, until: str, timeout: float = 60.0, *,
                  where: Any = None) -> list[dict[str, Any]]:
    """Receive events until one of type ``until`` (and matching ``where``); each one is parsed
    with the SDK's RealtimeServerEvent adapter."""
    events: list[dict[str, Any]] = []

    async def run() -> None:
        while True:
            ev = json.loads(await conn.recv_bytes())
            ADAPTER.validate_python(ev)
            events.append(ev)
            if ev["type"] == until and (where is None or where(ev)):
                return

    await asyncio.wait_for(run(), timeout)
    return events


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def mcp_tool(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": LABEL, "server_url": url, **extra}


async def configure(conn: Any, *tools: dict[str, Any]) -> list[dict[str, Any]]:
    """session.update with text output and ``tools``; events up to the listing's item.done."""
    await collect(conn, "session.created")
    await conn.session.update(session={"type": "realtime", "output_modalities": ["text"],
                                       "tools": list(tools)})
    return await collect(conn, "conversation.item.done",
                         where=lambda e: e["item"]["type"] == "mcp_list_tools")


async def ask(conn: Any, text: str) -> list[dict[str, Any]]:
    await conn.conversation.item.create(item={"type": "message", "role": "user",
                                              "content": [{"type": "input_text", "text": text}]})
    await conn.response.create()
    return await collect(conn, "response.done")


def answer_text(done: dict[str, Any]) -> str:
    return " ".join(part.get("text", "") for item in done["response"]["output"]
                    if item["type"] == "message" for part in item["content"])


async def test_session_update_with_an_mcp_tool_lists_its_tools(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        events = await configure(conn, mcp_tool(mcp.url, require_approval="never"))
    kinds = types_of(events)
    assert kinds.index("session.updated") < kinds.index("mcp_list_tools.in_progress")
    added = next(e for e in events if e["type"] == "conversation.item.added")
    item_id = added["item"]["id"]
    assert added["item"]["type"] == "mcp_list_tools" and added["item"]["tools"] == []
    assert kinds[kinds.index("conversation.item.added"):] == [
        "conversation.item.added", "mcp_list_tools.in_progress", "mcp_list_tools.completed",
        "conversation.item.done"]
    assert all(e["item_id"] == item_id for e in events if e["type"].startswith("mcp_list"))
    done = events[-1]["item"]
    assert done["id"] == item_id and done["server_label"] == LABEL
    tools = {t["name"]: t for t in done["tools"]}
    assert set(tools) == {"add_numbers", "fail_loudly", "erase_everything"}
    assert tools["add_numbers"]["input_schema"]["required"] == ["a", "b"]
    assert tools["add_numbers"]["description"] == "Add two integers."
    assert tools["add_numbers"]["annotations"] == {"read_only": True}


async def test_a_user_turn_naming_a_tool_runs_the_call_and_the_next_response_uses_its_output(
        server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await configure(conn, mcp_tool(mcp.url, require_approval="never"))
        events = await ask(conn, "Please add numbers 2 and 40.")
        kinds = types_of(events)
        call_events = [k for k in kinds if "mcp_call" in k or k.startswith("response.output_item")
                       or k == "response.done"]
        deltas = kinds.count("response.mcp_call_arguments.delta")
        assert deltas >= 1
        assert call_events == (["response.output_item.added"]
                               + ["response.mcp_call_arguments.delta"] * deltas
                               + ["response.mcp_call_arguments.done",
                                  "response.mcp_call.in_progress", "response.mcp_call.completed",
                                  "response.output_item.done", "response.done"])
        done = events[-1]["response"]
        assert done["status"] == "completed"
        [item] = done["output"]
        assert item["type"] == "mcp_call" and item["server_label"] == LABEL
        assert item["name"] == "add_numbers"
        assert json.loads(item["arguments"]) == {"a": 2, "b": 40}
        assert item["output"] == "42" and item["error"] is None
        assert item["approval_request_id"] is None
        assert mcp.calls == [("add_numbers", {"a": 2, "b": 40})]
        # the model does not answer in the same response; the next one uses the output
        await conn.response.create()
        follow = await collect(conn, "response.done")
    assert "42" in answer_text(follow[-1])
    assert "add_numbers" in answer_text(follow[-1])


async def test_a_failing_tool_gives_mcp_call_failed_and_the_items_error(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await configure(conn, mcp_tool(mcp.url, require_approval="never"))
        events = await ask(conn, "fail loudly reason tuesday")
        kinds = types_of(events)
        assert "response.mcp_call.failed" in kinds and "response.mcp_call.completed" not in kinds
        assert kinds.index("response.mcp_call.in_progress") < kinds.index(
            "response.mcp_call.failed") < kinds.index("response.output_item.done")
        [item] = events[-1]["response"]["output"]
        assert item["name"] == "fail_loudly" and item["output"] is None
        assert item["error"]["type"] == "tool_execution_error"
        assert "refused on purpose: tuesday" in item["error"]["message"]
        await conn.response.create()
        follow = await collect(conn, "response.done")
    assert "fail_loudly failed" in answer_text(follow[-1])


async def test_an_unreachable_server_url_gives_mcp_list_tools_failed_with_the_reason(server):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.session.update(session={"type": "realtime", "tools": [
            mcp_tool("http://127.0.0.1:9/mcp", require_approval="never")]})
        events = await collect(conn, "conversation.item.done",
                               where=lambda e: e["item"]["type"] == "mcp_list_tools")
    kinds = types_of(events)
    assert "mcp_list_tools.completed" not in kinds
    assert kinds.index("mcp_list_tools.in_progress") < kinds.index("mcp_list_tools.failed")
    [err] = [e for e in events if e["type"] == "error"]
    assert err["error"]["code"] == "mcp_list_tools_failed"
    assert "Could not reach MCP server 'calc'" in err["error"]["message"]
    assert events[-1]["item"]["tools"] == []


async def test_a_connector_cannot_work_offline_and_says_so(server):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.session.update(session={"type": "realtime", "tools": [
            {"type": "mcp", "server_label": "cal", "connector_id": "connector_googlecalendar",
             "authorization": "ya29.secret-token"}]})
        events = await collect(conn, "conversation.item.done",
                               where=lambda e: e["item"]["type"] == "mcp_list_tools")
    [err] = [e for e in events if e["type"] == "error"]
    assert "connector_googlecalendar" in err["error"]["message"]
    assert "mcp_list_tools.failed" in types_of(events)
    assert "ya29.secret-token" not in json.dumps(events)


async def test_allowed_tools_filters_the_listing_and_what_the_model_can_call(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        events = await configure(conn, mcp_tool(mcp.url, require_approval="never",
                                                allowed_tools=["add_numbers"]))
        assert [t["name"] for t in events[-1]["item"]["tools"]] == ["add_numbers"]
        reply = await ask(conn, "erase everything now")
    output = reply[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message"]
    assert mcp.calls == []


async def test_allowed_tools_filter_object_keeps_read_only_tools(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        events = await configure(conn, mcp_tool(mcp.url, allowed_tools={"read_only": True}))
    assert [t["name"] for t in events[-1]["item"]["tools"]] == ["add_numbers"]


async def test_require_approval_always_asks_then_an_approval_runs_the_call(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await configure(conn, mcp_tool(mcp.url, require_approval="always"))
        events = await ask(conn, "Please add numbers 2 and 40.")
        done = events[-1]["response"]
        call, request = done["output"]
        assert call["type"] == "mcp_call" and call["output"] is None
        assert request == {"id": call["approval_request_id"], "type": "mcp_approval_request",
                           "server_label": LABEL, "name": "add_numbers",
                           "arguments": call["arguments"]}
        kinds = types_of(events)
        assert "response.mcp_call.in_progress" not in kinds
        assert mcp.calls == []
        await conn.conversation.item.create(item={
            "type": "mcp_approval_response", "id": "approval_1",
            "approval_request_id": request["id"], "approve": True, "reason": "fine"})
        after = await collect(conn, "conversation.item.done",
                              where=lambda e: e["item"]["id"] == call["id"])
        kinds = types_of(after)
        assert kinds.index("response.mcp_call.in_progress") < kinds.index(
            "response.mcp_call.completed")
        ran = after[-1]["item"]
        assert ran["output"] == "42" and ran["approval_request_id"] == request["id"]
        assert mcp.calls == [("add_numbers", {"a": 2, "b": 40})]
        await conn.response.create()
        follow = await collect(conn, "response.done")
    assert "add_numbers returned 42" in answer_text(follow[-1])


async def test_a_denied_approval_never_runs_the_call(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await configure(conn, mcp_tool(mcp.url))  # require_approval left out: "always"
        events = await ask(conn, "Please add numbers 2 and 40.")
        request = events[-1]["response"]["output"][1]
        await conn.conversation.item.create(item={
            "type": "mcp_approval_response", "id": "approval_2",
            "approval_request_id": request["id"], "approve": False, "reason": "not today"})
        await collect(conn, "conversation.item.done",
                      where=lambda e: e["item"]["id"] == "approval_2")
        await conn.response.create()
        follow = await collect(conn, "response.done")
    kinds = types_of(follow)
    assert "response.mcp_call.in_progress" not in kinds
    assert mcp.calls == []
    assert "I did not run add_numbers: not today." in answer_text(follow[-1])


async def test_per_tool_approval_never_filter_skips_approval_for_named_tools(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await configure(conn, mcp_tool(mcp.url, require_approval={
            "never": {"tool_names": ["add_numbers"]}}))
        plain = await ask(conn, "Please add numbers 1 and 2.")
        asked = await ask(conn, "fail loudly reason monday")
    assert [i["type"] for i in plain[-1]["response"]["output"]] == ["mcp_call"]
    assert plain[-1]["response"]["output"][0]["output"] == "3"
    assert [i["type"] for i in asked[-1]["response"]["output"]] == [
        "mcp_call", "mcp_approval_request"]


async def test_an_approval_for_an_unknown_request_is_refused(server):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.conversation.item.create(item={
            "type": "mcp_approval_response", "id": "approval_3",
            "approval_request_id": "item_nope", "approve": True})
        [err] = await collect(conn, "error")
    assert err["error"]["code"] == "item_not_found"
    assert err["error"]["param"] == "item.approval_request_id"


async def test_authorization_and_headers_reach_the_mcp_server_but_not_the_echo(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        events = await configure(conn, mcp_tool(mcp.url, authorization="tok-123",
                                                headers={"X-Tenant": "blue"}))
    updated = next(e for e in events if e["type"] == "session.updated")
    [echoed] = updated["session"]["tools"]
    assert "authorization" not in echoed and echoed["headers"] == {"X-Tenant": "blue"}
    assert "tok-123" not in json.dumps(events)
    assert mcp.headers and all(h.get("authorization") == "Bearer tok-123" for h in mcp.headers)
    assert all(h.get("x-tenant") == "blue" for h in mcp.headers)


async def test_a_response_level_mcp_tool_is_listed_before_the_response_runs(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "add numbers 5 and 6"}]})
        await conn.response.create(response={
            "output_modalities": ["text"],
            "tools": [mcp_tool(mcp.url, require_approval="never")]})
        events = await collect(conn, "response.done")
    kinds = types_of(events)
    assert kinds.index("mcp_list_tools.completed") < kinds.index("response.output_item.added")
    assert events[-1]["response"]["output"][0]["output"] == "11"


# ------------------------------------------------------------------ our own Session

async def test_session_create_item_sends_an_mcp_approval_response_and_mirrors_the_mcp_items(
        server, mcp):
    """Regression: the Session's validator refused ``mcp_approval_response`` items, so an
    approval could not be sent through ``create_item``."""
    from realtime_nb import Session
    from realtime_nb.widgets.transcript import TranscriptView

    async with Session(url=server.url, record=False) as s:
        await s.update(output_modalities=["text"], tools=[mcp_tool(mcp.url)])
        await s.wait_for(lambda e: e.get("type") == "conversation.item.done"
                         and e["item"]["type"] == "mcp_list_tools")
        reply = await s.say("Please add numbers 2 and 40.")
        [request] = s.pending_approvals
        assert (request.server_label, request.name) == (LABEL, "add_numbers")
        assert [it.type for it in reply.output] == ["mcp_call", "mcp_approval_request"]
        added = await s.create_item({"type": "mcp_approval_response", "id": "appr_1",
                                     "approval_request_id": request.id, "approve": False,
                                     "reason": "ask me later"}, wait=True)
        assert added["item"]["type"] == "mcp_approval_response"
        assert s.pending_approvals == []
        assert request.mcp_state == "denied" and request.reason == "ask me later"
        assert mcp.calls == []
        answer = await s.say("Add numbers 3 and 4 please.")
        [again] = s.pending_approvals
        await s.approve_mcp(again, reason="ok")  # waits for the call, then asks for the answer
        final = await s.wait_for("response.done")
        call = next(it for it in answer.output if it.type == "mcp_call")
        assert s.items[call.id].output == "7" and s.items[call.id].mcp_state == "completed"
        assert "add_numbers returned 7" in " ".join(
            part.get("text", "") for item in final["response"]["output"]
            for part in item.get("content", []))
        view = TranscriptView(s, players=False)
        rows = " ".join(view.rows.values())
    assert "tools: add_numbers, fail_loudly, erase_everything" in rows
    assert "may I run add_numbers({&quot;a&quot;: 2, &quot;b&quot;: 40})?" in rows
    assert "denied (ask me later)" in rows
    assert "→ 7" in rows
    assert mcp.calls == [("add_numbers", {"a": 3, "b": 4})]


async def test_a_renewal_carries_the_mcp_call_and_expires_a_pending_approval(server, mcp):
    """At a renewal seam the completed call (with its output) is re-created in the new server
    session, the new session lists the tools again from the carried config, and an approval
    request left unanswered expires: it leaves ``pending_approvals`` and answering it is
    refused before anything is sent."""
    from realtime_nb import Session
    from realtime_nb.client import RealtimeError

    async with Session(url=server.url, record=False) as s:
        await s.update(output_modalities=["text"], tools=[mcp_tool(mcp.url)])
        await s.wait_for("mcp_list_tools.completed")
        await s.say("Please add numbers 2 and 40.")
        [first] = s.pending_approvals
        await s.approve_mcp(first)
        await s.wait_for("response.done")
        call = next(it for it in s.items.list() if it.type == "mcp_call")
        assert call.output == "42"
        await s.say("Add numbers 3 and 4 please.")
        [stale] = s.pending_approvals
        mark = len(s.events)
        seam = await s.renew()
        assert call.id in seam["carried"]
        why = dict(map(tuple, seam["dropped"]))
        assert why[first.id].startswith("an answered MCP approval")
        assert why[stale.id].startswith("an unanswered MCP approval request")
        assert any(v.startswith("the new session lists") for v in why.values())
        await s.wait_for("mcp_list_tools.completed", since=mark, timeout=30)
        assert s.pending_approvals == [] and stale.mcp_state == "expired"
        before = len(s.events)
        with pytest.raises(RealtimeError) as info:
            await s.approve_mcp(stale)
        assert info.value.code == "mcp_approval_expired" and "Ask again" in info.value.hint
        assert len(s.events) == before  # nothing was sent
        got = await s.retrieve_item(call.id)
        assert got["item"]["type"] == "mcp_call" and got["item"]["output"] == "42"
        assert s.mirror.session_id == seam["new_session_id"]
    assert mcp.calls == [("add_numbers", {"a": 2, "b": 40})]


async def test_the_session_log_and_recording_never_hold_the_authorization_token(
        server, mcp, tmp_path):
    from realtime_nb import Session

    async with Session(url=server.url, record=tmp_path) as s:
        await s.update(tools=[mcp_tool(mcp.url, authorization="tok-secret-9")])
        await s.wait_for("mcp_list_tools.completed")
        s.events.to_jsonl(tmp_path / "log.jsonl")
        folder = s.recording_folder
    assert "tok-secret-9" not in (tmp_path / "log.jsonl").read_text()
    assert mcp.headers[-1].get("authorization") == "Bearer tok-secret-9"
    for path in folder.iterdir():
        assert b"tok-secret-9" not in path.read_bytes(), path.name


async def test_an_sse_server_url_is_listed_and_called_over_sse(server, mcp):
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"],
                                           "tools": [{"type": "mcp", "server_label": LABEL,
                                                      "server_url": mcp.sse_url,
                                                      "require_approval": "never"}]})
        listed = await collect(conn, "conversation.item.done",
                               where=lambda e: e["item"]["type"] == "mcp_list_tools")
        assert "mcp_list_tools.completed" in types_of(listed)
        events = await ask(conn, "Please add numbers 20 and 22.")
    assert events[-1]["response"]["output"][0]["output"] == "42"
    assert any(h.get("accept") == "text/event-stream" for h in mcp.headers)


async def test_the_session_explains_an_answer_to_no_approval_request(server):
    from realtime_nb import Session
    from realtime_nb.client import RealtimeError

    async with Session(url=server.url, record=False) as s:
        with pytest.raises(RealtimeError) as info:
            await s.approve_mcp("item_nope")
    assert info.value.code == "item_not_found"
    assert "session.pending_approvals" in (info.value.hint or "")


@pytest.mark.usefixtures("recording_comm")
async def test_the_panel_s_approve_button_runs_the_call_and_asks_for_the_answer(server, mcp):
    from realtime_nb import Session
    from realtime_nb.widgets.panel import SessionPanel

    async with Session(url=server.url, record=False) as s:
        panel = SessionPanel(s, timeline=False)
        try:
            await s.update(output_modalities=["text"], tools=[mcp_tool(mcp.url)])
            await s.wait_for("mcp_list_tools.completed")
            await s.say("Please add numbers 2 and 40.")
            panel.refresh()
            [row] = panel.approvals.children
            text, approve, deny = row.children
            assert "may I run <code>add_numbers(" in text.value
            assert (approve.description, deny.description) == ("Approve", "Deny")
            approve.click()
            answer = await s.wait_for("response.done", 30)
            panel.refresh()
            assert panel.approvals.children == ()
        finally:
            panel.close()
    assert mcp.calls == [("add_numbers", {"a": 2, "b": 40})]
    assert "add_numbers returned 42" in json.dumps(answer["response"]["output"])


async def test_the_official_ruby_sdk_s_mcp_approval_example_flow_completes(server, mcp):
    """openai-ruby's examples/realtime/mcp_approval.rb (a smoke test run against the service)
    as a specification: tool_choice names the MCP tool; the approval is sent when the request's
    conversation.item.done arrives; the call's arguments.done belongs to the first response and
    comes before its response.done; the final answer is asked for (tool_choice none) once that
    response is done, the approval sent and response.mcp_call.completed seen."""
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.session.update(session={
            "type": "realtime", "output_modalities": ["text"], "parallel_tool_calls": False,
            "tools": [mcp_tool(mcp.url, require_approval="always")]})
        listing = await collect(conn, "conversation.item.done",
                                where=lambda e: e["item"]["type"] == "mcp_list_tools")
        selected = listing[-1]["item"]["tools"][0]["name"]
        await conn.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Use the configured MCP server."}]})
        await conn.response.create(response={"tool_choice": {
            "type": "mcp", "server_label": LABEL, "name": selected}})
        state: dict[str, Any] = {"args": None, "first_done": False, "approved": False,
                                 "completed": False, "final": None}
        final_asked = False
        while state["final"] is None:
            ev = json.loads(await asyncio.wait_for(conn.recv_bytes(), 30))
            ADAPTER.validate_python(ev)
            kind = ev["type"]
            assert kind not in ("error", "response.mcp_call.failed", "mcp_list_tools.failed")
            if kind == "response.mcp_call_arguments.done":
                assert state["args"] is None, "more than one MCP call"
                state["args"] = (ev["item_id"], ev["response_id"])
            elif kind == "conversation.item.done" and ev["item"]["type"] == (
                    "mcp_approval_request"):
                assert ev["item"]["name"] == selected and not state["approved"]
                await conn.conversation.item.create(item={
                    "type": "mcp_approval_response", "id": "approval_response_1",
                    "approval_request_id": ev["item"]["id"], "approve": True,
                    "reason": "Approved by the example application policy."})
                state["approved"] = True
            elif kind == "response.mcp_call.completed":
                assert state["args"] is not None and ev["item_id"] == state["args"][0]
                state["completed"] = True
            elif kind == "response.done":
                assert ev["response"]["status"] == "completed"
                if final_asked:
                    state["final"] = answer_text(ev)
                    break
                assert state["args"] is not None, "response completed before the MCP call"
                assert ev["response"]["id"] == state["args"][1]
                state["first_done"] = True
            if (not final_asked and state["first_done"] and state["approved"]
                    and state["completed"]):
                await conn.response.create(response={"tool_choice": "none"})
                final_asked = True
    assert state["final"].strip()
    assert mcp.calls and mcp.calls[0][0] == selected
