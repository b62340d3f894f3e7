"""bench/quality/sim_concurrency: how each strategy's result changes with concurrency, at equal cost.

Every run is a real study (engine, strategy plugin, limits, SQLite store) on the ``sim`` backend:
a synthetic multi-fidelity task whose jobs train "epoch by epoch" in virtual time, so hundreds of
studies run in minutes. Each strategy runs at 1, 4, 16 and 64 jobs at a time with the same
``total_max_iterations`` (epochs summed over jobs), over 20+ seeds.

The task (4 parameters: ``lr`` log 1e-4..1, ``width`` 16..256, ``dropout`` 0..0.6, ``wd`` log
1e-6..1e-2): validation loss after epoch ``e`` is ``floor + (0.9 - floor) * exp(-e / tau) +
overfit(e) + noise``. The floor depends on all four parameters (best near lr 0.02, width 180,
dropout 0.2, wd 1e-4); high learning rates converge fast to a worse floor and narrow, unregularised
models overfit late, so a short budget misranks configurations, as on real models. An epoch lasts
0.5 to 2 virtual seconds (wider is slower), so jobs finish out of order. Noise (sd 0.005) comes
from the sim backend's seeded ``rng``: the same configuration has the same curve in every run.

Equal cost: ``total_max_iterations`` stops asking once that many epochs were spent, but running
jobs finish their budget, so a run at 64 jobs at a time spends more. The result is therefore read
at exactly the budget: the incumbent (best ranked job, as ``get_top_experiments`` ranks) among the
jobs that had ended when the study's cumulative epochs reached the budget. Reported: the incumbent's
noise-free loss at 27 epochs (what deploying it would give), median and IQR over seeds; the virtual
time it took to spend the budget; the epochs actually spent.

    python bench/quality/sim_concurrency.py                 # 20 seeds, all strategies installed
    python bench/quality/sim_concurrency.py --seeds 5 --quick
    python bench/quality/sim_concurrency.py --strategies random,hyperband --seeds 24

Writes ``bench/results/sim_concurrency.md`` and ``sim_concurrency.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # two worker processes share two cores

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
CONCURRENCY = (1, 4, 16, 64)
MIN_EPOCHS, MAX_EPOCHS = 1, 27

#: label -> (registry name, strategy options, the plugin that provides it)
STRATEGIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "random": ("random", {}, "hyperscout_random"),
    "hyperband": ("hyperband", {}, "hyperscout_bohb"),
    "bohb": ("bohb", {}, "hyperscout_bohb"),
    "bohb_parallel": ("bohb", {"parallel_brackets": True}, "hyperscout_bohb"),
    "optuna_tpe": ("optuna", {}, "hyperscout_optuna"),  # the plugin's default pruner: median
    "optuna_hb": ("optuna", {"pruner": "hyperband"}, "hyperscout_optuna"),
    "skopt_gp": ("skopt", {}, "hyperscout_skopt"),
}
LABELS = {
    "random": "random (every job 27 epochs)",
    "hyperband": "hyperband",
    "bohb": "bohb",
    "bohb_parallel": "bohb, `parallel_brackets=True`",
    "optuna_tpe": "optuna TPE + median pruner (its default)",
    "optuna_hb": "optuna TPE + HyperbandPruner",
    "skopt_gp": "skopt GP (every job 27 epochs)",
}


# -- the task ------------------------------------------------------------------------------------------
def _units(p: dict[str, Any]) -> tuple[float, float, float, float]:
    lr = (math.log10(p["lr"]) + 4.0) / 4.0
    width = (p["width"] - 16) / 240
    dropout = p["dropout"] / 0.6
    wd = (math.log10(p["wd"]) + 6.0) / 4.0
    return lr, width, dropout, wd


def floor_of(p: dict[str, Any]) -> float:
    u1, u2, u3, u4 = _units(p)
    bowl = 0.9 * (u1 - 0.57) ** 2 + 0.25 * (u2 - 0.7) ** 2 + 0.2 * (u3 - 0.33) ** 2 + 0.15 * (u4 - 0.5) ** 2
    ripple = 0.015 * math.sin(9.0 * u1 + 4.0 * u3) ** 2  # local minima along lr x dropout
    return 0.08 + bowl + ripple


def true_loss(p: dict[str, Any], epoch: int) -> float:
    """The noise-free validation loss after ``epoch`` epochs."""
    u1, u2, u3, _ = _units(p)
    floor = floor_of(p)
    tau = 1.5 + 14.0 * (1.0 - u1) ** 2  # small learning rates converge slowly
    overfit = 0.06 * u2 * (1.0 - u3) ** 2 * (epoch / MAX_EPOCHS) ** 2
    return floor + (0.9 - floor) * math.exp(-epoch / tau) + overfit


def train(params: dict[str, Any], budget: float | None, *, rng: Any) -> Iterator[tuple[float, int, dict[str, float]]]:
    """The job function: one epoch per step, stops at its budget (or 27 epochs)."""
    last = MAX_EPOCHS if budget is None else max(1, min(int(budget), MAX_EPOCHS))
    seconds = 0.5 + 1.5 * (params["width"] - 16) / 240
    for epoch in range(1, last + 1):
        yield seconds, epoch, {"validation/loss": true_loss(params, epoch) + rng.gauss(0.0, 0.005)}


def space() -> list[Any]:
    from hyperscout import LogUniformParameterRange, UniformIntegerParameterRange, UniformParameterRange

    return [LogUniformParameterRange("lr", -4, 0), UniformIntegerParameterRange("width", 16, 256),
            UniformParameterRange("dropout", 0.0, 0.6), LogUniformParameterRange("wd", -6, -2)]


def optimum(samples: int = 200_000) -> float:
    """The task's best noise-free 27-epoch loss, by dense random search (a reference line only)."""
    import random

    rng = random.Random(0)
    best = math.inf
    for _ in range(samples):
        p = {"lr": 10 ** rng.uniform(-4, 0), "width": rng.randint(16, 256), "dropout": rng.uniform(0, 0.6),
             "wd": 10 ** rng.uniform(-6, -2)}
        best = min(best, true_loss(p, MAX_EPOCHS))
    return best


