"""WebRTC unavailable: the panel says why and its WebSocket path connects (JupyterLab 4).

A Chromium with a fake microphone device but no permission for it at first:

* the refused microphone (``webrtc_mic_denied``);
* the permission granted, the call placed, but no media path: reported after the widget's
  ``ice_timeout_s`` (or as an ICE failure), and the kernel hangs the placed call up. The path
  is cut in the page: ``ice_transport_policy = "relay"`` with no TURN server leaves the browser
  no candidate, which is what a network that drops UDP leaves it. (Chromium's
  ``--force-webrtc-ip-handling-policy=disable_non_proxied_udp`` did not stop the call from
  connecting here, and a firewall rule would cut the other tests' calls too.)
* an insecure page (a host name that is not localhost: no ``getUserMedia``,
  ``webrtc_insecure_context``).

Each is shown in the page with its reason and kept in the panel's errors; the panel's "Use the
WebSocket path" button then connects the same Session over the kernel's socket. Screenshots:
``test-artifacts/webrtc-fallback-*.png``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    ARTIFACTS,
    INSECURE_HOST,
    JupyterPage,
    insecure_notebook,
    notebook_in_chromium,
    notebook_json,
    notebook_root,
)
from .test_webrtc_browser import KEY, NOTEBOOK, _setup

pytestmark = pytest.mark.browser


def _fallback_cells(out: Path) -> list[str]:
    return [_setup(out), "box = widgets.VBox()\nbox", """(OUT / "ready").write_text("1")"""]


def _insecure_cells(out: Path) -> list[str]:
    return [_setup(out), """s3 = webrtc_session()
p3 = panel_for(s3)
p3.connect()
p3"""]


@pytest.fixture(scope="module")
def fallback(tmp_path_factory: pytest.TempPathFactory, jupyter_env: dict[str, str]
             ) -> Iterator[tuple[JupyterPage, Any, str]]:
    """JupyterLab with a Chromium that has a fake microphone device but no permission for it
    yet, and no UDP for WebRTC; the notebook shows an empty box the tests fill with panels."""
    root = notebook_root(tmp_path_factory.mktemp("webrtc-fallback"), NOTEBOOK, _fallback_cells)
    (root / "insecure.ipynb").write_text(json.dumps(notebook_json(
        _insecure_cells(root / "out"))))
    with notebook_in_chromium(
        "lab", root, NOTEBOOK, {**jupyter_env, "RTNB_TEST_KEY": KEY},
        tmp_path_factory.mktemp("chromium-webrtc-fallback"), None,
        viewport={"width": 1400, "height": 1100},
        jupyter_args=["--ServerApp.allow_remote_access=True"],
        chromium_args=["--use-fake-device-for-media-stream",
                       f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"],
    ) as page_:
        page_.wait_for_file("ready", timeout_s=90)
        yield page_, page_.page.context, page_.base_url


def _show_new_panel(jp: JupyterPage, name: str, ice_timeout_s: float = 10,
                    no_path: bool = False) -> None:
    jp.execute(f"""{name} = webrtc_session()
p_{name} = panel_for({name})
p_{name}.call.ice_timeout_s = {ice_timeout_s}
p_{name}.call.ice_transport_policy = {"relay" if no_path else "all"!r}
box.children = (p_{name},)
p_{name}.connect()""")


def _fallback_works(jp: JupyterPage, name: str) -> None:
    """The panel's 'Use the WebSocket path' button connects the same Session over the socket."""
    button = jp.page.locator(".rtnb-panel .rtnb-fallback")
    button.wait_for(state="visible", timeout=10_000)
    button.click()
    jp.wait_for_kernel(f"print({name}.transport, {name}.state)", "websocket connected",
                       timeout_s=30)
    jp.page.wait_for_selector(".rtnb-panel .rtnb-mic-button", timeout=10_000)
    jp.page.wait_for_function(
        """() => document.querySelector('.rtnb-panel .rtnb-status-line')
                 .innerText.includes('WebSocket')""", timeout=10_000)


def test_refused_microphone_is_reported_and_the_websocket_path_connects(
        fallback: tuple[JupyterPage, Any, str]) -> None:
    jp, _context, _base = fallback
    _show_new_panel(jp, "s1")
    jp.page.wait_for_selector(".rtnb-call-error:has-text('refused access to the microphone')",
                              timeout=30_000)
    jp.wait_for_kernel("print(p_s1.errors[-1][1].code)", "webrtc_mic_denied", timeout_s=15)
    # the kernel knows first; the status line follows with the panel's next redraw
    jp.page.wait_for_function(
        """() => document.querySelector('.rtnb-panel .rtnb-status-line')
                 .innerText.includes('webrtc_mic_denied')""", timeout=10_000)
    status = jp.page.inner_text(".rtnb-panel .rtnb-status-line")
    assert "webrtc_mic_denied" in status and "WebRTC" in status, status
    ARTIFACTS.mkdir(exist_ok=True)
    jp.page.screenshot(path=str(ARTIFACTS / "webrtc-fallback-mic-denied.png"), full_page=True)
    _fallback_works(jp, "s1")


def test_no_media_path_times_out_and_the_websocket_path_connects(
        fallback: tuple[JupyterPage, Any, str]) -> None:
    jp, context, base_url = fallback
    context.grant_permissions(["microphone"], origin=base_url)
    _show_new_panel(jp, "s2", ice_timeout_s=3, no_path=True)
    try:
        jp.wait_for_kernel("print(p_s2.errors[-1][1].code in ('webrtc_ice_timeout', "
                           "'webrtc_ice_failed') if p_s2.errors else None)", "True",
                           timeout_s=30)
    except AssertionError as err:
        diag = jp.execute("print(p_s2.call.status, p_s2.call.connection_state, p_s2.call.states,"
                          " s2.state, p_s2.errors)")
        raise AssertionError(f"{err}\n{diag}\n{jp.console}") from None
    jp.page.wait_for_selector(".rtnb-call-error:has-text('UDP')", timeout=10_000)
    # the call had been placed: the kernel hung it up, and its sideband is closed
    jp.wait_for_kernel("print(s2.state, s2.call_id in server.calls)",
                       "closed False", timeout_s=15)
    jp.page.screenshot(path=str(ARTIFACTS / "webrtc-fallback-udp-blocked.png"), full_page=True)
    _fallback_works(jp, "s2")


def test_insecure_page_is_reported(fallback: tuple[JupyterPage, Any, str]) -> None:
    jp, context, base_url = fallback
    with insecure_notebook(context, base_url, jp.root, "insecure.ipynb") as insecure:
        page = insecure.page
        page.wait_for_selector(".rtnb-call-error:has-text('secure page')", timeout=60_000)
        insecure.wait_for_kernel("print(p3.errors[-1][1].code if p3.errors else None)",
                                 "webrtc_insecure_context", timeout_s=15)
        hint = insecure.execute("print(p3.errors[-1][1].hint)")
        assert "https" in hint and "WebSocket" in hint, hint
        page.wait_for_selector(".rtnb-panel .rtnb-fallback", state="visible", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "webrtc-fallback-insecure.png"), full_page=True)
