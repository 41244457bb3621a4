"""WebRTC calls from the kernel's side: URLs, hang-up, and a call placed by the kernel itself.

Over WebRTC the audio travels between a peer and the server on RTP tracks and the events on a
data channel named ``oai-events``; a backend that holds the long-lived key watches and steers
the call through a *sideband* WebSocket (``wss://…/v1/realtime?call_id=rtc_…``). A
``Session(transport="webrtc")`` is that sideband. The peer is

* the browser, normally: the panel's :class:`~realtime_nb.widgets.WebRTCCall` widget, to which
  the kernel hands only an ephemeral ``ek_`` client secret;
* or the kernel, with :class:`KernelCall` (aiortc, the ``webrtc`` extra): for scripts, CI and
  benchmarks, where no browser is there. It speaks any audio into the call and records what
  the server sends back on the remote track.

The shapes are the service's (``POST {rest}/realtime/calls`` with ``Content-Type:
application/sdp`` → ``201``, the answer SDP, ``Location: /v1/realtime/calls/{call_id}``;
``POST {rest}/realtime/calls/{call_id}/hangup``), against OpenAI and the local server alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from realtime_nb.audio._webrtc import FRAME, RATE, FramePacer, frame_of, mono_float

from .backend import Backend, Secret
from .client_secrets import rest_base_url
from .errors import RealtimeError

if TYPE_CHECKING:
    from .session import Session

__all__ = ["KernelCall", "Received", "call_id_from_location", "calls_url", "hangup",
           "post_offer", "sideband_url"]

def calls_url(ws_url: str) -> str:
    """``POST`` target for SDP offers: ``https://host/v1/realtime/calls`` of a socket URL."""
    return rest_base_url(ws_url) + "/realtime/calls"


def sideband_url(ws_url: str, call_id: str) -> str:
    """The sideband socket of call ``call_id``: the Session's URL with ``?call_id=`` instead of
    ``model=`` / ``intent=`` (a call's model was fixed when it was placed)."""
    parts = urlsplit(ws_url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("model", "intent", "call_id")]
    pairs.append(("call_id", call_id))
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def call_id_from_location(location: str | None) -> str:
    """The call id at the end of a ``Location: /v1/realtime/calls/{call_id}`` header."""
    tail = (location or "").rstrip("/").rsplit("/", 1)[-1]
    if not tail or tail == "calls":
        raise RealtimeError("invalid_call_answer", "The server answered the SDP offer without "
                            "a call id in its Location header.", source="server", fatal=False,
                            hint="Is this a Realtime server with WebRTC calls?")
    return tail


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float
          ) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, body, dict(headers), method="POST")
    context = ssl.create_default_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def _refusal(status: int, raw: bytes, what: str) -> RealtimeError:
    import json

    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        body = {}
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    return RealtimeError(err.get("code") or f"http_{status}",
                         err.get("message") or f"HTTP {status} from {what}",
                         param=err.get("param"), source="server",
                         fatal=status in (401, 403))


async def post_offer(url: str, secret: Secret, offer_sdp: str, *, timeout: float = 30.0
                     ) -> tuple[str, str]:
    """Post an SDP offer as a browser does; returns ``(call_id, answer_sdp)``.

    ``secret`` is the bearer (an ``ek_`` client secret, or a key where no browser is involved).
    Raises :class:`RealtimeError` with the server's code when it refuses.
    """
    headers = {"Authorization": f"Bearer {secret.reveal()}", "Content-Type": "application/sdp"}
    try:
        status, got, raw = await asyncio.to_thread(_post, url, offer_sdp.encode(), headers,
                                                   timeout)
    except OSError as exc:
        raise RealtimeError("connect_failed", f"Could not post the SDP offer to {url}: "
                            f"{type(exc).__name__}: {exc}", source="connection",
                            fatal=False) from None
    if status != 201:
        raise _refusal(status, raw, url)
    location = next((v for k, v in got.items() if k.lower() == "location"), None)
    return call_id_from_location(location), raw.decode("utf-8")


