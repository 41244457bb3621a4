"""Benchmark of the local Realtime server: VAD capacity under load, and turn latency.

Everything runs on loopback against real server processes, started the way a user starts them
(``python -m realtime_nb.server --port 0``), and stops by itself.

**VAD capacity.** N clients, each a real WebSocket session with ``server_vad`` on
(``create_response: false``, ``transcription: null``: no response runs), stream a speech/silence
pattern (0.5 s silence, then 1.5 s espeak-ng speech + 1.5 s silence, looped) as 100 ms
``input_audio_buffer.append`` chunks paced to real time (chunk ``k`` leaves at ``t0 + (k + 1) *
100 ms``, when a microphone would have delivered it), with start times spread over one chunk
period. The *lag* of a ``speech_started`` / ``speech_stopped`` event is its arrival time minus the
send time of the chunk that completed the VAD frame deciding it (the onset frame, or the frame
ending at ``audio_end_ms``). Which chunk completes which frame, and which events are due, come from
replaying the same chunks through :class:`realtime_nb.vad.SileroVAD` and
:class:`realtime_nb.vad.Segmenter` in this process, so every server event is also checked against
the expected one (``mismatched`` / ``missing`` counts; a missing event counts as infinite lag).
N ramps up until the p99 lag exceeds 50 ms; the figure is the largest N that stayed within it.

Two servers are measured:

* ``server_vad_capacity_sessions`` — the VAD path in isolation: the server runs in its own process
  with the default engines except for a transcriber that returns an empty transcript at once, so
  speech recognition can never take CPU from the VAD.
* ``server_vad_capacity_sessions_shipped`` — ``python -m realtime_nb.server`` as shipped (Whisper
  tiny.en loaded; with ``transcription: null`` and ``create_response: false`` the server neither
  speculates nor transcribes: a transcript nobody asked for waits until a response needs it).

``server_cpu_ms_per_session_second`` divides the isolated server's CPU time (from /proc) by the
session-seconds it served at its largest passing step — a figure that, unlike lag, hardly depends
on what else the machine runs — and sets it against the in-process cost of the same per-append work
(``SessionCore.handle``; Silero one call per frame; Silero batched with ``process_many``).
Each step also reports the cores used by other processes and how long the server's event-loop
thread waited for a CPU (/proc/PID/schedstat), because on a shared machine that, not the server,
can decide the lag. A step that misses the goal is run once more and the better attempt counts.

The load generators are separate processes (``CLIENT_PROCS`` of them, sessions split evenly) but
share the machine's cores with the server; their pacing slip and CPU use are reported so the
reader can tell a saturated client from a saturated server.

**Turn latency.** One session with the shipped default engines (Whisper tiny.en, the echo
responder, espeak-ng) and the default session (server VAD, 200 ms silence window). A warm-up turn,
then ``TURNS`` (12) spoken phrases streamed in 20 ms chunks paced to real time, each followed by
silence until ``response.done``. Latency = arrival of the first ``response.output_audio.delta``
minus the send time of the chunk holding the last speech sample (wall time, as the client sees
it). Goal: silence window + 400 ms, for the median and for the worst of the turns. The detail
gives the median breakdown (speech_stopped, committed, response.created,
response.output_item.added — i.e. ASR + responder done —, first audio delta) and the 90th
percentile.

Run ``python benchmarks/bench_server.py``; the internal roles ``--clients`` (a load generator) and
``--serve-vad-only`` (the isolated-VAD server) are started by :func:`run` itself.

Why one file of ~900 lines: this file is also the script its load-generator and server processes
run (``main``), and ``bench_turn`` re-targets the same machinery by pointing it at its own file;
keeping workload, processes, load generator and figures together keeps those roles in one
import. Its sections: audio and expected events, processes, load generator, capacity ramp, turn
latency, in-process costs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

if __package__ in (None, ""):  # run as a script (the load-generator / server roles)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _speech as speech
from benchmarks._speech import trim_silence
from realtime_nb.audio import Audio, chunks
from realtime_nb.vad import (
    Segmenter,
    ServerVadSettings,
    SileroVAD,
    SpeechStarted,
    TurnCheck,
    TurnDetectionSettings,
)

RATE = 24_000
CHUNK_MS = 100
LAG_GOAL_MS = 50.0
CAPACITY_GOAL = 100
RAMP = (1, 10, 25, 50, 75, 100, 125, 150, 200)
STREAM_S = 10.0
CLIENT_PROCS = 2
TURNS = 12
TURN_CHUNK_MS = 20
TURN_BUDGET_MS = 400.0
GRACE_S = 0.8  # how long a client keeps listening after its last chunk
CAPACITY_BUDGET_S = 120.0  # the VAD-only ramp stops starting new steps after this
SHIPPED_RAMP = (1, 10, 25, 50, 100)
PHRASES = (
    "turn on the kitchen lights please",
    "what is the weather like tomorrow in Paris",
    "I would like to book a table for two at eight",
    "can you remind me to call my sister",
    "play some quiet music in the living room",
    "how long does it take to drive to the airport",
)
SESSION_UPDATE = {
    "type": "session.update",
    "session": {"type": "realtime", "audio": {"input": {
        "transcription": None,
        "turn_detection": {"type": "server_vad", "create_response": False},
    }}},
}
HEADERS = {"Authorization": "Bearer local-bench"}
_URL_RE = re.compile(r"ws://\S+/v1/realtime")


# ------------------------------------------------------------------------------------- audio
def espeak(text: str) -> np.ndarray:
    """``text`` spoken by Debian espeak-ng as int16 24 kHz samples, leading/trailing silence cut."""
    return trim_silence(speech.espeak(text, RATE).samples)


def capacity_pattern(seconds: float, seed: int = 0) -> Audio:
    """0.5 s silence, then [1.5 s of speech, 1.5 s of silence] looped, over -60 dBFS noise."""
    return speech_over_noise(seconds, [espeak(p) for p in PHRASES[:3]], speech_s=1.5,
                             pause_s=1.5, seed=seed)


def speech_over_noise(seconds: float, phrases: Sequence[np.ndarray], *,
                      speech_s: float | None, pause_s: float, seed: int = 0) -> Audio:
    """``seconds`` of -60 dBFS noise with ``phrases`` added in turn from 0.5 s on, each followed
    by ``pause_s`` of silence; ``speech_s`` cuts each phrase to that slot (and a shorter phrase
    still takes the whole slot), ``None`` keeps whole phrases."""
    rng = np.random.default_rng(seed)
    total = int(seconds * RATE)
    out = rng.normal(0.0, 32.8, total)
    pos, k = int(0.5 * RATE), 0
    slot = None if speech_s is None else int(speech_s * RATE)
    pause = int(pause_s * RATE)
    while pos < total:
        piece = phrases[k % len(phrases)][:slot].astype(np.float64)
        end = min(total, pos + len(piece))
        out[pos:end] += piece[: end - pos]
        pos += (len(piece) if slot is None else slot) + pause
        k += 1
    return Audio(np.clip(np.round(out), -32768, 32767).astype(np.int16), RATE)


@dataclass
class Expected:
    """What the server must say for a chunked recording, from a local replay of the same VAD.

    ``done_by[f]`` is the index of the chunk whose arrival completes VAD frame ``f``;
    ``started`` maps ``audio_start_ms`` → onset frame, ``stopped`` ``audio_end_ms`` → the frame
    that completed the silence window.
    """

    frame_ms: float
    done_by: list[int]
    started: dict[int, int] = field(default_factory=dict)
    stopped: dict[int, int] = field(default_factory=dict)

    def chunk_for(self, etype: str, ms: int) -> int | None:
        """The chunk that completed the frame deciding this event (None: not an expected event)."""
        table = self.started if etype.endswith("speech_started") else self.stopped
        frame = table.get(ms)
        return None if frame is None else self.done_by[frame]


def expected_events(pieces: Sequence[np.ndarray], settings: TurnDetectionSettings, *,
                    decide: Callable[[TurnCheck], float] | None = None) -> Expected:
    """Replay ``pieces`` (the chunks in send order) through Silero + the segmenter, as the server.

    ``decide`` answers semantic_vad's end-of-turn questions (the server's turn model); without
    it the segmenter uses its length-rule fallback.
    """
    stream = SileroVAD().new_stream(RATE)
    segmenter = Segmenter(settings, stream.frame_ms, decisions=decide is not None)
    done_by: list[int] = []
    exp = Expected(stream.frame_ms, done_by)
    for k, piece in enumerate(pieces):
        for p in stream.process(piece):
            frame = len(done_by)
            done_by.append(k)
            for event in segmenter.push(float(p)):
                if isinstance(event, SpeechStarted):
                    exp.started[event.audio_start_ms] = round(event.onset_ms / stream.frame_ms)
                elif isinstance(event, TurnCheck):
                    assert decide is not None
                    segmenter.decide(event, decide(event))
                else:
                    exp.stopped[event.audio_end_ms] = frame
    return exp


# ------------------------------------------------------------------------------ processes
def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0.0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _schedstat_wait(pid: int) -> float:
    """Seconds the process's main thread (the server's event loop) has spent runnable but waiting
    for a CPU (Linux /proc/PID/schedstat), 0.0 when unreadable."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _machine_busy() -> float:
    """Seconds of CPU time the whole machine has spent busy, summed over cores (/proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _readline(stream: IO[str], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    return stream.readline()


class ServerProcess:
    """A local server in its own process; ``url`` once started. Use as a context manager.

    Its stdout and stderr are drained by a thread (the last lines are kept for error messages)
    so a chatty server can never block on a full pipe.
    """

    def __init__(self, vad_only: bool) -> None:
        self.vad_only = vad_only
        self.url = ""
        self.log: deque[str] = deque(maxlen=40)
        self._seen_url = threading.Event()
        cmd = ([sys.executable, __file__, "--serve-vad-only"] if vad_only
               else [sys.executable, "-m", "realtime_nb.server", "--port", "0"])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip())
            match = _URL_RE.search(line)
            if match and not self.url:
                self.url = match.group(0)
                self._seen_url.set()
        self._seen_url.set()  # the process ended

    def __enter__(self) -> ServerProcess:
        if not self._seen_url.wait(60) or not self.url:
            self.__exit__()
            raise RuntimeError("the server did not start: " + " | ".join(self.log))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _serve_vad_only() -> None:
    """Role ``--serve-vad-only``: default engines, but a transcriber that hears nothing at once."""
    from realtime_nb.server import LocalServer
    from realtime_nb.server.engines import Engines, Transcript

    class NothingHeard:
        """Returns an empty transcript immediately: keeps ASR off the VAD measurement."""

        def transcribe(self, audio: Audio, *, language: str | None = None,
                       prompt: str | None = None) -> Transcript:
            return Transcript.empty(language)

    async def serve() -> None:
        server = LocalServer(port=0, engines=Engines(transcriber=NothingHeard()))
        await server.start()
        print(f"realtime_nb local server: {server.url}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


# ------------------------------------------------------------------- load-generator role
async def _open_session(url: str, limit: asyncio.Semaphore) -> ClientConnection:
    async with limit:
        ws = await connect(url, additional_headers=HEADERS, compression=None,
                           ping_interval=None, max_size=None, open_timeout=60)
        created = json.loads(await ws.recv())
        if created.get("type") != "session.created":
            raise RuntimeError(f"expected session.created, got {created.get('type')}")
        await ws.send(json.dumps(SESSION_UPDATE))
        while True:
            ev = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if ev["type"] == "session.updated":
                return ws
            if ev["type"] == "error":
                raise RuntimeError(f"session.update refused: {ev['error']}")


async def _stream_session(ws: ClientConnection, messages: list[str], start: float,
                          chunk_s: float) -> dict[str, Any]:
    sent: list[float] = []
    slip: list[float] = []
    events: list[tuple[str, int, float]] = []
    errors: list[str] = []

    async def receive() -> None:
        async for raw in ws:
            now = time.monotonic()
            if "input_audio_buffer.speech_" in raw or '"error"' in raw:
                ev = json.loads(raw)
                if ev["type"] == "error":
                    errors.append(str(ev["error"].get("message")))
                elif ev["type"].startswith("input_audio_buffer.speech_"):
                    ms = ev.get("audio_start_ms", ev.get("audio_end_ms"))
                    events.append((ev["type"], int(ms), now))

    receiver = asyncio.ensure_future(receive())
    try:
        for k, message in enumerate(messages):
            target = start + (k + 1) * chunk_s
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            await ws.send(message)
            sent.append(now)
            slip.append(now - target)
        await asyncio.sleep(GRACE_S)
    finally:
        receiver.cancel()
        with contextlib.suppress(BaseException):
            await receiver
        await ws.close()
    return {"sent": sent, "slip": slip, "events": events, "errors": errors}


async def _clients(config: dict[str, Any], pcm: bytes) -> None:
    """Role ``--clients``: open ``sessions`` sessions, report ready, stream on command, report."""
    audio = Audio.from_pcm16(pcm, RATE)
    messages = [json.dumps(c.to_event()) for c in chunks(audio, chunk_ms=config["chunk_ms"])]
    limit = asyncio.Semaphore(16)
    opened = await asyncio.gather(
        *(_open_session(config["url"], limit) for _ in range(config["sessions"])),
        return_exceptions=True)
    sockets = [ws for ws in opened if isinstance(ws, ClientConnection)]
    failures = [repr(e) for e in opened if not isinstance(e, ClientConnection)]
    print(json.dumps({"ready": len(sockets), "failures": failures[:3]}), flush=True)
    loop = asyncio.get_running_loop()
    start_at = json.loads(await loop.run_in_executor(None, sys.stdin.readline))["start_at"]
    chunk_s = config["chunk_ms"] / 1000
    offsets = config["offsets"]
    cpu0 = time.process_time()
    results = await asyncio.gather(*(
        _stream_session(ws, messages, start_at + offsets[i], chunk_s)
        for i, ws in enumerate(sockets)), return_exceptions=True)
    out = [r if isinstance(r, dict) else {"crash": repr(r)} for r in results]
    print(json.dumps({"sessions": out, "failures": failures,
                      "stream_cpu_s": time.process_time() - cpu0}), flush=True)


# ------------------------------------------------------------------------ one ramp step
@dataclass
class Step:
    """The outcome of running ``sessions`` concurrent sessions for one ramp step."""

    sessions: int
    lags_ms: list[float]
    missing: int
    mismatched: int
    failures: int
    slip_p99_ms: float
    server_cpu: float  # cores used on average during the step
    client_cpu: float
    machine_cpu: float  # cores busy machine-wide (server + clients + everything else)
    server_wait_ms: float  # per second: the event-loop thread runnable but not running
    errors: list[str]
    other_attempt: Step | None = None  # the worse of two attempts, when the step was retried

    @property
    def p50(self) -> float:
        return _pct(self.lags_ms, 50)

    @property
    def p99(self) -> float:
        return _pct(self.lags_ms, 99)

    @property
    def ok(self) -> bool:
        return (self.failures == 0 and self.mismatched == 0 and bool(self.lags_ms)
                and self.p99 <= LAG_GOAL_MS)

    def row(self) -> str:
        extra = "".join(f", {n} {k}" for k, n in (("missing", self.missing),
                        ("mismatched", self.mismatched), ("failed to connect", self.failures))
                        if n)
        return (f"N={self.sessions}: p50 {self.p50:.1f} / p99 {self.p99:.1f} ms over "
                f"{len(self.lags_ms)} events{extra}; CPU cores: server {self.server_cpu:.2f}, "
                f"clients {self.client_cpu:.2f}, other processes {self.others_cpu:.2f}; server "
                f"loop waited {self.server_wait_ms:.0f} ms/s for a CPU; client send slip p99 "
                f"{self.slip_p99_ms:.1f} ms"
                + (f" (other attempt: p99 {self.other_attempt.p99:.1f} ms, other processes "
                   f"{self.other_attempt.others_cpu:.2f} cores)" if self.other_attempt else ""))

    @property
    def others_cpu(self) -> float:
        """Cores used by processes other than the server and the load generators."""
        return max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu)


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("inf")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q, method="higher"))


def _lags(result: dict[str, Any], exp: Expected) -> tuple[list[float], int, int]:
    """Lags (ms) of one session's events; plus counts of missing and unexpected events."""
    sent = result["sent"]
    lags: list[float] = []
    mismatched = 0
    got: set[tuple[str, int]] = set()
    for etype, ms, t in result["events"]:
        k = exp.chunk_for(etype, ms)
        if k is None or k >= len(sent):
            mismatched += 1
            continue
        got.add((etype.rsplit("_", 1)[1], ms))
        lags.append((t - sent[k]) * 1000)
    due = [("started", ms) for ms, f in exp.started.items() if exp.done_by[f] < len(sent)]
    due += [("stopped", ms) for ms, f in exp.stopped.items() if exp.done_by[f] < len(sent)]
    missing = sum(1 for key in due if key not in got)
    lags.extend([float("inf")] * missing)
    return lags, missing, mismatched


