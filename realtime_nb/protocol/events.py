"""GA client events, conversation items and response parameters, named as on the wire.

:func:`validate_client_event` is the one validator used by the local server (to answer like the
service) and by the kernel-side Session (to refuse a bad event before it is sent). It raises
:class:`~realtime_nb.protocol.schema.ProtocolError` carrying the service's ``code``, ``message``
and ``param``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .config import (
    VOICES,
    FunctionTool,
    McpTool,
    PcmaFormat,
    PcmFormat,
    PcmuFormat,
    Prompt,
    Reasoning,
    SessionConfig,
    ToolChoice,
    TranscriptionSessionConfig,
    VoiceId,
)
from .schema import UNSET, Node, ProtocolError, Unset, compile_schema, fld, quote_list

__all__ = [
    "CLIENT_EVENTS",
    "SERVER_EVENTS",
    "ContentPart",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "ItemReference",
    "McpApprovalRequestItem",
    "McpApprovalResponseItem",
    "McpCallItem",
    "McpListToolsItem",
    "MessageItem",
    "ResponseParams",
    "validate_client_event",
]

EVENT_ID = fld(UNSET, "Optional id echoed in error.event_id.", max_length=512)

_ROLE_PARTS = {
    "system": ("input_text",),
    "user": ("input_text", "input_audio", "input_image"),
    "assistant": ("output_text",),
}


@dataclass
class ContentPart:
    """One content part of a message item; which ``type`` is allowed depends on the role."""

    type: (
        Literal["input_text", "input_audio", "input_image", "output_text", "output_audio", "text",
                "audio"]
        | Unset
    ) = fld(UNSET, required=True)
    text: str | Unset = fld(UNSET)
    audio: str | None | Unset = fld(UNSET, "Base64 audio in the session's input format.")
    transcript: str | None | Unset = fld(UNSET)
    image_url: str | Unset = fld(UNSET)
    detail: Literal["auto", "low", "high"] | Unset = fld(UNSET)


def _check_message(value: dict[str, Any], path: str) -> None:
    role: Any = value.get("role")  # validated already: ObjNode checks fields before __check__
    allowed = _ROLE_PARTS.get(role, ())
    for i, part in enumerate(value.get("content", [])):
        ptype = part.get("type")
        p = f"{path}.content[{i}].type"
        if ptype not in allowed:
            if len(allowed) == 1:
                msg = f"Invalid value: '{ptype}'. Value must be '{allowed[0]}'."
            else:
                shown = allowed[:2] if role == "user" else allowed
                msg = f"Invalid value: '{ptype}'. Supported values are: {quote_list(shown)}."
            raise ProtocolError("invalid_value", msg, p)
        need = {"input_text": "text", "output_text": "text", "input_audio": "audio",
                "input_image": "image_url"}.get(ptype)
        if need and need not in part:
            q = f"{path}.content[{i}].{need}"
            raise ProtocolError(
                "missing_required_parameter", f"Missing required parameter: '{q}'.", q
            )


@dataclass
class MessageItem:
    """A system, user or assistant message."""

    type: Literal["message"] | Unset = fld("message", required=True)
    id: str | Unset = fld(UNSET, max_length=256)
    object: Literal["realtime.item"] | Unset = fld(UNSET)
    status: Literal["completed", "incomplete", "in_progress"] | Unset = fld(UNSET)
    role: Literal["system", "user", "assistant"] | Unset = fld(UNSET, required=True)
    content: list[ContentPart] | Unset = fld(UNSET, required=True)

    __check__ = staticmethod(_check_message)


@dataclass
class FunctionCallItem:
    """The model's call of a function (clients may add one to seed history)."""

    type: Literal["function_call"] | Unset = fld("function_call", required=True)
    id: str | Unset = fld(UNSET, max_length=256)
    object: Literal["realtime.item"] | Unset = fld(UNSET)
    status: Literal["completed", "incomplete", "in_progress"] | Unset = fld(UNSET)
    call_id: str | Unset = fld(UNSET)
    name: str | Unset = fld(UNSET, required=True)
    arguments: str | Unset = fld(UNSET, required=True)


