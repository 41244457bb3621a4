"""The REST endpoints the local server answers on its WebSocket port.

``POST /v1/realtime/client_secrets`` mints an ephemeral ``ek_`` key bound to a session config
(:func:`mint_client_secret`, checked by the same validator as ``session.update``);
``POST /v1/realtime/calls`` answers a WebRTC SDP offer and starts the call's session;
``POST /v1/realtime/calls/<id>/hangup`` ends a call. Every answer, errors included, has the
service's shape (``{"error": {"message", "type", "param", "code"}}``). Pages on loopback origins
(and the server's ``allowed_origins``) get CORS headers and their preflights answered, so a
notebook page can post its SDP offer itself.

:mod:`.http` parses the requests (websockets parses only ``GET`` upgrades); who may call is
decided by :mod:`.admission`. :class:`RestApi` is the server's ``http_handler``; it reads and
updates the :class:`~realtime_nb.server.app.LocalServer`'s ``client_secrets``, ``calls`` and
``sessions``.
"""

from __future__ import annotations

import asyncio
import re
import time
from secrets import token_hex
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from realtime_nb.protocol import ProtocolError, SessionCore, validate_client_event
from realtime_nb.server.admission import (
    REALTIME_MODELS,
    ClientSecret,
    ConnInfo,
    bearer_key,
    error_body,
    find_secret,
    origin_allowed,
    refuse_key,
    session_defaults,
)
from realtime_nb.server.connection import Connection
from realtime_nb.server.http import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from realtime_nb.server.app import LocalServer

__all__ = ["RestApi", "check_session", "mint_client_secret"]


class RestApi:
    """Answers the plain HTTP requests that reach ``server``'s port (its ``http_handler``)."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer a plain HTTP request on the WebSocket port (see :mod:`.http`).

        Pages on loopback origins (and ``allowed_origins``) get CORS headers, so a notebook page
        can post its SDP offer here; preflights (``OPTIONS``) are answered for every route."""
        origin = request.headers.get("origin")
        if origin and not origin_allowed(origin, self.server.allowed_origins):
            return _api_error(403, f"Origin {origin} may not use this local server.")
        response = await self._route(request)
        if origin:
            response.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                                     "Access-Control-Expose-Headers": "Location"})
        return response

    async def _route(self, request: HttpRequest) -> HttpResponse:
        path = urlsplit(request.target).path.rstrip("/")
        hangup = re.fullmatch(r"/v1/realtime/calls/([^/]+)/hangup", path)
        if path not in ("/v1/realtime/client_secrets", "/v1/realtime/calls") and not hangup:
            return _api_error(404, f"Invalid URL ({request.method} {path})")
        if request.method == "OPTIONS":
            headers = {"Access-Control-Allow-Methods": "POST",
                       "Access-Control-Allow-Headers": "Authorization, Content-Type",
                       "Access-Control-Max-Age": "600"}
            if request.headers.get("access-control-request-private-network") == "true":
                headers["Access-Control-Allow-Private-Network"] = "true"
            return HttpResponse(204, b"", headers)
        if request.method != "POST":
            return _api_error(405, f"Method {request.method} not allowed on {path}: use POST.",
                              Allow="POST")
        key = bearer_key(request.headers)
        refusal = refuse_key(key, api_key=self.server.api_key, secrets=self.server.client_secrets,
                             secrets_ok=path != "/v1/realtime/client_secrets")
        if refusal is not None:
            return json_response(401, refusal)
        if hangup:
            return await self._hangup(hangup.group(1))
        if path == "/v1/realtime/calls":
            return await self._create_call(request, key)
        try:
            body = request.json()
            secret = mint_client_secret(body, self.server.client_secrets)
        except ValueError as err:
            return _api_error(400, f"We could not parse the JSON body of your request. ({err})")
        except ProtocolError as err:
            return _api_error(400, err.message, err.param, err.code)
        core = SessionCore(kind=secret.session.get("type", "realtime"),
                           model=secret.session.get("model", "gpt-realtime"),
                           session_defaults=session_defaults(secret.session))
        return json_response(200, {"value": secret.value, "expires_at": secret.expires_at,
                                   "session": core.session_object()})

    async def _create_call(self, request: HttpRequest, key: str | None) -> HttpResponse:
        """``POST /v1/realtime/calls``: answer the SDP offer and start the call's session."""
        from . import webrtc

        if not webrtc.webrtc_available():
            return _api_error(501, "WebRTC calls need aiortc on the local server: pip install "
                                   "'realtime_nb[webrtc]'.")
        try:
            sdp, session = webrtc.parse_call_request(request.headers.get("content-type", ""),
                                                     request.body)
        except ValueError as err:
            return _api_error(400, str(err))
        secrets = self.server.client_secrets
        secret = find_secret(secrets, key) if key and key.startswith("ek_") else None
        bound = dict(secret.session) if secret is not None else {"type": "realtime"}
        if session is not None:
            try:
                bound = check_session(session, "session")
            except ProtocolError as err:
                return _api_error(400, err.message, err.param, err.code)
        if bound.get("type") != "realtime":
            return _api_error(400, "WebRTC calls need a realtime session (type 'realtime'); "
                                   "transcription sessions use the WebSocket.", "session.type",
                              "invalid_value")
        try:
            call, answer = await webrtc.answer(sdp, self._call_audio_idle)
        except ValueError as err:
            return _api_error(400, str(err), "sdp", "invalid_offer")
        info = ConnInfo(beta=False, kind="realtime", model=bound.get("model", "gpt-realtime"),
                         defaults=session_defaults(bound))
        conn = Connection(self.server, call, info, transport="webrtc")
        call.conn = conn
        self.server.calls[call.id] = call
        self.server.sessions.add(conn)
        task = asyncio.ensure_future(self._run_call(call, conn))
        self.server._call_tasks.add(task)
        task.add_done_callback(self.server._call_tasks.discard)
        return HttpResponse(201, answer.encode(), {
            "Content-Type": "application/sdp", "Location": f"/v1/realtime/calls/{call.id}"})

    async def _run_call(self, call: Any, conn: Connection) -> None:
        try:
            await conn.run()
        finally:
            self.server.sessions.discard(conn)
            self.server.calls.pop(call.id, None)
            await call.close(conn.core.close_code or 1000, "call ended")

    @staticmethod
    def _call_audio_idle(call: Any, response_id: str) -> None:
        if call.conn is not None:
            call.conn.playout_idle(response_id)

    async def _hangup(self, call_id: str) -> HttpResponse:
        call = self.server.calls.get(call_id)
        if call is None:
            return _api_error(404, f"No active call with id '{call_id}'.", "call_id",
                              "call_not_found")
        call.end()
        return HttpResponse(200, b"", {})


