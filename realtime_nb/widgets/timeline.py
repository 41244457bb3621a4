"""``Timeline``: the live event timeline of a Realtime session, and its static exports.

::

    from realtime_nb.widgets import Timeline, timeline_png, timeline_html

    tl = Timeline(session)          # or Timeline(session.events), or Timeline.from_jsonl(path)
    tl                               # shows it; it follows the session live

    timeline_png(session.events, "trace.png")     # matplotlib, no browser needed
    timeline_html(session.events, "trace.html")   # one offline file, same drawing as the widget

Lanes, top to bottom: client events, server events, VAD speech (``speech_started`` →
``speech_stopped``, placed by receive time; the tooltip has ``audio_start_ms``/``audio_end_ms``),
the input buffer (what a commit sent now would find — the Session mirror's rule — and, dashed,
the audio appended since the last commit or clear), and response audio (first output audio delta
→ ``response.done``, with the delta count; a pale lead-in shows the wait from
``response.created``). Floods collapse into one mark with a count (``×37``). Errors, refused
client events, failed transcriptions and failed responses are red, with their message and hint.
Hover shows an event's payload (audio elided to its size), click pins it.

Transport (what the caller must know): the kernel never holds the log in a trait. New log entries
are compacted (:mod:`realtime_nb.widgets._compact`) and sent in batches as custom messages, at most
:attr:`Timeline.max_rate_hz` times a second, by a timer on the running asyncio loop (the kernel's,
or your ``asyncio.run``). Without a running loop nothing is scheduled: batches go out when the
throttle interval has passed at the next event, and :meth:`Timeline.flush` sends the rest.
Inside a :class:`~realtime_nb.widgets.SessionPanel` the panel sends the batches with its own
redraws instead (one wake-up of the kernel for both, at the panel's ``refresh_s``). A view
that renders late (or after a page reload) asks for the history with a ``sync`` message and gets it
in chunks — answered only while the kernel is idle, like every message from the browser; live
batches reach it meanwhile.

Where the timeline's parts live: this module (the widget: batching, history sync, stats, and
the two export functions); :mod:`._compact` (logged events → compact events, in the kernel);
:mod:`._lanes` (the lane facts and the grouping into lanes, shared by the PNG and, as traits,
by the browser); ``timeline.js`` (the browser: store, kernel link, view, one painter per lane;
its top says why it is one file); :mod:`._timeline_png` and :mod:`._timeline_html` (the
exports' drawing and page).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import pathlib
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

import anywidget
import traitlets as t

from realtime_nb.client.eventlog import EventLog, LoggedEvent

from ._affinity import LoopAffinity
from ._compact import Compactor, compact_log
from ._lanes import CATEGORIES, Lanes, build_lanes, drawing_rules

__all__ = ["StatsFuture", "Timeline", "timeline_html", "timeline_png"]

_HERE = pathlib.Path(__file__).parent
_JS = _HERE / "timeline.js"
_CSS = _HERE / "timeline.css"

LogLike = EventLog | Iterable[LoggedEvent] | Any


def _as_log(log: LogLike) -> EventLog | None:
    """An EventLog from an EventLog, a Session (its ``.events``), a path to a JSONL trace or a
    flight recorder's session folder, or None."""
    if log is None or isinstance(log, EventLog):
        return log
    if isinstance(log, str | pathlib.Path):
        return EventLog.load(log)
    events = getattr(log, "events", None)
    if isinstance(events, EventLog):
        return events
    raise TypeError(f"Timeline needs an EventLog, a Session or a .jsonl path, not {type(log)}")


def _lane_facts() -> dict[str, Any]:
    """The traits that carry _lanes' facts to the browser (the widget's and the HTML page's)."""
    return {"_categories": CATEGORIES, "_lane_rules": drawing_rules()}


def _entries(log: LogLike) -> list[LoggedEvent]:
    got = _as_log(log) if not isinstance(log, list | tuple) else None
    return list(got) if got is not None else list(log)


