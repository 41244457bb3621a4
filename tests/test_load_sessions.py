"""Load: 100 concurrent sessions on one local server, none losing or reordering an event.

100 sessions is the local server's capacity goal (``CAPACITY_GOAL`` in
benchmarks/bench_server.py, where the lag under load is measured). Here the question is
correctness under that load: each session runs the same script — text items, audio appended
and cleared, a refused commit, an unknown event, a text response, three times, then 2 s of
speech streamed with server VAD on (VAD is batched across sessions) — all 100 at once, all
connected at the same time. The script is first run alone; every concurrent session must then
receive exactly the same sequence of events (server-made ids and timestamps aside): same
events, same order, same payloads, same VAD timings.

Speech recognition is replaced by an instant transcriber (nothing here asks for a transcript);
VAD (Silero), the echo responder and the protocol are the real ones.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import espeak_wav
from reliability_fixtures import ThreadedServer, iter_pcm_chunks, quick_engines
from websockets.asyncio.client import ClientConnection, connect

from realtime_nb.audio import Audio, to_pcm16

SESSIONS = 100
ROUNDS = 3
_SERVER_ID = re.compile(r"^(resp|item|sess|conv|event|call)_[A-Za-z0-9]+$")


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(engines=quick_engines()) as srv:
        yield srv


@pytest.fixture(scope="module")
def speech_chunks(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """1 s of silence, espeak-ng speech, 1.5 s of silence: 100 ms base64 chunks."""
    wav = espeak_wav(tmp_path_factory.mktemp("load") / "speech.wav", "Hello there, how are you?")
    silence = Audio.silence(1000).to_pcm16()
    pcm = silence + to_pcm16(wav) + Audio.silence(1500).to_pcm16()
    return [base64.b64encode(c).decode() for c in iter_pcm_chunks(pcm)]


def normalize(events: list[dict[str, Any]]) -> list[Any]:
    """Events with server-made ids replaced by their order of first appearance (``#0``,
    ``#1``, ...), their own ``event_id`` and ``expires_at`` dropped; everything else kept
    (the ``event_id`` echoed in an error is the client's)."""
    names: dict[str, str] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items() if k != "expires_at"}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and _SERVER_ID.match(value):
            return names.setdefault(value, f"#{len(names)}")
        return value

    return [walk({k: v for k, v in ev.items() if k != "event_id"}) for ev in events]


async def _recv_until(ws: ClientConnection, got: list[dict[str, Any]], done: Any,
                      timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            ev = json.loads(await ws.recv())
            got.append(ev)
            if done(ev):
                return


async def run_script(ws: ClientConnection, speech: list[str]) -> list[dict[str, Any]]:
    """The script every session runs; returns every server event it received, in order."""
    got: list[dict[str, Any]] = []
    await ws.send(json.dumps({"type": "session.update", "session": {
        "type": "realtime", "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": None}}}}))
    await _recv_until(ws, got, lambda e: e["type"] == "session.updated")
    tone = base64.b64encode(Audio.silence(100).to_pcm16()).decode()
    for k in range(ROUNDS):
        for ev in (
            {"type": "conversation.item.create", "item": {
                "id": f"item_k{k}", "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": f"ping {k}"}]}},
            {"type": "input_audio_buffer.append", "event_id": f"a{k}", "audio": tone},
            {"type": "input_audio_buffer.clear", "event_id": f"c{k}"},
            {"type": "input_audio_buffer.commit", "event_id": f"m{k}"},
            {"type": "no.such.event", "event_id": f"b{k}"},
            {"type": "response.create", "event_id": f"r{k}",
             "response": {"metadata": {"round": str(k)}}},
        ):
            await ws.send(json.dumps(ev))
        await _recv_until(ws, got, lambda e: e["type"] == "response.done")
    await ws.send(json.dumps({"type": "session.update", "session": {
        "type": "realtime", "audio": {"input": {"turn_detection": {
            "type": "server_vad", "create_response": False, "silence_duration_ms": 500}}}}}))
    await _recv_until(ws, got, lambda e: e["type"] == "session.updated")
    for chunk in speech:
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
    await _recv_until(ws, got, lambda e: e["type"] == "conversation.item.done")
    await ws.send(json.dumps({"type": "input_audio_buffer.clear", "event_id": "end"}))
    await _recv_until(ws, got, lambda e: e["type"] == "input_audio_buffer.cleared")
    return got


async def _open(server: ThreadedServer) -> ClientConnection:
    ws = await connect(server.url, additional_headers={"Authorization": "Bearer load"},
                       max_size=None, open_timeout=30)
    assert json.loads(await ws.recv())["type"] == "session.created"
    return ws


async def test_100_concurrent_sessions_each_get_every_event_in_order(
    server: ThreadedServer, speech_chunks: list[str]
) -> None:
    solo_ws = await _open(server)
    solo = normalize(await run_script(solo_ws, speech_chunks))
    await solo_ws.close()
    types = [e["type"] for e in solo]
    assert types.count("response.done") == ROUNDS and "input_audio_buffer.speech_stopped" in types
    assert [e["response"]["output"][0]["content"][0]["text"] for e in solo
            if e["type"] == "response.done"] == [f'You said: "ping {k}".' for k in range(ROUNDS)]
    assert [(e["error"]["code"], e["error"]["event_id"]) for e in solo if e["type"] == "error"] == [
        (code, f"{p}{k}") for k in range(ROUNDS)
        for code, p in (("input_audio_buffer_commit_empty", "m"), ("invalid_value", "b"))]

    sockets = await asyncio.gather(*(_open(server) for _ in range(SESSIONS)))
    try:
        assert server.sessions() == SESSIONS, "all sessions are open at once"
        results = await asyncio.gather(*(run_script(ws, speech_chunks) for ws in sockets))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    differing = [i for i, got in enumerate(results) if normalize(got) != solo]
    if differing:
        first = normalize(results[differing[0]])
        at = next((j for j, (a, b) in enumerate(zip(first, solo, strict=False)) if a != b),
                  min(len(first), len(solo)))
        pytest.fail(f"{len(differing)} of {SESSIONS} sessions differ from the solo run; "
                    f"session {differing[0]} first at event {at}: "
                    f"{first[at] if at < len(first) else None} vs "
                    f"{solo[at] if at < len(solo) else None}")

