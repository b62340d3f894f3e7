"""bench/scale: the engine and the store at scale, on the ``sim`` backend (virtual time, so every
CPU second measured is the optimizer's own work, never a job's).

1. **In flight.** N jobs in flight (N = 10, 100, 1,000, 10,000), each reporting once per virtual
   second, phases staggered (jobs report at different instants, as real ones do). Measured over a
   window of steady state: CPU of the engine's thread per event, events per loop iteration, and
   the process's resident memory, with the store on disk, on tmpfs (``/dev/shm``) and stubbed
   (every store write a no-op: the engine alone; the store cannot be opened on ``:memory:``).
   Target: cost per event flat in N, and under one core at 1,000 in flight (1,000 events per
   virtual second means under 1 ms per event). A profile at the largest N shows where time goes.
2. **History.** A study of 100,000 finished jobs (5 points each), built through the real engine:
   ``hyperscout status``, ``hyperscout top -k 10`` and ``get_top_experiments(10)`` (fresh process,
   from the store; and on the live engine), ``hyperscout export`` (rows/s and peak memory at two
   study sizes: constant memory means streaming), and the optimizer's resident memory against the
   metric history it holds. Optuna's RDB storage (SQLite) holding the same number of trials, in
   the same script: ``study.trials_dataframe()`` and ``study.best_trial``.

    python bench/scale/run.py            # everything, about 10-15 minutes on 2 cores
    python bench/scale/run.py --quick --out /tmp/scale   # smaller sizes, about 3 minutes
    python bench/scale/run.py --part inflight|history

Each measurement runs in its own child process (clean memory figures). Results:
``bench/results/scale.md``, ``scale.json`` and ``scale.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _space() -> list[Any]:
    from hyperscout import UniformParameterRange

    return [UniformParameterRange("x", 0.0, 1.0), UniformParameterRange("y", 0.0, 1.0)]


def stub_store() -> None:
    """Make every store write a no-op (the lease and reads stay real): the engine's cost alone."""
    from hyperscout.store import Store

    for name in ("save_job", "add_metric", "add_event", "set_archived", "set_handle", "commit_now"):
        setattr(Store, name, lambda self, *a, **k: None)
    Store.batch = lambda self: contextlib.nullcontext()  # type: ignore[assignment,method-assign]


# -- 1. jobs in flight -----------------------------------------------------------------------------
ITERATIONS = 5


def staggered(params: dict, budget: float | None, *, rng: Any) -> Iterator[tuple[float, int, dict[str, float]]]:
    """Reports once per virtual second, at a phase of its own."""
    yield rng.random(), 0, {"validation/loss": 1.0}
    for i in range(1, ITERATIONS + 1):
        yield 1.0, i, {"validation/loss": (params["x"] - 0.3) ** 2 + params["y"] / i}


