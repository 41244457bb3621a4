"""Build the API reference of realtime_nb with pdoc, offline, treating warnings as errors.

Usage (``./dev docs`` runs the first form)::

    .venv/bin/python scripts/build_docs.py               # -> docs/api/ (gitignored)
    .venv/bin/python scripts/build_docs.py --out DIR

One HTML page per public module (:data:`MODULES`), generated from the docstrings, plus
``index.html`` and the search index. Nothing is fetched from the network. Every warning raised
while importing the modules and rendering the pages (pdoc reports unresolvable type annotations,
broken references, ... as Python warnings) fails the build with exit code 1, unless it is listed
in :data:`KNOWN_WARNINGS` with the reason it is tolerated.

Two adaptations, because pdoc reads docstrings written for Sphinx:

* Sphinx cross-reference roles (``:class:`Session```, ``:meth:`~.mirror.Items.list```) become
  code spans that pdoc links to the documented object (``~`` keeps the last name, as in Sphinx),
  and the literal-block marker ``::`` is dropped (:func:`sphinx_to_markdown`).
* Names imported under ``if TYPE_CHECKING:`` are imported for real before rendering, so that
  annotations using them resolve (pdoc does this itself only for some members).
* A public class assembled from private parts (``Session`` from ``client/_connection.py``,
  ``_input_audio.py``, ...; ``SessionCore`` and ``Mirror`` likewise) shows the members of those
  parts as its own: pdoc would list them as "inherited from" classes it does not document
  (:func:`_private_parts_are_own`).
"""

from __future__ import annotations

import argparse
import ast
import gc
import importlib
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "api"

#: The documented modules: the package and its public subpackages (their ``__all__``).
MODULES = (
    "realtime_nb",
    "realtime_nb.audio",
    "realtime_nb.protocol",
    "realtime_nb.client",
    "realtime_nb.client.session",
    "realtime_nb.server",
    "realtime_nb.server.engines",
    "realtime_nb.vad",
    "realtime_nb.lab",
    "realtime_nb.widgets",
)

