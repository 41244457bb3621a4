"""The conversation of :class:`~realtime_nb.protocol.state.SessionCore`: its items.

:class:`ConversationItems` answers ``conversation.item.create`` / ``retrieve`` / ``truncate``
/ ``delete`` with the service's checks and errors (duplicate ids, unknown previous items, tool
call ids, pictures, MCP approval answers) and keeps the items in order with their audio
(``item_audio``) and image tokens (``item_image_tokens``). Item insertion and the
``conversation.item.added`` / ``.done`` pair every other part of the core uses live here.

It is one part of SessionCore (a mixin using the core's ``kind``, ``emit``, ``jobs``, the
output format and the MCP and transcription parts) and is not used alone.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
from typing import TYPE_CHECKING, Any

from ._ids import new_id
from .buffer import bytes_per_ms
from .images import check_item_images
from .jobs import TranscribeJob
from .schema import ProtocolError

__all__ = ["ConversationItems"]

if TYPE_CHECKING:
    from ._parts import SessionParts  # the core's members this part uses (see ._parts)
else:
    SessionParts = object  # at run time a plain mixin


class ConversationItems(SessionParts):
    """Conversation items of a SessionCore (see the module docstring). Owns ``conversation``
    (an :class:`~.item_order.ItemOrder`: ``items`` in order, ``_index`` by id), ``item_audio``
    and ``item_image_tokens``, created by the core."""

    def _on_conversation_item_create(self, ev: dict[str, Any]) -> None:
        if self.kind != "realtime":
            raise ProtocolError("invalid_value", "Transcription sessions have no conversation.",
                                "type")
        item = copy.deepcopy(ev["item"])
        if "id" in item and item["id"] in self._index:
            raise ProtocolError(
                "duplicate_item_id", f"Item with id '{item['id']}' already exists.", "item.id"
            )
        approval = None
        if item["type"] == "mcp_approval_response":
            approval = self._check_approval(item)
        if item["type"] == "function_call_output" and not any(
            it.get("type") == "function_call" and it.get("call_id") == item["call_id"]
            for it in self.items
        ):
            raise ProtocolError(
                "invalid_tool_call_id",
                f"Tool call ID '{item['call_id']}' not found in conversation.",
                "item.call_id",
            )
        prev = ev.get("previous_item_id", "<absent>")
        if prev not in ("<absent>", None, "root") and prev not in self._index:
            raise ProtocolError(
                "item_not_found",
                f"Error adding item: the previous item with id '{prev}' does not exist.",
                "previous_item_id",
            )
        item.setdefault("id", new_id("item"))
        images = check_item_images(item, "item")
        if not item["type"].startswith("mcp_"):  # the GA MCP items have neither field
            item["object"] = "realtime.item"
            item["status"] = "completed"
        audio = b""
        for part in item.get("content", []):
            if part.get("type") == "input_audio":
                try:
                    audio += base64.b64decode(part.get("audio") or "", validate=True)
                except (binascii.Error, ValueError):
                    raise ProtocolError("invalid_value", "Invalid base64 audio.",
                                        "item.content.audio") from None
                part["transcript"] = part.get("transcript")
        self._insert(item, None if prev in ("<absent>", None) else prev)
        if audio:
            self.item_audio[item["id"]] = audio
            self.jobs.append(TranscribeJob(self._transcribe_payload(item["id"], audio)))
        if images:
            self.item_image_tokens[item["id"]] = images
        self._item_added_done(item)
        if approval is not None:
            self._answer_approval(approval, item)

    def _on_conversation_item_retrieve(self, ev: dict[str, Any]) -> None:
        item = self._get_item(ev["item_id"], "item_id")
        out = copy.deepcopy(item)
        audio = self.item_audio.get(item["id"])
        if audio is not None:
            for part in out.get("content", []):
                if part.get("type") in ("input_audio", "output_audio"):
                    part["audio"] = base64.b64encode(audio).decode()
        self.emit("conversation.item.retrieved", item=out)

    def _on_conversation_item_truncate(self, ev: dict[str, Any]) -> None:
        item = self._index.get(ev["item_id"])
        if item is None:
            raise ProtocolError(
                "item_truncate_invalid_item_id",
                f"Item with item_id not found: {ev['item_id']}",
                "item_id",
            )
        if item.get("role") != "assistant" or not any(
            p.get("type") == "output_audio" for p in item.get("content", [])
        ):
            raise ProtocolError(
                "item_truncate_invalid_item_id",
                "Only assistant messages with audio can be truncated.",
                "item_id",
            )
        if ev["content_index"] != 0:
            raise ProtocolError("invalid_value", "Invalid 'content_index': must be 0.",
                                "content_index")
        audio = self.item_audio.get(item["id"], b"")
        bpm = bytes_per_ms(self._out_format)
        total_ms = len(audio) / bpm
        end = ev["audio_end_ms"]
        if end > total_ms:
            raise ProtocolError(
                "item_truncate_invalid_audio_end_ms",
                f"Audio content of {total_ms:.0f}ms is already shorter than {end}ms",
                "audio_end_ms",
            )
        self.item_audio[item["id"]] = audio[: int(end * bpm)]
        part = item["content"][0]
        text = part.get("transcript") or ""
        if total_ms > 0 and text:
            words = text.split()
            keep = math.floor(len(words) * end / total_ms)
            part["transcript"] = " ".join(words[:keep])
        self.emit("conversation.item.truncated", item_id=item["id"], content_index=0,
                  audio_end_ms=end)

    def _on_conversation_item_delete(self, ev: dict[str, Any]) -> None:
        item = self._get_item(ev["item_id"], "item_id")
        self.conversation.remove(item["id"])
        self.item_audio.pop(item["id"], None)
        self.item_image_tokens.pop(item["id"], None)
        self.emit("conversation.item.deleted", item_id=item["id"])

    # ------------------------------------------------------------------ items
    def _get_item(self, item_id: str, param: str) -> dict[str, Any]:
        item = self._index.get(item_id)
        if item is None:
            raise ProtocolError(
                "item_not_found", f"Item with item_id not found: {item_id}", param
            )
        return item

    @property
    def items(self) -> list[dict[str, Any]]:
        """The conversation's items in order (read them; they change through client events and
        the core's own work)."""
        return self.conversation.values

    @property
    def _index(self) -> dict[str, dict[str, Any]]:
        return self.conversation.by_id

    def _insert(self, item: dict[str, Any], previous_item_id: str | None) -> None:
        """Place a new item: after ``previous_item_id``, first for ``"root"``, last for None
        (the order's rule: :mod:`.item_order`)."""
        if previous_item_id is None:
            self.conversation.append(item["id"], item)
        else:
            self.conversation.insert(item["id"], item,
                                     None if previous_item_id == "root" else previous_item_id)

    def _previous_id(self, item: dict[str, Any]) -> str | None:
        return self.conversation.previous_id(item["id"])

    def _item_added_done(self, item: dict[str, Any], prev: str | None = None, *,
                         ordered: bool = True) -> None:
        """``conversation.item.added`` and ``.done`` for an item complete at once. ``prev`` is
        looked up in the conversation unless ``ordered`` is False (a transcription session's
        item, which is in no conversation: ``prev`` is given)."""
        if ordered:
            prev = self._previous_id(item)
        self.emit("conversation.item.added", previous_item_id=prev, item=self._public(item))
        self.emit("conversation.item.done", previous_item_id=prev, item=self._public(item))

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(item)
        for part in out.get("content", []):
            if "audio" in part:
                part["audio"] = None
        return out
