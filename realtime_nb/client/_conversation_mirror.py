"""The conversation half of the :class:`~realtime_nb.client.mirror.Mirror`: items, transcripts,
responses, MCP items, usage and rate limits, from the server's events.

:class:`ConversationMirror` is that part of the Mirror (a mixin: the Mirror's handler table
calls its ``_on_…`` methods; it uses the Mirror's ``all_items``, ``items``, ``responses``,
``session_id`` and the pictures the client sent). The input buffer, its VAD state and the
recordings of committed audio are the Mirror's own (:mod:`realtime_nb.client.mirror`).
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .eventlog import B64Audio, StoredAudio
from .items import ItemState, ResponseState, TranscriptSegment, _share_images

if TYPE_CHECKING:
    from ._parts import MirrorParts  # the Mirror's members this part uses (see ._parts)
else:
    MirrorParts = object  # at run time a plain mixin

__all__ = ["ConversationMirror"]


def _add_usage(total: dict[str, Any], usage: Mapping[str, Any]) -> None:
    for k, v in usage.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            total[k] = total.get(k, 0) + v
        elif isinstance(v, Mapping):
            sub = total.setdefault(k, {})
            if isinstance(sub, dict):
                _add_usage(sub, v)


class ConversationMirror(MirrorParts):
    """Items, responses, transcripts, MCP items and usage of the Mirror (see the module
    docstring). The Mirror creates the state it updates: ``all_items``, ``items``,
    ``responses``, ``active_response_id``, ``usage``, ``transcription_usage``, ``rate_limits``,
    ``_created_audio``, ``_created_images`` and ``_carrying``."""

    def audio_delta(self, event: dict[str, Any], data: bytes | B64Audio | StoredAudio) -> None:
        """``response.output_audio.delta`` with its audio (raw, or still base64: hot path)."""
        item_id = event.get("item_id")
        it = self.all_items.get(item_id) if item_id else None
        if it is None:
            if not isinstance(item_id, str):
                return
            it = self.item(item_id)
            it.response_id = event.get("response_id")
        it.audio_chunks.append(data)

    def _set_item(self, it: ItemState, item: dict[str, Any]) -> None:
        sent = self._created_images.get(it.id)
        if sent is not None:
            item = _share_images(item, sent)
        it.item = item
        it.type = item.get("type", it.type)
        it.role = item.get("role", it.role)
        it.status = item.get("status", it.status)
        if it.type == "function_call":
            it.name = item.get("name", it.name)
            it.call_id = item.get("call_id", it.call_id)
            if item.get("arguments"):
                it.arguments = item["arguments"]
        elif isinstance(it.type, str) and it.type.startswith("mcp_"):
            self._set_mcp(it, item)
        for part in item.get("content") or ():
            if not isinstance(part, dict):
                continue
            ptype = part.get("type")
            if ptype in ("input_text", "output_text", "text") and part.get("text"):
                if it.role != "assistant" or not it.text:
                    it.text = part["text"]
            elif part.get("transcript") and (
                ptype in ("output_audio", "audio")
                or (ptype == "input_audio" and not it.transcript)
            ):
                it.transcript = part["transcript"]

    def _set_mcp(self, it: ItemState, item: dict[str, Any]) -> None:
        it.server_label = item.get("server_label", it.server_label)
        it.name = item.get("name", it.name)
        if item.get("arguments"):
            it.arguments = item["arguments"]
        if it.type == "mcp_list_tools" and isinstance(item.get("tools"), list):
            it.tools = copy.deepcopy(item["tools"])
        elif it.type == "mcp_call":
            it.approval_request_id = item.get("approval_request_id") or it.approval_request_id
            if item.get("output") is not None:
                it.output, it.mcp_state = item["output"], "completed"
            if item.get("error"):
                it.error, it.mcp_state = item["error"], "failed"
        elif it.type == "mcp_approval_request":
            it.mcp_state = it.mcp_state or "pending"
        elif it.type == "mcp_approval_response":
            it.approval_request_id = item.get("approval_request_id", it.approval_request_id)
            it.approve = item.get("approve", it.approve)
            it.reason = item.get("reason", it.reason)
            request = self.all_items.get(it.approval_request_id or "")
            if request is not None and it.approve is not None:
                request.mcp_state = "approved" if it.approve else "denied"
                request.approve, request.reason = it.approve, it.reason

    def _on_mcp_state(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        if isinstance(item_id, str):
            self.item(item_id).mcp_state = str(ev["type"]).rsplit(".", 1)[1]

    def pending_approvals(self) -> builtins.list[ItemState]:
        """``mcp_approval_request`` items not answered yet, oldest first."""
        return [it for it in self.all_items.values()
                if it.type == "mcp_approval_request" and it.mcp_state == "pending"]

    def _on_item_added(self, ev: dict[str, Any]) -> None:
        item = ev.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return
        it = self.item(item["id"])
        if it.id in self._carrying:
            self._carrying.discard(it.id)
            it.in_conversation = True
            if self.session_id is not None:
                it.carried_into.append(self.session_id)
            self.items.insert(it, ev.get("previous_item_id"), self.session_id)
            return
        self._set_item(it, item)
        it.in_conversation = True
        it.session_id = self.session_id
        created = self._created_audio.pop(it.id, None)
        if created is not None:
            it.audio_chunks = [created[0]]
            it.audio_format = created[1]
        self.items.insert(it, ev.get("previous_item_id"), self.session_id)

    def _on_item_done(self, ev: dict[str, Any]) -> None:
        item = ev.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return
        it = self.item(item["id"])
        if it.carried_into and it.carried_into[-1] == self.session_id and (
                ev.get("type") == "conversation.item.done"):
            return  # the text copy of an item the mirror knows in full
        self._set_item(it, item)

    def _on_item_deleted(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        if isinstance(item_id, str):
            self.items.remove(item_id)
            if item_id in self.all_items:
                self.all_items[item_id].deleted = True
                self.all_items[item_id].in_conversation = False

    def _on_item_truncated(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        if isinstance(item_id, str):
            self.item(item_id).truncated_ms = ev.get("audio_end_ms")

    def _on_input_tr_delta(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        if it.transcript_done:
            return
        it.transcript += ev.get("delta") or ""

    def _on_input_tr_done(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        it.transcript = ev.get("transcript") or ""
        it.transcript_done = True
        if isinstance(ev.get("usage"), Mapping):
            _add_usage(self.transcription_usage, ev["usage"])
        if isinstance(ev.get("logprobs"), list):
            it.transcript_logprobs = list(ev["logprobs"])

    def _on_input_tr_segment(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        seg = TranscriptSegment(str(ev.get("id", "")), str(ev.get("speaker", "")),
                                float(ev.get("start") or 0.0), float(ev.get("end") or 0.0),
                                str(ev.get("text", "")))
        it.segments = [s for s in it.segments if not seg.id or s.id != seg.id] + [seg]

    def _on_input_tr_failed(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        it.transcription_error = ev.get("error")
        it.transcript_done = True

    def _on_response_created(self, ev: dict[str, Any]) -> None:
        resp = ev.get("response") or {}
        rid = resp.get("id")
        if not isinstance(rid, str):
            return
        rs = self.responses.get(rid)
        if rs is None:
            rs = self.responses[rid] = ResponseState(rid)
        rs.status = resp.get("status", "in_progress")
        rs.conversation_id = resp.get("conversation_id")
        rs.metadata = resp.get("metadata")
        rs.response = resp
        if rs.conversation_id is not None or "conversation_id" not in resp:
            self.active_response_id = rid

    def _response(self, rid: Any) -> ResponseState | None:
        if not isinstance(rid, str):
            return None
        rs = self.responses.get(rid)
        if rs is None:
            rs = self.responses[rid] = ResponseState(rid)
        return rs

    def _on_output_item(self, ev: dict[str, Any]) -> None:
        item = ev.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return
        it = self.item(item["id"])
        self._set_item(it, item)
        it.response_id = ev.get("response_id", it.response_id)
        rs = self._response(ev.get("response_id"))
        if rs is not None and it not in rs.output:
            rs.output.append(it)
            fmt = ((rs.response.get("audio") or {}).get("output") or {}).get("format")
            it.audio_format = fmt if isinstance(fmt, dict) else dict(self.output_format)

    def _on_content_part(self, ev: dict[str, Any]) -> None:
        item_id = ev.get("item_id")
        if isinstance(item_id, str):
            it = self.item(item_id)
            it.response_id = ev.get("response_id", it.response_id)

    def _on_transcript_delta(self, ev: dict[str, Any]) -> None:
        self.item(ev["item_id"]).transcript += ev.get("delta") or ""

    def _on_transcript_done(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        if isinstance(ev.get("transcript"), str):
            it.transcript = ev["transcript"]
        it.transcript_done = True

    def _on_text_delta(self, ev: dict[str, Any]) -> None:
        self.item(ev["item_id"]).text += ev.get("delta") or ""

    def _on_text_done(self, ev: dict[str, Any]) -> None:
        if isinstance(ev.get("text"), str):
            self.item(ev["item_id"]).text = ev["text"]

    def _on_args_delta(self, ev: dict[str, Any]) -> None:
        self.item(ev["item_id"]).arguments += ev.get("delta") or ""

    def _on_args_done(self, ev: dict[str, Any]) -> None:
        it = self.item(ev["item_id"])
        if isinstance(ev.get("arguments"), str):
            it.arguments = ev["arguments"]
        it.name = ev.get("name", it.name)
        it.call_id = ev.get("call_id", it.call_id)

    def _on_response_done(self, ev: dict[str, Any]) -> None:
        resp = ev.get("response") or {}
        rs = self._response(resp.get("id"))
        if rs is None:
            return
        rs.status = resp.get("status", "completed")
        rs.status_details = resp.get("status_details")
        rs.usage = resp.get("usage")
        rs.metadata = resp.get("metadata", rs.metadata)
        if "conversation_id" in resp:
            rs.conversation_id = resp.get("conversation_id")
        rs.response = resp
        for out in resp.get("output") or ():
            if isinstance(out, dict) and isinstance(out.get("id"), str):
                it = self.item(out["id"])
                self._set_item(it, out)
                if it not in rs.output:
                    rs.output.append(it)
        if isinstance(rs.usage, Mapping):
            _add_usage(self.usage, rs.usage)
        if self.active_response_id == rs.id:
            self.active_response_id = None

    def _on_rate_limits(self, ev: dict[str, Any]) -> None:
        for rl in ev.get("rate_limits") or ():
            if isinstance(rl, dict) and isinstance(rl.get("name"), str):
                self.rate_limits[rl["name"]] = copy.copy(rl)
