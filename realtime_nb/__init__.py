"""realtime_nb: the OpenAI Realtime API as a first-class citizen of Jupyter."""

__version__ = "0.1.0"

from realtime_nb.client import RealtimeError, Session

__all__ = ["RealtimeError", "Session", "__version__"]
