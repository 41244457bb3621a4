"""The session panel in marimo: its anywidget parts, wrapped with ``mo.ui.anywidget``.

marimo renders anywidgets (``mo.ui.anywidget``) but not classic ipywidgets: a ``VBox``, ``HTML``,
``Button`` or slider shows marimo's "unsupported widget" banner. The :class:`SessionPanel` is an
ipywidgets ``VBox``, so in marimo :func:`marimo_panel` shows the parts that work there and keeps
the panel's logic: it builds the session's own panel (``panel_for``) in the kernel — which
streams the mic to the session, plays the answer, cuts it on a barge-in and redraws its parts —
and lays out, with ``mo.vstack``:

- the status line, mode note, input-buffer gauge, transcript and usage, each mirrored into an
  :class:`HTMLView` (a read-only anywidget whose ``value`` follows the panel part's HTML);
- the :class:`~realtime_nb.widgets.MicWidget`, :class:`~realtime_nb.widgets.PlayerWidget`, the
  :class:`~realtime_nb.widgets.CameraWidget` (its snapshots go into the conversation as in the
  panel) and the event :class:`~realtime_nb.widgets.Timeline`, which are anywidgets already.

Not shown in marimo (ipywidgets only): the live settings (``SessionControls``), the
record-and-send path (ipywebrtc), the capture/processing check boxes, the transcript's replay
players, and the picture row's file upload and text box (pick a file with ``mo.ui.file`` and,
in another cell, ``view.panel.send_picture(upload.contents())``). Change settings from a cell
instead — ``await session.update(...)``, or a
``mo.ui.slider`` whose cell sends it (marimo re-runs that cell when the slider moves; see
``notebooks/marimo_quickstart.py``) — and set the browser's processing with
``marimo_panel(session, echo_cancellation=False, ...)``.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets as t

from .panel import PANEL_CSS, SessionPanel, panel_for

__all__ = ["HTMLView", "MarimoPanel", "marimo_panel"]

_HTML_ESM = """
function render({ model, el }) {
  el.classList.add("rtnb-html-view");
  const draw = () => { el.innerHTML = model.get("value"); };
  draw();
  model.on("change:value", draw);
  return () => model.off("change:value", draw);
}
export default { render };
"""


def _css_of(style_html: str) -> str:
    return style_html.replace("<style>", "").replace("</style>", "").strip()


class HTMLView(anywidget.AnyWidget):
    """A read-only block of HTML as an anywidget (what marimo renders), styled like the panel.

    ``value`` is trusted HTML made by this package (the panel escapes every text it shows).
    """

    _esm = _HTML_ESM
    _css = _css_of(PANEL_CSS)
    value = t.Unicode("").tag(sync=True)


class MarimoPanel:
    """The marimo view of a Session's panel (see the module docstring).

    Attributes: ``panel`` (the :class:`SessionPanel` that does the work), ``mic``, ``player``,
    ``camera``, ``timeline`` (its anywidgets), ``status``, ``mode_note``, ``gauge``, ``transcript``,
    ``usage`` (:class:`HTMLView` mirrors of its HTML parts). Displaying it (the last expression
    of a cell) shows :meth:`view`; it needs ``marimo`` installed (the ``marimo`` extra).
    """

    def __init__(self, panel: SessionPanel) -> None:
        self.panel = panel
        self.mic = panel.mic
        self.player = panel.player
        self.camera = panel.camera
        self.timeline = panel.timeline
        self.status = self._mirror(panel.status)
        self.mode_note = self._mirror(panel.mode_note)
        self.gauge = self._mirror(panel.gauge)
        self.usage = self._mirror(panel.usage)
        self.transcript = HTMLView()
        self._watched: set[int] = set()
        panel.transcript.observe(lambda _ch: self._watch_rows(), names="children")
        self._watch_rows()

    @staticmethod
    def _mirror(part: Any) -> HTMLView:
        view = HTMLView(value=part.value)
        t.dlink((part, "value"), (view, "value"))
        return view

    def _watch_rows(self) -> None:
        """Follow each transcript row's HTML (rows are added as items arrive)."""
        for box in self.panel.transcript.children:
            for child in getattr(box, "children", (box,)):
                if id(child) not in self._watched and hasattr(child, "value"):
                    self._watched.add(id(child))
                    child.observe(lambda _ch: self._draw_transcript(), names="value")
        self._draw_transcript()

    def _draw_transcript(self) -> None:
        rows = self.panel.transcript.rows
        body = "".join(rows.values()) or '<div class="rtnb-turn-empty">Nothing said yet.</div>'
        self.transcript.value = f'<div class="rtnb-transcript">{body}</div>'

    def view(self) -> Any:
        """The marimo layout (``mo.vstack`` of ``mo.ui.anywidget`` parts)."""
        import marimo as mo

        ui = mo.ui.anywidget
        rows: list[Any] = [
            ui(self.status),
            mo.hstack([ui(self.mic), ui(self.player), ui(self.camera)], justify="start",
                      wrap=True),
            ui(self.mode_note),
            ui(self.gauge),
            mo.md("**Conversation**"),
            ui(self.transcript),
            ui(self.usage),
        ]
        if self.timeline is not None:
            rows += [mo.md("**Event timeline**"), ui(self.timeline)]
        return mo.vstack(rows)

    def _display_(self) -> Any:  # marimo's display protocol
        return self.view()


def marimo_panel(session: Any, **options: Any) -> MarimoPanel:
    """The marimo view of ``session``'s panel; ``options`` as for :class:`SessionPanel`.

    The panel itself is the session's one panel (``panel_for``): options apply when it is
    created, which is on the first call for a session.
    """
    return MarimoPanel(panel_for(session, **options))
