"""SIGKILL the optimizer at many points of a study, right after launches included: no trial is left
running unsupervised, no configuration runs beside a copy of itself, and the study still finishes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import GUARD, read_store

from hyperscout_local.backend import find_marked

TRIAL = """
import argparse, fcntl, os, time
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--c", type=int)
a = p.parse_args()
marks = os.environ["MARKS"]
fd = os.open(os.path.join(marks, f"{a.c}.lock"), os.O_CREAT | os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # held until this process dies, however it dies
except BlockingIOError:
    open(os.path.join(marks, f"{a.c}.DUPLICATE"), "w").close()
    raise SystemExit(3)
open(os.path.join(marks, f"{a.c}.{os.getpid()}.start"), "w").close()
for i in range(1, 4):
    time.sleep(0.1)
    report_scalar("val", "loss", a.c + 1.0 / i, i)
"""

DRIVER = """
import json, os, signal, sys
from hyperscout import Command, HyperParameterOptimizer, UniformIntegerParameterRange, hookimpl
from hyperscout.plugins import get_plugin_manager

cfg = json.loads(sys.argv[1])

class Killer:
    seen = 0

    def _maybe(self):
        Killer.seen += 1
        if Killer.seen == cfg["at"]:
            os.kill(os.getpid(), signal.SIGKILL)   # no cleanup of any kind, like a power cut

for hook in ("hyperscout_job_launched", "hyperscout_job_started", "hyperscout_job_finished"):
    if cfg["hook"] == hook:
        setattr(Killer, hook, hookimpl(lambda self, study, job: self._maybe()))

pm = get_plugin_manager()
pm.register(Killer())
opt = HyperParameterOptimizer(
    Command.for_script(cfg["trial"], env={"MARKS": cfg["marks"]}), [UniformIntegerParameterRange("c", 0, 11)],
    "val", "loss", "min", optimizer_class="grid", max_number_of_concurrent_tasks=2, total_max_jobs=12,
    storage=cfg["storage"], study_name="crash", plugin_manager=pm, show_progress=False,
    backend_options={"prestart": cfg["prestart"]})
opt.start()
opt.wait()
"""


def test_sigkill_anywhere_leaves_no_orphan_and_no_duplicate(tmp_path: Path) -> None:
    trial = tmp_path / "trial.py"
    trial.write_text(textwrap.dedent(TRIAL))
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    marks = tmp_path / "marks"
    marks.mkdir()
    db = tmp_path / "store" / "hyperscout.sqlite"
    points = [("hyperscout_job_launched", 1, True), ("hyperscout_job_launched", 2, False),
              ("hyperscout_job_started", 1, True), ("hyperscout_job_launched", 3, True),
              ("hyperscout_job_finished", 1, False), ("hyperscout_job_launched", 1, False),
              ("hyperscout_job_started", 3, True), (None, 0, True)]
    killed = 0
    for hook, at, prestart in points:
        cfg = {"trial": str(trial), "marks": str(marks), "storage": str(tmp_path / "store"), "hook": hook,
               "at": at, "prestart": prestart}
        run = subprocess.run([sys.executable, str(driver), json.dumps(cfg)], capture_output=True, text=True,
                             timeout=GUARD)
        killed += run.returncode == -9
        assert run.returncode in (0, -9), run.stderr[-2000:]
    assert killed >= 6, "the study ended before the kill points were reached"
    ids = [r[0] for r in read_store(db, "SELECT id FROM jobs")]
    assert find_marked(ids) == {}, "a trial of the study is still running"
    assert not list(marks.glob("*.DUPLICATE")), "a configuration ran beside a copy of itself"
    rows = read_store(db, "SELECT params, status, superseded_by FROM jobs")
    results = [json.loads(p)["c"] for p, s, sup in rows if sup is None and s == "completed"]
    assert sorted(results) == list(range(12)), rows
    live = [r for r in rows if r[2] is None]
    assert len(live) == 12
    assert read_store(db, "SELECT owner FROM studies") == [(None,)]
