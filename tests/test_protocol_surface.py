"""realtime_nb.protocol's public surface around the session state machine.

Pinned so that moving code between the state machine's modules (``state.py`` was split into
``_turns``, ``_conversation``, ``_responses``, ``_playout``, ``_mcp_flow`` and ``_ids``) cannot
change what a caller imports or how it calls it: the same names from the same paths, the same
objects, the same public methods with the same parameters, and a handler for the same client
events.
"""

from __future__ import annotations

import inspect

import realtime_nb.protocol as protocol
import realtime_nb.protocol.state as state

STATE_NAMES = ["LOGPROBS_INCLUDE", "Job", "Reply", "SessionCore", "new_id"]

PROTOCOL_NAMES = [
    "CLIENT_EVENTS", "COMMIT_MIN_MS", "OUTPUT_AUDIO_CLEAR_REFUSED", "SERVER_EVENTS", "UNSET",
    "AudioConfig", "AudioInput", "AudioOutput", "FunctionTool", "InputBuffer", "Job",
    "McpApprovalResponseItem", "McpTool",
    "NoiseReduction", "PcmFormat", "PcmaFormat", "PcmuFormat", "ProtocolError", "Reply",
    "ResponseParams", "SemanticVad", "ServerVad", "SessionConfig", "SessionCore", "Transcription",
    "TranscriptionSessionConfig", "bytes_per_ms", "commit_empty_message", "default_session",
    "from_wire", "merge_session", "new_id", "to_wire", "validate_client_event",
]

#: Every public method of SessionCore and its parameter names (what the local server, the VAD
#: lab and the tests call).
SESSION_CORE_METHODS = {
    "append_audio": ["data"],
    "cancel_response": ["response_id", "reason"],
    "create_response": ["params"],
    "drain": [],
    "emit": ["etype", "fields"],
    "error": ["err", "event_id"],
    "feed_probabilities": ["probs"],
    "handle": ["event"],
    "is_live": ["response_id"],
    "mcp_call_done": ["item_id", "output", "error"],
    "mcp_list_done": ["item_id", "tools", "error"],
    "next_deadline": [],
    "playout_idle": ["response_id"],
    "response_audio": ["response_id", "pcm16_24k", "text"],
    "response_failed": ["response_id", "message"],
    "response_finish": ["response_id"],
    "response_output": ["response_id", "reply"],
    "run_pending_vad": [],
    "session_object": [],
    "start": [],
    "take_jobs": [],
    "take_playout": [],
    "take_vad_input": [],
    "tick": [],
    "transcription_delta": ["item_id", "delta", "logprobs"],
    "transcription_done": ["item_id", "transcript", "emit", "logprobs"],
    "transcription_failed": ["item_id", "message", "code"],
    "turn_check_open": ["check"],
    "turn_decision": ["check", "p_complete"],
}
SESSION_CORE_PROPERTIES = ["open_speculation", "playing", "semantic_rule", "vad_stream",
                           "wants_logprobs"]
SESSION_CORE_FLAGS = {"defer_turn": False, "defer_vad": False}

#: The client events SessionCore serves (``handle`` dispatches to ``_on_<type>``).
SERVED_CLIENT_EVENTS = [
    "conversation.item.create", "conversation.item.delete", "conversation.item.retrieve",
    "conversation.item.truncate", "input_audio_buffer.append", "input_audio_buffer.clear",
    "input_audio_buffer.commit", "output_audio_buffer.clear", "response.cancel",
    "response.create", "session.update",
]


def test_state_exports_its_names_and_they_are_the_protocol_package_s_objects() -> None:
    assert sorted(state.__all__) == sorted(STATE_NAMES)
    for name in ("Job", "Reply", "SessionCore", "new_id"):
        assert getattr(state, name) is getattr(protocol, name)


def test_the_protocol_package_exports_exactly_its_documented_names() -> None:
    assert sorted(protocol.__all__) == sorted(PROTOCOL_NAMES)
    assert all(hasattr(protocol, name) for name in PROTOCOL_NAMES)


def test_session_core_keeps_its_public_methods_and_their_parameters() -> None:
    core = state.SessionCore
    public = {name for name, value in inspect.getmembers(core)
              if not name.startswith("_") and inspect.isfunction(value)}
    assert public == set(SESSION_CORE_METHODS)
    for name, params in SESSION_CORE_METHODS.items():
        got = list(inspect.signature(getattr(core, name)).parameters)[1:]
        assert got == params, name
    for name in SESSION_CORE_PROPERTIES:
        assert isinstance(inspect.getattr_static(core, name), property), name
    for name, default in SESSION_CORE_FLAGS.items():
        assert getattr(core, name) is default


def test_session_core_serves_the_same_client_events() -> None:
    served = sorted(name for name in dir(state.SessionCore) if name.startswith("_on_"))
    assert served == sorted("_on_" + t.replace(".", "_") for t in SERVED_CLIENT_EVENTS)


def test_facts_shared_with_audio_and_vad_have_one_home() -> None:
    """The commit minimum, bytes per ms and the server_vad defaults are the lower layers'
    values, not copies that could drift."""
    from realtime_nb import audio
    from realtime_nb.protocol.config import ServerVad
    from realtime_nb.protocol.schema import default_of
    from realtime_nb.vad.settings import ServerVadSettings

    assert protocol.COMMIT_MIN_MS is audio.COMMIT_MIN_MS
    assert "at least 100ms of audio" in protocol.commit_empty_message(0.0)
    for fmt in ("audio/pcm", "audio/pcmu", "audio/pcma", "pcm16", "g711_ulaw"):
        assert protocol.bytes_per_ms(fmt) == audio.bytes_per_ms(fmt)
    assert protocol.bytes_per_ms(None) == protocol.bytes_per_ms({"rate": 24000}) == 48
    vad = ServerVadSettings()
    wire = default_of(ServerVad)
    assert (wire["threshold"], wire["prefix_padding_ms"], wire["silence_duration_ms"]) == (
        vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms)


def test_session_core_s_modules_do_no_io() -> None:
    """The state machine stays I/O-free whichever module a part moves to: none of the files
    SessionCore is assembled from imports sockets, threads, event loops or processes."""
    import ast
    from pathlib import Path

    io_modules = {"asyncio", "socket", "threading", "subprocess", "websockets", "concurrent",
                  "multiprocessing", "selectors", "ssl", "http", "urllib"}
    files = {Path(inspect.getsourcefile(cls)) for cls in state.SessionCore.__mro__
             if cls.__module__.startswith("realtime_nb.protocol.")}
    assert len(files) >= 6
    wrong = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not
                     node.level else [])
            wrong |= {f"{path.name}: {n}" for n in names if n.split(".")[0] in io_modules}
    assert not wrong
