"""bench/clearml: the same study through hyperscout and through ClearML's own HyperParameterOptimizer.

Both run the seed-shaped script ``plugins/hyperscout-clearml/tests/seed_hpo.py`` as a real process; ClearML's
run swaps its IMPORTS block back to ``clearml.automation`` (the only difference), so this also shows that the
migration is an import change. Both talk to the same FAKE ClearML server (``hyperscout_clearml.fake_server``)
through the real clearml SDK; trials are real processes run by the FAKE agent (2 workers by default).

Measured, per optimizer and strategy (``random``: RandomSearch; ``optuna``: OptimizerOptuna):

* **wall**: seconds the optimizer process ran for the whole study;
* **requests/job**: API requests the optimizer process sent (its own ``Task.init`` and reports included; told
  apart from the agents' and trials' by a worker name set only in its environment), divided by the jobs;
* **busy %**: time the agents' workers spent running trials (each trial task's start to end on the server),
  over ``workers x`` (first trial start to last trial end);
* **requests/poll at 1, 10, 100 in flight**: the optimizer's requests per ``pool_period_min`` once that many
  trials are running and reporting (a simulated fleet pops the queue, marks the tasks started and adds one
  scalar per task per second; no process per trial), averaged over a window of several periods.

    python bench/clearml/run.py                      # 40 jobs, random and optuna, writes bench/clearml/results.json
    python bench/clearml/run.py --jobs 10 --in-flight 1 10 --strategies random   # a quick look

Numbers come from a protocol fake, not a real clearml-server: they compare the optimizers' behaviour
(requests, refill latency), not a server's speed. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from hyperscout_clearml.fake_agent import FakeAgent, _Api
from hyperscout_clearml.fake_server import FakeClearMLServer

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "plugins" / "hyperscout-clearml" / "tests"
SEED = TESTS / "seed_hpo.py"
TRIAL = TESTS / "trial_clearml.py"
OPTIMIZER_WORKER = "bench-optimizer"  # CLEARML_WORKER_NAME of the optimizer process only
CLEARML_IMPORTS = """from clearml.automation import DiscreteParameterRange, HyperParameterOptimizer, RandomSearch, UniformParameterRange

try:
    from clearml.automation.optuna import OptimizerOptuna
except ImportError:
    OptimizerOptuna = None
