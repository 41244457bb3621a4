"""The Session's conversation room: items in, out and changed (``conversation.item.*``).

:meth:`_Conversation.create_item` (text, audio and picture shortcuts, or any item),
:meth:`_Conversation.send_image` (a picture as a user message, optionally answered),
:meth:`_Conversation.retrieve_item`, :meth:`_Conversation.truncate` and
:meth:`_Conversation.delete_item`. Each validates its event as the service does before it is
sent (:mod:`._sending`) and, with ``wait=True``, returns the server's matching reply.

What the caller must know: pictures are read and encoded in a worker thread
(:func:`~realtime_nb.client.images.prepare_image`); a picture that is changed (downsized,
re-encoded) is warned about with an :class:`~realtime_nb.client.errors.ImageWarning`, a non-picture
is refused (``invalid_image``) before anything is sent. Items without an ``id`` get one, so that
their events and recordings can be found.

One room of :class:`~realtime_nb.client.session.Session` (a mixin; the state it uses is set by
``Session.__init__``).
"""

from __future__ import annotations

import asyncio
import base64
import warnings
from typing import TYPE_CHECKING, Any

from realtime_nb.protocol import UNSET, new_id

from ._sending import _copy_json, _wire
from .errors import ImageWarning, RealtimeError

if TYPE_CHECKING:
    from ._parts import SessionParts  # the Session's members this room uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin


class _Conversation(SessionParts):
    """Creating, retrieving, truncating and deleting conversation items; sending pictures."""

    async def create_item(
        self,
        item: Any = None,
        *,
        text: str | None = None,
        role: str = "user",
        audio: Any = None,
        sample_rate: int | None = None,
        image: Any = None,
        detail: str = "auto",
        max_side: int = 2048,
        previous_item_id: Any = UNSET,
        wait: bool = False,
        timeout: float | None = 15.0,
    ) -> dict[str, Any]:
        """Add an item to the conversation (``conversation.item.create``).

        ``item`` is a dict or wire dataclass (``MessageItem``, ``FunctionCallOutputItem``...),
        or use the shortcuts: ``text=`` (a ``role`` message with ``input_text``, or
        ``output_text`` for the assistant), ``audio=`` (a user ``input_audio`` part; any
        audio source, converted to the session's input format) and/or ``image=`` (a user
        ``input_image`` part with ``detail``; a path, image bytes, a PIL image or a numpy array,
        prepared by :func:`~realtime_nb.client.images.prepare_image`: PNG/JPEG kept, other
        formats re-encoded, pictures beyond ``max_side`` pixels downsized with an
        :class:`~realtime_nb.client.errors.ImageWarning`; non-images refused with
        ``invalid_image``), in that order. An item without ``id`` gets one
        (so that its events and recordings can be found). ``previous_item_id``: ``"root"`` to
        prepend, an id to insert after. Returns the event sent, or ``conversation.item.added``
        with ``wait``.
        """
        if item is None:
            content: list[dict[str, Any]] = []
            if text is not None:
                ptype = "output_text" if role == "assistant" else "input_text"
                content.append({"type": ptype, "text": text})
            if audio is not None:
                data = self._convert_audio(audio, sample_rate)
                content.append({"type": "input_audio",
                                "audio": base64.b64encode(data).decode("ascii")})
            if image is not None:
                content.append((await self._prepare_image(image, max_side)).part(detail))
            if not content:
                raise TypeError("create_item() needs an item, text=, audio= or image=")
            item = {"type": "message", "role": role, "content": content}
        item = _copy_json(_wire(item))
        if isinstance(item, dict) and "id" not in item:
            item["id"] = new_id("item")
        ev: dict[str, Any] = {"type": "conversation.item.create", "item": item}
        if previous_item_id is not UNSET:
            ev["previous_item_id"] = previous_item_id
        item_id = item.get("id") if isinstance(item, dict) else None
        return await self._send_event(
            ev, wait, timeout,
            reply=lambda e: e.get("type") == "conversation.item.added"
            and isinstance(e.get("item"), dict) and e["item"].get("id") == item_id)

    async def send_image(
        self,
        image: Any,
        *,
        text: str | None = None,
        detail: str = "auto",
        respond: bool = False,
        max_side: int = 2048,
        wait: bool = False,
        timeout: float | None = 15.0,
        **response: Any,
    ) -> dict[str, Any]:
        """Put a picture into the conversation as a user message, with ``text`` beside it.

        ``image`` is a path, image-file bytes (PNG/JPEG sent as they are, other formats
        re-encoded), a PIL image or a numpy ``uint8`` array ``H×W[×3|4]``; ``detail`` is
        ``"auto"``, ``"low"`` or ``"high"``. Pictures larger than ``max_side`` pixels are
        downsized (an :class:`~realtime_nb.client.errors.ImageWarning` says so); anything that
        is not a picture raises :class:`RealtimeError` ``invalid_image`` before anything is
        sent. Reading and encoding run in a worker thread, so the loop is never held.

        With ``respond`` a ``response.create`` follows (keywords are its parameters, e.g.
        ``output_modalities=["text"]``); await its end with ``wait_for("response.done")``. In
        hands-free (server VAD) mode the next spoken turn answers it anyway. Returns the
        ``conversation.item.create`` event sent (``conversation.item.added`` with ``wait``).
        """
        item_ev = await self.create_item(text=text, image=image, detail=detail,
                                         max_side=max_side, wait=wait, timeout=timeout)
        if respond:
            await self.create_response(**response)
        elif response:
            raise TypeError(f"response parameters {sorted(response)} need respond=True")
        return item_ev

    async def _prepare_image(self, image: Any, max_side: int) -> Any:
        """:func:`~realtime_nb.client.images.prepare_image` in a worker thread; a refusal is
        reported like every other one, a change (downsized, re-encoded) is warned about."""
        from .images import prepare_image

        try:
            prepared = await asyncio.to_thread(prepare_image, image, max_side=max_side)
        except RealtimeError as err:
            self._record_error(err, dispatch=True)
            raise
        if prepared.note:
            warnings.warn(f"image {prepared.note}", ImageWarning, stacklevel=3)
        return prepared

    async def retrieve_item(self, item_id: str, *, timeout: float | None = 15.0
                            ) -> dict[str, Any]:
        """Fetch an item with its audio (``conversation.item.retrieve``); returns the reply."""
        return await self._send_event(
            {"type": "conversation.item.retrieve", "item_id": item_id}, True, timeout,
            reply=lambda e: e.get("type") == "conversation.item.retrieved"
            and (e.get("item") or {}).get("id") == item_id)

    async def truncate(
        self,
        item_id: str,
        audio_end_ms: int,
        content_index: int = 0,
        *,
        wait: bool = False,
        timeout: float | None = 15.0,
    ) -> dict[str, Any]:
        """Cut an assistant audio item at ``audio_end_ms`` (what was actually played)."""
        return await self._send_event(
            {"type": "conversation.item.truncate", "item_id": item_id,
             "content_index": content_index, "audio_end_ms": audio_end_ms}, wait, timeout,
            reply=lambda e: e.get("type") == "conversation.item.truncated"
            and e.get("item_id") == item_id)

    async def delete_item(self, item_id: str, *, wait: bool = False,
                          timeout: float | None = 15.0) -> dict[str, Any]:
        """Remove an item from the conversation (``conversation.item.delete``)."""
        return await self._send_event(
            {"type": "conversation.item.delete", "item_id": item_id}, wait, timeout,
            reply=lambda e: e.get("type") == "conversation.item.deleted"
            and e.get("item_id") == item_id)
