"""Explanations of the classic Realtime API mistakes: the hint table.

The service's error messages say *what* was refused (``Unknown parameter:
'session.turn_detection'.``); these hints say *why* it happens and *what to write instead*. They are
attached to every :class:`~realtime_nb.client.errors.RealtimeError` (``.hint``), whether the event
was refused locally or by the server, and the VAD lab reuses them.

* :func:`hint_for` — a hint for an error ``code`` / ``param`` (and, when given, the offending
  client event, so that the hint can name the value to write instead).
* :func:`explain_commit_empty` — why the input buffer holds less than 100 ms right now (server VAD
  already committed it, nothing appended, too little appended, cleared).
* :data:`BETA_SESSION_FIELDS`, :data:`BETA_RESPONSE_FIELDS`, :data:`BETA_FORMATS` — the beta → GA
  rename map (protocol reference, Appendix A).
"""

from __future__ import annotations

import json
import re
from typing import Any

from realtime_nb.protocol import SERVER_EVENTS
from realtime_nb.protocol.beta import BETA_FORMATS, BETA_TO_GA_EVENTS
from realtime_nb.protocol.config import AUDIO_SETTING_PATHS

__all__ = [
    "BETA_FORMATS",
    "BETA_RESPONSE_FIELDS",
    "BETA_SERVER_EVENTS",
    "BETA_SESSION_FIELDS",
    "explain_commit_empty",
    "hint_for",
    "value_at",
]


def _audio_path(name: str) -> str:
    """``session.audio....`` of an audio setting (the paths' one home: protocol.config)."""
    return ".".join(("session", *AUDIO_SETTING_PATHS[name]))


#: Beta-era flat ``session`` fields → their GA path (``None``: removed in GA).
BETA_SESSION_FIELDS: dict[str, str | None] = {
    "turn_detection": _audio_path("turn_detection"),
    "input_audio_format": _audio_path("input_format"),
    "output_audio_format": _audio_path("output_format"),
    "input_audio_transcription": _audio_path("transcription"),
    "input_audio_noise_reduction": _audio_path("noise_reduction"),
    "voice": _audio_path("voice"),
    "speed": _audio_path("speed"),
    "modalities": "session.output_modalities",
    "max_response_output_tokens": "session.max_output_tokens",
    "temperature": None,
}

#: Beta ``response.create`` parameters → their GA path (``None``: removed / session-level only).
BETA_RESPONSE_FIELDS: dict[str, str | None] = {
    "modalities": "response.output_modalities",
    "voice": "response.audio.output.voice",
    "output_audio_format": "response.audio.output.format",
    "max_response_output_tokens": "response.max_output_tokens",
    "temperature": None,
    "speed": None,
}

#: Beta server event names → GA names (for listeners that never fire, gotcha 15): the
#: translator's map, plus the transcription-session names, and what follows an added item.
BETA_SERVER_EVENTS: dict[str, str] = {
    **BETA_TO_GA_EVENTS,
    "conversation.item.created": "conversation.item.added (then conversation.item.done)",
    "transcription_session.updated": "session.updated",
    "transcription_session.created": "session.created",
}

# Where a GA field lives when someone puts it at the wrong level.
_GA_SESSION_PATHS: dict[str, str] = {
    "type": "session.type",
    "instructions": "session.instructions",
    "output_modalities": "session.output_modalities",
    "tools": "session.tools",
    "tool_choice": "session.tool_choice",
    "max_output_tokens": "session.max_output_tokens",
    "truncation": "session.truncation",
    "tracing": "session.tracing",
    "prompt": "session.prompt",
    "include": "session.include",
    "reasoning": "session.reasoning",
    "audio": "session.audio",
    "transcription": _audio_path("transcription"),
    "noise_reduction": _audio_path("noise_reduction"),
    "format": "session.audio.input.format (or session.audio.output.format)",
}

_OFF_STRINGS = {"none", "null", "off", "disabled", "false", "manual", ""}
_SERVER_VAD_ONLY = {"threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"}
_TD_NULL_HINT = (
    "Turn detection off (push-to-talk, manual commit) is JSON null, i.e. Python None — not the "
    "string {shown}, not {{'type': 'none'}}. Write "
    "session.audio.input.turn_detection = None, e.g. await session.update(turn_detection=None)."
)
_RATE_HINT = (
    "The GA API takes PCM16 only at 24 kHz: the format must be "
    "{{'type': 'audio/pcm', 'rate': 24000}}. Keep that format and convert your {rate} Hz audio "
    "instead — session.send_audio(samples, sample_rate={rate}) resamples it for you "
    "(realtime_nb.audio.to_pcm16 does the same offline)."
)

