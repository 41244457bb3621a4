"""realtime_nb.server: the embedded local Realtime-compatible server (the offline default backend).

``LocalServer`` (async, in your loop), ``ensure_local_server()`` (process-wide, background thread),
and ``python -m realtime_nb.server``. Engines (VAD, ASR, TTS, responder) are pluggable: see
:mod:`realtime_nb.server.engines`.
"""

from realtime_nb.vad import make_segmenter  # its home is vad; kept here as public API

from .app import LocalServer, ensure_local_server, stop_local_server

__all__ = ["LocalServer", "ensure_local_server", "make_segmenter", "stop_local_server"]
