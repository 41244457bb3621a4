"""WebRTC calls on the local server: ``POST /v1/realtime/calls`` and ``?call_id=`` sidebands.

A browser (or any WebRTC client) posts its SDP offer with a client secret or key; the server
answers with aiortc, and the call is one Realtime session (one
:class:`~realtime_nb.protocol.SessionCore` with ``transport="webrtc"``) whose

* **input audio** is the caller's audio track (Opus, decoded by aiortc): it is resampled once
  (:class:`realtime_nb.audio.StreamResampler`) to the session's input format and appended to the
  input buffer, so server VAD, commits and transcription are the WebSocket path's;
* **output audio** is an outgoing track fed by the responses' speech (no
  ``response.output_audio.delta`` events); the server emits ``output_audio_buffer.started`` /
  ``stopped`` / ``cleared`` as it plays, and ``output_audio_buffer.clear`` (or a barge-in) cuts
  it;
* **events** travel as JSON text on the data channel the caller opened, named ``oai-events``;
* **sidebands**: a WebSocket to ``/v1/realtime?call_id=<id>`` attaches to the live call. It gets
  a ``session.created`` with the call's current session, then every server event of the call,
  and may send any client event (``session.update``, tool outputs, ``response.create``...).

``POST /v1/realtime/calls/<id>/hangup`` ends the call (and closes its sidebands). aiortc is an
optional dependency (``pip install realtime_nb[webrtc]``); without it the endpoint answers 501.

aiortc gathers host candidates on the machine's non-loopback interfaces (it never offers
127.0.0.1), so a call needs one such interface; its UDP sockets answer only ICE checks signed
with the call's credentials, which travel in the SDP over the loopback HTTP exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import fractions
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from realtime_nb.audio._webrtc import FRAME, RATE, FramePacer, frame_of, mono_float, opus_encoder
from realtime_nb.protocol.state import new_id

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

__all__ = ["Call", "answer", "parse_call_request", "speech_track", "webrtc_available"]

logger = logging.getLogger(__name__)


def webrtc_available() -> bool:
    """Whether aiortc (the ``webrtc`` extra) is installed."""
    try:
        import aiortc  # noqa: F401
    except ImportError:
        return False
    return True


def parse_call_request(content_type: str, body: bytes) -> tuple[str, Any]:
    """The SDP offer and the optional session config of a ``POST /v1/realtime/calls`` body.

    Two shapes, as the service takes them: ``application/sdp`` (the offer alone; the session is
    the one bound to the client secret) and ``multipart/form-data`` with an ``sdp`` field and an
    optional ``session`` field of JSON (what the official SDKs send). Raises ``ValueError`` with
    the reason when neither fits.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/sdp":
        return body.decode("utf-8", "replace"), None
    if ctype != "multipart/form-data":
        raise ValueError(f"Unsupported content type {ctype or '(none)'!r}: send the offer as "
                         "application/sdp or multipart/form-data with an 'sdp' field.")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("The multipart body could not be parsed (check its boundary).")
    sdp: str | None = None
    session: Any = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        # decode=True gives a parsed part's payload as bytes (None for a multipart part);
        # typeshed's return type adds Message, which a parsed non-multipart part never holds
        payload = cast("bytes", part.get_payload(decode=True) or b"")
        if name == "sdp":
            sdp = payload.decode("utf-8", "replace")
        elif name == "session":
            session = json.loads(payload.decode("utf-8") or "null")
    if sdp is None:
        raise ValueError("The multipart body has no 'sdp' field.")
    return sdp, session


def speech_track(on_idle: Callable[[str], None]) -> Any:
    """The call's outgoing audio track (an aiortc ``MediaStreamTrack``): queued response speech
    at real-time pace in 20 ms frames of 48 kHz, silence between. ``on_idle(rid)`` is called (on
    the event loop) when every queued sample of response ``rid`` has been sent."""
    return _track_class()(on_idle)


_TRACK_CLASS: Any = None


