"""Kernel cost per microphone chunk: from the browser's binary comm message to the socket.

The browser's ``MicWidget`` sends one 100 ms PCM16 chunk as a binary comm buffer ten times a
second. In the kernel each one goes: comm message (``comm.handle_msg``, as ipykernel delivers
it) → ``MicWidget`` → ``on_audio`` callbacks → ``Session.append`` → the WebSocket. This measures
the kernel's CPU time (``time.process_time``) for that, per chunk, as a percentage of the
chunk's real time (goal: <= 0.5 %, i.e. <= 0.5 ms per 100 ms chunk), with chunks paced at real
time as a microphone delivers them:

* ``mic chunk → on_audio → Session.append`` — the bridge a user writes
  (``mic.on_audio(lambda c: loop.create_task(session.append(c.data)))``);
* ``... through the SessionPanel`` — what displaying a Session runs: the panel's mic, its ordered
  outbox of session calls, and its redraws (status, input-buffer gauge, transcript, event
  timeline) at most ten times a second, their comm messages serialized as ipykernel does;
* reference, same run: the same chunks appended directly with ``Session.append``.

Every figure is net of the cost of waking the event loop ten times a second with nothing to do
(measured in the same run: ``idle``). In a kernel the wake-up is ZMQ's; here it is a timer, and
on a busy virtual machine it alone costs 0.1-0.2 ms. Each path is warmed up first (lazy imports,
first-call costs) and measured ``REPEATS`` times, interleaved; medians are compared.

The server is a sink in another process (its CPU is not counted): it sends ``session.created``
and reads everything. What ipykernel itself spends receiving a comm message from ZMQ is outside
the package and not counted.

``run()`` returns the figures; ``python benchmarks/bench_mic.py`` prints them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._wsserver import TraceServer

SECONDS = 6.0
REPEATS = 3
CHUNK_MS = 100

def _sink() -> TraceServer:
    """A WebSocket server in its own process that answers ``session.created`` and reads."""
    from realtime_nb.protocol import SessionCore

    core = SessionCore()
    core.start()
    return TraceServer([json.dumps(core.drain()[0])], "sink")


@contextlib.contextmanager
def serializing_comms() -> Iterator[list[int]]:
    """Widgets created inside get a comm that serializes every message as ipykernel does
    (jupyter_client's JSON packer) and drops it; yields the list of message sizes."""
    import ipywidgets.comm
    from comm.base_comm import BaseComm
    from jupyter_client.session import json_packer

    sizes: list[int] = []

    class SerializingComm(BaseComm):  # type: ignore[misc]
        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                        buffers: Any = None, **keys: Any) -> None:
            content = {"data": data or {}, "comm_id": self.comm_id, **keys}
            sizes.append(len(json_packer(content)) + sum(len(b) for b in buffers or ()))

    original = ipywidgets.comm.create_comm
    ipywidgets.comm.create_comm = lambda *a, **kw: SerializingComm(*a, **kw)
    try:
        yield sizes
    finally:
        ipywidgets.comm.create_comm = original


def browser_message(widget: Any, content: dict[str, Any], buffer: bytes | None = None) -> None:
    """Deliver a custom message from the page the way ipykernel's comm manager does."""
    widget.comm.handle_msg({"content": {"comm_id": widget.comm.comm_id,
                                        "data": {"method": "custom", "content": content}},
                            "buffers": [memoryview(buffer)] if buffer is not None else []})


def _chunks(seconds: float) -> list[bytes]:
    rng = np.random.default_rng(0)
    n = int(24_000 * CHUNK_MS / 1000)
    return [(rng.standard_normal(n) * 2000).astype("<i2").tobytes()
            for _ in range(int(seconds * 1000 / CHUNK_MS))]


async def _paced(chunks: list[bytes], deliver: Callable[[int, bytes], Any]) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, chunk in enumerate(chunks):
        delay = start + i * CHUNK_MS / 1000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        result = deliver(i, chunk)
        if asyncio.iscoroutine(result):
            await result


