"""The default responder, :class:`EchoResponder`: a deterministic stand-in for the model that
repeats what it heard, reports function and MCP results, and calls the tools the user names (with
arguments from :mod:`.responder_arguments`), enough to exercise every event sequence of the
Realtime API offline.

Import it from :mod:`realtime_nb.server.engines.responder`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from realtime_nb.protocol.images import InputImage

from .responder_arguments import _clean_phrase, arguments_for_schema
from .responder_types import (
    FunctionCall,
    McpCall,
    Reply,
    ResponseRequest,
    ToolChoice,
    _is_message,
    latest_user_images,
    latest_user_text,
    limit_reply,
)

__all__ = ["NO_SPEECH_REPLY", "EchoResponder"]

NO_SPEECH_REPLY = "I did not catch that. Could you say it again?"

_GENERIC_NAME_PARTS = {
    "get", "set", "do", "make", "fetch", "run", "call", "the", "a", "an", "of", "to", "for",
    "and", "or", "is", "on", "in", "by", "with", "my", "tool", "function",
}


def _images_sentence(images: Sequence[InputImage]) -> str:
    """``You sent a 640×480 PNG image.`` / ``You sent 2 images: a 640×480 PNG and a ...``."""
    if len(images) == 1:
        return f"You sent a {images[0].describe()} image."
    shown = [f"a {img.describe()}" for img in images]
    return f"You sent {len(images)} images: {', '.join(shown[:-1])} and {shown[-1]}."


def _name_parts(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [p.lower() for p in re.split(r"[_\-\s.]+", spaced) if p]


def _tool_mention(tool: dict[str, Any], words: list[str]) -> tuple[int, int]:
    """(number of the tool name's significant parts the user said, index after the last one)."""
    parts = [p for p in _name_parts(str(tool.get("name", ""))) if p not in _GENERIC_NAME_PARTS]
    plain = [w.lower().strip(",.;:!?\"'") for w in words]
    hits, end = 0, 0
    for part in parts:
        for i, word in enumerate(plain):
            if word in (part, part + "s", part + "es"):
                hits += 1
                end = max(end, i + 1)
                break
    return hits, end


class EchoResponder:
    """A deterministic stand-in for the model.

    * Latest user turn → ``You said: "<what was heard>".`` (no speech heard →
      "I did not catch that. Could you say it again?"). A turn with images is acknowledged
      first, by size and format only — ``You sent a 640×480 PNG image. You said: "..."`` — for
      this responder has no vision and never pretends to describe a picture.
    * After ``function_call_output`` items → ``<name> returned <output>.`` for each; after MCP
      calls that ran → ``<name> returned <output>.`` / ``<name> failed: <error message>.``; after
      a denied approval → ``I did not run <name>: <reason>.``
    * MCP tools (``{"type": "mcp"}`` entries) are called like function tools, with arguments
      from their ``input_schema``; ``tool_choice`` ``{"type": "mcp", "server_label", "name"}``
      calls that one (the server's first tool without ``name``).
    * Tools: ``tool_choice`` ``{"type": "function", "name": X}`` calls X; ``"required"`` calls the
      tool the user mentioned, else the first tool (both even right after a function result, as
      the API does); ``"auto"`` calls a tool when the user's words
      mention its name (split on ``_``, ``-`` and camelCase, generic parts such as "get" ignored:
      ``get_weather`` ↔ "weather"); ``"none"`` never calls. Arguments come from the tool's JSON
      schema and the utterance (:func:`arguments_for_schema`). With ``announce_calls=True`` a call
      is preceded by a sentence (``Calling get_weather.``), exercising text-then-call responses.
    * ``max_output_tokens`` cuts the text at that many words (:func:`limit_reply`).

    ``instructions`` are ignored. Stateless, hence thread-safe.
    """

    def __init__(self, *, announce_calls: bool = False) -> None:
        self.announce_calls = announce_calls

    def respond(self, request: ResponseRequest) -> Reply:
        """Answer ``request`` (see the class docstring)."""
        return limit_reply(self._respond(request), request.max_output_tokens)

    def _respond(self, request: ResponseRequest) -> Reply:
        tools = [
            t for t in request.tools
            if t.get("type", "function") in ("function", "mcp") and t.get("name")
        ]
        choice = request.tool_choice
        named = self._named_tool(choice, tools)
        must_call = named is not None or (choice == "required" and bool(tools))
        trigger = self._trigger(request.conversation)
        if not must_call and trigger is not None and trigger[0] != "user":
            return Reply(text=self._report_outputs(request.conversation))
        utterance = latest_user_text(request.conversation)
        words = utterance.split()
        if named is not None:
            _hits, end = _tool_mention(named, words)
            return self._call(named, utterance, words[end:] if end else [])
        if choice != "none" and tools:
            best, best_hits, best_end = None, 0, 0
            for tool in tools:
                hits, end = _tool_mention(tool, words)
                if hits > best_hits:
                    best, best_hits, best_end = tool, hits, end
            if best is not None:
                return self._call(best, utterance, words[best_end:])
            if must_call:
                return self._call(tools[0], utterance, [])
        images = latest_user_images(request.conversation) if trigger is not None else []
        if images:
            said = f' You said: "{utterance.strip()}".' if utterance.strip() else ""
            return Reply(text=_images_sentence(images) + said)
        if not utterance.strip():
            return Reply(text=NO_SPEECH_REPLY)
        return Reply(text=f'You said: "{utterance.strip()}".')

    @staticmethod
    def _named_tool(choice: ToolChoice, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
        if isinstance(choice, dict) and choice.get("type") == "mcp":
            for tool in tools:
                if (tool.get("type") == "mcp"
                        and tool.get("server_label") == choice.get("server_label")
                        and choice.get("name") in (None, tool.get("name"))):
                    return tool
            raise ValueError(
                f"tool_choice names MCP server {choice.get('server_label')!r} tool "
                f"{choice.get('name')!r}, which is not among the listed tools.")
        if isinstance(choice, dict) and choice.get("type") == "function":
            for tool in tools:
                if tool.get("type", "function") == "function" and tool.get("name") == choice.get(
                        "name"):
                    return tool
            raise ValueError(
                f"tool_choice names function {choice.get('name')!r}, which is not among the tools."
            )
        return None

    @staticmethod
    def _trigger(conversation: Sequence[dict[str, Any]]) -> tuple[str, int] | None:
        """The last item a reply reacts to: a user message, a function_call_output, an MCP call
        that ran or a denied MCP approval."""
        for index in range(len(conversation) - 1, -1, -1):
            item = conversation[index]
            if item.get("type") == "function_call_output":
                return ("function_call_output", index)
            if _ran(item) or _denied(item):
                return (str(item.get("type")), index)
            if _is_message(item, "user"):
                return ("user", index)
        return None

    @staticmethod
    def _report_outputs(conversation: Sequence[dict[str, Any]]) -> str:
        names = {
            item.get("call_id"): str(item.get("name", "the function"))
            for item in conversation
            if item.get("type") == "function_call"
        }
        requests = {item.get("id"): str(item.get("name", "the tool")) for item in conversation
                    if item.get("type") == "mcp_approval_request"}
        outputs: list[dict[str, Any]] = []
        for item in reversed(conversation):  # the trailing run of outputs (parallel calls)
            if item.get("type") in ("function_call_output", "mcp_call", "mcp_approval_response",
                                    "mcp_approval_request", "mcp_list_tools"):
                outputs.append(item)
            elif not _is_message(item, "system"):
                break
        sentences = []
        for item in reversed(outputs):
            if item.get("type") == "function_call_output":
                name = names.get(item.get("call_id"), "the function")
                output = str(item.get("output", "")).strip() or "nothing"
                sentences.append(f"{name} returned {output}.")
            elif _ran(item):
                name = str(item.get("name", "the tool"))
                if item.get("error"):
                    message = str((item["error"] or {}).get("message", "")).strip()
                    sentences.append(f"{name} failed: {message or 'no reason given'}.")
                else:
                    output = str(item.get("output") or "").strip() or "nothing"
                    sentences.append(f"{name} returned {output}.")
            elif _denied(item):
                name = requests.get(item.get("approval_request_id"), "the tool")
                reason = str(item.get("reason") or "").strip()
                sentences.append(f"I did not run {name}" + (f": {reason}." if reason else "."))
        return " ".join(sentences)

    def _call(self, tool: dict[str, Any], utterance: str, after: list[str]) -> Reply:
        name = str(tool["name"])
        schema = tool.get("input_schema") if tool.get("type") == "mcp" else tool.get("parameters")
        arguments = arguments_for_schema(schema, utterance, after_match=_clean_phrase(after))
        call: FunctionCall | McpCall
        if tool.get("type") == "mcp":
            call = McpCall(str(tool.get("server_label")), name, json.dumps(arguments))
        else:
            call = FunctionCall(name, json.dumps(arguments))
        text = f"Calling {name}." if self.announce_calls else ""
        return Reply(text=text, function_calls=(call,))


def _ran(item: dict[str, Any]) -> bool:
    """An ``mcp_call`` item whose call has run (output or error filled)."""
    return item.get("type") == "mcp_call" and (
        item.get("output") is not None or bool(item.get("error")))


def _denied(item: dict[str, Any]) -> bool:
    return item.get("type") == "mcp_approval_response" and item.get("approve") is False