class StatsFuture(concurrent.futures.Future):
    """The browser's answer to :meth:`Timeline.request_stats` (a ``concurrent.futures.Future``).

    Use ``add_done_callback``, or ``await`` it from a task on the kernel's loop (the answer
    arrives only while the kernel is idle: never block a cell on ``result()``).
    """

    def __await__(self) -> Generator[Any, None, dict[str, Any]]:
        return asyncio.wrap_future(self).__await__()


class Timeline(anywidget.AnyWidget):
    """The live event timeline of an :class:`~realtime_nb.client.eventlog.EventLog`.

    ``log``: an EventLog, a Session (its ``events``), a path to a ``.jsonl`` trace, or None (use
    :meth:`attach` later). The whole log so far is shown at once; entries logged later are
    streamed. Synced traits: ``window_s`` (seconds shown; 0 = everything), ``follow`` (keep the
    newest events in view), ``live`` (set by the kernel while the log grows: the time axis
    advances even between events; False after ``realtime_nb.closed``).
    """

    _esm = _JS
    _css = _CSS

    window_s = t.Float(60.0, min=0.0).tag(sync=True)
    follow = t.Bool(True).tag(sync=True)
    live = t.Bool(False).tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    _categories = t.Dict().tag(sync=True)
    _lane_rules = t.Dict().tag(sync=True)  # _lanes.drawing_rules(): what the JS does not restate
    _uid = t.Unicode().tag(sync=True)

    #: Most batches sent per second.
    max_rate_hz: float = 10.0
    #: Events per message when sending history.
    chunk_size: int = 2000
    #: Live events the kernel keeps for re-sending to a newly displayed view (a reloaded page):
    #: beyond it the oldest go (the view already drawn keeps them; the session's log and its
    #: recording keep everything), so an hour-long session's timeline stays small in the
    #: kernel. None: keep all.
    history_limit: int | None = 30_000

    def __init__(self, log: LogLike = None, *, window_s: float = 60.0, follow: bool = True,
                 title: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("_uid", uuid.uuid4().hex)
        super().__init__(window_s=window_s, follow=follow, title=title,
                         **_lane_facts(), **kwargs)
        self._log: EventLog | None = None
        self._compactor = Compactor()
        self._history: list[dict[str, Any]] = []
        self._pending: list[LoggedEvent] = []
        self._sent_upto = 0
        self._last_send = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stats_waiters: list[StatsFuture] = []
        self.stats: dict[str, Any] | None = None
        self.messages_sent = 0
        #: Set by an owner that flushes this timeline with its own redraws (the SessionPanel):
        #: called instead of arming the timer when an entry arrives; the owner calls flush().
        self._flush_soon: Callable[[], Any] | None = None
        # Browser messages may be delivered on a kernel subshell thread with its own loop:
        # handle them (and the user callbacks they trigger) on the loop that made the widget.
        self._affinity = LoopAffinity()
        self.on_msg(self._affinity.wrap(self._on_browser_msg))
        if log is not None:
            self.attach(log)

    @classmethod
    def from_jsonl(cls, path: str | pathlib.Path, **kwargs: Any) -> Timeline:
        """A timeline of a saved trace (:meth:`EventLog.to_jsonl`) or of a flight recorder's
        session folder, all of it in view."""
        kwargs.setdefault("window_s", 0.0)
        kwargs.setdefault("title", pathlib.Path(path).name)
        return cls(EventLog.load(path), **kwargs)

    # ------------------------------------------------------------------ the log
    @property
    def log(self) -> EventLog | None:
        return self._log

    @property
    def events(self) -> Sequence[dict[str, Any]]:
        """The compact events so far (what the browser draws), read-only."""
        self._compact_pending()
        return tuple(self._history)

    def attach(self, log: LogLike) -> None:
        """Show ``log`` (replacing any other): its entries so far at once, later ones live."""
        self.detach()
        new = _as_log(log)
        assert new is not None
        self._log = new
        self._compactor = Compactor()
        self._history = [self._compactor(e) for e in new]
        self._pending = []
        self._sent_upto = 0
        new.listeners.append(self._on_entry)
        self.live = False
        self._send_custom({"type": "reset"})
        self._send_history(0)

    def detach(self) -> None:
        """Stop following the log (the events shown so far stay)."""
        if self._log is not None:
            with contextlib.suppress(ValueError):
                self._log.listeners.remove(self._on_entry)
            self._compact_pending()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._log = None

    def close(self) -> None:
        """Detach from the log and close the widget."""
        self.detach()
        for fut in self._stats_waiters:
            fut.cancel()
        self._stats_waiters.clear()
        super().close()

    def lanes(self, bin_s: float | None = None) -> Lanes:
        """The lanes of the events so far (what is drawn), see :func:`._lanes.build_lanes`."""
        return build_lanes(self.events, bin_s)

    # ------------------------------------------------------------------ batching
    def _on_entry(self, entry: LoggedEvent) -> None:
        """Log listener: queue the entry, make sure a flush is scheduled. Cheap, never blocks."""
        self._pending.append(entry)
        if self._timer is not None:
            return
        if self._flush_soon is not None:
            self._flush_soon()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            if self._loop is not None and self._loop.is_running() and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._schedule_on_loop)
            elif time.monotonic() - self._last_send >= 1.0 / self.max_rate_hz:
                self.flush()
            return
        self._loop = loop
        self._schedule_on_loop()

    def _schedule_on_loop(self) -> None:
        if self._timer is not None or not self._pending:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_send + 1.0 / self.max_rate_hz - time.monotonic())
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def _compact_pending(self) -> list[dict[str, Any]]:
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        new = [self._compactor(e) for e in pending]
        self._history.extend(new)
        limit = self.history_limit
        if limit is not None and len(self._history) > limit:
            drop = len(self._history) - limit * 3 // 4
            del self._history[:drop]
            self._sent_upto = max(0, self._sent_upto - drop)
        return new

    def flush(self) -> int:
        """Send the queued entries now (one message); returns how many were sent.

        Not throttled: the timer calls it at most ``max_rate_hz`` times a second; call it
        yourself when no asyncio loop runs (e.g. after a synchronous replay).
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._compact_pending()
        new = self._history[self._sent_upto:]
        if not new:
            return 0
        self._sent_upto = len(self._history)
        closed = any(e["y"] == "realtime_nb.closed" for e in new)
        live = self._log is not None and not closed
        if live != self.live:
            self.live = live
        self._send_custom({"type": "events", "events": new, "now": self._now(), "live": live})
        self._last_send = time.monotonic()
        return len(new)

    def _now(self) -> float | None:
        """Seconds since the log started, on the log's clock (None without a log)."""
        return round(time.monotonic() - self._log.t0, 4) if self._log is not None else None

    def _send_custom(self, content: dict[str, Any]) -> None:
        if self.comm is None:
            return
        self.send(content)
        self.messages_sent += 1

    def _send_history(self, start: int, stop: int | None = None) -> None:
        """Send compact events ``[start, stop)`` (all flushed so far by default) in chunks."""
        self._compact_pending()
        self._sent_upto = len(self._history)
        stop = len(self._history) if stop is None else min(stop, len(self._history))
        start = max(0, start)
        if start >= stop:
            self._send_custom({"type": "events", "events": [], "sync": True, "final": True,
                        "now": self._now(), "live": self.live, "total": len(self._history)})
            return
        for i in range(start, stop, self.chunk_size):
            j = min(stop, i + self.chunk_size)
            self._send_custom({"type": "events", "events": self._history[i:j], "sync": True,
                        "final": j >= stop, "now": self._now(), "live": self.live,
                        "total": len(self._history)})

    # ------------------------------------------------------------------ browser messages
    def _on_browser_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "sync":
            start = content.get("from", 0)
            stop = content.get("to")
            self._send_history(int(start) if isinstance(start, int | float) else 0,
                               int(stop) if isinstance(stop, int | float) else None)
        elif kind == "stats":
            stats = {k: v for k, v in content.items() if k != "type"}
            self.stats = stats
            waiters, self._stats_waiters = self._stats_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(stats)

    def request_stats(self, callback: Callable[[dict[str, Any]], Any] | None = None
                      ) -> StatsFuture:
        """Ask the browser how fast it draws; the answer also lands in :attr:`stats`.

        The answer (from the first view to reply) has ``count`` (events held), ``updates``
        (batches ingested and drawn), ``last_ms``, ``median_ms``, ``max_ms`` (JS time per update:
        ingest + redraw), ``draws`` and ``draw_median_ms`` (redraws of any cause).
        """
        fut = StatsFuture()
        if callback is not None:
            fut.add_done_callback(lambda f: f.cancelled() or callback(f.result()))
        self._stats_waiters.append(fut)
        self._send_custom({"type": "stats"})
        return fut

    # ------------------------------------------------------------------ exports
    def to_png(self, path: str | pathlib.Path, **kwargs: Any) -> pathlib.Path:
        """:func:`timeline_png` of the events so far."""
        return timeline_png(self.events, path, **kwargs)

    def to_html(self, path: str | pathlib.Path, **kwargs: Any) -> pathlib.Path:
        """:func:`timeline_html` of the events so far."""
        return timeline_html(self.events, path, **kwargs)


