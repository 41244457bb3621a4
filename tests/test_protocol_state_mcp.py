"""The state machine's MCP flow: listings, calls inside responses, approvals (scripted;
the MCP work itself is handed out as jobs and answered here).
"""

from __future__ import annotations

from state_fixtures import core, manual, types

from realtime_nb.protocol import Reply, SessionCore

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
