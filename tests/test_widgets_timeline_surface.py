"""The timeline's public surface: what callers import from ``realtime_nb.widgets.timeline`` and
``realtime_nb.widgets``, how they call it, what the widget syncs, and the browser module's
contract with anywidget and with the offline HTML page.

Pinned so that moving code between the timeline's files (the HTML export and the event
compaction each in a module of their own, timeline.js's rooms rearranged) cannot change what a
caller imports or how it calls it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import realtime_nb.widgets as widgets
import realtime_nb.widgets.timeline as timeline

TIMELINE_JS = Path(timeline.__file__).with_name("timeline.js")

PUBLIC_NAMES = ["StatsFuture", "Timeline", "timeline_html", "timeline_png"]

SIGNATURES = {
    "timeline_html": "(log: 'LogLike', path: 'str | pathlib.Path', *, title: 'str | None' = None, "
                     "window_s: 'float' = 0.0) -> 'pathlib.Path'",
    "timeline_png": "(log: 'LogLike', path: 'str | pathlib.Path', width: 'float' = 12.0, *, "
                    "height: 'float | None' = None, dpi: 'int' = 100, "
                    "t_range: 'tuple[float, float] | None' = None, title: 'str | None' = None, "
                    "max_listed_errors: 'int' = 6) -> 'pathlib.Path'",
}

METHODS = {
    "__init__": "(self, log: 'LogLike' = None, *, window_s: 'float' = 60.0, follow: 'bool' = True, "
                "title: 'str' = '', **kwargs: 'Any') -> 'None'",
    "from_jsonl": "(path: 'str | pathlib.Path', **kwargs: 'Any') -> 'Timeline'",
    "attach": "(self, log: 'LogLike') -> 'None'",
    "detach": "(self) -> 'None'",
    "close": "(self) -> 'None'",
    "lanes": "(self, bin_s: 'float | None' = None) -> 'Lanes'",
    "flush": "(self) -> 'int'",
    "request_stats": "(self, callback: 'Callable[[dict[str, Any]], Any] | None' = None) "
                     "-> 'StatsFuture'",
    "to_png": "(self, path: 'str | pathlib.Path', **kwargs: 'Any') -> 'pathlib.Path'",
    "to_html": "(self, path: 'str | pathlib.Path', **kwargs: 'Any') -> 'pathlib.Path'",
}

#: The private modules' names the tests, the coverage table and the PNG drawing import.
LANES_NAMES = ["CATEGORIES", "ErrorMark", "Lanes", "Mark", "ResponseSpan", "SpeechSegment",
               "build_lanes", "category_of", "drawing_rules", "marker_label", "row_of"]
COMPACT_NAMES = ["Compactor", "compact_log"]


def test_the_module_exports_exactly_its_documented_names() -> None:
    assert sorted(timeline.__all__) == sorted(PUBLIC_NAMES)


def test_the_widgets_package_re_exports_the_same_objects() -> None:
    for name in PUBLIC_NAMES:
        assert getattr(widgets, name) is getattr(timeline, name), name


def test_the_exports_keep_their_call_signatures() -> None:
    for name, signature in SIGNATURES.items():
        assert str(inspect.signature(getattr(timeline, name))) == signature, name


def test_the_widget_keeps_its_methods_and_their_signatures() -> None:
    for name, signature in METHODS.items():
        assert str(inspect.signature(getattr(timeline.Timeline, name))) == signature, name


def test_the_widget_syncs_its_settings_and_the_lane_facts_never_the_log() -> None:
    synced = sorted(timeline.Timeline.class_own_traits(sync=True))
    assert synced == ["_categories", "_lane_rules", "_uid", "follow", "live", "title", "window_s"]


def test_the_lane_modules_keep_the_names_their_users_import() -> None:
    from realtime_nb.widgets import _compact, _lanes

    assert set(LANES_NAMES) <= set(_lanes.__all__)
    assert all(hasattr(_lanes, name) for name in LANES_NAMES)
    assert set(COMPACT_NAMES) <= set(_compact.__all__)
    assert all(hasattr(_compact, name) for name in COMPACT_NAMES)


def test_the_browser_module_keeps_its_contract() -> None:
    """anywidget calls the default export's ``initialize`` and ``render``; the offline page
    calls ``lanesSummary`` (``window.rtnbTimeline.lanes``), which the agreement tests use."""
    code = TIMELINE_JS.read_text(encoding="utf-8")
    assert re.search(r"^export default \{ initialize, render \};\s*\Z", code, re.M)
    assert re.search(r"^export function lanesSummary\(uid, binS = null\) \{", code, re.M)
    assert str(timeline.Timeline._esm) == code
