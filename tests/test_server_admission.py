"""The server's admission decided on plain values: a request's path and headers, no socket.

The same rules are exercised through real sockets in test_security_server.py and
test_server_client_secrets.py; here each answer of :func:`realtime_nb.server.admission.admit`
and :func:`~realtime_nb.server.admission.connection_info` is pinned directly.
"""

from __future__ import annotations

import json
import time

from websockets.datastructures import Headers

from realtime_nb.server.admission import ClientSecret, admit, connection_info

KEY = "sk-test-key"


def _admit(path: str = "/v1/realtime?model=gpt-realtime", *, api_key: str | None = KEY,
           secrets: dict[str, ClientSecret] | None = None, calls: dict | None = None,
           **headers: str) -> object:
    return admit(path, Headers(**headers), api_key=api_key, secrets=secrets or {},
                 allowed_origins=(), calls=calls or {})


def test_the_right_bearer_key_or_subprotocol_key_is_admitted() -> None:
    assert _admit(Authorization=f"Bearer {KEY}") is None
    assert _admit(**{"Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{KEY}"}) is None


def test_a_wrong_or_missing_key_gets_the_services_401_body() -> None:
    for headers in ({"Authorization": "Bearer sk-wrong"}, {}):
        refusal = _admit(**headers)
        assert refusal is not None and refusal.status == 401
        assert json.loads(refusal.body)["error"]["code"] == "invalid_api_key"
        assert refusal.headers == {"Content-Type": "application/json"}


def test_a_page_from_a_foreign_origin_is_refused_before_its_key_is_read() -> None:
    refusal = _admit(Origin="https://evil.example", Authorization=f"Bearer {KEY}")
    assert refusal is not None and refusal.status == 403
    assert _admit(Origin="http://localhost:8888", Authorization=f"Bearer {KEY}") is None


def test_an_expired_client_secret_is_refused_whatever_the_servers_key() -> None:
    secrets = {"ek_old": ClientSecret("ek_old", int(time.time()) - 1, {"type": "realtime"})}
    refusal = _admit(api_key=None, secrets=secrets, Authorization="Bearer ek_old")
    assert refusal is not None and refusal.status == 401
    assert "expired" in json.loads(refusal.body)["error"]["message"]


def test_rest_urls_want_post_and_unknown_calls_are_not_found() -> None:
    refusal = _admit("/v1/realtime/client_secrets", Authorization=f"Bearer {KEY}")
    assert refusal is not None and (refusal.status, refusal.headers) == (405, {"Allow": "POST"})
    refusal = _admit("/v1/realtime?call_id=rtc_gone", Authorization=f"Bearer {KEY}")
    assert refusal is not None and refusal.status == 404
    assert json.loads(refusal.body)["error"]["code"] == "call_not_found"


def test_a_transcription_secret_makes_a_transcription_session_with_its_config() -> None:
    bound = {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}
    secrets = {"ek_t": ClientSecret("ek_t", int(time.time()) + 60, bound)}
    info = connection_info("/v1/realtime", Headers(Authorization="Bearer ek_t"), secrets)
    assert (info.kind, info.beta, info.defaults) == (
        "transcription", False, {"audio": {"input": {"format": {"type": "audio/pcmu"}}}})
    beta = connection_info("/v1/realtime?model=gpt-realtime",
                           Headers(**{"OpenAI-Beta": "realtime=v1"}), {})
    assert (beta.kind, beta.model, beta.beta, beta.defaults) == (
        "realtime", "gpt-realtime", True, None)
