"""Session renewal: outliving the service's session age limit (``Session(renew=True)``).

The service ends every session after 60 minutes (an ``error`` with code ``session_expired``, then
close 1001). With renewal on, a :class:`~realtime_nb.client.session.Session` opens a new server
session shortly before that and carries the conversation over, so that the notebook keeps one
Session object, one event log, one mirror, one timeline and one transcript.

What happens at the seam (see :meth:`Session.renew`):

1. **When.** ``margin_s`` seconds before the ``expires_at`` of ``session.created`` (Unix seconds,
   as the service sends it), or at once when an unexpected ``session_expired`` arrives (then
   nothing is waited for: the old session is gone), or when you call ``await session.renew()``.
2. **In-flight work.** Before switching, the Session waits up to ``wait_s`` for the active
   response to finish (``response.done``) and for the user to stop speaking (server VAD), so
   that no answer is cut mid-sentence. A response still running after ``wait_s`` is cut: the
   mirror ends it ``incomplete`` (reason ``"renewed"``), and a waiter on its ``response.done``
   times out (``say()`` returns it, as it is; the seam's ``cut_responses`` lists such
   responses). Audio appended but not committed to the old session is not carried (under server
   VAD, outside speech, that is only idle audio).
3. **Switch.** Sending pauses (your ``send``/``update``/``append`` calls are queued, in order, and
   ``wait=True`` calls still get their reply), the new socket is opened while the old one still
   delivers, then the old one is closed and its later frames ignored. Its end is not reported as
   a disconnect, and the reconnect policy is not involved. ``session.state`` is
   ``"renewing"`` meanwhile.
4. **Config.** The settings you changed with ``update()`` / ``use_tools()`` (``user_config``:
   instructions, voice, turn detection, transcription, tools, tool choice, ...) are sent first, as
   one ``session.update``.
5. **Conversation.** The conversation as the mirror knows it is re-created with
   ``conversation.item.create`` events, in order and under the *same item ids* (so ids you hold
   stay valid, and the mirror shows each item once): user/system messages as ``input_text``
   (audio as its transcript), assistant messages as ``output_text`` (their audio transcript; cut
   proportionally when the item was truncated by a barge-in), ``function_call`` and
   ``function_call_output`` items as they were, and ``mcp_call`` items that have a result (their
   ``output`` or ``error``; the approval that allowed one is not carried, so neither is its
   ``approval_request_id``). Audio itself is not carried; the pictures of user messages are
   (their ``input_image`` parts, after the text). ``mcp_list_tools`` items are not carried: the
   MCP tools are in the config sent first, and the new session lists them again. Approval
   requests and answers are not carried either: a request still unanswered at the seam belongs
   to the old session (the mirror marks it ``"expired"``; the model asks again if it needs it).
   **Limit:** the newest ``max_items`` items whose text fits in ``max_chars`` characters
   (default 100 items, 24 000 characters, roughly 6 000 tokens; a picture counts as four
   characters per approximate image token); older items are dropped.
   Also dropped: items without text (user audio whose transcription was off or failed, empty
   assistant items), a ``function_call_output`` whose ``function_call`` did not make the cut,
   and items still in progress. The seam marker lists what was carried and what was dropped.
6. **Record.** One local marker ``realtime_nb.renewed`` is logged at the seam, just before the
   new session's ``session.created``: ``old_session_id``, ``new_session_id``, ``reason``
   (``"expires_at"``, ``"session_expired"``, ``"manual"``), ``carried`` (item ids),
   ``dropped`` (``[id, why]`` pairs), ``waited_s``, ``cut_responses``. The timeline draws it as
   a seam; callbacks registered with ``session.on("realtime_nb.renewed")`` get it, and
   ``await session.wait_for("realtime_nb.renewed")`` waits for the next one. The carried
   items' create events are logged with the note ``"carried"``.

To try it in seconds, run the local server with a short age limit:
``python -m realtime_nb.server --max-session-s 3`` (alias of ``--max-duration``), or
``LocalServer(max_duration_s=3)``, and ``Session(url=..., renew=RenewPolicy(margin_s=1))``.

WebRTC sessions cannot be renewed this way (the call *is* the session).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .mirror import ItemState

__all__ = ["CarryPlan", "RenewPolicy", "plan_carry"]


@dataclass
class RenewPolicy:
    """How :class:`~realtime_nb.client.session.Session` renews its server session.

    Attributes:
        margin_s: renew this many seconds before ``expires_at`` (the service's sessions last
            60 minutes; the default renews at 58).
        wait_s: at most this long, wait for the active response to finish and the user to stop
            speaking before switching (0: switch at once).
        max_items: carry at most this many of the newest conversation items (None: no limit).
        max_chars: carry at most this many characters of item text (message text, transcripts,
            function arguments and outputs; None: no limit).
        attempts: tries to open the new session (0.5, 1, 2 s ... apart) before giving up; on
            giving up the old session goes on until it expires, or the Session reports the
            disconnect as without renewal.
        connect_timeout: seconds for each try (None: the Session's ``connect_timeout``).
    """

    margin_s: float = 120.0
    wait_s: float = 15.0
    max_items: int | None = 100
    max_chars: int | None = 24_000
    attempts: int = 4
    connect_timeout: float | None = None


@dataclass
class CarryPlan:
    """What crosses the seam: the items to create (wire dicts, in order) and what was left."""

    items: list[dict[str, Any]]
    dropped: list[tuple[str, str]]

    @property
    def carried(self) -> list[str]:
        return [it["id"] for it in self.items]


def _text_of(it: ItemState) -> str:
    return it.transcript or it.text


def _assistant_text(it: ItemState) -> str:
    text = _text_of(it)
    if it.truncated_ms is not None and text:
        total = it.duration_ms
        if total > 0 and it.truncated_ms < total:
            # The service drops the transcript beyond what was heard; without word timings the
            # best estimate is the same fraction of the text.
            keep = max(0, min(len(text), round(len(text) * it.truncated_ms / total)))
            text = text[:keep].rstrip()
    return text


def _wire_item(it: ItemState) -> tuple[dict[str, Any] | None, str]:
    """The ``conversation.item.create`` item for ``it``, or ``(None, why it cannot be)``."""
    kind = it.type or "message"
    if it.status == "in_progress":
        return None, "in progress"
    if kind == "function_call":
        if not it.call_id or not it.name:
            return None, "function call without call_id or name"
        return {"type": "function_call", "id": it.id, "call_id": it.call_id, "name": it.name,
                "arguments": it.arguments or "{}"}, ""
    if kind == "function_call_output":
        output = (it.item or {}).get("output")
        call_id = it.call_id or (it.item or {}).get("call_id")
        if not isinstance(call_id, str) or output is None:
            return None, "function output without call_id"
        return {"type": "function_call_output", "id": it.id, "call_id": call_id,
                "output": output if isinstance(output, str) else json.dumps(output)}, ""
    if kind.startswith("mcp_"):
        return _wire_mcp(it)
    if kind != "message":
        return None, f"{kind} items are not carried"
    role = it.role or "user"
    if role == "assistant":
        text = _assistant_text(it)
        part = "output_text"
    else:
        text = _text_of(it)
        part = "input_text"
    images = [{"type": "input_image", "image_url": p["image_url"],
               "detail": p.get("detail", "auto")}
              for p in (it.item or {}).get("content") or ()
              if role == "user" and isinstance(p, dict) and p.get("type") == "input_image"
              and isinstance(p.get("image_url"), str)]
    if not text.strip() and not images:
        return None, "no text (audio without a transcript)" if it.audio_chunks else "no text"
    content = [{"type": part, "text": text}] if text.strip() else []
    return {"type": "message", "id": it.id, "role": role, "content": content + images}, ""


def _wire_mcp(it: ItemState) -> tuple[dict[str, Any] | None, str]:
    """An MCP call with its result is carried (the model keeps what the tool said); listings
    and approvals are not (see the module docstring)."""
    kind = it.type
    if kind == "mcp_call":
        if it.output is None and not it.error:
            return None, "MCP call without a result"
        if not it.server_label or not it.name:
            return None, "MCP call without server_label or name"
        wire: dict[str, Any] = {"type": "mcp_call", "id": it.id, "server_label": it.server_label,
                                "name": it.name, "arguments": it.arguments or "{}"}
        if it.output is not None:
            wire["output"] = it.output
        if it.error:
            wire["error"] = it.error
        return wire, ""
    if kind == "mcp_list_tools":
        return None, "the new session lists the MCP server's tools again (they are in its config)"
    if kind == "mcp_approval_request" and it.mcp_state in (None, "pending", "expired"):
        return None, "an unanswered MCP approval request (the new session never asked it)"
    return None, "an answered MCP approval (the call it allowed is carried with its result)"


def _size(item: dict[str, Any]) -> int:
    if item["type"] == "message":
        return sum(len(p["text"]) if "text" in p else 4 * _image_tokens(p)
                   for p in item["content"])
    if item["type"] == "function_call":
        return len(item["name"]) + len(item["arguments"])
    if item["type"] == "mcp_call":
        return (len(item["name"]) + len(item["arguments"]) + len(item.get("output") or "")
                + len(json.dumps(item["error"]) if "error" in item else ""))
    return len(item["output"])


def _image_tokens(part: dict[str, Any]) -> int:
    """Approximate tokens of an ``input_image`` part (0 when it is not a PNG/JPEG data URL)."""
    from realtime_nb.protocol.images import decode_image_url, image_tokens
    from realtime_nb.protocol.schema import ProtocolError

    try:
        img = decode_image_url(part["image_url"], detail=part.get("detail", "auto"))
    except ProtocolError:
        return 0
    return image_tokens(img.width, img.height, img.detail)


def plan_carry(items: Iterable[ItemState], policy: RenewPolicy) -> CarryPlan:
    """Choose the conversation items to re-create in the new session (see the module docstring):
    the newest that fit ``policy.max_items`` and ``policy.max_chars``, in conversation order,
    never a function output without its call."""
    items = list(items)
    candidates: list[dict[str, Any]] = []
    dropped: list[tuple[str, str]] = []
    for it in items:
        if it.deleted or not it.in_conversation:
            continue
        wire, why = _wire_item(it)
        if wire is None:
            dropped.append((it.id, why))
        else:
            candidates.append(wire)
    kept: list[dict[str, Any]] = []
    chars = 0
    cut = False
    for wire in reversed(candidates):
        size = _size(wire) if policy.max_chars is not None else 0
        if cut or (policy.max_items is not None and len(kept) >= policy.max_items) or (
                policy.max_chars is not None and chars + size > policy.max_chars):
            cut = True  # keep a contiguous tail: never a hole in the middle of the history
            dropped.append((wire["id"], "over the carry limit"))
            continue
        kept.append(wire)
        chars += size
    kept.reverse()
    calls = set()
    out: list[dict[str, Any]] = []
    for wire in kept:
        if wire["type"] == "function_call":
            calls.add(wire["call_id"])
        elif wire["type"] == "function_call_output" and wire["call_id"] not in calls:
            dropped.append((wire["id"], "its function_call was not carried"))
            continue
        out.append(wire)
    order = {i.id: n for n, i in enumerate(items)}
    dropped.sort(key=lambda d: order.get(d[0], 0))
    return CarryPlan(out, dropped)