def _track_class() -> Any:
    global _TRACK_CLASS
    if _TRACK_CLASS is not None:
        return _TRACK_CLASS
    from aiortc.mediastreams import MediaStreamTrack
    from av import Packet

    class _SpeechTrack(MediaStreamTrack):
        """Yields Opus packets it encodes itself (aiortc then only packs them): speech and
        ``HANGOVER`` frames of silence after it go through a libopus encoder; the long quiet
        between replies is one cached silence packet, repeated — no encoding, no audio-level
        loop, no codec thread hand-off for most of a call."""

        kind = "audio"
        HANGOVER = 10  # silent frames still encoded after speech, so the encoder settles

        def __init__(self, on_idle: Callable[[str], None]) -> None:
            super().__init__()
            self._on_idle = on_idle
            self._queue: deque[tuple[str, np.ndarray]] = deque()
            self._clock = FramePacer()
            self._silence = np.zeros(FRAME, dtype=np.int16)
            self._encoder = opus_encoder()
            self._quiet_for = self.HANGOVER
            silent = opus_encoder()
            packets: list[Any] = []
            for i in range(3):
                packets += silent.encode(frame_of(self._silence, i * FRAME))
            self._silent_packet = bytes(packets[-1])
            #: Response id -> monotonic time its first sample left (for latency figures).
            self.first_sent: dict[str, float] = {}

        def queue(self, response_id: str, samples_48k: np.ndarray) -> None:
            if len(samples_48k):
                self._queue.append((response_id, samples_48k))

        def clear(self) -> None:
            self._queue.clear()

        def queued(self, response_id: str) -> bool:
            return any(rid == response_id for rid, _ in self._queue)

        async def recv(self) -> Any:
            if self.readyState != "live":
                from aiortc.mediastreams import MediaStreamError

                raise MediaStreamError
            pts = await self._clock.next_pts()
            speaking = bool(self._queue)
            frame = self._next_samples()
            self._quiet_for = 0 if speaking else self._quiet_for + 1
            data = None
            if self._quiet_for <= self.HANGOVER:
                encoded = self._encoder.encode(frame_of(frame, pts))
                data = bytes(encoded[0]) if encoded else None
            packet = Packet(data if data is not None else self._silent_packet)
            packet.pts = pts
            packet.time_base = fractions.Fraction(1, RATE)
            return packet

        def _next_samples(self) -> np.ndarray:
            if not self._queue:
                return self._silence
            parts: list[np.ndarray] = []
            need = FRAME
            finished: list[str] = []
            while need and self._queue:
                rid, samples = self._queue[0]
                self.first_sent.setdefault(rid, time.monotonic())
                take = samples[:need]
                parts.append(take)
                need -= len(take)
                if len(take) == len(samples):
                    self._queue.popleft()
                    if not self.queued(rid):
                        finished.append(rid)
                else:
                    self._queue[0] = (rid, samples[len(take):])
            if need:
                parts.append(np.zeros(need, dtype=np.int16))
            loop = asyncio.get_running_loop()
            for rid in finished:
                loop.call_soon(self._on_idle, rid)
            return np.concatenate(parts)

    _TRACK_CLASS = _SpeechTrack
    return _TRACK_CLASS


