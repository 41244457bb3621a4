"""The work a :class:`~realtime_nb.protocol.SessionCore` asks its owner to do: a :data:`Job`.

The core never runs engines or network calls itself: it appends a job to its ``jobs`` list
(take them with ``SessionCore.take_jobs()``), and the owner (the local server's job runner,
:mod:`realtime_nb.server.jobs`, or a test) runs it wherever it likes and reports back through
the method each payload names. Every job has ``kind`` and ``payload``; there is one class per
kind (:class:`TranscribeJob`, ...), whose ``kind`` is a ``Literal``, so that a type checker
knows the payload from ``job.kind == "respond"`` alone. :data:`Job` is their union. The
payloads are plain dicts; their keys, per kind, are the TypedDicts below (no runtime check:
they are the contract a reader and a type checker see).

The ``server`` dicts of the MCP payloads carry the ``authorization`` token: never log them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

__all__ = ["Job", "JobPayload", "McpCallJob", "McpCallPayload", "McpListJob", "McpListPayload",
           "RespondJob", "RespondPayload", "ResponseRequestDict", "SpeculateJob",
           "SpeculatePayload", "TranscribeJob", "TranscribePayload", "TurnCheckJob",
           "TurnCheckPayload"]


class TranscribePayload(TypedDict):
    """``"transcribe"``: transcribe a committed user audio item, then call
    ``transcription_delta`` / ``transcription_done`` (``emit=False`` when ``emit`` is False:
    the text is recorded, no event is sent) or ``transcription_failed``."""

    item_id: str
    audio: bytes  #: in the session's input format
    format: dict[str, Any]  #: that format (``{"type": "audio/pcm", "rate": 24000}``, ...)
    config: dict[str, Any] | None  #: ``audio.input.transcription`` (None: turned off)
    emit: bool  #: whether transcription events are wanted
    has_speech: bool | None  #: the VAD's verdict on the audio, or None
    logprobs: bool  #: whether the events carry ``logprobs`` (the session's ``include``)
    #: the id of a ``"speculate"`` job whose result may be reused (absent or None: none)
    speculation: NotRequired[int | None]


class SpeculatePayload(TypedDict):
    """``"speculate"``: transcribe the turn so far early, the turn may be about to end. The
    work may be dropped once ``SessionCore.open_speculation`` stops naming it, unless a
    transcription job names it."""

    speculation: int
    audio: bytes
    format: dict[str, Any]
    config: dict[str, Any] | None
    logprobs: bool


class ResponseRequestDict(TypedDict):
    """What a responder needs for one response (the server makes its ``ResponseRequest`` from
    it). ``pending_item_ids``: user audio items whose transcript is not known yet (wait for
    them, then fill ``input_audio`` parts' ``transcript`` in ``conversation``)."""

    instructions: str
    conversation: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: Any
    max_output_tokens: Any
    output_modalities: list[str]
    voice: str
    speed: float
    pending_item_ids: list[str]


class RespondPayload(TypedDict):
    """``"respond"``: produce response ``response_id``, then call ``response_output``,
    ``response_audio`` per spoken piece and ``response_finish`` (or ``response_failed``),
    while ``is_live(response_id)``."""

    response_id: str
    request: ResponseRequestDict


class TurnCheckPayload(TypedDict):
    """``"turn_check"``: run the end-of-turn model on ``audio`` and call ``turn_decision``; the
    work may be dropped once ``turn_check_open(check)`` is False."""

    check: Any  #: a :class:`realtime_nb.vad.TurnCheck`
    audio: Any  #: the int16 24 kHz samples it judges


class McpListPayload(TypedDict):
    """``"mcp_list"``: list the tools of the session's ``mcp`` tool ``server``, then call
    ``mcp_list_done``."""

    item_id: str
    server: dict[str, Any]


class McpCallPayload(TypedDict):
    """``"mcp_call"``: run tool ``name`` with ``arguments`` (JSON) on ``server``, then call
    ``mcp_call_done``."""

    item_id: str
    server: dict[str, Any]
    name: str
    arguments: str


#: Any job's payload (which one: the job's ``kind``).
JobPayload = (TranscribePayload | SpeculatePayload | RespondPayload | TurnCheckPayload
              | McpListPayload | McpCallPayload)


@dataclass
class TranscribeJob:
    """Transcribe a committed user audio item (see :class:`TranscribePayload`)."""

    payload: TranscribePayload
    kind: Literal["transcribe"] = field(default="transcribe", init=False)


@dataclass
class SpeculateJob:
    """Transcribe the turn so far, early (see :class:`SpeculatePayload`)."""

    payload: SpeculatePayload
    kind: Literal["speculate"] = field(default="speculate", init=False)


@dataclass
class RespondJob:
    """Produce a response (see :class:`RespondPayload`)."""

    payload: RespondPayload
    kind: Literal["respond"] = field(default="respond", init=False)


@dataclass
class TurnCheckJob:
    """Ask the end-of-turn model (see :class:`TurnCheckPayload`)."""

    payload: TurnCheckPayload
    kind: Literal["turn_check"] = field(default="turn_check", init=False)


@dataclass
class McpListJob:
    """List an MCP server's tools (see :class:`McpListPayload`)."""

    payload: McpListPayload
    kind: Literal["mcp_list"] = field(default="mcp_list", init=False)


@dataclass
class McpCallJob:
    """Call an MCP server's tool (see :class:`McpCallPayload`)."""

    payload: McpCallPayload
    kind: Literal["mcp_call"] = field(default="mcp_call", init=False)


#: Work the owner of a SessionCore must run and report back: ``kind`` is ``"transcribe"``,
#: ``"speculate"``, ``"respond"``, ``"turn_check"``, ``"mcp_list"`` or ``"mcp_call"``, and
#: ``payload`` the matching TypedDict of this module. Test ``job.kind`` to know which.
Job = TranscribeJob | SpeculateJob | RespondJob | TurnCheckJob | McpListJob | McpCallJob
