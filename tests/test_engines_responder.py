"""The local assistant's responders (realtime_nb.server.engines.responder).

Pins down the EchoResponder's deterministic behaviour (echo, no-speech reply, function results,
tool calls by tool_choice and by mention, arguments valid against the tool's JSON schema,
max_output_tokens truncation) and how plain functions are plugged in.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_nb.server.engines.responder import (
    CallableResponder,
    EchoResponder,
    FunctionCall,
    Reply,
    Responder,
    ResponseRequest,
    approx_tokens,
    arguments_for_schema,
    as_responder,
    latest_user_text,
    limit_reply,
)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a place.",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
TIMER = {
    "type": "function",
    "name": "set-timer",
    "description": "Start a countdown.",
    "parameters": {
        "type": "object",
        "properties": {
            "minutes": {"type": "integer", "minimum": 1, "maximum": 120},
            "label": {"type": "string"},
        },
        "required": ["minutes"],
    },
}
RICH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "alerts": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "where": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "country": {"type": ["string", "null"]}},
            "required": ["lat", "country"],
        },
        "mode": {"anyOf": [{"type": "null"}, {"type": "string", "enum": ["fast", "slow"]}]},
        "version": {"const": 2},
    },
    "required": ["city", "unit", "days", "ratio", "alerts", "tags", "where", "mode", "version"],
    "additionalProperties": False,
}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def user_audio(transcript: str | None) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": text}],
    }


def call(call_id: str, name: str, arguments: str = "{}") -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def output(call_id: str, value: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": value}


def echo(*items: dict[str, Any], **kwargs: Any) -> Reply:
    return EchoResponder().respond(ResponseRequest(conversation=list(items), **kwargs))


def test_echo_repeats_the_latest_user_text() -> None:
    reply = echo(user("first"), assistant("ok"), user("Turn on the lights."))
    assert reply == Reply(text='You said: "Turn on the lights.".')


def test_echo_repeats_an_audio_transcript() -> None:
    assert echo(user_audio("hello there")).text == 'You said: "hello there".'


@pytest.mark.parametrize("items", [[], [user_audio(None)], [user_audio("")], [assistant("hi")]])
def test_echo_asks_again_when_nothing_was_heard(items: list[dict[str, Any]]) -> None:
    assert echo(*items).text == "I did not catch that. Could you say it again?"


def test_echo_ignores_system_messages_and_instructions() -> None:
    system = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "x"}]}
    reply = echo(user("hi"), system, instructions="Always answer in French.")
    assert reply.text == 'You said: "hi".'


def test_echo_reports_a_function_result() -> None:
    reply = echo(user("weather?"), call("c1", "get_weather"), output("c1", '{"temp": 21}'),
                 tools=[WEATHER])
    assert reply == Reply(text='get_weather returned {"temp": 21}.')


def test_echo_reports_every_result_of_parallel_calls_in_order() -> None:
    items = [user("x"), call("a", "first"), call("b", "second"), output("a", "1"), output("b", "2")]
    assert echo(*items).text == "first returned 1. second returned 2."


def test_auto_calls_the_tool_the_user_mentions_with_arguments_from_the_words() -> None:
    reply = echo(user("What's the weather in Paris?"), tools=[WEATHER, TIMER])
    assert reply.text == ""
    assert reply.function_calls == (FunctionCall("get_weather", '{"location": "Paris"}'),)


def test_auto_matches_hyphenated_names_and_reads_numbers() -> None:
    reply = echo(user("Please start a timer for ten minutes"), tools=[WEATHER, TIMER])
    (fc,) = reply.function_calls
    assert fc.name == "set-timer"
    assert fc.arguments["minutes"] == 10


def test_auto_matches_camel_case_names() -> None:
    tool = {**WEATHER, "name": "getWeather"}
    assert echo(user("how is the weather"), tools=[tool]).function_calls[0].name == "getWeather"


def test_generic_name_parts_alone_do_not_trigger_a_call() -> None:
    """"get" is part of get_weather but says nothing about weather."""
    reply = echo(user("Can you get me a coffee?"), tools=[WEATHER])
    assert reply.function_calls == ()
    assert reply.text == 'You said: "Can you get me a coffee?".'


def test_tool_choice_none_never_calls() -> None:
    reply = echo(user("weather in Paris"), tools=[WEATHER], tool_choice="none")
    assert reply.function_calls == ()
    assert reply.text.startswith("You said:")


def test_tool_choice_required_calls_the_first_tool_when_none_is_mentioned() -> None:
    reply = echo(user("hello"), tools=[WEATHER, TIMER], tool_choice="required")
    assert [fc.name for fc in reply.function_calls] == ["get_weather"]
    assert reply.function_calls[0].arguments == {"location": "hello"}


def test_tool_choice_required_prefers_the_mentioned_tool() -> None:
    reply = echo(user("a timer for 5 minutes"), tools=[WEATHER, TIMER], tool_choice="required")
    assert reply.function_calls[0].name == "set-timer"
    assert reply.function_calls[0].arguments["minutes"] == 5


def test_named_tool_choice_calls_that_tool_even_unmentioned() -> None:
    reply = echo(user("weather please"), tools=[WEATHER, TIMER],
                 tool_choice={"type": "function", "name": "set-timer"})
    (fc,) = reply.function_calls
    assert fc.name == "set-timer"
    jsonschema.validate(fc.arguments, TIMER["parameters"])


def test_named_tool_choice_for_a_missing_tool_is_an_error() -> None:
    with pytest.raises(ValueError, match="nope"):
        echo(user("hi"), tools=[WEATHER], tool_choice={"type": "function", "name": "nope"})


def test_auto_reports_the_result_instead_of_calling_again() -> None:
    items = [user("weather in Paris"), call("c1", "get_weather"), output("c1", "sunny")]
    assert echo(*items, tools=[WEATHER]).text == "get_weather returned sunny."


def test_required_calls_again_even_after_a_result() -> None:
    """As in the API: 'required' forces a function call in every response."""
    items = [user("weather in Paris"), call("c1", "get_weather"), output("c1", "sunny")]
    reply = echo(*items, tools=[WEATHER], tool_choice="required")
    assert [fc.name for fc in reply.function_calls] == ["get_weather"]


def test_announce_calls_says_a_sentence_before_the_call() -> None:
    responder = EchoResponder(announce_calls=True)
    reply = responder.respond(ResponseRequest(conversation=[user("weather in Oslo")],
                                              tools=[WEATHER]))
    assert reply.text == "Calling get_weather."
    assert reply.function_calls[0].arguments == {"location": "Oslo"}


def test_tool_without_parameters_gets_empty_arguments() -> None:
    tool = {"type": "function", "name": "ping"}
    assert echo(user("ping"), tools=[tool]).function_calls == (FunctionCall("ping", "{}"),)


def test_arguments_fill_every_kind_of_schema_validly() -> None:
    args = arguments_for_schema(RICH_SCHEMA, "forecast for 3 days in Rome", after_match="Rome")
    jsonschema.validate(args, RICH_SCHEMA)
    assert args["unit"] == "celsius"
    assert args["days"] == 3
    assert args["alerts"] is False
    assert args["city"] == "Rome"
    assert args["version"] == 2


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_arguments_are_valid_for_any_utterance(utterance: str) -> None:
    jsonschema.validate(arguments_for_schema(RICH_SCHEMA, utterance), RICH_SCHEMA)
    jsonschema.validate(arguments_for_schema(TIMER["parameters"], utterance), TIMER["parameters"])


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60), st.sampled_from(["auto", "required", "none"]))
def test_echo_always_answers_and_its_calls_carry_valid_json(text: str, choice: str) -> None:
    reply = echo(user(text), tools=[WEATHER, TIMER], tool_choice=choice)
    assert reply.text or reply.function_calls
    tools = {"get_weather": WEATHER, "set-timer": TIMER}
    for fc in reply.function_calls:
        jsonschema.validate(json.loads(fc.arguments_json), tools[fc.name]["parameters"])


def test_echo_is_deterministic() -> None:
    request = ResponseRequest(conversation=[user("weather in Lima for 2 days")], tools=[WEATHER])
    assert EchoResponder().respond(request) == EchoResponder().respond(request)


def test_max_output_tokens_truncates_text_by_words() -> None:
    reply = echo(user("one two three four five six"), max_output_tokens=4)
    assert reply.text == 'You said: "one two'
    assert reply.truncated
    assert approx_tokens(reply.text) == 4


@pytest.mark.parametrize("limit", [None, "inf", 100])
def test_no_truncation_within_the_limit(limit: int | str | None) -> None:
    reply = echo(user("short"), max_output_tokens=limit)
    assert reply == Reply(text='You said: "short".')


def test_text_using_the_whole_budget_drops_the_following_calls() -> None:
    reply = Reply(text="one two three", function_calls=(FunctionCall("f"),))
    assert limit_reply(reply, 3) == Reply(text="one two three", truncated=True)
    assert limit_reply(reply, 4) == reply


def test_latest_user_text_joins_text_and_transcripts() -> None:
    item = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "look:"},
            {"type": "input_audio", "transcript": "a cat"},
            {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
        ],
    }
    assert latest_user_text([user("old"), item, assistant("reply")]) == "look: a cat"


def test_plain_text_function_becomes_a_responder() -> None:
    responder = as_responder(lambda text: text.upper())
    assert isinstance(responder, Responder)
    assert responder.respond(ResponseRequest(conversation=[user("hi there")])) == Reply("HI THERE")


def test_function_annotated_with_request_receives_the_request() -> None:
    def count_items(request: ResponseRequest) -> str:
        return f"{len(request.conversation)} items, {request.instructions}"

    responder = as_responder(count_items)
    reply = responder.respond(ResponseRequest(instructions="be brief", conversation=[user("a")]))
    assert reply.text == "1 items, be brief"


def test_callable_may_return_a_reply_or_a_function_call() -> None:
    request = ResponseRequest(conversation=[user("x")])
    fc = FunctionCall("lookup", '{"q": "x"}')
    assert CallableResponder(lambda _t: fc).respond(request) == Reply(function_calls=(fc,))
    both = Reply(text="Looking.", function_calls=(fc,))
    assert CallableResponder(lambda _t: both).respond(request) == both


def test_callable_result_honours_max_output_tokens() -> None:
    request = ResponseRequest(conversation=[user("x")], max_output_tokens=2)
    reply = CallableResponder(lambda _t: "a b c d").respond(request)
    assert reply == Reply(text="a b", truncated=True)


def test_callable_returning_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="int"):
        CallableResponder(lambda _t: 42).respond(ResponseRequest())


def test_takes_forces_what_the_function_receives() -> None:
    responder = CallableResponder(lambda r: type(r).__name__, takes="request")
    assert responder.respond(ResponseRequest()).text == "ResponseRequest"


def test_responder_objects_pass_through_and_other_things_are_rejected() -> None:
    echo_responder = EchoResponder()
    assert as_responder(echo_responder) is echo_responder
    with pytest.raises(TypeError, match="respond"):
        as_responder(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------ MCP tools

ADD = {"type": "mcp", "server_label": "calc", "name": "add_numbers",
       "description": "Add two integers.", "annotations": None,
       "input_schema": {"type": "object", "properties": {"a": {"type": "integer"},
                                                          "b": {"type": "integer"}},
                        "required": ["a", "b"]}}


def mcp_call_item(output: str | None = None, error: dict | None = None,
                  request: str | None = None) -> dict[str, Any]:
    return {"type": "mcp_call", "id": "item_c", "server_label": "calc", "name": "add_numbers",
            "arguments": '{"a": 2, "b": 40}', "approval_request_id": request, "output": output,
            "error": error}


def test_echo_calls_an_mcp_tool_the_user_names_with_arguments_from_its_input_schema() -> None:
    from realtime_nb.server.engines.responder import McpCall

    reply = echo(user("Please add numbers 2 and 40."), tools=[ADD, WEATHER])
    assert reply.text == ""
    assert reply.function_calls == (McpCall("calc", "add_numbers", '{"a": 2, "b": 40}'),)


def test_echo_honours_an_mcp_tool_choice() -> None:
    from realtime_nb.server.engines.responder import McpCall

    reply = echo(user("hello"), tools=[WEATHER, ADD],
                 tool_choice={"type": "mcp", "server_label": "calc"})
    assert isinstance(reply.function_calls[0], McpCall)
    with pytest.raises(ValueError, match="not among the listed tools"):
        echo(user("hello"), tools=[ADD],
             tool_choice={"type": "mcp", "server_label": "calc", "name": "nope"})


def test_echo_reports_an_mcp_call_s_output_or_error() -> None:
    assert echo(user("add numbers 2 and 40"), mcp_call_item(output="42"),
                tools=[ADD]).text == "add_numbers returned 42."
    failed = mcp_call_item(error={"type": "tool_execution_error", "message": "too big"})
    assert echo(user("add numbers 2 and 40"), failed,
                tools=[ADD]).text == "add_numbers failed: too big."


def test_echo_reports_an_approved_call_after_the_approval_items() -> None:
    request = {"type": "mcp_approval_request", "id": "item_r", "server_label": "calc",
               "name": "add_numbers", "arguments": "{}"}
    approved = {"type": "mcp_approval_response", "id": "a1", "approval_request_id": "item_r",
                "approve": True}
    text = echo(user("add numbers 2 and 40"), mcp_call_item(output="42", request="item_r"),
                request, approved, tools=[ADD]).text
    assert text == "add_numbers returned 42."


def test_echo_says_a_denied_call_was_not_run() -> None:
    request = {"type": "mcp_approval_request", "id": "item_r", "server_label": "calc",
               "name": "add_numbers", "arguments": "{}"}
    denied = {"type": "mcp_approval_response", "id": "a1", "approval_request_id": "item_r",
              "approve": False, "reason": "not now"}
    assert echo(user("add numbers 2 and 40"), mcp_call_item(request="item_r"), request, denied,
                tools=[ADD]).text == "I did not run add_numbers: not now."


def test_an_unrun_mcp_call_waiting_for_approval_is_not_a_result() -> None:
    """A pending call (no output, no error) does not trigger a report: the user turn does."""
    reply = echo(user("what now"), mcp_call_item(request="item_r"), tools=[])
    assert reply.text == 'You said: "what now".'


def test_a_callable_responder_may_return_an_mcp_call() -> None:
    from realtime_nb.server.engines.responder import McpCall

    responder = CallableResponder(lambda text: McpCall("calc", "add_numbers", '{"a": 1}'))
    reply = responder.respond(ResponseRequest(conversation=[user("x")], tools=[ADD]))
    assert reply.function_calls == (McpCall("calc", "add_numbers", '{"a": 1}'),)
