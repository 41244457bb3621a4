"""A WebRTC caller of our own (aiortc) for the local server's ``/v1/realtime/calls``.

It does what the browser does: an audio track (here: speech we queue, silence otherwise, at
real-time pace as a microphone would), a data channel named ``oai-events`` opened before the
offer, the SDP offer posted with a bearer key, the answer applied. It records every event of the
data channel and every sample of the remote audio track.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from realtime_nb.audio import Audio
from realtime_nb.audio._webrtc import FRAME, RATE, FramePacer, frame_of, mono_float

__all__ = ["FRAME", "RATE", "Caller", "Microphone"]


class Microphone(MediaStreamTrack):
    """Queued 48 kHz speech at real-time pace, silence otherwise (a microphone never stops)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._buf = np.zeros(0, np.int16)
        self._clock = FramePacer()
        self.spoken_until: float | None = None  # monotonic time the last queued sample left

    def say(self, audio: Audio) -> None:
        self._buf = np.concatenate([self._buf, audio.resample(RATE).samples])
        self.spoken_until = None

    @property
    def speaking(self) -> bool:
        return bool(len(self._buf))

    async def recv(self) -> AudioFrame:
        pts = await self._clock.next_pts()
        chunk, self._buf = self._buf[:FRAME], self._buf[FRAME:]
        if len(chunk) and not len(self._buf):
            self.spoken_until = time.monotonic()
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        return frame_of(chunk, pts, stereo=True)


class Caller:
    """One WebRTC call to ``calls_url`` (see the module docstring). ``short_jitter_buffer``
    gives its receiver the server's one-frame jitter buffer instead of aiortc's four.

    ``events`` holds the parsed data-channel events in arrival order; ``heard`` the remote audio
    as 48 kHz mono int16 blocks with their arrival times; ``first_loud`` the arrival time of the
    first block above -40 dBFS.
    """

    def __init__(self, *, short_jitter_buffer: bool = False) -> None:
        self.pc = RTCPeerConnection()
        self.mic = Microphone()
        self.pc.addTrack(self.mic)
        if short_jitter_buffer:  # as the server's (a browser's adaptive one shrinks on loopback)
            from realtime_nb.server.webrtc import _short_jitter_buffer

            for transceiver in self.pc.getTransceivers():
                _short_jitter_buffer(transceiver.receiver)
        self.channel = self.pc.createDataChannel("oai-events")
        self.events: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # monotonic arrival time of each event
        self.heard: list[tuple[float, np.ndarray]] = []
        self.call_id: str | None = None
        self.location: str | None = None
        self._arrived = asyncio.Event()
        self._opened = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.channel.on("message", self._on_message)
        self.channel.on("open", self._opened.set)
        self.pc.on("track", self._on_track)

    def _on_message(self, message: str) -> None:
        self.events.append(json.loads(message))
        self.arrived.append(time.monotonic())
        self._arrived.set()

    def _on_track(self, track: Any) -> None:
        async def listen() -> None:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                mono = mono_float(frame) * 32768
                self.heard.append((time.monotonic(), mono.astype(np.int16)))

        self._tasks.append(asyncio.ensure_future(listen()))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str, location: str) -> None:
        self.location = location
        self.call_id = location.rstrip("/").rsplit("/", 1)[1]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def dial(self, calls_url: str, key: str, **headers: str) -> httpx.Response:
        """Post the offer as ``application/sdp`` (the browser's way); apply a 201 answer."""
        offer = await self.offer()
        async with httpx.AsyncClient() as http:
            resp = await http.post(calls_url, content=offer, headers={
                "Authorization": f"Bearer {key}", "Content-Type": "application/sdp", **headers})
        if resp.status_code == 201:
            await self.answer(resp.text, resp.headers["location"])
        return resp

    async def send(self, event: dict[str, Any]) -> None:
        await asyncio.wait_for(self._opened.wait(), 10)
        self.channel.send(json.dumps(event))

    async def wait_for(self, etype: str, timeout: float = 30.0, since: int = 0,
                       **match: Any) -> dict[str, Any]:
        """The first data-channel event of ``etype`` (at index >= ``since``) whose fields equal
        ``match``."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events[since:]:
                if ev["type"] == etype and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {etype} in {[e['type'] for e in self.events]}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    def arrival(self, event: dict[str, Any]) -> float:
        """When ``event`` (one of :attr:`events`) arrived."""
        return self.arrived[next(i for i, e in enumerate(self.events) if e is event)]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def loud_since(self, t: float, dbfs: float = -40.0) -> float | None:
        """Arrival time of the first remote block after ``t`` louder than ``dbfs``."""
        floor = 32768 * 10 ** (dbfs / 20)
        for at, block in self.heard:
            if at >= t and np.sqrt(np.mean(block.astype(np.float64) ** 2)) > floor:
                return at
        return None

    def audio_between(self, t0: float, t1: float) -> Audio:
        blocks = [b for at, b in self.heard if t0 <= at <= t1]
        return Audio(np.concatenate(blocks) if blocks else np.zeros(0, np.int16), RATE)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
