"""The panel's HTML: its stylesheet and the renderers of its text parts.

Each renderer is a pure function of what it shows (the session's mirror and config, the
transport, the capture path): the status line (:func:`status_html`), the input-buffer gauge
(:func:`gauge_html`, or :func:`call_gauge_html` over WebRTC), the usage line
(:func:`usage_html`) and the mode note (:func:`mode_html`). Every text that comes from the
session or the server is escaped; the result is trusted HTML for an ``ipywidgets.HTML`` (or the
marimo view's ``HTMLView``). :data:`PANEL_CSS` styles them and the rest of the panel (classes
``rtnb-…``), in Jupyter's theme variables with light fallbacks.

When the panel redraws which part is :mod:`realtime_nb.widgets._redraw`'s business, not theirs.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from realtime_nb.audio import COMMIT_MIN_MS
from realtime_nb.client.errors import BENIGN_CODES, RealtimeError
from realtime_nb.client.turn_taking import TurnTaking, turn_detection_of

__all__ = ["GAUGE_FULL_MS", "PANEL_CSS", "call_gauge_html", "gauge_html", "mode_html",
           "status_html", "usage_html"]

#: The input-buffer gauge's full scale (square-root scale), in ms.
GAUGE_FULL_MS = 3000.0

PANEL_CSS = """
<style>
.rtnb-panel { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 6px;
  padding: 6px 8px; gap: 4px; font-family: var(--jp-ui-font-family, system-ui, sans-serif); }
