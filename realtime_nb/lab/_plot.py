"""Figures for sweeps: each setting's turns over the waveform, and two-parameter heatmaps.

Both return a :class:`matplotlib.figure.Figure` built without pyplot (no global state, nothing
shown twice); Jupyter displays it, ``fig.savefig(path)`` writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from realtime_nb.audio import Audio

from ._records import METRICS, SettingResult, Turn

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._records import SweepResult

__all__ = ["heatmap", "plot_sweep"]

_SPEECH = "#1565c0"
_PAD = "#90caf9"
_OPEN = "#b0bec5"
_BAD = "#d32f2f"
_REF = "#616161"
_PROB = "#ef6c00"


def _envelope(audio: Audio, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = audio.samples.astype(np.float32) / 32768.0
    n = len(x)
    bins = max(1, min(bins, n))
    edges = np.linspace(0, n, bins + 1).astype(int)
    lo = np.minimum.reduceat(x, edges[:-1]) if n else np.zeros(1)
    hi = np.maximum.reduceat(x, edges[:-1]) if n else np.zeros(1)
    t = edges[:-1] / audio.sample_rate
    return t, lo, hi


def _draw_turn(ax: Axes, row: float, turn: Turn, height: float) -> None:
    y = row - height / 2
    s, e = turn.start_ms / 1000, turn.end_ms / 1000
    if not turn.closed:
        ax.broken_barh([(s, e - s)], (y, height), facecolors=_OPEN, hatch="//",
                       edgecolor="white", linewidth=0)
    elif turn.onset_ms is not None and turn.offset_ms is not None:
        on, off = turn.onset_ms / 1000, turn.offset_ms / 1000
        ax.broken_barh([(s, on - s), (off, e - off)], (y, height), facecolors=_PAD)
        ax.broken_barh([(on, off - on)], (y, height), facecolors=_SPEECH)
    else:
        ax.broken_barh([(s, e - s)], (y, height), facecolors=_SPEECH)
    if turn.cut_off:
        ax.plot([e, e], [y - 0.08, y + height + 0.08], color=_BAD, linewidth=2.2,
                solid_capstyle="butt")
    if turn.clipped_ms > 0 and turn.clipped_ms >= 1:
        ax.plot([s - turn.clipped_ms / 1000, s], [row, row], color=_BAD, linewidth=2.2)
    if turn.committed_at_ms is not None and turn.closed:
        c = turn.committed_at_ms / 1000
        ax.plot([c], [y + height], marker="v", markersize=4, color="black", linestyle="none")


def _select(result: SweepResult, settings: Any, max_rows: int) -> list[SettingResult]:
    if settings is None:
        return list(result)[:max_rows]
    if callable(settings):
        chooser: Callable[[SettingResult], bool] = settings
        return [r for r in result if chooser(r)][:max_rows]
    if isinstance(settings, Sequence):
        wanted = [getattr(s, "settings", s) for s in settings]
        return [r for r in result if r.settings in wanted][:max_rows]
    raise TypeError("settings= takes a list of settings/records or a predicate on records")


def plot_sweep(
    result: SweepResult,
    audio: Audio | None = None,
    *,
    settings: Any = None,
    max_rows: int = 30,
    width: float = 12.0,
    show_probabilities: bool = True,
    title: str | None = None,
) -> Figure:
    """The waveform on top, then one row per setting with its turns.

    Row bars: dark = the speech the VAD heard (onset to offset), light = prefix padding and the
    trailing silence window (both committed), hatched grey = a turn still open when the audio
    ended. Red marks: a bar end = premature cut-off (the speaker was mid-utterance); a line
    before a bar = clipped onset (speech not committed). ``▾`` = when the commit happened. The
    top row is the yardstick's utterances (grey) and regions. ``audio`` defaults to the replayed
    audio; ``settings`` picks rows (records, settings, or a predicate); at most ``max_rows``.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    audio = result.audio if audio is None else audio.resample(result.audio.sample_rate)
    rows = _select(result, settings, max_rows)
    n = len(rows)
    fig = Figure(figsize=(width, 1.9 + 0.3 * (n + 1)), layout="constrained")
    wave_ax, seg_ax = fig.subplots(2, 1, sharex=True,
                                   gridspec_kw={"height_ratios": [1.9, 0.3 * (n + 1) + 0.2]})
    t, lo, hi = _envelope(audio, 2400)
    wave_ax.fill_between(t, lo, hi, color="#455a64", linewidth=0)
    wave_ax.set_ylim(-1.05, 1.05)
    wave_ax.set_yticks([])
    wave_ax.set_ylabel("audio")
    for s, e in result.reference.utterances:
        wave_ax.axvspan(s / 1000, e / 1000, color="#c8e6c9", alpha=0.5, linewidth=0, zorder=0)
    if show_probabilities and result.probabilities is not None and len(result.probabilities):
        prob_ax = wave_ax.twinx()
        p = result.probabilities
        tp = (np.arange(len(p)) + 0.5) * result.frame_ms / 1000
        prob_ax.plot(tp, p, color=_PROB, linewidth=0.9)
        prob_ax.set_ylim(-0.02, 1.02)
        prob_ax.set_ylabel("speech prob.", color=_PROB)
        prob_ax.tick_params(axis="y", colors=_PROB, labelsize=8)
    heading = title or (f"{n} of {len(result)} settings · backend {result.backend} · "
                        f"yardstick {result.reference.source} "
                        f"({len(result.reference.utterances)} utterances, green)")
    wave_ax.set_title(heading, fontsize=10, loc="left")

    ref_row = n
    for s, e in result.reference.utterances:
        seg_ax.broken_barh([(s / 1000, (e - s) / 1000)], (ref_row - 0.3, 0.6), facecolors="#e0e0e0")
    for s, e in result.reference.regions:
        seg_ax.broken_barh([(s / 1000, (e - s) / 1000)], (ref_row - 0.18, 0.36),
                           facecolors=_REF)
    labels = {ref_row: f"yardstick ({result.reference.source})"}
    for i, rec in enumerate(rows):
        row = n - 1 - i
        for turn in rec.segments:
            _draw_turn(seg_ax, row, turn, 0.56)
        lat = "" if rec.latency_ms is None else f" · {rec.latency_ms / 1000:.2f}s"
        labels[row] = f"{rec.label} · {rec.n_turns}t · {rec.errors} err{lat}"
    seg_ax.set_yticks(list(labels), [labels[k] for k in labels], fontsize=8)
    seg_ax.set_ylim(-0.7, n + 0.7)
    seg_ax.set_xlim(0, audio.duration_ms / 1000)
    seg_ax.set_xlabel("time (s)")
    seg_ax.grid(axis="x", color="#eeeeee", linewidth=0.6)
    seg_ax.legend(
        handles=[Patch(color=_SPEECH, label="speech (VAD)"),
                 Patch(color=_PAD, label="padding / silence window"),
                 Patch(facecolor=_OPEN, hatch="//", label="open at end"),
                 Patch(color=_BAD, label="cut off / clipped")],
        loc="upper center", bbox_to_anchor=(0.5, -0.1 if n > 6 else -0.25), ncols=4,
        fontsize=8, frameon=False)
    return fig


