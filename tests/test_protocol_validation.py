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
