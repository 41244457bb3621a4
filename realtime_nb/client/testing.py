"""A scriptable fake Realtime server for tests, demos and fault injection.

:class:`FakeRealtimeServer` is the local server (:class:`realtime_nb.server.LocalServer`) with
scripted engines and fault hooks; it lives in :mod:`realtime_nb.server.scripted` (read its
docstring for the script and the faults) and is re-exported here, its public path.
``async with FakeRealtimeServer(reply_text="Hi.") as fake: ... fake.url``.
"""

from __future__ import annotations

from realtime_nb.server.scripted import FakeConnection, FakeRealtimeServer, tone_pcm16

__all__ = ["FakeConnection", "FakeRealtimeServer", "tone_pcm16"]
