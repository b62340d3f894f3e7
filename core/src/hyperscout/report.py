"""Plots of a study (``hyperscout plot``): what ClearML's dashboard shows, as one PNG.

Panels: the objective of every job in launch order (coloured by status) with the best-so-far
line; one scatter per parameter against the objective; and parallel coordinates of the finished
jobs coloured by objective. matplotlib is optional (``pip install matplotlib``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperscout.errors import ConfigError
from hyperscout.job import Job
from hyperscout.objective import ObjectiveSet

_COLORS = {"completed": "tab:blue", "pruned": "tab:orange", "aborted": "tab:gray", "failed": "tab:red"}


def _numeric(values: Sequence[Any]) -> tuple[list[float], list[str] | None]:
    """Numbers as they are; anything else as category indices (with their labels)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values], None
    labels = sorted({str(v) for v in values})
    return [float(labels.index(str(v))) for v in values], labels


def plot_study(name: str, jobs: Sequence[Job], objectives: ObjectiveSet, output: str | Path | None = None) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plotting needs matplotlib; run `pip install matplotlib`") from None
    out = Path(output or f"{name}.png")
    primary = objectives.primary
    jobs = sorted((j for j in jobs if j.superseded_by is None), key=lambda j: j.number)
    done = [j for j in jobs if j.objective_values is not None]
    params = sorted({k for j in done for k in j.params})
    n_param = max(1, len(params))
    cols = min(3, n_param)
    rows = 2 + math.ceil(n_param / cols)
    fig = plt.figure(figsize=(5 * cols, 3.2 * rows))
    grid = fig.add_gridspec(rows, cols)

    ax = fig.add_subplot(grid[0, :])
    for status, color in _COLORS.items():
        sel = [j for j in done if j.status.value == status]
        ax.scatter([j.number for j in sel], [j.objective_values[0] for j in sel], c=color, label=status, s=18)
    failed = [j for j in jobs if j.objective_values is None]
    if failed and done:
        y = min(j.objective_values[0] for j in done)
        ax.scatter([j.number for j in failed], [y] * len(failed), marker="x", c="tab:red", label="no value")
    best, curve = None, []
    for j in jobs:
        if j.objective_values is not None and (best is None or primary.better(j.objective_values[0], best)):
            best = j.objective_values[0]
        curve.append(best if best is not None else math.nan)
    ax.plot([j.number for j in jobs], curve, c="black", lw=1.2, label="best so far")
    ax.set_xlabel("job #")
    ax.set_ylabel(primary.key)
    ax.set_title(f"study {name}: {len(jobs)} jobs, objective {primary.key} ({primary.sign})")
    ax.legend(fontsize=8, loc="best")

    for k, p in enumerate(params):
        ax = fig.add_subplot(grid[1 + k // cols, k % cols])
        xs, labels = _numeric([j.params.get(p) for j in done])
        ax.scatter(xs, [j.objective_values[0] for j in done], s=14, c="tab:blue")
        if labels:
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
        elif xs and min(xs) > 0 and max(xs) / min(xs) > 100:
            ax.set_xscale("log")
        ax.set_xlabel(p)
        ax.set_ylabel(primary.key)

    ax = fig.add_subplot(grid[rows - 1, :])
    if done and params:
        axes = [*params, primary.key]
        columns = [_numeric([j.params.get(p) for j in done])[0] for p in params]
        columns.append([j.objective_values[0] for j in done])
        scaled = []
        for col in columns:
            if min(col) > 0 and max(col) / min(col) > 100:  # log-scaled parameters read better on a log axis
                col = [math.log10(v) for v in col]
            lo, hi = min(col), max(col)
            scaled.append([0.5 if hi == lo else (v - lo) / (hi - lo) for v in col])
        values = columns[-1]
        lo, hi = min(values), max(values)
        cmap = plt.get_cmap("viridis" if primary.maximize else "viridis_r")
        for i in range(len(done)):
            shade = 0.5 if hi == lo else (values[i] - lo) / (hi - lo)
            ax.plot(range(len(axes)), [c[i] for c in scaled], c=cmap(shade), alpha=0.7, lw=1)
        ax.set_xticks(range(len(axes)), axes, fontsize=8)
        ax.set_yticks([])
        ax.set_title("parallel coordinates (each axis scaled to its range; colour = objective)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