"""
IMPORTS_BLOCK = re.compile(r"# IMPORTS \(hyperscout\) >>>\n.*?# <<< IMPORTS\n", re.S)


def seed_text(which: str) -> str:
    text = SEED.read_text(encoding="utf-8")
    if which == "clearml":
        text, n = IMPORTS_BLOCK.subn(CLEARML_IMPORTS, text)
        assert n == 1, "the seed's IMPORTS block moved; update bench/clearml/run.py"
    return text


class Bench:
    """One fresh fake server (and its seeded base task) per measurement."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.server = FakeClearMLServer().start()
        self.server.create_queue("default")
        self.base = self.server.create_task(
            "base", project="hyperscout-tests", script_text=TRIAL.read_text(encoding="utf-8"),
            entry_point="trial_clearml.py",
            hyperparams={"General": {"epochs": 3, "sleep": 0.0, "fail": False, "marker": ""},
                         "Args": {"lr": 0.1, "optimizer": "sgd"}},
        )

    def close(self) -> None:
        self.server.stop()

    def start_optimizer(self, which: str, settings: dict[str, Any]) -> subprocess.Popen[str]:
        run = Path(tempfile.mkdtemp(prefix=f"{which}-", dir=self.work))
        (run / "seed.py").write_text(seed_text(which), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_", "HYPERSCOUT_"))}
        env.update(self.server.env(run / "home"))
        env.update(SEED_SETTINGS=json.dumps(settings), CLEARML_WORKER_NAME=OPTIMIZER_WORKER)
        return subprocess.Popen([sys.executable, "seed.py"], cwd=run, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    def optimizer_requests(self) -> int:
        return self.server.request_count(worker=OPTIMIZER_WORKER)

    def trial_tasks(self) -> list[dict[str, Any]]:
        with self.server._cond:
            return [dict(t) for t in self.server.tasks.values()
                    if any(str(tag).startswith("opt") for tag in t.get("tags") or []) and t["type"] != "optimizer"]


def busy_fraction(tasks: list[dict[str, Any]], workers: int) -> float:
    spans = []
    for t in tasks:
        if not t.get("started"):
            continue
        start = datetime.fromisoformat(t["started"]).timestamp()
        end = datetime.fromisoformat(t.get("completed") or t["status_changed"]).timestamp()
        spans.append((start, end))
    if not spans:
        return 0.0
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    return sum(e - s for s, e in spans) / (workers * (last - first))


def full_study(work: Path, which: str, strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(work)
    try:
        settings = dict(strategy=strategy, jobs=args.jobs, concurrency=args.workers, epochs=[args.epochs],
                        sleep=args.sleep, pool_period_min=args.pool_period_min, report_period_min=args.report_period_min)
        with FakeAgent(bench.server, "default", workers=args.workers, kill_grace=0.5):
            started = time.monotonic()
            proc = bench.start_optimizer(which, settings)
            _, err = proc.communicate(timeout=args.timeout)
            wall = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"bench/clearml: the {which} optimizer failed ({proc.returncode}):\n{err[-3000:]}")
        tasks = bench.trial_tasks()
        requests = bench.optimizer_requests()
        return {
            "optimizer": which, "strategy": strategy, "jobs": len(tasks), "wall_s": round(wall, 1),
            "requests": requests, "requests_per_job": round(requests / max(1, len(tasks)), 1),
            "busy_pct": round(100 * busy_fraction(tasks, args.workers), 1),
            "completed": sum(t["status"] == "completed" for t in tasks),
            "by_endpoint": dict(bench.server.request_counts(worker=OPTIMIZER_WORKER).most_common()),
        }
    finally:
        bench.close()


class Fleet(threading.Thread):
    """Simulated workers: pop every queued task, mark it started, add one scalar per task per second."""

    def __init__(self, bench: Bench) -> None:
        super().__init__(daemon=True)
        self.api = _Api(bench.server.url, bench.server.access_key, bench.server.secret_key, worker="bench-fleet")
        self.queue = bench.server._queue_ref("default")
        self.running: list[str] = []
        self.iteration = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        last_report = 0.0
        while not self.stop_event.is_set():
            entry = self.api.call("queues.get_next_task", {"queue": self.queue}).get("entry")
            if entry:
                self.api.call("tasks.started", {"task": entry["task"], "force": True})
                self.running.append(entry["task"])
                continue
            if self.running and time.monotonic() - last_report >= 1.0:
                last_report = time.monotonic()
                events = [{"type": "training_stats_scalar", "task": t, "iter": self.iteration, "metric": "validation",
                           "variant": "loss", "value": 1.0 / (2 + self.iteration), "timestamp": int(time.time() * 1000)}
                          for t in self.running]
                self.api.call("events.add_batch", events, json_lines=True)
                self.iteration += 1
            self.stop_event.wait(0.05)


def per_poll(work: Path, which: str, strategy: str, in_flight: int, args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(work)
    fleet = Fleet(bench)
    fleet.start()
    proc = None
    try:
        settings = dict(strategy=strategy, jobs=in_flight, concurrency=in_flight, epochs=[1000], sleep=1.0,
                        pool_period_min=args.pool_period_min, report_period_min=60.0)
        proc = bench.start_optimizer(which, settings)
        deadline = time.monotonic() + args.timeout
        while len(fleet.running) < in_flight:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench/clearml: {which} never had {in_flight} jobs in flight: "
                                 f"{(proc.stderr.read() if proc.stderr else '')[-2000:]}")
            time.sleep(0.2)
        time.sleep(max(3.0, 3 * 60 * args.pool_period_min))  # settle: launches done, first metrics seen
        before = bench.server.request_counts(worker=OPTIMIZER_WORKER)
        time.sleep(args.window)
        during = bench.server.request_counts(worker=OPTIMIZER_WORKER)
        during.subtract(before)
        requests = sum(during.values())
        polls = args.window / (60 * args.pool_period_min)
        return {"optimizer": which, "strategy": strategy, "in_flight": in_flight,
                "requests_per_poll": round(requests / polls, 2), "window_s": args.window,
                "by_endpoint": {k: v for k, v in during.most_common() if v}}
    finally:
        fleet.stop_event.set()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        bench.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--sleep", type=float, default=0.2, help="seconds per epoch of a trial")
    p.add_argument("--pool-period-min", type=float, default=0.01)
    p.add_argument("--report-period-min", type=float, default=0.2)
    p.add_argument("--strategies", nargs="*", default=["random", "optuna"])
    p.add_argument("--optimizers", nargs="*", default=["hyperscout", "clearml"])
    p.add_argument("--in-flight", type=int, nargs="*", default=[1, 10, 100])
    p.add_argument("--window", type=float, default=12.0, help="seconds of steady state per requests/poll figure")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--json", default=str(Path(__file__).with_name("results.json")))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-clearml-"))
    results: dict[str, Any] = {"settings": vars(args), "studies": [], "polls": []}
    try:
        for strategy in args.strategies:
            for which in args.optimizers:
                row = full_study(work, which, strategy, args)
                results["studies"].append(row)
                print(f"{which:10} {strategy:7} {row['jobs']} jobs  wall {row['wall_s']:6.1f} s  "
                      f"{row['requests_per_job']:5.1f} requests/job  busy {row['busy_pct']:5.1f} %", flush=True)
        for strategy in args.strategies:
            for which in args.optimizers:
                for n in args.in_flight:
                    row = per_poll(work, which, strategy, n, args)
                    results["polls"].append(row)
                    print(f"{which:10} {strategy:7} {n:4} in flight  {row['requests_per_poll']:6.2f} requests/poll",
                          flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.json}")


if __name__ == "__main__":
    main()
