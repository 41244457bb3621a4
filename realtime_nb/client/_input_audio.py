"""The Session's input-audio room: ``append``, ``commit``, ``clear``, ``send_audio``.

* :meth:`_InputAudio.append` sends bytes as they are (refusing float32 bytes posing as PCM16);
  :meth:`_InputAudio.send_audio` takes anything :mod:`realtime_nb.audio` reads, converts it to
  the session's input format (:func:`_prepare_audio`, in a worker thread for long inputs),
  diagnoses it and appends it in chunks.
* :meth:`_InputAudio.commit` refuses locally, with the service's own message, what the service
  would refuse (less than ``COMMIT_MIN_MS`` in the buffer as the mirror counts it, plus queued
  appends), after letting the server's VAD settle; the hint names the cause.

What the caller must know: the local commit check trusts the mirror, so over WebRTC (audio on
the call's track) it is skipped and the server's answer is raised instead.

One room of :class:`~realtime_nb.client.session.Session` (a mixin; the state it uses is set by
``Session.__init__``); :func:`_prepare_audio` and :func:`_invalid_audio` are plain functions.
"""

from __future__ import annotations

import asyncio
import base64
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realtime_nb.audio import CapturedPCM16
from realtime_nb.protocol import COMMIT_MIN_MS, bytes_per_ms, commit_empty_message

from ._sending import _b64decode
from .errors import AudioWarning, RealtimeError
from .hints import explain_commit_empty, hint_for

if TYPE_CHECKING:
    from ._parts import SessionParts  # the Session's members this room uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin


