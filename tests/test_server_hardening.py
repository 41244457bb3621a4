"""Local server hardening: where the required key comes from and how it is checked, and the
bound on the per-model-folder transcriber and Whisper model caches.

The key: ``python -m realtime_nb.server`` takes it from ``$REALTIME_NB_SERVER_KEY`` so it is not
on the command line (where ``ps`` shows it to every user); ``--api-key`` still works and wins. Keys
are compared with ``hmac.compare_digest``. The caches: a session may name any model folder
(``faster-whisper:<folder>``), so neither the transcribers nor the loaded models may pile up.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime_nb.server import LocalServer
from realtime_nb.server import admission as server_app
from realtime_nb.server.__main__ import KEY_ENV, required_key
from realtime_nb.server.engines import asr

KEY = "sk-env-key-7d31c0"


# ------------------------------------------------------------------------------ the key
def test_the_key_comes_from_the_environment_when_not_given_on_the_command_line() -> None:
    assert required_key(None, {KEY_ENV: KEY}) == KEY


def test_a_command_line_key_wins_over_the_environment() -> None:
    assert required_key("sk-cli", {KEY_ENV: KEY}) == "sk-cli"


def test_no_key_anywhere_means_any_key_is_accepted() -> None:
    assert required_key(None, {}) is None


@pytest.mark.parametrize(("cli", "env"), [("", {}), (None, {KEY_ENV: ""})])
def test_an_empty_key_is_refused_rather_than_serving_without_one(
    cli: str | None, env: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="empty"):
        required_key(cli, env)


def test_the_server_refuses_an_empty_api_key() -> None:
    """An empty key would admit ``Authorization: Bearer`` with nothing after it."""
    with pytest.raises(ValueError, match="empty"):
        LocalServer(api_key="")


def test_help_names_the_environment_variable_as_the_preferred_way() -> None:
    out = subprocess.run([sys.executable, "-m", "realtime_nb.server", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert KEY_ENV in out and "ps" in out


def test_the_command_line_server_requires_the_environment_key_and_keeps_it_out_of_ps() -> None:
    """A real ``python -m realtime_nb.server`` process: its command line (what ``ps`` shows)
    holds no key, a wrong key gets HTTP 401 and the environment's key opens a session."""
    env = {**os.environ, KEY_ENV: KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime_nb.server", "--port", "0", "--light"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = ""
        for line in proc.stdout:
            if "ws://" in line:
                break
        url = line.split()[-1]
        assert url.startswith("ws://"), line
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert KEY.encode() not in cmdline

        async def attempt(key: str) -> str:
            async with connect(url, additional_headers={"Authorization": f"Bearer {key}"},
                               open_timeout=30) as ws:
                return json.loads(await ws.recv())["type"]

        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(attempt("sk-wrong"))
        assert refused.value.response.status_code == 401
        assert asyncio.run(attempt(KEY)) == "session.created"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every presented key goes through ``hmac.compare_digest`` (no early-exit ``==``)."""
    seen: list[tuple[bytes, bytes]] = []
    real = server_app.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(server_app.hmac, "compare_digest", spy)
    async with LocalServer(api_key=KEY) as srv:
        with pytest.raises(InvalidStatus):
            async with connect(srv.url, additional_headers={"Authorization": "Bearer sk-no"}):
                pass
        async with connect(srv.url, additional_headers={"Authorization": f"Bearer {KEY}"}):
            pass
    assert seen == [(b"sk-no", KEY.encode()), (KEY.encode(), KEY.encode())]


def test_key_comparison_handles_non_ascii_keys() -> None:
    """``hmac.compare_digest`` raises TypeError on non-ASCII *str*: keys are compared as
    UTF-8 bytes, so an odd key is simply wrong (401), never a server error."""
    assert server_app._same_key("clé-✓", "clé-✓")
    assert not server_app._same_key("clé-✓", KEY)


# ------------------------------------------------------------------------------ the caches
@pytest.fixture(autouse=True)
def _restore_caches() -> Iterator[None]:
    """Leave the process-wide caches as they were (other tests share the loaded models)."""
    models, paths = dict(asr._WHISPER_CACHE), dict(asr._PATH_INSTANCES)
    yield
    asr._WHISPER_CACHE.clear()
    asr._WHISPER_CACHE.update(models)
    asr._PATH_INSTANCES.clear()
    asr._PATH_INSTANCES.update(paths)


def test_faster_whisper_folder_transcribers_are_kept_for_the_most_recent_names_only() -> None:
    names = [f"faster-whisper:/nonexistent/model-{i}" for i in range(asr.WHISPER_CACHE_SIZE + 3)]
    first = asr.transcriber_for(names[0])
    for name in names[1:]:
        asr.transcriber_for(name)
        asr.transcriber_for(names[0])  # keep using the first: it must survive
    assert len(asr._PATH_INSTANCES) <= asr.WHISPER_CACHE_SIZE
    assert asr.transcriber_for(names[0]) is first
    assert names[1] not in asr._PATH_INSTANCES  # least recently used: evicted


@pytest.fixture
def model_copies(tmp_path: Path) -> list[str]:
    """Several distinct folders holding the shipped tiny.en model (symlinked files)."""
    source = Path(asr._default_whisper_model())
    folders = []
    for i in range(asr.WHISPER_CACHE_SIZE + 1):
        folder = tmp_path / f"model-{i}"
        folder.mkdir()
        for f in source.iterdir():
            (folder / f.name).symlink_to(f)
        folders.append(str(folder))
    return folders


def test_loaded_whisper_models_are_bounded_least_recently_used_first(
    model_copies: list[str],
) -> None:
    """Loading one more model folder than the cache holds evicts the least recently used one;
    the others stay loaded (the same object comes back)."""
    keep = asr._load_whisper(model_copies[0], "int8", 1, 1)
    for folder in model_copies[1:]:
        asr._load_whisper(folder, "int8", 1, 1)
        assert asr._load_whisper(model_copies[0], "int8", 1, 1) is keep
    assert len(asr._WHISPER_CACHE) <= asr.WHISPER_CACHE_SIZE
    cached = {key[0] for key in asr._WHISPER_CACHE}
    assert model_copies[0] in cached and model_copies[1] not in cached
