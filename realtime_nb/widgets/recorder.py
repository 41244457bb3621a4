"""``RecorderCapture``: record, then send — the microphone through ipywebrtc's MediaRecorder.

The browser records with ``ipywebrtc.AudioRecorder`` from an audio-only
``ipywebrtc.CameraStream`` (``constraints={'audio': {echoCancellation, noiseSuppression,
autoGainControl}, 'video': False}``); when the recording stops, the whole WebM/Opus file (48 kHz
mono, about 16 KB per second) reaches the kernel as ``recorder.audio.value``. It is decoded and
resampled to PCM16 24 kHz by :func:`realtime_nb.audio.to_pcm16` (in a worker thread) and handed
to the callbacks registered with :meth:`RecorderCapture.on_recording` as a :class:`Recording`.

Compared with the streaming ``MicWidget`` this adds the recording's length to the latency (the
audio leaves the browser only at the stop) but needs nothing but ipywebrtc, and each take is a
complete file that can be saved or replayed.

What the caller must know:

* The toggle button is linked to ``recorder.recording`` in the browser (``jslink``): recording
  starts and stops without a round trip through the kernel. Setting ``recording`` from Python
  works too.
* The processing options (``echo_cancellation``, ``noise_suppression``, ``auto_gain_control``)
  are fixed when the browser opens the microphone; changing one replaces the stream (at the next
  take if a take is running).
* The microphone needs a secure page (https, or http on localhost); elsewhere the browser
  refuses it and nothing is recorded (the streaming ``MicWidget`` explains this in the page).
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import traitlets as t

from realtime_nb.audio import AudioError, Finding, diagnose, to_pcm16

from ._affinity import LoopAffinity

__all__ = ["RecorderCapture", "Recording"]


@dataclass(frozen=True)
class Recording:
    """One finished take: the browser's file, and its audio as PCM16 mono 24 kHz.

    ``findings`` are :func:`realtime_nb.audio.diagnose`'s remarks (silence, clipping, too short).
    """

    take: int
    webm: bytes
    pcm16: bytes
    sample_rate: int = 24_000
    findings: list[Finding] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return len(self.pcm16) / 2 * 1000 / self.sample_rate


RecordingCallback = Callable[[Recording], Any]
StartCallback = Callable[[], Any]


class RecorderCapture(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped: VBox is Any
    """Record-then-send capture with ipywebrtc (see the module docstring).

    Kernel-side traits: ``echo_cancellation``, ``noise_suppression``, ``auto_gain_control``
    (the browser's processing; all on by default), ``takes`` (recordings received so far),
    ``busy`` (a take is being converted).
    """

    echo_cancellation = t.Bool(True)
    noise_suppression = t.Bool(True)
    auto_gain_control = t.Bool(True)
    takes = t.Int(0)
    busy = t.Bool(False)

    def __init__(self, **kwargs: Any) -> None:
        options = {k: kwargs.pop(k) for k in ("echo_cancellation", "noise_suppression",
                                              "auto_gain_control") if k in kwargs}
        super().__init__(**kwargs)
        #: The page's messages may arrive on a kernel subshell thread: handle them on this loop.
        self._affinity = LoopAffinity()
        self.set_trait("echo_cancellation", options.get("echo_cancellation", True))
        self.set_trait("noise_suppression", options.get("noise_suppression", True))
        self.set_trait("auto_gain_control", options.get("auto_gain_control", True))
        from ipywebrtc import AudioRecorder, CameraStream

        self._camera_stream = CameraStream
        self.add_class("rtnb-recorder")
        self.stream = CameraStream(constraints=self.constraints)
        self.recorder = AudioRecorder(stream=self.stream, format="webm")
        self.button = widgets.ToggleButton(
            value=False, description="● Record", tooltip="Record a turn; press again to send it",
            layout=widgets.Layout(width="9.5em"))
        self.button.add_class("rtnb-record-button")
        self._link = widgets.jslink((self.button, "value"), (self.recorder, "recording"))
        self.status = widgets.HTML("")
        self.status.add_class("rtnb-recorder-status")
        self.children = (widgets.HBox([self.button, self.status],
                                      layout=widgets.Layout(align_items="center")),)
        self._on_recording: list[RecordingCallback] = []
        self._on_start: list[StartCallback] = []
        self._stale_stream = False
        self.last: Recording | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.recorder.audio.observe(self._affinity.wrap(self._on_value), names="value")
        self.recorder.observe(self._affinity.wrap(self._on_recording_changed),
                              names="recording")
        self.observe(self._on_options, names=["echo_cancellation", "noise_suppression",
                                              "auto_gain_control"])
        self._say("press ● Record, speak, press again to send")

    # ------------------------------------------------------------------ public API
    @property
    def constraints(self) -> dict[str, Any]:
        """The ``getUserMedia`` constraints of the current options (audio only)."""
        return {"audio": {"echoCancellation": bool(self.echo_cancellation),
                          "noiseSuppression": bool(self.noise_suppression),
                          "autoGainControl": bool(self.auto_gain_control)},
                "video": False}

    @property
    def recording(self) -> bool:
        return bool(self.recorder.recording)

    @recording.setter
    def recording(self, value: bool) -> None:
        self.recorder.recording = bool(value)
        self.button.value = bool(value)

    def on_recording(self, callback: RecordingCallback, remove: bool = False) -> None:
        """Call ``callback(recording: Recording)`` for each finished, decoded take."""
        if remove:
            self._on_recording.remove(callback)
        else:
            self._on_recording.append(callback)

    def on_start(self, callback: StartCallback, remove: bool = False) -> None:
        """Call ``callback()`` when a take starts (e.g. to interrupt the assistant)."""
        if remove:
            self._on_start.remove(callback)
        else:
            self._on_start.append(callback)

    async def receive(self, webm: bytes) -> Recording | None:
        """Decode a finished take and hand it to the callbacks (what a stop in the page does).

        Returns the :class:`Recording`, or None when the file could not be decoded (the reason is
        shown in the widget).
        """
        self.set_trait("takes", self.takes + 1)
        take = self.takes
        self.set_trait("busy", True)
        try:
            try:
                pcm = await asyncio.to_thread(to_pcm16, webm)
            except AudioError as err:
                self._say(f"take {take}: could not decode the recording ({err})", error=True)
                return None
            findings = diagnose(pcm, 24_000)
            rec = Recording(take, webm, pcm, 24_000, findings)
            self.last = rec
            remark = "; ".join(f.message for f in findings)
            self._say(f"take {take}: {rec.duration_ms / 1000:.1f} s sent"
                      + (f" — {remark}" if remark else ""), error=bool(findings))
            for callback in list(self._on_recording):
                result = callback(rec)
                if asyncio.iscoroutine(result):
                    await result
            return rec
        finally:
            self.set_trait("busy", False)

    # ------------------------------------------------------------------ browser -> kernel
    def _on_value(self, change: dict[str, Any]) -> None:
        data = change["new"]
        if not data:
            return
        task = asyncio.get_running_loop().create_task(self.receive(bytes(data)),
                                                      name="realtime_nb: recorded take")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _on_recording_changed(self, change: dict[str, Any]) -> None:
        on = bool(change["new"])
        self.button.description = "■ Stop & send" if on else "● Record"
        if on:
            self._say("recording…")
            for callback in list(self._on_start):
                callback()
        else:
            self._say("converting…")
            if self._stale_stream:
                self._replace_stream()

    def _on_options(self, _change: dict[str, Any]) -> None:
        if self.recorder.recording:
            self._stale_stream = True
        else:
            self._replace_stream()

    def _replace_stream(self) -> None:
        self._stale_stream = False
        old = self.stream
        self.stream = self._camera_stream(constraints=self.constraints)
        self.recorder.stream = self.stream
        old.close()

    def _say(self, text: str, error: bool = False) -> None:
        cls = "rtnb-note-error" if error else "rtnb-note-pending"
        self.status.value = f'<span class="{cls}">{html.escape(text)}</span>'

    def close(self) -> None:
        for w in (self._link, self.recorder.audio, self.recorder, self.stream, self.button,
                  self.status):
            w.close()
        super().close()
