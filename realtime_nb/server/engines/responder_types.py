"""What a responder receives and returns: :class:`ResponseRequest`, :class:`Reply`,
:class:`FunctionCall`, :class:`McpCall`, the :class:`Responder` protocol, and the helpers that read
GA wire-shaped conversation items (:func:`latest_user_text`, :func:`conversation_images`,
:func:`latest_user_images`) or cut a reply at ``max_output_tokens`` (:func:`limit_reply`,
:func:`approx_tokens`).

Import these names from :mod:`realtime_nb.server.engines.responder` (or
:mod:`realtime_nb.server.engines`); this module is where they live, so that the shipped responders
(:mod:`.responder_echo`, :class:`~realtime_nb.server.engines.responder.CallableResponder`) share
them without importing each other.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from realtime_nb.protocol.images import InputImage, decode_image_url

__all__ = [
    "FunctionCall",
    "InputImage",
    "McpCall",
    "Reply",
    "Responder",
    "ResponseRequest",
    "ToolChoice",
    "approx_tokens",
    "conversation_images",
    "latest_user_images",
    "latest_user_text",
    "limit_reply",
]

ToolChoice = Literal["auto", "none", "required"] | dict[str, Any]


@dataclass
class ResponseRequest:
    """Everything a responder may use to produce one response.

    ``conversation`` holds GA wire-shaped items in order: ``message`` items (role ``system`` /
    ``user`` / ``assistant``; content parts ``input_text{text}``, ``input_audio{transcript}``,
    ``input_image{image_url, detail}``, ``output_text{text}``, ``output_audio{transcript}``),
    ``function_call{call_id, name, arguments}``, ``function_call_output{call_id, output}`` and
    the MCP items (``mcp_list_tools``, ``mcp_call{server_label, name, arguments, output,
    error}``, ``mcp_approval_request``, ``mcp_approval_response{approval_request_id, approve,
    reason}``). ``tools`` are GA function tools ``{"type": "function", "name", "description",
    "parameters"}`` and the tools of the session's MCP servers as listed (allowed ones only)
    ``{"type": "mcp", "server_label", "name", "description", "input_schema", "annotations"}``:
    answer with an :class:`McpCall` to call one. ``tool_choice`` is ``"auto"``, ``"none"``,
    ``"required"``, ``{"type": "function", "name": ...}`` or ``{"type": "mcp", "server_label",
    "name"?}``. ``max_output_tokens`` is an int, ``"inf"`` or ``None`` (no limit).
    :attr:`images` / :attr:`latest_images` give the pictures decoded.
    """

    instructions: str = ""
    conversation: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    max_output_tokens: int | Literal["inf"] | None = None

    @functools.cached_property
    def images(self) -> list[InputImage]:
        """Every image of :attr:`conversation`, in order, decoded (see
        :func:`conversation_images`). Decoded on first access, then kept."""
        return conversation_images(self.conversation)

    @functools.cached_property
    def latest_images(self) -> list[InputImage]:
        """The images of the last user message (``[]`` if it has none), decoded once."""
        return latest_user_images(self.conversation)


class _JsonArguments:
    """What :class:`FunctionCall` and :class:`McpCall` share: arguments kept as the wire's JSON
    object string (their dataclass field ``arguments_json``) and decoded on demand. Declares no
    field, so each subclass keeps its own fields in its own order."""

    arguments_json: str

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments decoded from JSON."""
        return json.loads(self.arguments_json)


@dataclass(frozen=True)
class FunctionCall(_JsonArguments):
    """A function the assistant calls: ``name`` and its arguments as a JSON object string (the
    wire's ``arguments``). The server assigns the ``call_id``."""

    name: str
    arguments_json: str = "{}"


@dataclass(frozen=True)
class McpCall(_JsonArguments):
    """A call of tool ``name`` on the MCP server labelled ``server_label`` (one of the request's
    ``{"type": "mcp"}`` tools), with its arguments as a JSON object string. The server runs it
    (after approval when the tool's ``require_approval`` asks for it)."""

    server_label: str
    name: str
    arguments_json: str = "{}"


