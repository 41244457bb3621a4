"""Helpers shared by tests/test_reliability_*.py, test_security_*.py and test_load_*.py.

* :class:`ThreadedServer` — a :class:`~realtime_nb.server.LocalServer` on its own event loop in a
  background thread, so that synchronous tests (hypothesis, nbclient) and several client loops can
  use one server, and so that the server's errors can be told apart from the client's.
* :class:`RawClient` — a synchronous WebSocket client that speaks the wire protocol directly
  (any frame: JSON events, malformed text, binary) and can *probe*: send an event that the server
  must refuse with a known ``event_id``, then return everything the server sent before that
  refusal. The server handles a connection's events in order, so the probe marks the end of the
  answers to what was sent before it.
* :class:`HandlerErrors` — records the server's "connection handler failed" log records (a
  crashed session), the one thing a fuzzed server must never log.
* :class:`HealthySession` — a well-behaved :class:`~realtime_nb.Session` in its own thread doing
  text turns and audio appends against a server, recording anything that goes wrong: the
  witness that a server under attack keeps serving everybody else.
* :class:`QuickTranscriber` — hears the same words at once: for servers whose tests are about
  the protocol and the transport, not speech recognition (tests/test_engines_asr.py is).
* :class:`ServerProcess` — ``python -m realtime_nb.server`` as a user starts it, in its own
  process: killable, its output kept.
* :func:`until` — poll a condition from async code, bounded in time.
* :func:`long_webm_opus` — a long WebM/Opus recording made in a fraction of a second by remuxing
  the packets of a short one (no encoding per minute).

Everything binds to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import av
import numpy as np
from audio_fixtures import tone
from websockets.sync.client import ClientConnection, connect

from realtime_nb.server import LocalServer
from realtime_nb.server.engines import Engines, Transcript
from realtime_nb.server.thread import ServerThread

#: The type of the probe event: not a client event, so every server refuses it with
#: ``invalid_value`` (param ``type``) and echoes its ``event_id``.
PROBE_TYPE = "rtnb.probe"
#: Where the local server logs a session whose handler raised (websockets' own message).
SERVER_WS_LOGGER = "realtime_nb.server.websockets"
#: How long ThreadedServer.stop lets LocalServer.stop take before it aborts the sessions left.
STOP_GRACE_S = 5.0


class QuickTranscriber:
    """A transcriber that hears ``text`` in every turn, instantly (see the module docstring)."""

    def __init__(self, text: str = "hello there") -> None:
        self.text = text

    def transcribe(self, audio: Any, *, language: str | None = None,
                   prompt: str | None = None) -> Transcript:
        return Transcript.from_text(self.text)


def quick_engines() -> Engines:
    """The default engines (Silero VAD, espeak-ng, the echo responder) with a QuickTranscriber."""
    return Engines(transcriber=QuickTranscriber())


class ThreadedServer(ServerThread):
    """A LocalServer running on its own loop in a daemon thread (``with ThreadedServer() as s``):
    the package's :class:`~realtime_nb.server.thread.ServerThread` with a stop that cannot hang.

    Keyword arguments go to :class:`LocalServer` (``port=0`` by default). Models are not warmed
    up: tests that need only text turns never load Whisper.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("port", 0)
        super().__init__(LocalServer(**kwargs), name="reliability-server")

    def start(self) -> ThreadedServer:  # type: ignore[override]
        super().start(warm_up=False)
        return self

    def sessions(self) -> int:
        """How many sessions the server holds right now (read on its own loop)."""

        async def count() -> int:
            return len(self.server.sessions)

        return int(self.call(count()))

    def stop(self) -> None:  # type: ignore[override]
        """Stop the server and its loop, leaving no task behind.

        ``LocalServer.stop`` can wait forever for a client that stopped reading (see
        test_reliability_server.py::test_stop_returns_while_a_client_has_stopped_reading); after
        ``STOP_GRACE_S`` the remaining sessions' sockets are aborted so the tests end anyway.
        """
        if not self.running:
            return

        async def shutdown() -> None:
            stopping = asyncio.ensure_future(self.server.stop())
            done, _ = await asyncio.wait({stopping}, timeout=STOP_GRACE_S)
            if not done:
                for conn in list(self.server.sessions):
                    conn.peer.abort()
                await asyncio.wait({stopping}, timeout=STOP_GRACE_S)
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(shutdown(), timeout=4 * STOP_GRACE_S)
        super().stop()

    @property
    def url(self) -> str:
        """The session URL with a model (``ws://127.0.0.1:PORT/v1/realtime?model=...``)."""
        return f"{self.server.url}?model=gpt-realtime"

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """``python -m realtime_nb.server --port PORT --light [args]`` in its own process.

    The constructor returns once the server printed its URL (:attr:`url`, :attr:`port`);
    stdout and stderr are merged and read by a thread into :attr:`output` (:meth:`stop` and
    :meth:`kill` return all of it).
    """

    def __init__(self, port: int = 0, *args: str, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "realtime_nb.server", "--port", str(port), "--light", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self._url_seen = threading.Event()
        self._reader = threading.Thread(target=self._read, name="server-output", daemon=True)
        self._reader.start()
        if not self._url_seen.wait(timeout) or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError(f"the local server process did not start: {self.output}")
        found = re.search(r"wss?://127\.0\.0\.1:(\d+)/v1/realtime\?\S*",
                          "".join(self.output))
        assert found is not None, self.output
        self.url = found.group(0)
        self.port = int(found.group(1))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if line.startswith(("realtime_nb local server: ws://",
                                "realtime_nb local server: wss://")):
                self._url_seen.set()

    def _finish(self, sig: int) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(15)
        self._reader.join(15)
        return "".join(self.output)

    def kill(self) -> str:
        """SIGKILL: no close frame, no cleanup — the OS resets the connections. Returns the
        whole output."""
        return self._finish(signal.SIGKILL)

    def stop(self) -> str:
        """SIGTERM, as a service manager would. Returns the whole output."""
        return self._finish(signal.SIGTERM)


class RawClient:
    """One synchronous WebSocket session with the local server, at the wire level.

    ``beta=True`` opens the retired beta dialect (``OpenAI-Beta: realtime=v1``). The first
    server event(s) (``session.created``, and ``conversation.created`` for beta) are read and
    kept in :attr:`created`.
    """

    def __init__(self, url: str, *, beta: bool = False, key: str = "sk-local",
                 timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        if beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        self.timeout = timeout
        self.ws: ClientConnection = connect(url, additional_headers=headers, max_size=None,
                                            open_timeout=timeout, close_timeout=2)
        self.beta = beta
        self.created = [self.recv()]
        if beta:
            self.created.append(self.recv())
        self._probes = 0

    def send(self, frame: str | bytes | dict[str, Any]) -> None:
        """Send a frame: a dict as JSON text, a str as text, bytes as a binary frame."""
        self.ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next server event (raises TimeoutError, or ConnectionClosed if it closed)."""
        data = self.ws.recv(timeout=self.timeout if timeout is None else timeout)
        event = json.loads(data)
        assert isinstance(event, dict), f"the server sent a non-object frame: {data[:200]!r}"
        return event

    def probe(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Send a probe; return the server events that arrived before its refusal."""
        self._probes += 1
        tag = f"probe_{self._probes}"
        self.send({"type": PROBE_TYPE, "event_id": tag})
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {tag}; got {[e.get('type') for e in got]}")
            ev = self.recv(timeout=left)
            err = ev.get("error") if ev.get("type") == "error" else None
            if isinstance(err, dict) and err.get("event_id") == tag:
                assert err.get("code") == "invalid_value" and err.get("param") == "type", ev
                return got
            got.append(ev)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HandlerErrors(logging.Handler):
    """Collects ERROR records of the server's websockets logger ("connection handler failed").

    ``with HandlerErrors() as errors: ...`` then ``errors.records``; the texts include the
    traceback's last line so that a failure names the exception.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        self._logger = logging.getLogger(SERVER_WS_LOGGER)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {exc}"
        self.records.append(text)

    def __enter__(self) -> HandlerErrors:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)


async def until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``cond`` every 10 ms until it is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        await asyncio.sleep(0.01)


def tone_f32(freq: float, seconds: float, rate: int, amp: float = 0.3) -> np.ndarray:
    """A float32 sine (full scale 1.0)."""
    return tone(freq, seconds * 1000, rate, amp).astype(np.float32)


def dominant_hz(pcm16: bytes, rate: int = 24_000) -> float:
    """The frequency of the strongest FFT bin of PCM16 bytes (1 Hz resolution at most)."""
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    n = max(len(x), rate)  # zero-pad to at least one second: bins of 1 Hz
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    return float(np.argmax(spectrum) * rate / n)


def long_webm_opus(minutes: float, freq: float = 440.0, rate: int = 48_000) -> bytes:
    """``minutes`` of a sine as WebM/Opus (what a browser's MediaRecorder writes), built quickly.

    Ten seconds are encoded once; their packets are then muxed again and again with shifted
    timestamps (no re-encoding), so 30 minutes take well under a second to build.
    """
    x = tone_f32(freq, 10.0, rate)[None, :]
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=rate, layout="mono")
        stream.codec_context.bit_rate = 32_000
        for i in range(0, x.shape[1], 960):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i:i + 960]),
                                               format="flt", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    src = av.open(io.BytesIO(buf.getvalue()))
    in_stream = src.streams.audio[0]
    packets = [(bytes(p), p.pts, p.duration) for p in src.demux(in_stream) if p.size]
    span = packets[-1][1] + packets[-1][2]
    repeats = max(1, round(minutes * 6))
    result = io.BytesIO()
    with av.open(result, "w", format="webm") as out:
        out_stream = out.add_stream_from_template(in_stream)
        for k in range(repeats):
            for data, pts, duration in packets:
                packet = av.Packet(data)
                packet.pts = packet.dts = pts + k * span
                packet.duration = duration
                packet.time_base = in_stream.time_base
                packet.stream = out_stream
                out.mux(packet)
    src.close()
    return result.getvalue()


def iter_pcm_chunks(pcm: bytes, ms: float = 100.0, rate: int = 24_000) -> Iterator[bytes]:
    """Split PCM16 bytes into ``ms`` chunks (the last one may be shorter)."""
    step = int(rate * ms / 1000) * 2
    for i in range(0, len(pcm), step):
        yield pcm[i:i + step]


class HealthySession:
    """A Session doing well-formed turns against ``url`` in a background thread, until stopped.

    Each round: a text turn (``say``, text only) whose answer must be the echo responder's
    ``You said: "ping N".``, then 100 ms of tone appended and cleared (manual mode). Failures of
    any kind (exceptions, a wrong answer, ``last_error``, protocol warnings) are kept in
    :attr:`problems`; :attr:`rounds` counts the rounds that went right.
    """

    def __init__(self, url: str, *, max_rounds: int = 1000) -> None:
        self.url = url
        self.max_rounds = max_rounds
        self.rounds = 0
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="healthy-session", daemon=True)

    def start(self) -> HealthySession:
        self._thread.start()
        if not self._started.wait(30):
            raise TimeoutError("the healthy session did not connect within 30 s")
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by stop()
            self.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._started.set()

    async def _run(self) -> None:
        from realtime_nb import Session
        from realtime_nb.client.testing import tone_pcm16

        async with Session(url=self.url) as s:
            await s.update(turn_detection=None, output_modalities=["text"])
            self._started.set()
            while not self._stop.is_set() and self.rounds < self.max_rounds:
                n = self.rounds
                async with asyncio.timeout(30):
                    rs = await s.say(f"ping {n}")
                    if rs.status != "completed" or rs.text != f'You said: "ping {n}".':
                        self.problems.append(f"round {n}: {rs.status} {rs.text!r}")
                    await s.append(tone_pcm16(100))
                    await s.clear(wait=True)
                if s.last_error is not None:
                    self.problems.append(f"round {n}: last_error {s.last_error!r}")
                    s.last_error = None
                self.problems.extend(f"round {n}: {w}" for w in s.warnings)
                s.warnings.clear()
                self.rounds += 1

    def stop(self) -> HealthySession:
        self._stop.set()
        self._thread.join(60)
        if self._thread.is_alive():
            self.problems.append("the healthy session did not stop within 60 s")
        return self
