"""GA session configuration, named exactly as on the wire.

Each class is a *patch*: fields default to ``UNSET`` and only the fields you set are sent, which is
what ``session.update`` means (the server merges them into its config and echoes the full result).
The service's own defaults are in each field's metadata (``schema.fld(default=...)``);
:func:`default_session` builds the complete default configuration a new session starts with.

Examples::

    SessionConfig(type="realtime", instructions="Be brief.")
    SessionConfig(type="realtime", audio=AudioConfig(input=AudioInput(turn_detection=None)))
    SessionConfig(type="realtime", audio=AudioConfig(input=AudioInput(
        turn_detection=ServerVad(type="server_vad", threshold=0.7, silence_duration_ms=500))))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from realtime_nb.vad.settings import ServerVadSettings

from .schema import UNSET, ProtocolError, Unset, default_of, fld, to_wire

#: The service's server_vad defaults, kept once (by the segmenter's settings).
_SERVER_VAD = ServerVadSettings()

__all__ = [
    "AUDIO_SETTING_PATHS",
    "MCP_CONNECTORS",
    "VOICES",
    "AudioConfig",
    "AudioInput",
    "AudioOutput",
    "FunctionTool",
    "McpApprovalFilter",
    "McpTool",
    "McpToolFilter",
    "NoiseReduction",
    "PcmFormat",
    "PcmaFormat",
    "PcmuFormat",
    "Prompt",
    "Reasoning",
    "RetentionRatioTruncation",
    "SemanticVad",
    "ServerVad",
    "SessionConfig",
    "ToolChoiceFunction",
    "ToolChoiceMcp",
    "TracingConfig",
    "Transcription",
    "TranscriptionAudio",
    "TranscriptionSessionConfig",
    "VoiceId",
    "default_session",
    "merge_session",
]

#: Where each audio setting lives below ``session`` (GA shape), by its short name: the one home
#: of these paths, used by ``Session.update(voice=..., input_format=...)`` and by the beta
#: translator (``input_audio_format`` -> ``audio.input.format``).
AUDIO_SETTING_PATHS: dict[str, tuple[str, ...]] = {
    "turn_detection": ("audio", "input", "turn_detection"),
    "transcription": ("audio", "input", "transcription"),
    "noise_reduction": ("audio", "input", "noise_reduction"),
    "input_format": ("audio", "input", "format"),
    "output_format": ("audio", "output", "format"),
    "voice": ("audio", "output", "voice"),
    "speed": ("audio", "output", "speed"),
}

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
DEFAULT_INSTRUCTIONS = (
    "You are a helpful local assistant running offline inside realtime_nb. "
    "Answer briefly and clearly."
)

TRANSCRIPTION_MODELS = (
    "whisper-1",
    "gpt-transcribe",
    "gpt-live-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe",
    "gpt-4o-transcribe-diarize",
    "gpt-realtime-whisper",
)


# --- audio formats -------------------------------------------------------------------------------


@dataclass
class PcmFormat:
    """PCM16 little-endian mono; the service accepts only ``rate`` 24000."""

    type: Literal["audio/pcm"] | Unset = fld("audio/pcm", required=True)
    rate: int | Unset = fld(24000, "Sample rate in Hz; only 24000.", ge=24000, le=24000,
                            required=True)


@dataclass
class PcmuFormat:
    """G.711 μ-law, 8 kHz."""

    type: Literal["audio/pcmu"] | Unset = fld("audio/pcmu", required=True)


@dataclass
class PcmaFormat:
    """G.711 A-law, 8 kHz."""

    type: Literal["audio/pcma"] | Unset = fld("audio/pcma", required=True)


AudioFormat = PcmFormat | PcmuFormat | PcmaFormat


def _default_format() -> dict[str, Any]:
    return {"type": "audio/pcm", "rate": 24000}


# --- input side ----------------------------------------------------------------------------------


@dataclass
class Transcription:
    """Input audio transcription (off when ``null``). The local server runs its own ASR."""

    model: str | Unset = fld("whisper-1", "Transcription model name.")
    language: str | Unset = fld(UNSET, "ISO-639-1 language of the input, e.g. 'en'.")
    languages: list[str] | Unset = fld(UNSET, "Possible languages (gpt-transcribe models).")
    keywords: list[str] | Unset = fld(UNSET, "Words to favour (gpt-transcribe models).")
    prompt: str | Unset = fld(UNSET, "Text to guide the transcription's style or vocabulary.")
    delay: Literal["minimal", "low", "medium", "high", "xhigh"] | Unset = fld(
        UNSET, "How long the model waits before emitting text (gpt-realtime-whisper)."
    )

    @staticmethod
    def __check__(value: dict[str, Any], path: str) -> None:
        if "language" in value and "languages" in value:
            p = f"{path}.languages"
            raise ProtocolError(
                "invalid_value",
                f"Invalid '{p}': 'language' and 'languages' cannot both be set.",
                p,
            )


@dataclass
class NoiseReduction:
    """Input noise reduction (off when ``null``)."""

    type: Literal["near_field", "far_field"] | Unset = fld(
        "near_field", "near_field for headsets, far_field for laptop or room microphones."
    )
    strength: float | Unset = fld(1.0, "Suppression strength.", ge=0, le=1)


@dataclass
class ServerVad:
    """Voice activity detection on audio level; commits and (optionally) responds at speech end."""

    type: Literal["server_vad"] | Unset = fld("server_vad", required=True)
    threshold: float | Unset = fld(
        _SERVER_VAD.threshold,
        "Speech probability needed to start a turn (higher needs louder speech).", ge=0, le=1
    )
    prefix_padding_ms: int | Unset = fld(
        _SERVER_VAD.prefix_padding_ms, "Audio kept before the detected speech onset (ms).",
        ge=0, le=10_000
    )
    silence_duration_ms: int | Unset = fld(
        _SERVER_VAD.silence_duration_ms,
        "Silence that ends a turn (ms). The service's real default is 200.", ge=0, le=10_000
    )
    idle_timeout_ms: int | None | Unset = fld(
        None, "Nudge the user after this much silence following a response (ms).",
        ge=5000, le=30_000,
    )
    create_response: bool | Unset = fld(True, "Create a response when a turn ends.")
    interrupt_response: bool | Unset = fld(
        True, "Cancel the running response when the user starts speaking."
    )


@dataclass
class SemanticVad:
    """Turn detection that waits longer when the user seems unfinished (max 8/4/2 s)."""

    type: Literal["semantic_vad"] | Unset = fld("semantic_vad", required=True)
    eagerness: Literal["low", "medium", "high", "auto"] | Unset = fld(
        "auto", "How soon to take the turn: low waits up to 8 s, medium 4 s, high 2 s."
    )
    create_response: bool | Unset = fld(True, "Create a response when a turn ends.")
    interrupt_response: bool | Unset = fld(
        True, "Cancel the running response when the user starts speaking."
    )


TurnDetection = ServerVad | SemanticVad


@dataclass
class AudioInput:
    """``session.audio.input``."""

    format: PcmFormat | PcmuFormat | PcmaFormat | Unset = fld(_default_format, "Input format.")
    transcription: Transcription | None | Unset = fld(None, "Input transcription (null = off).")
    noise_reduction: NoiseReduction | None | Unset = fld(None, "Noise reduction (null = off).")
    turn_detection: ServerVad | SemanticVad | None | Unset = fld(
        lambda: default_of(ServerVad), "Turn detection; null = manual commit (push-to-talk)."
    )


@dataclass
class VoiceId:
    """A custom voice by id."""

    id: str | Unset = fld(UNSET, required=True)


@dataclass
class AudioOutput:
    """``session.audio.output``."""

    format: PcmFormat | PcmuFormat | PcmaFormat | Unset = fld(_default_format, "Output format.")
    voice: Literal[VOICES] | VoiceId | Unset = fld(  # type: ignore[valid-type]
        "alloy", "Voice; cannot change once the assistant has spoken."
    )
    speed: float | Unset = fld(1.0, "Speaking speed (between turns only).", ge=0.25, le=1.5)


@dataclass
class AudioConfig:
    """``session.audio``."""

    input: AudioInput | Unset = fld(lambda: default_of(AudioInput))
    output: AudioOutput | Unset = fld(lambda: default_of(AudioOutput))


@dataclass
class TranscriptionAudio:
    """``session.audio`` of a transcription session (input only)."""

    input: AudioInput | Unset = fld(lambda: default_of(AudioInput))


# --- tools ---------------------------------------------------------------------------------------


@dataclass
class FunctionTool:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    type: Literal["function"] | Unset = fld("function", required=True)
    name: str | Unset = fld(UNSET, "Function name.", required=True)
    description: str | Unset = fld(UNSET, "When and how to call it.")
    parameters: dict[str, Any] | Unset = fld(UNSET, "JSON Schema of the arguments.")


MCP_CONNECTORS = (
    "connector_dropbox",
    "connector_gmail",
    "connector_googlecalendar",
    "connector_googledrive",
    "connector_microsoftteams",
    "connector_outlookcalendar",
    "connector_outlookemail",
    "connector_sharepoint",
)
_MCP_TARGETS = ("server_url", "connector_id", "tunnel_id")


@dataclass
class McpToolFilter:
    """Which of an MCP server's tools a rule applies to: by name and/or by the server's
    ``readOnlyHint`` annotation (a tool matches when every given criterion holds)."""

    tool_names: list[str] | Unset = fld(UNSET, "Tool names the rule applies to.")
    read_only: bool | Unset = fld(UNSET, "Match tools annotated readOnlyHint = this value.")


@dataclass
class McpApprovalFilter:
    """Per-tool approval: tools matching ``always`` need approval, tools matching ``never``
    do not; a tool matching neither needs approval."""

    always: McpToolFilter | Unset = fld(UNSET)
    never: McpToolFilter | Unset = fld(UNSET)


def _check_mcp_tool(value: dict[str, Any], path: str) -> None:
    given = [k for k in _MCP_TARGETS if k in value]
    if not given:
        p = f"{path}.server_url"
        raise ProtocolError(
            "missing_required_parameter",
            f"Missing required parameter: '{p}'. One of 'server_url', 'connector_id' or "
            "'tunnel_id' must be provided.",
            p,
        )
    if len(given) > 1:
        p = f"{path}.{given[1]}"
        raise ProtocolError(
            "invalid_value",
            f"Invalid '{p}': only one of 'server_url', 'connector_id' or 'tunnel_id' may be "
            "provided.",
            p,
        )


@dataclass
class McpTool:
    """A remote MCP server (or an OpenAI connector) whose tools the model may call.

    The service (or the local server) lists the server's tools (an ``mcp_list_tools`` item) and
    runs the calls itself. Exactly one of ``server_url``, ``connector_id`` and ``tunnel_id`` is
    required (the message for a missing or doubled one is UNCONFIRMED wording). The local server
    dials ``server_url`` (streamable HTTP, or SSE when the URL path ends in ``/sse``); connectors
    and tunnels need OpenAI and fail there with ``mcp_list_tools.failed``.
    """

    type: Literal["mcp"] | Unset = fld("mcp", required=True)
    server_label: str | Unset = fld(UNSET, "Label naming this server in items and events.",
                                    required=True)
    server_url: str | Unset = fld(UNSET, "URL of the MCP server.")
    connector_id: Literal[MCP_CONNECTORS] | Unset = fld(  # type: ignore[valid-type]
        UNSET, "An OpenAI service connector (needs OpenAI).")
    tunnel_id: str | Unset = fld(UNSET, "A Secure MCP Tunnel (needs OpenAI).")
    authorization: str | Unset = fld(UNSET, "OAuth access token, sent as a bearer token.")
    headers: dict[str, str] | None | Unset = fld(UNSET, "Extra HTTP headers for the server.")
    allowed_tools: list[str] | McpToolFilter | None | Unset = fld(
        UNSET, "Only these tools are imported (names, or a filter).")
    require_approval: Literal["always", "never"] | McpApprovalFilter | None | Unset = fld(
        UNSET, "Which calls wait for an mcp_approval_response.")
    server_description: str | Unset = fld(UNSET)
    allowed_callers: list[Literal["direct", "programmatic"]] | None | Unset = fld(UNSET)
    defer_loading: bool | Unset = fld(UNSET)

    __check__ = staticmethod(_check_mcp_tool)


@dataclass
class ToolChoiceFunction:
    type: Literal["function"] | Unset = fld("function", required=True)
    name: str | Unset = fld(UNSET, required=True)


@dataclass
class ToolChoiceMcp:
    type: Literal["mcp"] | Unset = fld("mcp", required=True)
    server_label: str | Unset = fld(UNSET, required=True)
    name: str | None | Unset = fld(UNSET)


ToolChoice = Literal["auto", "none", "required"] | ToolChoiceFunction | ToolChoiceMcp


@dataclass
class TokenLimits:
    post_instructions: int | Unset = fld(UNSET, ge=0)


@dataclass
class RetentionRatioTruncation:
    type: Literal["retention_ratio"] | Unset = fld("retention_ratio", required=True)
    retention_ratio: float | Unset = fld(UNSET, ge=0, le=1, required=True)
    token_limits: TokenLimits | Unset = fld(UNSET)


@dataclass
class TracingConfig:
    workflow_name: str | Unset = fld(UNSET)
    group_id: str | Unset = fld(UNSET)
    metadata: dict[str, Any] | Unset = fld(UNSET)


@dataclass
class Prompt:
    id: str | Unset = fld(UNSET, required=True)
    version: str | None | Unset = fld(UNSET)
    variables: dict[str, Any] | None | Unset = fld(UNSET)


@dataclass
class Reasoning:
    effort: Literal["minimal", "low", "medium", "high", "xhigh"] | Unset = fld("low")


def _check_modalities(value: Any, path: str) -> None:
    if sorted(value) not in (["audio"], ["text"]):
        shown = "[" + ", ".join(f"'{v}'" for v in value) + "]"
        raise ProtocolError(
            "invalid_value",
            f"Invalid modalities: {shown}. Supported combinations are: ['text'] and ['audio'].",
            path,
        )


def _check_max_tokens(value: Any, path: str) -> None:
    return None


@dataclass
class SessionConfig:
    """``session`` of a GA realtime (speech-to-speech) session. ``type`` is required."""

    type: Literal["realtime"] | Unset = fld("realtime", required=True)
    model: str | Unset = fld("gpt-realtime", "Model (fixed at connect).")
    output_modalities: list[Literal["text", "audio"]] | Unset = fld(
        lambda: ["audio"], "['audio'] (with a transcript) or ['text'].", check=_check_modalities
    )
    instructions: str | Unset = fld(DEFAULT_INSTRUCTIONS, "System instructions.")
    audio: AudioConfig | Unset = fld(lambda: default_of(AudioConfig))
    include: list[Literal["item.input_audio_transcription.logprobs"]] | Unset = fld(UNSET)
    tools: list[FunctionTool | McpTool] | Unset = fld(lambda: [], "Tools the model may call.")
    tool_choice: ToolChoice | Unset = fld("auto", "How the model chooses tools.")
    max_output_tokens: int | Literal["inf"] | Unset = fld(
        "inf", "Max output tokens per response (1-4096 or 'inf').", ge=1, le=4096
    )
    truncation: Literal["auto", "disabled"] | RetentionRatioTruncation | Unset = fld("auto")
    tracing: Literal["auto"] | TracingConfig | None | Unset = fld(None)
    prompt: Prompt | None | Unset = fld(None)
    reasoning: Reasoning | Unset = fld(UNSET)
    parallel_tool_calls: bool | Unset = fld(UNSET)


@dataclass
class TranscriptionSessionConfig:
    """``session`` of a GA transcription session (``?intent=transcription``)."""

    type: Literal["transcription"] | Unset = fld("transcription", required=True)
    audio: TranscriptionAudio | Unset = fld(lambda: default_of(TranscriptionAudio))
    include: list[Literal["item.input_audio_transcription.logprobs"]] | Unset = fld(
        lambda: []
    )


def default_session(kind: str = "realtime", **overrides: Any) -> dict[str, Any]:
    """The full configuration a new session starts with (what ``session.created`` shows)."""
    cls = SessionConfig if kind == "realtime" else TranscriptionSessionConfig
    out = _deep_default(cls)
    out.update(overrides)
    return out


def _deep_default(cls: type) -> dict[str, Any]:
    out = default_of(cls)
    return copy.deepcopy(out)


def merge_session(current: dict[str, Any], patch: dict[str, Any] | Any) -> dict[str, Any]:
    """Apply a validated ``session.update`` patch to a full config and return the new config.

    Objects are merged key by key; lists, scalars, ``null`` and tagged unions whose ``type`` changes
    replace the old value. A new ``turn_detection`` object of a type is completed with that type's
    defaults, and ``transcription`` / ``noise_reduction`` objects with theirs.
    """
    if not isinstance(patch, dict):
        patch = to_wire(patch)
    return _merge(current, patch, ())


_SUBDEFAULTS: dict[tuple[str, ...], Any] = {
    ("audio", "input", "transcription"): lambda: default_of(Transcription),
    ("audio", "input", "noise_reduction"): lambda: default_of(NoiseReduction),
    ("audio", "input", "format"): _default_format,
    ("audio", "output", "format"): _default_format,
}


def _merge(cur: Any, patch: Any, path: tuple[str, ...]) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if path[-1:] == ("turn_detection",):
        base: dict[str, Any] = {}
        ptype = patch.get("type")
        if isinstance(cur, dict) and cur.get("type") == ptype:
            base = copy.deepcopy(cur)
        elif ptype == "server_vad":
            base = default_of(ServerVad)
        elif ptype == "semantic_vad":
            base = default_of(SemanticVad)
        base.update(copy.deepcopy(patch))
        return base
    if path[-1:] == ("format",) and isinstance(cur, dict) and cur.get("type") != patch.get("type"):
        return copy.deepcopy(patch)
    if not isinstance(cur, dict):
        sub = _SUBDEFAULTS.get(path[-3:]) if len(path) >= 3 else None
        cur = sub() if sub else {}
        if path[-1:] == ("format",) and patch.get("type") != "audio/pcm":
            cur = {}
    out = copy.deepcopy(cur)
    for k, v in patch.items():
        out[k] = _merge(out.get(k), v, (*path, k))
    return out
