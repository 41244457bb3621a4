"""Closing a widget together with every widget inside it (boxes, accordions, rows).

``Widget.close()`` closes one comm; a box's children stay open (and in the kernel's widget
registry) unless they are closed too. The panel closes its parts, and its approval rows
replace theirs, through :func:`close_tree`.
"""

from __future__ import annotations

import ipywidgets as widgets

__all__ = ["close_tree"]


def close_tree(widget: widgets.Widget) -> None:
    """Close a widget and every widget inside it (boxes, accordions, the panel's parts)."""
    for child in getattr(widget, "children", None) or ():
        close_tree(child)
    widget.close()
