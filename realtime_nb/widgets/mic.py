"""``MicWidget``: the browser's microphone, streamed to the kernel as PCM16 mono 24 kHz chunks.

The browser captures with ``getUserMedia``, converts to PCM16 little-endian mono at 24 kHz in an
AudioWorklet and sends one chunk every ``chunk_ms`` as a binary comm buffer. Each chunk arrives
in the kernel as a :class:`MicChunk` passed to the callbacks registered with
:meth:`MicWidget.on_audio`. Callbacks run on the kernel's main thread, and only while the kernel is
idle (a running cell holds them back): keep them short and never block waiting for audio.

Example::

    mic = MicWidget(mode="hands-free")
    mic.on_audio(lambda chunk: session_send(chunk.to_event()))
    mic            # display it; press Start, or set mic.recording = True
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anywidget
import traitlets as t

from realtime_nb.audio import PCM, Audio, AudioChunk, CapturedPCM16

from ._affinity import LoopAffinity

__all__ = ["MicChunk", "MicStats", "MicWidget"]

#: The rate of every chunk the widget delivers (the Realtime API's PCM16 rate).
SAMPLE_RATE = 24_000
#: ``level`` when nothing is measured (not recording), in dBFS.
LEVEL_FLOOR_DB = -100.0

_HERE = pathlib.Path(__file__).parent


@dataclass(frozen=True)
class MicChunk(AudioChunk):
    """One chunk of microphone audio as the browser sent it: an ``AudioChunk`` plus its origin.

    ``data`` holds PCM16 little-endian mono bytes (a
    :class:`~realtime_nb.audio.CapturedPCM16`, which ``Session.append`` need not check
    for float32), ``sample_rate`` is 24000, ``format`` is
    ``"audio/pcm"``, so ``chunk.to_event()`` is the ``input_audio_buffer.append`` event. ``take``
    numbers the recordings of this widget (1 for the first start, 2 after the next, ...); ``seq``
    counts the chunks of a take from 0 without gaps (a gap means a lost chunk); ``t_ms`` is the
    chunk's start within the take; ``final`` marks the shorter last chunk flushed at stop;
    ``muted`` says the browser sent silence because the ``muted`` trait was set; ``level_dbfs``
    is the RMS level measured before muting; ``received_at`` is the kernel's
    ``time.monotonic()`` on arrival.
    """

    take: int = 0
    seq: int = 0
    t_ms: float = 0.0
    final: bool = False
    muted: bool = False
    level_dbfs: float = LEVEL_FLOOR_DB
    received_at: float = 0.0

    @property
    def audio(self) -> Audio:
        """The chunk as an ``Audio`` (int16 samples with their rate)."""
        return Audio.from_pcm16(self.data, self.sample_rate)


@dataclass
class MicStats:
    """Counters of the current (or last) take, kept by the kernel to detect lost chunks.

    ``chunks_sent`` is the browser's own count, known once it reports the take stopped
    (``None`` before). ``lost`` counts the chunks not received: gaps in the sequence numbers,
    plus chunks the browser says it sent beyond the highest one received. It is computed, so a
    straggler that arrives after the stop report (messages can overtake each other on the way
    to the kernel) corrects it.
    """

    take: int = 0
    chunks: int = 0
    samples: int = 0
    next_seq: int = 0
    out_of_order: int = 0
    chunks_sent: int | None = None
    context_rate: int | None = None
    resampler: str | None = None
    startup_ms: float | None = None
    started_at: float | None = None
    first_chunk_at: float | None = None
    stopped_at: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Chunks of this take that the browser sent (or skipped) and the kernel never got."""
        return max(0, max(self.next_seq, self.chunks_sent or 0) - self.chunks)

    @property
    def duration_ms(self) -> float:
        """Milliseconds of audio received in this take."""
        return self.samples * 1000.0 / SAMPLE_RATE


AudioCallback = Callable[[MicChunk], Any]


