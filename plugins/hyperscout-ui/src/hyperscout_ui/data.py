"""The read model of the dashboard: what the pages and the report show, and what changed since a cursor.

The store has no change feed, so changes are found by rowid: the engine saves a job with
``INSERT OR REPLACE``, which gives the row a new, larger rowid every time, metric points are
appended (a repeated point keeps its rowid and is not re-sent), and events have an increasing id.
A cursor ``"JOBS:METRICS:EVENTS"`` therefore names everything a client has seen, and a delta is
only the rows past it, so a 10,000-job study costs per update what changed, not its size.

Every ranking and "best" comes from :func:`hyperscout.results.ranked_jobs`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperscout.errors import StoreError
from hyperscout.job import Job, JobStatus
from hyperscout.lease import Owner
from hyperscout.objective import Objective, ObjectiveSet, non_dominated_fronts
from hyperscout.results import ranked_jobs
from hyperscout.store import Store, json_safe, store_file

__all__ = ["JOB_COLUMNS", "Cursor", "StudyModel", "UIStore", "list_rows", "ui_dir"]

_COLS = (
    "id", "study", "number", "params", "status", "budget", "created", "started", "ended", "exit_code", "reason",
    "stdout_path", "stderr_path", "pid", "retry_of", "superseded_by", "interrupted", "archived",
    "objective_values", "objective_iterations", "handle", "queued",
)
#: the columns of a job row as sent to the browser (one array per job keeps 10,000 jobs near 1 MB)
JOB_COLUMNS = ("n", "id", "st", "v", "it", "b", "p", "tq", "t0", "t1", "x", "r", "sup", "arch", "int", "li", "lv")
#: limits kept in seconds in the stored definition; the form speaks ClearML's minutes
_SECONDS = ("time_limit_per_job", "compute_time_limit", "time_limit_queued")


def ui_dir(store_dir: Path) -> Path:
    """Where the app keeps its own files (study files it generated, launch logs): inside the store directory."""
    return store_dir / "ui"


def _job(row: Sequence[Any]) -> Job:
    """A Job from a ``jobs`` row in ``_COLS`` order (the same mapping as ``Store.load_jobs``)."""
    d = dict(zip(_COLS, row))
    return Job(
        id=d["id"], study=d["study"], number=d["number"], params=json.loads(d["params"]),
        status=JobStatus(d["status"]), budget=d["budget"], created=d["created"], started=d["started"],
        ended=d["ended"], exit_code=d["exit_code"], reason=d["reason"], stdout_path=d["stdout_path"],
        stderr_path=d["stderr_path"], pid=d["pid"], retry_of=d["retry_of"], superseded_by=d["superseded_by"],
        interrupted=bool(d["interrupted"]), archived=bool(d["archived"]), metrics=[],
        objective_values=json.loads(d["objective_values"]) if d["objective_values"] else None,
        objective_iterations=json.loads(d["objective_iterations"]) if d["objective_iterations"] else None,
        handle=d["handle"], queued=d["queued"],
    )


class UIStore(Store):
    """``Store`` plus the incremental queries a live dashboard needs (candidates for the core's Store)."""

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import sqlite3

        try:
            with self._lock:
                return self._db.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store {str(self.path)!r}: {exc}; try again in a moment") from None

    def data_version(self) -> int:
        """Changes whenever another connection commits: a free test for "anything new?"."""
        return int(self._q("PRAGMA data_version")[0][0])

    def jobs_since(self, study: str, rowid: int) -> list[tuple[int, Job]]:
        rows = self._q(f"SELECT rowid, {','.join(_COLS)} FROM jobs WHERE study=? AND rowid>? ORDER BY number",
                       (study, rowid))
        return [(r[0], _job(r[1:])) for r in rows]

    def job(self, job_id: str) -> Job | None:
        rows = self._q(f"SELECT {','.join(_COLS)} FROM jobs WHERE id=?", (job_id,))
        return _job(rows[0]) if rows else None

    def max_metric_rowid(self) -> int:
        return int(self._q("SELECT COALESCE(MAX(rowid), 0) FROM metrics")[0][0])

    def max_event_id(self) -> int:
        return int(self._q("SELECT COALESCE(MAX(id), 0) FROM events")[0][0])

    def last_points(self, title: str, series: str) -> dict[str, tuple[int, float | None]]:
        """The last reported iteration (and its value) of one scalar, per job: the "iterations" column.

        SQLite returns the bare ``value`` column from the row holding ``MAX(iteration)``; one pass over the index.
        """
        rows = self._q("SELECT job_id, MAX(iteration), value FROM metrics WHERE title=? AND series=? AND after_stop=0 "
                       "GROUP BY job_id", (title, series))
        return {job_id: (it, v) for job_id, it, v in rows}

    def recent_events(self, study: str, limit: int) -> list[dict[str, Any]]:
        rows = self._q("SELECT id, time, kind, job_id, data FROM events WHERE study=? ORDER BY id DESC LIMIT ?",
                       (study, limit))
        return [{"id": i, "time": t, "kind": k, "job_id": j, "data": json.loads(d) if d else None}
                for i, t, k, j, d in reversed(rows)]

    def last_event_time(self, study: str, kind: str) -> float | None:
        return self._q("SELECT MAX(time) FROM events WHERE study=? AND kind=?", (study, kind))[0][0]

    def points_since(self, title: str, series: str, rowid: int) -> list[tuple[int, str, int, float | None, int]]:
        """New points of one scalar in the whole store: ``(rowid, job_id, iteration, value, after_stop)``.

        A rowid range and no join (the caller keeps the points of its own jobs): cheap however big the study.
        """
        return [tuple(r) for r in self._q(  # type: ignore[misc]
            "SELECT rowid, job_id, iteration, value, after_stop FROM metrics WHERE rowid>? AND title=? AND series=? "
            "ORDER BY rowid", (rowid, title, series))]

    def curves(self, job_ids: Iterable[str], title: str, series: str) -> list[tuple[str, int, float | None, int]]:
        ids = list(job_ids)
        out: list[tuple[str, int, float | None, int]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out += [tuple(r) for r in self._q(  # type: ignore[misc]
                f"SELECT job_id, iteration, value, after_stop FROM metrics WHERE job_id IN ({','.join('?' * len(chunk))})"
                " AND title=? AND series=? ORDER BY job_id, iteration", (*chunk, title, series))]
        return out

    def job_metrics(self, job_id: str, rowid: int = 0) -> list[tuple[int, str, str, int, float | None, float, int]]:
        """Every scalar of one job past ``rowid``: ``(rowid, title, series, iteration, value, time, after_stop)``."""
        return [tuple(r) for r in self._q(  # type: ignore[misc]
            "SELECT rowid, title, series, iteration, value, time, after_stop FROM metrics WHERE job_id=? AND rowid>? "
            "ORDER BY title, series, iteration", (job_id, rowid))]

    def events_since(self, study: str, event_id: int, job_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, time, kind, job_id, data FROM events WHERE study=? AND id>?"
        args: list[Any] = [study, event_id]
        if job_id is not None:
            sql += " AND job_id=?"
            args.append(job_id)
        rows = self._q(sql + " ORDER BY id", args)
        return [{"id": i, "time": t, "kind": k, "job_id": j, "data": json.loads(d) if d else None} for i, t, k, j, d in rows]

    def cleared(self) -> dict[str, float]:
        """When each study was last cleared from the list ("clear finished" is a ``ui_action`` event)."""
        rows = self._q("SELECT study, MAX(time) FROM events WHERE kind='ui_action' "
                       "AND json_extract(data, '$.action')='clear' GROUP BY study")
        return {s: t for s, t in rows}

    def study_rowids(self) -> dict[str, int]:
        return {s: r for s, r in self._q("SELECT study, MAX(rowid) FROM jobs GROUP BY study")}

    def delete_study(self, name: str) -> int:
        """Delete a study that nobody runs, with its jobs, metrics and events; returns the jobs deleted."""
        import sqlite3

        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT status, owner, heartbeat FROM studies WHERE name=?", (name,)).fetchone()
                if row is None:
                    raise StoreError(f"no study {name!r} in {self.path}")
                owner = Owner.from_dict(json.loads(row[1])) if row[1] else None
                if self.state_of(row[0], owner, row[2]) == "running":
                    raise StoreError(f"study {name!r} is running; stop it first")
                n = self._db.execute("SELECT COUNT(*) FROM jobs WHERE study=?", (name,)).fetchone()[0]
                self._db.execute("DELETE FROM metrics WHERE job_id IN (SELECT id FROM jobs WHERE study=?)", (name,))
                self._db.execute("DELETE FROM jobs WHERE study=?", (name,))
                self._db.execute("DELETE FROM events WHERE study=? AND kind<>'ui_action'", (name,))
                self._db.execute("DELETE FROM studies WHERE name=?", (name,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"store {str(self.path)!r}: {exc}") from None
        return int(n)


def open_reader(store_dir: Path) -> UIStore | None:
    """A read-only store, or None while the directory holds no store yet (the app can still launch one)."""
    if not store_file(store_dir).is_file():
        return None
    return UIStore(store_dir, readonly=True)


# -- study definition --------------------------------------------------------------------------
def objectives_of(definition: Mapping[str, Any]) -> ObjectiveSet:
    return ObjectiveSet.of([Objective(**o) for o in definition.get("objectives") or [{"title": "?", "series": "?"}]])


def param_axes(definition: Mapping[str, Any], jobs: Iterable[Job]) -> list[dict[str, Any]]:
    """Each parameter's name and scale (``log``, ``int``, ``float`` or ``cat``) for axes and tables."""
    kinds: dict[str, str] = {}

    def add(name: str, spec: Mapping[str, Any]) -> None:
        t = spec.get("type", "")
        if t == "LogUniformParameterRange":
            kinds[name] = "log"
        elif t == "UniformIntegerParameterRange":
            kinds[name] = "int"
        elif t == "UniformParameterRange":
            kinds[name] = "float"
        elif t == "DiscreteParameterRange":
            vals = spec.get("values") or []
            num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
            kinds[name] = "float" if num and vals else "cat"
        else:
            kinds.setdefault(name, "")

    for spec in definition.get("parameters") or []:
        if spec.get("type") == "ParameterSet":
            for combo in spec.get("parameter_combinations") or []:
                for k, v in combo.items():
                    if isinstance(v, Mapping) and "type" in v:
                        add(k, v)
                    elif k not in kinds or kinds[k] == "":
                        kinds[k] = "float" if isinstance(v, (int, float)) and not isinstance(v, bool) else "cat"
                    elif kinds[k] != "cat" and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                        kinds[k] = "cat"
        elif spec.get("name"):
            add(spec["name"], spec)
    for j in jobs:  # names only the jobs know (a plugin's own range type)
        for k, v in j.params.items():
            if kinds.get(k, "") == "":
                kinds[k] = "float" if isinstance(v, (int, float)) and not isinstance(v, bool) else "cat"
    return [{"name": k, "scale": v or "cat"} for k, v in kinds.items()]


def owner_dict(owner: Owner | None) -> dict[str, Any] | None:
    if owner is None:
        return None
    return {"pid": owner.pid, "host": owner.host, "here": owner.host == socket.gethostname()}


def limits_of(definition: Mapping[str, Any], study_file: Mapping[str, Any] | None) -> dict[str, Any]:
    """Budgets in ClearML's units (minutes); the time limit of a run is known only from its study file."""
    lim = dict(definition.get("limits") or {})
    out: dict[str, Any] = {
        "total_max_jobs": lim.get("total_max_jobs"),
        "total_max_iterations": lim.get("total_max_iterations"),
        "max_iteration_per_job": lim.get("max_iteration_per_job"),
        "max_number_of_concurrent_tasks": lim.get("max_concurrency"),
        "compute_time_limit": None if lim.get("compute_time_limit") is None else lim["compute_time_limit"] / 60.0,
        "time_limit_per_job": None if lim.get("time_limit_per_job") is None else lim["time_limit_per_job"] / 60.0,
        "optimization_time_limit": None,
    }
    if study_file:
        out["optimization_time_limit"] = (study_file.get("limits") or {}).get("optimization_time_limit")
    return out


# -- cursors -----------------------------------------------------------------------------------
class Cursor:
    """``JOBS:METRICS:EVENTS`` rowids a client has seen (also the SSE event id, so a reconnect resumes)."""

    def __init__(self, jobs: int = 0, metrics: int = 0, events: int = 0) -> None:
        self.jobs, self.metrics, self.events = jobs, metrics, events

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        try:
            a, b, c = (int(x) for x in (text or "").split(":"))
        except ValueError:
            return None
        return cls(a, b, c)

    def __str__(self) -> str:
        return f"{self.jobs}:{self.metrics}:{self.events}"


def _t(t: float | None) -> float | None:
    """A timestamp to the millisecond (enough for the page, and a third shorter in JSON)."""
    return None if t is None else round(t, 3)


def _f(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _safe(v: Any) -> Any:
    """``json_safe`` with a fast path for the scalars parameters nearly always are."""
    t = type(v)
    if t is float:
        return v if math.isfinite(v) else None
    if v is None or t is int or t is str or t is bool:
        return v
    return json_safe(v)


# -- one study ---------------------------------------------------------------------------------
class StudyModel:
    """Everything the study page shows about one study, kept up to date from the store by deltas."""

    #: jobs whose learning curves the page loads first: the best few and the latest ones
    TOP_CURVES = 10
    LAST_CURVES = 90

    def __init__(self, store: UIStore, name: str, study_file: Mapping[str, Any] | None = None) -> None:
        self.store = store
        self.name = name
        self.study_file = study_file
        self.jobs: dict[str, Job] = {}
        self.rowid: dict[str, int] = {}
        self._rows: dict[str, tuple[Job, Any, list[Any]]] = {}
        self.last: dict[str, tuple[int, float | None]] = {}
        self.cursor = Cursor()
        self.info: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.importance: dict[str, Any] | None = None
        self.importance_n = -1
        self.importance_at = 0.0
        self._info_key = ""
        self.run_started: float | None = None
        self.exists = False
        self.load()

    # -- loading and refreshing
    def load(self) -> None:
        row = self.store.get_study(self.name)
        if row is None:
            self.exists = False
            return
        self.exists = True
        self.definition = row["definition"]
        self.objectives = objectives_of(self.definition)
        self.primary = self.objectives.primary
        ev = self.store.max_event_id()
        mt = self.store.max_metric_rowid()
        pairs = self.store.jobs_since(self.name, 0)
        self.jobs = {j.id: j for _, j in pairs}
        self.rowid = {j.id: r for r, j in pairs}
        self.last = {k: v for k, v in self.store.last_points(self.primary.title, self.primary.series).items()
                     if k in self.jobs}
        self.cursor = Cursor(max(self.rowid.values(), default=0), mt, ev)
        self.axes = param_axes(self.definition, self.jobs.values())
        self._rows = {}
        self.run_started = self.store.last_event_time(self.name, "study_started")
        self._set_info(row)
        self.summary = self._summary()

    def _set_info(self, row: Mapping[str, Any]) -> bool:
        state = Store.state_of(row["status"], row["owner"], row["heartbeat"])
        d = self.definition
        self.info = json_safe({
            "name": self.name, "state": state, "status": row["status"], "end_reason": row["end_reason"],
            "created": row["created"], "updated": row["updated"], "owner": owner_dict(row["owner"]),
            "heartbeat": row["heartbeat"], "strategy": d.get("strategy"), "backend": d.get("backend"),
            "strategy_options": d.get("strategy_options") or {}, "seed": d.get("seed"),
            "queue": (self.study_file or {}).get("backend", {}).get("queue", "default"),
            "objectives": [{"title": o.title, "series": o.series, "sign": o.sign, "key": o.key}
                           for o in self.objectives],
            "params": self.axes, "limits": limits_of(d, self.study_file), "base_task": d.get("base_task"),
        })
        key = json.dumps(self.info, sort_keys=True, default=str)
        changed, self._info_key = key != self._info_key, key
        return changed

    def refresh(self) -> dict[str, Any] | None:
        """Read what changed since the last refresh; the delta to broadcast, or None if nothing did."""
        if not self.exists:
            self.load()
            return {"reload": True} if self.exists else None
        row = self.store.get_study(self.name)
        if row is None:
            self.exists = False
            return {"deleted": True}
        delta: dict[str, Any] = {}
        changed: dict[str, Job] = {}
        for rowid, job in self.store.jobs_since(self.name, self.cursor.jobs):
            self.jobs[job.id] = job
            self.rowid[job.id] = rowid
            self.cursor.jobs = max(self.cursor.jobs, rowid)
            changed[job.id] = job
        points = [p for p in self.store.points_since(self.primary.title, self.primary.series, self.cursor.metrics)
                  if p[1] in self.jobs]
        self.cursor.metrics = max(self.cursor.metrics, self.store.max_metric_rowid())
        if points:
            number = {jid: j.number for jid, j in self.jobs.items()}
            delta["curves"] = [[number.get(jid), it, _f(v), a] for _, jid, it, v, a in points if jid in number]
            for _, jid, it, v, a in points:
                if not a and jid in self.jobs and it >= self.last.get(jid, (-1, None))[0]:
                    self.last[jid] = (it, v)
                    changed[jid] = self.jobs[jid]
        events = self.store.events_since(self.name, self.cursor.events)
        if events:
            self.cursor.events = events[-1]["id"]
            delta["events"] = json_safe(events)
            starts = [e["time"] for e in events if e["kind"] == "study_started"]
            if starts:
                self.run_started = starts[-1]
        if changed or (events and self.summary.get("budget", {}).get("time", [None])[0] != self.run_started):
            new_axes = param_axes(self.definition, changed.values())
            if any(a["name"] not in {x["name"] for x in self.axes} for a in new_axes):
                self.axes = param_axes(self.definition, self.jobs.values())
                self._rows = {}
            delta["jobs"] = [self.row(j) for j in sorted(changed.values(), key=lambda j: j.number)]
            summary = self._summary()
            if summary != self.summary:
                self.summary = summary
                delta["summary"] = summary
        if self._set_info(row):
            delta["study"] = self.info
        if not delta:
            return None
        delta["cursor"] = str(self.cursor)
        delta["now"] = time.time()
        return delta

    def catch_up(self, since: Cursor) -> dict[str, Any]:
        """The delta a reconnecting client missed (its cursor is older than ours)."""
        jobs = [j for jid, j in self.jobs.items() if self.rowid.get(jid, 0) > since.jobs]
        delta: dict[str, Any] = {"cursor": str(self.cursor), "now": time.time(), "study": self.info,
                                 "summary": self.summary}
        if self.importance is not None:  # it may have been computed between the client's snapshot and its stream
            delta["importance"] = self.importance
        if jobs:
            delta["jobs"] = [self.row(j) for j in sorted(jobs, key=lambda j: j.number)]
        points = [p for p in self.store.points_since(self.primary.title, self.primary.series, since.metrics)
                  if p[1] in self.jobs]
        number = {jid: j.number for jid, j in self.jobs.items()}
        if points:
            delta["curves"] = [[number.get(jid), it, _f(v), a] for _, jid, it, v, a in points if jid in number]
        events = self.store.events_since(self.name, since.events)
        if events:
            delta["events"] = json_safe(events)
        return delta

    # -- rows and summaries
    def param_names(self) -> list[str]:
        return [a["name"] for a in self.axes]

    def row(self, j: Job) -> list[Any]:
        """The job as the page's row; kept until the job or its last point changes (a snapshot re-uses them)."""
        last = self.last.get(j.id, (None, None))
        hit = self._rows.get(j.id)
        if hit is not None and hit[0] is j and hit[1] == last:
            return hit[2]
        li, lv = last
        row = [
            j.number, j.id, j.status.value, json_safe(j.objective_values), j.objective_iterations, _f(j.budget),
            [_safe(j.params.get(n)) for n in self.param_names()], _t(j.queued or j.created), _t(j.started), _t(j.ended),
            j.exit_code, j.reason, j.superseded_by, int(j.archived), int(j.interrupted), li, _f(lv),
        ]
        self._rows[j.id] = (j, last, row)
        return row

    def _summary(self) -> dict[str, Any]:
        jobs = list(self.jobs.values())
        live = [j for j in jobs if j.superseded_by is None]
        counts: dict[str, int] = {}
        for j in live:
            counts[j.status.value] = counts.get(j.status.value, 0) + 1
        ranked = ranked_jobs(jobs, self.objectives)
        best = ranked[0] if ranked else None
        # best so far of the primary objective, by job number and by end time: the order is ranked_jobs'
        by_primary = ranked if not self.objectives.is_multi else ranked_jobs(jobs, ObjectiveSet.of([self.primary]))
        pos = {j.id: i for i, j in enumerate(by_primary)}
        steps_n: list[list[Any]] = []
        steps_t: list[list[Any]] = []
        for key, steps in ((lambda j: j.number, steps_n), (lambda j: (j.ended or 0.0, j.number), steps_t)):
            cur = None
            for j in sorted((j for j in jobs if j.id in pos), key=key):
                if cur is None or pos[j.id] < pos[cur.id]:
                    cur = j
                    steps.append([j.number, _f(j.objective_values[0]), j.ended])  # type: ignore[index]
        pareto: list[int] = []
        if self.objectives.is_multi and ranked:
            pts = [self.objectives.normalized(j.objective_values) for j in ranked]  # type: ignore[arg-type]
            pareto = sorted(ranked[i].number for i in non_dominated_fronts(pts)[0])
        lim = limits_of(self.definition, self.study_file)
        started = [j.started for j in jobs if j.started]
        compute = sum((j.duration or 0.0) for j in jobs if j.started)
        iterations = sum(it for jid, (it, _) in self.last.items() if jid in self.jobs and it is not None)
        queue = self.info.get("queue") or (self.study_file or {}).get("backend", {}).get("queue", "default")
        backend = self.definition.get("backend") or "?"
        resources = [{"backend": backend, "queue": queue,
                      "queued": counts.get("pending", 0), "running": counts.get("running", 0)}]
        return json_safe({
            "counts": counts, "jobs": len(live), "ranked": len(ranked),
            "best": None if best is None else {"n": best.number, "id": best.id, "v": best.objective_values,
                                               "b": best.budget, "p": best.params},
            "top": [j.number for j in ranked[:10]], "steps_n": steps_n, "steps_t": steps_t, "pareto": pareto,
            "budget": {"jobs": [len(live), lim["total_max_jobs"]],
                       "iterations": [iterations, lim["total_max_iterations"]],
                       "time": [self.run_started or (min(started) if started else None),
                                lim["optimization_time_limit"]],
                       "compute": [compute / 60.0, lim["compute_time_limit"]]},
            "resources": resources,
        })

    def default_curve_jobs(self) -> list[Job]:
        ranked = ranked_jobs(self.jobs.values(), self.objectives, self.TOP_CURVES)
        latest = sorted(self.jobs.values(), key=lambda j: j.number)[-self.LAST_CURVES:]
        return list({j.id: j for j in [*ranked, *latest]}.values())

    def curves(self, jobs: Iterable[Job]) -> list[list[Any]]:
        number = {j.id: j.number for j in jobs}
        return [[number[jid], it, _f(v), a]
                for jid, it, v, a in self.store.curves(number, self.primary.title, self.primary.series)]

    def snapshot(self, curves: str = "default") -> dict[str, Any]:
        """The whole page's data (the first render, and the frozen report)."""
        if not self.exists:
            return {"pending": True, "name": self.name}
        chosen = list(self.jobs.values()) if curves == "all" else self.default_curve_jobs()
        return {
            "study": self.info, "columns": list(JOB_COLUMNS),
            "jobs": [self.row(j) for j in sorted(self.jobs.values(), key=lambda j: j.number)],
            "summary": self.summary, "curves": self.curves(chosen), "curve_mode": curves,
            "events": json_safe(self.store.recent_events(self.name, 200)), "importance": self.importance,
            "cursor": str(self.cursor), "now": time.time(),
        }

    def ranked_for_importance(self) -> list[Job]:
        return ranked_jobs(self.jobs.values(), self.objectives)


# -- the list of studies -------------------------------------------------------------------------
class ListModel:
    """The studies list with each study's best value, recomputed only for studies whose jobs changed."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self._best: dict[str, tuple[int, Any]] = {}

    def rows(self, store: UIStore | None, study_files: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        if store is None:
            return []
        rowids = store.study_rowids()
        cleared = store.cleared()
        out = []
        for s in store.list_studies():
            name = s["name"]
            info = store.get_study(name) or {}
            definition = info.get("definition") or {}
            sf = study_files.get(name)
            lim = limits_of(definition, sf)
            stamp = rowids.get(name, 0)
            if name not in self._best or self._best[name][0] != stamp:
                objectives = objectives_of(definition)
                jobs = store.jobs_since(name, 0)
                top = ranked_jobs([j for _, j in jobs], objectives, 1)
                best = None if not top else {"n": top[0].number, "v": json_safe(top[0].objective_values),
                                             "keys": [o.key for o in objectives], "b": _f(top[0].budget)}
                self._best[name] = (stamp, best)
            c = cleared.get(name)
            out.append(json_safe({
                "name": name, "state": s["state"], "status": s["status"], "end_reason": s["end_reason"],
                "created": s["created"], "updated": s["updated"], "jobs": s["jobs"], "completed": s["completed"],
                "failed": s["failed"], "pruned": s["pruned"], "aborted": s["aborted"], "active": s["active"],
                "strategy": definition.get("strategy"), "backend": definition.get("backend"),
                "total_max_jobs": lim["total_max_jobs"], "best": self._best[name][1],
                "owner": owner_dict(s["owner"]) if s["state"] == "running" else None,
                "cleared": bool(c is not None and c >= (s["updated"] or 0) and s["state"] != "running"),
                "from_ui": name in study_files,
            }))
        return out


def list_rows(store_dir: Path, study_files: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The studies list, once (the report and tests; the app keeps a :class:`ListModel`)."""
    store = open_reader(store_dir)
    try:
        return ListModel(store_dir).rows(store, study_files)
    finally:
        if store is not None:
            store.close()


def safe_inside(base: Path, candidate: str | os.PathLike[str] | None) -> Path | None:
    """``candidate`` resolved, if it is a file inside ``base``; None otherwise (logs are served from the store only)."""
    if not candidate:
        return None
    try:
        p = Path(candidate).resolve()
        root = base.resolve()
    except (OSError, RuntimeError):
        return None
    return p if p.is_relative_to(root) and p.is_file() else None
