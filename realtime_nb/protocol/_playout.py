"""The WebRTC output audio buffer of :class:`~realtime_nb.protocol.state.SessionCore`.

Over WebRTC the response audio travels on the media track, not in events: the core queues it
in ``playout`` for the owner's outgoing track and reports ``output_audio_buffer.started`` /
``stopped`` / ``cleared`` as the service does; ``output_audio_buffer.clear`` (refused over a
WebSocket, as by the service) and barge-in cut it. :class:`OutputBuffer` is that part of the
core (a mixin using its ``transport``, ``responses``, ``active_response`` and ``emit``); the
owner drives it with :meth:`~OutputBuffer.take_playout` and :meth:`~OutputBuffer.playout_idle`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .schema import ProtocolError

__all__ = ["OUTPUT_AUDIO_CLEAR_REFUSED", "OutputBuffer"]

#: The service's message refusing ``output_audio_buffer.clear`` outside WebRTC and SIP sessions
#: (the local server's error; the client's :meth:`Session.clear_output_audio` says the same
#: before sending).
OUTPUT_AUDIO_CLEAR_REFUSED = ("Invalid value: 'output_audio_buffer.clear'. This event is only "
                              "supported for WebRTC and SIP sessions.")

if TYPE_CHECKING:
    from ._parts import SessionParts  # the core's members this part uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin


class OutputBuffer(SessionParts):
    """WebRTC output buffer of a SessionCore (see the module docstring). Owns ``playout`` and
    ``_audible`` (responses with audio in the buffer, in order), created by the core."""

    def _on_output_audio_buffer_clear(self, ev: dict[str, Any]) -> None:
        if self.transport == "webrtc":
            self._clear_playout()
            return
        raise ProtocolError("invalid_value", OUTPUT_AUDIO_CLEAR_REFUSED, "type")

    # ------------------------------------------------------------------ WebRTC output buffer
    @property
    def playing(self) -> str | None:
        """The response whose audio the output buffer is playing (WebRTC), or None."""
        return self._audible[0] if self._audible else None

    def _queue_playout(self, response_id: str, pcm16_24k: bytes) -> None:
        self.playout.append(("audio", response_id, pcm16_24k))
        if response_id not in self._audible:
            self._audible.append(response_id)
            if len(self._audible) == 1:
                self.emit("output_audio_buffer.started", response_id=response_id)

    def take_playout(self) -> list[tuple[str, str, bytes]]:
        """Take the queued output-buffer work (see :attr:`playout`)."""
        out, self.playout = self.playout, []
        return out

    def playout_idle(self, response_id: str) -> None:
        """The owner's track has played every queued sample of ``response_id``. Once that
        response is finished this is the end of its audio: ``output_audio_buffer.stopped``
        (while it is still generating it is only a gap, and nothing is emitted)."""
        if response_id not in self._audible:
            return
        resp = self.responses.get(response_id)
        if resp is not None and resp.status == "in_progress":
            return
        was_head = self._audible[0] == response_id
        self._audible.remove(response_id)
        self.emit("output_audio_buffer.stopped", response_id=response_id)
        if was_head and self._audible:
            self.emit("output_audio_buffer.started", response_id=self._audible[0])

    def _clear_playout(self) -> None:
        rid = self.playing or self.active_response
        self._audible.clear()
        self.playout.append(("clear", rid or "", b""))
        self.emit("output_audio_buffer.cleared", response_id=rid)
