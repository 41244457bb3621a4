"""The input side of :class:`~realtime_nb.protocol.state.SessionCore`: audio in, turns out.

:class:`InputTurns` holds the input audio buffer's rules as the service applies them: appends
(through the noise filter, if any), the VAD driving (speech probabilities, batched or not),
semantic_vad's end-of-turn questions, early transcription of a pause (speculation), manual
commits and clears, VAD commits at speech end (and the response they create), and the
transcription jobs and results of committed user audio.

It is one part of SessionCore (a mixin: it uses the core's ``config``, ``buffer``, ``emit``,
``jobs`` and the conversation and response methods of the other parts) and is not used alone.
The byte/time accounting itself is :class:`realtime_nb.protocol.buffer.InputBuffer`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from realtime_nb.audio import bytes_per_sample, format_rate
from realtime_nb.vad.settings import ServerVadSettings

from ._ids import new_id
from .buffer import COMMIT_MIN_MS, bytes_per_ms, commit_empty_message
from .jobs import SpeculateJob, TranscribeJob, TurnCheckJob
from .schema import ProtocolError

__all__ = ["LOGPROBS_INCLUDE", "InputTurns"]

if TYPE_CHECKING:
    from ._parts import SessionParts  # the core's members this part uses (see ._parts)
    from .jobs import TranscribePayload
else:
    SessionParts = object  # at run time a plain mixin

_SERVER_VAD = ServerVadSettings()  # the service's server_vad defaults

#: The ``include`` entry that asks for the transcription's token log-probabilities.
LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"

_OMIT: Any = object()  # "leave the field out" (as opposed to sending null)



class InputTurns(SessionParts):
    """Input buffer, VAD and turns of a SessionCore (see the module docstring).

    Owns ``_turn_audio`` / ``_turn_start_bytes`` (the audio behind the buffer), the VAD stream
    and segmenter, the held probabilities and ring of semantic_vad, the speculation state and
    the pending VAD item id; the core's ``__init__`` creates them and calls
    :meth:`_reset_vad`.
    """

    # ------------------------------------------------------------------ appended audio and VAD
    def _on_input_audio_buffer_append(self, ev: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(ev["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(
                "invalid_value", "Invalid 'audio': expected base64-encoded audio bytes.", "audio"
            ) from None
        if len(data) > 15 * 1024 * 1024:
            raise ProtocolError(
                "audio_too_large", "Audio chunk exceeds the 15 MiB limit for one append.", "audio"
            )
        self.append_audio(data)

    def append_audio(self, data: bytes) -> None:
        """Append raw input-format bytes (what ``input_audio_buffer.append`` carries).

        With :attr:`defer_vad` set, the speech model is not run here: the samples wait in
        :meth:`take_vad_input` for the owner to run many sessions' VAD in one batch and hand the
        probabilities back with :meth:`feed_probabilities`. Any other client event or a tick runs
        the waiting audio through the model first, so event order is never changed.

        With a :attr:`noise_filter`, ``data`` is filtered first (same length; see the class
        docstring): VAD, commits and retrieved items all see the filtered audio.
        """
        if self.noise_filter is not None:
            data = self.noise_filter.process(data)
        self.buffer.append(len(data))
        self._turn_audio += data
        if self._segmenter is not None:
            samples = self._decode_input(data)
            if self._asks_turn_model():
                self._ring.append(samples)
            if self.defer_vad:
                self._vad_pending.append(samples)
            else:
                self.feed_probabilities(self._vad_stream.process(samples))
        elif self.buffer.vad:
            self._trim_idle()

    #: When True, VAD input is queued for batched inference (see :meth:`append_audio`).
    defer_vad: bool = False
    #: When True, end-of-turn questions become ``"turn_check"`` jobs instead of running at once.
    defer_turn: bool = False

    def _asks_turn_model(self) -> bool:
        return (self._turn_model is not None
                and getattr(self._segmenter, "semantic_rule", None) == "model")

    @property
    def semantic_rule(self) -> str | None:
        """How this session's semantic_vad decides: ``"model"`` (the end-of-turn model),
        ``"length-fallback"`` (no model: the utterance-length rule) or ``None`` (not
        semantic_vad)."""
        return getattr(self._segmenter, "semantic_rule", None)

    @property
    def vad_stream(self) -> Any:
        """The speech-probability stream of the current turn-detection settings (or None)."""
        return self._vad_stream

    def take_vad_input(self) -> np.ndarray | None:
        """Samples (int16, 24 kHz) appended since the last call and not yet run through VAD."""
        if not self._vad_pending:
            return None
        pending, self._vad_pending = self._vad_pending, []
        return pending[0] if len(pending) == 1 else np.concatenate(pending)

    def run_pending_vad(self) -> None:
        """Run queued VAD input through this session's own stream (unbatched), answering any
        end-of-turn question it waits on right here, so that everything appended so far has
        been decided."""
        samples = self.take_vad_input()
        if samples is not None and self._vad_stream is not None:
            self.feed_probabilities(self._vad_stream.process(samples))
        while self._held and self._segmenter is not None:
            check = self._segmenter.pending_check
            if check is None:  # pragma: no cover - held frames always wait on a check
                break
            self.turn_decision(check, self._turn_model.predict(self._check_audio(check)))

    def feed_probabilities(self, probs: Any) -> None:
        """Apply speech probabilities for the next frames (from this session's VAD stream).

        Frames that must wait for an end-of-turn answer are held and applied by
        :meth:`turn_decision`."""
        if self._segmenter is None:
            return
        seg = self._segmenter
        if self._held:
            self._held.extend(float(p) for p in probs)
            return
        values = [float(p) for p in probs]
        for k, p in enumerate(values):
            if getattr(seg, "blocked", False):
                self._held = values[k:]
                break
            for event in seg.push(p):
                name = type(event).__name__
                if name == "SpeechStarted":
                    self._speech_started(self._vad_origin_ms + event.audio_start_ms)
                elif name == "SpeechStopped":
                    spec = self._spec_open if event.offset_ms == self._spec_silence else None
                    self._speech_stopped(self._vad_origin_ms + event.audio_end_ms, spec)
                elif name == "TurnCheck":
                    self._turn_check(event)
            if seg.in_speech:
                silence = getattr(seg, "silence_started_ms", None)
                if silence is not None and silence != self._spec_silence:
                    self._speculate(silence)
        self._trim_ring()
        if not self.buffer.speaking:
            self._trim_idle()


    # ------------------------------------------------------------------ end of turn (semantic)
    def _check_audio(self, check: Any) -> np.ndarray:
        """The VAD input samples (int16 24 kHz) a TurnCheck judges."""
        lo = check.audio_start_ms * 24 - self._ring_start
        hi = check.audio_end_ms * 24 - self._ring_start
        if lo < 0:  # pragma: no cover - the ring always keeps TURN_AUDIO_MS before the pause
            raise RuntimeError("end-of-turn audio no longer held")
        ring = np.concatenate(self._ring) if len(self._ring) != 1 else self._ring[0]
        self._ring = [ring]
        return ring[lo:hi].copy()

    def _turn_check(self, check: Any) -> None:
        if self._turn_model is None:  # pragma: no cover - decisions=True needs a model
            raise RuntimeError("the segmenter asks an end-of-turn question but no turn_model")
        audio = self._check_audio(check)
        if self.defer_turn:
            self.jobs.append(TurnCheckJob({"check": check, "audio": audio}))
        else:
            self._segmenter.decide(check, self._turn_model.predict(audio))

    def turn_check_open(self, check: Any) -> bool:
        """Whether ``check`` still waits for its answer (else the work may be dropped)."""
        seg = self._segmenter
        return seg is not None and getattr(seg, "pending_check", None) is check

    def turn_decision(self, check: Any, p_complete: float) -> None:
        """The end-of-turn model's answer to a ``"turn_check"`` job: apply it and the frames
        that waited for it. A stale answer (speech resumed, VAD reset, answered already) is
        ignored."""
        seg = self._segmenter
        if seg is None or not seg.decide(check, p_complete):
            return
        held, self._held = self._held, []
        if held:
            self.feed_probabilities(held)

    def _trim_ring(self) -> None:
        """Keep only the VAD input an end-of-turn question may still need."""
        if not self._ring or self._segmenter is None:
            return
        from realtime_nb.vad.segmenter import TURN_AUDIO_MS

        keep_from = (self._segmenter.now_ms - TURN_AUDIO_MS - 200) * 24
        ring = self._ring
        dropped = 0
        while dropped + 1 < len(ring) and self._ring_start + len(ring[dropped]) <= keep_from:
            self._ring_start += len(ring[dropped])
            dropped += 1
        if dropped:
            del ring[:dropped]

    def _speculate(self, silence_ms: float) -> None:
        """The speaker paused: ask for a transcription of the turn so far, ahead of time.

        If the turn ends with this pause, its transcription job names this speculation and the
        owner may reuse the result (the rest of the turn is silence); if speech resumes, the
        result is simply not used. Only done when a transcript will be wanted.
        """
        self._spec_silence = silence_ms
        self._spec_open = None
        td = self._turn_detection or {}
        wanted = self.config["audio"]["input"].get("transcription") is not None or (
            self.kind == "realtime" and td.get("create_response", True))
        if not wanted:
            return
        self._spec_id += 1
        self._spec_open = self._spec_id
        bpm = self.buffer.bytes_per_ms
        lo = max(0, self.buffer.start_bytes - self._turn_start_bytes)
        # the turn up to the pause (plus one frame), not audio that may already follow it
        hi = round((self._vad_origin_ms + silence_ms + 32.0) * bpm) - self._turn_start_bytes
        audio = bytes(self._turn_audio[lo:max(lo, hi)])
        audio = audio[: len(audio) - len(audio) % bytes_per_sample(self._in_format)]
        tr = self.config["audio"]["input"].get("transcription")
        self.jobs.append(SpeculateJob({"speculation": self._spec_id, "audio": audio,
                                           "format": dict(self._in_format),
                                           "config": copy.deepcopy(tr),
                                           "logprobs": self.wants_logprobs and tr is not None}))

    @property
    def open_speculation(self) -> int | None:
        """The id of the latest ``"speculate"`` job while the pause it was made at still goes on
        (the turn may yet end there, and its transcription job would then name it); ``None``
        once speech resumed, the turn ended or the VAD was reset. The owner may abandon the work
        of every other speculation not named by a transcription job."""
        seg = self._segmenter
        if seg is None or self._spec_open is None or not seg.in_speech:
            return None
        silence = getattr(seg, "silence_started_ms", None)
        return self._spec_open if silence is not None and silence == self._spec_silence else None

    # ------------------------------------------------------------------ manual commit and clear
    def _on_input_audio_buffer_commit(self, ev: dict[str, Any]) -> None:
        ms = self.buffer.buffered_ms
        if ms < COMMIT_MIN_MS:
            raise ProtocolError("input_audio_buffer_commit_empty", commit_empty_message(ms), None)
        self._commit(None)

    def _on_input_audio_buffer_clear(self, ev: dict[str, Any]) -> None:
        self.buffer.cleared()
        self._turn_audio.clear()
        self._turn_start_bytes = self.buffer.timeline_bytes
        self._pending_item_id = None
        self._reset_vad(keep_timeline=True)
        self.emit("input_audio_buffer.cleared")


    # ------------------------------------------------------------------ input buffer and VAD
    def _reset_vad(self, keep_timeline: bool = False) -> None:
        self._vad_pending = []
        self._held = []
        self._ring, self._ring_start = [], 0
        self._spec_silence = self._spec_open = None  # a new segmenter: no pause speculated on
        td = self._turn_detection
        self._pending_item_id = None
        if td is None or self._vad_model is None or self._make_segmenter is None:
            self._segmenter = None
            self._vad_stream = None
            return
        self._vad_stream = self._vad_model.new_stream()
        self._segmenter = self._make_segmenter(td, self._vad_stream.frame_ms)
        self._vad_origin_ms = self.buffer.timeline_ms
        rate = format_rate(self._in_format)
        self._vad_to_24k = None
        if rate != 24000:
            from realtime_nb.audio import StreamResampler

            self._vad_to_24k = StreamResampler(rate, 24000)

    def _decode_input(self, data: bytes) -> np.ndarray:
        fmt = self._in_format.get("type")
        if fmt == "audio/pcm":
            return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
        from realtime_nb.audio import decode_format

        audio = decode_format(data, self._in_format)
        x = self._vad_to_24k.process(audio.samples)
        return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)

    def _trim_idle(self) -> None:
        """Outside speech keep only the prefix-padding window of audio (not counted as buffered)."""
        td = self._turn_detection or {}
        keep_ms = float(td.get("prefix_padding_ms", _SERVER_VAD.prefix_padding_ms)) + 100.0
        bpm = self.buffer.bytes_per_ms
        keep = int(keep_ms * bpm)
        excess = len(self._turn_audio) - keep
        if excess > 0:
            del self._turn_audio[:excess]
            self._turn_start_bytes += excess
        self.buffer.drop_idle()

    def _speech_started(self, audio_start_ms: float) -> None:
        self._idle_deadline = None
        start = max(audio_start_ms, self._turn_start_bytes / self.buffer.bytes_per_ms)
        self.buffer.speech_started(start, self._turn_start_bytes)
        self._speech_start_ms = start
        self._pending_item_id = new_id("item")
        self.emit("input_audio_buffer.speech_started", audio_start_ms=round(audio_start_ms),
                  item_id=self._pending_item_id)
        td = self._turn_detection or {}
        if td.get("interrupt_response", True):
            if self.active_response:
                self.cancel_response(self.active_response, "turn_detected")
            if self._audible:  # the reply still being heard is cut (WebRTC: the server plays it)
                self._clear_playout()

    def _speech_stopped(self, audio_end_ms: float, speculation: int | None = None) -> None:
        item_id = self._pending_item_id or new_id("item")
        self.emit("input_audio_buffer.speech_stopped", audio_end_ms=round(audio_end_ms),
                  item_id=item_id)
        self._commit(audio_end_ms, item_id=item_id, has_speech=True, speculation=speculation)
        td = self._turn_detection or {}
        if self.kind == "realtime" and td.get("create_response", True):
            if self.active_response is None:
                self.create_response({})
            else:
                self.error(ProtocolError(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: "
                    f"{self.active_response}. Wait until the response is finished before "
                    "creating a new one.", None))

    def _commit(self, end_ms: float | None, item_id: str | None = None,
                has_speech: bool | None = None, speculation: int | None = None) -> None:
        bpm = self.buffer.bytes_per_ms
        start_b = self.buffer.start_bytes
        end_b = self.buffer.timeline_bytes if end_ms is None else min(
            self.buffer.timeline_bytes, round(end_ms * bpm))
        lo = max(0, start_b - self._turn_start_bytes)
        hi = max(lo, end_b - self._turn_start_bytes)
        hi -= (hi - lo) % bytes_per_sample(self._in_format)
        audio = bytes(self._turn_audio[lo:hi])
        del self._turn_audio[:hi]
        self._turn_start_bytes += hi
        self.buffer.committed(end_ms)
        self.buffer.start_bytes = self._turn_start_bytes
        item_id = item_id or self._pending_item_id or new_id("item")
        self._pending_item_id = None
        if self._segmenter is not None and hasattr(self._segmenter, "reset_floor"):
            self._segmenter.reset_floor(self._turn_start_bytes / bpm - self._vad_origin_ms)
        prev = self.items[-1]["id"] if self.items else None
        self.emit("input_audio_buffer.committed", previous_item_id=prev, item_id=item_id)
        item = {"id": item_id, "object": "realtime.item", "type": "message",
                "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}
        self.item_audio[item_id] = audio
        if self.kind == "realtime":
            self._insert(item, None)
            self._item_added_done(item)
        else:
            self._index[item_id] = item  # no conversation: only looked up by id
            self._item_added_done(item, prev, ordered=False)
        payload = self._transcribe_payload(item_id, audio, has_speech)
        payload["speculation"] = speculation
        self.jobs.append(TranscribeJob(payload))

    @property
    def wants_logprobs(self) -> bool:
        """Whether the session's ``include`` asks for transcription log-probabilities (jobs ask
        the engine for them only when transcription events will carry them, i.e. when
        ``audio.input.transcription`` is on)."""
        return LOGPROBS_INCLUDE in (self.config.get("include") or [])

    def _transcribe_payload(self, item_id: str, audio: bytes,
                            has_speech: bool | None = None) -> TranscribePayload:
        tr = self.config["audio"]["input"].get("transcription")
        return {"item_id": item_id, "audio": audio, "format": dict(self._in_format),
                "config": copy.deepcopy(tr), "emit": tr is not None, "has_speech": has_speech,
                "logprobs": self.wants_logprobs and tr is not None}

    # ------------------------------------------------------------------ transcription results
    def transcription_delta(self, item_id: str, delta: str, *, logprobs: Any = _OMIT) -> None:
        """Announce one piece of an item's transcript. ``logprobs`` (a list of
        ``{token, logprob, bytes}``, or ``None`` when the engine has none) is sent only when
        given: pass it when the job's payload asked for log-probabilities."""
        extra = {} if logprobs is _OMIT else {"logprobs": logprobs}
        self.emit("conversation.item.input_audio_transcription.delta", item_id=item_id,
                  content_index=0, delta=delta, **extra)

    def transcription_done(self, item_id: str, transcript: str, *, emit: bool = True,
                           logprobs: Any = _OMIT) -> None:
        """Record the transcript of a user audio item (and announce it when ``emit``, with
        ``logprobs`` as in :meth:`transcription_delta`)."""
        item = self._index.get(item_id)
        if item is not None:
            for part in item.get("content", []):
                if part.get("type") == "input_audio":
                    part["transcript"] = transcript
        if emit:
            secs = len(self.item_audio.get(item_id, b"")) / bytes_per_ms(self._in_format) / 1000
            extra = {} if logprobs is _OMIT else {"logprobs": logprobs}
            self.emit("conversation.item.input_audio_transcription.completed", item_id=item_id,
                      content_index=0, transcript=transcript,
                      usage={"type": "duration", "seconds": float(math.ceil(secs))}, **extra)

    def transcription_failed(self, item_id: str, message: str,
                             code: str = "audio_unintelligible") -> None:
        """Announce that an item's transcription failed (``code``: the service's
        ``audio_unintelligible``, or the local server's own ``unsupported_language``)."""
        self.emit("conversation.item.input_audio_transcription.failed", item_id=item_id,
                  content_index=0, error={"type": "transcription_error",
                                          "code": code, "message": message,
                                          "param": None})

