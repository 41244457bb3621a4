"""The package's layers import one way: audio < vad < protocol < server < client < widgets/lab.

Read from the source (every ``import`` statement, module level or inside functions), so a new
arrow the wrong way fails here before it becomes a cycle. ``credentials`` (masked secrets and
log redaction) and ``net`` (which hosts are loopback) sit below both client and server.
Inside ``widgets``, the timeline's private modules import one way too: ``_lanes`` <
``_compact``; ``_timeline_png``, ``_timeline_html`` < ``timeline``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import realtime_nb

PACKAGE = Path(realtime_nb.__file__).parent

#: What each subpackage (or module) must never import, whatever the import's position.
FORBIDDEN = {
    "audio": ("client", "server", "widgets", "lab", "protocol", "vad"),
    "vad": ("client", "server", "widgets", "lab", "protocol"),
    "protocol": ("client", "server", "widgets", "lab"),
    "credentials": ("client", "server", "widgets", "lab", "protocol", "vad", "audio"),
    "net": ("client", "server", "widgets", "lab", "protocol", "vad", "audio"),
    "server": ("client", "widgets", "lab"),
}


def _imports(path: Path) -> set[str]:
    """Absolute names of the ``realtime_nb`` modules ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("realtime_nb", *path.relative_to(PACKAGE).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("realtime_nb.")}


def _sources(layer: str) -> list[Path]:
    target = PACKAGE / layer
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_lower_layer_never_imports_a_higher_one(layer: str) -> None:
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _sources(layer)
        for name in _imports(path)
        if name.split(".")[1] in FORBIDDEN[layer]
    }
    assert not wrong


def test_no_module_outside_client_reaches_into_a_private_client_module() -> None:
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "client"
        for name in _imports(path)
        if name.startswith("realtime_nb.client._")
    }
    assert not wrong


def test_moved_names_keep_their_public_import_paths() -> None:
    from realtime_nb import audio, credentials, server, vad
    from realtime_nb.client import backend

    assert server.make_segmenter is vad.make_segmenter
    assert backend.Secret is credentials.Secret
    assert backend.redact_url is credentials.redact_url
    assert backend.REDACT_HEADERS is credentials.REDACT_HEADERS
    assert audio.CapturedPCM16.__module__ == "realtime_nb.audio._captured"


#: Inside the timeline, what each of its private modules must never import: the lane facts and
#: grouping (_lanes) stay free of the client, so the widget, the PNG and the traits the browser
#: gets share them without the state mirror; only the compaction (_compact) replays the client's
#: mirror; the drawings depend on the lanes, never on the widget module.
TIMELINE_FORBIDDEN = {
    "_lanes.py": ("realtime_nb.client", "realtime_nb.widgets._compact",
                  "realtime_nb.widgets.timeline"),
    "_compact.py": ("realtime_nb.widgets.timeline", "realtime_nb.widgets._timeline_png"),
    "_timeline_png.py": ("realtime_nb.client", "realtime_nb.widgets._compact",
                         "realtime_nb.widgets.timeline"),
    "_timeline_html.py": ("realtime_nb.client", "realtime_nb.widgets._compact",
                          "realtime_nb.widgets.timeline"),
}


@pytest.mark.parametrize("module", sorted(TIMELINE_FORBIDDEN))
def test_the_timeline_modules_import_one_way(module: str) -> None:
    names = _imports(PACKAGE / "widgets" / module)
    assert not {n for n in names if n.startswith(TIMELINE_FORBIDDEN[module])}


def _all_imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names, any package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


def test_the_servers_admission_decides_without_io() -> None:
    """Like websockets' ``ServerProtocol.accept``: who may connect is a function of the request
    and the server's settings, testable without a socket or a loop."""
    io = {"asyncio", "socket", "ssl", "websockets.asyncio.server", "websockets.server",
          "realtime_nb.server.app", "realtime_nb.server.connection"}
    assert not _all_imports(PACKAGE / "server" / "admission.py") & io


def test_the_lab_runs_its_server_on_the_servers_own_thread() -> None:
    """One home for "a LocalServer on its own loop in a daemon thread": ``server.thread``."""
    assert "realtime_nb.server.thread" in _imports(PACKAGE / "lab" / "_socket.py")
    assert "threading" not in _all_imports(PACKAGE / "lab" / "_socket.py")


