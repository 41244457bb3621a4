"""The capture row: how the user's voice gets to the session from the page.

:class:`CaptureRow` holds the choice between the streaming mic and record-and-send, the
browser's processing options (echo cancellation, noise suppression, auto gain, "mute the mic
while the assistant speaks") and the box that shows the capture in use:

* **Streaming mic** (:class:`~realtime_nb.widgets.MicWidget`): each 100 ms PCM16 chunk is
  appended as it arrives (``input_audio_buffer.append`` through the outbox, in the same turn of
  the loop). Starting a take in manual mode cuts the assistant short (push-to-talk barge-in);
  stopping it commits and asks for a response (manual mode) or gives the server's VAD the
  silence that ends the turn (:meth:`~realtime_nb.client.turn_taking.TurnTaking.take_ended`).
* **Record & send** (:class:`~realtime_nb.widgets.recorder.RecorderCapture`, ipywebrtc, created
  on first use): starting a take cuts the assistant short; each take is sent when it stops
  (:meth:`~realtime_nb.client.turn_taking.TurnTaking.send_take`).
* **WebRTC**: the box holds the page's call instead, and the choice, the mute option and the
  player are hidden (the browser plays the assistant itself).

What the caller must know: the panel owns the ``capture`` choice (its trait); this row reads it
through ``current()`` and shows it on :meth:`CaptureRow.show`. Every browser callback runs on
the panel's loop; after the panel closes, chunks are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from realtime_nb.client.turn_taking import TurnTaking

from ._call_path import CallPath
from ._outbox import PanelCalls
from ._playback import PlayerFeed
from .mic import MicChunk, MicWidget

__all__ = ["CaptureRow"]


class CaptureRow:
    """The capture row of a panel (see the module docstring).

    Args:
        session: the :class:`~realtime_nb.Session`.
        turns: its turn rules (what a take does).
        calls: the panel's :class:`~._outbox.PanelCalls`.
        feed: the panel's playback (barge-in; the player's ``playing`` mutes the mic).
        call_path: the panel's WebRTC path (its call widget; the processing options).
        current: the panel's ``capture`` now (``"mic"`` or ``"recorder"``).
        on_audio_sent: called after each mic chunk is queued (the panel redraws its gauge).
        capture, mode, echo_cancellation, noise_suppression, auto_gain_control,
            mute_while_playing: as for :class:`~realtime_nb.widgets.SessionPanel`.

    Attributes (widgets): ``mic``, ``choice``, ``options`` (name → check box), ``box``,
    ``row``; ``recorder_widget`` (None until :attr:`recorder` first creates it).
    """

    def __init__(self, session: Any, turns: TurnTaking, calls: PanelCalls, feed: PlayerFeed,
                 call_path: CallPath, current: Callable[[], str], *,
                 on_audio_sent: Callable[[], None], capture: str, mode: str,
                 echo_cancellation: bool, noise_suppression: bool, auto_gain_control: bool,
                 mute_while_playing: bool) -> None:
        self.session = session
        self._turns = turns
        self._calls = calls
        self._feed = feed
        self._call_path = call_path
        self._current = current
        self._on_audio_sent = on_audio_sent
        self.recorder_widget: Any = None
        on_loop = calls.on_loop
        self.mic = MicWidget(mode=mode, echo_cancellation=echo_cancellation,
                             noise_suppression=noise_suppression,
                             auto_gain_control=auto_gain_control,
                             mute_while_playing=mute_while_playing)
        self.choice = widgets.ToggleButtons(
            options=[("Stream mic", "mic"), ("Record & send", "recorder")], value=capture,
            tooltips=["Stream 100 ms chunks as you speak (AudioWorklet)",
                      "Record a take with ipywebrtc, send it when you stop"],
            style={"button_width": "auto"})
        self.choice.add_class("rtnb-capture-choice")
        self.options = {
            name: widgets.Checkbox(value=value, description=label, indent=False,
                                   layout=widgets.Layout(width="auto"))
            for name, label, value in (
                ("echo_cancellation", "echo cancellation", echo_cancellation),
                ("noise_suppression", "noise suppression", noise_suppression),
                ("auto_gain_control", "auto gain", auto_gain_control),
                ("mute_while_playing", "mute mic while the assistant speaks",
                 mute_while_playing))
        }
        for name, box in self.options.items():
            box.add_class(f"rtnb-opt-{name.replace('_', '-')}")
            box.observe(on_loop(lambda ch, name=name: self._option_changed(name, ch["new"])),
                        names="value")
        self.box = widgets.Box(layout=widgets.Layout(min_width="380px"))
        self.row = widgets.HBox([self.choice, *self.options.values()],
                                layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        self.mic.on_audio(self._on_mic_chunk)  # the mic calls it on this loop already
        self.mic.on_msg(on_loop(self._on_mic_msg))
        feed.player.observe(on_loop(self._on_playing), names="playing")

    @property
    def recorder(self) -> Any:
        """The :class:`~realtime_nb.widgets.recorder.RecorderCapture` (created on first use)."""
        if self.recorder_widget is None:
            from .recorder import RecorderCapture

            self.recorder_widget = RecorderCapture(
                **{k: bool(self.options[k].value)
                   for k in ("echo_cancellation", "noise_suppression", "auto_gain_control")})
            on_loop = self._calls.on_loop
            self.recorder_widget.on_recording(on_loop(self._on_recording))
            self.recorder_widget.on_start(on_loop(lambda: self._feed.barge_in("record")))
        return self.recorder_widget

    def show(self, webrtc: bool) -> None:
        """Show the capture the panel's ``capture`` asks for (the call over WebRTC): its
        widget in ``box``, the choice and the mute option only where they apply."""
        capture = self._current()
        self.choice.layout.display = "none" if webrtc else ""
        self.options["mute_while_playing"].layout.display = "none" if webrtc else ""
        self._feed.player.layout.display = "none" if webrtc else ""
        if webrtc:
            self.mic.recording = False
            self.box.children = (self._call_path.call,)
            return
        self._call_path.fallback_button.layout.display = "none"
        if capture == "mic":
            self.box.children = (self.mic,)
        else:
            self.mic.recording = False
            self.box.children = (self.recorder,)
        if self.choice.value != capture:
            self.choice.value = capture

    def _option_changed(self, name: str, value: bool) -> None:
        setattr(self.mic, name, bool(value))
        self._call_path.set_option(name, bool(value))
        if name == "mute_while_playing":
            self.mic.muted = bool(value and self._feed.player.playing)
        elif self.recorder_widget is not None:
            setattr(self.recorder_widget, name, bool(value))

    def _on_mic_chunk(self, chunk: MicChunk) -> None:
        if self._current() != "mic" or self._calls.closed:
            return
        data = chunk.data
        self._calls.put("input_audio_buffer.append", lambda: self.session.append(data))
        self._on_audio_sent()

    def _on_mic_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "started" and self._turns.manual:
            self._feed.barge_in("push-to-talk", force=True)
        elif kind == "stopped" and self._current() == "mic":
            self._turns.take_ended()

    def _on_recording(self, rec: Any) -> None:
        """A record-and-send take arrived (already decoded): append; commit or pad."""
        self._turns.send_take(rec.pcm16)
        self._calls.changed()

    def _on_playing(self, change: dict[str, Any]) -> None:
        self.mic.muted = bool(self.mic.mute_while_playing and change["new"])
