"""The WebRTC path of the panel: the browser holds the call, the kernel steers it.

For a ``Session(transport="webrtc")`` the capture row holds a
:class:`~realtime_nb.widgets.WebRTCCall` instead of the mic and the player. :meth:`CallPath.place`
mints an ephemeral client secret in the kernel and hands only that to the page (one widget
message, never a trait), which opens the microphone (echo cancellation on), posts its SDP offer
to ``…/v1/realtime/calls`` and plays the assistant itself; the call id it sends back attaches the
Session as the call's sideband. When the page cannot carry the call (insecure page, microphone
refused, no media path within ``WebRTCCall.ice_timeout_s``) the failure is recorded as
``webrtc_<reason>`` and the fallback button ("Use the WebSocket path") appears; the widget's
Hang up button ends the call on the server and in the page.

What the caller must know: a page must show the panel within :data:`CALL_TIMEOUT_S`
(``webrtc_no_browser``), and the browser must place the call within it (``webrtc_timeout``: a
person may need a while to allow the microphone). The API key never leaves the kernel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from realtime_nb.client.errors import RealtimeError

from ._outbox import PanelCalls
from .webrtc import WebRTCCall

__all__ = ["CALL_TIMEOUT_S", "CallPath"]

#: Seconds the browser may take to place a WebRTC call (loading the widget, the microphone
#: prompt, the offer): a person may need a while to allow the microphone.
CALL_TIMEOUT_S = 120.0


class CallPath:
    """The panel's WebRTC call (see the module docstring).

    Args:
        session: the :class:`~realtime_nb.Session` (``transport="webrtc"``).
        calls: the panel's :class:`~._outbox.PanelCalls`.
        options: the browser's processing for the call (``echo_cancellation``,
            ``noise_suppression``, ``auto_gain_control``); :meth:`set_option` changes them.
        use_websocket: what the fallback button does (the panel's ``use_websocket``).

    Attributes: ``widget`` (the :class:`WebRTCCall`, None until :attr:`call` first creates
    it), ``fallback_button``.
    """

    def __init__(self, session: Any, calls: PanelCalls, options: dict[str, bool],
                 use_websocket: Callable[[], Any]) -> None:
        self.session = session
        self._calls = calls
        self.options = options
        self.widget: WebRTCCall | None = None
        self.fallback_button = widgets.Button(
            description="Use the WebSocket path", icon="exchange",
            tooltip="Connect over the kernel's WebSocket instead (mic and player in the page)",
            layout=widgets.Layout(width="auto", display="none"))
        self.fallback_button.add_class("rtnb-fallback")
        self.fallback_button.on_click(calls.on_loop(lambda _b: use_websocket()))

    @property
    def call(self) -> WebRTCCall:
        """The :class:`WebRTCCall` (created on first use)."""
        if self.widget is None:
            on_loop = self._calls.on_loop
            self.widget = WebRTCCall(**self.options)
            self.widget.on_failure(on_loop(self._failed))
            self.widget.on_hangup_request(on_loop(self._hang_up))
            self.widget.observe(on_loop(lambda _ch: self._calls.changed()), names="status")
        return self.widget

    def set_option(self, name: str, value: bool) -> None:
        """A processing option changed in the capture row (others are ignored here)."""
        if name in self.options:
            self.options[name] = value
            if self.widget is not None:
                setattr(self.widget, name, value)

    def hangup(self) -> None:
        """Hang up in the page (if the call widget exists)."""
        if self.widget is not None:
            self.widget.hangup()

    async def place(self) -> None:
        """A new WebRTC call: secret minted here, offer posted by the browser, sideband
        attached. Raises RealtimeError (``webrtc_<reason>`` for the browser's failures)."""
        s = self.session
        call = self.call
        self.fallback_button.layout.display = "none"
        try:
            await asyncio.wait_for(asyncio.shield(call.ready()), CALL_TIMEOUT_S)
        except TimeoutError:
            raise RealtimeError(
                "webrtc_no_browser", "No page has shown this panel's call widget, so no "
                "browser can place the call.", source="client", fatal=False,
                hint="Display the panel in a notebook page first; without a browser dial "
                "from the kernel (realtime_nb.client.webrtc.KernelCall) or use the WebSocket "
                "transport.") from None
        from realtime_nb.client.webrtc import calls_url

        secret = await s.create_client_secret()
        backend = s._backend
        future = call.start(calls_url(backend.url), secret.value)
        del secret  # the page has it, once; the kernel needs it no more
        try:
            call_id = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        except TimeoutError:
            call.hangup()
            raise RealtimeError("webrtc_timeout", f"The browser did not place the call within "
                                f"{CALL_TIMEOUT_S:g} s.", source="connection", fatal=False,
                                hint="Allow the microphone when the browser asks, or use the "
                                "WebSocket path.") from None
        await s.connect(call_id=call_id)

    def _failed(self, err: RealtimeError) -> None:
        """The browser could not (or can no longer) carry the call: say why, offer the
        WebSocket, and end the session's side of a call that was placed."""
        if self._calls.closed:
            return
        self.fallback_button.layout.display = ""
        self._calls.failed("webrtc", err)
        s = self.session
        webrtc = getattr(s, "transport", "websocket") == "webrtc"
        if webrtc and s.state in ("connected", "connecting"):
            self._calls.spawn(s.close(), "hang up the failed call")

    def _hang_up(self) -> None:
        """The widget's Hang up button: end the call on the server and in the page."""
        self.hangup()
        if self.session.state in ("connected", "connecting", "reconnecting", "disconnected"):
            self._calls.spawn(self.session.close(), "hang up")
