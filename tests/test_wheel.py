"""A wheel, not a checkout: build it, install it into a fresh virtual environment with no
source tree in sight, and run the demo, the server and a notebook from there.

The wheel is built the way a release is (``pip wheel .``, isolated build with the pinned
setuptools). The fresh venv gets the wheel installed by its own pip (``--no-deps``); the
dependencies come from this environment's site-packages through a plain path entry, so nothing
is downloaded — and the editable install of this checkout is *not* visible there (path entries
added by a ``.pth`` line do not run that directory's own ``.pth`` files). Every command runs in
a scratch directory with ``PYTHONPATH`` unset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("realtime_nb-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("fresh")
    env_dir = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, capture_output=True, text=True
                               ).stdout.strip())
    (site / "_realtime_nb_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    work = home / "work"
    work.mkdir()
    return {"python": py, "bin": env_dir / "bin", "site": site, "work": work}


def _env(venv: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "OPENAI_API_KEY", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv['bin']}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(venv: dict[str, Path], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(list(args), cwd=venv["work"], env=_env(venv), capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_every_packaged_file_of_the_checkout_is_in_the_wheel(wheel):
    tracked = subprocess.run(["git", "ls-files", "realtime_nb"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in tracked if f not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert {"realtime_nb/widgets/mic.js", "realtime_nb/widgets/timeline.css",
            "realtime_nb/py.typed"} <= names
    meta = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("dist-info/METADATA"))).decode()
    assert "Provides-Extra: webrtc" in meta and "Provides-Extra: dask" in meta


def test_the_installed_package_is_the_wheel_not_the_checkout(venv):
    out = _run(venv, str(venv["python"]), "-c", (
        "import json, realtime_nb, realtime_nb.widgets as w\n"
        "from realtime_nb.vad import default_speech_model\n"
        "default_speech_model()\n"
        "print(json.dumps({'file': realtime_nb.__file__, 'esm': [len(str(c._esm)) for c in "
        "(w.MicWidget, w.PlayerWidget, w.Timeline, w.WebRTCCall)]}))"))
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts["file"].startswith(str(venv["site"])), facts
    assert not facts["file"].startswith(str(ROOT / "realtime_nb"))
    assert all(n > 1000 for n in facts["esm"]), facts  # the widgets' JS shipped and loads


def test_the_demo_runs_from_the_installed_wheel(venv):
    out = _run(venv, str(venv["bin"] / "realtime-nb"), "demo", "--text",
               "What is the weather like in Paris?", "--out", "demo")
    assert "paris" in out.lower()
    assert (venv["work"] / "demo" / "reply.wav").stat().st_size > 10_000
    assert (venv["work"] / "demo" / "timeline.png").stat().st_size > 5_000


def test_the_server_runs_from_the_installed_wheel(venv):
    proc = subprocess.Popen([str(venv["python"]), "-m", "realtime_nb.server", "--port", "0"],
                            cwd=venv["work"], env=_env(venv), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            m = re.search(r"ws://\S+/v1/realtime", line)
            if m:
                url = m.group(0)
                break
        assert url, "the server printed no URL"
        probe = ("import asyncio, json, websockets\n"
                 "async def main():\n"
                 f"    async with websockets.connect('{url}?model=gpt-realtime', "
                 "additional_headers={'Authorization': 'Bearer x'}) as ws:\n"
                 "        print(json.loads(await ws.recv())['type'])\n"
                 "asyncio.run(main())")
        assert _run(venv, str(venv["python"]), "-c", probe).strip() == "session.created"
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_notebook_runs_on_the_installed_wheel(venv):
    shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", venv["work"])
    script = ("import nbformat\n"
              "from nbclient import NotebookClient\n"
              "from nbformat.v4 import new_code_cell\n"
              "nb = nbformat.read('01_quickstart.ipynb', 4)\n"
              "first = new_code_cell('import realtime_nb; print(realtime_nb.__file__)')\n"
              "nb.cells.insert(0, first)\n"
              "NotebookClient(nb, timeout=300, kernel_name='python3').execute()\n"
              "errors = [o for c in nb.cells for o in c.get('outputs', []) "
              "if o.get('output_type') == 'error']\n"
              "print('ERRORS', len(errors))\n"
              "print('KERNEL', nb.cells[0].outputs[0]['text'].strip())\n")
    out = _run(venv, str(venv["python"]), "-c", script, timeout=600)
    assert "ERRORS 0" in out, out
    kernel_file = out.split("KERNEL ", 1)[1].strip()
    assert kernel_file.startswith(str(venv["site"])), kernel_file
