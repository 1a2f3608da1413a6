"""A run's rows as a rich table, a JSON file and a PNG plot."""

from __future__ import annotations

import json
import os
import platform
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.config import BenchConfig
from benchmarks.results import Row

MET_MARK = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}
LABEL_WIDTH = 44  # characters of a row's name per line in the plot: long names wrap instead of leaving the figure


def machine() -> str:
    python = platform.python_version()
    return f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, Python {python}"


def table(rows: list[Row], title: str) -> Table:
    table = Table(title=title)
    for column in ("part", "case", "measured", "baseline", "ratio", "target", "met"):
        table.add_column(column, justify="left" if column in ("part", "case") else "right")
    for row in rows:
        baseline = "" if row.baseline is None else f"{_number(row.baseline)} {row.unit} ({row.baseline_name})"
        table.add_row(
            row.part,
            row.case,
            f"{_number(row.value)} {row.unit}",
            baseline,
            "" if row.ratio is None else f"{row.ratio:.2f}x",
            "" if row.target is None else str(row.target),
            MET_MARK[row.met],
        )
    return table


def write_json(rows: list[Row], config: BenchConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "command": " ".join(["inferq", *sys.argv[1:]]),  # as typed, whether run as `inferq` or `python -m cli.main`
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()},
        "rows": [row.to_json() for row in rows],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def write_plot(rows: list[Row], title: str, path: Path) -> None:
    """Left: every ratio (value / baseline), coloured by its target; right: plumbing jobs/s by jobs in flight."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    compared = [row for row in rows if row.ratio is not None]
    plumbing = [row for row in rows if row.part == "plumbing" and row.load is not None]
    figure, axes = plt.subplots(1, 2 if plumbing else 1, figsize=(16 if plumbing else 10, 0.4 * len(compared) + 2))
    ratios = axes[0] if plumbing else axes
    colours = {True: "tab:green", False: "tab:red", None: "tab:gray"}
    labels = [textwrap.fill(f"{row.part}: {row.case}", LABEL_WIDTH) for row in compared]
    lengths, floor = bar_lengths([row.ratio for row in compared])
    bars = ratios.barh(labels, lengths, color=[colours[row.met] for row in compared])
    ratios.bar_label(bars, [f"{row.ratio:.2f}x" for row in compared], padding=3, fontsize=7)
    ratios.axvline(1.0, color="black", linewidth=0.8)
    ratios.invert_yaxis()
    ratios.set_xscale("log")
    ratios.set_xlim(left=floor / 2, right=max(lengths, default=1.0) * 3)
    ratios.set_xlabel("measured / baseline; colour: the row's target (green met, red missed, grey none)")
    ratios.tick_params(axis="y", labelsize=7)
    if plumbing:
        inflight = [row.load for row in plumbing]
        axes[1].plot(inflight, [row.value for row in plumbing], marker="o", label="inferq (echo engine)")
        axes[1].plot(inflight, [row.baseline for row in plumbing], marker="o", label="bare Celery no-op")
        axes[1].set_xscale("log")
        axes[1].set_xticks(inflight, [str(n) for n in inflight], minor=False)
        axes[1].minorticks_off()
        axes[1].set_xlabel("jobs in flight from one client")
        axes[1].set_ylabel("jobs/s")
        axes[1].legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")  # long row names stay inside the picture
    plt.close(figure)


def bar_lengths(ratios: list[float]) -> tuple[list[float], float]:
    """Each ratio's bar on the plot's log axis, and the axis' floor. A ratio at or below zero (a difference that
    came out negative: the queue added nothing) has no place on a log axis: its bar is drawn at the floor, a
    quarter of the smallest positive ratio (each bar's label says its ratio)."""
    floor = min((ratio for ratio in ratios if ratio > 0), default=1.0) / 4
    return [max(ratio, floor) for ratio in ratios], floor


def print_summary(console: Console, rows: list[Row]) -> None:
    """One line a comparison, the house format: measured | baseline | ratio."""
    for row in rows:
        if row.ratio is not None:
            console.print(
                f"{row.part}, {row.case}:  {_number(row.value)} {row.unit} | {row.baseline_name} "
                f"{_number(row.baseline)} {row.unit} | {row.ratio:.2f}x",
                highlight=False,
            )


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