def child_inflight(n: int, store: str, events: int, wall_cap: float, profile: bool, limit: str) -> dict:
    from hyperscout import HyperParameterOptimizer
    from hyperscout_sim import SimBackend

    if store == "stub":
        stub_store()
    base = Path(tempfile.mkdtemp(prefix="hs-scale-", dir="/dev/shm" if store == "tmpfs" else "/var/tmp"))
    out: dict[str, Any] = {"n": n, "store": store, "limit": limit}
    box: dict[str, Any] = {}
    prof = cProfile.Profile() if profile else None

    class Measured(SimBackend):
        """Opens a window once every slot is full and the clock passed 2 s; closes it after ``events``."""

        def advance(self, until: float) -> None:
            super().advance(until)
            engine = box["opt"]._engine
            w = box.get("w")
            if w is None:
                box["loops_before"] = box.get("loops_before", 0) + 1
                if engine.launched >= n and self.now() - self.origin >= 2.0:
                    box["w"] = (time.thread_time(), time.perf_counter(), self.events_emitted, self.now(), rss(),
                                box["loops_before"])
                    box["loops"] = 0
                    if prof is not None:
                        prof.enable()
                return
            box["loops"] += 1
            done = self.events_emitted - w[2] >= events or time.perf_counter() - w[1] > wall_cap
            if done and "end" not in box:
                if prof is not None:
                    prof.disable()
                box["end"] = (time.thread_time(), time.perf_counter(), self.events_emitted, self.now(), rss())
                box["held"] = sum(len(j.metrics) for j in engine.snapshot())
                box["jobs"] = len(engine.jobs)
                engine.request_stop("bench")

    rss0 = rss()
    # a limit that never triggers, to measure what checking it costs
    limits: dict[str, Any] = {"compute": {"compute_time_limit": 1e9}, "per_job": {"time_limit_per_job": 1e9},
                              "none": {}}[limit]
    opt = HyperParameterOptimizer(
        staggered, _space(), "validation", "loss", "min", optimizer_class="random", max_number_of_concurrent_tasks=n,
        backend=Measured, backend_options={"origin": 1_000_000}, storage=base / "store", study_name="inflight",
        show_progress=False, seed=1, **limits,
    )
    box["opt"] = opt
    t = time.perf_counter()
    opt.start()
    opt.wait()
    total = time.perf_counter() - t
    shutil.rmtree(base, ignore_errors=True)
    w, e = box["w"], box["end"]
    cpu, wall, ev, virt = e[0] - w[0], e[1] - w[1], e[2] - w[2], e[3] - w[3]
    out.update(
        events=ev, loops=box["loops"], events_per_loop=ev / max(box["loops"], 1), cpu_s=cpu, wall_s=wall,
        us_per_event=1e6 * cpu / ev, virtual_s=virt, cpu_per_virtual_s=cpu / virt if virt else None,
        rss_start_mb=rss0 / 2**20, rss_window_mb=e[4] / 2**20, rss_growth_mb=(e[4] - rss0) / 2**20,
        jobs_held=box["jobs"], points_held=box["held"], total_wall_s=total,
    )
    if prof is not None:
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("tottime").print_stats(14)
        out["profile"] = _trim_profile(buf.getvalue())
        stats.sort_stats("cumulative")
        buf2 = io.StringIO()
        stats.stream = buf2
        stats.print_stats(18)
        out["profile_cumulative"] = _trim_profile(buf2.getvalue())
    return out


def _trim_profile(text: str) -> str:
    lines = [ln.rstrip() for ln in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    keep = [ln.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "") for ln in lines[start:] if ln.strip()]
    return "\n".join(keep)


# -- 2. a study of 100,000 finished jobs ----------------------------------------------------------------
POINTS = 5


def short(params: dict, budget: float | None) -> Iterator[tuple[float, int, dict[str, float]]]:
    for i in range(1, POINTS + 1):
        yield 1.0 + params["y"], i, {"validation/loss": (params["x"] - 0.3) ** 2 + params["y"] / i}


