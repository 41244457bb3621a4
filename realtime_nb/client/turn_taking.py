"""Turn taking from the kernel: barge-in, truncation by what was heard, push-to-talk as manual
mode, and the silence that ends a VAD turn when capture stops.

These are the rules the notebook panel (:class:`~realtime_nb.widgets.SessionPanel`) follows;
they live here, without widgets, because they are protocol behaviour: any front end that plays
the assistant and captures the user needs the same ones, and tests drive them with a Session
alone. :class:`TurnTaking` makes the session calls; the caller owns the player and the
microphone and tells it what happened there.

* **Barge-in.** When the user talks over the assistant (the server's VAD says
  ``input_audio_buffer.speech_started``, a push-to-talk or record take starts, an explicit
  interrupt, the player's own Stop button), playback stops and the listener's report of how
  many milliseconds of the item were really played becomes ``conversation.item.truncate`` with
  exactly that ``audio_end_ms`` (:meth:`TurnTaking.heard`). The running response is cancelled
  first, except on ``speech``: then the server's VAD cancels it itself (``interrupt_response``).
  With ``interrupt_response: false`` a VAD barge-in does not stop playback at all; forced ones
  (push-to-talk, interrupt, record) always do. The server may already have cancelled or
  truncated: ``response_cancel_not_active`` and ``item_truncate_invalid_audio_end_ms`` (and the
  other :data:`~realtime_nb.client.errors.BENIGN_CODES`) are benign races, kept in the record
  but not raised.
* **Push-to-talk is manual mode.** Choosing it sets ``turn_detection`` to null and remembers
  the VAD it replaced; going back to hands-free restores that VAD (unless one was chosen
  meanwhile). In manual mode each take (Start … Stop, or one recording) is committed and
  answered (``response.create``, after the active response is done).
* **Ending a VAD turn.** With turn detection on, a take that stops in the middle of speech is
  followed by enough silence for the server's VAD to end the turn:
  :func:`end_of_turn_silence_ms` (the VAD's silence window plus :data:`PAD_MARGIN_MS`).

What the caller must know: every session call goes through ``run(label, coroutine_function)``
(the panel passes its ordered outbox, so audio, commits and responses reach the server in the
order asked); nothing here blocks or waits except inside those coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from realtime_nb.audio import Audio, chunks
from realtime_nb.client.errors import BENIGN_CODES, RealtimeError
from realtime_nb.vad.settings import SemanticVadSettings, settings_from_wire

__all__ = ["PAD_MARGIN_MS", "TurnTaking", "end_of_turn_silence_ms", "turn_detection_of"]

#: Extra silence beyond the VAD's window (frames round the window up; a margin for safety).
PAD_MARGIN_MS = 300

Runner = Callable[[str, Callable[[], Awaitable[Any]]], Any]


def turn_detection_of(session: Any) -> Any:
    """``session.audio.input.turn_detection`` as the server last echoed it (None: manual mode).

    Before the first echo (no configuration yet, or no such field in it) this is the service's
    default, ``{"type": "server_vad"}``.
    """
    cfg = session.config
    if not isinstance(cfg, Mapping):
        return {"type": "server_vad"}  # the service's default until the server says otherwise
    try:
        return cfg["audio"]["input"]["turn_detection"]
    except (KeyError, TypeError):
        return {"type": "server_vad"}


def end_of_turn_silence_ms(turn_detection: Mapping[str, Any] | None) -> float:
    """The silence to append after a take so that the server's VAD ends the turn (0 in manual
    mode): ``silence_duration_ms`` for server_vad (the service's default when the field is not
    there), the longest wait of the eagerness for semantic_vad, plus :data:`PAD_MARGIN_MS`.

    Both windows are read from their one home, :mod:`realtime_nb.vad.settings`.
    """
    if not isinstance(turn_detection, Mapping):
        return 0.0
    settings = settings_from_wire(turn_detection)
    if isinstance(settings, SemanticVadSettings):
        wait = float(settings.max_wait_ms)
    else:
        wait = float(settings.silence_duration_ms) if settings is not None else 0.0
    return wait + PAD_MARGIN_MS


class TurnTaking:
    """The turn rules for one session (see the module docstring), free of widgets.

    Args:
        session: the :class:`~realtime_nb.Session`.
        run: how a session call is made: ``run(label, coroutine_function)``; the panel passes
            its outbox (in order, never holding the kernel), which also reports failures.

    Attributes: ``truncations`` (what each barge-in sent: dicts of ``item_id``,
    ``audio_end_ms``, ``reason``, ``result`` — ``"pending"``, then the reply's type or the
    benign error code), ``vad_before_ptt`` (the turn detection push-to-talk replaced, while it
    is on).
    """

    def __init__(self, session: Any, run: Runner) -> None:
        self.session = session
        self._run = run
        self.truncations: list[dict[str, Any]] = []
        self.vad_before_ptt: dict[str, Any] | None = None
        self._stop_reason: str | None = None
        self._content_index: dict[str, int] = {}

    # ------------------------------------------------------------------ reading the session
    @property
    def turn_detection(self) -> Any:
        """The session's turn detection (:func:`turn_detection_of`)."""
        return turn_detection_of(self.session)

    @property
    def manual(self) -> bool:
        """Whether the session is in manual mode (turn detection null), as last asked."""
        return not self.session.mirror.buffer.vad

    def pad_ms(self) -> float:
        """The silence that ends a VAD turn now (:func:`end_of_turn_silence_ms`)."""
        return end_of_turn_silence_ms(self.turn_detection)

    # ------------------------------------------------------------------ barge-in
    def interrupts(self, force: bool = False) -> bool:
        """Whether a barge-in stops the assistant: a forced one always, one of the server's
        VAD unless ``interrupt_response`` is false."""
        td = self.turn_detection
        return force or not (isinstance(td, Mapping) and td.get("interrupt_response") is False)

    def playback_stopped(self, reason: str, reported: bool) -> None:
        """Playback was stopped for ``reason``; ``reported``: the listener will report what
        was played (it had audio since the last stop), and :meth:`heard` will truncate there.
        Cancels the running response unless the server's VAD does (``reason == "speech"``)."""
        self._stop_reason = reason if reported else None
        rs = self.session.active_response
        if reason != "speech" and rs is not None and not rs.done:
            # mypy cannot type a lambda with a default argument as a Callable[[], ...]
            self._run("response.cancel", lambda rid=rs.id: self.cancel(rid))  # type: ignore[misc]

    def playing(self, item_id: str, content_index: int) -> None:
        """Audio of ``item_id``'s content part ``content_index`` went to the player: a
        truncate of the item names that part."""
        self._content_index[item_id] = content_index

    def heard(self, item_id: str | None, played_ms: int) -> dict[str, Any] | None:
        """The listener's report that playback stopped after ``played_ms`` of ``item_id``
        (None: nothing was playing). Queues ``conversation.item.truncate`` at exactly that
        (after cancelling the item's response when the stop was nobody's in the kernel: the
        player's own Stop button) and returns its record, also kept in :attr:`truncations`."""
        reason, self._stop_reason = self._stop_reason or "stop button", None
        if item_id is None:
            return None
        session = self.session
        it = session.mirror.all_items.get(item_id)
        rs = session.responses.get(it.response_id) if it is not None and it.response_id else None
        if rs is not None and not rs.done and reason == "stop button":
            # mypy cannot type a lambda with a default argument as a Callable[[], ...]
            self._run("response.cancel", lambda rid=rs.id: self.cancel(rid))  # type: ignore[misc]
        record = {"item_id": item_id, "audio_end_ms": played_ms, "reason": reason,
                  "result": "pending"}
        self.truncations.append(record)
        self._run("conversation.item.truncate", lambda: self.truncate(record))
        return record

    def clear_call_audio(self) -> None:
        """Interrupt over WebRTC, where the server plays the audio: ``output_audio_buffer.clear``
        (the server truncates what was not heard), then cancel a response still generating."""
        rs = self.session.active_response

        async def cut() -> None:
            await self.session.clear_output_audio()
            if rs is not None and not rs.done:
                await self.cancel(rs.id)

        self._run("output_audio_buffer.clear", cut)

    async def cancel(self, response_id: str | None = None) -> None:
        """``response.cancel``; a response that is no longer active is a benign race."""
        try:
            await self.session.cancel_response(response_id)
        except RealtimeError as err:
            if err.code not in BENIGN_CODES:
                raise

    async def truncate(self, record: dict[str, Any]) -> None:
        """Send the truncate of ``record`` and wait for the reply; its type (or the benign
        error's code) becomes ``record["result"]``."""
        item_id = record["item_id"]
        try:
            reply = await self.session.truncate(
                item_id, int(record["audio_end_ms"]), self._content_index.get(item_id, 0),
                wait=True, timeout=10)
        except RealtimeError as err:
            record["result"] = err.code
            if err.code not in BENIGN_CODES:
                raise
            return
        record["result"] = reply.get("type")

    # ------------------------------------------------------------------ takes
    def take_ended(self) -> None:
        """A streamed take stopped: in manual mode commit it and ask for a response; with VAD
        on, give the VAD the silence that ends a turn cut in the middle of speech."""
        if self.manual:
            self._run("commit + response.create", self.commit_and_respond)
        else:
            self._run("end the VAD turn", self.close_vad_turn)

    def send_take(self, pcm16: bytes) -> None:
        """A recorded take (PCM16 24 kHz): append it in 100 ms chunks, then commit and respond
        (manual mode) or append the silence that ends the VAD turn."""

        async def send() -> None:
            for chunk in chunks(pcm16, "audio/pcm", 100):
                await self.session.append(chunk.data)
            if self.manual:
                await self.commit_and_respond()
            else:
                await self.session.append(Audio.silence(self.pad_ms()).to_pcm16())

        self._run("recorded take", send)

    async def commit_and_respond(self) -> None:
        """Commit the input buffer, then :meth:`respond`."""
        await self.session.commit()
        await self.respond()

    async def respond(self) -> None:
        """``response.create``, once the active response (if any) is done (at most 10 s)."""
        session = self.session
        rs = session.active_response
        if rs is not None and not rs.done:
            with contextlib.suppress(RealtimeError):
                await session.wait_for(
                    lambda e: e.get("type") == "response.done"
                    and (e.get("response") or {}).get("id") == rs.id, timeout=10)
        await session.create_response()

    async def close_vad_turn(self) -> None:
        """The capture stopped in the middle of a VAD turn: give the VAD the silence that ends
        it (nothing when the VAD does not hear speech)."""
        await asyncio.sleep(0)
        if self.session.speaking:
            await self.session.append(Audio.silence(self.pad_ms()).to_pcm16())

    # ------------------------------------------------------------------ modes
    def mode_changed(self, mode: str) -> None:
        """The capture's mode became ``mode``: ``"push-to-talk"`` switches turn detection off
        (remembering the VAD it replaced); ``"hands-free"`` restores that VAD unless turn
        detection was turned on meanwhile."""
        td = self.turn_detection
        if mode == "push-to-talk":
            if td is not None:
                self.vad_before_ptt = dict(td)
                self._update({"audio": {"input": {"turn_detection": None}}},
                             "push-to-talk: turn detection off")
        elif self.vad_before_ptt is not None:
            restore, self.vad_before_ptt = self.vad_before_ptt, None
            if td is None:
                self._update({"audio": {"input": {"turn_detection": restore}}},
                             "hands-free: turn detection restored")

    def vad_chosen(self) -> None:
        """A VAD was chosen in the settings while in push-to-talk: hands-free has nothing to
        restore."""
        self.vad_before_ptt = None

    def _update(self, patch: dict[str, Any], label: str) -> None:
        async def run() -> None:
            await self.session.update(patch)

        self._run(label, run)
