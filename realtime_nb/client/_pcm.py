"""Old private home of :class:`~realtime_nb.audio.CapturedPCM16` (now in ``realtime_nb.audio``).

Kept only because ``client/session.py`` still imports it from here; that import moves with the
later split of session.py, and this module goes with it.
"""

from realtime_nb.audio import CapturedPCM16

__all__ = ["CapturedPCM16"]