@dataclass(frozen=True)
class Reply:
    """One response: optional ``text`` (a message item, said first) then ``function_calls`` (one
    ``function_call`` item each, or an ``mcp_call`` item for an :class:`McpCall`).
    ``truncated`` means the text was cut at ``max_output_tokens``:
    the server should finish the response with status ``incomplete``, reason
    ``max_output_tokens``."""

    text: str = ""
    function_calls: tuple[FunctionCall | McpCall, ...] = ()
    truncated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "function_calls", tuple(self.function_calls))


@runtime_checkable
class Responder(Protocol):
    """Produces the assistant's reply for a :class:`ResponseRequest`.

    Called from a worker thread, possibly several at once for parallel (out-of-band) responses:
    keep it thread-safe or hold no mutable state.
    """

    def respond(self, request: ResponseRequest) -> Reply: ...


# --------------------------------------------------------------------------------------------
# helpers on wire items
# --------------------------------------------------------------------------------------------


def _message_text(item: dict[str, Any]) -> str:
    """The text of a message item: text parts and audio transcripts, in order."""
    parts: list[str] = []
    for part in item.get("content") or []:
        if not isinstance(part, dict):
            continue
        ptype = part.get("type")
        if ptype in ("input_text", "output_text", "text"):
            value = part.get("text")
        elif ptype in ("input_audio", "output_audio", "audio"):
            value = part.get("transcript")
        else:
            value = None
        if isinstance(value, str) and value.strip():
            parts.append(value.strip())
    return " ".join(parts)


def _is_message(item: dict[str, Any], role: str) -> bool:
    return item.get("type", "message") == "message" and item.get("role") == role


def latest_user_text(conversation: Sequence[dict[str, Any]]) -> str:
    """The text (or audio transcript) of the last user message, ``""`` if there is none."""
    for item in reversed(conversation):
        if _is_message(item, "user"):
            return _message_text(item)
    return ""


def _message_images(item: dict[str, Any]) -> list[InputImage]:
    out = []
    for i, part in enumerate(item.get("content") or []):
        if isinstance(part, dict) and part.get("type") == "input_image":
            out.append(decode_image_url(
                part.get("image_url"), param=f"content[{i}].image_url",
                detail=part.get("detail", "auto"), item_id=item.get("id")))
    return out


def conversation_images(conversation: Sequence[dict[str, Any]]) -> list[InputImage]:
    """The ``input_image`` parts of the user messages in ``conversation``, decoded, in order.

    Raises :class:`~realtime_nb.protocol.schema.ProtocolError` for a part that is not a PNG/JPEG
    data URL (the server has refused those before a responder sees them)."""
    return [img for item in conversation if _is_message(item, "user")
            for img in _message_images(item)]


def latest_user_images(conversation: Sequence[dict[str, Any]]) -> list[InputImage]:
    """The images of the last user message, decoded (``[]`` if it has none)."""
    for item in reversed(conversation):
        if _is_message(item, "user"):
            return _message_images(item)
    return []


def approx_tokens(text: str) -> int:
    """Approximate token count used for ``max_output_tokens``: one token per word."""
    return len(text.split())


def _limit_words(text: str, max_tokens: int) -> tuple[str, bool]:
    words = list(re.finditer(r"\S+", text))
    if len(words) <= max_tokens:
        return text, False
    if max_tokens <= 0:
        return "", True
    return text[: words[max_tokens - 1].end()], True


def limit_reply(reply: Reply, max_output_tokens: int | str | None) -> Reply:
    """Apply ``max_output_tokens`` (approximate, :func:`approx_tokens`) to a reply.

    Text beyond the limit is cut at a word boundary and ``truncated`` is set; function calls are
    dropped when the text already used the whole budget (the response stopped before them).
    ``None`` and ``"inf"`` mean no limit.
    """
    if max_output_tokens is None or max_output_tokens == "inf":
        return reply
    limit = int(max_output_tokens)
    text, cut = _limit_words(reply.text, limit)
    if not cut:
        if reply.function_calls and approx_tokens(reply.text) >= limit and reply.text:
            return replace(reply, function_calls=(), truncated=True)
        return reply
    return Reply(text=text, function_calls=(), truncated=True)
