"""The local server's perimeter: loopback unless told otherwise, and a required key enforced.

What a user's machine is exposed to: the server must listen only on loopback unless
``allow_remote=True`` (or an explicit ``--host``) says otherwise — checked on the sockets the
kernel really opened, not on the configuration — and, when a key is configured, refuse the
WebSocket upgrade (HTTP 401, before any frame) to anyone who does not present exactly that key,
whichever way it is presented. tests/test_server_sdk.py checks 0.0.0.0 and one wrong key with the
official SDK; this file covers the rest of the perimeter.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from reliability_fixtures import ServerProcess
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime_nb.server import LocalServer

KEY = "sk-test-perimeter-5e8a2c"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.10", "10.1.2.3",
                                  "fe80::1", "example.com", "my-laptop.local"])
def test_the_server_refuses_a_non_loopback_address_unless_allowed(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalServer(host=host)


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            addr_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port or fields[3] != "0A":  # 0A = LISTEN
                continue
            raw = bytes.fromhex(addr_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
            found.append(str(ipaddress.ip_address(raw)))
    return found


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_server_listens_on_loopback_only(host: str) -> None:
    async with LocalServer(host=host, port=0) as srv:
        addresses = _listening_addresses(srv.port)
    assert addresses, "the listening socket was found"
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses


def test_the_command_line_server_listens_on_loopback_by_default() -> None:
    server = ServerProcess(0)
    try:
        addresses = _listening_addresses(server.port)
    finally:
        server.stop()
    assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses


@pytest.fixture
async def keyed() -> Any:
    async with LocalServer(port=0, api_key=KEY) as srv:
        yield srv


async def _status(srv: LocalServer, path: str = "/v1/realtime?model=gpt-realtime",
                  **options: Any) -> int:
    """101 if the upgrade succeeded (and session.created came), else the HTTP status."""
    try:
        ws = await connect(f"ws://127.0.0.1:{srv.port}{path}", open_timeout=10, **options)
    except InvalidStatus as exc:
        body = json.loads(exc.response.body or b"{}") if exc.response.status_code == 401 else {}
        if body:
            assert body["error"]["code"] == "invalid_api_key" and KEY not in json.dumps(body)
        return exc.response.status_code
    try:
        assert json.loads(await ws.recv())["type"] == "session.created"
    finally:
        await ws.close()
    return 101


def _bearer(value: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": value}}


def _subprotocol(key: str) -> dict[str, Any]:
    return {"subprotocols": ["realtime", f"openai-insecure-api-key.{key}"]}


ATTEMPTS: dict[str, tuple[dict[str, Any], str, int]] = {
    "no credentials": ({}, "/v1/realtime?model=gpt-realtime", 401),
    "the right key as a bearer token": (_bearer(f"Bearer {KEY}"), "/v1/realtime", 101),
    "the right key, auth scheme in lower case": (_bearer(f"bearer {KEY}"), "/v1/realtime", 101),
    "the right key as a browser subprotocol": (_subprotocol(KEY), "/v1/realtime", 101),
    "a wrong key": (_bearer("Bearer sk-wrong"), "/v1/realtime", 401),
    "the key with a character more": (_bearer(f"Bearer {KEY}x"), "/v1/realtime", 401),
    "the key with a character less": (_bearer(f"Bearer {KEY[:-1]}"), "/v1/realtime", 401),
    "an empty bearer token": (_bearer("Bearer "), "/v1/realtime", 401),
    "the key without the Bearer scheme": (_bearer(KEY), "/v1/realtime", 401),
    "the key as Basic auth": (_bearer(f"Basic {KEY}"), "/v1/realtime", 401),
    "a wrong key as a subprotocol": (_subprotocol("sk-wrong"), "/v1/realtime", 401),
    "the key in the query string": ({}, f"/v1/realtime?model=gpt-realtime&api_key={KEY}", 401),
    "the right key on another path": (_bearer(f"Bearer {KEY}"), "/v1/other", 404),
}


@pytest.mark.parametrize("name", list(ATTEMPTS))
async def test_a_required_key_is_enforced_at_the_upgrade(keyed: LocalServer, name: str) -> None:
    options, path, expected = ATTEMPTS[name]
    assert await _status(keyed, path, **options) == expected


async def test_a_refused_client_does_not_disturb_an_admitted_one(keyed: LocalServer) -> None:
    url = f"{keyed.url}?model=gpt-realtime"
    async with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        for _ in range(20):
            assert await _status(keyed, **_bearer("Bearer nope")) == 401
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert json.loads(await ws.recv())["type"] == "input_audio_buffer.cleared"


async def test_without_a_configured_key_any_key_is_taken_but_none_is_refused() -> None:
    """The default local server (no key configured) accepts any bearer token, as the README
    says, but still wants one: the service's 401 for none at all."""
    async with LocalServer(port=0) as srv:
        assert await _status(srv, **_bearer("Bearer anything")) == 101
        assert await _status(srv) == 401


async def test_a_jupyter_page_on_loopback_may_connect() -> None:
    """What a fix for the cross-site test below must keep: a page served from loopback (the
    notebook's own origin) can use the local server."""
    async with LocalServer(port=0) as srv:
        for origin in ("http://localhost:8888", "http://127.0.0.1:8888"):
            assert await _status(srv, origin=origin, **_subprotocol("local")) == 101


async def test_a_page_from_another_site_cannot_use_the_local_server() -> None:
    """WebSockets are not subject to CORS: a script on https://evil.example can connect to
    ws://127.0.0.1:PORT with the browser-style subprotocol key. With no key configured (the
    default local backend) it gets a full session — speech synthesis and recognition on the
    user's machine. Browsers always send ``Origin``; non-browser clients (the Session, the SDK)
    send none, so refusing foreign origins costs them nothing."""
    async with LocalServer(port=0) as srv:
        assert await _status(srv, origin="https://evil.example",
                             **_subprotocol("anything")) == 403
