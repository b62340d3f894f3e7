"""bench/quality: each search strategy against random search, and each plugin against its library.

1. Single fidelity: Branin, Hartmann-6, Rosenbrock-4D and a scikit-learn model (gradient boosting
   on the bundled breast-cancer data), the same number of evaluations for every strategy, several
   seeds: median (and IQR) of the best value reached, best-so-far curves.
2. Multi-fidelity: hyperband, bohb and optuna with the Hyperband pruner against random search on
   an MLP trained epoch by epoch, at an equal total number of training epochs.
3. Each plugin against the same library driven directly (same seeds): quality side by side, and
   the per-suggestion overhead of the plugin's ask + tell against the library's own.

Strategies are resolved by name through the registry and driven in-process through
ask / report / tell, as the engine drives them (``driver.py``).

    python bench/quality/run.py              # full run (5 seeds, 40 evaluations, 810 epochs), ~10 min
    python bench/quality/run.py --quick      # smoke run, 1-2 min
    python bench/quality/run.py --seeds 10 --evals 60 --jobs 2 --out bench/results
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread everywhere, set before numpy loads: the matrices are small, two worker
# processes share two cores, and the overhead comparison must give both sides the same threading.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import overhead  # noqa: E402
import report  # noqa: E402
import units  # noqa: E402
from tasks import MF_TASK, SF_TASKS  # noqa: E402

#: rough cost of a unit, to start the slow ones first (better packing on two workers)
_COST = {"skopt_gp": 8, "skopt_rf": 7, "bohb": 2, "optuna": 1, "random": 1}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="seeds per strategy and task (default 5)")
    p.add_argument("--evals", type=int, default=40, help="evaluations per single-fidelity run (default 40)")
    p.add_argument("--mf-budget", type=int, default=810,
                   help="training epochs per multi-fidelity run (default 810 = two Hyperband cycles over 1..27)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes for the quality runs (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 seeds, 15 evaluations, 405 epochs, no skopt rf, short overhead check")
    p.add_argument("--tasks", default=",".join(SF_TASKS), help="single-fidelity tasks (comma separated)")
    p.add_argument("--no-mf", action="store_true", help="skip the multi-fidelity part")
    p.add_argument("--mf-metric", choices=MF_TASK.METRICS, default="logloss",
                   help="multi-fidelity objective: validation log-loss (default; continuous) or validation error "
                        "(moves in steps of 1/599 on this data set, so strategies tie at the full budget)")
    p.add_argument("--no-overhead", action="store_true", help="skip the overhead measurement")
    p.add_argument("--replot", action="store_true",
                   help="only redraw the plots and quality.md from an existing quality.json in --out")
    p.add_argument("--out", default=None,
                   help="results directory (default bench/results; a temporary directory with --quick)")
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.evals, a.mf_budget = min(a.seeds, 2), min(a.evals, 15), min(a.mf_budget, 405)
    if a.out is None:
        # a smoke run must not overwrite the real results
        a.out = tempfile.mkdtemp(prefix="hyperscout-quality-") if a.quick else str(HERE.parent / "results")
    return a


def versions() -> dict[str, str]:
    out = {}
    for dist in ("hyperscout", "hyperscout-optuna", "hyperscout-skopt", "hyperscout-bohb", "hyperscout-random",
                 "optuna", "scikit-optimize", "hpbandster", "ConfigSpace", "scikit-learn", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def replot(out_dir: Path) -> int:
    """Redraw the figures and the markdown from the numbers of a previous run (nothing is re-run)."""
    summary = json.loads((out_dir / "quality.json").read_text())
    summary["config"]["plots"] = report.plots(summary, out_dir)
    (out_dir / "quality.md").write_text(report.markdown(summary, summary["elapsed_seconds"]))
    (out_dir / "quality.json").write_text(json.dumps(summary, indent=1, default=float))
    print(f"redrew {', '.join(summary['config']['plots'])} and quality.md in {out_dir}")
    return 0


def main(argv: list[str]) -> int:
    a = parse(argv)
    out_dir = Path(a.out)
    if a.replot:
        return replot(out_dir)
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(a.seeds))
    sf_tasks = [t for t in a.tasks.split(",") if t]  # --tasks "" runs the multi-fidelity part only
    for t in sf_tasks:
        if t not in SF_TASKS:
            raise SystemExit(f"unknown task {t!r}; known: {', '.join(SF_TASKS)}")
    sf_groups = [g for g in units.SF_GROUPS if not (a.quick and g == "skopt_rf")]
    mf_groups = [] if a.no_mf else list(units.MF_GROUPS)
    lo, hi = 1, 27
    grid = list(range(hi, a.mf_budget + 1, hi))
    cfg: dict[str, Any] = {
        "argv": " ".join(argv), "seeds": seeds, "evals": a.evals, "sf_tasks": sf_tasks, "sf_groups": sf_groups,
        "mf_groups": mf_groups, "mf_metric": a.mf_metric, "mf_budget": a.mf_budget, "mf_min": lo, "mf_max": hi, "mf_grid": grid,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"{a.jobs} worker processes",
        "versions": versions(),
    }

    jobs: list[tuple[float, Any, tuple[Any, ...]]] = []
    for t in sf_tasks:
        heavy = 3 if t == "hgb_cancer" else 1
        for s in seeds:
            for g in sf_groups:
                jobs.append((_COST[g] * heavy, units.sf_unit, (t, s, g, a.evals, True)))
    for s in seeds:
        for g in mf_groups:
            jobs.append((6, units.mf_unit, (s, g, a.mf_budget, lo, hi, grid, True, a.mf_metric)))
    jobs.sort(key=lambda j: -j[0])
    print(f"quality: {len(jobs)} runs on {a.jobs} processes (seeds {seeds}, {a.evals} evaluations, "
          f"{a.mf_budget} epochs)", flush=True)
    sf_units: list[dict[str, Any]] = []
    mf_units: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        futures = [pool.submit(fn, *args) for _, fn, args in jobs]
        for i, f in enumerate(as_completed(futures), 1):
            u = f.result()
            (sf_units if u["kind"] == "sf" else mf_units).append(u)
            if i % 10 == 0 or i == len(futures):
                print(f"  {i}/{len(futures)} runs done ({time.perf_counter() - started:.0f} s)", flush=True)

    over: list[dict[str, Any]] = []
    if not a.no_overhead:
        print("overhead (plugin ask+tell vs the library's own, same process, alternating):", flush=True)
        plan = [("optuna", 100, 11), ("bohb", 40, 7), ("skopt", 25, 5)]
        if a.quick:
            plan = [("optuna", 60, 3), ("bohb", 25, 3), ("skopt", 12, 2)]
        for lib, n, reps in plan:
            over.append(overhead.measure(lib, n, reps))

    summary = report.summarize(cfg, sf_units, mf_units, over)
    cfg["plots"] = report.plots(summary, out_dir)
    elapsed = time.perf_counter() - started
    summary["elapsed_seconds"] = elapsed
    md = report.markdown(summary, elapsed)
    (out_dir / "quality.md").write_text(md)
    (out_dir / "quality.json").write_text(json.dumps(summary, indent=1, default=float))
    print()
    print(md)
    print(f"wrote {out_dir / 'quality.md'}, {out_dir / 'quality.json'} and {len(cfg['plots'])} plots "
          f"in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
