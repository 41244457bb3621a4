"""A loopback WebSocket server in its own process, so that its CPU is not counted as the kernel's.

``TraceServer(lines, "trace")`` serves every connection the given JSON event lines (one per
line), pre-serialised as WebSocket frames and written straight to the transport as fast as the
socket takes them, then closes: a server-event firehose. ``TraceServer([created], "sink")``
sends the first line (``session.created``) and then reads and drops whatever the client sends:
a sink for measuring the sending side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

_SCRIPT = r"""
import asyncio, sys
from websockets.asyncio.server import serve
from websockets.frames import Frame, OP_TEXT

frames = []
with open(sys.argv[1], "rb") as f:
    for line in f:
        line = line.rstrip(b"\n")
        if line:
            frames.append(Frame(OP_TEXT, line).serialize(mask=False, extensions=[]))
mode = sys.argv[2]

async def handler(ws):
    if mode == "sink":
        ws.transport.write(frames[0])
        async for _ in ws:
            pass
        return
    for i in range(0, len(frames), 256):
        ws.transport.write(b"".join(frames[i:i + 256]))
        await ws.drain() if hasattr(ws, "drain") else await asyncio.sleep(0)
    await ws.close()

async def main():
    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None,
                     ping_interval=None) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


class TraceServer:
    """The server process; ``url`` to connect to, ``close()`` to stop it (``mode``: see above)."""

    def __init__(self, lines: list[str], mode: str) -> None:
        if mode not in ("trace", "sink"):
            raise ValueError(f"mode must be 'trace' or 'sink', got {mode!r}")
        self.tmp = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)  # noqa: SIM115
        self.tmp.write("\n".join(lines) + "\n")
        self.tmp.close()
        self.proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, self.tmp.name, mode],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?model=gpt-realtime"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        os.unlink(self.tmp.name)