# -- one study ---------------------------------------------------------------------------------------------
def one_run(label: str, concurrency: int, seed: int, budget: int) -> dict[str, Any]:
    # CRITICAL: a heartbeat that races the end of the previous study in this worker logs a false
    # "taken over" error (a core issue, harmless here: that study had already ended)
    logging.getLogger("hyperscout").setLevel(logging.CRITICAL)
    from hyperscout import HyperParameterOptimizer
    from hyperscout.results import ranked_jobs

    name, options, _ = STRATEGIES[label]
    where = Path(tempfile.mkdtemp(prefix="hs-simq-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    opt = HyperParameterOptimizer(
        train, space(), "validation", "loss", "min", optimizer_class=name, strategy_options=options,
        max_number_of_concurrent_tasks=concurrency, total_max_iterations=budget,
        min_iteration_per_job=MIN_EPOCHS, max_iteration_per_job=MAX_EPOCHS, max_consecutive_failures=None,
        backend="sim", backend_options={"seed": seed, "origin": 1_000_000}, storage=where,
        study_name=f"{label}-{concurrency}-{seed}", show_progress=False, seed=seed,
    )
    t = time.perf_counter()
    opt.start()
    opt.wait()
    wall = time.perf_counter() - t
    engine = opt._engine
    assert engine is not None
    jobs = engine.snapshot()
    # The study's cumulative epochs over virtual time, as the engine counts them (primary objective,
    # points before each job's stop, the increase of each job's last iteration).
    steps: list[tuple[float, int]] = []
    for j in jobs:
        last = 0
        for m in sorted((m for m in j.metrics if not m.after_stop), key=lambda m: m.time):
            if m.iteration > last:
                steps.append((m.time, m.iteration - last))
                last = m.iteration
    steps.sort()
    spent, at_budget = 0, None
    for when, inc in steps:
        spent += inc
        if spent >= budget and at_budget is None:
            at_budget = when
    cutoff = at_budget if at_budget is not None else math.inf
    within = [j for j in jobs if j.ended is not None and j.ended <= cutoff]
    top = ranked_jobs(within, engine.objectives, 1)
    start = engine.started_at or 0.0
    out: dict[str, Any] = {
        "label": label, "concurrency": concurrency, "seed": seed, "wall_s": wall, "jobs": len(jobs),
        "epochs_spent": spent, "iterations_used": engine.iterations_used,
        "virtual_s_to_budget": (at_budget - start) if at_budget is not None else None,
        "virtual_s_total": max((j.ended or start) for j in jobs) - start if jobs else 0.0,
        "pruned": sum(j.status.value == "pruned" for j in jobs),
        "full": sum(1 for j in jobs if (j.objective_iterations or [0])[0] >= MAX_EPOCHS),
    }
    for key, ranked in (("end", ranked_jobs(jobs, engine.objectives, 1)), ("at_budget", top)):
        best = ranked[0] if ranked else None
        out[f"{key}_true"] = None if best is None else true_loss(best.params, MAX_EPOCHS)
        out[f"{key}_reported"] = None if best is None else best.objective_values[0]
        out[f"{key}_epochs"] = None if best is None else best.objective_iterations[0]
    engine.store.close()
    shutil.rmtree(where, ignore_errors=True)
    return out


# -- the report ----------------------------------------------------------------------------------------------
def quartiles(xs: list[float]) -> tuple[float, float, float]:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[1], q[0], q[2]


def fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def _cells(runs: list[dict[str, Any]], lb: str, conc: list[int], key: str) -> tuple[list[str], dict[int, float]]:
    cells, med = [], {}
    for c in conc:
        rs = [r for r in runs if r["label"] == lb and r["concurrency"] == c]
        vals = [r[key] for r in rs if r[key] is not None]
        if not vals:
            cells.append(f"no result ({len(rs)}/{len(rs)})" if rs else "–")
            continue
        m, lo, hi = quartiles(vals)
        med[c] = m
        miss = len(rs) - len(vals)
        cells.append(f"{m:.4f} [{lo:.4f}, {hi:.4f}]" + (f" ({miss} without)" if miss else ""))
    return cells, med


def _median_row(runs: list[dict[str, Any]], lb: str, conc: list[int], key: str, form: str) -> list[str]:
    cells = []
    for c in conc:
        vals = [r[key] for r in runs if r["label"] == lb and r["concurrency"] == c and r[key] is not None]
        cells.append(format(statistics.median(vals), form) if vals else "–")
    return cells


def report(data: dict[str, Any]) -> str:
    runs = data["runs"]
    labels = [lb for lb in STRATEGIES if any(r["label"] == lb for r in runs)]
    conc = data["concurrency"]
    head = "| strategy | " + " | ".join(f"{c} at a time" for c in conc)
    rule = "|---|" + "---|" * len(conc)
    lines = [
        "# Strategies against concurrency, at equal cost (`sim` backend)", "",
        f"Produced by `{' '.join(['python bench/quality/sim_concurrency.py', data['argv']]).strip()}` in "
        f"{data['minutes']:.1f} min "
        f"({data['machine']}, {data['workers']} worker processes). {data['seeds']} seeds per cell; every study runs "
        "through the real engine, strategy plugin and SQLite store on the `sim` backend."
        + (" 1-minute load average of the machine: {:.1f} at the start, {:.1f} at the end (above the worker count, "
           "other work shared the cores: wall times are then upper bounds; the results do not depend on it)."
           .format(*data["load"]) if "load" in data else ""), "",
        "Task: the synthetic multi-fidelity curve of `bench/quality/sim_concurrency.py` (4 parameters, 1..27 epochs, "
        "an epoch lasts 0.5-2 virtual s, noise sd 0.005). Every study: `total_max_iterations = "
        f"{data['budget']}` epochs (= {data['budget'] // MAX_EPOCHS} full trainings), `min_iteration_per_job = 1`, "
        f"`max_iteration_per_job = 27`. Best noise-free 27-epoch loss in the space: {data['optimum']:.4f} (dense "
        "random search). Value of a study: the noise-free 27-epoch loss of its incumbent (the best ranked job, as "
        "`get_top_experiments(1)` ranks them); lower is better. Each cell: median [25th, 75th percentile] over the "
        "seeds.", "",
        "## At the end of the study", "",
        "What `total_max_iterations` gives: no job starts once the budget is spent, running jobs finish their "
        "budget, so more jobs at a time spend more epochs (next table).", "",
        head + " | change 1 → " + str(conc[-1]) + " |", rule + "---|",
    ]
    for lb in labels:
        cells, med = _cells(runs, lb, conc, "end_true")
        change = f"{med[conc[-1]] - med[conc[0]]:+.4f}" if conc[0] in med and conc[-1] in med else ""
        lines.append(f"| {LABELS[lb]} | " + " | ".join(cells) + f" | {change} |")
    lines += ["", "Epochs actually spent (median):", "", head + " |", rule]
    for lb in labels:
        lines.append(f"| {LABELS[lb]} | " + " | ".join(_median_row(runs, lb, conc, "epochs_spent", ",.0f")) + " |")
    lines += ["", "## Strictly at the budget", "",
              f"The incumbent among the jobs that had ended when the study's cumulative epochs reached {data['budget']} "
              "(jobs still running then do not count): equal cost exactly. 'no result': no job had ended by then "
              "(with many full-length jobs at a time, the budget is spent before the first of them ends).", "",
              head + " | change 1 → " + str(conc[-1]) + " |", rule + "---|"]
    for lb in labels:
        cells, med = _cells(runs, lb, conc, "at_budget_true")
        change = f"{med[conc[-1]] - med[conc[0]]:+.4f}" if conc[0] in med and conc[-1] in med else ""
        lines.append(f"| {LABELS[lb]} | " + " | ".join(cells) + f" | {change} |")
    lines += ["", "Virtual time to spend the budget (median virtual seconds): what concurrency buys.", "", head + " |",
              rule]
    for lb in labels:
        lines.append(f"| {LABELS[lb]} | " + " | ".join(_median_row(runs, lb, conc, "virtual_s_to_budget", ",.0f"))
                     + " |")
    lines += ["", "Jobs launched, jobs trained to 27 epochs, jobs pruned (medians):", "", head + " |", rule]
    for lb in labels:
        cells = []
        for c in conc:
            rs = [r for r in runs if r["label"] == lb and r["concurrency"] == c]
            cells.append("–" if not rs else f"{statistics.median(r['jobs'] for r in rs):.0f} · "
                         f"{statistics.median(r['full'] for r in rs):.0f} · {statistics.median(r['pruned'] for r in rs):.0f}")
        lines.append(f"| {LABELS[lb]} | " + " | ".join(cells) + " |")
    lines += ["", "Wall time per study (median seconds: the optimizer's own work, strategy + engine + store):", "",
              head + " |", rule]
    for lb in labels:
        lines.append(f"| {LABELS[lb]} | " + " | ".join(_median_row(runs, lb, conc, "wall_s", ".2f")) + " |")
    if data.get("missing"):
        lines += ["", "Not installed, so not run: " + ", ".join(f"{LABELS[m]} ({STRATEGIES[m][2]})"
                                                              for m in data["missing"]) + "."]
    lines += ["", "## Reading it", "", *data.get("notes", []), "",
              "- hyperband and bohb (without `parallel_brackets`) run one bracket at a time and wait for a rung to "
              "finish before promoting: a rung's jobs are all they can run at once, so extra slots stay idle. Their "
              "jobs and spend do not change with concurrency and hyperband's results are identical; bohb's change "
              "only through the order in which results reach its model. With `parallel_brackets=True` bohb fills "
              "the slots with new brackets: far sooner in virtual time, at more epochs spent.",
              "- The strictly-at-budget table shows what concurrency costs full-length strategies: at 64 at a "
              "time the budget (30 full trainings) is spent before most of 64 parallel trainings end, so the "
              "incumbent is one of the few fast (narrow) models that finished, or there is none."]
    return "\n".join(lines) + "\n"


def notes(data: dict[str, Any]) -> list[str]:
    """Plain statements computed from the numbers: what got better or worse with concurrency."""
    runs, conc = data["runs"], data["concurrency"]
    out = []
    for lb in STRATEGIES:
        rs = [r for r in runs if r["label"] == lb]
        if not rs:
            continue

        def med(key: str, c: int, rs: list[dict[str, Any]] = rs) -> float:
            vals = [r[key] for r in rs if r["concurrency"] == c and r[key] is not None]
            return statistics.median(vals) if vals else math.nan

        a, b = med("end_true", conc[0]), med("end_true", conc[-1])
        trend = "worse" if b > a + 0.002 else "better" if b < a - 0.002 else "about the same"
        t1, t2 = med("virtual_s_to_budget", conc[0]), med("virtual_s_to_budget", conc[-1])
        e2 = med("epochs_spent", conc[-1])
        out.append(f"- {LABELS[lb]}: {a:.4f} at 1 at a time, {b:.4f} at {conc[-1]} ({trend}, after spending "
                   f"{e2:,.0f} epochs instead of {med('epochs_spent', conc[0]):,.0f}); the budget was spent "
                   f"{t1 / t2:.0f}x sooner in virtual time ({t1:,.0f} s → {t2:,.0f} s).")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budget", type=int, default=810, help="total_max_iterations (epochs); default 810 = 30 x 27")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 seeds, budget 270")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--report", action="store_true", help="only re-write the report from sim_concurrency.json")
    args = p.parse_args(argv)
    if args.report:
        data = json.loads((Path(args.out) / "sim_concurrency.json").read_text())
        data["notes"] = notes(data)
        (Path(args.out) / "sim_concurrency.md").write_text(report(data))
        return
    if args.quick:
        args.seeds, args.budget = min(args.seeds, 3), 270
    import importlib.util

    wanted = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STRATEGIES]
    if unknown:
        raise SystemExit(f"--strategies: unknown {unknown}; choose from {', '.join(STRATEGIES)}")
    if importlib.util.find_spec("hyperscout_sim") is None:
        raise SystemExit("hyperscout-sim is not installed: pip install -e plugins/hyperscout-sim")
    chosen = [s for s in wanted if importlib.util.find_spec(STRATEGIES[s][2]) is not None]
    missing = [s for s in wanted if s not in chosen]
    units = [(lb, c, seed) for seed in range(args.seeds) for c in CONCURRENCY for lb in chosen]
    cost = {"skopt_gp": 20, "bohb": 4, "bohb_parallel": 4, "optuna_tpe": 3, "optuna_hb": 3}
    units.sort(key=lambda u: -cost.get(u[0], 1))  # slow ones first: better packing on few workers
    print(f"{len(units)} studies: {', '.join(chosen)} x concurrency {CONCURRENCY} x {args.seeds} seeds", flush=True)
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    runs = []
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one_run, lb, c, seed, args.budget) for lb, c, seed in units]
        for i, fut in enumerate(as_completed(futures), 1):
            runs.append(fut.result())
            if i % 25 == 0 or i == len(units):
                print(f"  {i}/{len(units)} done, {time.perf_counter() - t0:.0f} s", flush=True)
    runs.sort(key=lambda r: (list(STRATEGIES).index(r["label"]), r["concurrency"], r["seed"]))
    data = {"argv": " ".join(sys.argv[1:] if argv is None else argv), "minutes": (time.perf_counter() - t0) / 60,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "workers": args.jobs, "seeds": args.seeds, "budget": args.budget, "concurrency": list(CONCURRENCY),
            "optimum": optimum(), "missing": missing, "load": (load, os.getloadavg()[0]), "runs": runs}
    data["notes"] = notes(data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim_concurrency.json").write_text(json.dumps(data, indent=1))
    (out / "sim_concurrency.md").write_text(report(data))
    print(f"wrote {out / 'sim_concurrency.md'}")


if __name__ == "__main__":
    main()
