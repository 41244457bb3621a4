"""The picture row: send an image into the conversation from a file or the browser's camera.

:class:`PictureRow` holds a file upload (``accept="image/*"``; PNG/JPEG sent as they are, other
formats re-encoded), a text box (sent with the picture, then cleared) and the
:class:`~realtime_nb.widgets.CameraWidget` (a snapshot is a JPEG of the camera's own size). The
picture goes in as a user message (``conversation.item.create`` with an ``input_image`` part
after the text); in hands-free mode (server VAD on) a response is asked for right after, once
the active one is done; in push-to-talk the picture waits for the next spoken turn.

What the caller must know: the picture is read and encoded in a worker thread
(:func:`realtime_nb.client.images.prepare_image`) before it enters the outbox, so the mic's
queued audio never waits for an encode; a file that is not a picture fails there
(``invalid_image``) and shows in the panel's status line. What was sent is in ``sent`` (the
panel's ``pictures``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from realtime_nb.client.turn_taking import TurnTaking

from ._outbox import PanelCalls
from .camera import CameraWidget, Snapshot

__all__ = ["PictureRow"]


class PictureRow:
    """The picture row of a panel (see the module docstring); ``row`` is the widget.

    Args:
        session: the :class:`~realtime_nb.Session`.
        turns: its turn rules (whether the session is in manual mode; asking for a response).
        calls: the panel's :class:`~._outbox.PanelCalls`.

    Attributes: ``upload``, ``text``, ``camera``, ``row`` (widgets); ``sent`` (dicts of source
    ``"upload: name"`` / ``"camera"``, item_id, mime_type, width, height, note — downsized /
    re-encoded —, text, responded).
    """

    def __init__(self, session: Any, turns: TurnTaking, calls: PanelCalls) -> None:
        self.session = session
        self._turns = turns
        self._calls = calls
        self.sent: list[dict[str, Any]] = []
        self.upload = widgets.FileUpload(
            accept="image/*", multiple=False, description="Picture file", icon="image",
            layout=widgets.Layout(width="auto"))
        self.upload.add_class("rtnb-picture-upload")
        self.camera = CameraWidget()
        self.text = widgets.Text(
            placeholder="text to send with the picture (optional)",
            layout=widgets.Layout(width="280px"))
        self.text.add_class("rtnb-picture-text")
        label = widgets.HTML('<span class="rtnb-picture-label">Picture</span>')
        self.row = widgets.HBox(
            [label, self.upload, self.text, self.camera],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        self.row.add_class("rtnb-picture-row")
        on_loop = calls.on_loop
        self.upload.observe(on_loop(self._on_upload), names="value")
        self.camera.on_snapshot(self._on_snapshot)  # the camera calls it on this loop already

    def send(self, image: Any, source: str = "picture") -> None:
        """Send ``image`` (anything ``Session.send_image`` takes) as the picture row does:
        with the text typed beside it (then cleared), and a response in hands-free mode.

        The picture is read and encoded in a worker thread first (so the microphone's audio
        queued in the outbox never waits for it), then sent through the outbox; failures (not a
        picture: ``invalid_image``) show in the status line."""
        from realtime_nb.client.images import prepare_image

        text = self.text.value.strip() or None
        self.text.value = ""
        label = f"picture ({source})"

        async def prepare() -> None:
            prepared = await asyncio.to_thread(prepare_image, image)
            self._calls.put(label, lambda: self._send_picture(prepared, text, source))

        self._calls.spawn(prepare(), label)
        self._calls.changed()

    async def _send_picture(self, prepared: Any, text: str | None, source: str) -> None:
        content = ([{"type": "input_text", "text": text}] if text else []) + [prepared.part()]
        ev = await self.session.create_item({"type": "message", "role": "user",
                                             "content": content})
        record = {"source": source, "item_id": ev["item"]["id"], "text": text,
                  "mime_type": prepared.mime_type, "width": prepared.width,
                  "height": prepared.height, "note": prepared.note, "responded": False}
        self.sent.append(record)
        if not self._turns.manual:
            await self._turns.respond()
            record["responded"] = True

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        """A file chosen in the upload button (ipywidgets 8: a tuple of dicts with ``name``
        and ``content``)."""
        files = change.get("new") or ()
        if not files or self._calls.closed:
            return
        upload = files[0]
        data, name = bytes(upload["content"]), str(upload.get("name", "file"))
        self.upload.value = ()  # ready for the next file (this change is ignored)
        self.send(data, f"upload: {name}")

    def _on_snapshot(self, snap: Snapshot) -> None:
        if not self._calls.closed:
            self.send(snap.data, "camera")
