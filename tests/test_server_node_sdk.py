"""The official Node SDK (npm ``openai``, ``OpenAIRealtimeWS``) talks to the local server over TLS.

``OpenAIRealtimeWS`` always dials ``wss://``, so the server runs with a self-signed loopback
certificate that Node trusts through ``NODE_EXTRA_CA_CERTS`` (verification stays on). The driver
script ``tests/node/realtime_conversation.mjs`` prints one JSON object per server event.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from realtime_nb.server.app import LocalServer
from realtime_nb.server.tls import self_signed_cert

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "realtime_conversation.mjs"


@pytest.fixture(autouse=True)
def _node_installed() -> None:
    """./dev setup installs node and the pinned packages: their absence is a set-up failure,
    not a reason to skip."""
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("node or tests/node/node_modules is missing: run ./dev setup")


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path / "tls")


def run_node(base_url: str, mode: str, *args: str, ca: Path | None) -> list[dict]:
    """Run the driver script (off the event loop) and return its JSON lines."""
    drop = ("NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    proc = subprocess.run(["node", str(SCRIPT), base_url, mode, *args], env=env, cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=90)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"no output; rc={proc.returncode} stderr={proc.stderr[-2000:]}"
    return lines


async def node(base_url: str, mode: str, *args: str, ca: Path | None) -> list[dict]:
    return await asyncio.to_thread(run_node, base_url, mode, *args, ca=ca)


def types(events: list[dict]) -> list[str]:
    return [e.get("type", "") for e in events]


async def test_text_turn_over_tls(cert: tuple[Path, Path]) -> None:
    certfile, keyfile = cert
    async with LocalServer(ssl_certfile=certfile, ssl_keyfile=keyfile) as server:
        assert server.url.startswith("wss://")
        events = await node(server.http_base_url, "text", ca=certfile)
    assert events[-1] == {"done": True}, events
    seen = types(events)
    assert seen[0] == "session.created"
    assert "session.updated" in seen
    text = "".join(e["delta"] for e in events if e.get("type") == "response.output_text.delta")
    assert text.strip(), events
    done = [e for e in events if e.get("type") == "response.done"]
    assert done and done[-1]["status"] == "completed"


async def test_audio_turn_over_tls(cert: tuple[Path, Path], tmp_path: Path) -> None:
    from conftest import espeak_wav

    from realtime_nb.audio import to_pcm16

    certfile, keyfile = cert
    # One sentence, so server VAD makes one turn of it (a full stop's pause may end a turn).
    sentence = "What is the weather like in Paris today"
    speech_pcm = to_pcm16(espeak_wav(tmp_path / "speech.wav", sentence))
    pcm = tmp_path / "speech.pcm"
    silence = b"\x00\x00" * 24000  # 1 s, so server VAD sees the end of speech
    pcm.write_bytes(silence[: len(silence) // 2] + speech_pcm + silence)
    async with LocalServer(ssl_certfile=certfile, ssl_keyfile=keyfile) as server:
        events = await node(server.http_base_url, "audio", str(pcm), ca=certfile)
    assert events[-1] == {"done": True}, events
    seen = types(events)
    for t in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
              "input_audio_buffer.committed", "response.done"):
        assert t in seen, (t, seen)
    assert seen.index("input_audio_buffer.speech_started") < seen.index(
        "input_audio_buffer.speech_stopped")
    transcripts = [e["transcript"] for e in events
                   if e.get("type") == "conversation.item.input_audio_transcription.completed"]
    assert transcripts, seen
    words = transcripts[0].lower()
    assert "weather" in words and "paris" in words, transcripts
    audio = [e for e in events if e.get("type") == "response.output_audio.delta"]
    assert audio and all(e["delta_len"] > 0 for e in audio), seen


async def test_commit_empty_buffer_error(cert: tuple[Path, Path]) -> None:
    certfile, keyfile = cert
    async with LocalServer(ssl_certfile=certfile, ssl_keyfile=keyfile) as server:
        events = await node(server.http_base_url, "error", ca=certfile)
    errors = [e for e in events if e.get("type") == "error"]
    assert errors and errors[0]["code"] == "input_audio_buffer_commit_empty", events


async def test_untrusted_certificate_refused(cert: tuple[Path, Path]) -> None:
    """Without NODE_EXTRA_CA_CERTS, Node refuses the self-signed certificate: TLS is real."""
    certfile, keyfile = cert
    async with LocalServer(ssl_certfile=certfile, ssl_keyfile=keyfile) as server:
        events = await node(server.http_base_url, "text", ca=None)
    assert "fatal" in events[-1], events
    fatal = events[-1]["fatal"]
    assert "SELF_SIGNED" in fatal or "certificate" in fatal.lower(), events
    assert "session.created" not in types(events)
