"""The API key never shows: not in reprs, errors, exported traces or DEBUG logs.

A recognizable fake key is used throughout; the fake server records the handshake, proving the key
really was sent where it belongs.
"""

from __future__ import annotations

import logging

import pytest

from realtime_nb import RealtimeError, Session
from realtime_nb.client.backend import resolve_backend
from realtime_nb.client.testing import FakeRealtimeServer

KEY = "sk-test-SECRET-7f3a9c1e5b"


def test_repr_of_session_and_backend_hide_the_key() -> None:
    s = Session(backend="openai", api_key=KEY)
    assert KEY not in repr(s) and KEY not in repr(s._backend) and KEY not in str(vars(s))
    assert "wss://api.openai.com/v1/realtime?model=gpt-realtime" in repr(s)


def test_environment_key_selects_openai_and_stays_hidden(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    s = Session()
    assert s.backend == "openai" and KEY not in repr(s)


def test_no_key_anywhere_means_the_local_backend(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert Session().backend == "local"


def test_openai_without_a_key_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RealtimeError) as info:
        Session(backend="openai")
    assert info.value.code == "missing_api_key" and "backend='local'" in info.value.hint


def test_environment_key_is_never_sent_to_a_third_party_url(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backend = resolve_backend(url="wss://realtime.example.com/v1/realtime")
    assert backend.api_key is None and "Authorization" not in backend.headers()
    azure = resolve_backend(url="wss://x.openai.azure.com/openai/realtime",
                            headers={"api-key": KEY})
    assert azure.headers() == {"api-key": KEY} and KEY not in repr(azure)


def test_credentials_in_the_url_query_are_masked() -> None:
    s = Session(url=f"wss://example.com/v1/realtime?api-key={KEY}&model=m")
    assert KEY not in repr(s) and "api-key=***" in s.url


async def test_debug_logs_of_a_real_handshake_hide_the_key(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeRealtimeServer(require_key=KEY) as fake:
        async with Session(url=fake.url, api_key=KEY) as s:
            await s.say("hi", output_modalities=["text"])
        assert fake.handshakes[0]["Authorization"] == f"Bearer {KEY}"
    assert "Authorization: ***" in caplog.text  # the handshake was logged, masked
    assert KEY not in caplog.text


async def test_extra_secret_headers_are_masked_in_logs(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeRealtimeServer() as fake, Session(url=fake.url, api_key="k",
                                                     headers={"x-custom-token": KEY}) as s:
        assert s.state == "connected"
        assert fake.handshakes[0]["x-custom-token"] == KEY
    assert KEY not in caplog.text


async def test_rejected_key_error_does_not_contain_it() -> None:
    async with FakeRealtimeServer(require_key="the-right-one") as fake:
        s = Session(url=fake.url, api_key=KEY)
        with pytest.raises(RealtimeError) as info:
            await s.connect()
    err = info.value
    assert err.code == "invalid_api_key"
    for text in (str(err), repr(err), str(err.to_dict()), repr(s), str(s.last_error)):
        assert KEY not in text


async def test_exported_trace_does_not_contain_the_key(tmp_path) -> None:
    async with FakeRealtimeServer(require_key=KEY) as fake, Session(url=fake.url,
                                                                    api_key=KEY) as s:
        await s.say("hello", output_modalities=["text"])
        path = s.events.to_jsonl(tmp_path / "trace.jsonl")
    assert KEY not in path.read_text()


def test_secret_cannot_be_pickled() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(resolve_backend(backend="openai", api_key=KEY).api_key)