def _prepare_audio(audio: Any, sample_rate: int | None, fmt: dict[str, Any], force: bool
                   ) -> tuple[bytes, list[Any], Any]:
    """Convert and diagnose for :meth:`Session.send_audio`: ``(wire bytes, findings, float32)``.

    Raw bytes without a container header are taken as PCM16 at ``sample_rate`` (default 24000);
    when they are really float32 the third value is that finding (refuse unless ``force``; with
    ``force`` they are sent untouched). Runs in a worker thread for long inputs.
    """
    from realtime_nb.audio import Audio, AudioError, convert, diagnose, sniff_container, to_pcm16

    is_pcm = fmt.get("type", "audio/pcm") == "audio/pcm"
    try:
        if isinstance(audio, bytes | bytearray | memoryview) and sniff_container(
                bytes(memoryview(audio)[:16])) is None:
            raw = bytes(audio)
            rate = 24000 if sample_rate is None else int(sample_rate)
            findings = diagnose(raw, rate)
            f32 = next((f for f in findings if f.code == "float32_as_pcm16"), None)
            if f32 is not None:
                if not force:
                    return b"", findings, f32
                return raw, [f for f in findings if f is not f32], None
            if len(raw) < 2:
                raise AudioError(f"No audio to send: {len(raw)} bytes is not one whole PCM16 "
                                 "sample.")
            if is_pcm and rate == 24000:
                return raw[: len(raw) // 2 * 2], findings, None
            whole = Audio.from_pcm16(raw[: len(raw) // 2 * 2], rate)
            return convert(whole, None, fmt), findings, None
        data = convert(audio, sample_rate, fmt)
        pcm = data if is_pcm else to_pcm16(audio, sample_rate)
        return data, diagnose(pcm, 24000), None
    except AudioError as exc:
        raise _invalid_audio(exc) from exc


def _invalid_audio(exc: Exception) -> RealtimeError:
    """The Session's error for audio :mod:`realtime_nb.audio` refused (``invalid_audio``)."""
    return RealtimeError("invalid_audio", str(exc), source="client", fatal=False,
                         hint="realtime_nb.audio reads files, container bytes, numpy arrays "
                         "(with sample_rate) and Audio objects; empty or unreadable input is "
                         "refused rather than sent as noise.")


@dataclass
class AudioSent:
    """What :meth:`Session.send_audio` sent: duration, bytes, chunks, format and diagnosis."""

    duration_ms: float
    nbytes: int
    chunks: int
    format: dict[str, Any]
    findings: list[Any] = field(default_factory=list)


class _InputAudio(SessionParts):
    """Appending, committing and clearing the server's input audio buffer."""

    async def append(self, data: bytes | bytearray | memoryview | str, *, force: bool = False
                     ) -> dict[str, Any]:
        """Append audio to the input buffer (``input_audio_buffer.append``).

        ``data`` is raw bytes in the session's input format (PCM16 LE mono 24 kHz by default) or
        the base64 text of them. Bytes that are really float32 samples are refused
        (``float32_audio``) unless ``force``; use :meth:`send_audio` for anything that needs
        converting. Returns the event as sent (audio elided). Chunks from realtime_nb's own
        microphone capture (:class:`~realtime_nb.audio.CapturedPCM16`) are PCM16 by
        construction and are not checked again.
        """
        if isinstance(data, CapturedPCM16):
            raw: bytes = data
            force = True
        else:
            raw = _b64decode(data) if isinstance(data, str) else bytes(data)
        eid = self._next_id()
        if not force:
            self._check_append({"type": "input_audio_buffer.append", "event_id": eid,
                                "audio": raw}, raw)
        return await self._append_raw(raw, eid)

    def _check_append(self, ev: dict[str, Any], raw: bytes) -> None:
        fmt = self.mirror.input_format
        if fmt.get("type", "audio/pcm") != "audio/pcm":
            return
        from realtime_nb.audio import diagnose, looks_like_float32

        if not looks_like_float32(raw):
            return
        finding = next((f for f in diagnose(raw, 24000) if f.code == "float32_as_pcm16"), None)
        message = finding.message if finding is not None else (
            "These bytes are float32 samples, not PCM16.")
        err = RealtimeError("float32_audio", message, param="audio", source="client",
                            fatal=False, hint=hint_for("float32_audio"),
                            event_id=ev.get("event_id"))
        view = {"type": "input_audio_buffer.append", "event_id": ev.get("event_id"),
                "audio": base64.b64encode(raw).decode("ascii")}
        self._refuse(view, err)

    async def commit(
        self,
        *,
        force: bool = False,
        wait: bool = False,
        timeout: float | None = 15.0,
        settle: float | None = None,
    ) -> dict[str, Any]:
        """Commit the input buffer as a user item (``input_audio_buffer.commit``).

        Refused locally with ``input_audio_buffer_commit_empty`` (the service's message) when the
        mirror shows less than 100 ms in the buffer (not over WebRTC, where the audio goes on the
        call's track and only the server knows the buffer: its answer is raised); the ``hint``
        names the cause — typically that server VAD already committed the audio (naming the
        item and when), that nothing or too little was appended, or that the buffer was
        cleared. With turn detection on, the
        mirror first waits until the server has been quiet for ``settle`` seconds (default
        ``settle_s``; at most a few seconds) so that VAD events for audio just sent are in.
        ``force=True`` sends it anyway, to see the server's own answer. With ``wait=True``
        returns the ``input_audio_buffer.committed`` event once its item is in
        :attr:`items`.
        """
        ev: dict[str, Any] = {"type": "input_audio_buffer.commit", "event_id": self._next_id()}
        if not force:
            await self._check_commit(ev, settle)
        done = await self._send_event(ev, wait, timeout)
        item_id = done.get("item_id") if done.get("type") == "input_audio_buffer.committed" \
            else None
        if isinstance(item_id, str) and item_id not in self.mirror.items:
            # The server adds the item right after ``committed``: with wait=True the caller
            # may index session.items[item_id] as soon as this returns.
            await self.wait_for(lambda e: e.get("type") == "conversation.item.added"
                                and (e.get("item") or {}).get("id") == item_id, timeout)
        return done

    async def _check_commit(self, ev: dict[str, Any], settle: float | None) -> None:
        if self._transport == "webrtc":
            return  # the audio went on the call's track: only the server knows the buffer
        mirror = self.mirror
        if mirror.buffer.vad and self._state == "connected":
            await self._settle(self.settle_s if settle is None else settle)
        # Appends still waiting in the send queue (not connected yet, after a drop, or while
        # the queue drains) will reach the buffer before this commit: count them. While the
        # socket is down the mirror's buffer belongs to a server session that is gone.
        held = mirror.input_buffer_ms if self._state == "connected" else 0.0
        ms = held + self._queued_input_ms()
        if ms >= COMMIT_MIN_MS:
            return
        err = RealtimeError(
            "input_audio_buffer_commit_empty", commit_empty_message(ms), source="client",
            fatal=False, event_id=ev.get("event_id"), hint=self._commit_hint(),
        )
        self._refuse(ev, err)

    def _commit_hint(self) -> str:
        m = self.mirror
        return explain_commit_empty(
            m.input_buffer_ms, turn_detection=m.buffer.vad, appended_ms=m.appended_since_ms,
            last_commit=m.last_commit, cleared=m.last_buffer_op == "clear",
        )

    async def _settle(self, quiet: float, limit: float = 3.0) -> None:
        """Wait until the server has been quiet ``quiet`` s after our last append (≤ ``limit``)."""
        now = time.monotonic()
        if quiet <= 0 or now - self._last_append_t > limit:
            return
        deadline = now + limit
        while True:
            now = time.monotonic()
            last = max(self._last_server_t, self._last_append_t)
            if now - last >= quiet or now >= deadline:
                return
            await asyncio.sleep(min(quiet - (now - last), deadline - now) + 0.005)

    async def clear(self, *, wait: bool = False, timeout: float | None = 15.0) -> dict[str, Any]:
        """Discard the input buffer (``input_audio_buffer.clear``)."""
        return await self._send_event({"type": "input_audio_buffer.clear"}, wait, timeout)

    def _input_format(self) -> dict[str, Any]:
        if self.mirror.config is not None:
            return self.mirror.input_format
        fmt = ((self._user_patch.get("audio") or {}).get("input") or {}).get("format")
        return fmt if isinstance(fmt, dict) else {"type": "audio/pcm", "rate": 24000}

    def _convert_audio(self, audio: Any, sample_rate: int | None) -> bytes:
        from realtime_nb.audio import AudioError, convert

        try:
            return convert(audio, sample_rate, self._input_format())
        except AudioError as exc:
            err = _invalid_audio(exc)
            self._record_error(err, dispatch=True)
            raise err from exc

    async def send_audio(
        self,
        audio: Any,
        sample_rate: int | None = None,
        *,
        chunk_ms: float = 100,
        realtime: bool = False,
        force: bool = False,
    ) -> AudioSent:
        """Send any audio: converted to the session's input format, checked, chunked, appended.

        ``audio`` is anything :mod:`realtime_nb.audio` reads — a file path, WAV/Ogg/WebM/... bytes,
        a numpy array (give ``sample_rate``), an :class:`~realtime_nb.audio.Audio` — or raw PCM16
        bytes (at ``sample_rate``, default 24000). Findings of
        :func:`realtime_nb.audio.diagnose` (silence, clipping, too short) are warned about
        (:class:`AudioWarning`) and kept in ``session.warnings``; raw bytes that are really
        float32 are refused (``float32_audio``) unless ``force``. ``realtime=True`` paces the
        chunks at real time (like a microphone). Cancel-safe: chunks already sent stay sent.
        """
        from realtime_nb.audio import chunks

        fmt = self._input_format()
        big = not isinstance(audio, bytes | bytearray | memoryview) or len(audio) > 96_000
        try:
            if big:  # decoding/resampling a long recording must not hold the event loop
                data, findings, f32 = await asyncio.to_thread(
                    _prepare_audio, audio, sample_rate, fmt, force)
            else:
                data, findings, f32 = _prepare_audio(audio, sample_rate, fmt, force)
        except RealtimeError as err:  # invalid_audio: reported like every other refusal
            self._record_error(err, dispatch=True)
            raise
        if f32 is not None:
            ev = {"type": "input_audio_buffer.append", "event_id": self._next_id(),
                  "audio": base64.b64encode(bytes(memoryview(audio)[:48000])).decode("ascii")}
            self._refuse(ev, RealtimeError(
                "float32_audio", f32.message, param="audio", source="client", fatal=False,
                hint=hint_for("float32_audio"), event_id=ev["event_id"]))
        for f in findings:
            self.warnings.append(f)
            warnings.warn(f"{f.code}: {f.message}", AudioWarning, stacklevel=2)
        n = 0
        t0 = time.monotonic()
        sent_ms = 0.0
        for chunk in chunks(data, fmt, chunk_ms, check=False):
            if realtime:
                delay = t0 + sent_ms / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self._append_raw(chunk.data)
            sent_ms += chunk.duration_ms
            n += 1
        return AudioSent(len(data) / bytes_per_ms(fmt), len(data), n, dict(fmt), list(findings))