.rtnb-panel .rtnb-section { font-weight: 600; color: var(--jp-ui-font-color1, #222);
  margin: 6px 0 2px 0; font-size: var(--jp-ui-font-size1, 13px); }
.rtnb-status-line { font-size: var(--jp-ui-font-size1, 13px); line-height: 1.5; }
.rtnb-state-connected { color: var(--jp-success-color1, #2e7d32); font-weight: 600; }
.rtnb-state-connecting, .rtnb-state-reconnecting, .rtnb-state-new {
  color: var(--jp-warn-color1, #b26a00); font-weight: 600; }
.rtnb-state-disconnected, .rtnb-state-closed { color: var(--jp-error-color1, #c62828);
  font-weight: 600; }
.rtnb-dim { color: var(--jp-ui-font-color2, #666); }
.rtnb-error-box { margin-top: 2px; padding: 3px 8px; border-left: 3px solid
  var(--jp-error-color1, #d32f2f); background: var(--jp-error-color3, #fdecea); }
.rtnb-benign-box { margin-top: 2px; padding: 3px 8px; border-left: 3px solid
  var(--jp-border-color1, #bbb); color: var(--jp-ui-font-color2, #555); }
.rtnb-mode-note { color: var(--jp-ui-font-color2, #555); font-size: var(--jp-ui-font-size1, 13px); }
.rtnb-gauge { display: flex; align-items: center; gap: 8px; flex-wrap: wrap;
  font-size: var(--jp-ui-font-size1, 13px); font-variant-numeric: tabular-nums; }
.rtnb-gauge-track { position: relative; width: 240px; height: 10px; border-radius: 5px;
  background: var(--jp-layout-color3, #e0e0e0); overflow: hidden; }
.rtnb-gauge-fill { position: absolute; left: 0; top: 0; bottom: 0;
  background: var(--jp-success-color1, #43a047); }
.rtnb-gauge-fill.rtnb-low { background: var(--jp-warn-color1, #f9a825); }
.rtnb-gauge-min { position: absolute; top: -2px; bottom: -2px; width: 2px;
  background: var(--jp-ui-font-color1, #333); }
.rtnb-vad-dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%;
  background: var(--jp-layout-color3, #bbb); margin-right: 3px; }
.rtnb-vad-dot.rtnb-on { background: var(--jp-error-color1, #e53935); }
.rtnb-turn { margin: 2px 0; }
.rtnb-turn-html { width: 100%; }
.rtnb-turn-html .widget-html-content { white-space: normal; line-height: 1.4; }
.rtnb-turn-user, .rtnb-turn-assistant, .rtnb-turn-other { padding: 4px 8px; border-radius: 6px; }
.rtnb-turn-user { background: var(--jp-layout-color2, #eef3fb); }
.rtnb-turn-assistant { background: var(--jp-cell-editor-background, #f6f6f6); }
.rtnb-turn-who { font-weight: 600; margin-right: 4px; }
.rtnb-turn-user .rtnb-turn-who { color: var(--jp-brand-color1, #1565c0); }
.rtnb-turn-assistant .rtnb-turn-who { color: var(--jp-success-color1, #2e7d32); }
.rtnb-turn-note { color: var(--jp-ui-font-color2, #777); font-size: 0.9em; margin-left: 4px; }
.rtnb-turn-empty { color: var(--jp-ui-font-color2, #888); font-style: italic; padding: 4px; }
.rtnb-note-ok { color: var(--jp-success-color1, #2e7d32); }
.rtnb-note-error { color: var(--jp-error-color1, #c62828); }
.rtnb-note-pending { color: var(--jp-ui-font-color2, #777); }
.rtnb-ctl-note .widget-html-content { line-height: 1.3; font-size: 0.92em; white-space: normal; }
.rtnb-picture-row { gap: 8px; }
.rtnb-picture-label { font-weight: 600; font-size: var(--jp-ui-font-size1, 13px); }
.rtnb-usage { color: var(--jp-ui-font-color2, #555); font-size: var(--jp-ui-font-size1, 13px);
  font-variant-numeric: tabular-nums; }
</style>
"""


def _fmt_int(n: Any) -> str:
    return f"{int(n):,}" if isinstance(n, int | float) else "0"


def usage_html(session: Any) -> str:
    """The usage line: responses, token totals (with the audio/text split, and image tokens
    when there were any), transcription tokens."""
    usage = session.usage or {}
    n = sum(1 for r in session.responses.values() if r.done)
    inp = usage.get("input_token_details") or {}
    out = usage.get("output_token_details") or {}
    text = (f"<b>Usage</b> · {n} response{'s' if n != 1 else ''} · tokens in "
            f"{_fmt_int(usage.get('input_tokens', 0))} (audio "
            f"{_fmt_int(inp.get('audio_tokens', 0))}, text "
            f"{_fmt_int(inp.get('text_tokens', 0))}"
            + (f", image {_fmt_int(inp['image_tokens'])}" if inp.get("image_tokens") else "")
            + ", cached "
            f"{_fmt_int(inp.get('cached_tokens', 0))}) · out "
            f"{_fmt_int(usage.get('output_tokens', 0))} (audio "
            f"{_fmt_int(out.get('audio_tokens', 0))}, text {_fmt_int(out.get('text_tokens', 0))})"
            f" · total {_fmt_int(usage.get('total_tokens', 0))}")
    tr = getattr(session.mirror, "transcription_usage", None) or {}
    if tr:
        total = tr.get("total_tokens", tr.get("seconds", 0))
        text += f" · transcription {_fmt_int(total)}"
    return f'<div class="rtnb-usage">{text}</div>'


def gauge_html(session: Any) -> str:
    """The input-buffer gauge: buffered ms (square-root scale), the line of the commit minimum
    (:data:`~realtime_nb.audio.COMMIT_MIN_MS`), the VAD's state."""
    ms = float(session.input_buffer_ms)
    frac = min(1.0, (max(0.0, ms) / GAUGE_FULL_MS) ** 0.5)
    line = (COMMIT_MIN_MS / GAUGE_FULL_MS) ** 0.5
    low = " rtnb-low" if ms < COMMIT_MIN_MS else ""
    vad, mode = _vad_html(session)
    appended = float(getattr(session.mirror, "appended_since_ms", 0.0))
    title = ("What a commit sent now would take (the server's input buffer, mirrored in the "
             f"kernel). The black line is the {COMMIT_MIN_MS:.0f} ms a commit needs.")
    return (
        f'<div class="rtnb-gauge" title="{html.escape(title)}"><b>Input buffer</b>'
        f'<span class="rtnb-gauge-track"><span class="rtnb-gauge-fill{low}" '
        f'style="width:{frac * 100:.1f}%"></span><span class="rtnb-gauge-min" '
        f'style="left:{line * 100:.1f}%"></span></span>'
        f'<span class="rtnb-gauge-ms">{ms:,.0f} ms</span>'
        f'<span class="rtnb-dim">(appended since last commit {appended:,.0f} ms · '
        f'min {COMMIT_MIN_MS:.0f} ms)</span>{vad}'
        f'<span class="rtnb-dim">{html.escape(mode)}</span></div>')


def _vad_html(session: Any) -> tuple[str, str]:
    """What both gauges show of the turn detection: the VAD's speech dot (empty in manual
    mode) and the mode's name."""
    td = turn_detection_of(session)
    mode = td.get("type", "vad") if isinstance(td, Mapping) else "manual (turn detection off)"
    speaking = bool(session.speaking)
    vad = (f'<span><span class="rtnb-vad-dot{" rtnb-on" if speaking else ""}"></span>'
           f'{"speech" if speaking else "no speech"}</span>') if td is not None else ""
    return vad, mode


def call_gauge_html(session: Any) -> str:
    """The gauge's place over WebRTC: the input audio is on the call's track, so the kernel
    sees no buffer — only what the server's VAD says."""
    vad, mode = _vad_html(session)
    return ('<div class="rtnb-gauge"><b>Input</b><span class="rtnb-dim">the microphone goes '
            "to the server on the WebRTC call's audio track (no buffer to mirror in the "
            f'kernel)</span>{vad}<span class="rtnb-dim">{html.escape(mode)}</span></div>')


def mode_html(turns: TurnTaking, transport: str, capture: str, mic_mode: str) -> str:
    """What the current mode does (the mode note): for the ``transport``, the ``capture``
    path, the mic's ``mic_mode`` and the session's turn detection (read through ``turns``)."""
    td = turns.turn_detection
    if transport == "webrtc":
        return ("<b>WebRTC call</b>: the browser sends your microphone (with its echo "
                "cancellation) and plays the assistant over one peer connection; the "
                "kernel watches and steers the call through its sideband socket. "
                + ("The server's VAD ends each turn and cuts the assistant when you talk "
                   "over it." if td is not None else
                   "Turn detection is off: commit and ask for responses from the kernel."))
    if capture == "recorder":
        if td is None:
            text = ("<b>Record &amp; send</b>, manual mode: each take is decoded and "
                    "appended when you stop; the panel then commits it and asks for a "
                    "response.")
        else:
            text = (f"<b>Record &amp; send</b> with {html.escape(str(td.get('type')))}: "
                    "each take is appended when you stop, followed by "
                    f"{turns.pad_ms():,.0f} ms of silence so that the server's VAD ends "
                    "the turn and answers.")
    elif td is None:
        if mic_mode == "push-to-talk":
            text = ("<b>Push-to-talk</b>: turn detection is off (manual mode). Hold the "
                    "button (or the space bar) while you speak; on release the panel "
                    "commits the audio and asks for a response.")
            if turns.vad_before_ptt is not None:
                text += (" Hands-free restores "
                         f"{html.escape(str(turns.vad_before_ptt.get('type')))}.")
        else:
            text = ("<b>Manual mode</b> (turn detection off): each Start … Stop is one "
                    "turn — on Stop the panel commits the audio and asks for a response.")
    else:
        kind = html.escape(str(td.get("type")))
        auto = "answers" if td.get("create_response", True) else "commits (no auto response)"
        text = (f"<b>Hands-free</b> with {kind}: the server hears where each turn ends and "
                f"{auto}. Talking over the assistant interrupts it"
                + ("" if td.get("interrupt_response", True) else
                   " — no: interrupt_response is off") + ".")
    return text


def status_html(session: Any, transport: str, call_status: str | None,
                error: tuple[str, BaseException] | None) -> str:
    """The status line: connection state, backend, transport, the URL (``session.url``
    masks credentials), the session id, and ``error`` (the last ``(label, exception)``; a
    benign race is shown as a note, not an error)."""
    s = session
    state = s.state
    icon = {"connected": "●", "connecting": "◌", "reconnecting": "◌", "new": "○",
            "disconnected": "✗", "closed": "■"}.get(state, "?")
    label = {"connecting": "connecting…", "reconnecting": "reconnecting…",
             "new": "not connected"}.get(state, state)
    sid = s.mirror.session_id
    parts = [f'<span class="rtnb-state-{state}">{icon} {html.escape(label)}</span>',
             f"backend <b>{html.escape(s.backend)}</b>",
             _transport_html(session, transport, call_status),
             f'<span class="rtnb-dim">{html.escape(s.url)}</span>']
    if sid:
        parts.append(f'<span class="rtnb-dim">{html.escape(sid)}</span>')
    out = " · ".join(parts)
    if error is not None:
        label_, exc = error
        benign = isinstance(exc, RealtimeError) and exc.code in BENIGN_CODES
        if isinstance(exc, RealtimeError):
            text = f"{exc.code}: {exc.message}"
            hint = f"<br><i>{html.escape(exc.hint)}</i>" if exc.hint else ""
        else:
            text, hint = f"{type(exc).__name__}: {exc}", ""
        box = "rtnb-benign-box" if benign else "rtnb-error-box"
        what = "note" if benign else "last error"
        out += (f'<div class="{box}"><b>{what}</b> ({html.escape(label_)}): '
                f"{html.escape(text)}{hint}</div>")
    return out


def _transport_html(session: Any, transport: str, call_status: str | None) -> str:
    if transport != "webrtc":
        return 'transport <b class="rtnb-transport">WebSocket</b>'
    call_id = getattr(session, "call_id", None)
    status = call_status if call_status is not None else "idle"
    extra = f" {html.escape(call_id)}" if call_id else ""
    return (f'transport <b class="rtnb-transport">WebRTC</b> <span class="rtnb-dim">'
            f"(call {html.escape(status)}{extra}; sideband socket)</span>")
