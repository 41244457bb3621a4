"""An hour-long session, time-compressed: kernel memory, responsiveness, and no event lost.

The kernel side is real — a :class:`realtime_nb.Session` (flight recorder on, 64 MB audio window)
with the session panel's timeline attached as the UI would have it — and streams one simulated
hour of microphone audio in 100 ms appends: 2 s of "speech" (a tone) and 3 s of quiet noise,
720 turns. The server is the scriptable :class:`realtime_nb.client.testing.FakeRealtimeServer`
in its own process (server VAD on the same segmenter, each turn answered with 1.5 s of audio),
so the hour takes ``3600 / SPEED`` seconds: the time compression only skips waiting, every
event and every byte of the hour goes through the kernel. What is measured:

* ``soak_memory_growth_per_audio_byte`` — growth of the process's resident memory over the
  last 20 simulated minutes, once the Session's windows are full (64 MB of audio, 20000 event
  views, 30000 timeline entries: a fixed cost, reached after about half an hour), divided by the
  audio bytes that passed in that time (sent and received). Reference: that audio volume, same
  run. Goal <= 0.25 (audio goes to the recorder, not RAM; what still grows is a few hundred
  bytes of bookkeeping per event). The detail gives the whole curve, every 10 simulated
  minutes, and the growth over minutes 5-60.
* ``soak_loop_lag_last_vs_first`` — p99 lag of a 10 ms ticker on the kernel's event loop in the
  last 5 simulated minutes over the first 5. Goal <= 2 (the panel and the timeline do not slow
  down as the log grows). The detail gives both p99s.
* ``soak_events_lost_or_reordered`` — appends the server received minus those sent, turns
  answered minus turns spoken (the last may still be open), and responses whose events came out
  of order, summed. Goal == 0.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from realtime_nb import Session
from realtime_nb.audio import Audio

SPEED = 40.0
AUDIO_MB = 64.0  # the Session default
HOUR_S = 3600
CHUNK_MS = 100
SPEECH_S, QUIET_S = 2.0, 3.0
ORDER = ("response.created", "response.output_item.added", "response.content_part.added",
         "response.output_audio.done", "response.output_item.done", "response.done")

_SERVER = textwrap.dedent("""
    import asyncio, json, sys
    from realtime_nb.client.testing import FakeRealtimeServer

    async def main():
        async with FakeRealtimeServer(reply_audio_ms=1500, max_duration_s=7200) as fake:
            print(json.dumps({"url": fake.url}), flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.readline)
            appends = sum(1 for e in fake.received if e.get("type") == "input_audio_buffer.append")
            print(json.dumps({"appends": appends}), flush=True)

    asyncio.run(main())
