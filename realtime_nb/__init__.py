"""realtime_nb: the OpenAI Realtime API as a first-class citizen of Jupyter."""

__version__ = "0.1.0"

from typing import Any

from realtime_nb.client import RealtimeError, Session, function_tool

__all__ = ["RealtimeError", "Session", "__version__", "function_tool", "load_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext realtime_nb``: registers the ``%realtime`` magic (see realtime_nb.magics)."""
    from realtime_nb.magics import load_ipython_extension as load

    load(ipython)


def _session_repr_mimebundle_(self: Session, include: Any = None, exclude: Any = None
                              ) -> dict[str, Any]:
    """Displaying a Session in a notebook shows its panel (realtime_nb.widgets.panel)."""
    from realtime_nb.widgets.panel import display_session

    return display_session(self, include, exclude)


Session._repr_mimebundle_ = _session_repr_mimebundle_  # type: ignore[attr-defined]
