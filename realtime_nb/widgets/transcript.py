"""``TranscriptView``: the conversation as it streams, one row per item, in conversation order.

Rows are keyed by ``item_id`` and ordered by the Session mirror's item order (each item placed
after its ``previous_item_id``), never by arrival: the transcription of a user turn may arrive
after the assistant has answered it (it is asynchronous) and still fills the user's row above
the answer. User rows show the input transcription (``…`` while it is pending, the failure if it
failed, a note when transcription is off); assistant rows stream the audio transcript or the
output text, with how the response ended (cancelled, cut at N s by a barge-in). Each committed
user recording and each finished assistant audio item gets a replay player
(``ipywidgets.Audio`` of its WAV; an interrupted answer plays what was heard, up to the cut).
MCP items have rows too: a server's tool list, each call with its arguments and output or error
(or "running…" / "waiting for approval"), approval requests (pending, approved or denied) and
the answers sent.
A user item with a picture shows a small thumbnail of it (a JPEG data URL of at most 96 px, made
once per item by the mirror, :meth:`~realtime_nb.client.ItemState.thumbnail`) and its size and
format in the note.

The view does not listen to the session itself: call :meth:`TranscriptView.refresh` (the panel
does, at most ~10 times a second, batched). Refreshing is cheap: only rows whose text changed are
sent to the browser.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

__all__ = ["TranscriptView", "item_text"]

_PLAYER_LAYOUT = {"width": "280px", "height": "36px"}


def _secs(ms: float) -> str:
    return f"{ms / 1000:.1f} s"


def item_text(item: Any, session: Any = None) -> tuple[str, str, str]:
    """``(who, text, note)`` shown for a conversation item (plain text, not yet escaped).

    ``note`` says what is still pending or how the item ended. ``session`` (optional) tells
    whether input transcription is on and how the item's response ended.
    """
    role = item.role or ""
    kind = item.type or "message"
    if kind == "function_call":
        return "tool call", f"{item.name or '?'}({item.arguments})", ""
    if kind == "function_call_output":
        output = (item.item or {}).get("output", "")
        return "tool result", str(output), ""
    if kind.startswith("mcp_"):
        return _mcp_text(item)
    if role == "user":
        text = item.transcript or item.text
        segments = getattr(item, "segments", None)
        if segments:  # diarized: each speaker's words behind its label
            text = " ".join(f"{seg.speaker}: {seg.text.strip()}" for seg in segments)
        has_audio = bool(item.audio_chunks) or any(
            isinstance(p, dict) and p.get("type") == "input_audio"
            for p in (item.item or {}).get("content") or ())
        note = ""
        if has_audio:
            if item.transcription_error:
                err = item.transcription_error
                note = f"transcription failed: {err.get('message') or err.get('code')}"
            elif not item.transcript_done and not text:
                if _transcription_on(session):
                    note = "transcribing…"
                else:
                    note = "input transcription is off"
            elif item.transcript_done and not text:
                note = "no words recognised"
            if item.duration_ms:
                note = f"{_secs(item.duration_ms)} of audio" + (f" · {note}" if note else "")
        images = item.images if item.image_urls else []
        if images:
            shown = ", ".join(f"{img.describe()} image" for img in images)
            note = f"{shown} · {note}" if note else shown
        return "you", text, note
    text = item.transcript or item.text
    notes = []
    status = None
    if session is not None and item.response_id:
        resp = session.responses.get(item.response_id)
        if resp is not None:
            status = resp.status
            if resp.status == "in_progress":
                notes.append("…")
            elif resp.status not in ("completed", None):
                reason = (resp.status_details or {}).get("reason")
                notes.append(resp.status + (f" ({reason})" if reason else ""))
    if item.truncated_ms is not None:
        notes.append(f"cut at {_secs(item.truncated_ms)} (what was heard)")
    if role == "system":
        return "system", text, ""
    if not text and status == "in_progress":
        notes = ["thinking…"]
    return "assistant", text, " · ".join(notes)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mcp_text(item: Any) -> tuple[str, str, str]:
    """Rows of the MCP items: the server's tool list, a call with its result, an approval."""
    label = item.server_label or "?"
    state = item.mcp_state
    if item.type == "mcp_list_tools":
        names = ", ".join(str(t.get("name")) for t in item.tools) if item.tools else ""
        note = {"in_progress": "listing…", "failed": "listing failed (see errors)"}.get(
            state or "", "")
        if state == "completed" and not item.tools:
            note = "no tools"
        return f"MCP {label}", f"tools: {names}" if names else "", note
    call = f"{item.name or '?'}({item.arguments})"
    if item.type == "mcp_call":
        if item.error:
            err = item.error
            return f"MCP {label}", call, f"failed: {err.get('message') or err.get('type')}"
        if item.output is not None:
            return f"MCP {label}", f"{call} → {_short(item.output)}", ""
        note = "running…" if state == "in_progress" else (
            "waiting for approval" if item.approval_request_id else "")
        return f"MCP {label}", call, note
    if item.type == "mcp_approval_request":
        note = {"approved": "approved", "denied": "denied",
                "expired": "not answered before its session ended"}.get(
            state or "", "approval pending: session.approve_mcp(...)")
        if item.reason and state in ("approved", "denied"):
            note += f" ({item.reason})"
        return f"MCP {label}", f"may I run {call}?", note
    answer = "approved" if item.approve else "denied"
    return "you", f"MCP: {answer}" + (f" ({item.reason})" if item.reason else ""), ""


