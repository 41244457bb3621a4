"""The protocol coverage table (docs/protocol-coverage.md), generated from the SDK's own unions.

The official ``openai`` SDK lists every GA event type in two discriminated unions,
``openai.types.realtime.RealtimeClientEvent`` and ``RealtimeServerEvent``, and every conversation
item in ``ConversationItem``. For each type this test works out, from realtime_nb's own code (not
from a hand-kept list), what handles it:

* **Session** — client events: the wire-named ``Session`` method that sends it (found in the
  method's source); server events: every type is logged and reaches ``on()`` / ``wait_for()``;
  the column names the Session's own uses of the type beyond that.
* **protocol model** — the validator's ``CLIENT_EVENTS`` / the model's ``SERVER_EVENTS``.
* **mirror** — ``Mirror``'s handler table (server events) and what ``Mirror.client_event`` /
  ``client_append`` track (client events).
* **local server** — client events: ``SessionCore`` has an ``_on_<type>`` handler; server
  events: the local server emits the type somewhere in ``SessionCore``'s modules
  (``protocol/state.py`` and the parts it is assembled from) or ``server/``.
* **timeline** — the timeline's category for the type (``other`` means it has no place).

The table in docs/ must equal what the code says today (regenerate it with
``REALTIME_NB_WRITE_DOCS=1 pytest tests/test_protocol_coverage.py``), and the test fails when the
SDK has a type that the protocol model does not know, or that nothing at all handles.
"""

from __future__ import annotations

import ast
import inspect
import os
import textwrap
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from realtime_nb.client.mirror import Mirror
from realtime_nb.client.session import Session
from realtime_nb.protocol import events as protocol_events
from realtime_nb.protocol.state import SessionCore
from realtime_nb.widgets._lanes import category_of

realtime_types = pytest.importorskip("openai.types.realtime")

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol-coverage.md"
PACKAGE = ROOT / "realtime_nb"

#: Why a column is empty where that is the right answer (shown in the table's notes).
NOTES: dict[str, str] = {
    "conversation.item.created": "beta-era name still in the GA union; GA servers send "
                                 "conversation.item.added / .done (the mirror reads both)",
    "input_audio_buffer.dtmf_event_received": "SIP calls only; the local server has no SIP",
    "output_audio_buffer.clear": "WebRTC/SIP only (over a WebSocket the local server refuses it "
                                 "as the service does, and the Session before sending)",
    "output_audio_buffer.started": "WebRTC calls only (the audio travels on the media track)",
    "output_audio_buffer.stopped": "WebRTC calls only",
    "output_audio_buffer.cleared": "WebRTC calls only",
}


# ------------------------------------------------------------------ the SDK's lists


def _union_members(union: Any) -> tuple[type, ...]:
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return typing.get_args(union)


def _literal_type(model: type) -> str:
    (value,) = typing.get_args(model.model_fields["type"].annotation)
    return value


def sdk_client_events() -> list[str]:
    return [_literal_type(m) for m in _union_members(realtime_types.RealtimeClientEvent)]


def sdk_server_events() -> list[str]:
    return [_literal_type(m) for m in _union_members(realtime_types.RealtimeServerEvent)]


def sdk_item_types() -> list[tuple[str, str | None]]:
    """``(type, role)`` of every GA conversation item (messages split by role)."""
    out = []
    for model in _union_members(realtime_types.ConversationItem):
        role = None
        if "role" in model.model_fields:
            (role,) = typing.get_args(model.model_fields["role"].annotation)
        out.append((_literal_type(model), role))
    return out


# ------------------------------------------------------------------ what realtime_nb's code says


def _source_tree(obj: Any) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


