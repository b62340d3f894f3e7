"""``hyperscout export``: a study's jobs streamed from the store as JSON or CSV, in constant memory.

Jobs are read a chunk at a time (:meth:`hyperscout.store.Store.export_rows`) and written as they
come, so a study of 100,000 jobs exports without building the document in memory. Ranks use the
order of :func:`hyperscout.ranked_jobs` (computed in SQL for one objective). The JSON is strict
(no NaN or Infinity: a value that was not finite is ``null``), one job per line inside ``"jobs"``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import time
from array import array
from collections.abc import Mapping
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, TextIO

from hyperscout.errors import StoreError
from hyperscout.objective import ObjectiveSet, rank
from hyperscout.store import Store, json_safe

__all__ = ["export_csv", "export_json"]

def _ranks(store: Store, study: str, objectives: ObjectiveSet) -> array:
    """Rank by job number (0: not ranked), in the order of :func:`hyperscout.ranked_jobs`: in SQL for
    one objective; for several, in memory from the objective values alone (no histories)."""
    if objectives.is_multi:
        rows = sorted(store.ranking_rows(study), key=lambda r: (r[2] or 0.0, r[0]))
        order = [r[0] for r in rank(rows, lambda r: r[1], objectives)]
    else:
        order = store.ranked_numbers(study, objectives.primary.maximize)
    ranks = array("l", [0]) * (max(order, default=-1) + 1)
    for position, number in enumerate(order, 1):
        ranks[number] = position
    return ranks


def _rank_of(ranks: array, number: int) -> int | None:
    return ranks[number] or None if number < len(ranks) else None


def _json_text(text: str | None) -> str:
    """A JSON column of the store as strict JSON (NaN and infinities become null)."""
    if text is None:
        return "null"
    if "NaN" in text or "Infinity" in text:
        return json.dumps(json_safe(json.loads(text)), allow_nan=False)
    return text


_NOT_FINITE = {math.inf, -math.inf}
_BOOL = ("false", "true")


def _num(v: Any) -> str:
    return "null" if v is None or v in _NOT_FINITE or v != v else repr(v)


#: from this many jobs on, an export to a file is written by two processes (one half each)
PARALLEL_FROM = 20_000


def export_json(store: Store, info: Mapping[str, Any], objectives: ObjectiveSet, out: TextIO, *,
                parallel: bool = False) -> int:
    """Write the study as ``{"study", "definition", "jobs": [...]}``; returns the number of jobs.

    Each job is one line, formatted here rather than through ``json.dumps`` of a dict (three times
    faster: the JSON columns of the store are copied as they are, unless not finite). With
    ``parallel`` (``out`` a file on disk), a study of ``PARALLEL_FROM`` jobs or more on a machine
    with two cores or more is written by two processes, each reading and formatting half the jobs
    (the work is CPU-bound: SQLite's page reads and Python's formatting); memory stays constant.
    """
    study = info["name"]
    head = json.dumps({"study": study, "definition": json_safe(info["definition"])}, default=str, allow_nan=False)
    out.write(head[:-1] + ',\n"jobs": [')
    now = time.time()
    ranks = _ranks(store, study, objectives)
    total, middle = store.middle_number(study) if parallel else (0, 0)
    name = getattr(out, "name", None)
    if parallel and total >= PARALLEL_FROM and (os.cpu_count() or 1) >= 2 and isinstance(name, str) and \
            os.path.isfile(name):
        n = _json_in_two(store, study, ranks, now, out, name, middle)
    else:
        n = _json_jobs(store, study, ranks, now, out, None, first=True)
    out.write("\n]}\n")
    return n


def _json_in_two(store: Store, study: str, ranks: array, now: float, out: TextIO, name: str, middle: int) -> int:
    """The jobs numbered from ``middle`` on go to a forked child's file, appended when both are done."""
    half = f"{name}.{os.getpid()}.half"
    out.flush()  # nothing buffered may be written twice
    pid = os.fork()
    if pid == 0:  # the child: its own connection, its own file, and out by os._exit (no cleanup of the parent's)
        code = 1
        try:
            reader = Store(store.path, readonly=True)
            with open(half, "w", encoding="utf-8", newline="") as fh:
                n = _json_jobs(reader, study, ranks, now, fh, (middle, 2**62), first=False)
            with open(half + ".n", "w") as fh:
                fh.write(str(n))
            code = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException), open(half + ".err", "w") as fh:
                fh.write(str(exc) or type(exc).__name__)
        finally:
            os._exit(code)
    try:
        n = _json_jobs(store, study, ranks, now, out, (-(2**62), middle), first=True)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            err = Path(half + ".err")
            raise StoreError(err.read_text() if err.exists() else f"the export's second process ended with status "
                             f"{os.waitstatus_to_exitcode(status)}; run the export again")
        with open(half, encoding="utf-8", newline="") as fh:
            shutil.copyfileobj(fh, out, 1 << 20)
        return n + int(Path(half + ".n").read_text())
    finally:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        for leftover in (half, half + ".n", half + ".err"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _json_jobs(store: Store, study: str, ranks: array, now: float, out: TextIO, numbers: tuple[int, int] | None,
               *, first: bool) -> int:
    """One line per job of ``numbers`` (all when None), each after a comma unless it is the very first."""
    size = len(ranks)
    prefixes: dict[tuple[str, str], str] = {}
    enc, bad, text, flags = encode_basestring, _NOT_FINITE, _json_text, _BOOL
    lines: list[str] = []
    n = 0
    for row, points in store.export_rows(study, numbers=numbers):
        (job_id, number, status, values, iterations, params, started, ended, exit_code, reason, budget, stdout,
         stderr, retry_of, superseded_by, interrupted, handle) = row
        metrics = []
        for _, t, s, i, v, a in points:
            pre = prefixes.get((t, s))
            if pre is None:
                pre = prefixes[(t, s)] = f"[{enc(t)},{enc(s)},"
            metrics.append(f'{pre}{i},{"null" if v is None or v in bad or v != v else repr(v)},{flags[a]}]')
        rank_ = ranks[number] if number < size else 0
        lines.append(
            f'\n{{"id":{enc(job_id)},"number":{number},"status":{enc(status)},'
            f'"objective":{text(values)},"iteration":{text(iterations)},"params":{text(params)},'
            f'"duration":{"null" if started is None else repr((now if ended is None else ended) - started)},'
            f'"exit_code":{"null" if exit_code is None else exit_code},'
            f'"reason":{"null" if reason is None else enc(reason)},"rank":{rank_ or "null"},"budget":{_num(budget)},'
            f'"started":{"null" if started is None else repr(started)},"ended":{"null" if ended is None else repr(ended)},'
            f'"stdout":{"null" if stdout is None else enc(stdout)},"stderr":{"null" if stderr is None else enc(stderr)},'
            f'"retry_of":{"null" if retry_of is None else enc(retry_of)},'
            f'"superseded_by":{"null" if superseded_by is None else enc(superseded_by)},'
            f'"interrupted":{flags[bool(interrupted)]},"handle":{"null" if handle is None else enc(handle)},'
            f'"metrics":[{",".join(metrics)}]}}'
        )
        n += 1
        if len(lines) >= 500:
            out.write(("" if first and n == len(lines) else ",") + ",".join(lines))
            lines.clear()
    if lines:
        out.write(("" if first and n == len(lines) else ",") + ",".join(lines))
    return n


def export_csv(store: Store, info: Mapping[str, Any], objectives: ObjectiveSet, out: TextIO) -> int:
    """Write one row per job (objectives, budget, duration, exit code, reason, parameters); no histories."""
    study = info["name"]
    names = store.param_names(study)
    w = csv.writer(out)
    w.writerow(["job", "number", "rank", "status", *[o.key for o in objectives], "budget", "duration",
                "exit_code", "reason", *names])
    now = time.time()
    blank = [None] * len(objectives)
    ranks = _ranks(store, study, objectives)
    n = 0
    for row, _points in store.export_rows(study, metrics=False):
        job_id, number, status, values, _it, params, started, ended, exit_code, reason, budget = row[:11]
        duration = None if started is None else (now if ended is None else ended) - started
        p = json.loads(params)
        vals = json.loads(values) if values else blank
        w.writerow([job_id, number, _rank_of(ranks, number) or "", status, *vals, budget, duration, exit_code,
                    reason or "", *[p.get(k, "") for k in names]])
        n += 1
    return n