@dataclass
class FunctionCallOutputItem:
    """The result of a function call, sent by the client; ``call_id`` must exist."""

    type: Literal["function_call_output"] | Unset = fld("function_call_output", required=True)
    id: str | Unset = fld(UNSET, max_length=256)
    object: Literal["realtime.item"] | Unset = fld(UNSET)
    status: Literal["completed", "incomplete", "in_progress"] | Unset = fld(UNSET)
    call_id: str | Unset = fld(UNSET, required=True)
    output: str | Unset = fld(UNSET, required=True)


@dataclass
class McpListedTool:
    """One tool of an ``mcp_list_tools`` item, as the MCP server described it."""

    name: str | Unset = fld(UNSET, required=True)
    input_schema: Any | Unset = fld(UNSET, "JSON Schema of the tool's arguments.", required=True)
    description: str | None | Unset = fld(UNSET)
    annotations: Any | None | Unset = fld(UNSET)


@dataclass
class McpListToolsItem:
    """The tools an MCP server offers (made by the server when an ``mcp`` tool is configured)."""

    type: Literal["mcp_list_tools"] | Unset = fld("mcp_list_tools", required=True)
    id: str | Unset = fld(UNSET, max_length=256)
    server_label: str | Unset = fld(UNSET, required=True)
    tools: list[McpListedTool] | Unset = fld(UNSET, required=True)


@dataclass
class McpProtocolError:
    type: Literal["protocol_error"] | Unset = fld("protocol_error", required=True)
    code: int | Unset = fld(UNSET, required=True)
    message: str | Unset = fld(UNSET, required=True)


@dataclass
class McpToolExecutionError:
    type: Literal["tool_execution_error"] | Unset = fld("tool_execution_error", required=True)
    message: str | Unset = fld(UNSET, required=True)


@dataclass
class McpHttpError:
    type: Literal["http_error"] | Unset = fld("http_error", required=True)
    code: int | Unset = fld(UNSET, required=True)
    message: str | Unset = fld(UNSET, required=True)


@dataclass
class McpCallItem:
    """A call of a tool on an MCP server, run by the server; ``output`` or ``error`` is filled
    when it has run. ``approval_request_id`` links it to its ``mcp_approval_request``."""

    type: Literal["mcp_call"] | Unset = fld("mcp_call", required=True)
    id: str | Unset = fld(UNSET, max_length=256, required=True)
    server_label: str | Unset = fld(UNSET, required=True)
    name: str | Unset = fld(UNSET, required=True)
    arguments: str | Unset = fld(UNSET, required=True)
    approval_request_id: str | None | Unset = fld(UNSET)
    output: str | None | Unset = fld(UNSET)
    error: McpProtocolError | McpToolExecutionError | McpHttpError | None | Unset = fld(UNSET)


@dataclass
class McpApprovalRequestItem:
    """The server asks whether it may run ``name`` with ``arguments`` on ``server_label``."""

    type: Literal["mcp_approval_request"] | Unset = fld("mcp_approval_request", required=True)
    id: str | Unset = fld(UNSET, max_length=256, required=True)
    server_label: str | Unset = fld(UNSET, required=True)
    name: str | Unset = fld(UNSET, required=True)
    arguments: str | Unset = fld(UNSET, required=True)


@dataclass
class McpApprovalResponseItem:
    """The client's answer to an ``mcp_approval_request`` (``approve``, optional ``reason``);
    ``approval_request_id`` must name an approval request of the conversation."""

    type: Literal["mcp_approval_response"] | Unset = fld("mcp_approval_response", required=True)
    id: str | Unset = fld(UNSET, max_length=256, required=True)
    approval_request_id: str | Unset = fld(UNSET, required=True)
    approve: bool | Unset = fld(UNSET, required=True)
    reason: str | None | Unset = fld(UNSET)


@dataclass
class ItemReference:
    """A reference to an existing item, only inside ``response.create.response.input``."""

    type: Literal["item_reference"] | Unset = fld("item_reference", required=True)
    id: str | Unset = fld(UNSET, required=True)