def child_build(jobs: int, points: int, storage: str, name: str) -> dict:
    """Run a study of ``jobs`` jobs through the engine; sample the optimizer's RSS as history grows."""
    from hyperscout import HyperParameterOptimizer, hookimpl
    from hyperscout.plugins import get_plugin_manager

    global POINTS
    POINTS = points
    samples: list[tuple[int, float, int]] = []

    class Sampler:
        def __init__(self) -> None:
            self.done = 0

        @hookimpl
        def hyperscout_job_finished(self) -> None:
            self.done += 1
            if self.done % max(jobs // 10, 1) == 0:
                samples.append((self.done, rss() / 2**20, self.done * points))

    pm = get_plugin_manager()
    pm.register(Sampler())
    rss0 = rss()
    opt = HyperParameterOptimizer(
        short, _space(), "validation", "loss", "min", optimizer_class="random", max_number_of_concurrent_tasks=100,
        total_max_jobs=jobs, backend="sim", backend_options={"origin": 1_000_000}, storage=storage, study_name=name,
        show_progress=False, seed=3, plugin_manager=pm,
    )
    t = time.perf_counter()
    opt.start()
    opt.wait()
    build = time.perf_counter() - t
    t = time.perf_counter()
    live_top = opt.get_top_experiments(10)
    live_top_s = time.perf_counter() - t
    engine = opt._engine
    assert engine is not None and len(engine.jobs) == jobs
    return {"jobs": jobs, "points": points, "build_s": build, "events": engine.backend.events_emitted,
            "us_per_event": 1e6 * build / engine.backend.events_emitted, "rss_start_mb": rss0 / 2**20,
            "rss_samples": samples, "live_get_top_s": live_top_s, "best": live_top[0].objective_values}


def child_cli(args: list[str], profile: bool = False) -> dict:
    """One CLI command in this process, output discarded: its own time (imports excluded) and peak memory."""
    import importlib

    import hyperscout.cli as cli

    for module in ("hyperscout.optimizer", "hyperscout.results", "hyperscout.store"):
        importlib.import_module(module)  # before the clock starts: a command's own time, not its imports

    before = peak_rss()
    prof = cProfile.Profile() if profile else None
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        t, c = time.perf_counter(), time.process_time()
        if prof is not None:
            prof.enable()
        code = cli.main(args)
        if prof is not None:
            prof.disable()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # a JSON export forks a second writer
        took = time.perf_counter() - t
        cpu = time.process_time() - c + (after.ru_utime + after.ru_stime) - (kids.ru_utime + kids.ru_stime)
    out = {"args": args, "code": code, "s": took, "cpu_s": cpu, "peak_rss_mb": peak_rss() / 2**20,
           "peak_before_mb": before / 2**20}
    if prof is not None:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(12)
        out["profile"] = _trim_profile(buf.getvalue())
    return out


def child_get_top(storage: str, name: str) -> dict:
    """``get_top_experiments(10)`` from a fresh optimizer that has not run: it reads the store."""
    from hyperscout import HyperParameterOptimizer

    opt = HyperParameterOptimizer(short, _space(), "validation", "loss", "min", optimizer_class="random",
                                  backend="sim", storage=storage, study_name=name, show_progress=False)
    t = time.perf_counter()
    top = opt.get_top_experiments(10)
    return {"s": time.perf_counter() - t, "k": len(top), "peak_rss_mb": peak_rss() / 2**20}


def child_optuna(trials: int, points: int, path: str) -> dict:
    """Optuna's RDB storage with ``trials`` finished trials; time trials_dataframe() and best_trial."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import random

    rng = random.Random(0)
    url = f"sqlite:///{path}"
    study = optuna.create_study(storage=url, study_name="s", direction="minimize")
    template = 100
    dist = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    t = time.perf_counter()
    study.add_trials([
        create_trial(params={"x": rng.random(), "y": rng.random()}, distributions=dist, value=rng.random(),
                     intermediate_values={i: rng.random() for i in range(1, points + 1)})
        for _ in range(template)
    ])
    api_ms = 1e3 * (time.perf_counter() - t) / template
    # The API inserts a trial in ~10 ms (100,000 would take a quarter of an hour): copy the API's own
    # rows with SQL instead, with fresh ids, numbers and random values. Reads are what is measured.
    db = sqlite3.connect(path)
    t = time.perf_counter()
    tables = {
        "trials": ("trial_id", ["number", "study_id", "state", "datetime_start", "datetime_complete"]),
        "trial_params": ("param_id", ["trial_id", "param_name", "param_value", "distribution_json"]),
        "trial_values": ("trial_value_id", ["trial_id", "objective", "value", "value_type"]),
        "trial_intermediate_values": ("trial_intermediate_value_id",
                                      ["trial_id", "step", "intermediate_value", "intermediate_value_type"]),
    }
    counts = {tb: db.execute(f"SELECT MAX({key}) FROM {tb}").fetchone()[0] for tb, (key, _) in tables.items()}
    for k in range(1, trials // template):
        for tb, (key, cols) in tables.items():
            sel = []
            for c in cols:
                if c == "trial_id":
                    sel.append(f"trial_id + {k * counts['trials']}")
                elif c == "number":
                    sel.append(f"number + {k * template}")
                elif c in ("param_value", "value", "intermediate_value"):
                    sel.append("abs(random()) / 9.3e18")
                else:
                    sel.append(c)
            db.execute(f"INSERT INTO {tb} ({key}, {', '.join(cols)}) SELECT {key} + {k * counts[tb]}, "
                       f"{', '.join(sel)} FROM {tb} WHERE {key} <= {counts[tb]}")
    db.commit()
    db.close()
    copy_s = time.perf_counter() - t
    fresh = optuna.load_study(study_name="s", storage=url)
    t = time.perf_counter()
    frame = fresh.trials_dataframe()
    df_s = time.perf_counter() - t
    fresh2 = optuna.load_study(study_name="s", storage=url)
    t = time.perf_counter()
    best = fresh2.best_trial
    best_s = time.perf_counter() - t
    return {"trials": len(frame), "api_insert_ms_per_trial": api_ms, "sql_copy_s": copy_s,
            "trials_dataframe_s": df_s, "best_trial_s": best_s, "best_value": best.value,
            "peak_rss_mb": peak_rss() / 2**20}


# -- the parent: runs each child, writes the report -------------------------------------------------------
def child(*args: str, timeout: float = 1800) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def wall_cli(*args: str) -> float:
    """A command as a user runs it: a new interpreter, imports included."""
    exe = shutil.which("hyperscout", path=str(Path(sys.executable).parent)) or shutil.which("hyperscout") or "hyperscout"
    t = time.perf_counter()
    subprocess.run([exe, *args], check=True, capture_output=True)
    return time.perf_counter() - t


def part_inflight(quick: bool) -> dict:
    sizes = [10, 100, 1000] if quick else [10, 100, 1000, 10_000]
    floor = 5_000 if quick else 20_000
    rows = []
    for n in sizes:  # the window covers at least one turnover of every slot (a job lives ~5.5 virtual s)
        for store in ("disk", "tmpfs", "stub"):
            r = child("inflight", str(n), store, str(max(floor, 8 * n)), "90", "0", "none")
            rows.append(r)
            print(f"  in flight {n:>6} store {store:<5}: {r['us_per_event']:8.1f} us/event  "
                  f"{r['events_per_loop']:7.2f} events/loop  cpu/virtual s {r['cpu_per_virtual_s']:.3f}  "
                  f"rss {r['rss_window_mb']:.0f} MB", flush=True)
    limits = []
    for limit in ("per_job", "compute"):
        for n in sizes:
            r = child("inflight", str(n), "disk", str(max(5_000, 2 * n)), "60", "0", limit)
            limits.append(r)
            print(f"  {limit} limit set, {n:>6} in flight: {r['us_per_event']:8.1f} us/event", flush=True)
    prof = child("inflight", str(sizes[-1]), "disk", str(max(5_000, 2 * sizes[-1])), "90", "1", "none")
    prof_1k = child("inflight", "1000", "disk", "20000", "60", "1", "none")
    return {"rows": rows, "profile": prof, "profile_1k": prof_1k, "limits": limits}


def part_history(quick: bool) -> dict:
    big, small = (20_000, 5_000) if quick else (100_000, 20_000)
    base = Path(tempfile.mkdtemp(prefix="hs-history-", dir="/var/tmp"))
    storage = str(base / "store")
    out: dict[str, Any] = {"big": big, "small": small}
    print(f"  building a study of {big} jobs ...", flush=True)
    out["build"] = child("build", str(big), "5", storage, "big")
    out["build_small"] = child("build", str(small), "5", storage, "small")
    # metric history: the same number of jobs with 10x the points each
    out["build_long"] = child("build", str(small), "50", str(base / "long"), "long")
    print(f"  built in {out['build']['build_s']:.0f} s", flush=True)
    cli: dict[str, Any] = {}
    for label, args in (("status", ["status", "big"]), ("top", ["top", "big", "-k", "10"])):
        cli[label] = child("cli", *args, "--storage", storage)
        cli[label]["wall_s"] = wall_cli(*args, "--storage", storage)
    for size in ("big", "small"):
        target = str(base / f"{size}.json")
        r = child("cli", "export", size, "--format", "json", "-o", target, "--storage", storage)
        r["rows"] = out["build" if size == "big" else "build_small"]["jobs"]
        r["rows_per_s"] = r["rows"] / r["s"]
        r["rows_per_cpu_s"] = r["rows"] / r["cpu_s"]
        r["bytes"] = os.path.getsize(target)
        cli[f"export_{size}"] = r
        csv_target = str(base / f"{size}.csv")
        r = child("cli", "export", size, "--format", "csv", "-o", csv_target, "--storage", storage)
        r["rows"] = cli[f"export_{size}"]["rows"]
        r["rows_per_s"] = r["rows"] / r["s"]
        r["rows_per_cpu_s"] = r["rows"] / r["cpu_s"]
        cli[f"export_csv_{size}"] = r
    out["cli"] = cli
    out["profile_top"] = child("cli_profile", "top", "big", "-k", "10", "--storage", storage)
    out["get_top_fresh"] = child("get_top", storage, "big")
    for k, v in cli.items():
        print(f"  {k:<16} {v['s']:.3f} s in process" + (f", {v['wall_s']:.2f} s as a command" if "wall_s" in v else "")
              + f", peak {v['peak_rss_mb']:.0f} MB", flush=True)
    print(f"  get_top_experiments(10): fresh process {out['get_top_fresh']['s']:.2f} s, live engine "
          f"{out['build']['live_get_top_s']:.3f} s", flush=True)
    print(f"  optuna: {big} trials ...", flush=True)
    try:
        import optuna  # noqa: F401
        import pandas  # noqa: F401 - trials_dataframe() needs it
    except ImportError as exc:
        out["optuna"] = {"skipped": f"{exc.name} is not installed (`pip install optuna pandas`)"}
        print(f"  optuna skipped: {out['optuna']['skipped']}", flush=True)
    else:
        out["optuna"] = child("optuna", str(big), "5", str(base / "optuna.db"))
        print(f"  optuna trials_dataframe {out['optuna']['trials_dataframe_s']:.2f} s, best_trial "
              f"{out['optuna']['best_trial_s']:.2f} s", flush=True)
    out["store_mb"] = sum(f.stat().st_size for f in (base / "store").glob("*")) / 2**20
    shutil.rmtree(base, ignore_errors=True)
    return out


def plot(inflight: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for store, style in (("disk", "o-"), ("tmpfs", "s--"), ("stub", "^:")):
        rows = [r for r in inflight["rows"] if r["store"] == store]
        a.plot([r["n"] for r in rows], [r["us_per_event"] for r in rows], style, label=f"store {store}")
        b.plot([r["n"] for r in rows], [r["rss_window_mb"] for r in rows], style, label=f"store {store}")
    for limit, style in (("per_job", "x-"), ("compute", "d-")):
        rows = [r for r in inflight.get("limits", []) if r["limit"] == limit]
        label = {"per_job": "disk + time_limit_per_job", "compute": "disk + compute_time_limit"}[limit]
        a.plot([r["n"] for r in rows], [r["us_per_event"] for r in rows], style, label=label)
    for ax, title, unit in ((a, "engine CPU per event", "µs per event (engine thread)"),
                            (b, "resident memory in the window", "MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("jobs in flight (each reports once per virtual second)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def _verdict(data: dict) -> list[str]:
    """The targets, met or not, from the figures below."""
    out = ["## Against the targets", ""]
    inf, his = data.get("inflight"), data.get("history")
    if inf:
        disk = {r["n"]: r for r in inf["rows"] if r["store"] == "disk"}
        stub = {r["n"]: r for r in inf["rows"] if r["store"] == "stub"}
        lo, hi = min(disk), max(disk)
        flat = disk[hi]["us_per_event"] / disk[lo]["us_per_event"]
        out.append(f"- Cost per event flat in jobs in flight: **{'met' if flat < 1.5 else 'not met'}**: "
                   f"{disk[lo]['us_per_event']:.0f} µs at {lo:,} in flight, {disk[hi]['us_per_event']:.0f} µs at "
                   f"{hi:,} ({flat:.1f}x; engine alone, store stubbed: {stub[lo]['us_per_event']:.0f} → "
                   f"{stub[hi]['us_per_event']:.0f} µs). "
                   + ("The profiles below show where an event's cost goes." if flat < 1.5 else
                      "The profile below names the part that grows with jobs in flight."))
        if 1000 in disk:
            c = disk[1000]["cpu_per_virtual_s"]
            out.append(f"- Under one core at 1,000 in flight reporting once per virtual second: "
                       f"**{'met' if c < 1 else 'not met'}** ({c:.2f} CPU s per virtual s, store on disk).")
    if his:
        cli, g, b = his["cli"], his["get_top_fresh"], his["build"]
        worst = max(cli["status"]["s"], cli["top"]["s"], g["s"], b["live_get_top_s"])
        out.append(f"- `status`, `top -k 10`, `get_top_experiments(10)` under 0.5 s at {his['big']:,} jobs: "
                   f"**{'met' if worst < 0.5 else 'not met'}** ({cli['status']['s']:.1f} s, {cli['top']['s']:.1f} s, "
                   f"{g['s']:.1f} s from the store / {b['live_get_top_s']:.2f} s on the live engine).")
        ej, es, ec = cli["export_big"], cli["export_small"], cli["export_csv_big"]
        const = ej["peak_rss_mb"] < 1.5 * es["peak_rss_mb"]
        json_rate, csv_rate = ej["rows_per_s"], ec["rows_per_s"]
        verdict = ("met" if min(json_rate, csv_rate) >= 50_000 and const else
                   "met for CSV, not for JSON" if csv_rate >= 50_000 and const else "not met")
        out.append(f"- `export` streams at ≥ 50,000 rows/s in constant memory: **{verdict}** (constant memory: "
                   f"{'yes' if const else 'no'}, peak {es['peak_rss_mb']:.0f} MB at {es['rows']:,} jobs, "
                   f"{ej['peak_rss_mb']:.0f} MB at {ej['rows']:,}; CSV {csv_rate:,.0f} rows/s; JSON, which carries "
                   f"each job's metric history ({b['points']} points here) and is written by two processes from "
                   f"20,000 jobs on, {json_rate:,.0f} rows/s. Per CPU second (both processes): CSV "
                   f"{ec.get('rows_per_cpu_s', 0):,.0f}, JSON {ej.get('rows_per_cpu_s', 0):,.0f} rows.)")
        first, last = b["rss_samples"][0], b["rss_samples"][-1]
        s5, s50 = his["build_small"]["rss_samples"][-1], his["build_long"]["rss_samples"][-1]
        per_point = (s50[1] - s5[1]) * 2**20 / max(s50[2] - s5[2], 1)
        per_job = (last[1] - first[1]) * 2**20 / max(last[0] - first[0], 1)
        out.append(f"- The optimizer's resident memory does not grow with metric history: **"
                   f"{'met' if per_point < 20 else 'not met'}** ({s5[1]:.0f} MB with {s5[2]:,} points held by "
                   f"{s5[0]:,} finished jobs, {s50[1]:.0f} MB with {s50[2]:,}: {per_point:,.0f} bytes per point). "
                   f"What still grows is one row per job ({per_job:,.0f} bytes per finished job: parameters, "
                   f"status, values, not histories): {first[1]:.0f} MB at {first[0]:,} finished jobs, "
                   f"{last[1]:.0f} MB at {last[0]:,}.")
    return [*out, ""]


def _load_note(part: dict) -> list[str]:
    if "load" not in part:
        return []
    a, b = part["load"]
    return [f"(1-minute load average of this shared 2-core machine: {a:.1f} when this part started, {b:.1f} when it "
            "ended; other sessions' benchmarks ran meanwhile, so times are upper bounds.)", ""]


def report(data: dict, png: bool) -> str:
    lines = ["# Scale: the engine and the store on the `sim` backend", "",
             "Produced by `python bench/scale/run.py` (" + data["when"] + ", commit " + data.get("commit", "?")
             + " plus the working tree, " + data["machine"] + "). "
             "Virtual time: every CPU second below is the optimizer's own work. Each row is a separate process.", ""]
    lines += _verdict(data)
    inf = data.get("inflight")
    if inf:
        lines += ["## 1. Jobs in flight", "", *_load_note(inf),
                  "Each job reports once per virtual second at a phase of its own (5 reports, then it exits and "
                  "the slot is refilled); the window opens when every slot is full. `store stub` = every store "
                  "write a no-op (the engine alone); `tmpfs` = the SQLite file on /dev/shm; `disk` = /var/tmp.", "",
                  "| in flight | store | µs per event | events per loop | CPU s per virtual s | "
                  "under one core? | RSS in window (MB) | jobs held | points held |",
                  "|---:|---|---:|---:|---:|---|---:|---:|---:|"]
        for r in inf["rows"]:
            lines.append(f"| {r['n']:,} | {r['store']} | {r['us_per_event']:.1f} | {r['events_per_loop']:.2f} | "
                         f"{r['cpu_per_virtual_s']:.3f} | {'yes' if r['cpu_per_virtual_s'] < 1 else 'no'} | "
                         f"{r['rss_window_mb']:.0f} | {r['jobs_held']:,} | {r['points_held']:,} |")
        if inf.get("limits"):
            lines += ["", "With a per-job or compute limit set (one that never triggers; store on disk): what "
                      "checking it costs. Shorter windows (max(5,000, 2 × N) events): at 10,000 in flight that is two "
                      "virtual seconds with no job ending or starting, so compare these rows with each other, not with the table "
                      "above.", "",
                      "| in flight | limit set | µs per event | CPU s per virtual s |", "|---:|---|---:|---:|"]
            name = {"per_job": "`time_limit_per_job`", "compute": "`compute_time_limit`"}
            lines += [f"| {r['n']:,} | {name[r['limit']]} | {r['us_per_event']:.1f} | {r['cpu_per_virtual_s']:.3f} |"
                      for r in inf["limits"]]
        if png:
            lines += ["", "![cost per event and memory against jobs in flight](scale.png)"]
        before = data.get("before")
        if before:
            sizes = sorted(before["disk"], key=int)
            lines += ["", f"Measured the same way on the engine of commit {before['commit']} (µs per event):", "",
                      "| in flight | " + " | ".join(f"{int(n):,}" for n in sizes) + " |",
                      "|---|" + "---:|" * len(sizes)]
            for key, label in (("disk", "store on disk"), ("stub", "store stubbed"),
                               ("per_job", "disk + `time_limit_per_job`"), ("compute", "disk + `compute_time_limit`")):
                lines.append(f"| {label} | " + " | ".join(f"{before[key][n]:.0f}" for n in sizes) + " |")
            lines += ["", before["note"]]
        lines += ["", f"### Profile at {inf['profile']['n']:,} in flight (engine thread, store on disk, "
                  "sorted by own time)", "", "```", inf["profile"]["profile"], "```", "",
                  "Cumulative:", "", "```", inf["profile"]["profile_cumulative"], "```", "",
                  "### Profile at 1,000 in flight (sorted by own time)", "", "```",
                  inf["profile_1k"]["profile"], "```"]
    his = data.get("history")
    if his:
        b = his["build"]
        cli = his["cli"]
        lines += ["", f"## 2. A study of {his['big']:,} finished jobs", "", *_load_note(his),
                  f"Built through the engine on `sim` (random search, 100 at a time, {b['points']} points per job): "
                  f"{b['build_s']:.0f} s, {b['us_per_event']:.0f} µs per event including the store. "
                  f"Store file: {his['store_mb']:.0f} MB (both studies).", "",
                  "| what | time (s) | target | peak RSS (MB) |", "|---|---:|---|---:|"]
        for label in ("status", "top"):
            r = cli[label]
            lines.append(f"| `hyperscout {' '.join(r['args'][:-2])}` in process | {r['s']:.2f} | < 0.5 s | "
                         f"{r['peak_rss_mb']:.0f} |")
            lines.append(f"| same, as a command (new interpreter) | {r['wall_s']:.2f} | < 0.5 s | |")
        g = his["get_top_fresh"]
        lines.append(f"| `get_top_experiments(10)`, fresh optimizer (reads the store) | {g['s']:.2f} | < 0.5 s | "
                     f"{g['peak_rss_mb']:.0f} |")
        lines.append(f"| `get_top_experiments(10)`, live engine after the run | {b['live_get_top_s']:.3f} | < 0.5 s | |")
        for size in ("small", "big"):
            r = cli[f"export_{size}"]
            c = cli[f"export_csv_{size}"]
            for fmt, x in (("json", r), ("csv", c)):
                per_cpu = f"; {x['rows_per_cpu_s']:,.0f} per CPU s" if "rows_per_cpu_s" in x else ""
                lines.append(f"| `export --format {fmt}`, {x['rows']:,} jobs | {x['s']:.2f} ({x['rows_per_s']:,.0f} "
                             f"rows/s{per_cpu}) | ≥ 50,000 rows/s, constant memory | {x['peak_rss_mb']:.0f} |")
        o = his["optuna"]
        if "skipped" in o:
            lines += ["", f"Optuna comparison skipped: {o['skipped']}."]
        else:
            lines += [f"| Optuna RDB (SQLite), {o['trials']:,} trials: `trials_dataframe()` | "
                      f"{o['trials_dataframe_s']:.2f} | (comparison) | {o['peak_rss_mb']:.0f} |",
                      f"| Optuna RDB: `best_trial` (fresh `load_study`) | {o['best_trial_s']:.2f} | (comparison) | |",
                      "", f"Optuna's API inserted a finished trial in {o['api_insert_ms_per_trial']:.1f} ms; the rest "
                      f"of its {o['trials']:,} trials were copied from those rows with SQL ({o['sql_copy_s']:.1f} s)."]
        lines += ["", "### The optimizer's resident memory against its metric history", "",
                  "| study | jobs finished | points held | RSS (MB) |", "|---|---:|---:|---:|"]
        for key in ("build", "build_small", "build_long"):
            r = his[key]
            picked = r["rss_samples"][::3]
            picked += [s for s in r["rss_samples"][-1:] if s not in picked]
            for done, mb, pts in picked:
                lines.append(f"| {r['jobs']:,} jobs × {r['points']} points | {done:,} | {pts:,} | {mb:.0f} |")
        s5, s50 = his["build_small"], his["build_long"]
        per_point = (s50["rss_samples"][-1][1] - s5["rss_samples"][-1][1]) * 2**20 / (
            s50["rss_samples"][-1][2] - s5["rss_samples"][-1][2])
        first, last = b["rss_samples"][0], b["rss_samples"][-1]
        per_job = (last[1] - first[1]) * 2**20 / (last[0] - first[0])
        lines += ["", f"Growth: about {per_job:,.0f} bytes per finished job ({b['points']} points each), and about "
                  f"{per_point:,.0f} bytes per extra metric point held (same job count, 50 vs 5 points per job)."]
        if his.get("profile_top"):
            lines += ["", f"### Where `hyperscout top -k 10` spends its time ({his['big']:,} jobs, cumulative)", "",
                      "```", his["profile_top"]["profile"], "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--part", choices=["inflight", "history", "all", "report"], default="all",
                   help="run one part (the other's figures are kept from scale.json), or only re-write the report")
    p.add_argument("--out", default=str(RESULTS), help="where scale.md/.json/.png go (default bench/results)")
    p.add_argument("--child", nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.child:
        kind, rest = args.child[0], args.child[1:]
        if kind == "inflight":
            n, store, events, cap, prof, limit = rest
            res = child_inflight(int(n), store, int(events), float(cap), prof == "1", limit)
        elif kind == "build":
            res = child_build(int(rest[0]), int(rest[1]), rest[2], rest[3])
        elif kind == "cli":
            res = child_cli(rest)
        elif kind == "cli_profile":
            res = child_cli(rest, profile=True)
        elif kind == "get_top":
            res = child_get_top(rest[0], rest[1])
        elif kind == "optuna":
            res = child_optuna(int(rest[0]), int(rest[1]), rest[2])
        else:
            raise SystemExit(f"unknown child {kind!r}")
        print(json.dumps(res))
        return
    results = Path(args.out)
    results.mkdir(parents=True, exist_ok=True)
    stored = results / "scale.json"
    data: dict[str, Any] = json.loads(stored.read_text()) if stored.exists() and args.part != "all" else {}
    load = os.getloadavg()[0]
    if args.part != "report":
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        data["commit"] = head.stdout.strip() or "?"
        data["when"] = time.strftime("%Y-%m-%d")
        data["machine"] = (f"{os.cpu_count()} cores shared with other work (load average {load:.1f} at the start), "
                           f"Python {sys.version.split()[0]}")
    if args.part in ("inflight", "all"):
        print("1. jobs in flight", flush=True)
        before = os.getloadavg()[0]
        data["inflight"] = part_inflight(args.quick)
        data["inflight"]["load"] = (before, os.getloadavg()[0])
        stored.write_text(json.dumps(data, indent=1))  # a later failure keeps this part
    if args.part in ("history", "all"):
        print("2. a study of many finished jobs", flush=True)
        before = os.getloadavg()[0]
        data["history"] = part_history(args.quick)
        data["history"]["load"] = (before, os.getloadavg()[0])
    stored.write_text(json.dumps(data, indent=1))
    png = plot(data["inflight"], results / "scale.png") if data.get("inflight") else False
    (results / "scale.md").write_text(report(data, png))
    print(f"wrote {results / 'scale.md'}")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
