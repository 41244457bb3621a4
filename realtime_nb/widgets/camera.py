"""``CameraWidget``: snapshots from the browser's camera, delivered to the kernel as JPEG bytes.

The browser opens the camera with ``getUserMedia`` (video only), draws one frame onto a canvas at
the camera's own size and encodes it as JPEG; the bytes travel as one binary comm buffer and
arrive in the kernel as a :class:`Snapshot` passed to the callbacks registered with
:meth:`CameraWidget.on_snapshot`. The "Snapshot" button (or :meth:`CameraWidget.snap` from
Python) takes one; "Preview" keeps the camera open and shows it. Without a preview the camera is
opened for the snapshot and closed right after. Callbacks run on the kernel's loop, only while
the kernel is idle: keep them short.

The camera needs a secure page (https, or http://localhost) and the site's camera permission;
when either is missing ``error`` says so (and the widget shows it).

Example::

    cam = CameraWidget()
    cam.on_snapshot(lambda snap: print(snap.width, snap.height, len(snap.data)))
    cam            # display it, then press Snapshot
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anywidget
import traitlets as t

from ._affinity import LoopAffinity

__all__ = ["CameraWidget", "Snapshot"]

_HERE = pathlib.Path(__file__).parent


@dataclass(frozen=True)
class Snapshot:
    """One picture from the camera: ``data`` (JPEG file bytes), ``mime_type``, the frame's
    ``width`` × ``height`` in pixels, ``reason`` (``"button"`` or ``"kernel"``: who asked) and
    ``received_at`` (the kernel's ``time.monotonic()`` on arrival)."""

    data: bytes = field(repr=False)
    mime_type: str = "image/jpeg"
    width: int = 0
    height: int = 0
    reason: str = "button"
    received_at: float = 0.0


SnapshotCallback = Callable[[Snapshot], Any]


class CameraWidget(anywidget.AnyWidget):
    """A snapshot button with an optional live preview (see the module docstring).

    Traits (synced with the browser):

    - ``live``: keep the camera open and show the preview (the Preview button flips it).
    - ``ideal_width`` / ``ideal_height``: the resolution asked of the camera (``ideal``
      constraints: the camera may give another; a snapshot has the size it really delivers).
    - ``quality``: JPEG quality of snapshots, 0..1 (default 0.85).
    - ``status``: ``"idle"``, ``"starting"``, ``"live"`` or ``"error"``.
    - ``error``: what went wrong and what to do (insecure page, permission refused, no camera),
      ``""`` when all is well.
    """

    _esm = _HERE / "camera.js"
    _css = _HERE / "widgets.css"

    live = t.Bool(False).tag(sync=True)
    ideal_width = t.Int(640).tag(sync=True)
    ideal_height = t.Int(480).tag(sync=True)
    quality = t.Float(0.85).tag(sync=True)
    status = t.Unicode("idle").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    # Set by the page only: how its initialize() and render() find the camera they share.
    _camera_key = t.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._callbacks: list[SnapshotCallback] = []
        #: The last snapshot received (None before the first).
        self.last: Snapshot | None = None
        self._affinity = LoopAffinity()
        self.on_msg(self._affinity.wrap(self._on_browser_msg))

    @t.validate("quality")
    def _check_quality(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0.0 < value <= 1.0:
            raise t.TraitError(f"quality must be within (0, 1], got {value}.")
        return value

    def on_snapshot(self, callback: SnapshotCallback, remove: bool = False) -> None:
        """Call ``callback(snapshot: Snapshot)`` for every snapshot (``remove=True`` undoes).
        An exception in one callback is printed and does not stop the others."""
        if remove:
            self._callbacks.remove(callback)
        else:
            self._callbacks.append(callback)

    def snap(self) -> None:
        """Ask the browser for a snapshot (it arrives later, through :meth:`on_snapshot`)."""
        self.send({"type": "snap"})

    def _on_browser_msg(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict) or content.get("type") != "snapshot" or not buffers:
            return
        buf = buffers[0]
        data = bytes(buf) if not isinstance(buf, bytes) else buf
        snap = Snapshot(data=data, mime_type=str(content.get("mime_type", "image/jpeg")),
                        width=int(content.get("width", 0)), height=int(content.get("height", 0)),
                        reason=str(content.get("reason", "button")),
                        received_at=time.monotonic())
        self.last = snap
        for callback in self._callbacks[:]:
            try:
                callback(snap)
            except Exception:  # a user callback must not break the widget
                import traceback

                traceback.print_exc()
