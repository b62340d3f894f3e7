"""A damaged, empty, read-only or full store: one line naming the file and the fix, exit 2, nothing lost."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import read_store, run_cli

from hyperscout.job import Job, JobStatus, MetricPoint
from hyperscout.store import Store

TRAIN = """
import argparse
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
a = p.parse_args()
for i in range(1, 200):
    report_scalar("val", "loss", a.x + 1.0 / i, i)
"""

STUDY = """
[study]
name = "s"
storage = "store"
[task]
script = "train.py"
[objective]
title = "val"
series = "loss"
[strategy]
name = "grid"
[limits]
total_max_jobs = {jobs}
max_number_of_concurrent_tasks = 1
[[parameters]]
name = "x"
type = "UniformParameterRange"
min_value = 0.0
max_value = 1.0
step_size = 0.01
"""


def _project(root: Path, jobs: int = 3) -> Path:
    (root / "train.py").write_text(textwrap.dedent(TRAIN))
    (root / "study.toml").write_text(STUDY.format(jobs=jobs))
    return root / "study.toml"


def _one_line_exit_2(out, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_a_damaged_store_is_one_line_everywhere(tmp_path: Path) -> None:
    study = _project(tmp_path, jobs=8)
    assert run_cli("run", str(study)).returncode == 0
    db = tmp_path / "store" / "hyperscout.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with open(db, "r+b") as fh:  # a few KiB of garbage in the middle
        fh.seek(size // 2)
        fh.write(os.urandom(8192))
    store = str(tmp_path / "store")
    for args in (("export", "s", "--storage", store), ("run", str(study))):  # both read every page
        _one_line_exit_2(run_cli(*args), str(db), "is damaged", "hyperscout backup")
    target = tmp_path / "jobs.json"
    _one_line_exit_2(run_cli("export", "s", "-o", str(target), "--storage", store), str(db), "is damaged",
                     "hyperscout backup")
    assert not target.exists() and not list(tmp_path.glob("*.partial"))  # never half an export
    for args in (("status", "s", "--storage", store), ("top", "s", "--storage", store), ("status", "--storage", store)):
        out = run_cli(*args)  # a reader that never touches the damaged pages may work; never a traceback
        if out.returncode != 0:
            _one_line_exit_2(out, str(db), "is damaged", "hyperscout backup")


def test_an_empty_store_file_is_not_taken_for_a_new_store(tmp_path: Path) -> None:
    study = _project(tmp_path)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "hyperscout.sqlite").write_bytes(b"")
    _one_line_exit_2(run_cli("run", str(study)), "empty file (0 bytes)")
    _one_line_exit_2(run_cli("status", "--storage", str(tmp_path / "store")), "empty file (0 bytes)")
    assert (tmp_path / "store" / "hyperscout.sqlite").stat().st_size == 0


def test_backup_while_readable_and_usable_as_a_store(tmp_path: Path) -> None:
    study = _project(tmp_path, jobs=4)
    assert run_cli("run", str(study)).returncode == 0
    out = run_cli("backup", "s", "-o", str(tmp_path / "b.sqlite"), "--storage", str(tmp_path / "store"))
    assert out.returncode == 0, out.stderr
    top = run_cli("top", "s", "-k", "10", "--storage", str(tmp_path / "b.sqlite"))
    assert top.returncode == 0 and len(top.stdout.strip().splitlines()) == 2 + 4
    _one_line_exit_2(run_cli("backup", "nope", "-o", str(tmp_path / "c.sqlite"), "--storage", str(tmp_path / "store")),
                     "no study 'nope'")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp dirs are private to their owner)."""
    d = Path(tempfile.mkdtemp(prefix="hs-ro-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _cli_as_other_user(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in a forked child that is not root (root may write any file, so read-only means
    nothing to it); the child has everything imported already, so it needs no access to the venv."""
    import hyperscout.cli
    import hyperscout.config
    import hyperscout.optimizer
    from hyperscout.plugins import backends, get_plugin_manager, strategies

    pm = get_plugin_manager()  # imports every plugin and what reading their metadata needs
    strategies(pm), backends(pm)

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            import sys

            sys.stdout = os.fdopen(1, "w", closefd=False)
            sys.stderr = os.fdopen(2, "w", closefd=False)
            code = hyperscout.cli.main(list(argv))
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r) as o, os.fdopen(err_r) as e:
        out, err = o.read(), e.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out, err


def test_a_read_only_store_is_readable_and_running_it_says_read_only(shared_dir: Path) -> None:
    study = _project(shared_dir, jobs=2)
    assert run_cli("run", str(study)).returncode == 0
    store = shared_dir / "store"
    for p in [store / "hyperscout.sqlite", *store.glob("hyperscout.sqlite-*")]:
        p.chmod(0o444)
    for p in (store, shared_dir):
        p.chmod(0o555)
    try:
        code, out, err = _cli_as_other_user("status", "s", "--storage", str(store))
        assert code == 0, err
        assert "completed" in out
        code, out, err = _cli_as_other_user("run", str(study))
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert "is read-only" in err and str(store / "hyperscout.sqlite") in err
    finally:
        for p in (store, shared_dir):
            p.chmod(0o755)


def test_a_full_disk_ends_the_run_in_one_line_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    study = _project(tmp_path, jobs=2)
    assert run_cli("run", str(study)).returncode == 0
    study.write_text(STUDY.format(jobs=60))
    db = tmp_path / "store" / "hyperscout.sqlite"
    limit = db.stat().st_size + 64 * 1024  # a disk with room for a few more jobs only

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = run_cli("run", str(study), preexec_fn=small_disk)
    _one_line_exit_2(out, "disk is full", "run again to resume")
    rows = read_store(db, "SELECT status FROM jobs")
    assert len([r for r in rows if r[0] == "completed"]) >= 2
    s = Store(db, readonly=True)
    assert s.get_study("s") is not None


def test_the_store_upgrades_a_version_1_file_keeping_its_jobs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.create_study("old", {"objectives": [{"title": "v", "series": "l", "sign": "min"}]}, "fp")
    store.save_job(Job("j", "old", 0, {"x": 1}, status=JobStatus.COMPLETED, objective_values=[1.0]))
    store.add_metric("j", MetricPoint("v", "l", 1, 1.0))
    store.close()
    with sqlite3.connect(tmp_path / "hyperscout.sqlite") as c:  # rebuild it as version 1 had it
        c.execute("DROP INDEX metrics_point")
        c.execute("ALTER TABLE metrics DROP COLUMN after_stop")
        c.execute("ALTER TABLE jobs DROP COLUMN handle")
        c.execute("ALTER TABLE jobs DROP COLUMN queued")
        c.execute("ALTER TABLE studies DROP COLUMN owner")
        c.execute("ALTER TABLE studies DROP COLUMN heartbeat")
        c.execute("INSERT INTO metrics(job_id, title, series, iteration, value, time) VALUES ('j','v','l',1,2.0,0)")
        c.execute("UPDATE meta SET value='1'")
    again = Store(tmp_path)
    (job,) = again.load_jobs("old")
    assert job.objective_values == [1.0] and [m.value for m in job.metrics] == [2.0]
    assert again.schema_version == 2
