"""A kernel stand-in for the flight recorder's SIGKILL test: a Session against the local server
that streams speech and quiet noise in 100 ms chunks (server VAD answers each turn) and, after
every chunk, prints one JSON line: wall time, events logged, input bytes sent, and whether a
turn is under way. The test kills it with SIGKILL mid-turn. Usage: recorder_child.py SPEECH.WAV
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np

from realtime_nb import Session
from realtime_nb.audio import Audio


async def main(wav: str) -> None:
    session = Session(backend="local")
    await session.connect()
    print(json.dumps({"folder": str(session.recording_folder)}), flush=True)
    speech = Audio.decode(wav).resample(24_000)
    rng = np.random.default_rng(0)
    quiet = Audio(rng.normal(0, 30, 24_000).astype(np.int16), 24_000)
    pcm = Audio.concat([speech, quiet, quiet]).to_pcm16()
    step = 4800  # 100 ms
    sent = 0
    while True:
        for i in range(0, len(pcm), step):
            await session.append(pcm[i:i + step])
            sent += len(pcm[i:i + step])
            await asyncio.sleep(0.03)
            busy = session.speaking or session.active_response is not None
            print(json.dumps({"t": time.time(), "events": len(session.events),
                              "input": sent, "turn": busy}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
