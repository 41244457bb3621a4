"""A camera snapshot from the panel, end to end: JupyterLab 4, headless Chromium, a fake camera.

Chromium's ``--use-fake-device-for-media-stream`` gives a fake camera (a moving test pattern).
The notebook runs a local server inside the kernel whose responder records the pictures it
receives, and shows the panel of a Session on it. In the page, text is typed into the picture
row and the Snapshot button is pressed: the camera opens, one frame becomes a JPEG that reaches
the kernel as a comm buffer, the panel sends it into the conversation with the text, and (VAD on:
hands-free) asks for a response. Pinned down: the kernel's responder sees a JPEG of exactly the
size the page's camera track reports, with the typed text beside it; the transcript in the page
shows the thumbnail and the answer; the camera is closed again after the snapshot; no console
errors from our widgets. The page is kept as ``test-artifacts/camera-lab.png``. Served under a
plain-http host name (not a secure context), the camera widget says why it cannot work.
(test_camera_marimo_browser.py: the same widget under marimo.)
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from .conftest import (
    ARTIFACTS,
    INSECURE_HOST,
    JupyterPage,
    chromium,
    insecure_notebook,
    notebook_json,
    notebook_root,
    open_notebook,
    running_jupyter,
    screenshot,
    wait_for_text,
)

pytestmark = pytest.mark.browser

NOTEBOOK = "camera.ipynb"
#: The size the page's camera delivers for the widget's constraints (ideal 640×480).
CAMERA_SIZE_JS = """async () => {
    const stream = await navigator.mediaDevices.getUserMedia(
        {video: {width: {ideal: 640}, height: {ideal: 480}}});
    const s = stream.getVideoTracks()[0].getSettings();
    stream.getTracks().forEach((t) => t.stop());
    return [s.width, s.height];
}"""
TEXT = "What do you see?"


def _cells(out: Path) -> list[str]:
    return [
        f"""import json, pathlib
from realtime_nb import Session
from realtime_nb.server import LocalServer
from realtime_nb.server.engines import CallableResponder, Engines
from realtime_nb.server.engines.responder import latest_user_text
OUT = pathlib.Path({str(out)!r})
def respond(request):
    images = request.latest_images
    if not images:
        return "No picture."
    img = images[0]
    (OUT / "seen.jpg").write_bytes(img.data)
    (OUT / "seen.json").write_text(json.dumps({{
        "mime": img.mime_type, "width": img.width, "height": img.height,
        "detail": img.detail, "text": latest_user_text(request.conversation)}}))
    return f"I received a {{img.width}} by {{img.height}} picture."
server = LocalServer(port=0, engines=Engines(responder=CallableResponder(respond,
                                                                         takes="request")))
await server.start(warm_up=False)
s = Session(url=server.url, record=False)
await s.connect()
s.connect""",
        """from realtime_nb.widgets.panel import panel_for