""")


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _pattern() -> list[bytes]:
    rng = np.random.default_rng(5)
    t = np.arange(int(SPEECH_S * 24_000)) / 24_000
    speech = (np.sin(2 * np.pi * 220 * t) * 8000 + rng.normal(0, 300, len(t))).astype(np.int16)
    quiet = rng.normal(0, 40, int(QUIET_S * 24_000)).astype(np.int16)
    pcm = Audio(np.concatenate([speech, quiet]), 24_000).to_pcm16()
    step = 24 * 2 * CHUNK_MS
    return [pcm[i:i + step] for i in range(0, len(pcm), step)]


async def _soak(url: str, folder: Path) -> dict[str, Any]:
    from realtime_nb.widgets import Timeline

    session = Session(url=url, api_key="local", record=folder, audio_memory_mb=AUDIO_MB)
    await session.connect()
    await session.update(turn_detection={"type": "server_vad", "silence_duration_ms": 500})
    timeline = Timeline(session)  # the panel's live timeline, listening to every event
    chunks = _pattern()
    per_turn = len(chunks)
    total = int(HOUR_S * 1000 / CHUNK_MS)
    lags: list[tuple[float, float]] = []  # (simulated s, lag ms)
    curve: list[tuple[float, int, int]] = []  # (simulated min, rss, audio bytes)
    stop = False

    async def ticker() -> None:
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((sim[0], (time.perf_counter() - t - 0.01) * 1000))

    sim = [0.0]
    tick = asyncio.ensure_future(ticker())
    t0 = time.perf_counter()
    sent = 0
    try:
        for k in range(total):
            await session.append(chunks[k % per_turn])
            sent += 1
            sim[0] = (k + 1) * CHUNK_MS / 1000
            due = t0 + sim[0] / SPEED
            delay = due - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))
            if (k + 1) % int(60_000 / CHUNK_MS) == 0:
                curve.append((sim[0] / 60, _rss_bytes(), session.events.audio.nbytes))
        await asyncio.sleep(2.0)
    finally:
        stop = True
        await tick
    turns = total // per_turn
    done = session.events.of_type("response.done")
    by_resp: dict[str, list[str]] = {}
    for e in session.events.server():
        rid = e.event.get("response_id") or (e.event.get("response") or {}).get("id")
        if rid and e.type in ORDER:
            by_resp.setdefault(rid, []).append(e.type)
    disordered = sum(1 for seq in by_resp.values()
                     if [t for t in ORDER if t in seq] != [t for t in seq if t in ORDER])
    ids = [e.event.get("event_id") for e in session.events.server()]
    duplicates = len(ids) - len(set(ids))
    result = {"curve": curve, "lags": lags, "turns": turns, "answered": len(done),
              "sent": sent, "disordered": disordered, "duplicates": duplicates,
              "events": len(session.events), "spilled": session.events.audio.spilled,
              "ram_audio": session.events.audio.ram_bytes, "wall": time.perf_counter() - t0,
              "timeline_events": len(timeline.log)}
    await session.close()
    return result


def _p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


def run() -> list[dict[str, Any]]:
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    try:
        url = json.loads(server.stdout.readline())["url"]
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(_soak(url, Path(tmp)))  # the fake's url names the model
        server.stdin.write("stats\n")
        server.stdin.flush()
        appends = json.loads(server.stdout.readline())["appends"]
    finally:
        server.kill()
        server.wait(10)
    curve = r["curve"]
    first5 = next(c for c in curve if c[0] >= 5)
    start = next(c for c in curve if c[0] >= 40)
    end = curve[-1]
    growth = (end[1] - start[1]) / max(1, end[2] - start[2])
    overall = (end[1] - first5[1]) / max(1, end[2] - first5[2])
    first = [lag for s, lag in r["lags"] if s <= 300]
    last = [lag for s, lag in r["lags"] if s >= HOUR_S - 300]
    lag_ratio = _p99(last) / max(_p99(first), 0.5)
    lost = abs(appends - r["sent"]) + max(0, r["turns"] - 1 - r["answered"]) + r["disordered"] \
        + r["duplicates"]
    points = ", ".join(f"{m:.0f} min {rss / 2**20:.0f} MB" for m, rss, _ in curve[4::10])
    return [
        {"name": "soak_memory_growth_per_audio_byte", "value": round(growth, 4),
         "unit": "RSS bytes gained per audio byte streamed (minutes 40-60)",
         "reference": f"{(end[2] - start[2]) / 2**20:.0f} MB of audio sent and received in that "
                      "time, same run",
         "goal": "<= 0.25", "met": growth <= 0.25,
         "detail": f"resident memory {first5[1] / 2**20:.0f} MB at 5 min, "
                   f"{start[1] / 2**20:.0f} MB at 40 min, {end[1] / 2**20:.0f} MB at 60 min "
                   f"({points}); over minutes 5-60 {overall:.2f} bytes per audio byte (the "
                   f"windows filling up). {r['events']} events logged, audio in memory at the "
                   f"end {r['ram_audio'] / 2**20:.0f} MB ({r['spilled']} payloads read from the "
                   f"recording when needed). One simulated hour took {r['wall']:.0f} s "
                   f"({SPEED:.0f}x)."},
        {"name": "soak_loop_lag_last_vs_first", "value": round(lag_ratio, 3),
         "unit": "x (p99 event-loop lag, last 5 simulated minutes / first 5)",
         "reference": f"the first 5 simulated minutes (p99 {_p99(first):.1f} ms)",
         "goal": "<= 2", "met": lag_ratio <= 2,
         "detail": f"p99 lag of a 10 ms ticker: {_p99(first):.1f} ms then {_p99(last):.1f} ms "
                   f"(max {max(last, default=0):.0f} ms) with the timeline attached "
                   f"({r['timeline_events']} events in it at the end)."},
        {"name": "soak_events_lost_or_reordered", "value": lost, "unit": "events",
         "reference": f"{r['sent']} appends sent, {r['turns']} turns spoken",
         "goal": "== 0", "met": lost == 0,
         "detail": f"server received {appends} appends of {r['sent']}; {r['answered']} responses "
                   f"for {r['turns']} turns; {r['disordered']} responses out of order; "
                   f"{r['duplicates']} duplicate event ids."},
    ]


if __name__ == "__main__":
    for fig in run():
        print(fig)