#: Warnings tolerated (regular expression on the message -> why). Anything else fails the build.
KNOWN_WARNINGS: dict[str, str] = {}

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const):`([^`]+)`")
_LONE_LITERAL_MARK = re.compile(r"(?m)^[ \t]*::[ \t]*\n")
_TRAILING_LITERAL_MARK = re.compile(r"(?m)^(?![ \t]*\.\.)(.*\S)::[ \t]*$")


def sphinx_to_markdown(docstring: str) -> str:
    """The Sphinx bits of a docstring in pdoc's terms.

    Roles become code spans (``:meth:`~.mirror.Items.list``` -> ```list```,
    ``:class:`Session``` -> ```Session```), which pdoc links when it documents the name; the
    literal-block marker ``::`` goes (a line of its own) or becomes ``:`` (``Example::``), the
    indented block after it being a code block in Markdown too.
    """

    def code_span(match: re.Match[str]) -> str:
        target = match.group(1).strip()
        if target.startswith("~"):
            target = target.lstrip("~.").rsplit(".", 1)[-1]
        return f"`{target.lstrip('.')}`"

    docstring = _ROLE.sub(code_span, docstring)
    docstring = _LONE_LITERAL_MARK.sub("", docstring)
    return _TRAILING_LITERAL_MARK.sub(r"\1:", docstring)


def import_type_checking_names(module: ModuleType) -> None:
    """Run the module's top-level ``if TYPE_CHECKING:`` blocks in its namespace."""
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
                "TYPE_CHECKING", "typing.TYPE_CHECKING"):
            block = ast.Module(body=node.body, type_ignores=[])
            exec(compile(block, path, "exec"), module.__dict__)  # the block's own imports


@contextmanager
def _patched_convert(transform: Callable[[str], str]) -> Iterator[None]:
    import pdoc.docstrings

    original = pdoc.docstrings.convert

    def convert(docstring: str, docformat: str, source_file: Path | None) -> str:
        return original(transform(docstring), docformat, source_file)

    pdoc.docstrings.convert = convert  # type: ignore[assignment]
    try:
        yield
    finally:
        pdoc.docstrings.convert = original  # type: ignore[assignment]


def _is_private_part(modulename: str, qualname: str) -> bool:
    """Whether members taken from ``modulename.qualname`` come from one of realtime_nb's private
    parts (a module or class whose name starts with ``_``)."""
    if not (modulename == "realtime_nb" or modulename.startswith("realtime_nb.")):
        return False
    names = [*modulename.split("."), *qualname.split(".")]
    return any(n.startswith("_") and not n.startswith("__") for n in names)


@contextmanager
def _private_parts_are_own() -> Iterator[None]:
    """Make pdoc document members of private base classes as the subclass's own members."""
    import inspect
    from functools import cached_property

    from pdoc.doc import Class

    names = ("own_members", "inherited_members")
    defined = {name: Class.__dict__.get(name) for name in names}  # None: defined on a base
    own, inherited = (inspect.getattr_static(Class, name) for name in names)

    def own_members(self: Class) -> list[Any]:
        members = list(own.func(self))
        seen = {m.name for m in members}
        for (mod, qual), docs in self._members_by_origin.items():
            if _is_private_part(mod, qual):
                for doc in docs:
                    if doc.name not in seen:
                        seen.add(doc.name)
                        members.append(doc)
        return members

    def inherited_members(self: Class) -> dict[tuple[str, str], list[Any]]:
        return {k: v for k, v in inherited.func(self).items() if not _is_private_part(*k)}

    for name, fn in zip(names, (own_members, inherited_members), strict=True):
        prop = cached_property(fn)
        prop.__set_name__(Class, name)
        setattr(Class, name, prop)
    try:
        yield
    finally:
        for name, original in defined.items():
            if original is None:
                delattr(Class, name)
            else:
                setattr(Class, name, original)


def build(out: Path) -> tuple[list[Path], list[str], list[str]]:
    """Render the reference into ``out``; returns (pages, unexpected warnings, known ones)."""
    import pdoc
    import pdoc.render

    # Objects left unclosed by whatever ran before (a test's event loop, say) would warn when
    # collected mid-build: collect them first, and keep the build's own warnings only.
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)
        for name in MODULES:
            importlib.import_module(name)
        for name, module in sorted(sys.modules.items()):
            if name == "realtime_nb" or name.startswith("realtime_nb."):
                import_type_checking_names(module)
        pdoc.render.configure(docformat="google", show_source=True, search=True,
                              footer_text="realtime_nb API reference")
        out.mkdir(parents=True, exist_ok=True)
        for old in [*out.rglob("*.html"), out / "search.js"]:  # pages of a previous build
            old.unlink(missing_ok=True)
        with _patched_convert(sphinx_to_markdown), _private_parts_are_own():
            pdoc.pdoc(*MODULES, output_directory=out)
    unexpected: list[str] = []
    known: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if any(re.search(p, str(w.message)) for p in KNOWN_WARNINGS):
            known.append(text)
        else:
            unexpected.append(f"{text} ({w.filename}:{w.lineno})")
    pages = sorted(out.rglob("*.html"))
    return pages, unexpected, known


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    pages, unexpected, known = build(args.out)
    for text in known:
        print(f"known warning (tolerated, see KNOWN_WARNINGS): {text}")
    for pattern, reason in KNOWN_WARNINGS.items():
        if not any(re.search(pattern, k.split(": ", 1)[1]) for k in known):
            print(f"note: the known warning {pattern!r} did not occur; remove it ({reason})")
    for text in unexpected:
        print(f"WARNING: {text}", file=sys.stderr)
    print(f"{len(pages)} pages in {args.out} ({time.perf_counter() - t0:.1f} s)")
    if unexpected:
        print(f"docs build failed: {len(unexpected)} warning(s) (warnings are errors)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