class MicWidget(anywidget.AnyWidget):
    """A microphone button with a level meter, streaming PCM16 24 kHz chunks to the kernel.

    Traits (all synced with the browser):

    - ``recording``: set it to start or stop from Python; the buttons set it from the page.
    - ``mode``: ``"hands-free"`` (a Start/Stop toggle) or ``"push-to-talk"`` (hold the button,
      or hold the space bar while the widget has the focus). Each start opens the microphone
      anew, which takes about 0.1 s in Chromium: start talking just after pressing.
    - ``chunk_ms``: chunk length, 20..100 ms (default 100); takes effect at the next start.
    - ``echo_cancellation``, ``noise_suppression``, ``auto_gain_control``: the browser's audio
      processing, all on by default, which is what a user talking through speakers wants. Turn
      them off to get the source level unchanged (measurements, fake microphones: automatic gain
      control clips loud input). They take effect at the next start.
    - ``mute_while_playing``: the user's wish that the microphone sends silence while the
      assistant speaks; whoever plays the assistant (the Session) reads it and sets ``muted``.
    - ``muted``: while true, chunks keep flowing but carry silence (timing stays continuous).
    - ``level``: RMS level of the latest chunk in dBFS (-100 when idle), at most 10 updates/s.
    - ``status``: ``"idle"``, ``"starting"``, ``"recording"`` or ``"error"``.
    - ``error``: what went wrong and what to do (insecure page, permission refused, no device),
      ``""`` when all is well. It is shown in the widget too.
    """

    _esm = _HERE / "mic.js"
    _css = _HERE / "widgets.css"

    recording = t.Bool(False).tag(sync=True)
    mode = t.Enum(["hands-free", "push-to-talk"], default_value="hands-free").tag(sync=True)
    chunk_ms = t.Int(100).tag(sync=True)
    echo_cancellation = t.Bool(True).tag(sync=True)
    noise_suppression = t.Bool(True).tag(sync=True)
    auto_gain_control = t.Bool(True).tag(sync=True)
    mute_while_playing = t.Bool(False).tag(sync=True)
    muted = t.Bool(False).tag(sync=True)
    level = t.Float(LEVEL_FLOOR_DB).tag(sync=True)
    status = t.Unicode("idle").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    # Testing aid: resample in the worklet even when the browser could do it (the Firefox path).
    _worklet_resample = t.Bool(False).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._audio_callbacks: list[AudioCallback] = []
        self.stats = MicStats()
        # Browser messages may be delivered on a kernel subshell thread with its own loop:
        # handle them (and the user callbacks they trigger) on the loop that made the widget.
        self._affinity = LoopAffinity()
        self.on_msg(self._affinity.wrap(self._on_browser_msg))

    @t.validate("chunk_ms")
    def _check_chunk_ms(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 20 <= value <= 100:
            raise t.TraitError(f"chunk_ms must be within 20..100 ms, got {value}.")
        return value

    # ------------------------------------------------------------------ public API
    def on_audio(self, callback: AudioCallback, remove: bool = False) -> None:
        """Call ``callback(chunk: MicChunk)`` for every chunk that arrives (``remove=True`` undoes).

        Callbacks run in the order registered; an exception in one is printed and does not stop
        the others or the stream.
        """
        if remove:
            self._audio_callbacks.remove(callback)
        else:
            self._audio_callbacks.append(callback)

    def start(self) -> None:
        """Start recording (the same as ``recording = True``)."""
        self.recording = True

    def stop(self) -> None:
        """Stop recording; the browser flushes the partial last chunk first."""
        self.recording = False

    # ------------------------------------------------------------------ browser -> kernel
    def _handle_custom_msg(self, content: Any, buffers: Sequence[Any]) -> None:
        """ipywidgets' entry for the page's custom messages: audio chunks (ten a second) go
        straight to :meth:`_on_audio` on the owner loop, and reach the ``on_audio`` callbacks
        only; every other message also reaches the ``on_msg`` callbacks as usual."""
        if type(content) is dict and content.get("type") == "audio":
            self._affinity.call(self._on_audio, content, buffers)
        else:
            super()._handle_custom_msg(content, buffers)

    def _on_browser_msg(
        self, _widget: Any, content: dict[str, Any], buffers: Sequence[Any]
    ) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "audio":  # only when something else than the comm delivers it
            self._on_audio(content, buffers)
        elif kind == "started":
            self.stats = MicStats(
                take=int(content["take"]),
                context_rate=content.get("context_rate"),
                resampler=content.get("resampler"),
                startup_ms=content.get("startup_ms"),
                started_at=time.monotonic(),
                settings=dict(content.get("settings") or {}),
            )
        elif kind == "stopped" and int(content.get("take", -1)) == self.stats.take:
            self.stats.chunks_sent = int(content.get("chunks", 0))
            self.stats.stopped_at = time.monotonic()

    def _on_audio(self, content: dict[str, Any], buffers: Sequence[Any]) -> None:
        # Hot path: ten times a second for as long as the microphone records.
        if not buffers:
            return
        rate = int(content.get("sample_rate", SAMPLE_RATE))
        buf = buffers[0]
        if not isinstance(buf, bytes):
            buf = memoryview(buf)
        nbytes = len(buf) if isinstance(buf, bytes) else buf.nbytes
        if rate == SAMPLE_RATE and nbytes % 2 == 0:
            # What the browser always sends: one copy out of the comm's buffer, nothing else.
            data = CapturedPCM16(buf)
            nsamples = nbytes // 2
        else:  # another rate (or an odd length, refused here): through Audio, resampled
            audio = Audio.from_pcm16(buf, rate)
            if rate != SAMPLE_RATE:
                audio = audio.resample(SAMPLE_RATE)
            data = CapturedPCM16(audio.to_pcm16())
            nsamples = len(audio.samples)
        get = content.get
        take, seq = int(get("take", 0)), int(get("seq", 0))
        now = time.monotonic()
        stats = self.stats
        if take != stats.take:  # audio of a take whose "started" was not seen (page reloaded)
            self.stats = stats = MicStats(take=take, started_at=now)
        if seq < stats.next_seq:
            stats.out_of_order += 1
        else:
            stats.next_seq = seq + 1
        stats.chunks += 1
        stats.samples += nsamples
        if stats.first_chunk_at is None:
            stats.first_chunk_at = now
        chunk = MicChunk(
            data=data,
            sample_rate=SAMPLE_RATE,
            format=PCM,
            duration_ms=nsamples * 1000 / SAMPLE_RATE,
            take=take,
            seq=seq,
            t_ms=float(get("t_ms", 0.0)),
            final=bool(get("final", False)),
            muted=bool(get("muted", False)),
            level_dbfs=float(get("level", LEVEL_FLOOR_DB)),
            received_at=now,
        )
        for callback in self._audio_callbacks[:]:
            try:
                callback(chunk)
            except Exception:  # a user callback must not stop the stream
                import traceback

                traceback.print_exc()