_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def value_at(event: Any, param: str | None) -> Any:
    """The value at a dotted ``param`` path (``item.content[0].type``) in ``event``, or None."""
    if not param or not isinstance(event, dict):
        return None
    cur: Any = event
    for name, index in _PATH_TOKEN.findall(param):
        try:
            cur = cur[int(index)] if index else cur[name]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return cur


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_hint(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        ga = BETA_FORMATS.get(value.strip().lower())
        if ga is not None:
            return (f"'{value}' is the beta name; GA formats are objects: write {ga!r} at "
                    f"{path}.")
        return (f"GA formats are objects: {{'type': 'audio/pcm', 'rate': 24000}}, "
                f"{{'type': 'audio/pcmu'}} or {{'type': 'audio/pcma'}} at {path}.")
    return None


def _beta_field_hint(key: str, ga: str | None, value: Any, where: str) -> str:
    if ga is None:
        if key == "temperature":
            return ("'temperature' was removed in the GA API: drop it (the model picks its own "
                    "sampling).")
        if key == "speed":
            return ("Speed cannot be set per response in GA: set session.audio.output.speed "
                    "(0.25-1.5) between turns, e.g. await session.update(speed=1.2).")
        return f"'{key}' does not exist in the GA API: drop it."
    text = f"'{key}' is a beta-era {where} field; in the GA API it lives at {ga}."
    if key == "turn_detection":
        text += (" For example await session.update(turn_detection=None) (push-to-talk) or "
                 "turn_detection={'type': 'server_vad', 'silence_duration_ms': 500}; the raw "
                 "event is {'type': 'session.update', 'session': {'type': 'realtime', "
                 "'audio': {'input': {'turn_detection': ...}}}}.")
        if isinstance(value, str) and value.strip().lower() in _OFF_STRINGS:
            text += (f" And 'off' is JSON null (Python None), not the string {_show(value)}.")
    elif key in ("input_audio_format", "output_audio_format"):
        fmt = _format_hint(value, ga)
        if fmt:
            text += " " + fmt
    elif key == "modalities":
        text += (" GA takes exactly ['audio'] (audio always comes with a transcript) or "
                 "['text'].")
    elif key == "input_audio_transcription":
        text += " Its object is {'model': 'gpt-4o-transcribe', 'language': 'en'} (null = off)."
    elif key == "voice":
        text += " The voice is locked once the assistant has produced audio."
    return text


def _unknown_parameter(param: str, event: Any) -> str | None:
    parts = [name or f"[{idx}]" for name, idx in _PATH_TOKEN.findall(param)]
    if not parts:
        return None
    key = parts[-1]
    parent = ".".join(p for p in parts[:-1])
    etype = event.get("type") if isinstance(event, dict) else None
    value = value_at(event, param)
    if key in _SERVER_VAD_ONLY and parent.endswith("turn_detection"):
        return (f"'{key}' belongs to server_vad only; semantic_vad takes 'eagerness' "
                "('low' | 'medium' | 'high' | 'auto'), 'create_response' and "
                "'interrupt_response'. Use {'type': 'server_vad', ...} to tune thresholds.")
    response_level = parent == "response" or (etype == "response.create" and parent == "")
    if response_level and key in BETA_RESPONSE_FIELDS:
        return _beta_field_hint(key, BETA_RESPONSE_FIELDS[key], value, "response")
    if (key in BETA_SESSION_FIELDS and etype in ("session.update", None)) or (
        key in BETA_SESSION_FIELDS and parent.startswith("session")
    ):
        ga = BETA_SESSION_FIELDS[key]
        text = _beta_field_hint(key, ga, value, "session")
        if parent == "" and ga is not None:
            text = (f"'{key}' was put at the top level of the event, outside 'session'. " + text)
        return text
    if etype == "session.update" and parent == "" and key in _GA_SESSION_PATHS:
        return (f"'{key}' is a session field: put it inside 'session', at "
                f"{_GA_SESSION_PATHS[key]} (Session.update(...) builds the event for you).")
    if parent.startswith("session") and key in _GA_SESSION_PATHS:
        right = _GA_SESSION_PATHS[key]
        if not right.startswith(f"{parent}.{key}"):
            return f"'{key}' is in the wrong place: it belongs at {right}."
    if key == "input_audio_noise_reduction":
        return "In GA it is session.audio.input.noise_reduction: {'type': 'near_field'} or null."
    if etype == "input_audio_buffer.commit" and parent == "":
        return ("input_audio_buffer.commit takes no parameters: it commits everything appended "
                "since the last commit or clear.")
    return ("The service rejects unknown fields, and the whole event with them (nothing of it is "
            "applied). Check the spelling and the nesting against the GA reference.")


def _invalid_type(param: str, event: Any) -> str | None:
    value = value_at(event, param)
    if param.endswith("turn_detection"):
        if isinstance(value, str):
            return _TD_NULL_HINT.format(shown=_show(value))
        return ("turn_detection is an object {'type': 'server_vad' | 'semantic_vad', ...} or "
                "null (Python None) for manual commits.")
    if param.endswith(".format"):
        return _format_hint(value, param)
    if param.endswith("noise_reduction") and isinstance(value, str):
        return ("noise_reduction is an object: {'type': 'near_field'} (headsets) or "
                "{'type': 'far_field'} (laptop/room microphones); null turns it off.")
    if param.endswith(("create_response", "interrupt_response")):
        return "This must be true or false (null is refused); leave it out for the default."
    if param.endswith("transcription.language"):
        return ("'language' is one ISO-639-1 code string such as 'en'. Several candidates go to "
                "'languages' (gpt-transcribe models only).")
    if param.endswith("transcription") and isinstance(value, str):
        return ("transcription is an object such as {'model': 'gpt-4o-transcribe'} "
                "(null = off).")
    if param.endswith("max_output_tokens"):
        return "max_output_tokens is an integer 1-4096 or the string 'inf'."
    return None


def _invalid_value(param: str | None, event: Any, message: str) -> str | None:
    value = value_at(event, param)
    if param is None:
        return None
    if param == "type":
        etype = value if isinstance(value, str) else None
        if etype == "transcription_session.update":
            return ("GA has no transcription_session.update: send session.update with "
                    "session.type 'transcription' (connect with ?intent=transcription).")
        if etype in BETA_SERVER_EVENTS or etype in SERVER_EVENTS:
            return (f"'{etype}' is an event the server sends; clients send session.update, "
                    "input_audio_buffer.append/commit/clear, conversation.item.create/"
                    "retrieve/truncate/delete and response.create/cancel.")
        if etype == "output_audio_buffer.clear":
            return ("output_audio_buffer.clear exists only for WebRTC/SIP sessions; over a "
                    "WebSocket stop your local playback and send conversation.item.truncate.")
        return "Check the event name: GA client event types are listed in the message."
    if param.endswith("turn_detection.type"):
        if isinstance(value, str) and value.strip().lower() in _OFF_STRINGS:
            return _TD_NULL_HINT.format(shown="'none'")
        return "turn_detection.type is 'server_vad' or 'semantic_vad' (or set it to null)."
    if param.endswith("output_modalities"):
        return ("GA takes exactly one modality: ['audio'] (speech, and always its transcript) or "
                "['text']. ['audio', 'text'] is the beta form.")
    if re.search(r"content\[\d+\]\.type$", param):
        role = value_at(event, re.sub(r"content\[\d+\]\.type$", "role", param))
        want = {"system": "input_text", "user": "input_text (or input_audio / input_image)",
                "assistant": "output_text"}.get(role if isinstance(role, str) else "")
        if want:
            return (f"In GA a {role} message's content part type is {want}; 'text' and 'audio' "
                    "are beta names. Assistant audio items cannot be created by clients.")
    if param.endswith(".image_url"):
        return ("input_image takes a base64 data URL of a PNG or JPEG picture "
                "('data:image/png;base64,...'), not a web URL or another format: "
                "session.send_image(path_or_bytes_or_array) reads, converts and encodes it.")
    if param.endswith("transcription.model"):
        return "Use a transcription model such as 'gpt-4o-transcribe' or 'whisper-1'."
    if param.endswith("voice"):
        return ("Built-in voices: alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, "
                "cedar (marin and cedar are recommended).")
    if param.endswith("session.type"):
        return ("session.type must match the session: 'realtime' for speech-to-speech, "
                "'transcription' for ?intent=transcription sessions.")
    if param == "session.model":
        return "The model is fixed when the socket opens: reconnect with another model instead."
    return None


_SERVER_HINTS: dict[str, str] = {
    "input_audio_buffer_commit_empty": (
        "The input buffer held less than 100 ms. Usual causes: server VAD (turn detection, on by "
        "default) already committed the turn at speech end, so a manual commit finds an empty "
        "buffer — don't commit with turn detection on, or set turn_detection=None for "
        "push-to-talk; a second commit right after the first; or less than 100 ms appended."
    ),
    "conversation_already_has_active_response": (
        "Only one response at a time may write to the conversation. Wait for response.done "
        "(await session.wait_for('response.done')) before response.create — after tool calls "
        "too. With server VAD and create_response=true the server already starts a response at "
        "each turn end, so don't create another one."
    ),
    "response_cancel_not_active": (
        "Nothing was generating: audio is produced faster than real time, so the response had "
        "usually finished already. This is harmless — to cut what the user did not hear, send "
        "conversation.item.truncate with the played milliseconds instead."
    ),
    "item_truncate_invalid_audio_end_ms": (
        "audio_end_ms must not exceed the item's audio length. Truncate by what was actually "
        "played (played samples / 24000 * 1000), not by what was received."
    ),
    "item_truncate_invalid_item_id": (
        "Only assistant message items with audio can be truncated; use the item_id from "
        "response.output_audio.delta events."
    ),
    "item_not_found": "The item id is not in the conversation (deleted, or from another session).",
    "mcp_list_tools_failed": (
        "The server could not list the MCP server's tools, so the model cannot call them. Check "
        "that server_url answers MCP (streamable HTTP, or SSE at a path ending in /sse) from "
        "where the server runs, and the headers/authorization it needs. connector_id and "
        "tunnel_id work only with OpenAI."
    ),
    "cannot_update_voice": (
        "The voice is locked once the assistant has produced audio in this conversation. Start "
        "a new session (await session.reconnect() after changing it) to use another voice."
    ),
    "session_expired": (
        "Realtime sessions last at most 60 minutes. await session.reconnect() opens a new "
        "session with your configuration (Session(..., auto_reconnect=True) does it for you); "
        "the conversation itself starts empty on the server."
    ),
    "beta_api_shape_disabled": (
        "The beta Realtime API was switched off. Drop the 'OpenAI-Beta: realtime=v1' header and "
        "use the GA event names and nested session shape."
    ),
    "invalid_api_key": (
        "The server refused the API key. Set OPENAI_API_KEY (or pass api_key=...), or use "
        "Session(backend='local') to work offline."
    ),
    "missing_api_key": (
        "No API key: set the OPENAI_API_KEY environment variable or pass api_key=..., or use "
        "Session(backend='local') for the offline local server."
    ),
    "insufficient_quota": "The account is out of quota: check billing on the platform dashboard.",
    "invalid_model": (
        "That model cannot do realtime. Use a realtime model such as 'gpt-realtime' (or "
        "'gpt-realtime-mini')."
    ),
    "invalid_tool_call_id": (
        "function_call_output.call_id must be the call_id of a function_call item the model "
        "produced (see response.function_call_arguments.done)."
    ),
    "missing_required_parameter": (
        "A required field is missing; in GA every session.update needs session.type "
        "('realtime' or 'transcription'). Session.update() fills it in for you."
    ),
    "float32_audio": (
        "These bytes are float32 samples, not PCM16. Convert them: await "
        "session.send_audio(np.frombuffer(data, '<f4'), sample_rate=RATE) resamples and "
        "converts; or pass force=True to send them as they are (they will play as noise)."
    ),
    "connection_closed": (
        "The socket closed. await session.reconnect() opens a new session with your "
        "configuration and sends what was queued; Session(..., auto_reconnect=True) does it "
        "automatically."
    ),
    "server_error": "The server failed internally; retrying the request usually works.",
}


def hint_for(
    code: str | None,
    param: str | None = None,
    message: str | None = None,
    event: Any = None,
) -> str | None:
    """The explanation and fix for an error, or None when there is nothing useful to add.

    ``event`` is the offending client event when known: hints then name the value to write
    instead (e.g. the GA format object for ``"pcm16"``).
    """
    message = message or ""
    if code == "unknown_parameter" and param:
        return _unknown_parameter(param, event)
    if code == "missing_required_parameter" and param:
        if param == "session.type":
            return ("GA requires session.type in every session.update: 'realtime' (or "
                    "'transcription'). Session.update(...) fills it in when you pass keywords, "
                    "a SessionConfig or a dict.")
        if param.endswith("format.rate"):
            return ("PCM formats need their rate: {'type': 'audio/pcm', 'rate': 24000} (the only "
                    "rate GA accepts).")
        return f"Add '{param}': the service requires it."
    if code == "invalid_type" and param:
        hint = _invalid_type(param, event)
        if hint:
            return hint
    if code == "invalid_value":
        hint = _invalid_value(param, event, message)
        if hint:
            return hint
    if code in ("integer_below_min_value", "integer_above_max_value") and param and (
        param.endswith("format.rate")
    ):
        value = value_at(event, param)
        rate = value if isinstance(value, int) else "other"
        return _RATE_HINT.format(rate=rate)
    if code and code.endswith(("_below_min_value", "_above_max_value")) and param:
        if param.endswith("threshold"):
            return "threshold is a speech probability between 0.0 and 1.0 (default 0.5)."
        if param.endswith("speed"):
            return "speed must be between 0.25 and 1.5 (default 1.0)."
        if param.endswith("max_output_tokens"):
            return "max_output_tokens is 1-4096, or 'inf'."
        if param.endswith("idle_timeout_ms"):
            return "idle_timeout_ms is 5000-30000 ms, or null (off)."
        return None
    if code == "string_above_max_length" and param and param.endswith("event_id"):
        return "event_id may be at most 512 characters."
    if code == "invalid_event" and "type" in message:
        return "Every client event is a JSON object with a 'type', e.g. 'session.update'."
    if code == "item_not_found" and param == "item.approval_request_id":
        return ("Answer an MCP approval with the id of an mcp_approval_request item of this "
                "conversation: session.pending_approvals lists them, "
                "session.approve_mcp(request) sends the answer.")
    if code in _SERVER_HINTS:
        return _SERVER_HINTS[code]
    return None


def explain_commit_empty(
    buffered_ms: float,
    *,
    turn_detection: bool,
    appended_ms: float,
    last_commit: dict[str, Any] | None = None,
    cleared: bool = False,
) -> str:
    """Say why the input buffer holds ``buffered_ms`` (< 100 ms) at a manual commit.

    ``appended_ms``: audio appended since the last commit or clear. ``last_commit``: the most
    recent commit as the mirror saw it, a dict with ``item_id``, ``by`` (``"vad"`` or
    ``"client"``), ``end_ms`` (timeline position where it ended) and ``audio_end_ms`` (the VAD's
    speech end, if any). ``cleared``: the last buffer operation was a clear.
    """
    off = ("For push-to-talk switch turn detection off first — await "
           "session.update(turn_detection=None) — then append and commit yourself.")
    if turn_detection:
        if last_commit and last_commit.get("by") == "vad":
            end = last_commit.get("audio_end_ms")
            end = last_commit.get("end_ms") if end is None else end
            at = f" at {end / 1000:.2f} s" if isinstance(end, (int, float)) else ""
            return (
                f"Server VAD already committed this audio{at} as item "
                f"{last_commit.get('item_id')} (speech ended at audio_end_ms={end}): with turn "
                "detection on, the server commits each turn itself when the speaker pauses, and "
                "audio outside speech is not buffered. Don't call commit() in this mode — wait "
                "for input_audio_buffer.committed / response.done instead. " + off
            )
        if appended_ms <= 0:
            return ("Nothing was appended yet. With turn detection on you don't commit either: "
                    "the server commits when it hears a turn end. " + off)
        return (
            f"With turn detection on, the buffer holds only the current turn, and server VAD has "
            f"detected no speech in the {appended_ms:.0f} ms appended (audio outside speech is "
            "not buffered). Check that the audio is speech and not silent or too quiet (a lower "
            "threshold helps), or manage turns yourself. " + off
        )
    if cleared and appended_ms <= 0:
        return ("The buffer was cleared (input_audio_buffer.clear) and nothing was appended "
                "since: append at least 100 ms before committing.")
    if appended_ms <= 0:
        if last_commit:
            return (f"The previous commit already took the buffer (item "
                    f"{last_commit.get('item_id')}); nothing was appended since. Commit once per "
                    "turn.")
        return ("Nothing was appended: send audio first (await session.send_audio(...)), at "
                "least 100 ms of it.")
    return (f"Only {buffered_ms:.2f} ms were appended since the last commit or clear; the service "
            "needs at least 100 ms in the buffer to commit. Append more audio first.")
