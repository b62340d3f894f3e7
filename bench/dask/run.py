"""bench/dask: what the dask backend costs against plain Dask running the same subprocesses.

N trial scripts that sleep T seconds, on one local Dask cluster of W single-thread worker
processes (bound to 127.0.0.1, no dashboard; ``--shell``: scheduler and workers started as
``dask scheduler`` / ``dask worker`` processes, so the scheduler does not share this process's
interpreter with the optimizer), run two ways, alternated A B A B ... so that a
drift of the machine's speed hits both alike:

* plain: ``client.map`` of a function that runs the trial with ``subprocess.run`` (stdout and
  stderr captured), then ``client.gather``: the practical limit for subprocess jobs on Dask;
* hyperscout: a grid study over N configurations through ``backend="dask"`` connected to the
  same cluster, concurrency W, SQLite store on, metrics and logs streamed back. Between two jobs
  on a worker sits the optimizer's round trip (end message -> engine -> next job submitted);
  ``--ahead K`` runs concurrency W + K with ``hold_back = false`` instead, so K jobs wait in Dask
  and start the moment a worker frees, as ``client.map``'s do.

Printed: the wall time of each run, the median of each, and the throughput ratio
(jobs/s through hyperscout) / (jobs/s plain) per pair and its median (target >= 0.95).

    python bench/dask/run.py [--n 200] [--t 0.5] [--workers 4] [--pairs 3] [--ahead 0] [--only plain|hyperscout]

``--only`` runs one side once with its own cluster (for timing whole processes from outside).
Needs ``hyperscout``, ``hyperscout-grid`` and ``hyperscout-dask`` installed; writes
``bench/dask/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TRIAL = """
import sys, time
from hyperscout import report_scalar
t = float(sys.argv[sys.argv.index("--t") + 1])
print("trial", sys.argv[sys.argv.index("--i") + 1], flush=True)
time.sleep(t)
report_scalar("val", "loss", t, 0)
"""


def plain_job(script: str, i: int, t: float) -> int:
    """What a Dask user writes without hyperscout: run the script, keep its output, return its status.

    ``report_scalar`` outside a study looks for an installed trial reporter (an entry-point scan,
    tens of ms); the report file sends it straight to /dev/null, so both sides run the same trial
    at the same cost.
    """
    env = {**os.environ, "HYPERSCOUT_REPORT_FILE": os.devnull}
    done = subprocess.run([sys.executable, "-u", script, "--i", str(i), "--t", str(t)], capture_output=True, env=env)
    return done.returncode


def run_plain(client, script: Path, n: int, t: float) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    futures = client.map(plain_job, [str(script)] * n, range(n), [t] * n, pure=False)
    codes = client.gather(futures)
    wall = time.perf_counter() - start
    assert codes == [0] * n, codes
    return wall


def run_hyperscout(address: str, script: Path, n: int, t: float, workers: int, store: Path, ahead: int = 0) -> float:
    """The study; ``ahead`` > 0 keeps that many more jobs queued in Dask (``hold_back = false``)."""
    from hyperscout import DiscreteParameterRange, HyperParameterOptimizer

    opt = HyperParameterOptimizer(
        str(script), [DiscreteParameterRange("i", list(range(n))), DiscreteParameterRange("t", [t])],
        "val", "loss", "min", optimizer_class="grid", max_number_of_concurrent_tasks=workers + ahead,
        storage=store, study_name=f"bench-{time.time()}", show_progress=False,
        backend="dask", backend_options={"scheduler": address, "hold_back": ahead == 0},
    )
    start = time.perf_counter()
    opt.start()
    opt.wait()
    wall = time.perf_counter() - start
    jobs = opt.get_all_experiments()
    assert len(jobs) == n and all(j.status.value == "completed" for j in jobs), [j.reason for j in jobs][:5]
    return wall


@contextlib.contextmanager
def _cluster(workers: int, tmp: Path, shell: bool) -> Iterator[str]:
    """A cluster on 127.0.0.1: a LocalCluster in this process, or `dask scheduler` + `dask worker` processes."""
    if not shell:
        from distributed import LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster:
            yield cluster.scheduler_address
        return
    dask = str(Path(sys.executable).with_name("dask"))
    sf = tmp / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sf)], **quiet)]  # type: ignore[call-overload]
    try:
        while not (sf.exists() and sf.stat().st_size):
            time.sleep(0.05)
        procs.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(sf), "--host", "127.0.0.1",
                                       "--no-dashboard", "--nworkers", str(workers), "--nthreads", "1"],
                                      **quiet))  # type: ignore[call-overload]
        from distributed import Client

        with Client(scheduler_file=str(sf)) as c:
            c.wait_for_workers(workers, timeout=120)
        yield str(json.loads(sf.read_text())["address"])
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--t", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--only", choices=["plain", "hyperscout"])
    ap.add_argument("--shell", action="store_true",
                    help="scheduler and workers as `dask scheduler` / `dask worker` processes, not a LocalCluster here")
    ap.add_argument("--ahead", type=int, default=0,
                    help="concurrency = workers + AHEAD with hold_back = false: the next jobs wait in Dask")
    args = ap.parse_args()

    from distributed import Client

    with tempfile.TemporaryDirectory() as tmp, _cluster(args.workers, Path(tmp), args.shell) as address, \
            Client(address) as client:
        work = Path(tmp)
        script = work / "trial.py"
        script.write_text(TRIAL)
        if args.only == "plain":
            print(f"plain {run_plain(client, script, args.n, args.t):.2f} s")
            return
        if args.only == "hyperscout":
            wall = run_hyperscout(address, script, args.n, args.t, args.workers, work / "store",
                                  args.ahead)
            print(f"hyperscout {wall:.2f} s")
            return
        run_plain(client, script, 4 * args.workers, args.t)  # warm-up: workers import, page cache
        plain, ours = [], []
        for k in range(args.pairs):
            plain.append(run_plain(client, script, args.n, args.t))
            ours.append(run_hyperscout(address, script, args.n, args.t, args.workers,
                                       work / f"store{k}", args.ahead))
            print(f"  pair {k + 1}: plain {plain[-1]:6.2f} s   hyperscout {ours[-1]:6.2f} s   "
                  f"throughput ratio {plain[-1] / ours[-1]:.3f}", flush=True)
    ideal = args.n * args.t / args.workers
    ratios = [p / o for p, o in zip(plain, ours)]
    where = "dask scheduler + dask worker processes" if args.shell else "LocalCluster in this process"
    print(f"bench/dask  N={args.n} T={args.t}s workers={args.workers} pairs={args.pairs} ahead={args.ahead} ({where})")
    print(f"  ideal N*T/W              {ideal:7.2f} s")
    print(f"  plain client.map         {statistics.median(plain):7.2f} s (median)  utilization "
          f"{ideal / statistics.median(plain):.3f}")
    print(f"  hyperscout backend=dask  {statistics.median(ours):7.2f} s (median)  utilization "
          f"{ideal / statistics.median(ours):.3f}")
    print(f"  throughput ratio hyperscout/plain: median {statistics.median(ratios):.3f} "
          f"(pairs: {', '.join(f'{r:.3f}' for r in ratios)}; target >= 0.95)")
    out = Path(__file__).resolve().with_name(f"results{'-shell' if args.shell else ''}{'-ahead' if args.ahead else ''}.json")
    out.write_text(json.dumps({"args": vars(args), "ideal_s": ideal, "plain_s": plain, "hyperscout_s": ours,
                               "ratios": ratios, "median_ratio": statistics.median(ratios)}, indent=1))


if __name__ == "__main__":
    main()
