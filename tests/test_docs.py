"""The API reference: scripts/build_docs.py builds it offline with pdoc, and warnings are errors.

The full build runs once, in a subprocess (as ``./dev docs`` does), into a temporary folder.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build_docs.py"
sys.path.insert(0, str(SCRIPT.parent))
import build_docs  # noqa: E402  (a script, not a package)


class _Docstrings(HTMLParser):
    """Collects the text of pdoc's rendered docstrings (``<div class="docstring">``), which
    leaves out the "View Source" listings."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "div":
            return
        if self.depth:
            self.depth += 1
        elif "docstring" in (dict(attrs).get("class") or "").split():
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def docstring_text(page: Path) -> str:
    parser = _Docstrings()
    parser.feed(page.read_text(encoding="utf-8"))
    return "".join(parser.parts)


Built = tuple[Path, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    out = tmp_path_factory.mktemp("api")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    yield out, proc


def test_build_succeeds_without_warnings(built: Built) -> None:
    _out, proc = built
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    assert "pages in" in proc.stdout


def test_every_public_module_has_a_page(built: Built) -> None:
    out, _proc = built
    for module in build_docs.MODULES:
        page = out / (module.replace(".", "/") + ".html")
        assert page.is_file(), f"no page for {module}"
    assert (out / "index.html").is_file()
    assert (out / "search.js").is_file()


def test_key_pages_document_the_api(built: Built) -> None:
    out, _proc = built
    client = docstring_text(out / "realtime_nb" / "client.html")
    assert "A Realtime session from the kernel" in client          # Session
    assert "Send any audio: converted to the session's input format" in client  # send_audio
    assert "input_audio_buffer_commit_empty" in client               # commit()
    audio = docstring_text(out / "realtime_nb" / "audio.html")
    assert "Mono PCM16 samples that always carry their sample rate" in audio
    lab = (out / "realtime_nb" / "lab.html").read_text(encoding="utf-8")
    assert 'id="sweep"' in lab and 'id="explain"' in lab


def test_sphinx_roles_are_rendered_as_linked_code(built: Built) -> None:
    out, _proc = built
    pages = sorted(out.rglob("*.html"))
    leftovers = [p.name for p in pages
                 if ":meth:`" in docstring_text(p) or ":class:`" in docstring_text(p)]
    assert leftovers == []
    client = (out / "realtime_nb" / "client.html").read_text(encoding="utf-8")
    assert 'href="#ReconnectPolicy"' in client  # :class:`ReconnectPolicy` became a link


def test_pages_load_nothing_from_the_network(built: Built) -> None:
    """Offline: no script, stylesheet or image is fetched from elsewhere."""
    out, _proc = built
    for page in out.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for attr in ('src="http', "src='http", 'rel="stylesheet" href="http'):
            assert attr not in html, f"{page.name} loads {attr}…"


def test_sphinx_to_markdown_converts_roles_and_literal_markers() -> None:
    text = ("Use :meth:`~.mirror.Items.list` or :class:`Session` (:func:`realtime_nb.lab.sweep`)"
            ".\n\nExample::\n\n    s = Session()\n\nOr:\n\n::\n\n    x[::2]\n")
    assert build_docs.sphinx_to_markdown(text) == (
        "Use `list` or `Session` (`realtime_nb.lab.sweep`).\n\nExample:\n\n    s = Session()\n"
        "\nOr:\n\n\n    x[::2]\n")


def test_an_unresolvable_annotation_fails_the_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Warnings are errors: a module whose annotation pdoc cannot resolve is reported."""
    pkg = tmp_path / "rtnb_docs_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        '"""Probe."""\n\n\ndef f(x: "NoSuchType") -> int:\n    """Doc."""\n    return 1\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(build_docs, "MODULES", ("rtnb_docs_probe",))
    with warnings.catch_warnings():
        pages, unexpected, known = build_docs.build(tmp_path / "out")
    assert [p.name for p in pages if p.name != "index.html"] == ["rtnb_docs_probe.html"]
    assert len(unexpected) == 1 and "NoSuchType" in unexpected[0]
    assert known == []
    monkeypatch.setattr(build_docs, "build", lambda out: (pages, unexpected, known))
    assert build_docs.main(["--out", str(tmp_path / "out")]) == 1
