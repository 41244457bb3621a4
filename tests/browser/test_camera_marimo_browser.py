"""The CameraWidget under ``marimo run`` (``mo.ui.anywidget``), headless Chromium, a fake camera.

marimo renders anywidgets with its own model objects; the widget's initialize() and render() must
still share the camera, and the snapshot must reach marimo's kernel as a comm buffer: a JPEG of
the size the page's camera track reports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .conftest import chromium
from .test_camera_browser import CAMERA_SIZE_JS

pytestmark = pytest.mark.browser


MARIMO_APP = """import marimo

app = marimo.App()


@app.cell
def _():
    import json
    import pathlib

    import marimo as mo

    from realtime_nb.widgets import CameraWidget

    OUT = pathlib.Path({out!r})
    cam = CameraWidget()
    cam.on_snapshot(lambda s: (OUT / "snap.json").write_text(json.dumps(
        {{"width": s.width, "height": s.height, "size": len(s.data), "magic": s.data[:3].hex()}})))
    view = mo.ui.anywidget(cam)
    view
    return


if __name__ == "__main__":
    app.run()
"""


def test_camera_snapshot_under_marimo_run(tmp_path_factory: pytest.TempPathFactory,
                                          fake_mic_wav: Path) -> None:
    from playwright.sync_api import sync_playwright

    from .test_marimo_browser import running_marimo

    root = tmp_path_factory.mktemp("camera-marimo")
    (root / "camera_app.py").write_text(MARIMO_APP.format(out=str(root)))
    with (
        running_marimo(root / "camera_app.py", "run") as url,
        sync_playwright() as pw,
        chromium(pw, tmp_path_factory.mktemp("chromium-camera-marimo"), fake_mic_wav,
                 viewport={"width": 1000, "height": 700}, origin=url.rstrip("/")) as context,
    ):
        context.grant_permissions(["camera", "microphone"], origin=url.rstrip("/"))
        page = context.pages[0]
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url, timeout=120_000)
        page.wait_for_selector(".rtnb-camera-snap", timeout=120_000)
        camera = page.evaluate(CAMERA_SIZE_JS)
        page.click(".rtnb-camera-snap")
        deadline = time.monotonic() + 30
        while not (root / "snap.json").exists() or not (root / "snap.json").read_text():
            assert time.monotonic() < deadline, f"no snapshot reached marimo's kernel: {errors}"
            page.wait_for_timeout(100)
        snap = json.loads((root / "snap.json").read_text())
        assert [snap["width"], snap["height"]] == camera and snap["size"] > 1000, snap
        assert snap["magic"] == "ffd8ff", "a JPEG file"
        assert errors == []
