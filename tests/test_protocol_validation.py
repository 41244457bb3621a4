"""Client events are judged like the service judges them: same code, param path and message.

The expected texts are the service's (see shared/realtime-protocol.md §6); where the service's
exact text was not captured, the wider API's pattern is used.
"""

from __future__ import annotations

import pytest

from realtime_nb.protocol import (
    AudioConfig,
    AudioInput,
    ProtocolError,
    ServerVad,
    SessionConfig,
    to_wire,
    validate_client_event,
)

SU = "session.update"


def _su(session: dict) -> dict:
    return {"type": SU, "session": session}


def _rt(**fields: object) -> dict:
    return _su({"type": "realtime", **fields})


CASES = [
    ({"type": SU, "turn_detection": None, "session": {"type": "realtime"}},
     "unknown_parameter", "turn_detection", "Unknown parameter: 'turn_detection'."),
    (_su({"instructions": "x"}), "missing_required_parameter", "session.type",
     "Missing required parameter: 'session.type'."),
    (_rt(turn_detection=None), "unknown_parameter", "session.turn_detection",
     "Unknown parameter: 'session.turn_detection'."),
    (_rt(voice="alloy"), "unknown_parameter", "session.voice",
     "Unknown parameter: 'session.voice'."),
    (_rt(temperature=0.8), "unknown_parameter", "session.temperature",
     "Unknown parameter: 'session.temperature'."),
    (_rt(audio={"input": {"format": "pcm16"}}), "invalid_type", "session.audio.input.format",
     "Invalid type for 'session.audio.input.format': expected an object, but got a string "
     "instead."),
    (_rt(audio={"input": {"format": {"type": "audio/pcm", "rate": 16000}}}),
     "integer_below_min_value", "session.audio.input.format.rate",
     "Invalid 'session.audio.input.format.rate': integer below minimum value. Expected a value "
     ">= 24000, but got 16000 instead."),
    (_rt(audio={"input": {"format": {"type": "audio/pcm"}}}), "missing_required_parameter",
     "session.audio.input.format.rate",
     "Missing required parameter: 'session.audio.input.format.rate'."),
    (_rt(audio={"input": {"turn_detection": "None"}}), "invalid_type",
     "session.audio.input.turn_detection",
     "Invalid type for 'session.audio.input.turn_detection': expected an object or null, but "
     "got a string instead."),
    (_rt(audio={"input": {"turn_detection": {"type": "none"}}}), "invalid_value",
     "session.audio.input.turn_detection.type",
     "Invalid value: 'none'. Supported values are: 'server_vad' and 'semantic_vad'."),
    (_rt(audio={"input": {"turn_detection": {"type": "semantic_vad", "threshold": 0.5}}}),
     "unknown_parameter", "session.audio.input.turn_detection.threshold",
     "Unknown parameter: 'session.audio.input.turn_detection.threshold'."),
    (_rt(audio={"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}}),
     "decimal_above_max_value", "session.audio.input.turn_detection.threshold",
     "Invalid 'session.audio.input.turn_detection.threshold': decimal above maximum value. "
     "Expected a value <= 1, but got 1.5 instead."),
    (_rt(audio={"input": {"turn_detection": {"type": "server_vad", "create_response": None}}}),
     "invalid_type", "session.audio.input.turn_detection.create_response",
     "Invalid type for 'session.audio.input.turn_detection.create_response': expected a "
     "boolean, but got null instead."),
    (_rt(output_modalities=["audio", "text"]), "invalid_value", "session.output_modalities",
     "Invalid modalities: ['audio', 'text']. Supported combinations are: ['text'] and "
     "['audio']."),
    (_rt(max_output_tokens=5000), "integer_above_max_value", "session.max_output_tokens",
     "Invalid 'session.max_output_tokens': integer above maximum value. Expected a value <= "
     "4096, but got 5000 instead."),
    (_rt(audio={"input": {"transcription": {"model": "whisper-1", "delay": "bogus"}}}),
     "invalid_value", "session.audio.input.transcription.delay",
     "Invalid value: 'bogus'. Supported values are: 'minimal', 'low', 'medium', 'high', and "
     "'xhigh'."),
    (_rt(audio={"output": {"speed": 2}}), "decimal_above_max_value", "session.audio.output.speed",
     "Invalid 'session.audio.output.speed': decimal above maximum value. Expected a value <= "
     "1.5, but got 2 instead."),
    ({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                  "content": [{"type": "text", "text": "hi"}]}},
     "invalid_value", "item.content[0].type",
     "Invalid value: 'text'. Supported values are: 'input_text' and 'input_audio'."),
    ({"type": "conversation.item.create", "item": {
        "type": "message", "role": "assistant", "content": [{"type": "input_text", "text": "x"}]}},
     "invalid_value", "item.content[0].type",
     "Invalid value: 'input_text'. Value must be 'output_text'."),
    ({"type": "conversation.item.create", "item": {
        "type": "message", "role": "system", "content": [{"type": "text", "text": "x"}]}},
     "invalid_value", "item.content[0].type", "Invalid value: 'text'. Value must be 'input_text'."),
    ({"type": "response.create", "response": {"modalities": ["text"]}}, "unknown_parameter",
     "response.modalities", "Unknown parameter: 'response.modalities'."),
    ({"type": "response.create", "response": {"voice": "alloy"}}, "unknown_parameter",
     "response.voice", "Unknown parameter: 'response.voice'."),
    ({"foo": 1}, "invalid_event", None, "The 'type' field is missing."),
    ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio",
     "Missing required parameter: 'audio'."),
    ({"type": "input_audio_buffer.commit", "event_id": "x" * 600}, "string_above_max_length",
     "event_id", "Invalid 'event_id': string too long. Expected a string with maximum length "
     "512, but got a string with length 600 instead."),
    ({"type": "conversation.item.truncate", "item_id": "i", "content_index": 0,
      "audio_end_ms": -1}, "integer_below_min_value", "audio_end_ms",
     "Invalid 'audio_end_ms': integer below minimum value. Expected a value >= 0, but got -1 "
     "instead."),
]


