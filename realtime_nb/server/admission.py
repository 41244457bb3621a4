"""Who may open a session, decided without I/O (as websockets' ``ServerProtocol.accept``).

The server's handshake hook and its REST endpoints ask this module; it reads a request's path
and headers and the server's settings (``api_key``, ``allowed_origins``, the live client
secrets, the live WebRTC calls) and answers with a refusal to send or ``None``. Nothing here
touches a socket, so each rule is testable on plain values:

* **origin** — browsers send ``Origin``: only loopback pages (and listed origins) may connect,
  so a page the user visits cannot open sessions on the local server (cross-site WebSocket
  hijacking); non-browser clients send none;
* **key** — a bearer token or the ``openai-insecure-api-key.`` subprotocol. An ``ek_`` key must
  be a live client secret of this server (whatever ``api_key`` is); any other key must equal
  ``api_key`` when one is set, compared in constant time;
* **what the connection asks for** — beta dialect, session type (``intent``), model and the
  config bound to the client secret used (:func:`connection_info`), and the two refusals the
  service sends as an ``error`` event after the upgrade (:func:`refusal_after_upgrade`).
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers

from realtime_nb.net import is_loopback

__all__ = ["REALTIME_MODELS", "ClientSecret", "ConnInfo", "Refusal", "admit", "bearer_key",
           "connection_info", "error_body", "find_secret", "key_of", "origin_allowed",
           "refusal_after_upgrade", "refuse_key", "session_defaults"]

#: Model names a ``realtime`` session accepts (anything else: ``invalid_model``).
REALTIME_MODELS = re.compile(r"(realtime|gpt-audio)", re.I)


@dataclass
class ClientSecret:
    """An ephemeral ``ek_`` key minted by ``POST /v1/realtime/client_secrets``: it opens sessions
    (bearer token or ``openai-insecure-api-key.`` subprotocol) until ``expires_at`` (Unix
    seconds), each starting with the config ``session`` bound to it."""

    value: str
    expires_at: int
    session: dict[str, Any]


@dataclass
class ConnInfo:
    """What an admitted WebSocket (or WebRTC call) asked for: the beta dialect, the session
    ``kind`` (``"realtime"`` / ``"transcription"``), the ``model`` and ``defaults``, the config
    bound to the client secret used (``None``: the server's defaults)."""

    beta: bool
    kind: str
    model: str
    defaults: dict[str, Any] | None = None


@dataclass
class Refusal:
    """An HTTP answer refusing the upgrade: ``status``, text ``body`` and extra ``headers``."""

    status: int
    body: str
    headers: dict[str, str]


def offered(headers: Headers) -> list[str]:
    """The subprotocols a WebSocket upgrade offers (``Sec-WebSocket-Protocol``, in order)."""
    raw = ",".join(headers.get_all("Sec-WebSocket-Protocol"))
    return [p.strip() for p in raw.split(",") if p.strip()]


def key_of(headers: Headers) -> str | None:
    """The key a WebSocket upgrade presents: ``Authorization: Bearer`` first, else the
    ``openai-insecure-api-key.<key>`` subprotocol (browsers cannot set headers)."""
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for proto in offered(headers):
        if proto.startswith("openai-insecure-api-key."):
            return proto[len("openai-insecure-api-key."):]
    return None


def bearer_key(headers: Mapping[str, str]) -> str | None:
    """The bearer key of a REST request (lower-cased ``headers``, as :mod:`.http` parses them)."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _same_key(given: str, expected: str) -> bool:
    """Constant-time key comparison (a timing side channel must not reveal the key)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def origin_allowed(origin: str, allowed_origins: tuple[str, ...]) -> bool:
    """Whether a browser page from ``origin`` may use the server: loopback pages, the listed
    origins, or any origin when ``"*"`` is listed."""
    if origin in allowed_origins or "*" in allowed_origins:
        return True
    return is_loopback(urlsplit(origin).hostname or "")


def find_secret(secrets: Mapping[str, ClientSecret], key: str) -> ClientSecret | None:
    """The client secret ``key`` names (compared in constant time), expired or not."""
    for value, secret in secrets.items():
        if _same_key(key, value):
            return secret
    return None


def error_body(message: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The body of the service's HTTP errors (401 here, the REST endpoints' 4xx/5xx):
    ``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}


def refuse_key(key: str | None, *, api_key: str | None, secrets: Mapping[str, ClientSecret],
               secrets_ok: bool) -> dict[str, Any] | None:
    """The 401 body for a missing or wrong key, or None when ``key`` may pass. An ``ek_`` key
    must be a live client secret of this server (whatever ``api_key`` is); minting
    (``secrets_ok=False``) needs the long-lived key."""
    message = None
    if key is None:
        message = ("You didn't provide an API key. Provide it in the Authorization header "
                   "(Bearer auth).")
    elif key.startswith("ek_"):
        secret = find_secret(secrets, key)
        if secret is None:
            message = "Incorrect API key provided."
        elif secret.expires_at <= time.time():
            # ours: the service's exact wording for an expired secret is not on record
            message = "The ephemeral client secret has expired."
        elif not secrets_ok:
            message = "An ephemeral client secret cannot create client secrets."
    elif api_key is not None and not _same_key(key, api_key):
        message = "Incorrect API key provided."
    if message is None:
        return None
    return error_body(message, code="invalid_api_key")


