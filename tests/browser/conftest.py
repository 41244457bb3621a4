"""Fixtures for end-to-end tests in headless Chromium with a fake microphone.

One Jupyter server (JupyterLab 4 or Notebook 7) and one Chromium per app for the whole module:
the server runs on 127.0.0.1 with a fixed token in a temporary root, with a kernelspec that
points at this interpreter; Chromium plays a spoken WAV file as its microphone. Tests drive the
kernel through the page (``JupyterPage.execute``) and assert on files the kernel writes.
Screenshots of the final pages go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from realtime_nb.audio import Audio

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("REALTIME_NB_CHROMIUM", "/usr/bin/chromium")
TOKEN = "realtime-nb-test-token"
KERNEL_NAME = "realtime-nb-test"
NOTEBOOK = "widgets.ipynb"
#: A host name Chromium resolves to 127.0.0.1: pages served under it are not a secure context
#: (only localhost, 127.0.0.1 and https are), as on a remote JupyterHub over plain http.
INSECURE_HOST = "rtnb-insecure.test"
SPEECH = (
    "The quick brown fox jumps over the lazy dog. Realtime audio in the notebook, "
    "one chunk every hundred milliseconds."
)
#: Console errors that come from Jupyter itself, not from our widgets (browser-testing.md).
KNOWN_UNRELATED = (
    "Cannot read properties of undefined (reading 'schema')",  # Notebook 7 at load
    "Y.Doc",
    "favicon",
)


@dataclass
class JupyterPage:
    """A page showing the test notebook, with its kernel, console log and output folder."""

    app: str
    page: Any
    out: Path
    base_url: str
    root: Path
    console: list[str] = field(default_factory=list)

    def execute(self, code: str, timeout_s: float = 30) -> str:
        """Run ``code`` in the notebook's kernel; return its stdout, raise if it failed."""
        result = self.page.evaluate(
            """async (code) => {
                const kernel = window.jupyterapp.shell.currentWidget.context.sessionContext
                    .session.kernel;
                const future = kernel.requestExecute({ code, stop_on_error: true });
                const out = [];
                future.onIOPub = (msg) => {
                    const t = msg.header.msg_type;
                    if (t === "stream") out.push(msg.content.text);
                    if (t === "error") out.push(msg.content.traceback.join("\\n"));
                };
                const reply = await future.done;
                return { status: reply.content.status, output: out.join("") };
            }""",
            code,
        )
        assert result["status"] == "ok", f"kernel code failed:\n{code}\n{result['output']}"
        return str(result["output"])

    def wait_for_kernel(self, code: str, expected: str, timeout_s: float = 10) -> None:
        """Poll until ``code`` prints ``expected`` in the kernel.

        Trait changes made in the browser can reach the kernel after later custom messages:
        ipywidgets holds state updates back while an earlier one is unanswered, custom
        messages are never held back.
        """
        deadline = time.monotonic() + timeout_s
        while (got := self.execute(code).strip()) != expected:
            assert time.monotonic() < deadline, f"{code!r} printed {got!r}, not {expected!r}"
            self.page.wait_for_timeout(50)

    def wait_for_file(self, name: str, timeout_s: float = 15) -> Path:
        """Wait until the kernel has written ``out/name``."""
        path = self.out / name
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            assert time.monotonic() < deadline, f"the kernel did not write {path} in {timeout_s} s"
            self.page.wait_for_timeout(50)
        return path

    def our_console_errors(self) -> list[str]:
        return [m for m in self.console if not any(k in m for k in KNOWN_UNRELATED)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def notebook_json(cells: list[str]) -> dict[str, Any]:
    """An nbformat 4 notebook of code ``cells`` that names the test kernelspec."""
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
             "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "realtime_nb test", "language": "python",
                           "name": KERNEL_NAME},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _notebook(out_dir: Path) -> dict[str, Any]:
    cells = [
        f"""import json, time, pathlib
from realtime_nb.widgets import MicWidget, PlayerWidget
OUT = pathlib.Path({str(out_dir)!r})
mic = MicWidget(echo_cancellation=False, noise_suppression=False, auto_gain_control=False)
def _record(chunk):
    with open(OUT / f"mic_take{{chunk.take}}.pcm", "ab") as f:
        f.write(chunk.data)
    row = {{"take": chunk.take, "seq": chunk.seq, "t_ms": chunk.t_ms, "final": chunk.final,
           "samples": len(chunk.data) // 2, "rate": chunk.sample_rate,
           "level": chunk.level_dbfs, "muted": chunk.muted, "at": chunk.received_at}}
    with open(OUT / f"mic_take{{chunk.take}}.jsonl", "a") as f:
        f.write(json.dumps(row) + "\\n")
mic.on_audio(_record)
mic.observe(lambda ch: (OUT / "mic_error.txt").write_text(ch["new"]), names="error")
mic""",
        """player = PlayerWidget()
def _played(p):
    row = {"item": p.item_id, "ms": p.played_ms, "event": p.event, "dropped": p.dropped_ms,
           "at": time.monotonic()}
    with open(OUT / "player.jsonl", "a") as f:
        f.write(json.dumps(row) + "\\n")
player.on_played(_played)
player""",
        """(OUT / "ready").write_text(str(time.monotonic()))""",
    ]
    return notebook_json(cells)


