"""``POST /v1/realtime/client_secrets`` on the local server, as the official SDK calls it.

A backend mints a short-lived ``ek_`` secret bound to a session config; the browser (or any
client) opens sessions with it as a bearer token or in the WebSocket subprotocol until it
expires, and never needs the long-lived key. REST and the socket share one port, as the SDKs'
single base URL requires.
"""

from __future__ import annotations

import json
import time
import types

import httpx
import openai
import pytest
import websockets
from openai import AsyncOpenAI
from openai.types.realtime import ClientSecretCreateResponse

import realtime_nb.server.admission as app_module
from realtime_nb.server import LocalServer


@pytest.fixture
async def server():
    async with LocalServer() as srv:
        yield srv


def sdk(server: LocalServer, key: str = "sk-local") -> AsyncOpenAI:
    return AsyncOpenAI(api_key=key, base_url=server.http_base_url,
                       websocket_base_url=server.base_url, max_retries=0)


async def first_event(url: str, **options) -> dict:
    async with websockets.connect(url, **options) as ws:
        return json.loads(await ws.recv())


async def test_sdk_mints_a_secret_with_the_service_response_shape(server):
    before = time.time()
    secret = await sdk(server).realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 120},
        session={"type": "realtime", "instructions": "Be brief.", "audio": {
            "output": {"voice": "cedar"}}})
    ClientSecretCreateResponse.model_validate(secret.model_dump())
    assert secret.value.startswith("ek_") and len(secret.value) > 20
    assert before + 119 <= secret.expires_at <= time.time() + 121
    assert secret.session.instructions == "Be brief."
    assert secret.session.audio.output.voice == "cedar"


async def test_a_secret_opens_sessions_with_its_bound_config(server):
    secret = await sdk(server).realtime.client_secrets.create(
        session={"type": "realtime", "instructions": "Only haiku.",
                 "output_modalities": ["text"]})
    for _ in range(2):  # a secret can start several sessions until it expires
        async with sdk(server, secret.value).realtime.connect(model="gpt-realtime") as conn:
            created = json.loads(await conn.recv_bytes())
        assert created["type"] == "session.created"
        assert created["session"]["instructions"] == "Only haiku."
        assert created["session"]["output_modalities"] == ["text"]


async def test_a_secret_works_in_the_browser_subprotocol(server):
    secret = (await sdk(server).realtime.client_secrets.create()).value
    ev = await first_event(server.url + "?model=gpt-realtime",
                           subprotocols=["realtime", f"openai-insecure-api-key.{secret}"])
    assert ev["type"] == "session.created"


async def test_a_transcription_secret_opens_a_transcription_session_without_intent(server):
    secret = (await sdk(server).realtime.client_secrets.create(
        session={"type": "transcription"})).value
    ev = await first_event(server.url, additional_headers={"Authorization": f"Bearer {secret}"})
    assert ev["session"]["type"] == "transcription"


async def test_an_expired_secret_gets_the_services_401(server, monkeypatch):
    secret = (await sdk(server).realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 10})).value
    later = types.SimpleNamespace(time=lambda: time.time() + 11, monotonic=time.monotonic)
    monkeypatch.setattr(app_module, "time", later)
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        await first_event(server.url + "?model=gpt-realtime",
                          additional_headers={"Authorization": f"Bearer {secret}"})
    assert info.value.response.status_code == 401
    body = json.loads(info.value.response.body)
    assert body["error"]["code"] == "invalid_api_key"
    assert "expired" in body["error"]["message"]


async def test_an_unknown_ek_secret_is_refused_even_when_any_key_is_accepted(server):
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        await first_event(server.url + "?model=gpt-realtime",
                          additional_headers={"Authorization": "Bearer ek_not_minted_here"})
    assert info.value.response.status_code == 401


async def test_minting_needs_the_long_lived_key():
    async with LocalServer(api_key="sk-right") as srv:
        with pytest.raises(openai.AuthenticationError):
            await sdk(srv, "sk-wrong").realtime.client_secrets.create()
        secret = (await sdk(srv, "sk-right").realtime.client_secrets.create()).value
        with pytest.raises(openai.AuthenticationError, match="cannot create client secrets"):
            await sdk(srv, secret).realtime.client_secrets.create()
        ev = await first_event(srv.url + "?model=gpt-realtime",
                               additional_headers={"Authorization": f"Bearer {secret}"})
        assert ev["type"] == "session.created"  # the secret stands in for the key


@pytest.mark.parametrize(("body", "code", "param"), [
    ({"expires_after": {"anchor": "created_at", "seconds": 5}}, "integer_out_of_range",
     "expires_after.seconds"),
    ({"expires_after": {"anchor": "now", "seconds": 60}}, "invalid_value",
     "expires_after.anchor"),
    ({"turn_detection": None}, "unknown_parameter", "turn_detection"),
    ({"session": {"type": "realtime", "turn_detection": None}}, "unknown_parameter",
     "session.turn_detection"),
    ({"session": {"type": "realtime", "audio": {"output": {"voice": 3}}}}, None, None),
])
async def test_bad_requests_get_the_validators_errors(server, body, code, param):
    async with httpx.AsyncClient() as http:
        r = await http.post(server.http_base_url + "/realtime/client_secrets", json=body,
                            headers={"Authorization": "Bearer sk-local"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    if code is not None:
        assert (err["code"], err["param"]) == (code, param)
    else:
        assert err["param"].startswith("session.audio.output.voice")


async def test_other_methods_and_paths_are_answered_not_hung(server):
    async with httpx.AsyncClient() as http:
        get = await http.get(server.http_base_url + "/realtime/client_secrets",
                             headers={"Authorization": "Bearer sk-local"})
        missing = await http.post(server.http_base_url + "/nowhere", json={})
        garbage = await http.post(server.http_base_url + "/realtime/client_secrets",
                                  content=b"{not json", headers={
                                      "Authorization": "Bearer sk-local"})
    assert get.status_code == 405
    assert missing.status_code == 404
    assert garbage.status_code == 400


async def test_a_foreign_web_page_cannot_mint_secrets(server):
    async with httpx.AsyncClient() as http:
        r = await http.post(server.http_base_url + "/realtime/client_secrets", json={},
                            headers={"Authorization": "Bearer sk-local",
                                     "Origin": "https://evil.example"})
    assert r.status_code == 403


async def test_the_session_mints_a_masked_secret_that_opens_a_session(server):
    from realtime_nb.client import Session

    kernel = Session(url=server.url + "?model=gpt-realtime", api_key="sk-local")
    secret = await kernel.create_client_secret({"type": "realtime", "instructions": "Hi."},
                                               expires_after_s=60)
    assert secret.value.reveal().startswith("ek_")
    assert secret.value.reveal() not in repr(secret)
    assert secret.session["instructions"] == "Hi."
    async with Session(url=server.url + "?model=gpt-realtime",
                       api_key=secret.value.reveal()) as browser_side:
        assert browser_side.config["instructions"] == "Hi."


async def test_the_session_reports_a_refused_secret_with_the_servers_code(server):
    from realtime_nb.client import RealtimeError, Session

    kernel = Session(url=server.url + "?model=gpt-realtime", api_key="sk-local")
    with pytest.raises(RealtimeError) as info:
        await kernel.create_client_secret(expires_after_s=9000)
    assert (info.value.code, info.value.param) == ("integer_out_of_range",
                                                   "expires_after.seconds")
