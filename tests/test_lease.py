"""A study is owned by one optimizer process at a time (issue: "two runs of one study at once")."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import read_store, run_cli, wait_for

from hyperscout import HyperParameterOptimizer, UniformParameterRange
from hyperscout.errors import StudyLockedError

GATED = """
import argparse, os, time
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
a = p.parse_args()
report_scalar("val", "loss", a.x, 1)
gate = os.environ["GATE"]
while not os.path.exists(gate):   # holds the job open until the test opens the gate
    time.sleep(0.01)
report_scalar("val", "loss", a.x, 2)
"""

STUDY = """
[study]
name = "twice"
storage = "store"
seed = 1
[task]
script = "train.py"
env = {{ GATE = "{gate}" }}
[objective]
title = "val"
series = "loss"
[strategy]
name = "random"
[limits]
total_max_jobs = 6
max_number_of_concurrent_tasks = 2
[[parameters]]
name = "x"
type = "UniformParameterRange"
min_value = 0.0
max_value = 1.0
"""


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "train.py").write_text(textwrap.dedent(GATED))
    gate = tmp_path / "gate"
    study = tmp_path / "study.toml"
    study.write_text(STUDY.format(gate=gate))
    return study, gate


def test_a_second_run_of_a_live_study_refuses_in_one_line(tmp_path: Path) -> None:
    study, gate = _setup(tmp_path)
    db = tmp_path / "store" / "hyperscout.sqlite"
    first = subprocess.Popen([sys.executable, "-m", "hyperscout.cli", "run", str(study)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(read_store(db, "SELECT id FROM jobs WHERE status='running'")) == 2, "two running jobs")
        second = run_cli("run", str(study))
        assert second.returncode == 2, second.stderr
        line = second.stderr.strip()
        assert "\n" not in line and "Traceback" not in line
        assert f"is being run by pid {first.pid}" in line and f"kill -INT {first.pid}" in line
        # readers never need the lease
        status = run_cli("status", "twice", "--storage", str(tmp_path / "store"))
        assert status.returncode == 0 and f"running by pid {first.pid}" in status.stdout
        gate.touch()
        _out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        gate.touch()
        if first.poll() is None:
            first.kill()
    rows = read_store(db, "SELECT number, params FROM jobs")
    assert len(rows) == 6 and len({r[0] for r in rows}) == 6 and len({r[1] for r in rows}) == 6
    # once the owner is gone the study is free again (here: nothing left to do)
    again = run_cli("run", str(study))
    assert again.returncode == 0, again.stderr
    assert len(read_store(db, "SELECT id FROM jobs")) == 6


def test_two_python_optimizers_on_one_study(tmp_path: Path) -> None:
    _study, gate = _setup(tmp_path)

    def make() -> HyperParameterOptimizer:
        from hyperscout import Command

        cmd = Command.for_script(tmp_path / "train.py", env={"GATE": str(gate)})
        return HyperParameterOptimizer(cmd, [UniformParameterRange("x", 0.0, 1.0)], "val", "loss", "min",
                                       max_number_of_concurrent_tasks=2, total_max_jobs=4, storage=tmp_path / "store",
                                       study_name="py", show_progress=False, seed=0)

    a = make()
    a.start()
    try:
        with pytest.raises(StudyLockedError, match="is being run by pid"):
            make().start()
    finally:
        gate.touch()
        a.wait()
    b = make()
    b.start()  # a is done: its lease was released
    b.wait()
    assert len(b.get_all_experiments()) == 4


def _owner(db: Path, name: str, host: str, pid: int, heartbeat: float) -> None:
    with sqlite3.connect(db) as c:
        c.execute("UPDATE studies SET owner=?, heartbeat=?, status='running' WHERE name=?",
                  (json.dumps({"pid": pid, "host": host, "token": "t0", "start": None}), heartbeat, name))


def test_takeover_from_a_dead_or_stale_owner_but_not_from_a_fresh_one(tmp_path: Path) -> None:
    study, gate = _setup(tmp_path)
    gate.touch()
    assert run_cli("run", str(study)).returncode == 0
    db = tmp_path / "store" / "hyperscout.sqlite"
    extra = study.read_text().replace("total_max_jobs = 6", "total_max_jobs = 7")
    study.write_text(extra)
    # a live owner on another host with a fresh heartbeat: refuse
    _owner(db, "twice", "some-other-host", 4242, time.time())
    refused = run_cli("run", str(study))
    assert refused.returncode == 2 and "pid 4242 on some-other-host" in refused.stderr
    # the same owner, silent for ten minutes: take over
    _owner(db, "twice", "some-other-host", 4242, time.time() - 600)
    taken = run_cli("run", str(study))
    assert taken.returncode == 0, taken.stderr
    assert len(read_store(db, "SELECT id FROM jobs")) == 7
    # a dead process on this host, even with a fresh heartbeat: take over at once
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    _owner(db, "twice", socket.gethostname(), dead.pid, time.time())
    study.write_text(extra.replace("total_max_jobs = 7", "total_max_jobs = 8"))
    assert run_cli("run", str(study)).returncode == 0
    assert len(read_store(db, "SELECT id FROM jobs")) == 8
    assert read_store(db, "SELECT owner FROM studies") == [(None,)]


def test_sigterm_ends_the_owner_cleanly_and_releases_the_lease(tmp_path: Path) -> None:
    study, gate = _setup(tmp_path)
    db = tmp_path / "store" / "hyperscout.sqlite"
    first = subprocess.Popen([sys.executable, "-m", "hyperscout.cli", "run", str(study)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(read_store(db, "SELECT id FROM jobs WHERE status='running'")) == 2, "two running jobs")
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert read_store(db, "SELECT owner FROM studies") == [(None,)]
    gate.touch()
    assert run_cli("run", str(study)).returncode == 0