def mint_client_secret(body: Any, secrets: dict[str, ClientSecret]) -> ClientSecret:
    """Validate a ``POST /v1/realtime/client_secrets`` body and store a new secret in ``secrets``.

    ``body`` is ``{"expires_after": {"anchor": "created_at", "seconds": 10..7200},
    "session": {"type": "realtime" | "transcription", ...}}`` (both optional; 600 s and a
    default realtime session). The session is checked by the same validator as
    ``session.update``; raises :class:`ProtocolError` with the service's code and param.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ProtocolError("invalid_type", "Invalid type for 'body': expected an object.",
                            None)
    for name in body:
        if name not in ("expires_after", "session"):
            raise ProtocolError("unknown_parameter", f"Unknown parameter: '{name}'.", name)
    seconds = 600
    after = body.get("expires_after")
    if after is not None:
        if not isinstance(after, dict):
            raise ProtocolError("invalid_type", "Invalid type for 'expires_after': expected "
                                "an object.", "expires_after")
        for name in after:
            if name not in ("anchor", "seconds"):
                raise ProtocolError("unknown_parameter",
                                    f"Unknown parameter: 'expires_after.{name}'.",
                                    f"expires_after.{name}")
        if after.get("anchor", "created_at") != "created_at":
            raise ProtocolError("invalid_value", f"Invalid value: '{after.get('anchor')}'. "
                                "Supported values are: 'created_at'.",
                                "expires_after.anchor")
        seconds = after.get("seconds", 600)
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise ProtocolError("invalid_type", "Invalid type for 'expires_after.seconds': "
                                "expected an integer.", "expires_after.seconds")
        if not 10 <= seconds <= 7200:
            raise ProtocolError(
                "integer_out_of_range", "Invalid 'expires_after.seconds': integer out of "
                f"range. Expected a value between 10 and 7200, but got {seconds} instead.",
                "expires_after.seconds")
    session = check_session(body.get("session") or {"type": "realtime"}, "session")
    now = time.time()
    for value in [v for v, s in secrets.items() if s.expires_at <= now]:
        del secrets[value]  # forget expired secrets
    secret = ClientSecret("ek_" + token_hex(16), int(now) + seconds, session)
    secrets[secret.value] = secret
    return secret


def check_session(session: Any, param: str) -> dict[str, Any]:
    """A session config as ``session.update`` would take it (type defaults to realtime);
    raises :class:`ProtocolError` with the validator's code and param."""
    if not isinstance(session, dict):
        raise ProtocolError("invalid_type", f"Invalid type for '{param}': expected an "
                            "object.", param)
    session = dict(session)
    session.setdefault("type", "realtime")
    validate_client_event({"type": "session.update", "session": session})
    model = session.get("model")
    if session["type"] == "realtime" and model is not None and not REALTIME_MODELS.search(
            str(model)):
        raise ProtocolError("invalid_model", f"Model '{model}' is not supported in realtime "
                            "mode.", "session.model")
    return session


def _api_error(status: int, message: str, param: str | None = None, code: str | None = None,
               **headers: str) -> HttpResponse:
    """An ``invalid_request_error`` answer shaped as the service's REST errors."""
    return json_response(status, error_body(message, param, code), **headers)
