"""karpathy's progress plot of a results.tsv: pure plot data, then a matplotlib (Agg) rendering.

As in his analysis notebook: discards are grey dots, keeps green dots labelled with their
description, the running best a green step line, the title "N Experiments, K Kept Improvements"
(N counts every row, K every keep, as his notebook does), and the y-range runs from just beyond the
best to just beyond the baseline. Discards beyond that range are not hidden: they are drawn as grey
triangles on the edge they went past, pointing off-scale. Crashes have no value: they are left out of
the y-range and drawn as red marks along the bottom edge.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from autoresearch.summary import Direction, better, kept

LABEL_CHARS = 45
KEEP_COLOR, BEST_COLOR, LABEL_COLOR, DISCARD_COLOR, CRASH_COLOR = "#2ecc71", "#27ae60", "#1a7a3a", "#cccccc", "#e74c3c"


class Point(BaseModel):
    number: int  # experiment number: the row's index in results.tsv
    value: float
    label: str = ""


class PlotData(BaseModel):
    title: str
    metric: str
    direction: Direction
    kept: list[Point]
    discarded: list[Point]  # only those inside the y-range
    off_scale: int  # discards outside the y-range (worse than the baseline)
    off_scale_points: list[Point] = []  # those discards, drawn as markers on the edge they went past
    crashed: list[int]  # experiment numbers
    best_line: list[Point]  # the running best as step points ("post"), ending at the last experiment
    ylim: tuple[float, float] | None  # None: nothing with a value yet


def label(description: str) -> str:
    text = description.strip()
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 3] + "..."


def plot_data(
    results: pd.DataFrame, metric: str = "val_bpb", direction: Direction = "minimize", tag: str | None = None
) -> PlotData:
    """The plot of a results DataFrame (`autoresearch.summary.read_results`), as karpathy's notebook draws it."""
    keeps = kept(results)
    title = f"{len(results)} Experiments, {int((results['status'] == 'keep').sum())} Kept Improvements"
    title = f"{tag}: {title}" if tag else f"Autoresearch Progress: {title}"
    best_line: list[Point] = []
    for number, value in keeps["value"].items():
        if not best_line or better(value, best_line[-1].value, direction) > 0:
            best_line.append(Point(number=number, value=value))
    if best_line and best_line[-1].number < len(results) - 1:
        best_line.append(Point(number=len(results) - 1, value=best_line[-1].value))
    ylim = _ylim(keeps["value"].tolist()) if len(keeps) else None
    discards = results[(results["status"] == "discard") & np.isfinite(results["value"])]["value"]
    inside = discards if ylim is None else discards[discards.between(*ylim)]
    return PlotData(
        title=title,
        metric=metric,
        direction=direction,
        kept=[Point(number=n, value=row.value, label=label(row.description)) for n, row in keeps.iterrows()],
        discarded=[Point(number=n, value=v) for n, v in inside.items()],
        off_scale=len(discards) - len(inside),
        off_scale_points=[Point(number=n, value=v) for n, v in discards.drop(inside.index).items()],
        crashed=results.index[results["status"] == "crash"].tolist(),
        best_line=best_line,
        ylim=ylim,
    )


def _ylim(kept_values: list[float]) -> tuple[float, float]:
    """The keeps' range (baseline to best) and a margin of 15% of it on each side."""
    low, high = min(kept_values), max(kept_values)
    margin = (high - low) * 0.15 or max(abs(high) * 0.01, 1e-6)
    return (low - margin, high + margin)


def render_png(data: PlotData, path: Path | None = None, size: tuple[float, float] = (16, 8), dpi: int = 150) -> bytes:
    """The PNG (and written to `path` if given). Uses matplotlib's Agg canvas directly: no pyplot, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    _draw_discarded(ax, data)
    _draw_kept(ax, data)
    _draw_crashed(ax, data)
    _decorate(ax, data)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    png = buffer.getvalue()
    if path is not None:
        path.write_bytes(png)
    return png


def _draw_discarded(ax: Any, data: PlotData) -> None:
    if data.discarded or data.off_scale:
        hidden = f" ({data.off_scale} off-scale: triangles on the edge)" if data.off_scale else ""
        ax.scatter(
            [p.number for p in data.discarded],
            [p.value for p in data.discarded],
            c=DISCARD_COLOR,
            s=12,
            alpha=0.5,
            zorder=2,
            label=f"Discarded{hidden}",
        )
    if data.off_scale_points and data.ylim:
        _edge_markers(ax, data.off_scale_points, data.ylim)


def _draw_kept(ax: Any, data: PlotData) -> None:
    """Kept points, the running best as a step line, and each keep's description."""
    if not data.kept:
        return
    ax.scatter(
        [p.number for p in data.kept],
        [p.value for p in data.kept],
        c=KEEP_COLOR,
        s=50,
        zorder=4,
        label="Kept",
        edgecolors="black",
        linewidths=0.5,
    )
    ax.step(
        [p.number for p in data.best_line],
        [p.value for p in data.best_line],
        where="post",
        color=BEST_COLOR,
        linewidth=2,
        alpha=0.7,
        zorder=3,
        label="Running best",
    )
    for point in data.kept:
        ax.annotate(
            point.label,
            (point.number, point.value),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=10.0,
            color=LABEL_COLOR,
            alpha=0.9,
            rotation=30,
            ha="left",
            va="bottom",
        )


def _draw_crashed(ax: Any, data: PlotData) -> None:
    """Crashes have no value: marks on the bottom edge, outside the data's y-range."""
    if data.crashed:
        ax.scatter(
            data.crashed,
            [0.01] * len(data.crashed),
            transform=ax.get_xaxis_transform(),
            marker="x",
            c=CRASH_COLOR,
            s=30,
            zorder=5,
            label="Crashed",
            clip_on=False,
        )


def _decorate(ax: Any, data: PlotData) -> None:
    """Limits, labels, title, legend and grid."""
    from matplotlib.ticker import MaxNLocator

    if data.ylim:
        ax.set_ylim(*data.ylim)
    better_is = "lower" if data.direction == "minimize" else "higher"
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=11)
    ax.set_xlabel("Experiment #", fontsize=12)
    ax.set_ylabel(f"{data.metric} ({better_is} is better)", fontsize=12)
    ax.set_title(data.title, fontsize=14)
    if data.kept or data.discarded or data.crashed:
        ax.legend(loc="upper right" if data.direction == "minimize" else "lower right", fontsize=11)
    ax.grid(True, alpha=0.2)


def _edge_markers(ax: object, points: list[Point], ylim: tuple[float, float]) -> None:
    """Off-scale discards: a triangle on the top or bottom edge, pointing the way the value went."""
    for above, marker, edge in ((True, "^", 0.985), (False, "v", 0.015)):
        side = [p for p in points if (p.value > ylim[1]) == above]
        if side:
            ax.scatter(
                [p.number for p in side],
                [edge] * len(side),
                transform=ax.get_xaxis_transform(),
                marker=marker,
                c=DISCARD_COLOR,
                edgecolors="#888888",
                s=40,
                zorder=2,
                clip_on=False,
            )
