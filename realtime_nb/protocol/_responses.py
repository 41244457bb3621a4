"""Responses of :class:`~realtime_nb.protocol.state.SessionCore`: from ``response.create`` to
``response.done``.

:class:`ResponseFlow` creates a response (the request the ``"respond"`` job carries: context,
tools, voice…), streams what the owner reports (:meth:`~ResponseFlow.response_output` text,
:meth:`~ResponseFlow.response_audio` audio with its transcript, function calls at
:meth:`~ResponseFlow.response_finish`), cancels (``response.cancel``, barge-in), fails, and
closes each with ``response.done`` and its usage. Token counts are approximations (words ×
1.33, audio 1 token per 100 ms, image tokens from :mod:`.images`).

It is one part of SessionCore (a mixin using the core's ``config``, ``emit``, ``jobs``, the
conversation, the WebRTC output buffer and the MCP part) and is not used alone.
"""

from __future__ import annotations

import base64
import copy
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._ids import new_id
from .buffer import bytes_per_ms
from .images import check_item_images
from .jobs import RespondJob
from .schema import ProtocolError

__all__ = ["ResponseFlow"]

if TYPE_CHECKING:
    from ._parts import SessionParts  # the core's members this part uses (see ._parts)
    from .jobs import ResponseRequestDict
    from .state import Reply  # the responder's answer (defined with SessionCore)
else:
    SessionParts = object  # at run time a plain mixin