@pytest.mark.parametrize(("event", "code", "param", "message"), CASES,
                         ids=[f"{c[1]}:{c[2]}" for c in CASES])
def test_error_code_param_and_message_match_the_service(event, code, param, message):
    with pytest.raises(ProtocolError) as info:
        validate_client_event(event)
    assert (info.value.code, info.value.param, info.value.message) == (code, param, message)


def test_unknown_event_type_lists_the_supported_types():
    with pytest.raises(ProtocolError) as info:
        validate_client_event({"type": "session.updat"})
    assert info.value.code == "invalid_value" and info.value.param == "type"
    assert "'session.update'" in info.value.message and "'response.cancel'" in info.value.message


VALID = [
    _rt(),
    _rt(instructions="Be brief."),
    _rt(audio={"input": {"turn_detection": None}}),
    _rt(audio={"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}),
    _rt(audio={"input": {"format": {"type": "audio/pcmu"}}, "output": {"voice": "marin"}}),
    _rt(tools=[{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        tool_choice={"type": "function", "name": "get_weather"}),
    _rt(max_output_tokens="inf", truncation={"type": "retention_ratio", "retention_ratio": 0.5}),
    _su({"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}),
    {"type": "response.create", "response": {"conversation": "none", "output_modalities": ["text"],
                                             "metadata": {"purpose": "summary"},
                                             "input": [{"type": "item_reference", "id": "i"}]}},
    {"type": "conversation.item.create", "previous_item_id": None, "item": {
        "type": "function_call_output", "call_id": "call_1", "output": "{}"}},
    {"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": "e1"},
]


@pytest.mark.parametrize("event", VALID)
def test_valid_events_pass(event):
    validate_client_event(event)


def test_typed_config_serialises_only_what_was_set():
    """A dataclass is a patch: UNSET fields stay off the wire, None is JSON null."""
    cfg = SessionConfig(type="realtime", audio=AudioConfig(input=AudioInput(
        turn_detection=ServerVad(type="server_vad", threshold=0.7))))
    wire = to_wire(cfg)
    assert wire == {"type": "realtime", "audio": {"input": {"turn_detection": {
        "type": "server_vad", "threshold": 0.7}}}}
    validate_client_event({"type": SU, "session": wire})
    off = to_wire(SessionConfig(type="realtime", audio=AudioConfig(input=AudioInput(
        turn_detection=None))))
    assert off == {"type": "realtime", "audio": {"input": {"turn_detection": None}}}


def test_one_value_type_fields_are_filled_in():
    """SessionConfig(...) without type= is still a valid patch: session.type is required."""
    from realtime_nb.protocol import FunctionTool

    wire = to_wire(SessionConfig(instructions="Be brief.", tools=[FunctionTool(name="f")]))
    assert wire == {"type": "realtime", "instructions": "Be brief.",
                    "tools": [{"type": "function", "name": "f"}]}
    validate_client_event({"type": SU, "session": wire})


# ------------------------------------------------------------------ MCP items and tools

MCP_ITEMS = [
    {"type": "mcp_approval_response", "id": "appr_1", "approval_request_id": "item_r",
     "approve": True, "reason": "fine"},
    {"type": "mcp_approval_response", "id": "appr_2", "approval_request_id": "item_r",
     "approve": False},
    {"type": "mcp_approval_request", "id": "item_r", "server_label": "calc",
     "name": "add_numbers", "arguments": "{\"a\": 1}"},
    {"type": "mcp_call", "id": "item_c", "server_label": "calc", "name": "add_numbers",
     "arguments": "{}", "approval_request_id": None, "output": "3", "error": None},
    {"type": "mcp_call", "id": "item_c", "server_label": "calc", "name": "add_numbers",
     "arguments": "{}", "error": {"type": "http_error", "code": 502, "message": "bad gateway"}},
    {"type": "mcp_call", "id": "item_c", "server_label": "calc", "name": "x", "arguments": "{}",
     "error": {"type": "protocol_error", "code": -32601, "message": "no such method"}},
    {"type": "mcp_list_tools", "server_label": "calc", "tools": [
        {"name": "add_numbers", "input_schema": {"type": "object"}, "description": None,
         "annotations": {"read_only": True}}]},
]


@pytest.mark.parametrize("item", MCP_ITEMS)
def test_every_mcp_item_type_can_be_created_and_given_as_response_input(item):
    validate_client_event({"type": "conversation.item.create", "item": item})
    validate_client_event({"type": "response.create", "response": {"input": [item]}})


def test_the_sdk_serialises_mcp_items_as_the_validator_expects():
    """Items built with the official SDK's GA types pass as they are dumped."""
    from openai.types.realtime import (
        RealtimeMcpApprovalRequest,
        RealtimeMcpApprovalResponse,
        RealtimeMcpListTools,
        RealtimeMcpToolCall,
    )

    for model, item in [(RealtimeMcpApprovalResponse, MCP_ITEMS[0]),
                        (RealtimeMcpApprovalRequest, MCP_ITEMS[2]),
                        (RealtimeMcpToolCall, MCP_ITEMS[4]),
                        (RealtimeMcpListTools, MCP_ITEMS[6])]:
        dumped = model.model_validate(item).model_dump(exclude_none=True)
        validate_client_event({"type": "conversation.item.create", "item": dumped})


@pytest.mark.parametrize(("item", "code", "param"), [
    ({"type": "mcp_approval_response", "id": "a", "approve": True},
     "missing_required_parameter", "item.approval_request_id"),
    ({"type": "mcp_approval_response", "id": "a", "approval_request_id": "r", "approve": "yes"},
     "invalid_type", "item.approve"),
    ({"type": "mcp_approval_response", "id": "a", "approval_request_id": "r", "approve": True,
      "status": "completed"}, "unknown_parameter", "item.status"),
    ({"type": "mcp_call", "id": "c", "server_label": "s", "name": "n", "arguments": "{}",
      "error": {"type": "timeout", "message": "m"}}, "invalid_value", "item.error.type"),
    ({"type": "mcp_list_tools", "server_label": "s", "tools": [{"name": "t"}]},
     "missing_required_parameter", "item.tools[0].input_schema"),
])
def test_malformed_mcp_items_are_refused_with_the_param_path(item, code, param):
    with pytest.raises(ProtocolError) as info:
        validate_client_event({"type": "conversation.item.create", "item": item})
    assert (info.value.code, info.value.param) == (code, param)


def _mcp(**fields: object) -> dict:
    return _rt(tools=[{"type": "mcp", "server_label": "calc", **fields}])


@pytest.mark.parametrize("event", [
    _mcp(server_url="https://example.com/mcp", require_approval="never",
         allowed_tools=["add_numbers"], headers={"X-Key": "v"}, authorization="tok"),
    _mcp(server_url="https://example.com/mcp", allowed_tools={"read_only": True},
         require_approval={"never": {"tool_names": ["add_numbers"]},
                           "always": {"read_only": False}}),
    _mcp(connector_id="connector_googlecalendar", authorization="tok", require_approval=None),
    _mcp(tunnel_id="tun_1", defer_loading=True, allowed_callers=["direct"]),
    {"type": "response.create", "response": {"tools": [
        {"type": "mcp", "server_label": "calc", "server_url": "http://127.0.0.1:1/mcp"}],
        "tool_choice": {"type": "mcp", "server_label": "calc", "name": "add_numbers"}}},
])
def test_mcp_tool_shapes_of_the_sdk_pass(event):
    validate_client_event(event)


@pytest.mark.parametrize(("event", "code", "param"), [
    (_mcp(), "missing_required_parameter", "session.tools[0].server_url"),
    (_mcp(server_url="https://x/mcp", connector_id="connector_gmail"), "invalid_value",
     "session.tools[0].connector_id"),
    (_mcp(connector_id="connector_slack"), "invalid_value", "session.tools[0].connector_id"),
    (_mcp(server_url="https://x/mcp", require_approval="sometimes"), "invalid_value",
     "session.tools[0].require_approval"),
    (_mcp(server_url="https://x/mcp", require_approval={"maybe": {}}), "unknown_parameter",
     "session.tools[0].require_approval.maybe"),
    (_mcp(server_url="https://x/mcp", allowed_tools={"names": ["a"]}), "unknown_parameter",
     "session.tools[0].allowed_tools.names"),
    (_rt(tools=[{"type": "mcp", "server_url": "https://x/mcp"}]), "missing_required_parameter",
     "session.tools[0].server_label"),
])
def test_mcp_tool_config_is_checked(event, code, param):
    with pytest.raises(ProtocolError) as info:
        validate_client_event(event)
    assert (info.value.code, info.value.param) == (code, param)
