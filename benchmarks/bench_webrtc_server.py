"""Benchmark of the local server's WebRTC calls against its WebSocket sessions, same run.

Both figures are ratios against the WebSocket path measured on the same server process, right
before or after, with the same audio; the callers are aiortc peers in this process
(``tests/webrtc_fixtures.Caller``: a microphone track paced to real time, the ``oai-events``
data channel), the way a browser dials; their receivers hold one frame, as the server's do
(aiortc's default of four would add 80 ms that a browser's adaptive buffer does not).

* ``webrtc_turn_latency_ratio`` — speech end → first reply audio, WebRTC over WebSocket. The
  shipped server (Whisper tiny.en, echo responder, espeak-ng), default session, a warm-up turn,
  then ``TURNS`` phrases on each path. WebSocket: arrival of the first
  ``response.output_audio.delta`` minus the send time of the 20 ms append holding the last
  speech sample (``bench_server.measure_turns``). WebRTC: arrival of the first decoded remote
  audio frame louder than -40 dBFS minus the moment the microphone track handed its last speech
  sample to aiortc — so the WebRTC figure also includes Opus encoding, RTP, the receiver's
  jitter buffer and decoding, which the WebSocket figure leaves to the client's player.
* ``webrtc_server_cpu_ratio`` — server CPU per session-second, WebRTC over WebSocket:
  ``SESSIONS`` concurrent calls (then as many WebSocket sessions streaming the same pattern in
  20 ms appends) on a server whose transcriber hears nothing at once
  (``bench_server --serve-vad-only``), server VAD on, no responses, for ``STREAM_S`` seconds.
  The detail gives the absolute CPU ms per session-second of each path (what one call costs the
  server: Opus decoding, SRTP, resampling to 24 kHz, plus the same VAD).

Run ``python -m benchmarks webrtc_server``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchmarks.bench_server import (
    HEADERS,
    PHRASES,
    SESSION_UPDATE,
    ServerProcess,
    _cpu_seconds,
    capacity_pattern,
    espeak,
    measure_turns,
)
from realtime_nb.audio import Audio

TURNS = 8
SESSIONS = 4
STREAM_S = 12.0
RATE = 24_000


def _base(url: str) -> str:
    return url.replace("ws://", "http://").rsplit("/realtime", 1)[0]


async def _dial(url: str, session: dict[str, Any] | None = None) -> Any:
    from webrtc_fixtures import Caller

    caller = Caller(short_jitter_buffer=True)
    offer = await caller.offer()
    files = {"sdp": (None, offer, "application/sdp")}
    if session is not None:
        files["session"] = (None, json.dumps(session), "application/json")
    async with httpx.AsyncClient(timeout=60) as http:
        resp = await http.post(f"{_base(url)}/realtime/calls", files=files, headers=HEADERS)
    if resp.status_code != 201:
        await caller.close()
        raise RuntimeError(f"call refused: {resp.status_code} {resp.text}")
    await caller.answer(resp.text, resp.headers["location"])
    await caller.wait_for("session.created", timeout=30)
    return caller


def _lead_ms(audio: np.ndarray) -> float:
    """Milliseconds of leading near-silence (below -40 dBFS) in 24 kHz reply audio."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 328)
    return loud[0] / RATE * 1000 if len(loud) else float("nan")


async def webrtc_turns(url: str, phrases: list[np.ndarray]) -> list[dict[str, float]]:
    """Speak each phrase into one call. Per turn (the first phrase is a warm-up and is not
    returned), ms after the last speech sample left the microphone: ``speech_stopped`` (its
    arrival), ``heard`` (the first reply frame above -40 dBFS)."""
    caller = await _dial(url)
    out: list[dict[str, float]] = []
    try:
        await asyncio.sleep(0.6)
        for i, phrase in enumerate(phrases):
            mark = len(caller.events)
            caller.mic.say(Audio(phrase, RATE))
            stopped = await caller.wait_for("input_audio_buffer.speech_stopped", timeout=60,
                                            since=mark)
            await caller.wait_for("response.done", timeout=60, since=mark)
            await caller.wait_for("output_audio_buffer.stopped", timeout=60, since=mark)
            end = caller.mic.spoken_until
            first = caller.loud_since(end) if end is not None else None
            if i and first is not None:
                out.append({"speech_stopped": (caller.arrival(stopped) - end) * 1000,
                            "heard": (first - end) * 1000})
            await asyncio.sleep(0.6)
    finally:
        await caller.close()
    return out


async def websocket_turns(url: str, phrases: list[np.ndarray]) -> tuple[list[dict[str, float]],
                                                                         int]:
    """The WebSocket path, measured to the same mark: the first delta's arrival plus the reply
    audio's leading silence (when an ideal player starting at that delta would sound)."""
    from benchmarks.bench_server import TURN_CHUNK_MS

    turns, window = await measure_turns(url, phrases, chunk_ms=TURN_CHUNK_MS, keep_audio=True)
    out = []
    for turn in turns[1:]:
        row = turn.latency()
        if row is None:
            continue
        lead = _lead_ms(turn.reply_audio())
        out.append({"speech_stopped": row["speech_stopped"],
                    "heard": row["first_audio_delta"] + lead})
    return out, window