@dataclass
class _Response:
    id: str
    conversation: bool
    modalities: list[str]
    voice: Any
    out_format: dict[str, Any]
    max_output_tokens: Any
    metadata: dict[str, Any] | None
    output: list[dict[str, Any]] = field(default_factory=list)
    status: str = "in_progress"
    open_item: dict[str, Any] | None = None
    transcript: str = ""
    audio_ms: float = 0.0
    audio_bytes: int = 0
    audio_chunks: list[bytes] = field(default_factory=list)
    pending_calls: list[tuple[str, str]] = field(default_factory=list)
    pending_mcp: list[tuple[str, str, str]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    waiting_call: str | None = None  # an mcp_call item whose job this response waits for
    input_tokens: int = 0
    input_image_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    incomplete: bool = False


def _tokens(text: str) -> int:
    return max(0, math.ceil(len(text.split()) * 1.33))


def _audio_tokens(ms: float) -> int:
    return math.ceil(ms / 100.0)


class ResponseFlow(SessionParts):
    """Responses of a SessionCore (see the module docstring). Owns ``responses`` and
    ``active_response``, created by the core."""

    def _on_response_create(self, ev: dict[str, Any]) -> None:
        if self.kind != "realtime":
            raise ProtocolError("invalid_value", "Transcription sessions cannot create responses.",
                                "type")
        self.create_response(ev.get("response", {}))

    def _on_response_cancel(self, ev: dict[str, Any]) -> None:
        rid = ev.get("response_id") or self.active_response
        resp = self.responses.get(rid) if rid else None
        if resp is None or resp.status != "in_progress":
            raise ProtocolError(
                "response_cancel_not_active", "Cancellation failed: no active response found", None
            )
        self.cancel_response(resp.id, "client_cancelled")

    # ------------------------------------------------------------------ responses
    def create_response(self, params: dict[str, Any]) -> str | None:
        """Start a response (``response.create`` or a VAD turn end); returns its id."""
        conversation = params.get("conversation", "auto") != "none"
        if conversation and self.active_response is not None:
            raise ProtocolError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self.active_response}. Wait until the response is finished before creating a "
                "new one.",
                None,
            )
        inline_images: dict[int, int] = {}  # index in response.input -> image tokens
        for i, it in enumerate(params.get("input") or ()):
            if it.get("type") != "item_reference":
                inline_images[i] = check_item_images(it, f"response.input[{i}]")
        cfg = self.config
        out_cfg = params.get("audio", {}).get("output", {})
        voice = out_cfg.get("voice", cfg["audio"]["output"]["voice"])
        fmt = out_cfg.get("format", cfg["audio"]["output"]["format"])
        tools = params.get("tools", cfg["tools"])
        if "tools" in params:
            self._sync_mcp(tools)
        resp = _Response(
            id=new_id("resp"),
            conversation=conversation,
            modalities=list(params.get("output_modalities", cfg["output_modalities"])),
            voice=voice,
            out_format=fmt,
            max_output_tokens=params.get("max_output_tokens", cfg["max_output_tokens"]),
            metadata=params.get("metadata"),
            tools=copy.deepcopy(tools),
        )
        self.responses[resp.id] = resp
        if conversation:
            self.active_response = resp.id
        if "input" in params:
            context = []
            for i, it in enumerate(params["input"]):
                if it.get("type") == "item_reference":
                    ref = self._get_item(it["id"], "response.input")
                    context.append(copy.deepcopy(ref))
                    resp.input_image_tokens += self.item_image_tokens.get(ref["id"], 0)
                else:
                    context.append(copy.deepcopy(it))
                    resp.input_image_tokens += inline_images.get(i, 0)
        else:
            context = copy.deepcopy(self.items)
            resp.input_image_tokens = sum(self.item_image_tokens.get(it["id"], 0)
                                          for it in context)
        resp.input_tokens = sum(_tokens(json.dumps(_textual(it.get("content", ""))))
                                for it in context)
        self.emit("response.created", response=self._response_object(resp))
        self.emit("rate_limits.updated", rate_limits=[
            {"name": "requests", "limit": 20000, "remaining": 19999, "reset_seconds": 0.003},
            {"name": "tokens", "limit": 10_000_000, "remaining": 9_995_904,
             "reset_seconds": 0.024},
        ])
        request: ResponseRequestDict = {
            "instructions": params.get("instructions", cfg["instructions"]),
            "conversation": context,
            "tools": tools,
            "tool_choice": params.get("tool_choice", cfg["tool_choice"]),
            "max_output_tokens": resp.max_output_tokens,
            "output_modalities": resp.modalities,
            "voice": voice if isinstance(voice, str) else "alloy",
            "speed": cfg["audio"]["output"].get("speed", 1.0),
            "pending_item_ids": _untranscribed(context),
        }
        job = RespondJob({"response_id": resp.id, "request": request})
        self._deferred[resp.id] = (job, "input" not in params)
        self._release_responses()
        return resp.id

    def _response_object(self, resp: _Response, usage: dict[str, Any] | None = None,
                         details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "id": resp.id,
            "object": "realtime.response",
            "status": resp.status,
            "status_details": details,
            "output": copy.deepcopy(resp.output),
            "conversation_id": self.conversation_id if resp.conversation else None,
            "output_modalities": resp.modalities,
            "max_output_tokens": resp.max_output_tokens,
            "audio": {"output": {"format": resp.out_format, "voice": resp.voice}},
            "usage": usage,
            "metadata": resp.metadata,
        }

    def is_live(self, response_id: str) -> bool:
        """Whether a response is still generating (the owner should stop work when not)."""
        resp = self.responses.get(response_id)
        return resp is not None and resp.status == "in_progress" and not self.closed

    def response_output(self, response_id: str, reply: Reply) -> None:
        """The responder's answer for a response: opens the message item (if any text)."""
        resp = self.responses.get(response_id)
        if resp is None or resp.status != "in_progress":
            return
        resp.pending_calls = list(reply.function_calls)
        resp.pending_mcp = list(reply.mcp_calls)
        resp.incomplete = reply.truncated
        if reply.text or not (reply.function_calls or reply.mcp_calls):
            item: dict[str, Any] = {"id": new_id("item"), "object": "realtime.item",
                                    "type": "message", "status": "in_progress",
                                    "role": "assistant", "content": []}
            self._open_item(resp, item)
            audio = "audio" in resp.modalities
            part = ({"type": "output_audio", "transcript": ""} if audio
                    else {"type": "output_text", "text": ""})
            self.emit("response.content_part.added", response_id=resp.id, item_id=item["id"],
                      output_index=len(resp.output) - 1, content_index=0, part=_part_event(part))
            item["content"].append(part)
            if not audio:
                for piece in _pieces(reply.text):
                    self.emit("response.output_text.delta", response_id=resp.id,
                              item_id=item["id"], output_index=len(resp.output) - 1,
                              content_index=0, delta=piece)
                    part["text"] += piece
                resp.output_text_tokens += _tokens(reply.text)

    def _open_item(self, resp: _Response, item: dict[str, Any]) -> None:
        resp.output.append(item)
        resp.open_item = item
        self.emit("response.output_item.added", response_id=resp.id,
                  output_index=len(resp.output) - 1, item=copy.deepcopy(item))
        if resp.conversation:
            self._insert(item, None)
            prev = self._previous_id(item)
            self.emit("conversation.item.added", previous_item_id=prev, item=copy.deepcopy(item))

    def response_audio(self, response_id: str, pcm16_24k: bytes, text: str) -> bool:
        """Stream one synthesized piece (PCM16 24 kHz) with the words it speaks.

        Returns False when the response is no longer live (cancelled): stop synthesizing.
        """
        resp = self.responses.get(response_id)
        if resp is None or resp.status != "in_progress" or resp.open_item is None:
            return False
        item = resp.open_item
        idx = len(resp.output) - 1
        part = item["content"][0]
        if text:
            delta = text if not part["transcript"] else " " + text
            part["transcript"] += delta
            self.emit("response.output_audio_transcript.delta", response_id=resp.id,
                      item_id=item["id"], output_index=idx, content_index=0, delta=delta)
            resp.output_text_tokens += _tokens(text)
        data = self._encode_output(pcm16_24k, resp.out_format)
        if self.transport == "webrtc":  # the audio goes on the media track, not in events
            if pcm16_24k:
                self._queue_playout(resp.id, pcm16_24k)
        else:
            step = max(1, int(bytes_per_ms(resp.out_format) * 200))  # ~200 ms per delta
            for i in range(0, len(data), step):
                self.emit("response.output_audio.delta", response_id=resp.id,
                          item_id=item["id"], output_index=idx, content_index=0,
                          delta=base64.b64encode(data[i:i + step]).decode())
        resp.audio_chunks.append(data)
        resp.audio_bytes += len(data)
        resp.audio_ms += len(data) / bytes_per_ms(resp.out_format)
        if data:
            self.assistant_audio_present = True
        return True

    @staticmethod
    def _encode_output(pcm16_24k: bytes, fmt: dict[str, Any]) -> bytes:
        if fmt.get("type", "audio/pcm") == "audio/pcm":
            return pcm16_24k
        from realtime_nb.audio import Audio, convert

        return convert(Audio.from_pcm16(pcm16_24k, 24000), format=fmt)

    def _close_open_item(self, resp: _Response, status: str) -> None:
        item = resp.open_item
        if item is None:
            return
        idx = len(resp.output) - 1
        if item["type"] == "message" and item["content"]:
            part = item["content"][0]
            if part["type"] == "output_audio":
                self.emit("response.output_audio.done", response_id=resp.id, item_id=item["id"],
                          output_index=idx, content_index=0)
                self.emit("response.output_audio_transcript.done", response_id=resp.id,
                          item_id=item["id"], output_index=idx, content_index=0,
                          transcript=part["transcript"])
                self.item_audio[item["id"]] = b"".join(resp.audio_chunks)
            else:
                self.emit("response.output_text.done", response_id=resp.id, item_id=item["id"],
                          output_index=idx, content_index=0, text=part["text"])
            self.emit("response.content_part.done", response_id=resp.id, item_id=item["id"],
                      output_index=idx, content_index=0, part=_part_event(part))
        if not item["type"].startswith("mcp_"):
            item["status"] = status
        self.emit("response.output_item.done", response_id=resp.id, output_index=idx,
                  item=copy.deepcopy(item))
        if resp.conversation:
            self.emit("conversation.item.done", previous_item_id=self._previous_id(item),
                      item=copy.deepcopy(item))
        resp.open_item = None

    def response_finish(self, response_id: str) -> None:
        """The responder and synthesizer are done: emit function calls, then ``response.done``."""
        resp = self.responses.get(response_id)
        if resp is None or resp.status != "in_progress":
            return
        self._close_open_item(resp, "incomplete" if resp.incomplete else "completed")
        for name, args in resp.pending_calls:
            item = {"id": new_id("item"), "object": "realtime.item", "type": "function_call",
                    "status": "in_progress", "name": name, "call_id": new_id("call"),
                    "arguments": ""}
            self._open_item(resp, item)
            idx = len(resp.output) - 1
            for piece in _pieces(args, 24):
                self.emit("response.function_call_arguments.delta", response_id=resp.id,
                          item_id=item["id"], output_index=idx, call_id=item["call_id"],
                          delta=piece)
            item["arguments"] = args
            resp.output_text_tokens += _tokens(args)
            self.emit("response.function_call_arguments.done", response_id=resp.id,
                      item_id=item["id"], output_index=idx, call_id=item["call_id"], name=name,
                      arguments=args)
            self._close_open_item(resp, "completed")
        resp.pending_calls = []
        if self._advance_mcp(resp):
            return  # an MCP call is running; mcp_call_done goes on
        self._complete(resp)

    def _complete(self, resp: _Response) -> None:
        resp.output_audio_tokens = _audio_tokens(resp.audio_ms)
        if resp.incomplete:
            self._finish(resp, "incomplete", {"type": "incomplete", "reason": "max_output_tokens"})
        else:
            self._finish(resp, "completed", None)

    def response_failed(self, response_id: str, message: str) -> None:
        """The engines failed: close the response with status ``failed``."""
        resp = self.responses.get(response_id)
        if resp is None or resp.status != "in_progress":
            return
        self._deferred.pop(response_id, None)
        self._close_open_item(resp, "incomplete")
        self._finish(resp, "failed", {"type": "failed", "error": {
            "type": "server_error", "code": "server_error", "message": message}})

    def cancel_response(self, response_id: str, reason: str) -> None:
        resp = self.responses[response_id]
        self._deferred.pop(response_id, None)
        resp.waiting_call = None
        self._close_open_item(resp, "incomplete")
        resp.output_audio_tokens = _audio_tokens(resp.audio_ms)
        self._finish(resp, "cancelled", {"type": "cancelled", "reason": reason})

    def _finish(self, resp: _Response, status: str, details: dict[str, Any] | None) -> None:
        resp.status = status
        if self.active_response == resp.id:
            self.active_response = None
        out_tokens = resp.output_text_tokens + resp.output_audio_tokens
        in_tokens = resp.input_tokens + resp.input_image_tokens
        usage = {
            "total_tokens": in_tokens + out_tokens,
            "input_tokens": in_tokens,
            "output_tokens": out_tokens,
            "input_token_details": {"cached_tokens": 0, "text_tokens": resp.input_tokens,
                                    "audio_tokens": 0,
                                    "image_tokens": resp.input_image_tokens,
                                    "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0,
                                                              "image_tokens": 0}},
            "output_token_details": {"text_tokens": resp.output_text_tokens,
                                     "audio_tokens": resp.output_audio_tokens},
        }
        self.emit("response.done", response=self._response_object(resp, usage, details))
        td = self._turn_detection
        if resp.conversation and td and td.get("type") == "server_vad" and td.get(
                "idle_timeout_ms"):
            self._idle_deadline = self.clock() + resp.audio_ms / 1000 + td["idle_timeout_ms"] / 1000