panel = panel_for(s)
panel""",
        """(OUT / "ready").write_text("1")""",
    ]


@pytest.fixture(scope="module")
def jp(tmp_path_factory: pytest.TempPathFactory, fake_mic_wav: Path,
       jupyter_env: dict[str, str]) -> Iterator[JupyterPage]:
    from playwright.sync_api import sync_playwright

    root = notebook_root(tmp_path_factory.mktemp("camera-lab"), NOTEBOOK, _cells)
    with (
        running_jupyter("lab", root, jupyter_env,
                        ["--ServerApp.allow_remote_access=True"]) as base_url,
        sync_playwright() as pw,
        chromium(pw, tmp_path_factory.mktemp("chromium-camera"), fake_mic_wav,
                 viewport={"width": 1400, "height": 1400}, origin=base_url,
                 extra_args=[f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"]) as context,
    ):
        context.grant_permissions(["camera", "microphone"], origin=base_url)
        page_ = open_notebook(context.pages[0], "lab", base_url, root, NOTEBOOK)
        page_.wait_for_file("ready", timeout_s=90)
        page_.page.wait_for_selector(".rtnb-panel .rtnb-camera-snap", timeout=30_000)
        page_.wait_for_kernel("print(s.state)", "connected", timeout_s=60)
        try:
            yield page_
        finally:
            with contextlib.suppress(Exception):  # JupyterLab's news prompt hides a corner
                page_.page.get_by_role("button", name="No", exact=True).click(timeout=1000)
            screenshot(page_, "camera-lab.png")


def test_snapshot_reaches_the_kernels_responder_as_a_jpeg_of_the_cameras_size(
        jp: JupyterPage) -> None:
    page = jp.page
    camera = page.evaluate(CAMERA_SIZE_JS)
    page.fill(".rtnb-panel .rtnb-picture-text input", TEXT)
    jp.wait_for_kernel("print(panel.picture_text.value)", TEXT)
    page.click(".rtnb-panel .rtnb-camera-snap")
    try:
        seen = json.loads(jp.wait_for_file("seen.json", timeout_s=30).read_text())
    except AssertionError as exc:
        state = jp.execute("print(panel.camera.status, repr(panel.camera.error), "
                           "panel.camera.last, panel.errors, panel.pictures)")
        raise AssertionError(f"{exc}\nkernel: {state}\npage: {jp.console}") from None
    assert seen == {"mime": "image/jpeg", "width": camera[0], "height": camera[1],
                    "detail": "auto", "text": TEXT}
    with Image.open(io.BytesIO((jp.out / "seen.jpg").read_bytes())) as img:
        assert (img.format, img.size) == ("JPEG", tuple(camera))
    reply = f"I received a {camera[0]} by {camera[1]} picture."
    page.wait_for_function(
        """(texts) => {
            const el = document.querySelector('.rtnb-panel .rtnb-transcript');
            return !!el && texts.every((t) => el.innerText.includes(t))
                && !!el.querySelector('img.rtnb-turn-thumb');
        }""", arg=[TEXT, reply, f"{camera[0]}×{camera[1]} JPEG image"], timeout=30_000)
    record = json.loads(jp.execute("print(json.dumps(panel.pictures))"))
    assert [(r["source"], r["width"], r["height"], r["responded"]) for r in record] == [
        ("camera", camera[0], camera[1], True)]
    jp.wait_for_kernel("print(panel.camera.status)", "idle")  # closed again after the snap
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".rtnb-panel").screenshot(path=str(ARTIFACTS / "camera-lab-panel.png"))
    print(f"\ncamera {camera[0]}×{camera[1]}: the responder saw {seen}")


def test_preview_keeps_the_camera_open_across_snapshots_until_hidden(jp: JupyterPage) -> None:
    """Preview shows the live camera; a snapshot then leaves it open (and is the second
    picture of the conversation); Hide preview closes it; ``camera.snap()`` from the kernel
    takes a third (opening and closing the camera for it)."""
    page = jp.page
    page.click(".rtnb-panel .rtnb-camera-live")
    jp.wait_for_kernel("print(panel.camera.status)", "live")
    page.wait_for_function(
        """() => { const v = document.querySelector('.rtnb-panel .rtnb-camera-preview');
                   return !!v && v.style.display !== 'none' && v.videoWidth > 0; }""",
        timeout=10_000)
    page.click(".rtnb-panel .rtnb-camera-snap")
    jp.wait_for_kernel("print(len(panel.pictures))", "2", timeout_s=20)
    assert jp.execute("print(panel.camera.status)").strip() == "live"
    page.click(".rtnb-panel .rtnb-camera-live")
    jp.wait_for_kernel("print(panel.camera.status)", "idle")
    assert page.evaluate("""() => document.querySelector('.rtnb-panel .rtnb-camera-preview')
        .style.display""") == "none"
    jp.execute("panel.camera.snap()")  # asked from the kernel: the same path, one message
    jp.wait_for_kernel("print(len(panel.pictures), panel.camera.last.reason)", "3 kernel",
                       timeout_s=20)
    jp.wait_for_kernel("print(panel.camera.status)", "idle")


def test_camera_explains_an_insecure_page(jp: JupyterPage) -> None:
    """Under a plain-http host name the Snapshot button explains: https or localhost, or
    upload a file; the ``error`` trait reaches the kernel."""
    name = "camera_insecure.ipynb"
    error_file = jp.out / "camera_insecure_error.txt"
    cells = [
        "import pathlib\nfrom realtime_nb.widgets import CameraWidget\n"
        "cam = CameraWidget()\n"
        f"cam.observe(lambda ch: pathlib.Path({str(error_file)!r}).write_text(ch['new']), "
        "names='error')\ncam"
    ]
    (jp.root / name).write_text(json.dumps(notebook_json(cells)))
    with insecure_notebook(jp.page.context, jp.base_url, jp.root, name) as insecure:
        page = insecure.page
        page.wait_for_selector(".rtnb-camera-snap", timeout=30_000)
        page.click(".rtnb-camera-snap")
        page.wait_for_selector(".rtnb-camera-error:has-text('secure page')", timeout=10_000)
        text = page.inner_text(".rtnb-camera-error")
        assert "https" in text and "localhost" in text and "picture file" in text, text
        wait_for_text(page, error_file, "secure page")  # the error trait reached the kernel
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "camera-insecure-lab.png"))


def test_no_console_errors_from_our_widgets(jp: JupyterPage) -> None:
    jp.page.wait_for_timeout(200)
    assert jp.our_console_errors() == []