@dataclass
class Workload:
    """What every capacity session streams: the pattern (saved as raw PCM16 for the load
    generators) and the events the server must answer it with."""

    pattern_path: Path
    expected: Expected
    stream_s: float


def prepare_workload(directory: Path, stream_s: float = STREAM_S) -> Workload:
    """Build the capacity pattern, save it under ``directory`` and replay it locally."""
    pattern = capacity_pattern(stream_s)
    pieces = [np.frombuffer(c.data, dtype="<i2") for c in chunks(pattern, chunk_ms=CHUNK_MS)]
    path = Path(directory) / "pattern.pcm"
    path.write_bytes(pattern.to_pcm16())
    return Workload(path, expected_events(pieces, ServerVadSettings()), stream_s)


def run_step(url: str, server_pid: int, sessions: int, work: Workload,
             procs: int = CLIENT_PROCS) -> Step:
    """Run one ramp step: ``sessions`` sessions split over ``procs`` load-generator processes."""
    pattern_path, exp, stream_s = work.pattern_path, work.expected, work.stream_s
    n_procs = max(1, min(procs, sessions))
    split = [sessions // n_procs + (1 if i < sessions % n_procs else 0) for i in range(n_procs)]
    workers: list[subprocess.Popen[str]] = []
    first = 0
    try:
        for n in split:
            offsets = [((first + i) / sessions) * CHUNK_MS / 1000 for i in range(n)]
            first += n
            w = subprocess.Popen([sys.executable, __file__, "--clients"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            assert w.stdin is not None
            w.stdin.write(json.dumps({"url": url, "sessions": n, "pattern": str(pattern_path),
                                      "chunk_ms": CHUNK_MS, "offsets": offsets}) + "\n")
            w.stdin.flush()
            workers.append(w)
        for w in workers:  # every session is open and configured before the clock starts
            assert w.stdout is not None
            json.loads(_readline(w.stdout, 120))
        start_at = time.monotonic() + 0.5
        cpu0, wait0, busy0 = (_cpu_seconds(server_pid), _schedstat_wait(server_pid),
                              _machine_busy())
        for w in workers:
            assert w.stdin is not None
            w.stdin.write(json.dumps({"start_at": start_at}) + "\n")
            w.stdin.flush()
        results: list[dict[str, Any]] = []
        for w in workers:
            assert w.stdout is not None
            results.append(json.loads(_readline(w.stdout, stream_s + 60)))
        elapsed = time.monotonic() - start_at
        server_cpu = (_cpu_seconds(server_pid) - cpu0) / elapsed
        server_wait = (_schedstat_wait(server_pid) - wait0) / elapsed
        machine_cpu = (_machine_busy() - busy0) / elapsed
        client_cpu = sum(r["stream_cpu_s"] for r in results) / elapsed
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            w.wait()
            for pipe in (w.stdin, w.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
    lags: list[float] = []
    missing = mismatched = failures = 0
    errors: list[str] = []
    slips: list[float] = []
    for res in results:
        failures += len(res["failures"])
        errors += res["failures"]
        for sess in res["sessions"]:
            if "crash" in sess:
                failures += 1
                errors.append(sess["crash"])
                continue
            got, miss, bad = _lags(sess, exp)
            lags += got
            missing += miss
            mismatched += bad
            slips += [s * 1000 for s in sess["slip"]]
            errors += sess["errors"]
    return Step(sessions, lags, missing, mismatched, failures, _pct(slips, 99), server_cpu,
                client_cpu, machine_cpu, server_wait * 1000, errors[:3])


def ramp(vad_only: bool, steps: Sequence[int], work: Workload, budget_s: float,
         retry: bool = True) -> list[Step]:
    """Start a server and ramp N through ``steps`` until a step misses the goal (twice, with
    ``retry``) or ``budget_s`` has passed."""
    done: list[Step] = []
    t0 = time.monotonic()
    with ServerProcess(vad_only) as server:
        for n in steps:
            if done and time.monotonic() - t0 > budget_s:
                break
            step = run_step(server.url, server.pid, n, work)
            if not step.ok and retry:
                # The machine is shared: one burst of another process can starve the server for
                # a moment. Run a missed step once more; the better attempt counts (both shown).
                again = run_step(server.url, server.pid, n, work)
                better, worse = (again, step) if again.p99 < step.p99 else (step, again)
                better.other_attempt = worse
                step = better
            done.append(step)
            print("  " + ("vad-only " if vad_only else "shipped ") + step.row(),
                  file=sys.stderr, flush=True)
            if not step.ok:
                break
    return done


def capacity_figure(name: str, steps: list[Step], what: str) -> dict[str, Any]:
    passed = [s.sessions for s in steps if s.ok]
    # capacity = the largest N of the unbroken run of passing steps from the start
    capacity = 0
    for s in steps:
        if not s.ok:
            break
        capacity = s.sessions
    ref = steps[0] if steps else None
    table = "; ".join(s.row() for s in steps)
    errs = sorted({e for s in steps for e in s.errors})[:2]
    return {
        "name": name,
        "value": capacity,
        "unit": "concurrent real-time sessions with p99 VAD-event lag <= 50 ms",
        "reference": (f"N=1 in this run: p50 {ref.p50:.1f} ms, p99 {ref.p99:.1f} ms"
                      if ref else "not measured"),
        "goal": f">= {CAPACITY_GOAL}",
        "met": capacity >= CAPACITY_GOAL,
        "detail": (f"{what}. Ramp (stops at the first step over 50 ms): {table}."
                   + (f" Passed: {passed}." if passed else "")
                   + (f" Errors: {errs}." if errs else "")
                   + f" {CLIENT_PROCS} load-generator processes share the {os.cpu_count()} cores "
                     f"with the server; load average at the end "
                     f"{os.getloadavg()[0]:.1f}."),
    }


# --------------------------------------------------------------------------- turn latency
@dataclass
class Turn:
    """Timestamps (monotonic s) of one measured turn."""

    speech_end: float = 0.0
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)  # reply audio (with keep_audio)

    def reply_audio(self) -> np.ndarray:
        """The turn's reply audio deltas joined, int16 24 kHz (``keep_audio=True`` only)."""
        return np.frombuffer(b"".join(self.audio), dtype="<i2")

    def latency(self) -> dict[str, float] | None:
        """Milliseconds from speech end to each milestone of the response to this turn."""
        stops = [t for name, t, _ in self.events if name == "input_audio_buffer.speech_stopped"]
        if not stops:
            return None
        t_stop = stops[-1]
        created = [(t, ev["response"]["id"]) for name, t, ev in self.events
                   if name == "response.created" and t >= t_stop]
        if not created:
            return None
        t_created, rid = created[0]

        def first(name: str, after: float) -> float | None:
            for n, t, ev in self.events:
                if n == name and t >= after and ev.get("response_id", rid) == rid:
                    return t
            return None

        marks = {
            "speech_stopped": t_stop,
            "committed": first("input_audio_buffer.committed", t_stop),
            "response.created": t_created,
            "output_item.added": first("response.output_item.added", t_created),
            "first_audio_delta": first("response.output_audio.delta", t_created),
        }
        if any(v is None for v in marks.values()):
            return None
        return {k: (v - self.speech_end) * 1000 for k, v in marks.items() if v is not None}


async def measure_turns(url: str, phrases: Sequence[np.ndarray], chunk_ms: int = TURN_CHUNK_MS,
                        timeout_s: float = 60.0, keep_audio: bool = False
                        ) -> tuple[list[Turn], int]:
    """Speak each phrase (after 0.6 s of silence) into one session, real-time paced, waiting
    in silence for each ``response.done``. Returns the turns and the session's silence window
    (with ``keep_audio`` each turn also keeps its reply audio)."""
    chunk_n = RATE * chunk_ms // 1000
    silence = np.zeros(chunk_n, dtype=np.int16)
    turns: list[Turn] = []
    async with connect(url, additional_headers=HEADERS, compression=None, ping_interval=None,
                       max_size=None) as ws:
        created = json.loads(await ws.recv())
        window = int(created["session"]["audio"]["input"]["turn_detection"]
                     ["silence_duration_ms"])

        async def receive() -> None:
            async for raw in ws:
                now = time.monotonic()
                ev = json.loads(raw)
                if turns:
                    turns[-1].events.append((ev["type"], now, _light(ev)))
                    if keep_audio and ev["type"] == "response.output_audio.delta":
                        turns[-1].audio.append(base64.b64decode(ev["delta"]))

        receiver = asyncio.ensure_future(receive())
        try:
            t_next = time.monotonic()
            for phrase in phrases:
                turn = Turn()
                turns.append(turn)
                lead = [silence] * (600 // chunk_ms)
                pad = (-len(phrase)) % chunk_n
                body = np.concatenate([phrase, np.zeros(pad, dtype=np.int16)])
                speech = list(body.reshape(-1, chunk_n))
                last_speech_chunk = len(lead) + len(speech) - 1
                k = 0
                deadline = time.monotonic() + timeout_s
                while True:
                    piece = (lead + speech)[k] if k <= last_speech_chunk else silence
                    t_next += chunk_ms / 1000
                    delay = t_next - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    now = time.monotonic()
                    await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                              "audio": base64.b64encode(piece.tobytes())
                                              .decode("ascii")}))
                    if k == last_speech_chunk:
                        turn.speech_end = now
                    k += 1
                    if k > last_speech_chunk and (now > deadline or any(
                            n == "response.done" for n, _, _ in turn.events)):
                        break
        finally:
            receiver.cancel()
            with contextlib.suppress(BaseException):
                await receiver
    return turns, window


def _light(ev: dict[str, Any]) -> dict[str, Any]:
    """The parts of a server event the turn analysis reads (drops audio payloads)."""
    out: dict[str, Any] = {"response_id": ev["response_id"]} if "response_id" in ev else {}
    if "response" in ev:
        out["response"] = {"id": ev["response"]["id"]}
    return out


def turn_latency_figures(turns: int) -> list[dict[str, Any]]:
    """Warm-up turn + ``turns`` measured turns against the shipped server."""
    phrases = [espeak(PHRASES[(i + 1) % len(PHRASES)]) for i in range(turns + 1)]
    with ServerProcess(vad_only=False) as server:
        t0, busy0, cpu0, own0 = (time.monotonic(), _machine_busy(), _cpu_seconds(server.pid),
                                 time.process_time())
        measured, window = asyncio.run(measure_turns(server.url, phrases))
        elapsed = time.monotonic() - t0
        server_cores = (_cpu_seconds(server.pid) - cpu0) / elapsed
        others = ((_machine_busy() - busy0) / elapsed - server_cores
                  - (time.process_time() - own0) / elapsed)
    rows = [t.latency() for t in measured[1:]]
    good = [r for r in rows if r is not None]
    budget = window + TURN_BUDGET_MS
    if not good:
        return [{"name": "turn_latency_median_ms", "value": float("inf"), "unit": "ms",
                 "reference": f"silence window {window} ms", "goal": f"<= {budget:.0f}",
                 "met": False, "detail": "no turn produced a response"}]
    lat = [r["first_audio_delta"] for r in good]
    p90 = float(np.percentile(lat, 90))
    median = {k: statistics.median(r[k] for r in good) for k in good[0]}
    breakdown = ", ".join(f"{k} {v:.0f}" for k, v in median.items())
    asr_ms = median["output_item.added"] - median["response.created"]
    tts_ms = median["first_audio_delta"] - median["output_item.added"]
    detail = (f"{len(good)}/{len(rows)} turns answered (after a warm-up turn); each: "
              + ", ".join(f"{v:.0f}" for v in lat)
              + f" ms (90th percentile {p90:.0f} ms). Median ms after speech end: {breakdown}. "
              "Wait for the transcript + responder = output_item.added - response.created "
              f"({asr_ms:.0f} ms; the server starts transcribing at the first silent frame, so "
              "most of the ASR time is hidden in the silence window); first-sentence TTS = "
              f"first_audio_delta - output_item.added ({tts_ms:.0f} ms). "
              f"{TURN_CHUNK_MS} ms chunks; speech end = send time of the chunk holding the last "
              "speech sample; Whisper tiny.en + echo responder + espeak-ng, default session. "
              f"During the turns the server used {server_cores:.2f} cores and other processes "
              f"{max(0.0, others):.2f} of the {os.cpu_count()}.")
    return [
        {"name": "turn_latency_median_ms", "value": round(statistics.median(lat), 1),
         "unit": "ms (speech end -> first response.output_audio.delta)",
         "reference": f"silence window {window} ms (session default)",
         "goal": f"<= {budget:.0f}", "met": statistics.median(lat) <= budget, "detail": detail},
        {"name": "turn_latency_max_ms", "value": round(max(lat), 1),
         "unit": "ms (speech end -> first response.output_audio.delta)",
         "reference": f"silence window {window} ms (session default)",
         "goal": f"<= {budget:.0f}", "met": max(lat) <= budget,
         "detail": f"worst of {len(lat)} turns; see turn_latency_median_ms"},
    ]


# ------------------------------------------------------------------- CPU per session
def inprocess_costs(work: Workload, streams: int = 50, n_chunks: int = 30) -> dict[str, float]:
    """CPU ms per session-second, in this process, of the server's per-append work on the same
    chunks: Silero one call per stream per frame (what each session's ``SileroStream.process``
    does), Silero batched over ``streams`` streams (``process_many``), and the whole
    ``SessionCore.handle`` path (JSON parse, base64, buffer, VAD, segmenter)."""
    from realtime_nb.protocol import SessionCore

    pcm = work.pattern_path.read_bytes()
    audio = Audio.from_pcm16(pcm, RATE)
    pieces = list(chunks(audio, chunk_ms=CHUNK_MS))[:n_chunks]
    arrays = [np.frombuffer(c.data, dtype="<i2") for c in pieces]
    messages = [json.dumps(c.to_event()) for c in pieces]
    session_s = streams * len(pieces) * CHUNK_MS / 1000
    vad = SileroVAD()

    def cpu_ms(fn: Any) -> float:
        t0 = time.process_time()
        fn()
        return (time.process_time() - t0) * 1000 / session_s

    single = [vad.new_stream(RATE) for _ in range(streams)]
    batch = [vad.new_stream(RATE) for _ in range(streams)]
    cores = [SessionCore(vad_model=vad, make_segmenter=lambda td, ms: Segmenter(
        ServerVadSettings(), ms)) for _ in range(streams)]
    for core in cores:
        core.handle(SESSION_UPDATE)
        core.drain()

    def run_single() -> None:
        for x in arrays:
            for st in single:
                st.process(x)

    def run_batched() -> None:
        for x in arrays:
            vad.process_many([(st, x) for st in batch])

    def run_core() -> None:
        for m in messages:
            for core in cores:
                core.handle(json.loads(m))
                core.drain()
                core.take_jobs()

    return {"single": cpu_ms(run_single), "batched": cpu_ms(run_batched),
            "core": cpu_ms(run_core)}


def cpu_per_session_figure(steps: list[Step], work: Workload,
                           streams: int = 50) -> dict[str, Any]:
    """Server CPU per session-second under load (at the largest passing step), against the
    in-process cost of its parts (:func:`inprocess_costs` over ``streams`` streams)."""
    passed = [s for s in steps if s.ok]
    step = max(passed or steps, key=lambda s: s.sessions)
    value = step.server_cpu * 1000 / step.sessions
    parts = inprocess_costs(work, streams)
    return {
        "name": "server_cpu_ms_per_session_second",
        "value": round(value, 2),
        "unit": "ms of server CPU per second of one streaming session (server_vad)",
        "reference": (f"in this process, same chunks: SessionCore.handle {parts['core']:.2f} ms, "
                      f"of which Silero one call per frame {parts['single']:.2f} ms; Silero "
                      f"batched over {streams} streams {parts['batched']:.2f} ms"),
        "goal": "<= 10 (100 sessions within one core)",
        "met": value <= 10,
        "detail": (f"measured at N={step.sessions} ({step.server_cpu:.2f} cores). The server "
                   "runs VAD inline on its single event-loop thread, one onnxruntime call per "
                   "32 ms frame per session; the part of this figure above SessionCore.handle "
                   "is websockets + asyncio per-message overhead. 1000 / value = sessions one "
                   f"fully busy core could carry ({1000 / value:.0f})."),
    }


# ---------------------------------------------------------------------------------- run
def run(ramp_steps: Sequence[int] = RAMP, shipped_steps: Sequence[int] = SHIPPED_RAMP,
        stream_s: float = STREAM_S, turns: int = TURNS,
        capacity_budget_s: float = CAPACITY_BUDGET_S) -> list[dict[str, Any]]:
    """Measure turn latency, then VAD capacity of the isolated-VAD and the shipped server.

    The defaults take about 3-4 minutes; the arguments exist so a smoke test can run the same
    code on a tiny size. Empty ``shipped_steps`` skips the shipped-server ramp; ``turns=0``
    skips turn latency.
    """
    figures: list[dict[str, Any]] = []
    if turns > 0:
        figures += turn_latency_figures(turns)
    with tempfile.TemporaryDirectory() as tmp:
        work = prepare_workload(Path(tmp), stream_s)
        exp = work.expected
        steps = ramp(True, ramp_steps, work, capacity_budget_s)
        figures.append(capacity_figure(
            "server_vad_capacity_sessions", steps,
            "Server in its own process with the default engines but a transcriber that returns "
            f"nothing at once; {stream_s:.0f} s per step of 100 ms appends, "
            f"{len(exp.started)} speech_started + {len(exp.stopped)} speech_stopped expected per "
            "session"))
        if steps:
            figures.append(cpu_per_session_figure(steps, work))
        if shipped_steps:
            shipped = ramp(False, shipped_steps, work, capacity_budget_s)
            figures.append(capacity_figure(
                "server_vad_capacity_sessions_shipped", shipped,
                "python -m realtime_nb.server as shipped (Whisper tiny.en loaded; turns whose "
                "transcript nobody asked for are not transcribed)"))
    return figures


def main(argv: list[str] | None = None, *,
         figures: Callable[[], list[dict[str, Any]]] = run,
         client_config: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Print ``figures()`` as JSON lines, or play a role this file was started for.

    ``--clients`` (a load generator: its config on stdin; ``client_config`` may adjust it and
    this module's settings first) and ``--serve-vad-only`` are started by ``run_step`` itself.
    ``bench_turn`` reuses this with its own figures and client settings.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-vad-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients:
        config = json.loads(sys.stdin.readline())
        if client_config is not None:
            client_config(config)
        asyncio.run(_clients(config, Path(config["pattern"]).read_bytes()))
        return 0
    if args.serve_vad_only:
        _serve_vad_only()
        return 0
    for fig in figures():
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