def latency_figure() -> dict[str, Any]:
    phrases = [espeak(PHRASES[(i + 3) % len(PHRASES)]) for i in range(TURNS + 1)]
    with ServerProcess(vad_only=False) as server:
        ws, window = asyncio.run(websocket_turns(server.url, phrases))
        rtc = asyncio.run(webrtc_turns(server.url, phrases))
    if not ws or not rtc:
        return {"name": "webrtc_turn_latency_ratio", "value": float("inf"), "unit": "x",
                "reference": "WebSocket turn latency, same server", "goal": "<= 1.15",
                "met": False, "detail": f"turns answered: WebSocket {len(ws)}, WebRTC {len(rtc)}"}

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    ratio = med(rtc, "heard") / med(ws, "heard")
    return {
        "name": "webrtc_turn_latency_ratio", "value": round(ratio, 3),
        "unit": "x (median speech end -> first reply audio, WebRTC / WebSocket)",
        "reference": f"WebSocket path on the same server process (median "
                     f"{med(ws, 'heard'):.0f} ms)",
        "goal": "<= 1.15", "met": ratio <= 1.15,
        "detail": f"WebRTC median {med(rtc, 'heard'):.0f} ms (each: "
                  + ", ".join(f"{r['heard']:.0f}" for r in rtc) + "); WebSocket median "
                  f"{med(ws, 'heard'):.0f} ms (each: "
                  + ", ".join(f"{r['heard']:.0f}" for r in ws) + "). speech_stopped arrives "
                  f"{med(rtc, 'speech_stopped'):.0f} ms (WebRTC) vs "
                  f"{med(ws, 'speech_stopped'):.0f} ms (WebSocket) after speech end. Silence "
                  f"window {window} ms; {len(rtc)} and {len(ws)} of {TURNS} turns after a "
                  "warm-up. WebRTC: first decoded remote frame above -40 dBFS (Opus, RTP and a "
                  "one-frame jitter buffer included, on both the way in and out); "
                  "WebSocket: first audio delta's arrival plus the reply's leading silence."}


async def _ws_stream(url: str, pcm: bytes, seconds: float) -> None:
    async with connect(url, additional_headers=HEADERS, compression=None, ping_interval=None,
                       max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps(SESSION_UPDATE))
        step = RATE * 2 * 20 // 1000
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < seconds:
            piece = pcm[(k * step) % len(pcm):][:step]
            k += 1
            delay = t0 + k * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(piece).decode()}))


async def _rtc_stream(url: str, audio: Audio, seconds: float) -> int:
    caller = await _dial(url, {"type": "realtime", **SESSION_UPDATE["session"]})
    try:
        caller.mic.say(audio)
        await asyncio.sleep(seconds)
        return sum(1 for e in caller.events if e["type"] == "input_audio_buffer.speech_stopped")
    finally:
        await caller.close()


def cpu_figure() -> dict[str, Any]:
    pattern = capacity_pattern(STREAM_S + 2)
    pcm = pattern.to_pcm16()
    costs: dict[str, float] = {}
    turns = 0
    with ServerProcess(vad_only=True) as server:
        async def rtc() -> int:
            counts = await asyncio.gather(*[_rtc_stream(server.url, pattern, STREAM_S)
                                            for _ in range(SESSIONS)])
            return sum(counts)

        async def ws() -> None:
            await asyncio.gather(*[_ws_stream(server.url, pcm, STREAM_S)
                                   for _ in range(SESSIONS)])

        for name, job in (("websocket", ws), ("webrtc", rtc)):
            cpu0, t0 = _cpu_seconds(server.pid), time.monotonic()
            result = asyncio.run(job())
            elapsed = time.monotonic() - t0
            costs[name] = (_cpu_seconds(server.pid) - cpu0) * 1000 / (SESSIONS * elapsed)
            if name == "webrtc":
                turns = int(result or 0)
    ratio = costs["webrtc"] / costs["websocket"]
    return {
        "name": "webrtc_server_cpu_ratio", "value": round(ratio, 3),
        "unit": "x (server CPU per session-second, WebRTC / WebSocket)",
        "reference": f"{SESSIONS} WebSocket sessions streaming the same audio, same server",
        "goal": "<= 3", "met": ratio <= 3 and turns > 0,
        "detail": f"WebRTC {costs['webrtc']:.1f} CPU ms per session-second, WebSocket "
                  f"{costs['websocket']:.1f} ({SESSIONS} concurrent sessions, {STREAM_S:.0f} s, "
                  "server VAD on, no responses; includes call set-up). The WebRTC callers' VAD "
                  f"saw {turns} turns end. Extra cost per call: Opus decoding, SRTP, ICE, "
                  "resampling 48 -> 24 kHz, and an outgoing Opus track of silence."}


def run() -> list[dict[str, Any]]:
    return [latency_figure(), cpu_figure()]


if __name__ == "__main__":
    for fig in run():
        print(fig)
