"""MCP tool rules shared by the local server's state machine and the client: which listed tools a
session may use (``allowed_tools``), which calls need approval (``require_approval``), and how the
``authorization`` token is kept out of echoes and logs. No I/O here.

What the service does that is not documented and is therefore a choice here (UNCONFIRMED):

* ``require_approval`` left out (or ``null``) means ``"always"`` (the documented default of the
  Responses API's MCP tool and of Azure Voice Live's).
* In the per-tool object form a tool matching ``never`` needs no approval, one matching
  ``always`` does, and one matching neither does. A filter with both ``tool_names`` and
  ``read_only`` matches when both hold.
* ``allowed_tools`` filters the listing itself (the ``mcp_list_tools`` item shows only the
  allowed tools).
* Session echoes leave ``authorization`` out.
"""

from __future__ import annotations

import copy
import json
from typing import Any

__all__ = [
    "REDACTED",
    "allowed",
    "fingerprint",
    "mcp_tools",
    "needs_approval",
    "redact_tools",
    "without_authorization",
]

#: What an ``authorization`` token is replaced with in logs and recordings.
REDACTED = "***"


def mcp_tools(tools: Any) -> list[dict[str, Any]]:
    """The ``type: "mcp"`` entries of a tools list (anything else is skipped)."""
    if not isinstance(tools, list):
        return []
    return [t for t in tools if isinstance(t, dict) and t.get("type") == "mcp"]


def fingerprint(tool: dict[str, Any]) -> str:
    """What decides whether a server must be listed again: where it is, how it is reached and
    which tools are allowed (``require_approval`` and the description do not)."""
    keys = ("server_url", "connector_id", "tunnel_id", "headers", "authorization",
            "allowed_tools")
    return json.dumps({k: tool.get(k) for k in keys}, sort_keys=True)


def _matches(flt: Any, listed: dict[str, Any]) -> bool:
    if not isinstance(flt, dict) or not flt:
        return False
    if "tool_names" in flt and listed.get("name") not in (flt.get("tool_names") or []):
        return False
    if "read_only" in flt:
        notes = listed.get("annotations") or {}
        if bool(notes.get("read_only", False)) != bool(flt["read_only"]):
            return False
    return True


def allowed(tool: dict[str, Any], listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listed tools that ``tool``'s ``allowed_tools`` lets through (all when unset/null)."""
    rule = tool.get("allowed_tools")
    if rule is None:
        return list(listed)
    if isinstance(rule, list):
        return [t for t in listed if t.get("name") in rule]
    return [t for t in listed if _matches(rule, t)]


def needs_approval(tool: dict[str, Any], listed: dict[str, Any]) -> bool:
    """Whether calling ``listed`` (an ``mcp_list_tools`` entry) of server ``tool`` must wait for
    an ``mcp_approval_response`` (see the module docstring for the defaults)."""
    rule = tool.get("require_approval")
    if rule is None or rule == "always":
        return True
    if rule == "never":
        return False
    return not _matches(rule.get("never"), listed)


def without_authorization(tools: Any) -> Any:
    """A copy of a tools list whose ``mcp`` entries carry no ``authorization`` (for echoes)."""
    if not isinstance(tools, list):
        return tools
    out = []
    for t in tools:
        if isinstance(t, dict) and t.get("type") == "mcp" and "authorization" in t:
            t = {k: v for k, v in t.items() if k != "authorization"}
        out.append(t)
    return out


def redact_tools(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with every MCP ``authorization`` (in ``session.tools`` or ``response.tools``)
    replaced by :data:`REDACTED`; the same object when there is none. For logs and recordings."""
    hits = []
    for key in ("session", "response"):
        body = event.get(key)
        if isinstance(body, dict):
            for i, t in enumerate(body.get("tools") or []):
                if isinstance(t, dict) and t.get("type") == "mcp" and t.get("authorization"):
                    hits.append((key, i))
    if not hits:
        return event
    out = copy.deepcopy(event)
    for key, i in hits:
        out[key]["tools"][i]["authorization"] = REDACTED
    return out