Item = (MessageItem | FunctionCallItem | FunctionCallOutputItem | McpListToolsItem | McpCallItem
        | McpApprovalRequestItem | McpApprovalResponseItem)


@dataclass
class ResponseAudioOutput:
    format: PcmFormat | PcmuFormat | PcmaFormat | Unset = fld(UNSET)
    voice: Literal[VOICES] | VoiceId | Unset = fld(UNSET)  # type: ignore[valid-type]


@dataclass
class ResponseAudio:
    output: ResponseAudioOutput | Unset = fld(UNSET)


def _check_metadata(value: Any, path: str) -> None:
    if value is None:
        return
    if len(value) > 16:
        raise ProtocolError(
            "object_above_max_properties",
            f"Invalid '{path}': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(value)} properties instead.",
            path,
        )
    for k, v in value.items():
        if len(k) > 64 or len(v) > 512:
            p = f"{path}.{k}"
            raise ProtocolError(
                "string_above_max_length",
                f"Invalid '{p}': string too long (keys ≤ 64, values ≤ 512 characters).",
                p,
            )


def _check_modalities(value: Any, path: str) -> None:
    from .config import _check_modalities as check

    check(value, path)


@dataclass
class ResponseParams:
    """``response`` of ``response.create``: per-response overrides."""

    output_modalities: list[Literal["text", "audio"]] | Unset = fld(
        UNSET, check=_check_modalities
    )
    instructions: str | Unset = fld(UNSET)
    audio: ResponseAudio | Unset = fld(UNSET)
    tools: list[FunctionTool | McpTool] | Unset = fld(UNSET)
    tool_choice: ToolChoice | Unset = fld(UNSET)
    max_output_tokens: int | Literal["inf"] | Unset = fld(UNSET, ge=1, le=4096)
    conversation: Literal["auto", "none"] | Unset = fld(UNSET)
    metadata: dict[str, str] | None | Unset = fld(UNSET, check=_check_metadata)
    input: list[MessageItem | FunctionCallItem | FunctionCallOutputItem | McpListToolsItem
                | McpCallItem | McpApprovalRequestItem | McpApprovalResponseItem
                | ItemReference] | Unset = fld(UNSET)
    prompt: Prompt | None | Unset = fld(UNSET)
    parallel_tool_calls: bool | Unset = fld(UNSET)
    reasoning: Reasoning | Unset = fld(UNSET)


# --- client events -------------------------------------------------------------------------------


@dataclass
class SessionUpdate:
    type: Literal["session.update"] | Unset = fld("session.update", required=True)
    event_id: str | Unset = EVENT_ID
    session: SessionConfig | TranscriptionSessionConfig | Unset = fld(UNSET, required=True)


@dataclass
class InputAudioBufferAppend:
    type: Literal["input_audio_buffer.append"] | Unset = fld(
        "input_audio_buffer.append", required=True
    )
    event_id: str | Unset = EVENT_ID
    audio: str | Unset = fld(UNSET, "Base64 audio in the session's input format.", required=True)


@dataclass
class InputAudioBufferCommit:
    type: Literal["input_audio_buffer.commit"] | Unset = fld(
        "input_audio_buffer.commit", required=True
    )
    event_id: str | Unset = EVENT_ID


@dataclass
class InputAudioBufferClear:
    type: Literal["input_audio_buffer.clear"] | Unset = fld(
        "input_audio_buffer.clear", required=True
    )
    event_id: str | Unset = EVENT_ID


@dataclass
class OutputAudioBufferClear:
    type: Literal["output_audio_buffer.clear"] | Unset = fld(
        "output_audio_buffer.clear", required=True
    )
    event_id: str | Unset = EVENT_ID


@dataclass
class ConversationItemCreate:
    type: Literal["conversation.item.create"] | Unset = fld(
        "conversation.item.create", required=True
    )
    event_id: str | Unset = EVENT_ID
    previous_item_id: str | None | Unset = fld(UNSET)
    item: (MessageItem | FunctionCallItem | FunctionCallOutputItem | McpListToolsItem
           | McpCallItem | McpApprovalRequestItem | McpApprovalResponseItem | Unset) = fld(
        UNSET, required=True
    )