async def _measure(url: str, path: str, chunks: list[bytes]) -> float:
    """Kernel CPU ms per chunk for one path (see the module docstring)."""
    from realtime_nb import Session
    from realtime_nb.widgets import MicWidget, SessionPanel

    if path == "idle":
        c0 = time.process_time()
        await _paced(chunks, lambda _i, _c: None)
        return (time.process_time() - c0) * 1000 / len(chunks)
    session = Session(url=url)
    await session.connect()
    await session.update(turn_detection=None, wait=False)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Any]] = set()
    panel = None
    audio_msg = {"type": "audio", "take": 1, "sample_rate": 24_000, "samples": len(chunks[0]) // 2,
                 "final": False, "muted": False, "level": -20.0}
    if path == "append":
        def deliver(_i: int, chunk: bytes) -> Any:
            return session.append(chunk)
    else:
        if path == "panel":
            panel = SessionPanel(session)
            mic = panel.mic
        else:
            mic = MicWidget()

            def bridge(c: Any) -> None:
                task = loop.create_task(session.append(c.data))
                pending.add(task)
                task.add_done_callback(pending.discard)

            mic.on_audio(bridge)
        browser_message(mic, {"type": "started", "take": 1, "context_rate": 48_000,
                              "resampler": "browser", "startup_ms": 120.0, "settings": {}})

        def deliver(i: int, chunk: bytes) -> Any:
            browser_message(mic, {**audio_msg, "seq": i, "t_ms": i * CHUNK_MS}, chunk)
            return None

    await asyncio.sleep(0.2)  # connection settled, nothing pending
    c0 = time.process_time()
    await _paced(chunks, deliver)
    if panel is not None:
        await panel.idle()
        await asyncio.sleep(panel.refresh_s * 1.5)  # the last redraw
    if pending:
        await asyncio.gather(*pending)
    cpu = time.process_time() - c0
    appended = len(session.events.of_type("input_audio_buffer.append"))
    assert appended == len(chunks), f"{path}: {appended} of {len(chunks)} chunks appended"
    if panel is not None:
        panel.close()
    await session.close()
    return cpu * 1000 / len(chunks)


def run() -> list[dict[str, Any]]:
    """The figures; each path is measured REPEATS times (median), interleaved."""
    chunks = _chunks(SECONDS)
    sink = _sink()
    results: dict[str, list[float]] = {"idle": [], "append": [], "mic": [], "panel": []}
    try:
        with serializing_comms() as sizes:
            for path in results:  # warm-up
                asyncio.run(_measure(sink.url, path, chunks[:10]))
            sizes.clear()
            for _ in range(REPEATS):
                for path in results:
                    results[path].append(asyncio.run(_measure(sink.url, path, chunks)))
    finally:
        sink.close()
    idle = statistics.median(results["idle"])
    ref, mic, panel = (statistics.median(results[p]) - idle for p in ("append", "mic", "panel"))
    n = len(chunks)
    runs = {p: [round(v, 4) for v in vs] for p, vs in results.items()}
    common = (f"{n} chunks of {CHUNK_MS} ms paced at real time, median of {REPEATS}, net of "
              f"the idle wake-up ({idle:.4f} ms per tick); reference Session.append alone "
              f"{ref:.4f} ms per chunk; all runs, gross (ms per chunk) {runs}")

    def share_of_real_time(name: str, ms: float, more: str = "") -> dict[str, Any]:
        """A row: ``ms`` of CPU per chunk as a share of the chunk's real time (goal 0.5 %)."""
        return {
            "name": name,
            "value": round(ms / CHUNK_MS * 100, 3),
            "unit": "% of real time",
            "reference": round(ref / CHUNK_MS * 100, 3),
            "goal": "<= 0.5",
            "met": ms / CHUNK_MS * 100 <= 0.5,
            "detail": f"{ms:.4f} ms CPU per chunk, {ms / ref:.2f}x a direct append; {more}{common}",
        }

    return [
        share_of_real_time(
            "kernel CPU per 100 ms mic chunk, comm message → on_audio → Session.append", mic),
        share_of_real_time(
            "kernel CPU per 100 ms mic chunk through the SessionPanel (redraws included)", panel,
            f"{len(sizes)} widget messages serialized in all runs "
            f"({sum(sizes) / 1e6:.1f} MB); "),
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row, indent=2, ensure_ascii=False))
