"""The matplotlib drawing behind :func:`realtime_nb.widgets.timeline_png` (lanes from _lanes)."""

from __future__ import annotations

import pathlib
import textwrap
from collections import defaultdict
from typing import Any

from realtime_nb.protocol import COMMIT_MIN_MS

from ._lanes import BIN_PX, CATEGORIES, LANE_ROWS, SEAM_COLOR, build_lanes

_ERR = CATEGORIES["error"]["color"]
_LANES = (("c", "client"), ("s", "server"))
_HEIGHTS = {"c": 0.75, "s": 1.3, "speech": 0.42, "buffer": 1.0, "resp": 0.62}


def draw_png(
    events: list[dict[str, Any]],
    path: pathlib.Path,
    *,
    width: float,
    height: float | None,
    dpi: int,
    t_range: tuple[float, float] | None,
    title: str | None,
    max_listed_errors: int,
) -> pathlib.Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if t_range is not None:
        t_lo, t_hi = t_range
    elif events:
        t_lo, t_hi = min(0.0, events[0]["t"]), events[-1]["t"]
    else:
        t_lo, t_hi = 0.0, 1.0
    span = max(t_hi - t_lo, 1e-3)
    t_hi = t_lo + span * 1.02
    plot_px = width * dpi * 0.86
    bin_s = span / plot_px * BIN_PX
    lanes = build_lanes(events, bin_s)
    px_s = plot_px / (t_hi - t_lo)  # pixels per second, for label fitting

    errors = [e for e in lanes.errors if t_lo <= e.t <= t_hi]
    listed = errors[:max_listed_errors]
    wrap = max(40, int(width * dpi / 7.2))
    err_lines: list[str] = []
    for n, e in enumerate(listed, 1):
        what = "refused before sending" if e.refused else ("error" if e.type == "error"
                                                           else e.type)
        first = f"E{n}  {e.t:.3f} s  {what}: [{e.code}] {e.message}"
        err_lines += textwrap.wrap(first, wrap, subsequent_indent="      ")
        if e.hint:
            err_lines += textwrap.wrap(f"Hint: {e.hint}", wrap, initial_indent="      ",
                                       subsequent_indent="      ")
    if len(errors) > len(listed):
        err_lines.append(f"… and {len(errors) - len(listed)} more errors")
    lanes_h = sum(_HEIGHTS.values())
    text_h = 0.17 * len(err_lines) + (0.25 if err_lines else 0.0)
    if height is None:
        height = 0.75 + lanes_h + 0.45 + text_h
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    top = 1 - 0.62 / height
    bottom = (text_h + 0.4) / height
    gs = fig.add_gridspec(5, 1, height_ratios=list(_HEIGHTS.values()), hspace=0.12,
                          left=0.1, right=0.98, top=top, bottom=bottom)
    axes = [fig.add_subplot(gs[i]) for i in range(5)]
    for ax in axes[1:]:
        ax.sharex(axes[0])
    ax_c, ax_s, ax_sp, ax_b, ax_r = axes
    for ax in axes:
        ax.set_xlim(t_lo, t_hi)
        ax.tick_params(labelsize=7, length=2)
        ax.grid(axis="x", color="#e0e0e0", lw=0.5)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    ax_r.set_xlabel("seconds since the log started", fontsize=8)

    # -- event lanes
    used: set[str] = set()
    for (d, name), ax in zip(_LANES, (ax_c, ax_s), strict=True):
        rows = LANE_ROWS[d]
        ax.set_ylim(rows, 0)
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        # adjacent marks of one type (a flood over several bins) are drawn as one bar,
        # labelled with its total count when it fits
        bars: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
        runs: dict[str, list[Any]] = {}
        done: list[list[Any]] = []
        for m in lanes.marks[d]:
            if not t_lo <= m.t0 <= t_hi:
                continue
            w = max(m.t1 - m.t0, 2.5 / px_s)
            if m.error:
                bars[("error", m.row)].append((m.t0, w))
                used.add("error")
                continue
            used.add(m.k)
            run = runs.get(m.type)
            if run is not None and (m.t0 - run[1]) * px_s <= BIN_PX:
                run[1] = max(run[1], m.t0 + w)
                run[2] += m.count
            else:
                if run is not None:
                    done.append(run)
                runs[m.type] = [m.t0, m.t0 + w, m.count, m.row, m.k]
        for a, b, count, row, k in done + list(runs.values()):
            bars[(k, row)].append((a, b - a))
            if count > 1 and (b - a) * px_s >= 6 * len(f"×{count}") + 4:
                ax.text((a + b) / 2, row + 0.5, f"×{count}", ha="center", va="center",
                        fontsize=6, color="white", clip_on=True, zorder=3)
        for (cat, row), xs in bars.items():
            ax.broken_barh(xs, (row + 0.15, 0.7), facecolors=CATEGORIES[cat]["color"],
                           edgecolor="none", zorder=2)
    # -- local markers (connect, disconnect, close)
    seams = {s.seq: s for s in lanes.seams}
    for m in lanes.marks["l"]:
        if t_lo <= m.t0 <= t_hi:
            seam = seams.get(m.seq0)
            color = SEAM_COLOR if seam else CATEGORIES["local"]["color"]
            for ax in axes:
                ax.axvline(m.t0, color=color, lw=1.6 if seam else 0.7, ls="-" if seam else ":")
            ax_c.text(m.t0, -0.05, events[m.index]["lb"],  # _lanes.marker_label
                      fontsize=6, color=color, ha="left", va="bottom", rotation=0,
                      clip_on=False)

    # -- VAD speech
    ax_sp.set_ylim(0, 1)
    ax_sp.set_yticks([])
    ax_sp.set_ylabel("speech\n(VAD)", rotation=0, ha="right", va="center", fontsize=8)
    vad_color = CATEGORIES["vad"]["color"]
    for s in lanes.speech:
        t1 = s.t1 if s.t1 is not None else lanes.t_last
        w = max(t1 - s.t0, 2.5 / px_s)
        ax_sp.broken_barh([(s.t0, w)], (0.15, 0.7), facecolors=vad_color, alpha=0.85,
                          hatch=None if s.t1 is not None else "//")
        if w * px_s > 90 and s.audio_start_ms is not None:
            end_text = "…" if s.audio_end_ms is None else f"{s.audio_end_ms:g}"
            ax_sp.text(s.t0 + w / 2, 0.5, f"audio {s.audio_start_ms:g}–{end_text} ms", fontsize=6,
                       ha="center", va="center", color="white", clip_on=True)

    # -- input buffer
    ax_b.set_ylabel("input\nbuffer (ms)", rotation=0, ha="right", va="center", fontsize=8)
    if lanes.buffer:
        ts = [lanes.t_first] + [b[0] for b in lanes.buffer] + [lanes.t_last]
        buffered = [0.0] + [b[1] for b in lanes.buffer] + [lanes.buffer[-1][1]]
        appended = [0.0] + [b[2] for b in lanes.buffer] + [lanes.buffer[-1][2]]
        color = CATEGORIES["buffer"]["color"]
        ax_b.fill_between(ts, buffered, step="post", color=color, alpha=0.35, lw=0)
        ax_b.step(ts, buffered, where="post", color=color, lw=1.0, label="buffered")
        ax_b.step(ts, appended, where="post", color="#616161", lw=0.8, ls="--",
                  label="appended since commit/clear")
        top_ms = max(max(appended), max(buffered), 150.0)
        ax_b.set_ylim(0, top_ms * 1.1)
        ax_b.legend(fontsize=6, loc="upper left", frameon=False, ncols=2)
    else:
        ax_b.set_ylim(0, 150)
    ax_b.axhline(COMMIT_MIN_MS, color=_ERR, lw=0.6, ls=":", alpha=0.7)
    ax_b.text(t_hi, COMMIT_MIN_MS, f"{COMMIT_MIN_MS:g} ms (commit minimum) ", fontsize=6,
              color=_ERR, ha="right", va="bottom", alpha=0.8)

    # -- responses
    ax_r.set_ylim(0, 1)
    ax_r.set_yticks([])
    ax_r.set_ylabel("response\naudio", rotation=0, ha="right", va="center", fontsize=8)
    rc = CATEGORIES["audio_out"]["color"]
    labels: list[tuple[float, float, str]] = []
    for r in lanes.responses:
        end = r.t_done if r.t_done is not None else lanes.t_last
        if r.t_created is not None:
            lead_end = r.t_audio if r.t_audio is not None else end
            ax_r.broken_barh([(r.t_created, max(lead_end - r.t_created, 1.5 / px_s))],
                             (0.3, 0.4), facecolors=rc, alpha=0.22)
        if r.t_audio is not None:
            w = max(end - r.t_audio, 2.5 / px_s)
            color = _ERR if r.status == "failed" else rc
            ax_r.broken_barh([(r.t_audio, w)], (0.15, 0.7), facecolors=color,
                             alpha=0.9 if r.t_done is not None else 0.5)
            label = f"×{r.deltas} Δ · {r.audio_ms / 1000:.1f} s"
            if r.status and r.status != "completed":
                label += f" · {r.status}"
            labels.append((r.t_audio, r.t_audio + w, label))
    # labels inside their bar when they fit, else to its right up to the next response
    starts = sorted(r.t_created if r.t_created is not None else (r.t_audio or 0.0)
                    for r in lanes.responses)
    label_end = float("-inf")
    for a, b, label in labels:
        w_s = 5.2 * len(label) / px_s
        if b - a > w_s + 6 / px_s:
            ax_r.text((a + b) / 2, 0.5, label, fontsize=6, ha="center", va="center",
                      color="white", clip_on=True)
            continue
        nxt = next((x for x in starts if x > b), float("inf"))
        if b >= label_end and b + w_s < min(nxt, t_hi):
            ax_r.text(b, 0.5, " " + label, fontsize=6, ha="left", va="center",
                      color="#37474f", clip_on=True)
            label_end = b + w_s + 4 / px_s

    # -- errors on top of everything; labels of errors closer than ~30 px share one label
    groups: dict[str, list[list[Any]]] = {"c": [], "s": [], "l": []}
    for n, e in enumerate(errors, 1):
        for ax in axes:
            ax.axvline(e.t, color=_ERR, lw=0.8, alpha=0.55)
        ax = ax_c if e.d == "c" else ax_s
        ax.plot([e.t], [0.12], marker="v", color=_ERR, ms=5, clip_on=False)
        if n > max_listed_errors:
            continue
        lane = groups["c" if e.d == "c" else "s"]
        if lane and (e.t - lane[-1][2]) * px_s < 30:
            lane[-1][1], lane[-1][2] = n, e.t
        else:
            lane.append([n, n, e.t, e.t])
    for d, ax in (("c", ax_c), ("s", ax_s)):
        for first, last, _t_last, t_first in groups[d]:
            text = f" E{first}" if first == last else f" E{first}–E{last}"
            ax.text(t_first, 0.0, text, color=_ERR, fontsize=7, fontweight="bold",
                    ha="left", va="bottom", clip_on=False)

    # -- title, legend, error list
    n_err = len(lanes.errors)
    head = title or "realtime_nb event timeline"
    fig.text(0.1, 1 - 0.14 / height, head, fontsize=10, fontweight="bold", va="top")
    fig.text(0.98, 1 - 0.14 / height,
             f"{lanes.count} events · {len(lanes.speech)} speech turns · "
             f"{len(lanes.responses)} responses · {n_err} errors", fontsize=8, va="top",
             ha="right", color="#555")
    handles = [Patch(color=CATEGORIES[k]["color"], label=CATEGORIES[k]["label"])
               for k in CATEGORIES if k in used and k != "local"]
    if handles:
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.1, 1 - 0.34 / height),
                   ncols=len(handles), fontsize=6.5, frameon=False, handlelength=1.2,
                   columnspacing=1.2)
    y = (text_h + 0.05) / height
    for line in err_lines:
        fig.text(0.02, y, line, fontsize=7, family="monospace", va="top",
                 color=_ERR if line.startswith("E") else "#333")
        y -= 0.17 / height
    fig.savefig(path, dpi=dpi, format="png")
    return path

