"""Minting ephemeral client secrets from the kernel (``POST /v1/realtime/client_secrets``).

A browser (a WebRTC call, a page's own WebSocket) must never hold the long-lived API key. The
kernel, which does, asks the server for a short-lived ``ek_…`` secret bound to a session config
and hands only that to the browser. Works against OpenAI and the local server alike: the REST URL
is derived from the Session's WebSocket URL (``wss://host/v1/realtime`` → ``https://host/v1``).

Use :meth:`realtime_nb.Session.create_client_secret`; :func:`create_client_secret` is the same
for a bare :class:`~realtime_nb.client.backend.Backend`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .backend import Backend, Secret
from .errors import RealtimeError

__all__ = ["ClientSecret", "create_client_secret", "rest_base_url"]


@dataclass(frozen=True)
class ClientSecret:
    """An ephemeral secret: ``value`` (a :class:`Secret`: masked in reprs, ``.reveal()`` for
    the one place that must send it), ``expires_at`` (Unix seconds) and the effective
    ``session`` config bound to it, as the server answered."""

    value: Secret = field(repr=False)
    expires_at: int
    session: dict[str, Any]


def rest_base_url(ws_url: str) -> str:
    """The REST base (``http(s)://host:port/v1``) of a Realtime WebSocket URL."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path
    if path.rstrip("/").endswith("/realtime"):
        path = path.rstrip("/")[: -len("/realtime")]
    return urlunsplit((scheme, parts.netloc, path.rstrip("/") or "/v1", "", ""))


async def create_client_secret(backend: Backend, session: Mapping[str, Any] | None = None, *,
                               expires_after_s: int = 600, timeout: float = 30.0
                               ) -> ClientSecret:
    """Mint a client secret on ``backend`` (a started one: its ``url`` must be set).

    ``session`` is the config to bind (``type`` defaults to ``"realtime"``; the backend's model
    is added for realtime sessions unless given). Raises :class:`RealtimeError` with the
    server's code, param and message when it refuses (HTTP 4xx), or ``connect_failed``.
    """
    body: dict[str, Any] = {"expires_after": {"anchor": "created_at",
                                              "seconds": int(expires_after_s)}}
    cfg = dict(session or {})
    cfg.setdefault("type", "realtime")
    if cfg["type"] == "realtime":
        cfg.setdefault("model", backend.model)
    body["session"] = cfg
    url = rest_base_url(backend.url) + "/realtime/client_secrets"
    headers = {"Content-Type": "application/json", **backend.headers()}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")

    def post() -> tuple[int, bytes]:
        context = ssl.create_default_context() if url.startswith("https:") else None
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    try:
        status, raw = await asyncio.to_thread(post)
    except (OSError, urllib.error.URLError) as exc:
        raise RealtimeError(
            "connect_failed", f"Could not create a client secret at {backend.display_url}: "
            f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}", source="connection",
            hint="Is the server running and the URL right?") from None
    try:
        answer = json.loads(raw.decode("utf-8"))
    except ValueError:
        answer = {}
    if status != 200 or not isinstance(answer, dict) or "value" not in answer:
        err = answer.get("error") if isinstance(answer, dict) else None
        err = err if isinstance(err, dict) else {}
        raise RealtimeError(
            err.get("code") or f"http_{status}",
            err.get("message") or f"HTTP {status} from {rest_base_url(backend.display_url)}",
            param=err.get("param"), source="server", fatal=status in (401, 403))
    return ClientSecret(Secret(answer["value"]), int(answer["expires_at"]),
                        answer.get("session") or {})
