"""``SessionPanel``: a Realtime session in the notebook — talk, listen, read, tune, watch.

::

    from realtime_nb import Session
    s = Session()                 # local offline server unless OPENAI_API_KEY is set
    s                             # displays its panel (one per session); or %realtime
    await s.connect()             # or press Connect in the panel

What it shows, top to bottom: the status line (backend, URL with secrets masked, connection
state, the last error with its hint), the capture row (streaming mic or record-and-send, the
browser's audio processing, "mute the mic while the assistant speaks", the player of the
assistant's voice), what the current mode does, the input-buffer gauge (what a commit would take
now, the 100 ms minimum, whether the server's VAD hears speech), the transcript and the live
settings side by side, usage totals, and the event timeline.

How it drives the session (what the caller must know):

* **Never holds the kernel.** Every session call the panel makes (appends, commits, response
  requests, ``session.update``) runs as a task on the running loop, one after another in the
  order asked (an outbox), so audio, mode switches and commits reach the server in order. A
  failure is shown in the status line and kept in :attr:`SessionPanel.errors`.
* **Capture.** ``capture="mic"`` streams the :class:`~realtime_nb.widgets.MicWidget`'s 100 ms
  PCM16 chunks as they arrive (``input_audio_buffer.append``). Its ``hands-free`` mode leaves turn
  taking to the server's VAD; ``push-to-talk`` is manual mode: the panel sets the session's
  ``turn_detection`` to null when you choose it (and restores the VAD it replaced when you go
  back to hands-free), and on each release commits the audio and asks for a response. In manual
  mode a hands-free take works the same way (Start … Stop is one turn); with VAD on, stopping the
  mic in the middle of speech appends enough silence for the VAD to end the turn.
  ``capture="recorder"`` records with ipywebrtc and sends each take when it stops
  (:class:`~realtime_nb.widgets.recorder.RecorderCapture`): committed and answered in manual
  mode; with VAD on, followed by enough silence for the server's VAD to end the turn.
* **Playback.** ``response.output_audio.delta`` audio is forwarded to the
  :class:`~realtime_nb.widgets.PlayerWidget` in small batches (every ~40 ms) as it arrives.
* **Barge-in.** When the server's VAD hears the user (``input_audio_buffer.speech_started``), when
  a push-to-talk or record take starts, on :meth:`SessionPanel.interrupt` or on the player's Stop
  button, playback stops at once and the browser reports how many milliseconds of the item were
  really played; the panel sends ``conversation.item.truncate`` with exactly that
  (``audio_end_ms``), cancelling the response first unless the server's VAD already does
  (``interrupt_response``). The server may have cancelled already: the truncate is sent anyway,
  and ``item_truncate_invalid_audio_end_ms`` / ``response_cancel_not_active`` are treated as the
  benign races they are. With ``interrupt_response: false`` the VAD does not interrupt playback.
  These turn rules (barge-in, truncation, push-to-talk, the silence that ends a VAD turn) live
  without widgets in :mod:`realtime_nb.client.turn_taking`; the panel owns the player and mic.
* **Batched UI.** Session events only mark the panel stale; it is redrawn at most once per
  ``refresh_s`` seconds, in the turn of the loop that brought a change whenever it can (no
  wake-up of its own), and only what changed is sent to the browser. The event timeline's
  new events go out with these redraws.
* **WebRTC.** For a ``Session(transport="webrtc")`` the capture row holds a
  :class:`~realtime_nb.widgets.WebRTCCall` instead of the mic and the player: Connect mints an
  ephemeral client secret in the kernel, hands only that to the browser, which opens the
  microphone (echo cancellation on), posts its SDP offer and plays the assistant itself; the
  call id it sends back attaches the Session as the call's sideband, so the transcript, settings,
  timeline and tools work as on the WebSocket. Barge-in is the server's (it cuts its own output
  on speech; Interrupt sends ``output_audio_buffer.clear``). When WebRTC is unavailable (insecure
  page, microphone refused, no media path within ``WebRTCCall.ice_timeout_s``) the status line
  says why and a button offers the WebSocket path (:meth:`SessionPanel.use_websocket`).
* **MCP approvals.** Each pending ``mcp_approval_request`` gets a row under the transcript with
  Approve / Deny buttons (:meth:`SessionPanel.answer_approval`): the answer is sent, and once the
  approved call has run (at once after a denial) the panel asks for the response that uses it.
* **Pictures.** The picture row sends an image into the conversation as a user message
  (``Session.send_image``), with the text typed beside it if any: a file chosen in the upload
  button (``accept="image/*"``; PNG/JPEG as they are, other formats re-encoded) or a snapshot of
  the browser's camera (:class:`~realtime_nb.widgets.CameraWidget`: a JPEG of the camera's own
  size). In hands-free mode (server VAD on) a response is asked for right after (once the
  active one is done); in push-to-talk the picture waits for your next spoken turn. The
  picture is encoded in a worker thread, then sent through the outbox; what was sent is listed
  in :attr:`SessionPanel.pictures`.
* **Secrets.** The API key never reaches a widget: the panel shows ``session.url``, which masks
  credentials; over WebRTC the browser gets only the ephemeral secret, in one message.

Where each part lives (this module lays the panel out, wires its parts and routes the session's
events to them):

* :mod:`realtime_nb.client.turn_taking` — the turn rules, without widgets: barge-in and
  truncation by what was heard, push-to-talk as manual mode, the silence that ends a VAD turn;
* ``_outbox`` — the outbox and :class:`~._outbox.PanelCalls` (background tasks, the failure
  record), the handle every part acts through;
* ``_redraw`` — when the panel redraws, and sending only what changed;
* ``_panel_html`` — the stylesheet and the HTML of the status line, gauges, usage and mode note;
* ``_capture`` — the capture row (streaming mic, record-and-send, the browser's processing);
* ``_playback`` — the assistant's voice to the player, and stopping it on a barge-in;
* ``_call_path`` — the WebRTC call, its failures and the WebSocket fallback;
* ``_pictures`` — the picture row (file upload, camera, text);
* ``_approvals`` — the MCP approval rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import traitlets as t

from realtime_nb.client.errors import RealtimeError
from realtime_nb.client.turn_taking import PAD_MARGIN_MS as PAD_MARGIN_MS  # kept importable
from realtime_nb.client.turn_taking import TurnTaking
from realtime_nb.vad.settings import SemanticVadSettings

from ._affinity import LoopAffinity
from ._approvals import ApprovalRows
from ._call_path import CALL_TIMEOUT_S as CALL_TIMEOUT_S  # kept importable
from ._call_path import CallPath
from ._capture import CaptureRow
from ._outbox import PanelCalls
from ._panel_html import GAUGE_FULL_MS as GAUGE_FULL_MS  # kept importable
from ._panel_html import PANEL_CSS, call_gauge_html, gauge_html, mode_html, status_html, usage_html
from ._pictures import PictureRow
from ._playback import PlayerFeed
from ._redraw import PartMemo, RedrawSchedule, set_value, show_live
from ._tree import close_tree
from .controls import OFF, SessionControls
from .transcript import TranscriptView
from .webrtc import WebRTCCall

__all__ = ["PANEL_CSS", "SessionPanel", "display_session", "panel_for"]

#: The longest trailing silence semantic_vad waits for, by eagerness (auto = medium). Kept for
#: callers of this module; read from its one home, :class:`~realtime_nb.vad.SemanticVadSettings`
#: (the silence a take is padded with: ``client.turn_taking.end_of_turn_silence_ms``).
SEMANTIC_MAX_WAIT_MS = {e: SemanticVadSettings(e).max_wait_ms
                        for e in ("low", "medium", "high", "auto")}


class SessionPanel(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped: VBox is Any
    """The notebook panel of a Session (see the module docstring).

    Args:
        session: the :class:`~realtime_nb.Session` (connected or not).
        capture: ``"mic"`` (streaming) or ``"recorder"`` (ipywebrtc record-then-send).
        mode: the mic's ``"hands-free"`` or ``"push-to-talk"`` (push-to-talk switches the session
            to manual mode).
        timeline: embed the event :class:`~realtime_nb.widgets.Timeline`.
        echo_cancellation, noise_suppression, auto_gain_control: the browser's processing of
            the microphone (both capture paths).
        mute_while_playing: the mic sends silence while the assistant's voice plays (no echo,
            but no barge-in by voice either).
        refresh_s: the shortest time between two redraws (default 0.15 s, under 7 a second;
            the mic's 100 ms chunks are drawn every other chunk, each time in the turn of the
            loop that brought the chunk, without a wake-up of its own).
        audio_flush_s: how long assistant audio may gather before it is sent to the player.

    Parts (attributes): ``mic``, ``player``, ``recorder`` and ``call`` (the
    :class:`~realtime_nb.widgets.WebRTCCall`; both created on first use), ``controls``,
    ``transcript``, ``timeline``, ``status``, ``gauge``, ``usage``, ``fallback_button``;
    ``turns`` (the :class:`~realtime_nb.client.turn_taking.TurnTaking` rules it follows).
    The transport is the session's (``session.transport``).
    Kernel-side trait: ``capture``.
    """

    capture = t.Enum(("mic", "recorder"), default_value="mic")

    def __init__(
        self,
        session: Any,
        *,
        capture: str = "mic",
        mode: str = "hands-free",
        timeline: bool = True,
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        auto_gain_control: bool = True,
        mute_while_playing: bool = False,
        refresh_s: float = 0.15,
        audio_flush_s: float = 0.04,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.add_class("rtnb-panel")
        #: Browser messages may arrive on a kernel subshell thread: run them on this loop.
        self._affinity = LoopAffinity()
        on_loop = self._affinity.wrap
        self.session = session
        #: When the panel redraws (at most every refresh_s, in the turn that brought a change).
        self._redraws = RedrawSchedule(self._draw, refresh_s, self._affinity)
        #: What each part showed last, by the inputs it was built from.
        self._memo = PartMemo()
        #: The outbox, background tasks and the failure record, shared with the parts.
        self._calls = PanelCalls(self._affinity, self._dirty)
        #: (label, exception) of every failed panel action and session error, in order.
        self.errors: list[tuple[str, BaseException]] = self._calls.errors
        self._outbox = self._calls.outbox
        #: The turn rules (barge-in and truncation, push-to-talk, ending a VAD turn).
        self.turns = TurnTaking(session, self._outbox.put)
        #: What barge-ins sent: dicts of item_id, audio_end_ms, reason, result.
        self.truncations: list[dict[str, Any]] = self.turns.truncations
        #: The assistant's voice: audio deltas to the player in batches, barge-in.
        self._feed = PlayerFeed(self.turns, self._calls, audio_flush_s)
        self._mode_switching = False
        self._synced_config: Any = None
        self._closed = False
        #: The WebRTC path: the page's call widget, placing and ending the call, the fallback.
        self._webrtc = CallPath(session, self._calls,
                                {"echo_cancellation": echo_cancellation,
                                 "noise_suppression": noise_suppression,
                                 "auto_gain_control": auto_gain_control},
                                use_websocket=lambda: self.use_websocket())

        # --- parts
        self.style_html = widgets.HTML(PANEL_CSS, layout=widgets.Layout(display="none"))
        self.status = widgets.HTML("")
        self.status.add_class("rtnb-status-line")
        self.connect_button = widgets.Button(description="Connect", icon="plug",
                                             layout=widgets.Layout(width="auto"))
        self.connect_button.add_class("rtnb-connect")
        self.connect_button.on_click(on_loop(lambda _b: self.connect()))
        self.fallback_button = self._webrtc.fallback_button
        self.player = self._feed.player
        #: The capture row: streaming mic or record-and-send, the browser's processing.
        self._capture = CaptureRow(
            session, self.turns, self._calls, self._feed, self._webrtc, lambda: self.capture,
            on_audio_sent=self._dirty_live, capture=capture, mode=mode,
            echo_cancellation=echo_cancellation, noise_suppression=noise_suppression,
            auto_gain_control=auto_gain_control, mute_while_playing=mute_while_playing)
        self.mic = self._capture.mic
        self.capture_choice = self._capture.choice
        self.options = self._capture.options
        self.capture_box = self._capture.box
        self.capture_row = self._capture.row
        # --- pictures
        self._pictures = PictureRow(session, self.turns, self._calls)
        self.picture_upload = self._pictures.upload
        self.camera = self._pictures.camera
        self.picture_text = self._pictures.text
        self.picture_row = self._pictures.row
        #: Pictures sent from the picture row: dicts of source ("upload: name" / "camera"),
        #: item_id, mime_type, width, height, note (downsized / re-encoded), text, responded.
        self.pictures: list[dict[str, Any]] = self._pictures.sent
        self.mode_note = widgets.HTML("")
        self.mode_note.add_class("rtnb-mode-note")
        self.gauge = widgets.HTML("")
        self.usage = widgets.HTML("")
        self.transcript = TranscriptView(session)
        self._approval_rows = ApprovalRows(session, self._calls)
        #: One row per pending MCP approval request, with Approve / Deny buttons.
        self.approvals = self._approval_rows.box
        self.controls = SessionControls(session, run=self._outbox.put,
                                        layout=widgets.Layout(width="100%"))
        self.timeline: Any = None
        if timeline:
            from .timeline import Timeline

            self.timeline = Timeline(session, window_s=60.0)
            self.timeline._flush_soon = self._dirty_live  # batches go out with the redraws

        # --- layout
        def section(text: str) -> widgets.HTML:
            h = widgets.HTML(text)
            h.add_class("rtnb-section")
            return h

        left = widgets.VBox([section("Conversation"), self.transcript, self.approvals],
                            layout=widgets.Layout(flex="3 1 0%", min_width="320px",
                                                  margin="0 12px 0 0"))
        right = widgets.VBox([section("Settings (applied live)"), self.controls],
                             layout=widgets.Layout(flex="2 1 0%", min_width="300px"))
        rows: list[widgets.Widget] = [
            self.style_html,
            widgets.HBox([self.status, widgets.HBox(
                [self.fallback_button, self.connect_button],
                layout=widgets.Layout(flex="0 0 auto"))],
                         layout=widgets.Layout(justify_content="space-between",
                                               align_items="flex-start")),
            self.capture_row,
            widgets.HBox([self.capture_box, self.player],
                         layout=widgets.Layout(flex_flow="row wrap", align_items="center")),
            self.picture_row,
            self.mode_note,
            self.gauge,
            widgets.HBox([left, right], layout=widgets.Layout(flex_flow="row wrap",
                                                              align_items="flex-start")),
            self.usage,
        ]
        if self.timeline is not None:
            acc = widgets.Accordion(children=[self.timeline], titles=("Event timeline",),
                                    selected_index=0)
            rows.append(acc)
        self.children = tuple(rows)

        # --- wiring
        self.set_trait("capture", capture)
        self.capture_choice.observe(on_loop(lambda ch: self.set_trait("capture", ch["new"])),
                                    names="value")
        self.observe(on_loop(self._on_capture), names="capture")
        self.mic.observe(on_loop(self._on_mode), names="mode")
        selector = self.controls.inputs.get("audio.input.turn_detection")
        if selector is not None:
            selector.observe(on_loop(self._on_td_control), names="value")
        session.on("*", self._on_event)
        self._show_capture()
        if mode == "push-to-talk":
            self._on_mode({"new": "push-to-talk", "old": "hands-free"})
        self.refresh()

    # ------------------------------------------------------------------ public API
    @property
    def recorder(self) -> Any:
        """The :class:`~realtime_nb.widgets.recorder.RecorderCapture` (created on first use)."""
        return self._capture.recorder

    @property
    def call(self) -> WebRTCCall:
        """The :class:`~realtime_nb.widgets.WebRTCCall` of a WebRTC session (created on first
        use)."""
        return self._webrtc.call

    @property
    def transport(self) -> str:
        """The session's transport: ``"websocket"`` or ``"webrtc"``."""
        return str(getattr(self.session, "transport", "websocket"))

    def use_websocket(self, connect: bool = True) -> asyncio.Task[Any] | None:
        """Fall back from WebRTC to the WebSocket path: hang the call up, switch the session's
        transport, show the mic and the player, and (``connect``) connect in the background."""
        if self.transport == "webrtc":
            self._webrtc.hangup()

            async def switch() -> None:
                s = self.session
                if s.state in ("connected", "connecting", "reconnecting"):
                    await s.close()
                s.transport = "websocket"
                self._show_capture()
                if connect:
                    await self._connect({})

            return self._calls.spawn(switch(), "switch to the WebSocket")
        return self.connect() if connect else None

    def connect(self, update: Mapping[str, Any] | None = None) -> asyncio.Task[Any]:
        """Connect (or reconnect) in the background, then apply ``update`` (a session patch).

        Returns the task; the panel shows "connecting…" meanwhile and the outcome after.
        """
        return self._calls.spawn(self._connect(dict(update or {})), "connect")

    def interrupt(self) -> None:
        """Stop the assistant now: stop playback, cancel the response, truncate what was heard.

        Over WebRTC the server plays the audio: this sends ``output_audio_buffer.clear`` (the
        server truncates what was not heard) and cancels a response still generating."""
        if self.transport == "webrtc":
            self.turns.clear_call_audio()
            return
        self._feed.barge_in("interrupt", force=True)

    async def idle(self) -> None:
        """Wait until the panel's queued session calls and background tasks have run."""
        while True:
            await self._outbox.join()
            pending = [t for t in self._calls.tasks if not t.done()]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            rec = self._capture.recorder_widget
            rtasks = [t for t in (rec.tasks if rec is not None else ()) if not t.done()]
            if rtasks:
                await asyncio.gather(*rtasks, return_exceptions=True)
            if not len(self._outbox) and not pending and not rtasks:
                return

    @property
    def audio_flush_s(self) -> float:
        """How long assistant audio may gather before it is sent to the player (settable)."""
        return self._feed.flush_s

    @audio_flush_s.setter
    def audio_flush_s(self, value: float) -> None:
        self._feed.flush_s = value

    def refresh(self) -> None:
        """Redraw now (status, gauge, usage, transcript, controls, mode note, and the timeline's
        new events)."""
        self._redraws.run(full=True)

    @property
    def refresh_s(self) -> float:
        """The shortest time between two redraws, in seconds (settable)."""
        return self._redraws.refresh_s

    @refresh_s.setter
    def refresh_s(self, value: float) -> None:
        self._redraws.refresh_s = value

    def _draw(self, full: bool) -> None:
        """What a redraw draws: everything after a session event or a panel action (``full``);
        only the live parts (input-buffer gauge, timeline) when just mic audio went out."""
        s = self.session
        mirror = s.mirror
        webrtc = self.transport == "webrtc"
        show_live(self.gauge, self._memo.part(
            "gauge", (webrtc, mirror.input_buffer_ms, mirror.appended_since_ms,
                      mirror.speaking, s.config),
            (lambda: call_gauge_html(s)) if webrtc else (lambda: gauge_html(s))))
        if self.timeline is not None:
            self.timeline.flush()
        if not full:
            return
        state = s.state
        errors = self.errors
        call = self._webrtc.widget
        set_value(self.status, self._memo.part(
            "status", (state, s.backend, s.url, s.mirror.session_id, self.transport,
                       getattr(s, "call_id", None), call.status if call is not None else None,
                       errors[-1] if errors else None),
            lambda: status_html(s, self.transport, call.status if call is not None else None,
                                errors[-1] if errors else None)))
        if self._memo.changed("button", state):
            self.connect_button.layout.display = (
                "" if state in ("new", "disconnected", "closed") else "none")
            self.connect_button.description = "Connect" if state == "new" else "Reconnect"
        set_value(self.usage, usage_html(s))
        set_value(self.mode_note, mode_html(self.turns, self.transport, self.capture,
                                            self.mic.mode))
        self.transcript.refresh()
        self._approval_rows.sync()
        if s.config is not self._synced_config:
            self._synced_config = s.config
            self.controls.sync()

    def answer_approval(self, request_id: str, approve: bool) -> None:
        """Approve or deny the pending MCP approval request ``request_id`` (what the Approve /
        Deny buttons do). The answer goes out in order with the panel's other calls; when the
        approved call has run (at once for a denial) the panel asks for the response that uses
        its output. Never waits: the waiting is a task of its own."""
        self._approval_rows.answer(request_id, approve)

    def close(self) -> None:
        """Stop listening to the session, stop the mic and close every part."""
        if self._closed:
            return
        self._closed = True
        self.session.off("*", self._on_event)
        self._redraws.close()
        self._feed.close()
        self._calls.close()
        self.mic.recording = False
        self._webrtc.hangup()
        for part in (*self.children, self.mic, self._capture.recorder_widget,
                     self._webrtc.widget):
            if part is not None:
                close_tree(part)
        if vars(self.session).get("_rtnb_panel") is self:
            del vars(self.session)["_rtnb_panel"]
        super().close()

    # ------------------------------------------------------------------ scheduling
    def _dirty(self) -> None:
        """Schedule one redraw of everything (:class:`~._redraw.RedrawSchedule`)."""
        self._redraws.request()

    def _dirty_live(self) -> None:
        """Schedule a redraw of the live parts: input-buffer gauge, timeline."""
        self._redraws.request(full=False)

    # ------------------------------------------------------------------ session events
    def _on_event(self, ev: dict[str, Any]) -> None:
        etype = ev.get("type")
        if etype == "response.output_audio.delta":
            self._feed.queue(ev)
            return
        if etype == "response.output_audio.done":
            self._feed.flush()
        elif etype == "input_audio_buffer.speech_started":
            if self.transport != "webrtc":  # over WebRTC the server cuts its own output
                self._feed.barge_in("speech")
        elif etype == "realtime_nb.closed" and self.transport == "webrtc":
            self._webrtc.hangup()
        elif etype in ("error", "realtime_nb.disconnected"):
            err = ev.get("realtime_error")
            if isinstance(err, RealtimeError):
                origin = {"client": "refused before sending", "server": "server",
                          "connection": "connection"}.get(err.source, err.source)
                self._calls.failed(origin, err, specific=False)
        self._dirty()

    # ------------------------------------------------------------------ capture
    def _show_capture(self) -> None:
        self._capture.show(self.transport == "webrtc")
        self._dirty()

    def _on_capture(self, _change: dict[str, Any]) -> None:
        self._show_capture()

    def send_picture(self, image: Any, source: str = "picture") -> None:
        """Send ``image`` (anything ``Session.send_image`` takes) as the picture row does:
        with the text typed beside it (then cleared), and a response in hands-free mode.

        The picture is read and encoded in a worker thread first (so the microphone's audio
        queued in the outbox never waits for it), then sent through the outbox; failures (not a
        picture: ``invalid_image``) show in the status line."""
        self._pictures.send(image, source)

    # ------------------------------------------------------------------ modes
    def _on_mode(self, change: Mapping[str, Any]) -> None:
        """Push-to-talk is manual mode: switch the session's turn detection with the mic."""
        if self._mode_switching:
            return
        self.turns.mode_changed(str(change["new"]))
        self._dirty()

    def _on_td_control(self, change: Mapping[str, Any]) -> None:
        """A VAD chosen in the settings while in push-to-talk: the mic goes hands-free."""
        if self.controls.syncing or change["new"] == OFF or self.mic.mode != "push-to-talk":
            return
        self._mode_switching = True
        try:
            self.mic.mode = "hands-free"
        finally:
            self._mode_switching = False
        self.turns.vad_chosen()

    # ------------------------------------------------------------------ connecting
    async def _connect(self, update: dict[str, Any]) -> None:
        s = self.session
        self._dirty()
        if s.state in ("connecting", "reconnecting"):
            return
        try:
            if self.transport == "webrtc":
                if s.state == "disconnected" and self.call.status == "connected":
                    await s.reconnect()  # the sideband dropped; the call is still up
                elif s.state != "connected":
                    await self._webrtc.place()
            elif s.state in ("disconnected", "closed"):
                await s.reconnect()
            elif s.state != "connected":
                await s.connect()
        except RealtimeError as err:
            self._calls.failed("connect", err)
            return
        finally:
            self._dirty()
        if update:
            fut = asyncio.get_running_loop().create_future()

            async def run() -> None:
                try:
                    await s.update(update)
                finally:
                    fut.set_result(None)

            self._outbox.put("initial settings", run)
            await fut
        self._dirty()


# --------------------------------------------------------------------------- display hook
def panel_for(session: Any, **options: Any) -> SessionPanel:
    """The panel of ``session`` (created on first use with ``options``; one per session)."""
    panel = vars(session).get("_rtnb_panel")
    if panel is None or panel._closed:
        panel = SessionPanel(session, **options)
        vars(session)["_rtnb_panel"] = panel
    return panel


def display_session(session: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """``Session._repr_mimebundle_``: the panel in a kernel with widgets, else the repr."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency of ipywidgets
        shell = None
    if shell is None or getattr(shell, "kernel", None) is None:
        return {"text/plain": repr(session)}
    bundle = panel_for(session)._repr_mimebundle_(include=include, exclude=exclude)
    if isinstance(bundle, dict):
        bundle["text/plain"] = repr(session)
    return bundle
