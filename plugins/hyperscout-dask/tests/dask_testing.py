"""Real Dask clusters on 127.0.0.1 for the tests, started the way users start them.

* ``shell_cluster`` (one per test session): ``dask scheduler --scheduler-file F`` plus two
  ``dask worker --scheduler-file F`` processes with nannies, 2 threads each; worker ``w-gpu``
  advertises ``GPU=1``. Tests that kill a worker kill the worker process, its nanny restarts it.
* ``fragile_cluster`` (one per module that asks for it): the same with
  ``allowed-failures = 0`` on the scheduler, so Dask gives up on a task at the first lost
  worker (``KilledWorker``) and the backend's own resubmission is what is tested.

Every wait is for a real condition (a file, a worker count), with a generous guard.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs

DASK = str(Path(sys.executable).with_name("dask"))
#: a guard against hangs, never a claim about speed
GUARD = 60.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = GUARD) -> object:
    """Re-check a real condition that sends no event (a file appears, a process ends)."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@attrs.define
class ShellCluster:
    scheduler_file: str
    scheduler: subprocess.Popen[bytes]
    nannies: list[subprocess.Popen[bytes]]
    logs: Path

    @property
    def address(self) -> str:
        return str(json.loads(Path(self.scheduler_file).read_text())["address"])

    def client(self):  # type: ignore[no-untyped-def]
        from distributed import Client

        return Client(scheduler_file=self.scheduler_file, timeout=30, set_as_default=False)

    def workers(self) -> dict[str, dict[str, object]]:
        """Worker address -> scheduler info (name, resources, nthreads)."""
        with self.client() as c:
            return dict(c.scheduler_info(n_workers=-1)["workers"])

    def wait_workers(self, n: int) -> None:
        wait_until(lambda: len(self.workers()) >= n, f"{n} workers")


def start_cluster(tmp: Path, *, env: dict[str, str] | None = None) -> ShellCluster:
    tmp.mkdir(parents=True, exist_ok=True)
    sf = tmp / "scheduler.json"
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    sched = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--dashboard-address",
         "127.0.0.1:0", "--scheduler-file", str(sf)],  # --no-dashboard alone still serves HTTP on every interface
        env=full_env, stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "wb"),
    )
    wait_until(lambda: sf.exists() and sf.stat().st_size > 0, "the scheduler file")
    nannies = []
    for name, extra in (("w-cpu", []), ("w-gpu", ["--resources", "GPU=1"])):
        nannies.append(subprocess.Popen(
            [DASK, "worker", "--scheduler-file", str(sf), "--host", "127.0.0.1", "--no-dashboard",
             "--dashboard-address", "127.0.0.1:0", "--nthreads", "2", "--name", name, "--death-timeout", "30", *extra],
            env=full_env, stdout=subprocess.DEVNULL, stderr=open(logs / f"{name}.log", "wb"),
        ))
    cluster = ShellCluster(str(sf), sched, nannies, logs)
    cluster.wait_workers(2)
    return cluster


def stop_cluster(cluster: ShellCluster) -> None:
    for proc in [*cluster.nannies, cluster.scheduler]:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in [*cluster.nannies, cluster.scheduler]:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Listed:
    """A strategy class suggesting the given values of ``x`` in order, then EXHAUSTED (no plugin needed)."""

    @staticmethod
    def of(values: list[float]) -> type:
        from hyperscout.strategy import EXHAUSTED, SearchStrategy, Suggestion

        class ListedStrategy(SearchStrategy):
            name = "listed"
            learns_from_results = False

            def __init__(self, space, objectives, settings) -> None:  # type: ignore[no-untyped-def]
                super().__init__(space, objectives, settings)
                self.todo = list(values)

            def ask(self, trial_id: str):  # type: ignore[no-untyped-def]
                return Suggestion({"x": self.todo.pop(0)}) if self.todo else EXHAUSTED

            def tell(self, trial_id: str, result: object) -> None:
                pass

        return ListedStrategy