async def hangup(backend: Backend, call_id: str, *, timeout: float = 10.0) -> None:
    """End call ``call_id`` (``POST …/realtime/calls/{id}/hangup`` with the backend's key).

    Raises :class:`RealtimeError` when the server refuses (``call_not_found`` once the call has
    ended) or cannot be reached.
    """
    url = f"{calls_url(backend.url)}/{call_id}/hangup"
    try:
        status, _h, raw = await asyncio.to_thread(_post, url, b"", backend.headers(), timeout)
    except OSError as exc:
        raise RealtimeError("connect_failed", f"Could not hang up {call_id}: "
                            f"{type(exc).__name__}", source="connection", fatal=False) from None
    if status >= 300:
        raise _refusal(status, raw, url)


# --------------------------------------------------------------------------- the kernel's peer
@dataclass
class Received:
    """Audio the kernel's peer got on the remote track: PCM16 mono at 48 kHz, and when each
    stretch of sound began (``time.monotonic()`` of the first audible frame after silence)."""

    pcm16: bytearray = field(default_factory=bytearray)
    onsets: list[float] = field(default_factory=list)
    frames: int = 0

    @property
    def duration_ms(self) -> float:
        return len(self.pcm16) / 2 / RATE * 1000

    def audio(self) -> Any:
        """Everything received as an :class:`~realtime_nb.audio.Audio` (48 kHz)."""
        from realtime_nb.audio import Audio

        return Audio.from_pcm16(bytes(self.pcm16), RATE)


