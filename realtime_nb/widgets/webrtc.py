"""``WebRTCCall``: the browser's side of a Realtime WebRTC call, as a widget.

The browser holds the peer connection: the microphone (``getUserMedia``, with the browser's
echo cancellation), the assistant's voice (played by an ``<audio>`` element), and the
``oai-events`` data channel. The kernel never gives it the API key: :meth:`WebRTCCall.start`
sends one custom message with the URL to post the offer to and an *ephemeral* ``ek_`` client
secret (minted by the kernel with ``Session.create_client_secret``); the browser uses it once as
the offer's bearer and forgets it. No trait ever holds it.

The browser answers with the call id (``rtc_…``, from the answer's ``Location`` header), which
resolves the future :meth:`start` returned; the kernel then attaches its Session to the call as
the sideband (``Session.connect(call_id=...)``). That is what
:class:`~realtime_nb.widgets.SessionPanel` does for a ``Session(transport="webrtc")``.

Failures are reported with a reason, set in :attr:`WebRTCCall.failure` and raised from the
future as :class:`~realtime_nb.RealtimeError` ``webrtc_<reason>``:

* ``insecure_context`` — the page is not https/localhost: no microphone, no call;
* ``no_webrtc`` — the browser has no ``RTCPeerConnection``;
* ``mic_denied`` / ``no_mic`` / ``mic_busy`` — the microphone was refused, is missing, or busy;
* ``network`` / ``offer_refused`` — the offer could not be posted, or the server said no;
* ``ice_failed`` / ``ice_timeout`` — no media path (typically UDP blocked) within
  ``ice_timeout_s``.

Browser messages reach the kernel only between cell executions: never block a cell on the
future; await it from a background task (the panel does).
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import anywidget
import traitlets as t

from realtime_nb.client.errors import RealtimeError
from realtime_nb.credentials import Secret

from ._affinity import LoopAffinity

__all__ = ["FAILURE_HINTS", "WebRTCCall"]

_HERE = pathlib.Path(__file__).parent

#: What the user can do about each failure (the panel offers the WebSocket path for all).
FAILURE_HINTS = {
    "insecure_context": "Open Jupyter on https or http://localhost. Meanwhile the WebSocket "
                        "path works for text turns and audio sent from the kernel "
                        "(session.send_audio); the browser's microphone needs a secure page "
                        "on either path.",
    "no_webrtc": "Use a current Chrome, Edge, Firefox or Safari, or the WebSocket path.",
    "mic_denied": "Allow the microphone for this page and connect again, or use the WebSocket "
                  "path (it needs the microphone too, for speech).",
    "no_mic": "Plug in a microphone and connect again.",
    "mic_busy": "Close the application using the microphone and connect again.",
    "network": "Check that the server is up and reachable from the browser.",
    "offer_refused": "The server refused the call: see the message.",
    "ice_failed": "UDP is probably blocked between the browser and the server: use the "
                  "WebSocket path (TCP only).",
    "ice_timeout": "UDP is probably blocked between the browser and the server: use the "
                   "WebSocket path (TCP only).",
}

FailureCallback = Callable[[RealtimeError], Any]


class WebRTCCall(anywidget.AnyWidget):
    """The browser's peer connection of one call at a time (see the module docstring).

    Synced traits: ``status`` (``idle``, ``starting``, ``connecting``, ``connected``,
    ``failed``, ``ended``; set by the browser), ``error`` (the message shown), ``failure``
    (the reason code of the last failure, ``""`` if none), ``muted`` (the microphone track is
    disabled: the call stays up), ``echo_cancellation``, ``noise_suppression``,
    ``auto_gain_control`` (the browser's processing, at the next call), ``ice_timeout_s`` (how
    long the media may take to connect), ``ice_servers`` (``RTCIceServer`` dicts, e.g. a TURN
    server ``{"urls": "turn:turn.example.com:3478", "username": ..., "credential": ...}`` for
    networks where direct UDP is blocked; none by default), ``ice_transport_policy``
    (``"all"``, or ``"relay"``: only through a TURN server), ``assistant_speaking`` (the data
    channel's ``output_audio_buffer.started`` … ``stopped``).

    Kernel-side: ``call_id`` (the current call's id), ``connection_state`` (the browser's
    ``RTCPeerConnection.connectionState``), ``states`` (every state reported, with the kernel's
    ``time.monotonic()``).
    """

    _esm = _HERE / "webrtc.js"
    _css = _HERE / "widgets.css"

    status = t.Unicode("idle").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    failure = t.Unicode("").tag(sync=True)
    muted = t.Bool(False).tag(sync=True)
    echo_cancellation = t.Bool(True).tag(sync=True)
    noise_suppression = t.Bool(True).tag(sync=True)
    auto_gain_control = t.Bool(True).tag(sync=True)
    ice_timeout_s = t.Float(10.0, min=1.0).tag(sync=True)
    ice_servers = t.List(t.Dict()).tag(sync=True)
    ice_transport_policy = t.Enum(("all", "relay"), default_value="all").tag(sync=True)
    assistant_speaking = t.Bool(False).tag(sync=True)

    call_id = t.Unicode(None, allow_none=True, read_only=True)
    connection_state = t.Unicode("new", read_only=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._affinity = LoopAffinity()
        self._pending: asyncio.Future[str] | None = None
        self._ready: asyncio.Future[None] | None = None
        #: Whether the page has loaded this widget's code (it says so with a ``ready`` message).
        self.browser_ready = False
        self._on_failure: list[FailureCallback] = []
        self._on_hangup: list[Callable[[], Any]] = []
        self.states: list[tuple[float, str]] = []
        self.on_msg(self._affinity.wrap(self._on_browser_msg))

    # ------------------------------------------------------------------ kernel -> browser
    def ready(self) -> asyncio.Future[None]:
        """A future (on the running loop) that is done once a page has loaded this widget and
        can take :meth:`start` (a message sent before would be lost). Display the widget — or
        the panel holding it — first; the message comes once the cell has finished."""
        if self._ready is None or self._ready.get_loop() is not asyncio.get_running_loop():
            self._ready = asyncio.get_running_loop().create_future()
            if self.browser_ready:
                self._ready.set_result(None)
        return self._ready

    def start(self, url: str, secret: Secret | Any) -> asyncio.Future[str]:
        """Ask the browser to place a call: post its offer to ``url`` with ``secret``.

        ``secret`` is the ephemeral client secret (a :class:`~realtime_nb.credentials.Secret`
        or a ``ClientSecret``); it travels in this one message and is kept nowhere. Returns a
        future (on the running loop) of the call id; it fails with ``webrtc_<reason>`` when the
        browser reports a failure before the call exists. Must be called from a coroutine or
        callback on the kernel's loop.
        """
        value = secret.value if hasattr(secret, "value") else secret
        if not isinstance(value, Secret):
            raise TypeError("start() takes the client secret as a Secret or ClientSecret")
        if not value.reveal().startswith("ek_"):
            raise ValueError("only an ephemeral client secret (ek_...) may go to the browser")
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self.set_trait("call_id", None)
        self.set_trait("connection_state", "new")
        self._pending = asyncio.get_running_loop().create_future()
        self.send({"type": "start", "url": url, "secret": value.reveal(),
                   "ice_timeout_ms": int(self.ice_timeout_s * 1000)})
        return self._pending

    def hangup(self) -> None:
        """Close the browser's peer connection (the kernel hangs up the call on the server:
        ``Session.close()``)."""
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self.send({"type": "hangup"})

    def on_failure(self, callback: FailureCallback) -> None:
        """Call ``callback(error)`` for every failure the browser reports (also after the call
        was placed: ICE failure or timeout)."""
        self._on_failure.append(callback)

    def on_hangup_request(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` when the user presses Hang up in the widget."""
        self._on_hangup.append(callback)

    # ------------------------------------------------------------------ browser -> kernel
    def _on_browser_msg(self, _widget: Any, content: Any, _buffers: Sequence[Any]) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        pending = self._pending
        if kind == "ready":
            self.browser_ready = True
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif kind == "call":
            call_id = str(content.get("call_id") or "")
            self.set_trait("call_id", call_id or None)
            if pending is not None and not pending.done():
                if call_id:
                    pending.set_result(call_id)
                else:
                    pending.set_exception(RealtimeError(
                        "invalid_call_answer", "The server answered the offer without a call "
                        "id in its Location header.", source="server", fatal=False))
        elif kind == "state":
            state = str(content.get("state"))
            self.set_trait("connection_state", state)
            self.states.append((time.monotonic(), state))
        elif kind == "failed":
            reason = str(content.get("reason") or "unknown")
            err = RealtimeError(f"webrtc_{reason}", str(content.get("message") or reason),
                                source="connection", fatal=False,
                                hint=FAILURE_HINTS.get(reason, "Use the WebSocket path."))
            if pending is not None and not pending.done():
                pending.set_exception(err)
                pending.exception()  # retrieved: the failure callbacks report it
            for cb in list(self._on_failure):
                cb(err)
        elif kind == "hangup_request":
            for cb2 in list(self._on_hangup):
                cb2()
