"""The local server over TLS: a self-signed loopback certificate clients can trust, ``wss://``
URLs, and the official Python SDK holding a conversation over it with verification on.

The Node SDK always dials ``wss://``; these tests pin the server side it needs (its own test drives
the Node SDK itself).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import ssl
import stat
import time

import pytest
import websockets
from cryptography import x509
from openai import AsyncOpenAI
from reliability_fixtures import ServerProcess

from realtime_nb.client import Session
from realtime_nb.server import LocalServer
from realtime_nb.server.tls import self_signed_cert, server_ssl_context


def test_self_signed_cert_names_only_loopback_and_keeps_its_key_private(tmp_path):
    cert_path, key_path = self_signed_cert(tmp_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert b"PRIVATE KEY" not in cert_path.read_bytes()


def test_self_signed_cert_is_made_once_and_reused(tmp_path):
    first = self_signed_cert(tmp_path)
    pem = first[0].read_bytes()
    second = self_signed_cert(tmp_path)
    assert second == first
    assert second[0].read_bytes() == pem


def test_self_signed_cert_replaces_a_damaged_file(tmp_path):
    cert_path, _ = self_signed_cert(tmp_path)
    cert_path.write_text("not a certificate")
    again, _ = self_signed_cert(tmp_path)
    x509.load_pem_x509_certificate(again.read_bytes())  # a real certificate again


def test_a_missing_certificate_is_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.pem"):
        server_ssl_context(tmp_path / "nope.pem")
    with pytest.raises(ValueError, match="ssl_keyfile needs ssl_certfile"):
        LocalServer(ssl_keyfile=tmp_path / "key.pem")


@pytest.fixture
async def tls_server(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    async with LocalServer(ssl_certfile=cert, ssl_keyfile=key) as srv:
        srv.cafile = cert  # type: ignore[attr-defined]
        yield srv


def _trusting(cafile) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


async def test_tls_server_urls_are_secure(tls_server):
    port = tls_server.port
    assert tls_server.tls
    assert tls_server.url == f"wss://127.0.0.1:{port}/v1/realtime"
    assert tls_server.base_url == f"wss://127.0.0.1:{port}/v1"
    assert tls_server.http_base_url == f"https://127.0.0.1:{port}/v1"


async def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_server):
    with pytest.raises(ssl.SSLCertVerificationError):
        async with websockets.connect(tls_server.url + "?model=gpt-realtime",
                                      additional_headers={"Authorization": "Bearer x"},
                                      ssl=ssl.create_default_context()):
            pass


async def test_plain_ws_to_a_tls_server_gets_no_session(tls_server):
    with pytest.raises((websockets.exceptions.InvalidMessage, OSError, EOFError)):
        async with websockets.connect(tls_server.url.replace("wss://", "ws://"),
                                      open_timeout=5):
            pass


async def test_official_sdk_holds_a_text_turn_over_verified_tls(tls_server):
    client = AsyncOpenAI(api_key="sk-local", base_url=tls_server.http_base_url,
                         websocket_base_url=tls_server.base_url)
    async with client.realtime.connect(
            model="gpt-realtime",
            websocket_connection_options={"ssl": _trusting(tls_server.cafile)}) as conn:
        created = json.loads(await conn.recv_bytes())
        assert created["type"] == "session.created"
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await conn.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "hello over tls"}]})
        await conn.response.create()
        seen = []
        while not seen or seen[-1]["type"] != "response.done":
            seen.append(json.loads(await asyncio.wait_for(conn.recv_bytes(), 30)))
        done = seen[-1]["response"]
        assert done["status"] == "completed"
        text = "".join(c.get("text", "") for o in done["output"] for c in o.get("content", []))
        assert "hello over tls" in text.lower()


async def test_session_connects_over_tls_when_the_certificate_is_trusted(tls_server,
                                                                       monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.cafile))
    async with Session(url=tls_server.url + "?model=gpt-realtime", api_key="sk-local") as s:
        assert s.state == "connected"
        reply = await s.say("secure hello", timeout=60)
        assert "secure hello" in reply.text.lower()


def test_command_line_self_signed_serves_wss_and_prints_how_to_trust_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the server process inherits it
    proc = ServerProcess(0, "--self-signed")
    try:
        deadline = time.monotonic() + 30  # the lines after the URL may still be on their way
        while "NODE_EXTRA_CA_CERTS" not in "".join(proc.output) and time.monotonic() < deadline:
            time.sleep(0.05)
        out = "".join(proc.output)
        cert = tmp_path / "realtime_nb" / "tls" / "localhost-cert.pem"
        assert proc.url.startswith("wss://127.0.0.1:")
        assert f"NODE_EXTRA_CA_CERTS={cert}" in out
        assert f"https://127.0.0.1:{proc.port}/v1" in out

        async def hello() -> str:
            async with websockets.connect(proc.url, ssl=_trusting(cert),
                                          additional_headers={"Authorization": "Bearer x"}
                                          ) as ws:
                return json.loads(await ws.recv())["type"]

        assert asyncio.run(hello()) == "session.created"
    finally:
        proc.stop()


def test_command_line_refuses_a_keyfile_without_a_certificate():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "realtime_nb.server", "--ssl-keyfile", "k.pem"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--ssl-keyfile needs --ssl-certfile" in out.stderr
