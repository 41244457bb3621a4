"""The job runner's one conversion between the responder's ``Reply`` and the core's.

The responder's :class:`realtime_nb.server.engines.Reply` (objects: ``FunctionCall``,
``McpCall``) is the public engine contract; the core's :class:`realtime_nb.protocol.Reply`
(tuples) is what :class:`~realtime_nb.protocol.SessionCore` takes, because ``protocol`` cannot
import ``server``. :func:`realtime_nb.server.jobs.to_core_reply` is where one becomes the other.
"""

from __future__ import annotations

from types import SimpleNamespace

from realtime_nb.protocol import Reply as CoreReply
from realtime_nb.server.engines import FunctionCall, McpCall, Reply
from realtime_nb.server.jobs import to_core_reply


def test_function_and_mcp_calls_reach_the_core_as_tuples_each_kind_in_its_order() -> None:
    reply = Reply(text="Let me check.", truncated=True, function_calls=(
        FunctionCall("get_weather", '{"city": "Paris"}'),
        McpCall("calc", "add_numbers", '{"a": 2, "b": 40}'),
        FunctionCall("get_time"),
    ))
    assert to_core_reply(reply) == CoreReply(
        text="Let me check.", truncated=True,
        function_calls=[("get_weather", '{"city": "Paris"}'), ("get_time", "{}")],
        mcp_calls=[("calc", "add_numbers", '{"a": 2, "b": 40}')])


def test_a_reply_like_object_missing_fields_reads_as_an_empty_reply() -> None:
    """Custom responders may return their own reply objects; absent attributes are empty."""
    assert to_core_reply(SimpleNamespace(text=None)) == CoreReply()
