"""The local assistant's "brain": what the local server says (or which function it calls).

A responder is anything with ``respond(request: ResponseRequest) -> Reply`` (the :class:`Responder`
protocol). The server builds a :class:`ResponseRequest` from the session and the conversation
(GA wire-shaped items) for every ``response.create``, and turns the :class:`Reply` into output
items: a message (text, spoken by the synthesizer when the output modality is audio) and/or
``function_call`` items, and ``mcp_call`` items (:class:`McpCall`) that the server runs on the
MCP server itself.

* :class:`EchoResponder` (the default) is deterministic: it repeats what it heard, reports function
  results, and calls tools when the user names them — enough to exercise every event sequence of
  the Realtime API offline.
* :class:`CallableResponder` / :func:`as_responder` plug any Python function in
  (``lambda text: text.upper()`` works).

Images: user messages may carry ``input_image`` parts (PNG/JPEG data URLs, checked by the server
before they get here). :attr:`ResponseRequest.images` gives every image of the request's
conversation decoded (:class:`~realtime_nb.protocol.images.InputImage`: file bytes, MIME type,
width, height, detail, item id) and :func:`latest_user_images` those of the last user message, so
a responder that takes the request can look at them; a text-only function gets the text as
before. The local server has no vision model: :class:`EchoResponder` says what it received
(``You sent a 640×480 PNG image.``) and never describes the picture.

Token counting here is approximate: one token per whitespace-separated word
(:func:`approx_tokens`); ``max_output_tokens`` truncates the reply text to that many words and
sets :attr:`Reply.truncated`, which the server reports as an ``incomplete`` response.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, get_type_hints, runtime_checkable

from realtime_nb.protocol.images import InputImage, decode_image_url

__all__ = [
    "CallableResponder",
    "EchoResponder",
    "FunctionCall",
    "InputImage",
    "McpCall",
    "Reply",
    "Responder",
    "ResponseRequest",
    "approx_tokens",
    "arguments_for_schema",
    "as_responder",
    "conversation_images",
    "latest_user_images",
    "latest_user_text",
    "limit_reply",
]

NO_SPEECH_REPLY = "I did not catch that. Could you say it again?"

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


@dataclass(frozen=True)
class FunctionCall:
    """A function the assistant calls: ``name`` and its arguments as a JSON object string (the
    wire's ``arguments``). The server assigns the ``call_id``."""

    name: str
    arguments_json: str = "{}"

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments decoded from JSON."""
        return json.loads(self.arguments_json)


@dataclass(frozen=True)
class McpCall:
    """A call of tool ``name`` on the MCP server labelled ``server_label`` (one of the request's
    ``{"type": "mcp"}`` tools), with its arguments as a JSON object string. The server runs it
    (after approval when the tool's ``require_approval`` asks for it)."""

    server_label: str
    name: str
    arguments_json: str = "{}"

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments decoded from JSON."""
        return json.loads(self.arguments_json)


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


def _images_sentence(images: Sequence[InputImage]) -> str:
    """``You sent a 640×480 PNG image.`` / ``You sent 2 images: a 640×480 PNG and a ...``."""
    if len(images) == 1:
        return f"You sent a {images[0].describe()} image."
    shown = [f"a {img.describe()}" for img in images]
    return f"You sent {len(images)} images: {', '.join(shown[:-1])} and {shown[-1]}."


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


# --------------------------------------------------------------------------------------------
# arguments from a JSON schema
# --------------------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}
_LEADING_FILLER = {
    "in", "for", "at", "of", "on", "to", "the", "a", "an", "about", "is", "are", "be", "please",
    "me", "my", "with", "from", "like", "by",
}
_GENERIC_NAME_PARTS = {
    "get", "set", "do", "make", "fetch", "run", "call", "the", "a", "an", "of", "to", "for",
    "and", "or", "is", "on", "in", "by", "with", "my", "tool", "function",
}


def _numbers_in(text: str) -> list[float]:
    found: list[float] = []
    for token in re.findall(r"-?\d+(?:\.\d+)?|[a-zA-Z]+", text):
        if re.fullmatch(r"-?\d+(?:\.\d+)?", token):
            found.append(float(token))
        elif token.lower() in _NUMBER_WORDS:
            found.append(float(_NUMBER_WORDS[token.lower()]))
    return found


def _strip_filler(words: list[str]) -> list[str]:
    while words and words[0].lower().strip(",.;:!?\"'") in _LEADING_FILLER:
        words = words[1:]
    return words


def _clean_phrase(words: list[str]) -> str:
    return " ".join(_strip_filler(words)).strip(" ,.;:!?\"'")


def _is_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null"


def _schema_type(schema: dict[str, Any]) -> str | None:
    stype = schema.get("type")
    if isinstance(stype, list):
        non_null = [t for t in stype if t != "null"]
        return non_null[0] if non_null else "null"
    return stype if isinstance(stype, str) else None


class _ArgumentBuilder:
    """Fills a JSON schema from an utterance (see :func:`arguments_for_schema`)."""

    def __init__(self, utterance: str, after_match: str) -> None:
        self.utterance = utterance
        self.words = utterance.split()
        self.after_match = after_match
        self.numbers = _numbers_in(utterance)

    def string_for(self, prop_name: str) -> str:
        # Words after a mention of the property's own name ("city Paris" → "Paris"), else the
        # words after the tool-name match, else the whole utterance.
        name_parts = {p for p in re.split(r"[_\-\s]+", prop_name.lower()) if p}
        for i, word in enumerate(self.words):
            if word.lower().strip(",.;:!?\"'") in name_parts:
                phrase = _clean_phrase(self.words[i + 1 :])
                if phrase:
                    return phrase
        return self.after_match or self.utterance.strip(" .!?") or prop_name

    def number_for(self, schema: dict[str, Any], integer: bool) -> float | int:
        value = self.numbers.pop(0) if self.numbers else float(schema.get("minimum", 0))
        if "minimum" in schema:
            value = max(value, float(schema["minimum"]))
        if "maximum" in schema:
            value = min(value, float(schema["maximum"]))
        if "exclusiveMinimum" in schema and value <= float(schema["exclusiveMinimum"]):
            value = float(schema["exclusiveMinimum"]) + 1
        if "exclusiveMaximum" in schema and value >= float(schema["exclusiveMaximum"]):
            value = float(schema["exclusiveMaximum"]) - 1
        return int(value) if integer or value == int(value) else value

    def build(self, schema: Any, prop_name: str = "value") -> Any:
        if not isinstance(schema, dict):
            return None
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [o for o in options if not (isinstance(o, dict) and _is_null(o))]
                return self.build((non_null or options)[0], prop_name)
        stype = _schema_type(schema)
        if stype is None and "properties" in schema:
            stype = "object"
        if stype == "object":
            props = schema.get("properties") or {}
            return {name: self.build(sub, name) for name, sub in props.items()}
        if stype == "array":
            count = int(schema.get("minItems", 0))
            items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            return [self.build(items, prop_name) for _ in range(count)]
        if stype == "string":
            return self.string_for(prop_name)
        if stype in ("integer", "number"):
            return self.number_for(schema, integer=stype == "integer")
        if stype == "boolean":
            return False
        if stype == "null":
            return None
        return self.string_for(prop_name)


def arguments_for_schema(
    parameters: dict[str, Any] | None, utterance: str, *, after_match: str = ""
) -> dict[str, Any]:
    """Build function arguments for a JSON-schema ``parameters`` object from what the user said.

    Every declared property is filled (so all ``required`` ones are present): strings from the
    utterance (the words after a mention of the property's name, else ``after_match``, else the
    whole utterance), numbers found in it in order (digits or number words, clamped to
    ``minimum``/``maximum``; 0 or the minimum if none), the first ``enum`` value, ``const``,
    ``false`` for booleans, ``minItems`` items for arrays, nested objects recursively.
    ``pattern``/``format``/length constraints are not enforced.
    """
    built = _ArgumentBuilder(utterance, after_match).build(parameters or {"type": "object"})
    return built if isinstance(built, dict) else {}


# --------------------------------------------------------------------------------------------
# EchoResponder
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# plugging in plain functions
# --------------------------------------------------------------------------------------------


def _wants_request(fn: Callable[..., Any]) -> bool:
    """True when ``fn``'s first parameter is annotated as a ResponseRequest."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params:
        raise TypeError(f"{fn!r} takes no argument; a responder function takes the user's text.")
    annotation = params[0].annotation
    if isinstance(annotation, str):
        try:
            annotation = get_type_hints(fn).get(params[0].name, annotation)
        except Exception:  # unresolved forward references: judge by the name
            return "ResponseRequest" in annotation
    return annotation is ResponseRequest


class CallableResponder:
    """Wraps a plain function as a :class:`Responder`.

    By default the function receives the latest user turn's text (``""`` if none) — unless its
    first parameter is annotated ``ResponseRequest``, in which case it gets the whole request
    (its images are ``request.images`` / ``request.latest_images``); force either with
    ``takes="text"`` or ``takes="request"`` (a lambda has no annotation: ``CallableResponder(
    lambda r: f"{r.latest_images[0].width} wide", takes="request")``). It may return a
    ``str`` (the reply text), a :class:`Reply`, a :class:`FunctionCall` or an :class:`McpCall`.
    ``max_output_tokens`` is applied to the result. Thread safety is the wrapped function's.
    """

    def __init__(
        self, fn: Callable[..., Any], *, takes: Literal["auto", "text", "request"] = "auto"
    ) -> None:
        if not callable(fn):
            raise TypeError(f"CallableResponder needs a callable, got {type(fn).__name__}.")
        self.fn = fn
        self.takes_request = _wants_request(fn) if takes == "auto" else takes == "request"

    def respond(self, request: ResponseRequest) -> Reply:
        """Call the function and normalise its result to a :class:`Reply`."""
        arg: Any = request if self.takes_request else latest_user_text(request.conversation)
        result = self.fn(arg)
        if isinstance(result, Reply):
            reply = result
        elif isinstance(result, FunctionCall | McpCall):
            reply = Reply(function_calls=(result,))
        elif isinstance(result, str):
            reply = Reply(text=result)
        else:
            raise TypeError(
                f"Responder function {self.fn!r} returned {type(result).__name__}; "
                "expected str, Reply, FunctionCall or McpCall."
            )
        return limit_reply(reply, request.max_output_tokens)


def as_responder(obj: Responder | Callable[..., Any]) -> Responder:
    """Return ``obj`` if it already has ``respond``, else wrap a callable in
    :class:`CallableResponder`. Anything else raises ``TypeError``."""
    if isinstance(obj, Responder):
        return obj
    if callable(obj):
        return CallableResponder(obj)
    raise TypeError(
        f"Cannot use {type(obj).__name__} as a responder: pass an object with "
        "respond(request) -> Reply, or a function text -> str."
    )