def admit(path: str, headers: Headers, *, api_key: str | None,
          secrets: Mapping[str, ClientSecret], allowed_origins: tuple[str, ...],
          calls: Mapping[str, Any]) -> Refusal | None:
    """Decide a WebSocket upgrade of ``path`` (with its query): ``None`` to accept, else the
    HTTP refusal — 403 for a foreign origin, 405 for the REST URLs (they take ``POST``), 404
    for other paths or an unknown ``?call_id=``, 401 (the service's JSON body) for the key."""
    parts = urlsplit(path)
    origin = headers.get("Origin")
    if origin and not origin_allowed(origin, allowed_origins):
        return Refusal(403, f"Origin {origin} may not use this local server (only pages served "
                            "from localhost may; pass allowed_origins=... to LocalServer to "
                            "allow others)\n", {})
    route = parts.path.rstrip("/")
    if route == "/v1/realtime/client_secrets" or route.startswith("/v1/realtime/calls"):
        return Refusal(405, "Use POST on this URL.\n", {"Allow": "POST"})
    if route != "/v1/realtime":
        return Refusal(404, "Not found: use /v1/realtime\n", {})
    refusal = refuse_key(key_of(headers), api_key=api_key, secrets=secrets, secrets_ok=True)
    status = 401
    if refusal is None:
        call_id = parse_qs(parts.query).get("call_id", [None])[0]
        if call_id is not None and call_id not in calls:
            refusal = error_body(f"No active call with id '{call_id}'.", param="call_id",
                                 code="call_not_found")
            status = 404
    if refusal is None:
        return None
    return Refusal(status, json.dumps(refusal) + "\n", {"Content-Type": "application/json"})


def session_defaults(session: dict[str, Any]) -> dict[str, Any]:
    """A bound session config as ``SessionCore(session_defaults=)`` takes it (type and model
    are fixed by the connection)."""
    return {k: v for k, v in session.items() if k not in ("type", "model")}


def connection_info(path: str, headers: Headers,
                    secrets: Mapping[str, ClientSecret]) -> ConnInfo:
    """What an admitted upgrade asks for. The beta dialect: ``OpenAI-Beta: realtime=v1`` or the
    ``openai-beta.realtime-v1`` subprotocol. The session type: ``?intent=``, else the type
    bound to the client secret used, else realtime. The model: ``?model=``, else the secret's
    (realtime only), else ``gpt-realtime``. The secret's config applies only to its own type."""
    query = parse_qs(urlsplit(path).query)
    beta = headers.get("OpenAI-Beta", "").replace(" ", "") == "realtime=v1" or (
        "openai-beta.realtime-v1" in offered(headers))
    intent = query.get("intent", [None])[0]
    key = key_of(headers)
    secret = find_secret(secrets, key) if key and key.startswith("ek_") else None
    bound = secret.session if secret is not None else None
    if intent is None:  # the session type bound to the secret wins, else realtime
        intent = bound.get("type", "realtime") if bound else "realtime"
    kind = "transcription" if intent == "transcription" else "realtime"
    model = query.get("model", [None])[0] or (
        bound.get("model") if bound and kind == "realtime" else None) or "gpt-realtime"
    return ConnInfo(beta=beta, kind=kind, model=model,
                    defaults=session_defaults(bound) if bound and bound.get("type") == kind
                    else None)


def refusal_after_upgrade(info: ConnInfo,
                          beta_policy: str) -> tuple[dict[str, Any], int, str] | None:
    """The service's answer to a connection it upgrades but will not serve: ``(error event,
    close code, close reason)``, or ``None``. The beta dialect when ``beta_policy`` is
    ``"retired"`` (``beta_api_shape_disabled``, close 4000); a realtime session on a model
    that is not a realtime model (``invalid_model``, close 1008)."""
    if info.beta and beta_policy == "retired":
        return ({"type": "error", "event_id": "event_beta_retired", "error": {
            "type": "invalid_request_error", "code": "beta_api_shape_disabled",
            "message": "The Realtime Beta API is no longer supported. Please use "
                       "/v1/realtime for the GA API.", "param": None, "event_id": None}},
                4000, "beta_api_shape_disabled")
    if info.kind == "realtime" and not REALTIME_MODELS.search(info.model):
        return ({"type": "error", "event_id": "event_invalid_model",
                 "error": {"type": "invalid_request_error", "code": "invalid_model",
                           "message": f"Model '{info.model}' is not supported in realtime mode.",
                           "param": None, "event_id": None}},
                1008, "invalid_model")
    return None