def _dict_types(tree: ast.AST, compares: bool = True) -> set[str]:
    """String values of ``"type"`` keys in dict literals, and (with ``compares``) the strings
    in comparisons such as ``etype == "..."``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (isinstance(key, ast.Constant) and key.value == "type"
                        and isinstance(value, ast.Constant) and isinstance(value.value, str)):
                    found.add(value.value)
        elif compares and isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Constant) and isinstance(side.value, str):
                    found.add(side.value)
                elif isinstance(side, ast.Tuple | ast.Set | ast.List):
                    found.update(e.value for e in side.elts
                                 if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return found


def _private_calls(tree: ast.AST) -> set[str]:
    """Names of the private ``self._x`` methods a method uses."""
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == "self"
            and n.attr.startswith("_") and not n.attr.startswith("__")}


def session_methods_by_client_event() -> dict[str, list[str]]:
    """Public ``Session`` methods whose source (or a private helper it calls) builds a client
    event of each type."""
    members = dict(inspect.getmembers(Session, inspect.isfunction))
    out: dict[str, list[str]] = {}
    for name, fn in members.items():
        if name.startswith("_"):
            continue
        tree = _source_tree(fn)
        built = _dict_types(tree, compares=False)
        for helper in _private_calls(tree):
            if helper in members:
                built |= _dict_types(_source_tree(members[helper]), compares=False)
        for etype in built & set(protocol_events.CLIENT_EVENTS):
            out.setdefault(etype, []).append(name)
    return out


def session_uses_of_server_events() -> dict[str, list[str]]:
    """``Session`` methods (public and private) that name a server event type themselves."""
    out: dict[str, list[str]] = {}
    server = set(sdk_server_events()) | set(protocol_events.SERVER_EVENTS)
    for name, fn in inspect.getmembers(Session, inspect.isfunction):
        tree = _source_tree(fn)
        names = {n.value for n in ast.walk(tree)
                 if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        for etype in names & server:
            out.setdefault(etype, []).append(name)
    return out


def mirror_client_events() -> set[str]:
    tracked = _dict_types(_source_tree(Mirror.client_event)) & set(protocol_events.CLIENT_EVENTS)
    # Appends reach the mirror through client_append (their audio, not the event).
    if callable(getattr(Mirror, "client_append", None)):
        tracked.add("input_audio_buffer.append")
    return tracked


def mirror_server_events() -> set[str]:
    handled = set(Mirror()._handlers)
    # Output audio reaches the mirror through audio_delta (the Session decodes it once).
    if callable(getattr(Mirror, "audio_delta", None)):
        handled.add("response.output_audio.delta")
    return handled


def server_client_events() -> set[str]:
    return {etype for etype in protocol_events.CLIENT_EVENTS
            if callable(getattr(SessionCore, "_on_" + etype.replace(".", "_"), None))}


def _emitted_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "emit" and node.args):
            # emit("type", ...) or emit("a" if ok else "b", ...)
            found.update(n.value for n in ast.walk(node.args[0])
                         if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return found | _dict_types(tree)


def session_core_sources() -> list[Path]:
    """The files SessionCore is assembled from (state.py and the modules of its parts)."""
    return sorted({Path(inspect.getsourcefile(cls)) for cls in SessionCore.__mro__
                   if cls.__module__.startswith("realtime_nb.protocol.")})


def server_emitted_events() -> set[str]:
    files = [*session_core_sources(), *sorted((PACKAGE / "server").rglob("*.py"))]
    found: set[str] = set()
    for path in files:
        found |= _emitted_in(path)
    return found


# ------------------------------------------------------------------ the table


def _mark(ok: bool, text: str = "✓") -> str:
    return text if ok else "—"


def _rows(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def client_rows() -> list[list[str]]:
    methods = session_methods_by_client_event()
    mirror = mirror_client_events()
    server = server_client_events()
    rows = []
    for etype in sdk_client_events():
        names = ", ".join(f"`{m}()`" for m in sorted(methods.get(etype, [])))
        rows.append([
            f"`{etype}`",
            names or "`send()`",
            _mark(etype in protocol_events.CLIENT_EVENTS),
            _mark(etype in mirror),
            _mark(etype in server),
            _mark(category_of(etype, "c") != "other", category_of(etype, "c")),
            NOTES.get(etype, ""),
        ])
    return rows


def server_rows() -> list[list[str]]:
    uses = session_uses_of_server_events()
    mirror = mirror_server_events()
    emitted = server_emitted_events()
    rows = []
    for etype in sdk_server_events():
        public = sorted(m for m in uses.get(etype, []) if not m.startswith("_"))
        names = [f"`{m}()`" for m in public]
        if len(public) < len(uses.get(etype, [])):
            names.append("internal")
        rows.append([
            f"`{etype}`",
            "logged, `on()`" + (f"; {', '.join(names)}" if names else ""),
            _mark(etype in protocol_events.SERVER_EVENTS),
            _mark(etype in mirror),
            _mark(etype in emitted),
            _mark(category_of(etype, "s") != "other", category_of(etype, "s")),
            NOTES.get(etype, ""),
        ])
    return rows


def item_rows() -> list[list[str]]:
    accepted = _create_item_types()
    rows = []
    for itype, role in sdk_item_types():
        ok = (itype, role) in accepted or (itype, None) in accepted
        rows.append([f"`{itype}`" + (f" ({role})" if role else ""), _mark(ok)])
    return rows


def _create_item_types() -> set[tuple[str, str | None]]:
    """``(type, role)`` pairs the validator accepts as ``conversation.item.create``'s item."""
    create = protocol_events.CLIENT_EVENTS["conversation.item.create"]
    hints = typing.get_type_hints(create)
    out: set[tuple[str, str | None]] = set()
    for cls in typing.get_args(hints["item"]):
        if not hasattr(cls, "__dataclass_fields__"):
            continue
        field_hints = typing.get_type_hints(cls)
        (itype,) = [a for a in typing.get_args(typing.get_args(field_hints["type"])[0])] or [None]
        roles = [None]
        if "role" in field_hints:
            roles = list(typing.get_args(typing.get_args(field_hints["role"])[0]))
        out.update((itype, role) for role in roles)
    return out


