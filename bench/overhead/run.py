"""bench/overhead: what hyperscout costs on top of the trials themselves.

1. Wall time of N trial scripts that sleep T seconds at concurrency C, through hyperscout (local
   backend, SQLite store on), against the ideal N*T/C and against the same scripts launched bare
   by a plain thread pool of subprocesses (the practical limit), side by side in this process.
2. The orchestrator's own cost per job with the store on (ask + record + tell + events), using a
   backend that finishes jobs instantly in-process, against the bare strategy ask/tell loop.
3. The trial-side import ``from hyperscout import report_scalar`` against a bare interpreter.

    python bench/overhead/run.py [--n 40] [--t 0.5] [--c 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hyperscout import Backend, DiscreteParameterRange, HyperParameterOptimizer, JobExited, JobStarted, MetricReported
from hyperscout.job import JobStatus, MetricPoint
from hyperscout.strategy import Suggestion, TrialResult

TRIAL = """
import sys, time
from hyperscout import report_scalar
time.sleep(float(sys.argv[sys.argv.index("--t") + 1]) if "--t" in sys.argv else 0.5)
report_scalar("val", "loss", 1.0, 0)
"""


def bench_wall(n: int, t: float, c: int, workdir: Path) -> dict[str, float]:
    script = workdir / "trial.py"
    script.write_text(TRIAL)
    # baseline: the same scripts launched bare by a plain pool
    start = time.perf_counter()
    with ThreadPoolExecutor(c) as pool:
        list(pool.map(lambda i: subprocess.run([sys.executable, "-u", str(script), "--t", str(t), "--i", str(i)],
                                               check=True), range(n)))
    bare = time.perf_counter() - start
    # hyperscout: grid over n distinct values, concurrency c, store on
    opt = HyperParameterOptimizer(
        str(script), [DiscreteParameterRange("i", list(range(n))), DiscreteParameterRange("t", [t])],
        "val", "loss", "min", optimizer_class="grid", max_number_of_concurrent_tasks=c,
        storage=workdir / "store", study_name=f"wall-{time.time()}", show_progress=False,
    )
    start = time.perf_counter()
    opt.start()
    opt.wait()
    ours = time.perf_counter() - start
    jobs = opt.get_all_experiments()
    assert len(jobs) == n and all(j.status.value == "completed" for j in jobs), [j.reason for j in jobs]
    ideal = n * t / c
    return {"ideal_s": ideal, "bare_pool_s": bare, "hyperscout_s": ours,
            "utilization_hyperscout": ideal / ours, "utilization_bare": ideal / bare, "ratio_vs_bare": ours / bare}


class InstantBackend(Backend):
    """Finishes every job at once, in-process: measures the engine, store and strategy alone."""

    name = "instant"

    def launch(self, spec):  # type: ignore[no-untyped-def]
        now = time.time()
        self.emit(JobStarted(spec.job_id, now, None))
        self.emit(MetricReported(spec.job_id, MetricPoint("val", "loss", 0, float(spec.params["i"]) * 1e-3, now)))
        self.emit(JobExited(spec.job_id, now, 0))

    def abort(self, job_id):  # type: ignore[no-untyped-def]
        pass


def bench_orchestrator(jobs: int, workdir: Path) -> dict[str, float]:
    space = [DiscreteParameterRange("i", list(range(jobs)))]
    opt = HyperParameterOptimizer(
        str(workdir / "trial.py"), space, "val", "loss", "min", optimizer_class="random",
        max_number_of_concurrent_tasks=4, backend=InstantBackend, storage=workdir / "store-orch",
        study_name="orchestrator", show_progress=False, seed=0,
    )
    start = time.perf_counter()
    opt.start()
    opt.wait()
    engine = time.perf_counter() - start
    assert len(opt.get_all_experiments()) == jobs
    # baseline: the same strategy's ask/tell loop with nothing around it
    from hyperscout_random import RandomSearch

    strategy = RandomSearch(opt.space, opt.objectives, opt.settings)
    start = time.perf_counter()
    for k in range(jobs):
        s = strategy.ask(str(k))
        assert isinstance(s, Suggestion)
        strategy.tell(str(k), TrialResult(JobStatus.COMPLETED, (1.0,), 0))
    bare = time.perf_counter() - start
    return {"jobs": jobs, "per_job_ms": 1e3 * engine / jobs, "bare_strategy_per_job_ms": 1e3 * bare / jobs,
            "ratio_vs_bare_strategy": engine / bare}


def bench_import(repeat: int = 20) -> dict[str, float]:
    def timed(code: str) -> float:
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    bare = timed("pass")
    ours = timed("from hyperscout import report_scalar")
    return {"bare_python_ms": 1e3 * bare, "import_report_scalar_ms": 1e3 * ours, "ratio": ours / bare}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--t", type=float, default=0.5)
    ap.add_argument("--c", type=int, default=2)
    ap.add_argument("--orchestrator-jobs", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wall = bench_wall(args.n, args.t, args.c, work)
        orch = bench_orchestrator(args.orchestrator_jobs, work)
    imp = bench_import()
    print(f"bench/overhead  N={args.n} T={args.t}s C={args.c}")
    print(f"  ideal N*T/C            {wall['ideal_s']:7.2f} s")
    print(f"  bare process pool      {wall['bare_pool_s']:7.2f} s   utilization {wall['utilization_bare']:.3f}")
    print(f"  hyperscout (local+db)  {wall['hyperscout_s']:7.2f} s   utilization {wall['utilization_hyperscout']:.3f}"
          f"   ratio vs bare pool {wall['ratio_vs_bare']:.3f}")
    print(f"  orchestrator per job   {orch['per_job_ms']:7.3f} ms (ask + record + tell + events, store on, "
          f"{orch['jobs']} jobs); bare strategy {orch['bare_strategy_per_job_ms']:.4f} ms")
    print(f"  trial import           {imp['import_report_scalar_ms']:7.1f} ms vs bare python {imp['bare_python_ms']:.1f} ms"
          f"   ratio {imp['ratio']:.2f}")
    out = Path(__file__).resolve().parents[1] / "results" / "overhead.json"
    out.write_text(json.dumps({"args": vars(args), "wall": wall, "orchestrator": orch, "import": imp}, indent=1))


if __name__ == "__main__":
    main()
