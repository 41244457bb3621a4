"""The one error type of the client, its warnings, and which error codes end a session.

Every failure a notebook user can meet is a :class:`RealtimeError`: an event refused before it was
sent (``source="client"``), an ``error`` event from the server (``source="server"``), or the
connection itself failing (``source="connection"``). It carries the service's ``code``,
``message`` and ``param`` unchanged, plus ``hint`` — what the mistake usually is and how to fix it
(see :mod:`realtime_nb.client.hints`).

Fatal errors end the session (the socket closes); recoverable ones reject only the offending
event. The split follows the consensus of client code bases (protocol reference §6).
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "BENIGN_CODES",
    "FATAL_CODES",
    "AudioWarning",
    "ImageWarning",
    "ProtocolWarning",
    "RealtimeError",
    "RealtimeTimeout",
    "RealtimeWarning",
    "is_fatal",
]

#: Codes after which the session cannot continue (the server closes the socket or never opens it).
FATAL_CODES = frozenset({
    "session_expired",
    "beta_api_shape_disabled",
    "invalid_api_key",
    "missing_api_key",
    "authentication_error",
    "insufficient_quota",
    "invalid_model",
})

#: Codes that are races rather than bugs (the session is unaffected).
BENIGN_CODES = frozenset({
    "response_cancel_not_active",
    "item_truncate_invalid_audio_end_ms",
    "input_audio_buffer_commit_empty",
    "conversation_already_has_active_response",
})

Source = Literal["client", "server", "connection"]


def is_fatal(code: str | None) -> bool:
    """Whether an error code ends the session (see :data:`FATAL_CODES`)."""
    return code in FATAL_CODES


class RealtimeError(Exception):
    """An error of a Realtime session, shaped like the service's ``error`` object.

    Attributes:
        code: the service's code (``"input_audio_buffer_commit_empty"``, ``"unknown_parameter"``,
            ...) or a client one (``"float32_audio"``, ``"connection_closed"``, ``"timeout"``).
        message: the service's exact message (for client refusals: what the service would say).
        param: dotted path of the offending field from the event root, or ``None``.
        fatal: True when the session cannot continue.
        source: ``"client"`` (refused before sending), ``"server"`` (an ``error`` event) or
            ``"connection"`` (the socket failed or closed).
        hint: the usual cause and the fix, in plain language, or ``None``.
        event_id: the ``event_id`` of the client event this error answers, when known.
        type: the service's ``error.type`` (``"invalid_request_error"``, ``"server_error"``).
        event: the server ``error`` event (audio-free), when there was one.
    """

    def __init__(
        self,
        code: str | None,
        message: str,
        *,
        param: str | None = None,
        fatal: bool | None = None,
        source: Source = "server",
        hint: str | None = None,
        event_id: str | None = None,
        type: str = "invalid_request_error",
        event: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.fatal = is_fatal(code) if fatal is None else fatal
        self.source = source
        self.hint = hint
        self.event_id = event_id
        self.type = type
        self.event = event

    def __str__(self) -> str:
        text = f"[{self.code}] {self.message}"
        if self.param:
            text += f" (param: {self.param})"
        if self.hint:
            text += f"\nHint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return (f"RealtimeError(code={self.code!r}, source={self.source!r}, fatal={self.fatal}, "
                f"param={self.param!r}, message={self.message!r})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the wire ``error`` fields plus ``source``, ``fatal`` and ``hint``)."""
        return {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": self.event_id,
            "source": self.source,
            "fatal": self.fatal,
            "hint": self.hint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RealtimeError:
        """Inverse of :meth:`to_dict` (used when a trace is imported)."""
        return cls(
            data.get("code"), data.get("message", ""), param=data.get("param"),
            fatal=data.get("fatal"), source=data.get("source", "server"), hint=data.get("hint"),
            event_id=data.get("event_id"), type=data.get("type", "invalid_request_error"),
        )


class RealtimeTimeout(RealtimeError, TimeoutError):
    """An awaited server event did not arrive in time (``code="timeout"``, ``source="client"``)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__("timeout", message, fatal=False, source="client", hint=hint)


class RealtimeWarning(UserWarning):
    """Something that works but is probably not what you want (the session records them too)."""


class AudioWarning(RealtimeWarning):
    """Audio that :func:`realtime_nb.audio.diagnose` flags: silence, clipping, too short, ..."""


class ImageWarning(RealtimeWarning):
    """A picture changed on its way out: downsized (or re-encoded) by ``Session.send_image``."""


class ProtocolWarning(RealtimeWarning):
    """A server event the client could not make sense of (malformed JSON, missing fields)."""
