"""The embedded store: one SQLite file per project directory, in WAL mode.

It holds studies (with their owner, see :mod:`hyperscout.lease`), jobs, parameters, full metric
histories (one row per job, title, series and iteration) and events. The engine commits once per
batch of events, and commits a job's row *before* its backend starts it, so killing the optimizer
(even ``kill -9``) loses no finished job and leaves no job that a resume cannot find. WAL lets
readers (``hyperscout status``, a dashboard) read while a study writes; they open the file
read-only and never need the study's lease.

Every SQLite failure becomes a one-line :class:`StoreError` naming the file and what to do
(damaged file, zero-length file, full disk, read-only file), never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from hyperscout.errors import StoreError, StudyLockedError
from hyperscout.job import Job, JobStatus, MetricPoint
from hyperscout.lease import Owner

__all__ = ["SCHEMA_VERSION", "STORE_FILENAME", "Store", "json_safe", "store_file"]

SCHEMA_VERSION = 2
F = TypeVar("F", bound=Callable[..., Any])
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
    end_reason TEXT,
    owner TEXT,
    heartbeat REAL
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
    objective_iterations TEXT,
    handle TEXT,
    queued REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_study ON jobs(study, number);
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    title TEXT NOT NULL,
    series TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    value REAL,
    time REAL NOT NULL,
    after_stop INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS metrics_point ON metrics(job_id, title, series, iteration);
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
    "objective_values", "objective_iterations", "handle", "queued",
)

#: the job columns an export streams (:meth:`Store.export_rows`)
EXPORT_COLUMNS = (
    "id", "number", "status", "objective_values", "objective_iterations", "params", "started", "ended",
    "exit_code", "reason", "budget", "stdout_path", "stderr_path", "retry_of", "superseded_by", "interrupted",
    "handle",
)

#: v1 -> v2: study owner and heartbeat, job handle and queue time, one metric row per point
_MIGRATE_1_2 = """
ALTER TABLE studies ADD COLUMN owner TEXT;
ALTER TABLE studies ADD COLUMN heartbeat REAL;
ALTER TABLE jobs ADD COLUMN handle TEXT;
ALTER TABLE jobs ADD COLUMN queued REAL;
ALTER TABLE metrics ADD COLUMN after_stop INTEGER NOT NULL DEFAULT 0;
DELETE FROM metrics WHERE rowid NOT IN (SELECT MAX(rowid) FROM metrics GROUP BY job_id, title, series, iteration);
DROP INDEX IF EXISTS metrics_by_job;
"""


def store_file(location: str | Path) -> Path:
    """The SQLite file a ``storage`` value names: a directory (``DIR/hyperscout.sqlite``) or a file."""
    path = Path(location)
    return path if path.suffix in (".sqlite", ".db", ".sqlite3") else path / STORE_FILENAME


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None``: exports are strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _explain(path: Path, exc: BaseException) -> StoreError:
    """One line for an SQLite failure: what happened to which file, and what to do."""
    msg = str(exc)
    low = msg.lower()
    where = str(path)
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return StoreError(
            f"store {where!r} is damaged ({msg}); restore it from a backup (`hyperscout backup STUDY -o FILE` "
            "writes one) or move it aside to start a new store"
        )
    if "disk is full" in low or "disk i/o error" in low:
        return StoreError(f"store {where!r}: the disk is full ({msg}); free space, then run again to resume")
    if "readonly" in low or "read-only" in low or "attempt to write" in low:
        return StoreError(
            f"store {where!r} is read-only ({msg}); make the file and its directory writable, "
            "or point storage at a writable directory"
        )
    if "locked" in low or "busy" in low:
        return StoreError(f"store {where!r} is locked by another process ({msg}); try again in a moment")
    return StoreError(f"store {where!r} cannot be used ({msg}); point storage at another directory")


def _guarded(fn: F) -> F:
    """Turn any SQLite error raised by a store method into a one-line StoreError."""

    @functools.wraps(fn)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from None

    return wrapper  # type: ignore[return-value]


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _value(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v


class Store:
    """A connection to ``<directory>/hyperscout.sqlite`` (or an explicit ``.sqlite`` path).

    ``readonly=True`` is for readers: the file must exist, nothing is created or migrated, and a
    file the user may not write is still readable.
    """

    def __init__(self, location: str | Path, *, readonly: bool = False) -> None:
        path = store_file(location)
        self.path = path
        self.directory = path.parent
        self.readonly = readonly
        self.closed = False
        self._lock = threading.RLock()
        self._batching = False
        if path.exists() and path.is_file() and path.stat().st_size == 0:
            raise StoreError(
                f"store {str(path)!r} is an empty file (0 bytes), not a hyperscout store; restore it from a "
                "backup, or delete it to start a new store"
            )
        if readonly and not path.is_file():
            raise StoreError(f"no store at {str(path)!r}; run a study first or pass --storage DIR")
        try:
            if readonly:
                writable = os.access(path, os.W_OK) and os.access(self.directory, os.W_OK)
                mode = "ro" if writable else "ro&immutable=1"
                self._db = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, check_same_thread=False,
                                           timeout=30.0, isolation_level=None)
                self._check_version(self._read_version())
                self._db.execute("SELECT COUNT(*) FROM studies").fetchone()
                return
            if (not os.access(self.directory, os.W_OK) and self.directory.exists()) or (
                path.exists() and not os.access(path, os.W_OK)
            ):
                raise StoreError(
                    f"store {str(path)!r} is read-only; make the file and its directory writable, or point "
                    "storage at a writable directory (readers such as `hyperscout status` work as they are)"
                )
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise _explain(path, exc) from None
        except OSError as exc:
            raise StoreError(f"store {str(path)!r} cannot be created ({exc.strerror}); point storage elsewhere") from None

    # -- schema -------------------------------------------------------------------------------
    def _read_version(self) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return None if row is None else int(row[0])

    def _check_version(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"store {str(self.path)!r} has schema version {version}, newer than this hyperscout "
                f"({SCHEMA_VERSION}); upgrade hyperscout"
            )

    def _migrate(self) -> None:
        with self._lock:
            version = self._read_version()
            self._check_version(version)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if version == 1:
                    for stmt in _MIGRATE_1_2.split(";"):
                        if stmt.strip():
                            self._db.execute(stmt)
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                self._db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one transaction (the engine commits once per batch of events).

        The transaction starts at the first write, so a batch that writes nothing costs nothing.
        """
        with self._lock:
            if self._batching:
                yield
                return
            self._batching = True
            try:
                yield
            except BaseException:
                self._batching = False
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("COMMIT")  # keep what was recorded before the error
                raise
            self._batching = False
            if self._db.in_transaction:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    raise _explain(self.path, exc) from None

    def _begin(self) -> None:
        """Called (under the lock) before every write: opens the batch's transaction on its first write."""
        if self._batching and not self._db.in_transaction:
            self._db.execute("BEGIN")

    @_guarded
    def commit_now(self) -> None:
        """Make everything written so far durable, even inside :meth:`batch` (which goes on).

        The engine calls it after writing a job's row and before its backend starts it: the intent
        to run is on disk before the process exists.
        """
        with self._lock:
            if self._db.in_transaction:
                self._db.execute("COMMIT")  # the batch's next write opens a new transaction

    @property
    @_guarded
    def schema_version(self) -> int:
        return int(self._read_version() or 0)

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self.closed = True
            self._db.close()

    # -- studies and their owner -----------------------------------------------------------------
    _STUDY_KEYS = ("name", "definition", "fingerprint", "created", "updated", "status", "end_reason", "owner",
                   "heartbeat")

    def _study_row(self, row: tuple[Any, ...] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out = dict(zip(self._STUDY_KEYS, row))
        out["definition"] = json.loads(out["definition"])
        out["owner"] = Owner.from_dict(json.loads(out["owner"])) if out["owner"] else None
        return out

    @_guarded
    def get_study(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(f"SELECT {','.join(self._STUDY_KEYS)} FROM studies WHERE name=?", (name,)).fetchone()
        return self._study_row(row)

    @_guarded
    def create_study(self, name: str, definition: Mapping[str, Any], fingerprint: str) -> None:
        now = time.time()
        with self._lock:
            self._begin()
            self._db.execute(
                "INSERT INTO studies(name, definition, fingerprint, created, updated, status) VALUES (?,?,?,?,?,?)",
                (name, json.dumps(definition, default=str), fingerprint, now, now, "running"),
            )

    @_guarded
    def claim_study(
        self,
        name: str,
        owner: Owner,
        *,
        stale_after: float,
        check: Callable[[dict[str, Any] | None], None] = lambda _row: None,
        create: tuple[Mapping[str, Any], str] | None = None,
    ) -> dict[str, Any] | None:
        """Take ownership of study ``name`` in one transaction; return the study as it was (None if new).

        ``check(row)`` may raise to refuse (a different definition). A live owner whose heartbeat
        is fresh makes it raise :class:`StudyLockedError`; a dead or stale one is replaced.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._study_row(self._db.execute(
                    f"SELECT {','.join(self._STUDY_KEYS)} FROM studies WHERE name=?", (name,)).fetchone())
                check(row)
                now = time.time()
                if row is None:
                    if create is None:
                        raise StoreError(f"no study {name!r} in {self.path}")
                    definition, fingerprint = create
                    self._db.execute(
                        "INSERT INTO studies(name, definition, fingerprint, created, updated, status, owner, heartbeat)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        (name, json.dumps(definition, default=str), fingerprint, now, now, "running",
                         json.dumps(owner.to_dict()), now),
                    )
                else:
                    held: Owner | None = row["owner"]
                    if held is not None and held.token != owner.token:
                        age = now - (row["heartbeat"] or 0.0)
                        alive = held.alive()
                        if alive is not False and age < stale_after:
                            raise StudyLockedError(
                                f"study {name!r} in {self.path} is being run by {held.describe()} (heartbeat "
                                f"{max(age, 0.0):.0f} s ago); wait for it, stop it with `kill -INT {held.pid}` on "
                                f"{held.host}, or give this run another study name"
                            )
                    self._db.execute(
                        "UPDATE studies SET owner=?, heartbeat=?, status='running', end_reason=NULL, updated=? "
                        "WHERE name=?",
                        (json.dumps(owner.to_dict()), now, now, name),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return row

    @_guarded
    def heartbeat(self, name: str, owner: Owner) -> bool:
        """Refresh the owner's heartbeat; False if the study is no longer ours (taken over)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE studies SET heartbeat=? WHERE name=? AND instr(owner, ?) > 0",
                (time.time(), name, owner.token),
            )
            return cur.rowcount == 1

    @_guarded
    def release_study(self, name: str, owner: Owner, status: str, end_reason: str | None) -> None:
        """Record how the study ended and give up ownership (only if we still own it)."""
        with self._lock:
            self._begin()
            self._db.execute(
                "UPDATE studies SET status=?, end_reason=?, updated=?, owner=NULL, heartbeat=NULL "
                "WHERE name=? AND (owner IS NULL OR instr(owner, ?) > 0)",
                (status, end_reason, time.time(), name, owner.token),
            )

    @_guarded
    def set_study_status(self, name: str, status: str, end_reason: str | None = None) -> None:
        with self._lock:
            self._begin()
            self._db.execute(
                "UPDATE studies SET status=?, end_reason=?, updated=? WHERE name=?",
                (status, end_reason, time.time(), name),
            )

    @_guarded
    def update_definition(self, name: str, definition: Mapping[str, Any]) -> None:
        with self._lock:
            self._begin()
            self._db.execute(
                "UPDATE studies SET definition=?, updated=? WHERE name=?",
                (json.dumps(definition, default=str), time.time(), name),
            )

    @_guarded
    def list_studies(self) -> list[dict[str, Any]]:
        """Every study with job counts; ``state`` is running / ended / interrupted (from the owner)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.name, s.status, s.end_reason, s.created, s.updated, s.owner, s.heartbeat, "
                "COUNT(j.id), SUM(j.status='completed'), SUM(j.status='failed'), "
                "SUM(j.status IN ('running','pending')), SUM(j.status='pruned'), SUM(j.status='aborted') "
                "FROM studies s LEFT JOIN jobs j ON j.study=s.name AND j.superseded_by IS NULL "
                "GROUP BY s.name ORDER BY s.created"
            ).fetchall()
        keys = ("name", "status", "end_reason", "created", "updated", "owner", "heartbeat", "jobs", "completed",
                "failed", "active", "pruned", "aborted")
        out = []
        for r in rows:
            d = {k: (v or 0) if i >= 7 else v for i, (k, v) in enumerate(zip(keys, r))}
            owner = Owner.from_dict(json.loads(d["owner"])) if d["owner"] else None
            d["owner"] = owner
            d["state"] = self.state_of(d["status"], owner, d["heartbeat"])
            out.append(d)
        return out

    @staticmethod
    def state_of(status: str, owner: Owner | None, heartbeat: float | None, stale_after: float = 60.0) -> str:
        """``running`` (a live owner), ``interrupted`` (its owner died mid-run) or ``ended``."""
        if owner is None:
            return "ended" if status != "running" else "interrupted"
        alive = owner.alive()
        if alive is False or (alive is None and time.time() - (heartbeat or 0.0) > stale_after):
            return "interrupted"
        return "running"

    # -- jobs ----------------------------------------------------------------------------------
    def _job_row(self, job: Job) -> tuple[Any, ...]:
        return (
            job.id, job.study, job.number, json.dumps(job.params, default=str), str(job.status), job.budget,
            job.created, job.started, job.ended, job.exit_code, job.reason, job.stdout_path, job.stderr_path,
            job.pid, job.retry_of, job.superseded_by, int(job.interrupted), int(job.archived),
            _dumps(job.objective_values), _dumps(job.objective_iterations), job.handle, job.queued,
        )

    @_guarded
    def save_job(self, job: Job) -> None:
        """Insert or replace the whole job row (not its metrics)."""
        marks = ",".join("?" * len(_JOB_COLUMNS))
        with self._lock:
            self._begin()
            self._db.execute(f"INSERT OR REPLACE INTO jobs({','.join(_JOB_COLUMNS)}) VALUES ({marks})", self._job_row(job))

    @_guarded
    def set_handle(self, job_id: str, handle: str) -> None:
        """Record a backend's handle for a job and make it durable at once."""
        with self._lock:
            self._begin()
            self._db.execute("UPDATE jobs SET handle=? WHERE id=?", (handle, job_id))
        self.commit_now()

    @_guarded
    def add_metric(self, job_id: str, point: MetricPoint) -> None:
        """One row per (job, title, series, iteration): a repeated point replaces the earlier one."""
        with self._lock:
            self._begin()
            self._db.execute(
                "INSERT INTO metrics(job_id, title, series, iteration, value, time, after_stop) VALUES (?,?,?,?,?,?,?)"
                " ON CONFLICT(job_id, title, series, iteration) DO UPDATE SET value=excluded.value, "
                "time=excluded.time, after_stop=excluded.after_stop",
                (job_id, point.title, point.series, point.iteration, _value(point.value), point.time,
                 int(point.after_stop)),
            )

    @_guarded
    def add_event(self, study: str, kind: str, job_id: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._begin()
            self._db.execute(
                "INSERT INTO events(study, time, kind, job_id, data) VALUES (?,?,?,?,?)",
                (study, time.time(), kind, job_id, _dumps(data)),
            )

    @_guarded
    def events(self, study: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT time, kind, job_id, data FROM events WHERE study=? ORDER BY id", (study,)
            ).fetchall()
        return [{"time": t, "kind": k, "job_id": j, "data": json.loads(d) if d else None} for t, k, j, d in rows]

    @_guarded
    def load_jobs(self, study: str, *, with_metrics: bool = True) -> list[Job]:
        jobs = self._load_rows(study)
        if with_metrics:
            histories = self.load_metrics_of_study(study)
            for job in jobs:
                job.metrics = histories.get(job.id, [])
        return jobs

    def load_metrics_of_study(self, study: str) -> dict[str, list[MetricPoint]]:
        metrics: dict[str, list[MetricPoint]] = {}
        with self._lock:
            for job_id, title, series, iteration, value, t, after in self._db.execute(
                "SELECT m.job_id, m.title, m.series, m.iteration, m.value, m.time, m.after_stop FROM metrics m "
                "JOIN jobs j ON j.id=m.job_id WHERE j.study=? ORDER BY m.rowid",
                (study,),
            ):
                v = float("nan") if value is None else value
                metrics.setdefault(job_id, []).append(MetricPoint(title, series, iteration, v, t, bool(after)))
        return metrics

    def _load_rows(self, study: str, ids: list[str] | None = None, last: int | None = None) -> list[Job]:
        sql = f"SELECT {','.join(_JOB_COLUMNS)} FROM jobs WHERE study=?"
        args: list[Any] = [study]
        if ids is not None:
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            args += ids
        with self._lock:
            if last is not None:
                rows = self._db.execute(sql + " ORDER BY number DESC LIMIT ?", [*args, last]).fetchall()[::-1]
            else:
                rows = self._db.execute(sql + " ORDER BY number", args).fetchall()
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
                    archived=bool(d["archived"]), metrics=[],
                    objective_values=json.loads(d["objective_values"]) if d["objective_values"] else None,
                    objective_iterations=json.loads(d["objective_iterations"]) if d["objective_iterations"] else None,
                    handle=d["handle"], queued=d["queued"],
                )
            )
        return jobs

    @_guarded
    def top_single(self, study: str, maximize: bool, k: int) -> list[Job]:
        """The ``k`` best ranked jobs of a one-objective study, ordered in SQL as :func:`ranked_jobs`
        orders them (value, then earlier end, then number), with their histories."""
        order = "DESC" if maximize else "ASC"
        value = "CAST(substr(objective_values, 2, length(objective_values) - 2) AS REAL)"
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                f"SELECT id FROM jobs WHERE study=? AND status='completed' AND superseded_by IS NULL "
                f"AND objective_values IS NOT NULL ORDER BY {value} {order}, COALESCE(ended, 0), number LIMIT ?",
                (study, k),
            )]
        if not ids:
            return []
        by_id = {j.id: j for j in self._load_rows(study, ids)}
        histories = self.load_metrics(ids)
        out = [by_id[i] for i in ids]
        for job in out:
            job.metrics = histories[job.id]
        return out

    @_guarded
    def load_metrics(self, job_ids: Iterable[str]) -> dict[str, list[MetricPoint]]:
        """The metric histories of some jobs only (the top k of a large study)."""
        ids = list(job_ids)
        out: dict[str, list[MetricPoint]] = {j: [] for j in ids}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for job_id, title, series, iteration, value, t, after in self._db.execute(
                    f"SELECT job_id, title, series, iteration, value, time, after_stop FROM metrics "
                    f"WHERE job_id IN ({marks}) ORDER BY rowid", chunk,
                ):
                    v = float("nan") if value is None else value
                    out[job_id].append(MetricPoint(title, series, iteration, v, t, bool(after)))
        return out

    @_guarded
    def metric_keys(self, study: str) -> list[str]:
        """Every ``title/series`` any job of ``study`` reported (for "the objective never arrived")."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT m.title, m.series FROM metrics m JOIN jobs j ON j.id=m.job_id WHERE j.study=?",
                (study,),
            ).fetchall()
        return sorted(f"{t}/{s}" for t, s in rows)

    @_guarded
    def job_counts(self, study: str) -> dict[str, int]:
        """Jobs per status (re-run jobs under ``superseded``, apart from their status), counted in SQL."""
        out = {s.value: 0 for s in JobStatus}
        out["superseded"] = 0
        with self._lock:
            rows = self._db.execute(
                "SELECT CASE WHEN superseded_by IS NULL THEN status ELSE 'superseded' END, COUNT(*) FROM jobs "
                "WHERE study=? GROUP BY 1", (study,),
            ).fetchall()
        out.update({k: n for k, n in rows})
        return out

    @_guarded
    def last_jobs(self, study: str, limit: int) -> list[Job]:
        """The ``limit`` most recent jobs (highest numbers), in number order, without histories."""
        return self._load_rows(study, last=limit)

    def export_rows(self, study: str, chunk: int = 1000, metrics: bool = True, numbers: tuple[int, int] | None = None
                    ) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
        """Stream every job of ``study`` in number order as ``(row, metric rows)``, ``chunk`` jobs per
        read, so an export of any size holds one chunk in memory.

        ``row`` has the columns of ``EXPORT_COLUMNS``; metric rows are ``(job id, title, series,
        iteration, value, after_stop)`` in the order they were reported (a replay depends on it).
        ``numbers = (lo, hi)``: only the jobs numbered ``lo <= n < hi``.
        """
        for rows, points in self._export_chunks(study, chunk, metrics, numbers):
            for r in rows:
                yield r, points[r[0]]

    def _export_chunks(self, study: str, chunk: int, metrics: bool, numbers: tuple[int, int] | None
                       ) -> Iterator[tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]]:
        cols = ",".join(EXPORT_COLUMNS)
        where, args = ("", (study,)) if numbers is None else (" AND number >= ? AND number < ?", (study, *numbers))
        try:
            with self._lock:
                cursor = self._db.execute(f"SELECT {cols} FROM jobs WHERE study=?{where} ORDER BY number", args)
            while True:
                with self._lock:
                    rows = cursor.fetchmany(chunk)
                    if not rows:
                        return
                    points: dict[str, list[tuple[Any, ...]]] = {r[0]: [] for r in rows}
                    if metrics:
                        for point in self._db.execute(
                            f"SELECT job_id, title, series, iteration, value, after_stop FROM metrics "
                            f"WHERE job_id IN ({','.join('?' * len(rows))}) ORDER BY rowid", list(points),
                        ):
                            points[point[0]].append(point)
                yield rows, points
        except sqlite3.Error as exc:  # a generator: _guarded would only cover its creation
            raise _explain(self.path, exc) from None

    @_guarded
    def middle_number(self, study: str) -> tuple[int, int]:
        """``(jobs, the number that splits them in two halves)`` (for an export in two processes)."""
        with self._lock:
            total = self._db.execute("SELECT COUNT(*) FROM jobs WHERE study=?", (study,)).fetchone()[0]
            row = self._db.execute("SELECT number FROM jobs WHERE study=? ORDER BY number LIMIT 1 OFFSET ?",
                                   (study, total // 2)).fetchone()
        return total, (row[0] if row else 0)

    @_guarded
    def ranked_numbers(self, study: str, maximize: bool) -> list[int]:
        """The job numbers of a one-objective study's ranked jobs, best first, ordered in SQL as
        :func:`hyperscout.ranked_jobs` orders them (value, then earlier end, then number)."""
        value = "CAST(substr(objective_values, 2, length(objective_values) - 2) AS REAL)"
        with self._lock:
            return [r[0] for r in self._db.execute(
                f"SELECT number FROM jobs WHERE study=? AND status='completed' AND superseded_by IS NULL "
                f"AND objective_values IS NOT NULL ORDER BY {value} {'DESC' if maximize else 'ASC'}, "
                "COALESCE(ended, 0), number", (study,),
            )]

    @_guarded
    def param_names(self, study: str) -> list[str]:
        """Every parameter name any job of ``study`` has (the columns of a CSV export)."""
        with self._lock:
            names = {r[0] for r in self._db.execute(
                "SELECT DISTINCT p.key FROM jobs j, json_each(j.params) p WHERE j.study=? AND json_valid(j.params)",
                (study,),
            )}
            for (text,) in self._db.execute(  # NaN or Infinity in a value: Python's JSON, not SQLite's
                "SELECT params FROM jobs WHERE study=? AND NOT json_valid(params)", (study,)
            ):
                names.update(json.loads(text))
        return sorted(names)

    @_guarded
    def ranking_rows(self, study: str) -> list[tuple[int, list[float], float | None]]:
        """``(number, objective values, ended)`` of the ranked jobs (for ranking several objectives)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT number, objective_values, ended FROM jobs WHERE study=? AND status='completed' "
                "AND superseded_by IS NULL AND objective_values IS NOT NULL", (study,),
            ).fetchall()
        return [(n, json.loads(v), e) for n, v, e in rows]

    @_guarded
    def set_archived(self, job_ids: Iterable[str], archived: bool) -> None:
        with self._lock:
            self._begin()
            self._db.executemany("UPDATE jobs SET archived=? WHERE id=?", [(int(archived), j) for j in job_ids])

    # -- backup ----------------------------------------------------------------------------------
    @_guarded
    def backup(self, destination: str | Path, study: str | None = None) -> Path:
        """Copy the store with SQLite's online backup (safe while a study runs); keep only ``study`` if given."""
        dest = Path(destination)
        if dest.exists():
            raise StoreError(f"{str(dest)!r} already exists; choose a new file for the backup")
        if study is not None and self.get_study(study) is None:
            names = ", ".join(s["name"] for s in self.list_studies()) or "none"
            raise StoreError(f"no study {study!r} in {self.path}; studies there: {names}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(str(dest), isolation_level=None)
        try:
            with self._lock:
                self._db.backup(target)
            if study is not None:
                target.execute("BEGIN")
                target.execute("DELETE FROM metrics WHERE job_id IN (SELECT id FROM jobs WHERE study<>?)", (study,))
                target.execute("DELETE FROM jobs WHERE study<>?", (study,))
                target.execute("DELETE FROM events WHERE study<>?", (study,))
                target.execute("DELETE FROM studies WHERE name<>?", (study,))
                target.execute("COMMIT")
            target.execute("UPDATE studies SET owner=NULL, heartbeat=NULL")
            target.execute("VACUUM")
            check = target.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            target.close()
        if check != "ok":
            raise StoreError(f"the backup {str(dest)!r} failed its integrity check ({check}); the store itself may be "
                             "damaged")
        return dest
