"""The embedded store: one SQLite file per project directory, in WAL mode.

It holds studies, jobs, parameters, full metric histories and events. Every change is committed
when it happens, so killing the optimizer (even ``kill -9``) loses no finished job; WAL lets the
CLI read (``hyperscout status``) while a study writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hyperscout.errors import StoreError
from hyperscout.job import Job, JobStatus, MetricPoint

__all__ = ["SCHEMA_VERSION", "STORE_FILENAME", "Store"]

SCHEMA_VERSION = 1
STORE_FILENAME = "hyperscout.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    end_reason TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    study TEXT NOT NULL REFERENCES studies(name),
    number INTEGER NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    budget REAL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    reason TEXT,
    stdout_path TEXT,
    stderr_path TEXT,
    pid INTEGER,
    retry_of TEXT,
    superseded_by TEXT,
    interrupted INTEGER NOT NULL DEFAULT 0,
    archived INTEGER NOT NULL DEFAULT 0,
    objective_values TEXT,
    objective_iterations TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_study ON jobs(study, number);
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    title TEXT NOT NULL,
    series TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    value REAL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_job ON metrics(job_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study TEXT NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    job_id TEXT,
    data TEXT
);
"""

_JOB_COLUMNS = (
    "id", "study", "number", "params", "status", "budget", "created", "started", "ended", "exit_code", "reason",
    "stdout_path", "stderr_path", "pid", "retry_of", "superseded_by", "interrupted", "archived",
    "objective_values", "objective_iterations",
)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _value(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v


class Store:
    """A connection to ``<directory>/hyperscout.sqlite`` (or an explicit ``.sqlite`` path)."""

    def __init__(self, location: str | Path) -> None:
        path = Path(location)
        if path.suffix not in (".sqlite", ".db", ".sqlite3"):
            path = path / STORE_FILENAME
        self.path = path
        self.directory = path.parent
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._lock = threading.RLock()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store {str(path)!r} cannot be opened ({exc}); point storage at another directory") from None

    # -- schema -------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            row = None
            try:
                row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            except sqlite3.OperationalError:
                pass
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"store {str(self.path)!r} has schema version {row[0]}, newer than this hyperscout "
                    f"({SCHEMA_VERSION}); upgrade hyperscout"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one transaction (the engine commits once per batch of events)."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._db.execute("COMMIT")  # keep what was recorded before the error
                raise
            self._db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- studies -------------------------------------------------------------------------------
    def get_study(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, definition, fingerprint, created, updated, status, end_reason FROM studies WHERE name=?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        keys = ("name", "definition", "fingerprint", "created", "updated", "status", "end_reason")
        out = dict(zip(keys, row))
        out["definition"] = json.loads(out["definition"])
        return out

    def create_study(self, name: str, definition: Mapping[str, Any], fingerprint: str) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO studies(name, definition, fingerprint, created, updated, status) VALUES (?,?,?,?,?,?)",
                (name, json.dumps(definition, default=str), fingerprint, now, now, "running"),
            )

    def set_study_status(self, name: str, status: str, end_reason: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE studies SET status=?, end_reason=?, updated=? WHERE name=?",
                (status, end_reason, time.time(), name),
            )

    def update_definition(self, name: str, definition: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE studies SET definition=?, updated=? WHERE name=?",
                (json.dumps(definition, default=str), time.time(), name),
            )

    def list_studies(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT s.name, s.status, s.end_reason, s.created, s.updated, "
                "COUNT(j.id), SUM(j.status='completed'), SUM(j.status='failed'), "
                "SUM(j.status IN ('running','pending')), SUM(j.status='pruned'), SUM(j.status='aborted') "
                "FROM studies s LEFT JOIN jobs j ON j.study=s.name GROUP BY s.name ORDER BY s.created"
            ).fetchall()
        keys = ("name", "status", "end_reason", "created", "updated", "jobs", "completed", "failed", "active",
                "pruned", "aborted")
        return [{k: (v or 0) if k in keys[5:] else v for k, v in zip(keys, r)} for r in rows]

    # -- jobs ----------------------------------------------------------------------------------
    def _job_row(self, job: Job) -> tuple[Any, ...]:
        return (
            job.id, job.study, job.number, json.dumps(job.params, default=str), str(job.status), job.budget,
            job.created, job.started, job.ended, job.exit_code, job.reason, job.stdout_path, job.stderr_path,
            job.pid, job.retry_of, job.superseded_by, int(job.interrupted), int(job.archived),
            _dumps(job.objective_values), _dumps(job.objective_iterations),
        )

    def save_job(self, job: Job) -> None:
        """Insert or replace the whole job row (not its metrics), committed at once."""
        marks = ",".join("?" * len(_JOB_COLUMNS))
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO jobs({','.join(_JOB_COLUMNS)}) VALUES ({marks})", self._job_row(job))

    def add_metric(self, job_id: str, point: MetricPoint) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO metrics(job_id, title, series, iteration, value, time) VALUES (?,?,?,?,?,?)",
                (job_id, point.title, point.series, point.iteration, _value(point.value), point.time),
            )

    def add_event(self, study: str, kind: str, job_id: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO events(study, time, kind, job_id, data) VALUES (?,?,?,?,?)",
                (study, time.time(), kind, job_id, _dumps(data)),
            )

    def events(self, study: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT time, kind, job_id, data FROM events WHERE study=? ORDER BY id", (study,)
            ).fetchall()
        return [{"time": t, "kind": k, "job_id": j, "data": json.loads(d) if d else None} for t, k, j, d in rows]

    def load_jobs(self, study: str, *, with_metrics: bool = True) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {','.join(_JOB_COLUMNS)} FROM jobs WHERE study=? ORDER BY number", (study,)
            ).fetchall()
            metrics: dict[str, list[MetricPoint]] = {}
            if with_metrics:
                for job_id, title, series, iteration, value, t in self._db.execute(
                    "SELECT m.job_id, m.title, m.series, m.iteration, m.value, m.time FROM metrics m "
                    "JOIN jobs j ON j.id=m.job_id WHERE j.study=? ORDER BY m.rowid",
                    (study,),
                ):
                    v = float("nan") if value is None else value
                    metrics.setdefault(job_id, []).append(MetricPoint(title, series, iteration, v, t))
        jobs = []
        for r in rows:
            d = dict(zip(_JOB_COLUMNS, r))
            jobs.append(
                Job(
                    id=d["id"], study=d["study"], number=d["number"], params=json.loads(d["params"]),
                    status=JobStatus(d["status"]), budget=d["budget"], created=d["created"], started=d["started"],
                    ended=d["ended"], exit_code=d["exit_code"], reason=d["reason"], stdout_path=d["stdout_path"],
                    stderr_path=d["stderr_path"], pid=d["pid"], retry_of=d["retry_of"],
                    superseded_by=d["superseded_by"], interrupted=bool(d["interrupted"]),
                    archived=bool(d["archived"]), metrics=metrics.get(d["id"], []),
                    objective_values=json.loads(d["objective_values"]) if d["objective_values"] else None,
                    objective_iterations=json.loads(d["objective_iterations"]) if d["objective_iterations"] else None,
                )
            )
        return jobs

    def set_archived(self, job_ids: Iterable[str], archived: bool) -> None:
        with self._lock:
            self._db.executemany("UPDATE jobs SET archived=? WHERE id=?", [(int(archived), j) for j in job_ids])