# ---------------------------------------------------------------------- static exports
def _compact(log: LogLike) -> list[dict[str, Any]]:
    """Compact events from a log, a Session, a path, or already compact events."""
    if isinstance(log, list | tuple) and (not log or isinstance(log[0], dict)):
        return list(log)
    return compact_log(_entries(log))


def timeline_html(log: LogLike, path: str | pathlib.Path, *, title: str | None = None,
                  window_s: float = 0.0) -> pathlib.Path:
    """Write a standalone HTML page showing the timeline of ``log``; returns the path.

    The page embeds ``timeline.js`` (the widget's own drawing code), its CSS and the compact
    events as JSON; it needs no network and no kernel (open it from disk). ``log``: an EventLog,
    a Session, a ``.jsonl`` path, or compact events. ``window_s``: seconds in view (0 = all).
    For scripts and tests the page exposes ``window.rtnbTimeline`` with ``deliver(message)``
    (a kernel message: ``{"type": "events", "events": [...]}``), ``request(message)`` (returns
    the widget's reply, e.g. to ``{"type": "stats"}``) and ``lanes(binS)``.
    """
    from ._timeline_html import write_page

    path = pathlib.Path(path)
    if title is None:
        title = f"realtime_nb timeline — {path.stem}"
    state = {"window_s": window_s, "follow": window_s > 0, "live": False, "title": title,
             **_lane_facts(), "_uid": "static"}
    return write_page(_compact(log), path, title=title, state=state,
                      js=_JS.read_text(encoding="utf-8"), css=_CSS.read_text(encoding="utf-8"))


def timeline_png(
    log: LogLike,
    path: str | pathlib.Path,
    width: float = 12.0,
    *,
    height: float | None = None,
    dpi: int = 100,
    t_range: tuple[float, float] | None = None,
    title: str | None = None,
    max_listed_errors: int = 6,
) -> pathlib.Path:
    """Draw the timeline of ``log`` with matplotlib into a PNG file; returns the path.

    Same lanes as the widget. ``width``/``height`` in inches (the image is ``width * dpi``
    pixels wide; ``height`` defaults to fit the lanes and the error list), ``t_range`` limits
    the time axis (seconds since the log started). Errors are numbered on the plot and listed
    under it with their message and hint (the first ``max_listed_errors``).
    """
    from ._timeline_png import draw_png

    return draw_png(_compact(log), pathlib.Path(path), width=width, height=height, dpi=dpi,
                    t_range=t_range, title=title, max_listed_errors=max_listed_errors)