class KernelCall:
    """A WebRTC call placed from the kernel with aiortc — the browser's part, without a browser.

    ::

        session = Session(transport="webrtc")
        call = await KernelCall.dial(session)     # secret, offer, answer, sideband attached
        await call.speak(question_audio)          # into the call's audio track, real time
        await session.wait_for("response.done")
        call.received.audio()                     # what the server sent on its track
        await session.close()                     # hangs up; call.close() ends the peer

    Like the browser it makes a data channel ``oai-events`` before the offer and sends audio
    on a sendrecv audio track (silence when there is nothing to say). Events reaching the data
    channel are kept in :attr:`channel_events`; the Session's sideband gets the same events.
    Needs aiortc (``pip install 'realtime_nb[webrtc]'``) and a non-loopback network interface
    (aiortc gathers no loopback candidates).
    """

    def __init__(self, pc: Any, track: Any, channel: Any) -> None:
        self.pc = pc
        self.track = track
        self.channel = channel
        self.call_id: str | None = None
        self.received = Received()
        #: Server events that arrived on the ``oai-events`` data channel (parsed JSON).
        self.channel_events: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    async def dial(cls, session: Session, *, secret: Any = None, attach: bool = True,
                   connect_timeout: float = 15.0) -> KernelCall:
        """Place a call on ``session``'s server and (``attach``) attach ``session`` to it.

        ``secret``: a client secret (``ClientSecret`` or ``Secret``) to post the offer with;
        by default one is minted with :meth:`Session.create_client_secret`. Waits until the
        peer connection is up (``connect_timeout``), raising ``webrtc_connect_failed`` if not.
        """
        if session.transport != "webrtc":
            raise ValueError("KernelCall.dial needs a Session(transport='webrtc')")
        if secret is None:
            secret = await session.create_client_secret()
        backend = session._backend
        if backend.name == "local" and not backend.url:
            await asyncio.to_thread(backend.start_local)
        call = await cls.place(calls_url(backend.url), secret, connect_timeout=connect_timeout)
        if attach:
            try:
                await session.connect(call_id=call.call_id)
            except BaseException:
                await call.close()
                raise
        return call

    @classmethod
    async def place(cls, url: str, secret: Any, *, connect_timeout: float = 15.0
                    ) -> KernelCall:
        """Post an offer to ``url`` (a ``…/realtime/calls`` URL) with ``secret`` (a
        ``ClientSecret`` or ``Secret``) and wait for the media to connect; no sideband."""
        import json

        from aiortc import RTCPeerConnection, RTCSessionDescription

        bearer = secret.value if hasattr(secret, "value") else secret
        pc = RTCPeerConnection()
        channel = pc.createDataChannel("oai-events")
        track = _voice_track()
        pc.addTransceiver(track, direction="sendrecv")
        call = cls(pc, track, channel)

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            with contextlib.suppress(ValueError):
                ev = json.loads(message)
                if isinstance(ev, dict):
                    call.channel_events.append(ev)

        @pc.on("track")
        def on_track(remote: Any) -> None:
            if remote.kind == "audio":
                call._spawn(call._record(remote))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                call.connected.set()

        try:
            await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers here
            call.call_id, answer = await post_offer(url, bearer, pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            try:
                async with asyncio.timeout(connect_timeout):
                    await call.connected.wait()
            except TimeoutError:
                raise RealtimeError(
                    "webrtc_connect_failed", f"The peer connection did not come up within "
                    f"{connect_timeout:g} s (state {pc.connectionState}).", source="connection",
                    fatal=False, hint="UDP between this machine and the server may be "
                    "blocked; the WebSocket transport needs only TCP.") from None
        except BaseException:
            await call.close()
            raise
        return call

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, remote: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        from realtime_nb.audio import StreamResampler

        resampler: StreamResampler | None = None
        quiet = True
        rec = self.received
        while True:
            try:
                frame = await remote.recv()
            except MediaStreamError:
                return
            samples = mono_float(frame)
            if frame.sample_rate != RATE:
                if resampler is None:
                    resampler = StreamResampler(frame.sample_rate, RATE)
                samples = resampler.process(samples)
            loud = bool(len(samples)) and float(np.sqrt(np.mean(samples ** 2))) > 0.01
            if loud and quiet:
                rec.onsets.append(time.monotonic())
            quiet = not loud
            rec.frames += 1
            rec.pcm16 += np.clip(np.rint(samples * 32767), -32768, 32767).astype("<i2").tobytes()

    async def speak(self, audio: Any, sample_rate: int | None = None) -> float:
        """Send ``audio`` (anything :func:`realtime_nb.audio.to_pcm16` reads) into the call at
        real-time pace, as a microphone would; returns once it has all been sent, with the
        ``time.monotonic()`` at which its last sample left."""
        from realtime_nb.audio import Audio, to_pcm16

        pcm = to_pcm16(audio, sample_rate) if not isinstance(audio, Audio) else audio.to_pcm16()
        samples = Audio.from_pcm16(pcm, 24_000).resample(RATE).samples
        return await self.track.say(samples)

    async def close(self) -> None:
        """Close the peer connection (the server ends the call; ``session.close()`` hangs up
        explicitly)."""
        self.track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        for task in list(self._tasks):
            task.cancel()


_VOICE_TRACK: Any = None


def _voice_track() -> Any:
    """The kernel's microphone: an aiortc audio track of 20 ms 48 kHz frames at real time,
    silence unless :meth:`say` queued samples."""
    global _VOICE_TRACK
    if _VOICE_TRACK is None:
        from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

        class _VoiceTrack(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self._pending = np.zeros(0, dtype=np.int16)
                self._done: asyncio.Future[float] | None = None
                self._clock = FramePacer()

            async def say(self, samples: np.ndarray) -> float:
                if self._done is not None and not self._done.done():
                    await asyncio.shield(self._done)
                loop = asyncio.get_running_loop()
                self._done = loop.create_future()
                self._pending = np.concatenate([self._pending, samples.astype(np.int16)])
                return await asyncio.shield(self._done)

            async def recv(self) -> Any:
                if self.readyState != "live":
                    raise MediaStreamError
                pts = await self._clock.next_pts()
                frame = np.zeros(FRAME, dtype=np.int16)
                take = self._pending[:FRAME]
                frame[: len(take)] = take
                self._pending = self._pending[len(take):]
                if len(take) and not len(self._pending) and self._done is not None \
                        and not self._done.done():
                    self._done.set_result(time.monotonic())
                return frame_of(frame, pts, stereo=True)

        _VOICE_TRACK = _VoiceTrack
    return _VOICE_TRACK()