def _axis_values(records: Sequence[SettingResult], name: str) -> list[Any]:
    values = {r.params.get(name) for r in records} - {None}
    if not values:
        raise KeyError(f"No setting has the parameter {name!r}")
    return sorted(values)


def heatmap(
    result: SweepResult,
    x: str,
    y: str,
    metric: str = "errors",
    *,
    agg: str = "mean",
    cmap: str | None = None,
    annotate: bool = True,
) -> Figure:
    """``metric`` for each pair of values of parameters ``x`` and ``y`` (wire names).

    When other parameters vary too, cells aggregate over them with ``agg`` (``"mean"``,
    ``"min"``, ``"max"``). Empty cells and unmeasurable values (e.g. no latency) are blank.
    Lower is better for every built-in metric except ``n_turns``; the colour map follows that.
    """
    from matplotlib.figure import Figure

    if metric not in METRICS:
        raise KeyError(f"metric must be one of {METRICS}, got {metric!r}")
    reducer = {"mean": np.nanmean, "min": np.nanmin, "max": np.nanmax}.get(agg)
    if reducer is None:
        raise ValueError("agg must be 'mean', 'min' or 'max'")
    records = [r for r in result if x in r.params and y in r.params]
    xs, ys = _axis_values(records, x), _axis_values(records, y)
    cells: dict[tuple[int, int], list[float]] = {}
    for r in records:
        v = getattr(r, metric)
        key = (ys.index(r.params[y]), xs.index(r.params[x]))
        cells.setdefault(key, []).append(np.nan if v is None else float(v))
    grid = np.full((len(ys), len(xs)), np.nan)
    aggregated = False
    for (i, j), vals in cells.items():
        aggregated |= len(vals) > 1
        arr = np.asarray(vals)
        if np.isfinite(arr).any():
            # numpy's nan-reducers are overloaded: mypy joins the dict's values to "function"
            grid[i, j] = float(reducer(arr))  # type: ignore[operator]
    fig = Figure(figsize=(max(4.8, 1.6 + 0.9 * len(xs)), 1.6 + 0.55 * len(ys)),
                 layout="constrained")
    ax = fig.subplots()
    cmap = cmap or ("viridis" if metric == "n_turns" else "magma_r")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, float) else str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" if isinstance(v, float) else str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    finite = grid[np.isfinite(grid)]
    if annotate and finite.size:
        mid = (float(finite.min()) + float(finite.max())) / 2
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                dark = (v > mid) if cmap.endswith("_r") else (v < mid)
                ax.text(j, i, f"{v:.0f}" if abs(v) >= 10 else f"{v:.2g}", ha="center",
                        va="center", fontsize=8, color="white" if dark else "black")
    fig.colorbar(image, ax=ax, label=metric)
    note = f"\n({agg} over the other parameters)" if aggregated else ""
    ax.set_title(f"{metric} by {x} and {y}{note}", fontsize=9)
    return fig