def _textual(content: Any) -> Any:
    """Content parts without their image data (images are counted as image tokens)."""
    if not isinstance(content, list):
        return content
    return [{k: v for k, v in p.items() if k != "image_url"} if isinstance(p, dict)
            and p.get("type") == "input_image" else p for p in content]


def _untranscribed(context: list[dict[str, Any]]) -> list[str]:
    """Ids of the items whose input audio has no transcript yet (the responder may wait)."""
    return [it["id"] for it in context
            if any(p.get("type") == "input_audio" and p.get("transcript") is None
                   for p in it.get("content", []))]


def _part_event(part: dict[str, Any]) -> dict[str, Any]:
    """Content parts in ``response.content_part.*`` events are typed ``audio`` / ``text``.

    (Items carry ``output_audio`` / ``output_text``; the part events keep the short names, as the
    GA schema and the official SDK's types declare them.)
    """
    out = dict(part)
    out["type"] = {"output_audio": "audio", "output_text": "text"}.get(part["type"], part["type"])
    return out


def _pieces(text: str, size: int = 0) -> list[str]:
    """Split text into word deltas (or fixed-size pieces when ``size``), keeping all characters."""
    if not text:
        return []
    if size:
        return [text[i:i + size] for i in range(0, len(text), size)]
    out: list[str] = []
    word = ""
    for ch in text:
        word += ch
        if ch == " ":
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out