@pytest.fixture(scope="module")
def fake_mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48 kHz 16-bit mono WAV of English speech made with espeak-ng (the fake microphone)."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: install the Debian package espeak-ng (./dev setup does)"
    d = tmp_path_factory.mktemp("speech")
    raw = d / "speech_raw.wav"
    subprocess.run([espeak, "-s", "150", "-w", str(raw), SPEECH], check=True)
    audio = Audio.from_wav(raw.read_bytes()).resample(48_000)
    out = d / "speech48k.wav"
    out.write_bytes(audio.to_wav())
    return out


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the server: isolated Jupyter dirs and a kernelspec of this interpreter."""
    base = tmp_path_factory.mktemp("jupyter")
    prefix = base / "prefix"
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix),
         "--name", KERNEL_NAME, "--display-name", "realtime_nb test"],
        check=True, capture_output=True,
    )
    spec = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    argv = json.loads(spec.read_text())["argv"]
    assert argv[0] == sys.executable, f"kernelspec runs {argv[0]}, not {sys.executable}"
    env = dict(os.environ)
    env.update(
        JUPYTER_PATH=str(prefix / "share" / "jupyter"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        IPYTHONDIR=str(base / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module", params=["lab", "notebook"])
def jupyter(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_mic_wav: Path,
    jupyter_env: dict[str, str],
) -> Iterator[JupyterPage]:
    """A running server of ``app``, Chromium on the test notebook, all cells run."""
    from playwright.sync_api import sync_playwright

    app = request.param
    assert Path(CHROMIUM).exists(), (
        f"Chromium is missing at {CHROMIUM}: install the Debian package chromium (./dev setup "
        "does) or set REALTIME_NB_CHROMIUM; the browser tests cannot run without it."
    )
    root = tmp_path_factory.mktemp(f"root-{app}")
    out = root / "out"
    out.mkdir()
    (root / NOTEBOOK).write_text(json.dumps(_notebook(out)))
    port = _free_port()
    expose = "LabApp" if app == "lab" else "JupyterNotebookApp"
    jupyter_bin = Path(sys.executable).with_name("jupyter")
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed in the teardown
    server = subprocess.Popen(
        [str(jupyter_bin), app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         f"--{expose}.expose_app_in_browser=True",
         "--KernelSpecManager.ensure_native_kernel=False", "--allow-root",
         # Still listening on 127.0.0.1 only; lets the page come as INSECURE_HOST too.
         "--ServerApp.allow_remote_access=True",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.news_url=None"],
        env=jupyter_env, stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"jupyter {app} exited: see {root / 'server.log'}"
            try:
                with urllib.request.urlopen(f"{base_url}/api/status?token={TOKEN}", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"jupyter {app} did not start in 60 s"
                time.sleep(0.2)
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp(f"chromium-{app}")),
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-audio-capture={fake_mic_wav}",
                    "--autoplay-policy=no-user-gesture-required",
                    f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
                ],
                permissions=["microphone"],
                viewport={"width": 1280, "height": 900},
            )
            context.grant_permissions(["microphone"], origin=base_url)
            page = context.pages[0] if context.pages else context.new_page()
            jp = JupyterPage(app=app, page=page, out=out, base_url=base_url, root=root)
            page.on("console", lambda m: m.type == "error" and jp.console.append(
                f"console.error: {m.text}"))
            page.on("pageerror", lambda e: jp.console.append(f"pageerror: {e}"))
            path = (f"/lab/tree/{NOTEBOOK}?token={TOKEN}&reset" if app == "lab"
                    else f"/notebooks/{NOTEBOOK}?token={TOKEN}")
            page.goto(base_url + path)
            page.wait_for_function(
                """(name) => {
                    const app = window.jupyterapp;
                    const w = app && app.shell.currentWidget;
                    if (!w || !w.context || w.context.path !== name) return false;
                    const s = w.context.sessionContext.session;
                    return !!(s && s.kernel && s.kernel.status === "idle");
                }""",
                arg=NOTEBOOK, timeout=90_000,
            )
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            jp.wait_for_file("ready", timeout_s=60)
            page.wait_for_selector(".rtnb-mic-button", timeout=30_000)
            page.wait_for_selector(".rtnb-player-stop", timeout=30_000)
            try:
                yield jp
            finally:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"widgets-{app}.png"), full_page=True)
                context.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
