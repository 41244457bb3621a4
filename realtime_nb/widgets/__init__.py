"""realtime_nb.widgets: the notebook UI's building blocks (anywidgets, usable standalone).

- ``MicWidget``: the browser microphone as PCM16 mono 24 kHz chunks (``on_audio``).
- ``PlayerWidget``: streamed playback of PCM16 24 kHz audio that reports what was played
  (``play_chunk``, ``stop``, ``on_played``).
- ``Timeline``: the live event timeline of a Session (or an imported trace), with static exports
  ``timeline_png`` / ``timeline_html``.
"""

from .mic import MicChunk, MicStats, MicWidget
from .player import Played, PlayedFuture, PlayerWidget
from .timeline import StatsFuture, Timeline, timeline_html, timeline_png

__all__ = [
    "MicChunk",
    "MicStats",
    "MicWidget",
    "Played",
    "PlayedFuture",
    "PlayerWidget",
    "StatsFuture",
    "Timeline",
    "timeline_html",
    "timeline_png",
]
