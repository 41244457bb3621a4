"""``CapturedPCM16``: PCM16 bytes made by realtime_nb's own capture, which need no float32 check.

:meth:`Session.append <realtime_nb.client.session.Session.append>` looks at every chunk of raw
bytes it is given for float32 samples passed off as PCM16 (the classic mistake with numpy
audio). Bytes that realtime_nb itself produced as PCM16 cannot be that: the browser
microphone's worklet converts its float samples to int16 before anything leaves the page
(:class:`~realtime_nb.widgets.MicWidget`). Such bytes are handed out as this ``bytes`` subclass,
and ``append`` skips the check for them (as with ``force=True``): at ten chunks a second the
check would otherwise be most of the kernel's cost per chunk.

An audio type, so it lives in :mod:`realtime_nb.audio` where both the widgets (which make it)
and the client (which trusts it) find it.
"""

from __future__ import annotations

__all__ = ["CapturedPCM16"]


class CapturedPCM16(bytes):
    """PCM16 little-endian bytes produced as such by realtime_nb (equal to the same ``bytes``).

    Wrap only bytes that were made as PCM16; anything else defeats the float32 check.
    """

    __slots__ = ()