class Call:
    """One WebRTC call: the peer connection, its ``oai-events`` channel and its sidebands.

    It is the peer of the session driver (``connection.Connection``): client events from the
    data channel and from every sideband arrive through :meth:`__aiter__`; :meth:`send` gives a
    server event to the data channel and to every sideband; :meth:`play` feeds the outgoing
    track. The call ends at hang-up, when the peer connection fails or closes, or when the
    session closes.
    """

    def __init__(self, pc: Any, track: Any) -> None:
        self.id = new_id("rtc")
        self.pc = pc
        self.track = track
        self.channel: Any = None
        self.created_at = time.monotonic()
        self.ended = asyncio.Event()
        self._inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._unsent: list[str] = []  # events before the data channel opened
        self._sidebands: dict[Any, asyncio.Queue[str | None]] = {}
        self.conn: Any = None  # the session runner, set by the server
        self._in_rs: Any = None
        self._in_rate = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)

    # -------------------------------------------------------------- peer interface
    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while True:
            message = await self._inbox.get()
            if message is None:
                return
            yield message

    async def send(self, text: str) -> None:
        """Give one server event to the data channel (queued until it opens) and sidebands."""
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)
        elif not self.ended.is_set():
            self._unsent.append(text)
        for queue in self._sidebands.values():
            queue.put_nowait(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """End the call: close its sidebands (with ``code``) and the peer connection."""
        self.end()
        for ws, queue in list(self._sidebands.items()):
            queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code, reason or "call ended"), 5)
        with contextlib.suppress(Exception):
            await self.pc.close()
        for task in list(self._tasks):
            task.cancel()

    def abort(self) -> None:
        self.end()
        for ws in list(self._sidebands):
            transport = ws.transport
            if transport is not None:
                transport.abort()

    def end(self) -> None:
        """Stop feeding the session (its runner then finishes and calls :meth:`close`)."""
        if not self.ended.is_set():
            self.ended.set()
            self._inbox.put_nowait(None)

    def play(self, kind: str, response_id: str, pcm16_24k: bytes) -> None:
        """Queue response speech (PCM16 24 kHz) on the outgoing track, or cut it (``clear``).

        Each piece is a whole synthesized sentence, so it is resampled to 48 kHz on its own
        (no filter tail is held back waiting for the next one)."""
        from realtime_nb.audio import Audio

        if kind == "clear":
            self.track.clear()
            return
        if pcm16_24k:
            self.track.queue(response_id, Audio.from_pcm16(pcm16_24k, 24_000).resample(RATE)
                             .samples)

    def idle(self, response_id: str) -> bool:
        """Whether no sample of ``response_id`` waits on the outgoing track."""
        return not self.track.queued(response_id)

    # -------------------------------------------------------------- sidebands
    def attach(self, ws: Any, session_created: str) -> asyncio.Queue[str | None]:
        """Register a sideband WebSocket: it gets ``session_created`` first, then every event."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        queue.put_nowait(session_created)
        self._sidebands[ws] = queue
        return queue

    async def serve_sideband(self, ws: Any, session_created: str) -> None:
        """Run one sideband until it or the call closes: forward its client events to the
        session and the session's events to it."""
        from websockets.exceptions import ConnectionClosed

        queue = self.attach(ws, session_created)

        async def write() -> None:
            while True:
                text = await queue.get()
                if text is None:
                    return
                try:
                    await ws.send(text)
                except ConnectionClosed:
                    return

        writer = asyncio.ensure_future(write())
        try:
            async for message in ws:
                if self.ended.is_set():
                    break
                self._inbox.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            self._sidebands.pop(ws, None)
            queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 5)
            if self.ended.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(1000, "call ended"), 5)

    @property
    def sideband_count(self) -> int:
        return len(self._sidebands)

    # -------------------------------------------------------------- aiortc callbacks
    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != "oai-events":
            logger.info("call %s: ignoring data channel %r", self.id, channel.label)
            return
        self.channel = channel

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            if not self.ended.is_set():
                self._inbox.put_nowait(message)

        def flush() -> None:
            unsent, self._unsent = self._unsent, []
            for text in unsent:
                channel.send(text)

        if channel.readyState == "open":
            flush()
        else:
            channel.on("open", flush)

    def _on_track(self, track: Any) -> None:
        if track.kind != "audio":
            return
        task = asyncio.ensure_future(self._pump(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            logger.info("call %s: peer connection %s", self.id, self.pc.connectionState)
            self.end()

    async def _pump(self, track: Any) -> None:
        """Caller audio → the session's input buffer, in the session's input format."""
        from aiortc.mediastreams import MediaStreamError

        while not self.ended.is_set():
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            conn = self.conn
            if conn is None or conn.core.closed:
                continue
            try:
                conn.append_media(self._to_input(frame, conn.core))
            except Exception:  # one bad frame must not end the call
                logger.exception("call %s: could not take an audio frame", self.id)

    def _to_input(self, frame: Any, core: Any) -> bytes:
        from realtime_nb.audio import StreamResampler, encode, format_rate, from_array

        mono = mono_float(frame)
        fmt = core.config["audio"]["input"]["format"]
        rate = format_rate(fmt)
        if self._in_rs is None or self._in_rate != rate or self._in_rs.in_rate != (
                frame.sample_rate):
            self._in_rs = StreamResampler(frame.sample_rate, rate)
            self._in_rate = rate
        out = self._in_rs.process(mono)
        return encode(from_array(out, rate), fmt) if len(out) else b""


#: Frames aiortc's audio receiver holds before decoding (its default is 4: 80 ms more turn
#: latency). One frame still puts two swapped packets back in order.
JITTER_FRAMES = 1


def _short_jitter_buffer(receiver: Any) -> bool:
    """Shrink aiortc's fixed audio jitter buffer (see :data:`JITTER_FRAMES`). It is private in
    aiortc; when a release renames it, calls keep the default and a warning says so."""
    from aiortc.jitterbuffer import JitterBuffer

    name = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, name, None)
    if not isinstance(current, JitterBuffer):
        logger.warning("aiortc's receiver has no %s: the call keeps aiortc's default jitter "
                       "buffer (80 ms more latency)", name)
        return False
    setattr(receiver, name, JitterBuffer(capacity=current.capacity, prefetch=JITTER_FRAMES))
    return True


async def answer(offer_sdp: str, on_idle: Callable[[Call, str], None]) -> tuple[Call, str]:
    """Answer an SDP offer: a new :class:`Call` and the answer SDP (ICE candidates included).

    Raises ``ValueError`` when the offer is not a usable WebRTC offer with an audio section.
    """
    from aiortc import RTCPeerConnection, RTCSessionDescription

    if "m=audio" not in offer_sdp:
        raise ValueError("The SDP offer has no audio section (m=audio): add an audio "
                         "transceiver or the microphone track before creating the offer.")
    pc = RTCPeerConnection()
    holder: list[Call] = []
    track = speech_track(lambda rid: on_idle(holder[0], rid) if holder else None)
    call = Call(pc, track)
    holder.append(call)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(track)  # takes the offer's audio transceiver: sendrecv
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                _short_jitter_buffer(transceiver.receiver)
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as err:
        with contextlib.suppress(Exception):
            await pc.close()
        raise ValueError(f"The SDP offer could not be answered: {err}") from err
    return call, pc.localDescription.sdp
