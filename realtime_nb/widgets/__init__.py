"""realtime_nb.widgets: the notebook UI's building blocks (anywidgets, usable standalone).

- ``MicWidget``: the browser microphone as PCM16 mono 24 kHz chunks (``on_audio``).
- ``PlayerWidget``: streamed playback of PCM16 24 kHz audio that reports what was played
  (``play_chunk``, ``stop``, ``on_played``).
- ``Timeline``: the live event timeline of a Session (or an imported trace), with static exports
  ``timeline_png`` / ``timeline_html``.
- ``SessionPanel``: everything above around one Session (what displaying a Session shows):
  capture (streaming mic or ipywebrtc ``RecorderCapture``), playback with barge-in, the
  ``TranscriptView``, ``SessionControls`` generated from the typed configuration, buffer gauge,
  usage, status. ``panel_for(session)`` gives a session's panel.
- ``CameraWidget``: snapshots from the browser's camera as JPEG bytes (``on_snapshot``); the
  panel's picture row holds one beside a file upload.
- ``WebRTCCall``: the browser's side of a WebRTC call (microphone, playback, ``oai-events``
  data channel), started by the kernel with an ephemeral client secret; the panel of a
  ``Session(transport="webrtc")`` holds one.
"""

from .camera import CameraWidget, Snapshot
from .controls import SessionControls
from .mic import MicChunk, MicStats, MicWidget
from .panel import SessionPanel, panel_for
from .player import Played, PlayedFuture, PlayerWidget
from .recorder import RecorderCapture, Recording
from .timeline import StatsFuture, Timeline, timeline_html, timeline_png
from .transcript import TranscriptView
from .webrtc import WebRTCCall

__all__ = [
    "CameraWidget",
    "MicChunk",
    "MicStats",
    "MicWidget",
    "Played",
    "PlayedFuture",
    "PlayerWidget",
    "RecorderCapture",
    "Recording",
    "SessionControls",
    "SessionPanel",
    "Snapshot",
    "StatsFuture",
    "Timeline",
    "TranscriptView",
    "WebRTCCall",
    "panel_for",
    "timeline_html",
    "timeline_png",
]
