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

Where things live (this module re-exports them all; import from here):

* :mod:`.responder_types` — :class:`ResponseRequest`, :class:`Reply`, :class:`FunctionCall`,
  :class:`McpCall`, the :class:`Responder` protocol, the wire-item helpers, :func:`limit_reply`;
* :mod:`.responder_arguments` — :func:`arguments_for_schema` (tool arguments from an utterance);
* :mod:`.responder_echo` — :class:`EchoResponder`;
* here — :class:`CallableResponder` and :func:`as_responder` (plugging in plain functions).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, get_type_hints

from .responder_arguments import arguments_for_schema
from .responder_echo import NO_SPEECH_REPLY, EchoResponder  # noqa: F401  (importable as before)
from .responder_types import (
    FunctionCall,
    InputImage,
    McpCall,
    Reply,
    Responder,
    ResponseRequest,
    ToolChoice,  # noqa: F401  (importable from here as before the split)
    approx_tokens,
    conversation_images,
    latest_user_images,
    latest_user_text,
    limit_reply,
)

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