def test_the_turn_rules_live_beside_the_client_without_widgets() -> None:
    """Barge-in, truncation and push-to-talk are protocol behaviour: the panel uses them, but
    their module imports neither the widgets nor ipywidgets/traitlets."""
    path = PACKAGE / "client" / "turn_taking.py"
    assert not {n for n in _imports(path) if n.split(".")[1] in ("widgets", "lab")}
    widget_libs = {"ipywidgets", "traitlets", "anywidget"}
    assert not {n for n in _all_imports(path) if n.split(".")[0] in widget_libs}


#: The Session's rooms (session.py's docstring says what each holds).
SESSION_ROOMS = ("_connection", "_conversation", "_input_audio", "_receiving", "_renewing",
                 "_sending", "_tool_use", "_waiting")


def _runtime_imports(path: Path) -> set[str]:
    """Absolute names of the modules a ``realtime_nb.client`` module imports at run time (the
    imports under ``if TYPE_CHECKING:`` left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            for n in ast.walk(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = {0: "", 1: "realtime_nb.client.", 2: "realtime_nb."}[node.level]
            module = f"{base}{node.module or ''}".rstrip(".")
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_session_rooms_never_import_session_or_widgets_at_run_time() -> None:
    """session.py assembles the rooms, so a room importing it would be a cycle; the panel is
    attached from outside (realtime_nb/__init__.py), so no room reaches into widgets."""
    wrong = {
        f"{room} imports {name}"
        for room in SESSION_ROOMS
        for name in _runtime_imports(PACKAGE / "client" / f"{room}.py")
        if name.startswith(("realtime_nb.client.session", "realtime_nb.widgets"))
    }
    assert not wrong


def test_the_session_is_assembled_from_its_rooms() -> None:
    from realtime_nb.client.session import Session

    modules = {cls.__module__.rsplit(".", 1)[-1] for cls in Session.__mro__[1:-1]}
    assert modules == set(SESSION_ROOMS)


#: The engines' facades: ``asr`` and ``responder`` re-export their rooms' names (callers import
#: from them); the rooms never import a facade back.
ENGINE_FACADES = ("realtime_nb.server.engines.asr", "realtime_nb.server.engines.responder")
#: The engines' shared types: every room may import them, they import no other room.
ENGINE_TYPE_MODULES = ("asr_types.py", "responder_types.py", "responder_arguments.py")


def test_the_engine_rooms_never_import_their_facades() -> None:
    wrong = {
        f"{path.name} imports {name}"
        for path in (PACKAGE / "server" / "engines").glob("*.py")
        if path.name not in ("__init__.py", "asr.py", "responder.py")
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in ENGINE_FACADES)
    }
    assert not wrong


@pytest.mark.parametrize("module", ENGINE_TYPE_MODULES)
def test_the_engine_type_modules_import_no_other_engine_module(module: str) -> None:
    names = _imports(PACKAGE / "server" / "engines" / module)
    assert not {n for n in names if n.startswith("realtime_nb.server.engines")}


def test_one_timer_loop_drives_every_session_core() -> None:
    """A SessionCore's deadlines (idle timeouts, semantic-VAD waits, expiry) are waited for in
    one place, ``server.connection.drive_timers``, run by every local-server connection."""
    callers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
        if ".next_deadline()" in path.read_text())
    assert callers == ["server/connection.py"]


def test_the_fake_test_server_is_the_local_server_with_scripted_engines() -> None:
    """client.testing's FakeRealtimeServer is no second server: it is a LocalServer (same
    admission, connection driver, send queue, timers and jobs) whose engines are scripted, so
    every session a test runs against it goes through the local server's code."""
    from realtime_nb.client import testing
    from realtime_nb.server import LocalServer, scripted

    assert testing.FakeRealtimeServer is scripted.FakeRealtimeServer
    assert issubclass(testing.FakeRealtimeServer, LocalServer)
    for module in ("client/testing.py", "server/scripted.py"):  # no core of its own
        assert "SessionCore(" not in (PACKAGE / module).read_text(), module