def render() -> str:
    import openai

    lines = [
        "# Protocol coverage",
        "",
        "Generated by `tests/test_protocol_coverage.py` from the official `openai` SDK's own "
        f"type unions (openai {openai.__version__}): every GA client and server event type and "
        "every conversation item type, and what handles it in realtime_nb. The test fails when "
        "this file is out of date or the SDK has a type nothing here handles; regenerate with "
        "`REALTIME_NB_WRITE_DOCS=1 .venv/bin/python -m pytest tests/test_protocol_coverage.py`.",
        "",
        "Columns: **Session** — the wire-named method that sends a client event (any event can "
        "also go through `send()`, validated first); every server event is logged and reaches "
        "`on()` / `wait_for()`, and the column adds the Session's own uses of it. **model** — "
        "known to the one protocol model (the validator's client events, `SERVER_EVENTS`). "
        "**mirror** — tracked by the state mirror. **local server** — handled (client events) or "
        "emitted (server events) by the local server. **timeline** — the timeline category it "
        "is drawn in.",
        "",
        "## Client events",
        "",
        *_rows(["type", "Session", "model", "mirror", "local server", "timeline", "notes"],
               client_rows()),
        "",
        "## Server events",
        "",
        *_rows(["type", "Session", "model", "mirror", "local server", "timeline", "notes"],
               server_rows()),
        "",
        "## Conversation items",
        "",
        "Accepted by `conversation.item.create` (the Session's validator and the local server "
        "share it).",
        "",
        *_rows(["item", "create"], item_rows()),
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ the tests


def test_the_coverage_table_in_docs_is_what_the_code_says() -> None:
    text = render()
    if os.environ.get("REALTIME_NB_WRITE_DOCS") == "1":
        DOC.write_text(text)
    assert DOC.exists(), "docs/protocol-coverage.md is missing: regenerate it (see the docstring)"
    assert DOC.read_text() == text, (
        "docs/protocol-coverage.md is out of date: regenerate it with "
        "REALTIME_NB_WRITE_DOCS=1 pytest tests/test_protocol_coverage.py")


def test_every_sdk_client_event_is_validated_sent_and_served() -> None:
    """A new client event in the SDK must reach the model, a Session method and the server."""
    methods = session_methods_by_client_event()
    server = server_client_events()
    missing = [(etype, what) for etype in sdk_client_events()
               for what, ok in (("model", etype in protocol_events.CLIENT_EVENTS),
                                ("local server", etype in server))
               if not ok]
    assert not missing, f"client events nothing handles: {missing}"
    no_method = [e for e in sdk_client_events() if e not in methods]
    assert not no_method, f"client events without a wire-named Session method: {no_method}"


def test_every_sdk_server_event_is_known_to_the_model_and_handled_somewhere() -> None:
    mirror = mirror_server_events()
    emitted = server_emitted_events()
    unknown = [e for e in sdk_server_events() if e not in protocol_events.SERVER_EVENTS]
    assert not unknown, f"server events the protocol model does not know: {unknown}"
    unhandled = [e for e in sdk_server_events()
                 if e not in mirror and e not in emitted and category_of(e, "s") == "other"]
    assert not unhandled, f"server events nothing handles: {unhandled}"


def test_every_sdk_conversation_item_can_be_created() -> None:
    accepted = _create_item_types()
    refused = [(t, r) for t, r in sdk_item_types() if (t, r) not in accepted
               and (t, None) not in accepted]
    assert not refused, f"conversation items conversation.item.create refuses: {refused}"


def test_the_scanners_see_what_the_code_does() -> None:
    """The table's columns come from reading the code; check them on known cases."""
    assert "commit" in session_methods_by_client_event()["input_audio_buffer.commit"]
    assert "input_audio_buffer.commit" in mirror_client_events()
    assert "response.cancel" not in mirror_client_events()
    assert "response.output_audio.delta" in server_emitted_events()
    assert "conversation.created" in server_emitted_events()
    assert "session.created" in server_emitted_events()
    assert "input_audio_buffer.append" in server_client_events()
    assert "conversation.item.added" in mirror_server_events()
