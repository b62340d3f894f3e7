r"""The study file: one TOML document that describes a whole study.

```toml
[study]                      # name (default: the file's stem), storage, seed
name = "digits"
storage = ".hyperscout"      # relative paths are relative to this file
seed = 0

[task]                       # script = "train.py" | argv = ["python", "train.py"]
script = "train.py"
args = ["--epochs", "20"]    # fixed arguments
params_as = "argparse"       # argparse | hydra | env | json
# cwd = "."   env = { OMP_NUM_THREADS = "1" }   env_prefix = "HP_"

[objective]                  # or [[objective]] tables for several objectives
title = "validation"
series = "accuracy"
sign = "max"                 # min | max | min_global | max_global

[strategy]
name = "random"              # any installed strategy: hyperscout plugins
[strategy.options]

[backend]
name = "local"
queue = "default"
[backend.options]

[limits]                     # ClearML's names and units (minutes)
total_max_jobs = 20
max_number_of_concurrent_tasks = 2
# time_limit_per_job, optimization_time_limit, compute_time_limit, pool_period_min,
# min_iteration_per_job, max_iteration_per_job, save_top_k_tasks_only

[[parameters]]               # the JSON form of clearml-param-search --params-search
name = "C"
type = "LogUniformParameterRange"
min_value = -3
max_value = 2

[[metrics]]                  # stdout patterns, for scripts that only print
regex = 'val_acc=(?P<value>[\d.]+)'
title = "validation"
series = "accuracy"
```

Every problem is a :class:`ConfigError` whose message starts with ``FILE: key.path:``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from hyperscout.capture import MetricPattern
from hyperscout.command import Command
from hyperscout.errors import ConfigError, HyperscoutError
from hyperscout.objective import Objective
from hyperscout.params import Parameter, parameter_from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["StudyConfig", "load_study"]

_SECTIONS = {"study", "task", "objective", "strategy", "backend", "limits", "parameters", "metrics"}
_KEYS = {
    "study": {"name", "storage", "seed"},
    "task": {"script", "argv", "args", "cwd", "env", "params_as", "env_prefix", "task_id"},
    "objective": {"title", "series", "sign"},
    "strategy": {"name", "options"},
    "backend": {"name", "options", "queue"},
    "limits": {
        "total_max_jobs", "max_number_of_concurrent_tasks", "time_limit_per_job", "optimization_time_limit",
        "compute_time_limit", "pool_period_min", "min_iteration_per_job", "max_iteration_per_job",
        "save_top_k_tasks_only", "time_limit_queued", "max_consecutive_failures", "total_max_iterations",
    },
}
_INT_LIMITS = {"total_max_jobs", "max_number_of_concurrent_tasks", "min_iteration_per_job", "max_iteration_per_job",
               "save_top_k_tasks_only", "max_consecutive_failures", "total_max_iterations"}
#: where each optimizer argument belongs in a study file, for "wrong table" errors
_HOME = {**{k: "limits" for k in _KEYS["limits"]}, "storage": "study", "seed": "study", "study_name": "study",
         "name": "study", "execution_queue": "backend", "queue": "backend", "backend": "backend",
         "backend_options": "backend.options", "optimizer_class": "strategy", "base_task_id": "task",
         "hyper_parameters": "parameters", "metric_patterns": "metrics", "objective_metric_title": "objective",
         "objective_metric_series": "objective", "objective_metric_sign": "objective"}


@attrs.frozen
class StudyConfig:
    """A validated study file, ready to become a :class:`~hyperscout.HyperParameterOptimizer`."""

    path: Path
    name: str
    storage: Path
    seed: int | None
    command: Command | str
    parameters: tuple[Parameter, ...]
    objectives: tuple[Objective, ...]
    strategy: str
    strategy_options: Mapping[str, Any]
    #: None: chosen from the task (a script runs locally, a task id goes to the backend that claims it)
    backend: str | None
    backend_options: Mapping[str, Any]
    queue: str | None
    limits: Mapping[str, Any]
    metrics: tuple[MetricPattern, ...]

    def optimizer_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "base_task_id": self.command,
            "hyper_parameters": list(self.parameters),
            "objective_metric_title": [o.title for o in self.objectives],
            "objective_metric_series": [o.series for o in self.objectives],
            "objective_metric_sign": [o.sign for o in self.objectives],
            "optimizer_class": self.strategy,
            "execution_queue": self.queue,
            "study_name": self.name,
            "storage": self.storage,
            "backend": self.backend,
            "backend_options": dict(self.backend_options),
            "seed": self.seed,
            "metric_patterns": list(self.metrics),
        }
        if len(self.objectives) == 1:
            o = self.objectives[0]
            kw.update(objective_metric_title=o.title, objective_metric_series=o.series, objective_metric_sign=o.sign)
        kw.update(self.limits)
        kw["strategy_options"] = dict(self.strategy_options)
        return kw


def _fail(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {message}")


def _table(path: Path, data: Mapping[str, Any], key: str, required: bool = False) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise _fail(path, key, f"missing [{key}] table; see docs/study-file.md")
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, key, f"must be a table, got {type(value).__name__}")
    allowed = _KEYS.get(key)
    if allowed is not None:
        for k in value:
            if k not in allowed and not (key == "task" and k.endswith("_task_id")):
                raise _fail(path, f"{key}.{k}", f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return dict(value)


def _str(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, key, f"expected a non-empty string, got {value!r}")
    return value


def load_study(file: str | Path) -> StudyConfig:
    """Read and validate a study file; raises :class:`ConfigError` naming the key path."""
    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"{path}: no such study file; check the path")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    for key in data:
        if key not in _SECTIONS:
            raise _fail(path, key, f"unknown section; allowed: {', '.join(sorted(_SECTIONS))}")
    base = path.resolve().parent

    study = _table(path, data, "study")
    name = _str(path, "study.name", study.get("name", path.stem))
    storage = Path(_str(path, "study.storage", study.get("storage", ".hyperscout")))
    storage = storage if storage.is_absolute() else base / storage
    seed = study.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _fail(path, "study.seed", f"expected an integer, got {seed!r}")

    task = _table(path, data, "task", required=True)
    cwd = task.get("cwd")
    cwd_path = None if cwd is None else (Path(_str(path, "task.cwd", cwd)))
    if cwd_path is not None and not cwd_path.is_absolute():
        cwd_path = base / cwd_path
    args = task.get("args", [])
    if not isinstance(args, list):
        raise _fail(path, "task.args", f"expected a list of strings, got {args!r}")
    env = task.get("env", {})
    if not isinstance(env, Mapping):
        raise _fail(path, "task.env", "expected a table of NAME = \"value\"")
    options = {k: task[k] for k in ("params_as", "env_prefix") if k in task}
    task_ids = [k for k in task if k == "task_id" or k.endswith("_task_id")]
    try:
        given = [k for k in ("script", "argv", *task_ids) if k in task]
        if len(given) > 1:
            raise _fail(path, "task", f"give one of script, argv or a task id, not {' and '.join(given)}")
        command: Command | str
        if task_ids:
            command = _str(path, f"task.{task_ids[0]}", task[task_ids[0]])
            # a file a backend reads ("runs.json" to replay, "jobs.py:job"): relative to the study file, as scripts are
            file_part, colon, function = command.partition(":") if ".py:" in command else (command, "", "")
            if file_part and not Path(file_part).is_absolute() and (base / file_part).is_file():
                command = f"{base / file_part}{colon}{function}"
        elif "script" in task:
            script = Path(_str(path, "task.script", task["script"]))
            script = script if script.is_absolute() else base / script
            if not script.is_file():
                raise _fail(path, "task.script", f"{str(script)!r} does not exist; give the path to a Python file")
            command = Command(
                argv=(sys.executable, "-u", str(script), *map(str, args)),
                cwd=str(cwd_path) if cwd_path else None, env=env, **options,
            )
        elif "argv" in task:
            argv = task["argv"]
            if not isinstance(argv, list) or not argv:
                raise _fail(path, "task.argv", f"expected a non-empty list of strings, got {argv!r}")
            argv = [sys.executable if a in ("python", "python3", "{python}") and i == 0 else str(a)
                    for i, a in enumerate(argv)]
            command = Command(argv=(*argv, *map(str, args)), cwd=str(cwd_path or base), env=env, **options)
        else:
            raise _fail(path, "task", "missing script (a Python file) or argv (a command line)")
    except ConfigError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise _fail(path, "task", str(exc)) from None

    raw_objectives = data.get("objective")
    if raw_objectives is None:
        raise _fail(path, "objective", "missing [objective] with title, series and sign")
    if isinstance(raw_objectives, Mapping):
        raw_objectives = [raw_objectives]
    objectives = []
    for i, o in enumerate(raw_objectives):
        where = "objective" if len(raw_objectives) == 1 else f"objective[{i}]"
        if not isinstance(o, Mapping):
            raise _fail(path, where, "must be a table with title, series and sign")
        for k in o:
            if k not in _KEYS["objective"]:
                raise _fail(path, f"{where}.{k}", "unknown key; allowed: series, sign, title")
        for k in ("title", "series"):
            if k not in o:
                raise _fail(path, f"{where}.{k}", "missing")
        try:
            objectives.append(Objective(o["title"], o["series"], o.get("sign", "min")))
        except HyperscoutError as exc:
            raise _fail(path, where, str(exc)) from None

    strategy = _table(path, data, "strategy")
    backend = _table(path, data, "backend")
    for sect, table in (("strategy", strategy), ("backend", backend)):
        if "options" in table and not isinstance(table["options"], Mapping):
            raise _fail(path, f"{sect}.options", "must be a table")
    for key in strategy.get("options", {}):
        home = _HOME.get(key)
        if home is not None:
            raise _fail(path, f"strategy.options.{key}", f"is not a strategy option; it belongs in [{home}]")

    limits = _table(path, data, "limits")
    for k, v in limits.items():
        integer = k in _INT_LIMITS
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or (v <= 0 and k not in ("save_top_k_tasks_only", "min_iteration_per_job")):
            kind = "a positive integer" if integer else "a positive number (minutes)" if "time" in k or "period" in k else "a positive number"
            raise _fail(path, f"limits.{k}", f"expected {kind}, got {v!r}")

    raw_params = data.get("parameters")
    if not raw_params or not isinstance(raw_params, list):
        raise _fail(path, "parameters", "declare at least one [[parameters]] table (name, type, ...)")
    parameters = []
    for i, p in enumerate(raw_params):
        try:
            parameters.append(parameter_from_dict(p))
        except HyperscoutError as exc:
            raise _fail(path, f"parameters[{i}]", str(exc)) from None
    names = [n for p in parameters for n in p.names]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise _fail(path, "parameters", f"parameter {sorted(dupes)[0]!r} is declared twice; give each a unique name")

    raw_metrics = data.get("metrics", [])
    if not isinstance(raw_metrics, list):
        raise _fail(path, "metrics", "must be a list of [[metrics]] tables")
    metrics = []
    for i, m in enumerate(raw_metrics):
        try:
            metrics.append(MetricPattern.of(m))
        except HyperscoutError as exc:
            raise _fail(path, f"metrics[{i}]", str(exc)) from None

    return StudyConfig(
        path=path,
        name=name,
        storage=storage,
        seed=seed,
        command=command,
        parameters=tuple(parameters),
        objectives=tuple(objectives),
        strategy=_str(path, "strategy.name", strategy.get("name", "random")),
        strategy_options=dict(strategy.get("options", {})),
        backend=None if "name" not in backend else _str(path, "backend.name", backend["name"]),
        backend_options=dict(backend.get("options", {})),
        queue=backend.get("queue", "default"),
        limits=limits,
        metrics=tuple(metrics),
    )