@dataclass
class ConversationItemRetrieve:
    type: Literal["conversation.item.retrieve"] | Unset = fld(
        "conversation.item.retrieve", required=True
    )
    event_id: str | Unset = EVENT_ID
    item_id: str | Unset = fld(UNSET, required=True)


@dataclass
class ConversationItemTruncate:
    type: Literal["conversation.item.truncate"] | Unset = fld(
        "conversation.item.truncate", required=True
    )
    event_id: str | Unset = EVENT_ID
    item_id: str | Unset = fld(UNSET, required=True)
    content_index: int | Unset = fld(UNSET, ge=0, required=True)
    audio_end_ms: int | Unset = fld(UNSET, ge=0, required=True)


@dataclass
class ConversationItemDelete:
    type: Literal["conversation.item.delete"] | Unset = fld(
        "conversation.item.delete", required=True
    )
    event_id: str | Unset = EVENT_ID
    item_id: str | Unset = fld(UNSET, required=True)


@dataclass
class ResponseCreate:
    type: Literal["response.create"] | Unset = fld("response.create", required=True)
    event_id: str | Unset = EVENT_ID
    response: ResponseParams | Unset = fld(UNSET)


@dataclass
class ResponseCancel:
    type: Literal["response.cancel"] | Unset = fld("response.cancel", required=True)
    event_id: str | Unset = EVENT_ID
    response_id: str | Unset = fld(UNSET)


CLIENT_EVENT_CLASSES: tuple[type[Any], ...] = (  # wire dataclasses
    SessionUpdate,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferClear,
    OutputAudioBufferClear,
    ConversationItemCreate,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    ConversationItemDelete,
    ResponseCreate,
    ResponseCancel,
)
CLIENT_EVENTS: dict[str, type] = {c.__dataclass_fields__["type"].metadata["wire"].default: c
                                  for c in CLIENT_EVENT_CLASSES}

#: Every GA server event type (the SDK's ``RealtimeServerEvent`` union): what a client must expect.
#: The local server sends all but ``conversation.item.created`` (still in the GA union; GA servers
#: send ``conversation.item.added`` / ``.done``), ``input_audio_buffer.dtmf_event_received`` (SIP
#: calls only) and ``...input_audio_transcription.segment`` (it has no diarization engine); the
#: ``output_audio_buffer.*`` events only on WebRTC calls. docs/protocol-coverage.md says, per
#: type, what handles it (generated by tests/test_protocol_coverage.py).
SERVER_EVENTS: tuple[str, ...] = (
    "error",
    "session.created",
    "session.updated",
    "conversation.created",
    "conversation.item.added",
    "conversation.item.created",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.input_audio_transcription.segment",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "input_audio_buffer.timeout_triggered",
    "input_audio_buffer.dtmf_event_received",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
    "output_audio_buffer.cleared",
    "response.created",
    "response.done",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "mcp_list_tools.in_progress",
    "mcp_list_tools.completed",
    "mcp_list_tools.failed",
    "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done",
    "response.mcp_call.in_progress",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
    "rate_limits.updated",
)

_NODES: dict[str, Node] = {}


def _node(name: str) -> Node:
    node = _NODES.get(name)
    if node is None:
        node = _NODES[name] = compile_schema(CLIENT_EVENTS[name])
    return node


def validate_client_event(event: Any) -> None:
    """Check one GA client event as the service would; raise ProtocolError on the first problem.

    The whole event is judged: if anything is wrong nothing of it may be applied.
    """
    if not isinstance(event, dict):
        raise ProtocolError("invalid_json", "The server could not parse the event as a JSON "
                            "object.", None)
    if "type" not in event:
        raise ProtocolError("invalid_event", "The 'type' field is missing.", None)
    etype = event["type"]
    if not isinstance(etype, str) or etype not in CLIENT_EVENTS:
        shown = etype if isinstance(etype, str) else str(etype)
        raise ProtocolError(
            "invalid_value",
            f"Invalid value: '{shown}'. Supported values are: {quote_list(CLIENT_EVENTS)}.",
            "type",
        )
    _node(etype).validate(event, "")
