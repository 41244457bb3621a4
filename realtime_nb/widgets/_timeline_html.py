"""The offline HTML page behind :func:`realtime_nb.widgets.timeline_html`.

One file that runs the widget's own ``timeline.js`` without Jupyter: the module is embedded as
text and imported from a Blob URL (as anywidget does), a stand-in for the widget model
(anywidget's ``get``, ``set``, ``on``, ``off``, ``send``, ``save_changes``) gives it the
widget's state, and the embedded compact events are delivered as the kernel would deliver them
(answering the module's ``sync`` requests). Nothing is loaded from the network. The page
exposes ``window.rtnbTimeline`` for scripts and tests (see :func:`timeline_html`).
"""

from __future__ import annotations

import html
import json
import pathlib
from typing import Any

__all__ = ["write_page"]


def write_page(events: list[dict[str, Any]], path: pathlib.Path, *, title: str,
               state: dict[str, Any], js: str, css: str) -> pathlib.Path:
    """Write the page of compact ``events`` to ``path``: ``state`` is the widget model's state
    (its synced traits), ``js`` and ``css`` the widget's module and style sheet."""

    def embed(obj: Any) -> str:
        # Safe inside <script type="application/json">: no "</" can close the element.
        return json.dumps(obj, separators=(",", ":")).replace("</", "<\\/")

    page = _HTML_TEMPLATE.format(
        title=html.escape(title), css=css, js=js.replace("</script", "<\\/script"),
        state=embed(state), events=embed(events), count=len(events),
    )
    path.write_text(page, encoding="utf-8")
    return path


_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ margin: 16px; font-family: system-ui, sans-serif; background: #fff; color: #222; }}
{css}
</style>
</head>
<body>
<div id="rtnb-timeline-root"></div>
<noscript>This timeline needs JavaScript ({count} events are embedded as JSON below).</noscript>
<script type="application/json" id="rtnb-timeline-state">{state}</script>
<script type="application/json" id="rtnb-timeline-events">{events}</script>
<script type="text/plain" id="rtnb-timeline-js">{js}</script>
<script type="module">
// A stand-in for the widget model (anywidget's {{get, set, on, off, send, save_changes}}): the
// page runs the widget's own module, and delivers the embedded events as the kernel would.
const state = JSON.parse(document.getElementById("rtnb-timeline-state").textContent);
const events = JSON.parse(document.getElementById("rtnb-timeline-events").textContent);
const source = document.getElementById("rtnb-timeline-js").textContent;
const url = URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }}));
const ns = await import(url);
const mod = ns.default;
const handlers = new Map();
const replies = [];
const model = {{
  get: (k) => state[k],
  set: (k, v) => {{ state[k] = v; (handlers.get("change:" + k) || []).forEach((f) => f()); }},
  save_changes: () => {{}},
  on: (names, f) => names.split(" ").forEach((n) => {{
    if (!handlers.has(n)) handlers.set(n, []);
    handlers.get(n).push(f);
  }}),
  off: (names, f) => names.split(" ").forEach((n) => {{
    const fs = handlers.get(n) || [];
    const i = fs.indexOf(f);
    if (i >= 0) fs.splice(i, 1);
  }}),
  send: (msg) => {{
    replies.push(msg);
    if (msg.type === "sync") {{
      model.lastSync = msg;
      const from = msg.from || 0, to = msg.to ?? events.length;
      const part = events.filter((e) => e.s >= from && e.s < to);
      setTimeout(() => deliver({{ type: "events", events: part, sync: true, final: true,
        live: false, total: events.length }}), 0);
    }}
  }},
}};
const deliver = (msg) => (handlers.get("msg:custom") || []).forEach((f) => f(msg, []));
const cleanup = [mod.initialize({{ model }}),
  mod.render({{ model, el: document.getElementById("rtnb-timeline-root") }})];
window.rtnbTimeline = {{
  deliver,
  request: async (msg) => {{
    const n = replies.length;
    deliver(msg);
    for (let i = 0; i < 200 && replies.length === n; i++) {{
      await new Promise((r) => setTimeout(r, 5));
    }}
    return replies.slice(n).find((r) => r.type === msg.type) || null;
  }},
  lanes: (binS) => ns.lanesSummary(state._uid, binS ?? null),
  model,
  cleanup: () => cleanup.forEach((f) => f && f()),
}};
</script>
</body>
</html>
"""
