"""Replay a recorded study: each simulated job replays the nearest recorded configuration.

The source is what ``hyperscout export STUDY --format json`` writes: every job with its
``params``, ``started``/``ended`` and ``metrics`` (``[title, series, iteration, value,
after_stop]``). A replayed job reports the recorded curve (after-stop points included: they are
real observations of the curve) over the recorded running time. The export keeps no time per
point, so a point's time is proportional to its iteration: iteration ``i`` of a job whose
iterations span ``lo..hi`` arrives at ``duration * (i - lo + 1) / (hi - lo + 1)``.

Which recordings are candidates: jobs that ran to their own end (``completed`` or ``failed``, not
interrupted); pruned or aborted ones were cut short by the recording study's engine and are used
only when nothing else ran. A recorded crash (exit code other than 0 or the engine's SIGTERM)
is replayed as the same exit code and reason after the curve. Nearest means the smallest sum of
squared differences over the parameters, numbers scaled to the range recorded (in log space for a
``LogUniformParameterRange`` of the recorded study), other values 0 when equal and 1 otherwise;
ties go to the earliest recorded job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from hyperscout.errors import ConfigError
from hyperscout_sim.task import SimExit, SimTask, Step

__all__ = ["Recording", "Replay"]

#: the exit code the engine's abort leaves (SIGTERM): the recording's engine ended the job, it did not crash
_SIGTERM = -15


@attrs.frozen
class Recording:
    """One recorded job: its configuration, running time, curve and how it ended."""

    number: int
    params: Mapping[str, Any]
    duration: float
    #: ``(iteration, title, series, value)`` sorted by iteration, report order kept within one
    points: tuple[tuple[int, str, str, float], ...]
    status: str
    exit_code: int | None = None
    reason: str | None = None

    @property
    def crashed(self) -> bool:
        return self.status == "failed" and self.exit_code not in (0, None, _SIGTERM)

    def steps(self, budget: float | None) -> Iterator[Step]:
        """The curve as job-function steps, cut after the first iteration >= ``budget``."""
        if self.points:
            lo, hi = self.points[0][0], self.points[-1][0]
            span = hi - lo + 1
            last_time = 0.0
            i = 0
            n = len(self.points)
            while i < n:
                iteration = self.points[i][0]
                metrics: dict[tuple[str, str], float] = {}
                while i < n and self.points[i][0] == iteration:
                    _, title, series, value = self.points[i]
                    metrics[(title, series)] = value
                    i += 1
                at = self.duration * (iteration - lo + 1) / span
                yield max(at - last_time, 0.0), iteration, metrics
                last_time = max(at, last_time)
                if budget is not None and iteration >= budget:
                    return
        if self.crashed:
            raise SimExit(self.exit_code or 1, f"replayed crash of recorded job #{self.number}: {self.reason}")


class Replay:
    """The recordings of one export and the nearest-configuration look-up."""

    def __init__(self, recordings: Sequence[Recording], *, log_params: frozenset[str] = frozenset(),
                 source: str = "?") -> None:
        if not recordings:
            raise ConfigError(f"sim: replay source {source!r} has no job that ran (none has started and ended); "
                              "export a study whose jobs finished")
        self.recordings = tuple(recordings)
        self.source = source
        self._exact: dict[str, Recording] = {}
        for r in self.recordings:
            self._exact.setdefault(_canonical(r.params), r)
        names = sorted({k for r in self.recordings for k in r.params})
        self._scale: dict[str, tuple[bool, float, float]] = {}  # name -> (log, low, width) for numeric ones
        for name in names:
            values = [r.params.get(name) for r in self.recordings]
            if not values or not all(_is_number(v) for v in values):
                continue
            log = name in log_params and all(v > 0 for v in values)  # type: ignore[operator]
            xs = [math.log(v) if log else float(v) for v in values]  # type: ignore[arg-type]
            self._scale[name] = (log, min(xs), max(xs) - min(xs))

    @classmethod
    def load(cls, path: str | Path) -> Replay:
        """Read an export (``hyperscout export STUDY --format json``)."""
        file = Path(path).expanduser()
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"sim: replay source {str(file)!r} cannot be read ({exc.strerror}); give the path "
                              "of a `hyperscout export STUDY --format json` file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"sim: replay source {str(file)!r} is not JSON ({exc}); write it with "
                              "`hyperscout export STUDY --format json -o FILE`") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("jobs"), list):
            raise ConfigError(f"sim: replay source {str(file)!r} has no 'jobs' list; write it with "
                              "`hyperscout export STUDY --format json -o FILE`")
        definition = data.get("definition") or {}
        log_params = frozenset(
            p.get("name") for p in definition.get("parameters", [])
            if isinstance(p, Mapping) and p.get("type") == "LogUniformParameterRange" and p.get("name")
        )
        ran, cut = [], []
        for i, job in enumerate(data["jobs"]):
            rec = _recording(job, i)
            if rec is None:
                continue
            own_end = rec.status in ("completed", "failed") and not job.get("interrupted")
            (ran if own_end else cut).append(rec)
        return cls(ran or cut, log_params=log_params, source=str(file))

    def task(self) -> SimTask:
        return SimTask(self.job, label=f"replay:{self.source}")

    def job(self, params: Mapping[str, Any], budget: float | None) -> Iterator[Step]:
        """The job function: the nearest recording's curve and timing."""
        return self.nearest(params).steps(budget)

    def nearest(self, params: Mapping[str, Any]) -> Recording:
        hit = self._exact.get(_canonical(params))
        if hit is not None:
            return hit
        best, best_d = self.recordings[0], math.inf
        for r in self.recordings:
            d = 0.0
            for name, value in params.items():
                d += self._distance(name, value, r.params.get(name, _MISSING))
                if d >= best_d:
                    break
            if d < best_d:
                best, best_d = r, d
        return best

    def _distance(self, name: str, a: Any, b: Any) -> float:
        if b is _MISSING:
            return 1.0
        scale = self._scale.get(name)
        if scale is not None and _is_number(a) and _is_number(b):
            log, _low, width = scale
            if log:
                if a <= 0 or b <= 0:
                    return 1.0
                a, b = math.log(a), math.log(b)
            if width == 0:
                return 0.0 if a == b else 1.0
            return ((a - b) / width) ** 2
        return 0.0 if a == b else 1.0


_MISSING = object()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, default=str)


def _recording(job: Any, index: int) -> Recording | None:
    if not isinstance(job, Mapping):
        return None
    started, ended, params = job.get("started"), job.get("ended"), job.get("params")
    if not _is_number(started) or not _is_number(ended) or not isinstance(params, Mapping):
        return None
    points = []
    for m in job.get("metrics") or []:
        if not isinstance(m, (list, tuple)) or len(m) < 4:
            continue
        title, series, iteration, value = m[:4]
        if not isinstance(iteration, int) or isinstance(iteration, bool):
            continue
        points.append((iteration, str(title), str(series), float("nan") if value is None else float(value)))
    points.sort(key=lambda p: p[0])  # stable: report order within one iteration
    number = job.get("number")
    return Recording(
        number=number if isinstance(number, int) else index,
        params=dict(params),
        duration=max(float(ended) - float(started), 0.0),
        points=tuple(points),
        status=str(job.get("status")),
        exit_code=job.get("exit_code") if isinstance(job.get("exit_code"), int) else None,
        reason=job.get("reason"),
    )
