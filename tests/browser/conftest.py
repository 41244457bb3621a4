"""Fixtures for end-to-end tests in headless Chromium with a fake microphone.

One Jupyter server (JupyterLab 4 or Notebook 7) and one Chromium per app for the whole module:
the server runs on 127.0.0.1 with a fixed token in a temporary root, with a kernelspec that
points at this interpreter; Chromium plays a spoken WAV file as its microphone. Tests drive the
kernel through the page (``JupyterPage.execute``) and assert on files the kernel writes.
Screenshots of the final pages go to ``test-artifacts/``.

The harness every browser test module builds its fixture from: ``notebook_root`` (a temporary
root holding a notebook), ``running_jupyter`` (the server; ``server_process`` starts any other
one: marimo, Voila), ``chromium`` (the browser, with the fake microphone), ``open_notebook`` (a
page on the notebook, all cells run), ``collect_console`` and ``screenshot``/``save_screenshot``;
``question_wav`` is the spoken question most of them play as the microphone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
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
#: The question the panel, WebRTC, Voila and marimo tests ask through the fake microphone.
QUESTION = "What is the capital of France?"
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
        """Wait until the kernel has written ``out/name`` (non-empty: ``write_text`` creates the
        file before it writes, so a reader polling for existence alone can see it empty)."""
        path = self.out / name
        deadline = time.monotonic() + timeout_s
        while not path.exists() or path.stat().st_size == 0:
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


def notebook_root(root: Path, notebook: str, cells: Callable[[Path], list[str]]) -> Path:
    """Write the notebook ``cells(root / "out")`` into ``root`` as ``notebook``; return ``root``.

    ``root / "out"`` is created empty: the folder the kernel writes to and the tests read
    (``JupyterPage.out``).
    """
    out = root / "out"
    out.mkdir()
    (root / notebook).write_text(json.dumps(notebook_json(cells(out))))
    return root


@contextlib.contextmanager
def running_jupyter(
    app: str, root: Path, env: dict[str, str], extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """Run ``jupyter {app}`` (``"lab"`` or ``"notebook"``) serving ``root``; yield its base URL.

    The server listens on 127.0.0.1 on a free port with the token ``TOKEN``, exposes
    ``window.jupyterapp`` to the page, never checks for updates or news, and logs to
    ``root / "server.log"``. ``env`` must name the test kernelspec (the ``jupyter_env``
    fixture). Fails if it is not answering ``/api/status`` within 60 s; terminates it (killed
    after 15 s) on exit.
    """
    port = _free_port()
    expose = "LabApp" if app == "lab" else "JupyterNotebookApp"
    base_url = f"http://127.0.0.1:{port}"
    argv = [str(Path(sys.executable).with_name("jupyter")), app, "--no-browser",
            "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}", f"--{expose}.expose_app_in_browser=True",
            "--KernelSpecManager.ensure_native_kernel=False", "--allow-root",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=None", *extra_args]
    with server_process(argv, name=f"jupyter {app}", log=root / "server.log",
                        ready_url=f"{base_url}/api/status?token={TOKEN}", env=env):
        yield base_url


@contextlib.contextmanager
def server_process(
    argv: Sequence[str],
    *,
    name: str,
    log: Path,
    ready_url: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    any_answer_is_ready: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the server ``argv`` (output to ``log``) until ``ready_url`` answers; yield the process.

    Ready means a successful GET of ``ready_url``, or with ``any_answer_is_ready`` any HTTP
    answer, errors included (for servers where the URL that proves them up is not a 200).
    Fails if the process exits first or nothing answers within 60 s; on exit the process is
    stopped (``stop_process``).
    """
    with open(log, "wb") as out:
        server = subprocess.Popen(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=cwd)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, f"{name} exited: see {log}"
                try:
                    with urllib.request.urlopen(ready_url, timeout=2):
                        break
                except urllib.error.HTTPError:
                    if any_answer_is_ready:
                        break
                    assert time.monotonic() < deadline, f"{name} did not start in 60 s"
                    time.sleep(0.2)
                except OSError:
                    assert time.monotonic() < deadline, f"{name} did not start in 60 s"
                    time.sleep(0.2)
            yield server
        finally:
            stop_process(server)


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    """Terminate ``proc``; kill it if it has not exited after ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def chromium(
    pw: Any,
    profile_dir: Path,
    fake_mic_wav: Path | None,
    *,
    viewport: dict[str, int],
    origin: str,
    extra_args: Sequence[str] = (),
) -> Iterator[Any]:
    """Headless Chromium (``CHROMIUM``) with a fresh profile in ``profile_dir``; yield its context.

    ``pw`` is a started sync Playwright. With ``fake_mic_wav`` (a 16-bit mono WAV), that file is
    the microphone, played in a loop, and the microphone is granted to every page and to
    ``origin``; with ``None`` the context has no microphone. Media may autoplay. The context has
    its first page open (``context.pages[0]``) and is closed on exit.
    """
    assert Path(CHROMIUM).exists(), (
        f"Chromium is missing at {CHROMIUM}: install the Debian package chromium (./dev setup "
        "does) or set REALTIME_NB_CHROMIUM; the browser tests cannot run without it."
    )
    mic = [] if fake_mic_wav is None else [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_mic_wav}",
    ]
    context = pw.chromium.launch_persistent_context(
        str(profile_dir),
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            *mic, "--autoplay-policy=no-user-gesture-required", *extra_args,
        ],
        permissions=[] if fake_mic_wav is None else ["microphone"],
        viewport=viewport,
    )
    try:
        if fake_mic_wav is not None:
            context.grant_permissions(["microphone"], origin=origin)
        if not context.pages:
            context.new_page()
        yield context
    finally:
        context.close()


def open_notebook(page: Any, app: str, base_url: str, root: Path, notebook: str) -> JupyterPage:
    """Open ``notebook`` of ``root`` in ``app`` (served at ``base_url``) in ``page``, run all cells.

    Returns once the notebook's kernel was idle and run-all was asked for: wait for what the
    cells produce yourself. Console errors and page errors are collected from the start in
    ``JupyterPage.console``.
    """
    jp = JupyterPage(app=app, page=page, out=root / "out", base_url=base_url, root=root,
                     console=collect_console(page))
    path = (f"/lab/tree/{notebook}?token={TOKEN}&reset" if app == "lab"
            else f"/notebooks/{notebook}?token={TOKEN}")
    page.goto(base_url + path)
    page.wait_for_function(
        """(name) => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            if (!w || !w.context || w.context.path !== name) return false;
            const s = w.context.sessionContext.session;
            return !!(s && s.kernel && s.kernel.status === "idle");
        }""",
        arg=notebook, timeout=90_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    return jp


@contextlib.contextmanager
def insecure_notebook(context: Any, base_url: str, root: Path, notebook: str,
                      app: str = "lab") -> Iterator[JupyterPage]:
    """``notebook`` of ``root`` opened (all cells run) in a new tab of ``context`` from the same
    Jupyter server as ``base_url`` but under ``http://INSECURE_HOST``: a page that is not a
    secure context (the browser must map INSECURE_HOST to 127.0.0.1). On exit the notebook's
    kernel is shut down and the tab closed."""
    port = base_url.rsplit(":", 1)[1]
    page = context.new_page()
    try:
        jp = open_notebook(page, app, f"http://{INSECURE_HOST}:{port}", root, notebook)
        assert page.evaluate("() => window.isSecureContext") is False
        yield jp
    finally:
        page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")
        page.close()


def wait_for_text(page: Any, path: Path, text: str, timeout_ms: float = 10_000) -> str:
    """Poll the file ``path`` (written by a kernel) until it holds ``text``; returns its content.
    Time is the page's clock, so a slow kernel fails with the file's last content."""
    deadline = page.evaluate("() => performance.now()") + timeout_ms
    while not (path.exists() and text in (content := path.read_text())):
        last = path.read_text() if path.exists() else "(no file)"
        assert page.evaluate("() => performance.now()") < deadline, f"{path.name}: {last!r}"
        page.wait_for_timeout(50)
    return content


@contextlib.contextmanager
def notebook_in_chromium(
    app: str,
    root: Path,
    notebook: str,
    env: dict[str, str],
    profile_dir: Path,
    fake_mic_wav: Path | None,
    *,
    viewport: dict[str, int],
    jupyter_args: Sequence[str] = (),
    chromium_args: Sequence[str] = (),
    init_script: str | None = None,
    screenshot_as: str | None = None,
) -> Iterator[JupyterPage]:
    """``running_jupyter`` + ``chromium`` + ``open_notebook``: the page on ``notebook`` of
    ``root``, all cells asked to run; yield it.

    ``jupyter_args`` / ``chromium_args`` go to the server / the browser; ``init_script`` runs
    in every page before its own scripts. With ``screenshot_as``, the final page is saved under
    that name (``test-artifacts/``) on exit, failed or not, after dismissing JupyterLab's news
    prompt (it hides a corner).
    """
    from playwright.sync_api import sync_playwright

    with (
        running_jupyter(app, root, env, jupyter_args) as base_url,
        sync_playwright() as pw,
        chromium(pw, profile_dir, fake_mic_wav, viewport=viewport, origin=base_url,
                 extra_args=chromium_args) as context,
    ):
        if init_script is not None:
            context.add_init_script(init_script)
        jp = open_notebook(context.pages[0], app, base_url, root, notebook)
        try:
            yield jp
        finally:
            if screenshot_as is not None:
                with contextlib.suppress(Exception):
                    jp.page.get_by_role("button", name="No", exact=True).click(timeout=1000)
                screenshot(jp, screenshot_as)


@contextlib.contextmanager
def page_in_chromium(
    url: str,
    profile_dir: Path,
    fake_mic_wav: Path | None,
    *,
    viewport: dict[str, int],
    screenshot_as: str,
) -> Iterator[tuple[Any, list[str]]]:
    """``chromium`` (the microphone granted to ``url``'s origin) with its page opened on ``url``
    (any app server: marimo, Voila); yield the page and its console errors, collected from
    before the load. The final page is saved as ``test-artifacts/screenshot_as`` on exit."""
    from playwright.sync_api import sync_playwright

    with (
        sync_playwright() as pw,
        chromium(pw, profile_dir, fake_mic_wav, viewport=viewport,
                 origin=url.rstrip("/")) as context,
    ):
        page = context.pages[0]
        console = collect_console(page)
        page.goto(url, timeout=120_000)
        try:
            yield page, console
        finally:
            save_screenshot(page, screenshot_as)


def collect_console(page: Any) -> list[str]:
    """A list that fills with ``page``'s console errors and uncaught page errors from now on
    (``"console.error: ..."``, ``"pageerror: ..."``)."""
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"console.error: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return errors


def save_screenshot(page: Any, name: str) -> None:
    """Save a full-page screenshot of ``page`` as ``test-artifacts/name``."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def screenshot(jp: JupyterPage, name: str) -> None:
    """Save a full-page screenshot of ``jp`` as ``test-artifacts/name``."""
    save_screenshot(jp.page, name)


def _cells(out_dir: Path) -> list[str]:
    return [
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


def espeak_48k(text: str, directory: Path) -> Audio:
    """``text`` spoken by Debian's espeak-ng at 150 words a minute, resampled to 48 kHz.

    The raw espeak-ng output is left in ``directory`` as ``espeak_raw.wav``.
    """
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: install the Debian package espeak-ng (./dev setup does)"
    raw = directory / "espeak_raw.wav"
    subprocess.run([espeak, "-s", "150", "-w", str(raw), text], check=True)
    return Audio.from_wav(raw.read_bytes()).resample(48_000)


def spoken_question_wav(directory: Path, question: str = QUESTION, silence_ms: int = 2500
                        ) -> Path:
    """A fake microphone in ``directory``: 300 ms of silence, ``question`` spoken, then
    ``silence_ms`` of silence (48 kHz 16-bit mono WAV; Chromium plays it in a loop)."""
    out = directory / "question48k.wav"
    speech = espeak_48k(question, directory)
    out.write_bytes(Audio.concat([Audio.silence(300, 48_000), speech,
                                  Audio.silence(silence_ms, 48_000)]).to_wav())
    return out


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone: ``QUESTION``, then 2.5 s of silence (48 kHz, 16-bit mono WAV)."""
    return spoken_question_wav(tmp_path_factory.mktemp("question"))


@pytest.fixture(scope="module")
def fake_mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48 kHz 16-bit mono WAV of English speech made with espeak-ng (the fake microphone)."""
    out = tmp_path_factory.mktemp("speech") / "speech48k.wav"
    out.write_bytes(espeak_48k(SPEECH, out.parent).to_wav())
    return out


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the server: isolated Jupyter dirs and a kernelspec of this interpreter."""
    return jupyter_environment(tmp_path_factory.mktemp("jupyter"))


def jupyter_environment(base: Path, pythonpath: Sequence[Path] = ()) -> dict[str, str]:
    """This process's environment with Jupyter's folders isolated under ``base`` and a
    kernelspec ``KERNEL_NAME`` that runs this interpreter; ``pythonpath`` goes first on the
    kernel's ``PYTHONPATH``."""
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
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            [*map(str, pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module", params=["lab", "notebook"])
def jupyter(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_mic_wav: Path,
    jupyter_env: dict[str, str],
) -> Iterator[JupyterPage]:
    """A running server of ``app``, Chromium on the test notebook, all cells run.

    The server also takes requests for other hosts (still on 127.0.0.1 only) and Chromium
    resolves ``INSECURE_HOST`` to 127.0.0.1, so a page can come as ``INSECURE_HOST`` too.
    """
    app = request.param
    root = notebook_root(tmp_path_factory.mktemp(f"root-{app}"), NOTEBOOK, _cells)
    with notebook_in_chromium(
        app, root, NOTEBOOK, jupyter_env, tmp_path_factory.mktemp(f"chromium-{app}"),
        fake_mic_wav, viewport={"width": 1280, "height": 900},
        jupyter_args=["--ServerApp.allow_remote_access=True"],
        chromium_args=[f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"],
        screenshot_as=f"widgets-{app}.png",
    ) as jp:
        jp.wait_for_file("ready", timeout_s=60)
        jp.page.wait_for_selector(".rtnb-mic-button", timeout=30_000)
        jp.page.wait_for_selector(".rtnb-player-stop", timeout=30_000)
        yield jp