def _transcription_on(session: Any) -> bool:
    cfg = getattr(session, "config", None) if session is not None else None
    try:
        return cfg["audio"]["input"]["transcription"] is not None  # type: ignore[index]
    except (TypeError, KeyError):
        return False


class _Row:
    __slots__ = ("audio_key", "box", "html", "player", "value")

    def __init__(self, item_id: str) -> None:
        self.html = widgets.HTML("")
        self.html.add_class("rtnb-turn-html")
        self.box = widgets.VBox([self.html])
        self.box.add_class("rtnb-turn")
        self.value = ""
        self.player: widgets.Audio | None = None
        self.audio_key: tuple[Any, ...] | None = None


class TranscriptView(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped: VBox is Any
    """The streaming transcript of a Session (see the module docstring).

    Args:
        session: the Session (its mirror is read on :meth:`refresh`).
        players: add replay players for user recordings and assistant audio.
    """

    def __init__(self, session: Any = None, *, players: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("layout", widgets.Layout(max_height="420px", overflow="auto"))
        super().__init__(**kwargs)
        self.add_class("rtnb-transcript")
        self.session = session
        self.players = players
        self._rows: dict[str, _Row] = {}
        self._order: list[str] = []
        self._empty = widgets.HTML('<div class="rtnb-turn-empty">Nothing said yet.</div>')
        self.children = (self._empty,)
        self.refresh()

    @property
    def rows(self) -> dict[str, str]:
        """item_id → the row's HTML, in display order (for tests and inspection)."""
        return {i: self._rows[i].value for i in self._order}

    def player_of(self, item_id: str) -> widgets.Audio | None:
        """The replay player of ``item_id`` (None until its audio is complete)."""
        row = self._rows.get(item_id)
        return row.player if row is not None else None

    def refresh(self) -> bool:
        """Bring the rows up to date with the session's items; return whether anything changed."""
        session = self.session
        if session is None:
            return False
        items = [it for it in session.items.list() if not it.deleted]
        changed = False
        for it in items:
            row = self._rows.get(it.id)
            if row is None:
                row = self._rows[it.id] = _Row(it.id)
            who, text, note = item_text(it, session)
            value = self._html(it, who, text, note)
            if value != row.value:
                row.value = value
                row.html.value = value
                changed = True
            if self.players:
                changed |= self._update_player(row, it)
        order = [it.id for it in items]
        if order != self._order:
            self._order = order
            for gone in set(self._rows) - set(order):
                row = self._rows.pop(gone)
                if row.player is not None:
                    row.player.close()
                row.html.close()
                row.box.close()
            self.children = tuple(self._rows[i].box for i in order) or (self._empty,)
            changed = True
        return changed

    @staticmethod
    def _html(it: Any, who: str, text: str, note: str) -> str:
        cls = {"you": "user", "assistant": "assistant"}.get(who, "other")
        body = html.escape(text) if text else ""
        note_html = f' <span class="rtnb-turn-note">{html.escape(note)}</span>' if note else ""
        thumb = it.thumbnail() if who == "you" and it.image_urls else None
        thumb_html = (f'<img class="rtnb-turn-thumb" src="{thumb}" alt="picture sent" '
                      'style="max-height:72px;max-width:96px;vertical-align:middle;'
                      'margin:0 6px;border-radius:3px">' if thumb else "")
        return (f'<div class="rtnb-turn-{cls}" data-item-id="{html.escape(it.id)}">'
                f'<span class="rtnb-turn-who">{html.escape(who)}</span> {thumb_html}'
                f'<span class="rtnb-turn-text">{body}</span>{note_html}</div>')

    def _update_player(self, row: _Row, it: Any) -> bool:
        """Create (or refresh after a truncation) the replay player of a finished item."""
        key = self._audio_key(it)
        if key is None or key == row.audio_key:
            return False
        audio = it.audio()
        if audio is None:
            return False
        if it.truncated_ms is not None:
            audio = audio.slice_ms(0, max(0.0, float(it.truncated_ms)))
        wav = audio.to_wav()
        if row.player is None:
            row.player = widgets.Audio(value=wav, format="wav", autoplay=False, controls=True,
                                       loop=False, layout=widgets.Layout(**_PLAYER_LAYOUT))
            row.player.add_class("rtnb-turn-player")
            row.box.children = (row.html, row.player)
        else:
            row.player.value = wav
        row.audio_key = key
        return True

    def _audio_key(self, it: Any) -> tuple[Any, ...] | None:
        """What the player must reflect, once the item's audio is complete (else None)."""
        if not it.audio_chunks:
            return None
        if it.role == "user":
            if it.audio_end_ms is None and not it.in_conversation:
                return None
            return ("user", it.duration_ms)
        if it.role != "assistant":
            return None
        resp = self.session.responses.get(it.response_id) if it.response_id else None
        finished = (resp is not None and resp.done) or it.status in ("completed", "incomplete")
        if not finished:
            return None
        return ("assistant", it.duration_ms, it.truncated_ms)
