"""The launch form: its fields, the TOML study file it becomes, and ClearML's JSON configuration.

The form is never validated by its own rules: it is written to a study file and read back with
:func:`hyperscout.config.load_study`, then the optimizer is built from it (as ``hyperscout run``
does), and each one-line error ``FILE: key.path: problem; fix`` is shown beside the field that
``key.path`` names. Only what cannot even become TOML (a number that is not one) is caught here.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from hyperscout.errors import ConfigError, HyperscoutError

__all__ = [
    "LIMITS", "PARAM_TYPES", "SIGNS", "FormError", "clearml_to_doc", "definition_to_doc", "doc_to_clearml",
    "doc_to_fields", "fields_to_doc", "parse_import", "toml_text", "validate_doc",
]

SIGNS = ("min", "max", "min_global", "max_global")
PARAM_TYPES = ("UniformParameterRange", "UniformIntegerParameterRange", "LogUniformParameterRange",
               "DiscreteParameterRange", "ParameterSet")
#: (key, label, integer?) in the order of ClearML's app: concurrency first, then "Advanced Configuration"
LIMITS = (
    ("max_number_of_concurrent_tasks", "Maximum concurrent tasks", True),
    ("total_max_jobs", "Limit total HPO tasks", True),
    ("save_top_k_tasks_only", "Number of top tasks to save", True),
    ("time_limit_per_job", "Limit single task running time (minutes)", False),
    ("min_iteration_per_job", "Minimal number of iterations per single task", True),
    ("max_iteration_per_job", "Maximum number of iterations per single task", True),
    ("optimization_time_limit", "Limit total optimization instance time (minutes)", False),
    ("compute_time_limit", "Limit total compute time of jobs (minutes)", False),
    ("total_max_iterations", "Limit total iterations (summed over jobs)", True),
    ("time_limit_queued", "Limit time a job may wait in a queue (minutes)", False),
    ("max_consecutive_failures", "Stop after this many failures in a row", True),
    ("pool_period_min", "Minutes between polls of a remote backend", False),
)
_LIMIT_KEYS = {k for k, _, _ in LIMITS}
_PARAM_FIELDS = ("name", "type", "min_value", "max_value", "step_size", "base", "include_max_value", "values",
                 "parameter_combinations")
_CLEARML_ALIASES = {"random": "RandomSearch", "grid": "GridSearch", "optuna": "OptimizerOptuna",
                    "bohb": "OptimizerBOHB", "skopt": "OptimizerSkopt"}
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

Fields = dict[str, str]


class FormError(HyperscoutError):
    """An import that cannot be read at all (one line)."""


# -- small parsers ---------------------------------------------------------------------------
def _value(text: str) -> Any:
    """A TOML value (number, boolean, quoted string, array, inline table) or, failing that, the text itself."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _number(text: str, integer: bool) -> int | float:
    v = _value(text)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        raise ValueError(f"expected {'an integer' if integer else 'a number'}, got {text.strip()!r}")
    return v


def _values(text: str) -> list[Any]:
    text = text.strip()
    if text.startswith("["):
        v = _value(text)
        if isinstance(v, list):
            return v
    return [_value(part) for part in _split(text)]


def _split(text: str) -> list[str]:
    """Comma-separated items; commas inside quotes do not split."""
    out, cur, quote = [], "", ""
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch == ",":
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return [x for x in out if x]


def _table_lines(text: str) -> dict[str, Any]:
    """``name = value`` lines (TOML), as for backend options and environment variables."""
    out: dict[str, Any] = {}
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"line {i}: {line!r} must look like name = value")
        k, v = line.split("=", 1)
        k = k.strip().strip('"')
        if not k:
            raise ValueError(f"line {i}: the name before '=' is empty")
        out[k] = _value(v)
    return out


def _fmt(v: Any) -> str:
    """A value as the form shows it (TOML syntax for everything but plain strings and numbers)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return v
    return tomli_w.dumps({"v": v}).split("=", 1)[1].strip()


def _lines(d: Mapping[str, Any]) -> str:
    return "\n".join(f"{k} = {tomli_w.dumps({'v': v}).split('=', 1)[1].strip()}" for k, v in d.items())


def rows(fields: Mapping[str, str], prefix: str) -> int:
    """How many ``prefix[i].*`` rows the fields hold."""
    idx = [int(m.group(1)) for k in fields if (m := re.match(rf"{re.escape(prefix)}\[(\d+)\]\.", k))]
    return max(idx) + 1 if idx else 0


# -- form -> study file ------------------------------------------------------------------------
def fields_to_doc(fields: Mapping[str, str], base_dir: Path, storage: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The TOML document the form describes, and the fields that could not even be parsed.

    Relative paths are made absolute against ``base_dir`` (where ``hyperscout ui`` was started), since the
    study file itself lives in the store directory.
    """
    f = {k: v for k, v in fields.items() if isinstance(v, str)}
    errors: dict[str, str] = {}
    doc: dict[str, Any] = {}

    def get(key: str) -> str:
        return f.get(key, "").strip()

    study: dict[str, Any] = {"storage": str(storage)}
    name = get("study.name")
    if name:
        if not _NAME_OK.match(name):
            errors["study.name"] = "use letters, digits, '.', '_' or '-' (up to 100), starting with a letter or digit"
        study["name"] = name
    else:
        errors["study.name"] = "give the study a name"
    if get("study.seed"):
        try:
            study["seed"] = _number(get("study.seed"), True)
        except ValueError as exc:
            errors["study.seed"] = str(exc)
    doc["study"] = study

    task: dict[str, Any] = {}
    kind = get("task.kind") or "script"
    try:
        if kind == "script":
            if get("task.script"):
                p = Path(get("task.script")).expanduser()
                task["script"] = str(p if p.is_absolute() else (base_dir / p))
        elif kind == "argv":
            if get("task.argv"):
                task["argv"] = shlex.split(get("task.argv"))
        elif kind == "task_id":
            if get("task.task_id"):
                task["task_id"] = get("task.task_id")
        else:
            errors["task.kind"] = "choose script, command or task id"
    except ValueError as exc:
        errors[f"task.{kind}"] = f"cannot split the command line ({exc}); check the quotes"
    if kind != "task_id":
        if get("task.args"):
            try:
                task["args"] = shlex.split(get("task.args"))
            except ValueError as exc:
                errors["task.args"] = f"cannot split the arguments ({exc}); check the quotes"
        if get("task.params_as"):
            task["params_as"] = get("task.params_as")
        if get("task.env_prefix"):
            task["env_prefix"] = get("task.env_prefix")
        if get("task.cwd"):
            p = Path(get("task.cwd")).expanduser()
            task["cwd"] = str(p if p.is_absolute() else (base_dir / p))
        if get("task.env"):
            try:
                task["env"] = {k: str(v) for k, v in _table_lines(f.get("task.env", "")).items()}
            except ValueError as exc:
                errors["task.env"] = str(exc)
    doc["task"] = task

    objectives = []
    for i in range(max(1, rows(f, "objective"))):
        o = {k: get(f"objective[{i}].{k}") for k in ("title", "series", "sign")}
        if not any(o.values()) and i > 0:
            continue
        objectives.append({k: v for k, v in o.items() if v})
    doc["objective"] = objectives[0] if len(objectives) == 1 else objectives

    strategy_name = get("strategy.name") or "random"
    options: dict[str, Any] = {}
    prefix = f"strategy.options.{strategy_name}."
    for k, v in f.items():
        if k.startswith(prefix) and v.strip():
            options[k[len(prefix):]] = _value(v)
    if get("strategy.options_extra"):
        try:
            options.update(_table_lines(f["strategy.options_extra"]))
        except ValueError as exc:
            errors["strategy.options_extra"] = str(exc)
    doc["strategy"] = {"name": strategy_name, **({"options": options} if options else {})}

    backend: dict[str, Any] = {}
    if get("backend.name"):
        backend["name"] = get("backend.name")
    if get("backend.queue"):
        backend["queue"] = get("backend.queue")
    if get("backend.options"):
        try:
            backend["options"] = _table_lines(f["backend.options"])
        except ValueError as exc:
            errors["backend.options"] = str(exc)
    if backend:
        doc["backend"] = backend

    limits: dict[str, Any] = {}
    for key, _label, integer in LIMITS:
        text = get(f"limits.{key}")
        if text:
            try:
                limits[key] = _number(text, integer)
            except ValueError as exc:
                errors[f"limits.{key}"] = str(exc)
    if limits:
        doc["limits"] = limits

    params = []
    for i in range(rows(f, "parameters")):
        p: dict[str, Any] = {}
        ptype = get(f"parameters[{i}].type") or "UniformParameterRange"
        if not any(get(f"parameters[{i}].{k}") for k in _PARAM_FIELDS if k != "type"):
            continue  # an empty row
        p["type"] = ptype
        if ptype != "ParameterSet":
            p["name"] = get(f"parameters[{i}].name")
        if ptype in ("UniformParameterRange", "UniformIntegerParameterRange", "LogUniformParameterRange"):
            integer = ptype == "UniformIntegerParameterRange"
            for k in ("min_value", "max_value", "step_size") + (("base",) if ptype == "LogUniformParameterRange" else ()):
                text = get(f"parameters[{i}].{k}")
                if text:
                    try:
                        p[k] = _number(text, integer and k != "base")
                    except ValueError as exc:
                        errors[f"parameters[{i}].{k}"] = str(exc)
            inc = get(f"parameters[{i}].include_max_value")
            if inc:
                p["include_max_value"] = inc.lower() in ("1", "true", "on", "yes")
        elif ptype == "DiscreteParameterRange":
            p["values"] = _values(get(f"parameters[{i}].values")) if get(f"parameters[{i}].values") else []
        elif ptype == "ParameterSet":
            text = get(f"parameters[{i}].parameter_combinations")
            try:
                combos = json.loads(text) if text else []
                if not isinstance(combos, list):
                    raise ValueError("expected a JSON list of objects")
                p["parameter_combinations"] = combos
            except (ValueError, json.JSONDecodeError) as exc:
                errors[f"parameters[{i}].parameter_combinations"] = f"not a JSON list of objects ({exc})"
        params.append(p)
    doc["parameters"] = params

    metrics = []
    for i in range(rows(f, "metrics")):
        m = {k: get(f"metrics[{i}].{k}") for k in ("regex", "title", "series")}
        if any(m.values()):
            metrics.append({k: v for k, v in m.items() if v})
    if metrics:
        doc["metrics"] = metrics
    return doc, errors


def toml_text(doc: Mapping[str, Any]) -> str:
    """The study file; ``[[objective]]`` tables for several objectives, ``[objective]`` for one."""
    doc = _drop_none(doc)
    parts = ["# written by hyperscout ui; `hyperscout run` this file to run or resume the study\n"]
    for key, value in doc.items():
        rows = value if isinstance(value, list) and all(isinstance(v, Mapping) for v in value) and value else None
        if rows is not None:  # [[parameters]], [[objective]], [[metrics]]: one readable table each
            parts += [f"[[{key}]]\n" + tomli_w.dumps(dict(r)) for r in rows]
        elif isinstance(value, Mapping):
            parts.append(tomli_w.dumps({key: dict(value)}))
        else:
            parts.append(tomli_w.dumps({key: value}))
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def _drop_none(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_none(x) for x in v]
    return v


# -- study file -> form -----------------------------------------------------------------------
def doc_to_fields(doc: Mapping[str, Any], declared: Mapping[str, tuple[str, ...]] | None = None) -> Fields:
    """The form fields for a study file (import, clone, edit and re-run).

    ``declared`` maps each strategy to the option names it declares; other options go to the free-form box.
    """
    f: Fields = {}
    study = doc.get("study") or {}
    f["study.name"] = str(study.get("name", ""))
    f["study.seed"] = _fmt(study.get("seed"))
    task = doc.get("task") or {}
    ids = [k for k in task if k == "task_id" or k.endswith("_task_id")]
    if ids:
        f["task.kind"], f["task.task_id"] = "task_id", str(task[ids[0]])
    elif "argv" in task:
        f["task.kind"], f["task.argv"] = "argv", shlex.join(str(a) for a in task["argv"])
    else:
        f["task.kind"], f["task.script"] = "script", str(task.get("script", ""))
    if task.get("args"):
        f["task.args"] = shlex.join(str(a) for a in task["args"])
    for k in ("params_as", "env_prefix", "cwd"):
        if task.get(k):
            f[f"task.{k}"] = str(task[k])
    if task.get("env"):
        f["task.env"] = _lines(task["env"])
    objectives = doc.get("objective") or []
    if isinstance(objectives, Mapping):
        objectives = [objectives]
    for i, o in enumerate(objectives):
        for k in ("title", "series", "sign"):
            f[f"objective[{i}].{k}"] = str(o.get(k, "min" if k == "sign" else ""))
    if not objectives:
        f["objective[0].sign"] = "min"
    strategy = doc.get("strategy") or {}
    name = str(strategy.get("name", "random"))
    f["strategy.name"] = name
    extra = {}
    known = (declared or {}).get(name, ())
    for k, v in (strategy.get("options") or {}).items():
        if k in known:
            f[f"strategy.options.{name}.{k}"] = _fmt(v)
        else:
            extra[k] = v
    if extra:
        f["strategy.options_extra"] = _lines(extra)
    backend = doc.get("backend") or {}
    if backend.get("name"):
        f["backend.name"] = str(backend["name"])
    if backend.get("queue"):
        f["backend.queue"] = str(backend["queue"])
    if backend.get("options"):
        f["backend.options"] = _lines(backend["options"])
    for k, v in (doc.get("limits") or {}).items():
        f[f"limits.{k}"] = _fmt(v)
    for i, p in enumerate(doc.get("parameters") or []):
        f[f"parameters[{i}].type"] = str(p.get("type", "UniformParameterRange"))
        for k in _PARAM_FIELDS:
            if k == "type" or k not in p:
                continue
            v = p[k]
            if k == "values":
                f[f"parameters[{i}].values"] = ", ".join(_fmt(x) if not isinstance(x, str) or "," in x or x != x.strip()
                                                         else x for x in v)
            elif k == "parameter_combinations":
                f[f"parameters[{i}].parameter_combinations"] = json.dumps(v)
            else:
                f[f"parameters[{i}].{k}"] = _fmt(v)
    for i, m in enumerate(doc.get("metrics") or []):
        for k in ("regex", "title", "series"):
            f[f"metrics[{i}].{k}"] = str(m.get(k, ""))
    return f


def blank_fields() -> Fields:
    return {"task.kind": "script", "task.params_as": "argparse", "objective[0].sign": "min",
            "strategy.name": "random", "parameters[0].type": "UniformParameterRange",
            "limits.max_number_of_concurrent_tasks": "2", "limits.total_max_jobs": "10"}


# -- validation: the same code as study files ----------------------------------------------------
def _field_for(key: str, message: str, fields: Mapping[str, str]) -> str:
    """The form field a ``load_study`` key path (or an optimizer error) points at."""
    kind = fields.get("task.kind") or "script"
    n_obj = max(1, rows(fields, "objective"))
    if key in ("task", "task.script", "task.argv", "task.task_id") or key.endswith("_task_id"):
        return f"task.{kind}" if key == "task" or key.endswith("_task_id") else key
    m = re.match(r"^objective(?:\[(\d+)\])?(?:\.(\w+))?$", key)
    if m:
        i = int(m.group(1) or 0)
        sub = m.group(2) or next((k for k in ("series", "sign", "title") if k in message), "title")
        return f"objective[{min(i, n_obj - 1)}].{sub}"
    m = re.match(r"^parameters\[(\d+)\]", key)
    if m or key == "parameters":
        if m:
            i = int(m.group(1))
        else:
            i = 0
            for j in range(rows(fields, "parameters")):
                nm = fields.get(f"parameters[{j}].name", "")
                if nm and repr(nm) in message:
                    i = j
                    break
        for k in ("parameter_combinations", "include_max_value", "step_size", "min_value", "max_value", "values",
                  "base"):
            if k in message:
                return f"parameters[{i}].{k}"
        if "type" in message.split(":")[0] or "unknown type" in message or "parameter type" in message:
            return f"parameters[{i}].type"
        return f"parameters[{i}].name"
    m = re.match(r"^strategy\.options\.([^.]+)", key)
    if m:
        cand = f"strategy.options.{fields.get('strategy.name', '')}.{m.group(1)}"
        return cand if cand in fields else "strategy.options_extra"
    if key.startswith("strategy.options"):
        return "strategy.options_extra"
    if key.startswith("strategy"):
        return "strategy.name"
    if key.startswith("backend.options"):
        return "backend.options"
    if key.startswith("backend.queue"):
        return "backend.queue"
    if key.startswith("backend"):
        return "backend.name"
    m = re.match(r"^metrics\[(\d+)\]", key)
    if m:
        return f"metrics[{m.group(1)}].regex"
    if key in ("study.name", "study.seed", "study.storage") or key.startswith(("limits.", "task.")):
        return key
    return "_form"


def _optimizer_field(message: str, fields: Mapping[str, str]) -> str:
    """Which field an error of the optimizer's constructor is about (what ``hyperscout run`` maps to a key)."""
    low = message.lower()
    for key, _label, _int in LIMITS:
        if key in message:
            return f"limits.{key}"
    if "strategy" in low[:40] or "optimizer_class" in message:
        if "option" in low:
            m = re.search(r"option[s]? '?([A-Za-z_][\w]*)'?", message)
            name = fields.get("strategy.name", "")
            if m and f"strategy.options.{name}.{m.group(1)}" in fields:
                return f"strategy.options.{name}.{m.group(1)}"
            return "strategy.options_extra"
        return "strategy.name"
    if "backend" in low[:60]:
        return "backend.options" if "option" in low else "backend.name"
    if "base_task" in message or "task id" in low or "script" in low:
        return f"task.{fields.get('task.kind') or 'script'}"
    if "seed" in low:
        return "study.seed"
    for j in range(rows(fields, "parameters")):
        nm = fields.get(f"parameters[{j}].name", "")
        if nm and repr(nm) in message:
            return _field_for(f"parameters[{j}]", message, fields)
    if "objective" in low:
        return "objective[0].title"
    return "_form"


def validate_doc(doc: Mapping[str, Any], fields: Mapping[str, str], workdir: Path) -> tuple[dict[str, str], Any]:
    """Errors by field (empty when the study can run) and the loaded config.

    Runs :func:`hyperscout.config.load_study` on the TOML the form becomes, then builds the optimizer
    from it as ``hyperscout run`` would (strategy, its options and the backend are checked there).
    """
    from hyperscout.config import load_study
    from hyperscout.optimizer import HyperParameterOptimizer

    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", dir=workdir, delete=False, encoding="utf-8") as fh:
        fh.write(toml_text(doc))
        path = Path(fh.name)
    try:
        try:
            cfg = load_study(path)
        except ConfigError as exc:
            text = str(exc)
            prefix = f"{path}: "
            rest = text[len(prefix):] if text.startswith(prefix) else text
            key, _, message = rest.partition(": ")
            if not message:
                key, message = "", rest
            return {_field_for(key, message, fields): message}, None
        try:
            kwargs = cfg.optimizer_kwargs()
            opt = HyperParameterOptimizer(**kwargs, show_progress=False)
        except HyperscoutError as exc:
            return {_optimizer_field(str(exc), fields): str(exc)}, None
        close = getattr(getattr(opt, "_backend", None), "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # a backend that was never started has nothing to close
                pass
        return {}, cfg
    finally:
        path.unlink(missing_ok=True)


# -- ClearML's JSON configuration ----------------------------------------------------------------
def doc_to_clearml(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The form as ClearML's HPO app exports it: ``HyperParameterOptimizer``'s argument names."""
    task = doc.get("task") or {}
    objectives = doc.get("objective") or []
    if isinstance(objectives, Mapping):
        objectives = [objectives]
    one = len(objectives) == 1
    strategy = doc.get("strategy") or {}
    backend = doc.get("backend") or {}
    out: dict[str, Any] = {
        "study_name": (doc.get("study") or {}).get("name"),
        "base_task_id": task.get("task_id") or task.get("script") or (task.get("argv") and shlex.join(task["argv"])),
        "hyper_parameters": list(doc.get("parameters") or []),
        "objective_metric_title": objectives[0].get("title") if one else [o.get("title") for o in objectives],
        "objective_metric_series": objectives[0].get("series") if one else [o.get("series") for o in objectives],
        "objective_metric_sign": objectives[0].get("sign", "min") if one else [o.get("sign", "min") for o in objectives],
        "optimizer_class": _CLEARML_ALIASES.get(strategy.get("name", "random"), strategy.get("name", "random")),
        "execution_queue": backend.get("queue", "default"),
        **(doc.get("limits") or {}),
    }
    if "argv" in task:
        out["base_task_argv"] = task["argv"]
    for k in ("args", "params_as", "env_prefix", "cwd", "env"):
        if task.get(k):
            out[f"task_{k}" if k != "params_as" else "params_as"] = task[k]
    if strategy.get("options"):
        out["strategy_options"] = strategy["options"]
    if backend.get("name"):
        out["backend"] = backend["name"]
    if backend.get("options"):
        out["backend_options"] = backend["options"]
    if (doc.get("study") or {}).get("seed") is not None:
        out["seed"] = doc["study"]["seed"]
    if doc.get("metrics"):
        out["metric_patterns"] = doc["metrics"]
    return {k: v for k, v in out.items() if v is not None}


_CLI_NAMES = {"task_id": "base_task_id", "script": "base_task_id", "queue": "execution_queue",
              "task_name": "study_name", "params_search": "hyper_parameters", "metric_pattern": "metric_patterns"}
_IGNORED = {"project_name", "local", "spawn_project", "auto_connect_task", "always_create_task", "storage",
            "report_period"}


def clearml_to_doc(data: Mapping[str, Any]) -> dict[str, Any]:
    """A study file from ClearML's JSON configuration (app export, or ``clearml-param-search`` flag names)."""
    d: dict[str, Any] = {}
    for k, v in data.items():
        key = str(k).lstrip("-").replace("-", "_")
        d[_CLI_NAMES.get(key, key)] = v
    for k in _IGNORED:
        d.pop(k, None)
    doc: dict[str, Any] = {"study": {}, "task": {}}
    if d.get("study_name"):
        doc["study"]["name"] = str(d.pop("study_name"))
    else:
        d.pop("study_name", None)
    if d.get("seed") is not None:
        doc["study"]["seed"] = d.pop("seed")
    d.pop("seed", None)
    base = d.pop("base_task_id", None)
    argv = d.pop("base_task_argv", None)
    if argv:
        doc["task"]["argv"] = list(argv)
    elif isinstance(base, str) and (base.endswith(".py") or "/" in base):
        doc["task"]["script"] = base
    elif base:
        doc["task"]["task_id"] = str(base)
    for k in ("args", "env_prefix", "cwd", "env"):
        if f"task_{k}" in d:
            doc["task"][k] = d.pop(f"task_{k}")
    if "params_as" in d:
        doc["task"]["params_as"] = d.pop("params_as")
    if "args" in d and isinstance(d["args"], list):  # clearml-param-search --args name=value
        doc["task"].setdefault("args", [])
        for a in d.pop("args"):
            k, _, v = str(a).partition("=")
            doc["task"]["args"] += [f"--{k.rsplit('/', 1)[-1]}", v]
    titles, series, signs = (d.pop(f"objective_metric_{k}", None) for k in ("title", "series", "sign"))
    if isinstance(titles, list):
        series = series if isinstance(series, list) else [series] * len(titles)
        signs = signs if isinstance(signs, list) else [signs or "min"] * len(titles)
        doc["objective"] = [{"title": t, "series": s, "sign": g} for t, s, g in zip(titles, series, signs)]
    elif titles is not None or series is not None:
        doc["objective"] = {"title": titles or "", "series": series or "", "sign": signs or "min"}
    params = d.pop("hyper_parameters", None) or []
    out_params = []
    for p in params:
        if isinstance(p, str):
            try:
                p = json.loads(p)
            except json.JSONDecodeError as exc:
                raise FormError(f"hyper_parameters: {p!r} is not valid JSON ({exc.msg})") from None
        if isinstance(p, Mapping):
            p = dict(p)
            if isinstance(p.get("name"), str) and p["name"].startswith("General/"):
                p["name"] = p["name"][len("General/"):]
            out_params.append(p)
    for o in d.pop("params_override", None) or []:
        o = json.loads(o) if isinstance(o, str) else o
        out_params.append({"type": "DiscreteParameterRange", "name": o.get("name"), "values": [o.get("value")]})
    doc["parameters"] = out_params
    opt = d.pop("optimizer_class", None)
    strategy: dict[str, Any] = {}
    if opt:
        strategy["name"] = {v: k for k, v in _CLEARML_ALIASES.items()}.get(str(opt), str(opt))
    if d.get("strategy_options"):
        strategy["options"] = dict(d.pop("strategy_options"))
    d.pop("strategy_options", None)
    if strategy:
        doc["strategy"] = strategy
    backend: dict[str, Any] = {}
    if d.get("execution_queue"):
        backend["queue"] = d.pop("execution_queue")
    d.pop("execution_queue", None)
    if d.get("backend"):
        backend["name"] = d.pop("backend")
    d.pop("backend", None)
    if d.get("backend_options"):
        backend["options"] = dict(d.pop("backend_options"))
    d.pop("backend_options", None)
    if backend:
        doc["backend"] = backend
    limits = {k: d.pop(k) for k in list(d) if k in _LIMIT_KEYS}
    limits = {k: v for k, v in limits.items() if v is not None}
    if limits:
        doc["limits"] = limits
    if d.get("metric_patterns"):
        doc["metrics"] = [json.loads(m) if isinstance(m, str) else m for m in d.pop("metric_patterns")]
    d.pop("metric_patterns", None)
    if d:
        raise FormError(f"unknown key(s) {', '.join(sorted(d))} in the JSON configuration; use the argument names "
                        "of HyperParameterOptimizer (or clearml-param-search's flags)")
    return doc


def parse_import(filename: str, data: bytes) -> dict[str, Any]:
    """A study file from an uploaded TOML study file or a ClearML JSON configuration."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError(f"{filename}: not a UTF-8 text file") from None
    if filename.lower().endswith(".json") or text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormError(f"{filename}: not valid JSON ({exc.msg} at line {exc.lineno}); fix the syntax") from None
        if not isinstance(obj, Mapping):
            raise FormError(f"{filename}: the JSON configuration must be an object")
        return clearml_to_doc(obj)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormError(f"{filename}: not valid TOML ({exc}); fix the syntax") from None


# -- a study that was not started from the form -----------------------------------------------------
def _literal(text: Any) -> Any:
    """The stored definition keeps strategy options as ``repr``; read them back where they are literals."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def definition_to_doc(name: str, definition: Mapping[str, Any], storage: Path) -> dict[str, Any]:
    """A study file rebuilt from the definition the store keeps (studies started by the CLI or from Python).

    What the store does not keep (metric patterns, the optimization time limit, the queue) is missing.
    """
    doc: dict[str, Any] = {"study": {"name": name, "storage": str(storage)}}
    if definition.get("seed") is not None:
        doc["study"]["seed"] = definition["seed"]
    base = definition.get("base_task")
    if isinstance(base, Mapping):
        argv = list(base.get("argv") or [])
        task: dict[str, Any] = {"argv": argv}
        if base.get("cwd"):
            task["cwd"] = base["cwd"]
        if base.get("env"):
            task["env"] = dict(base["env"])
        if base.get("params_as"):
            task["params_as"] = base["params_as"]
        if base.get("env_prefix"):
            task["env_prefix"] = base["env_prefix"]
        if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-u" and argv[2].endswith(".py"):
            task = {"script": argv[2], **({"args": argv[3:]} if argv[3:] else {}),
                    **{k: v for k, v in task.items() if k != "argv"}}
        doc["task"] = task
    elif base:
        doc["task"] = {"task_id": str(base)}
    objectives = [dict(o) for o in definition.get("objectives") or []]
    doc["objective"] = objectives[0] if len(objectives) == 1 else objectives
    strategy: dict[str, Any] = {"name": definition.get("strategy") or "random"}
    opts = {k: _literal(v) for k, v in (definition.get("strategy_options") or {}).items()}
    if opts:
        strategy["options"] = opts
    doc["strategy"] = strategy
    if definition.get("backend"):
        doc["backend"] = {"name": definition["backend"]}
    lim = definition.get("limits") or {}
    limits: dict[str, Any] = {}
    if lim.get("max_concurrency"):
        limits["max_number_of_concurrent_tasks"] = lim["max_concurrency"]
    for k in ("total_max_jobs", "min_iteration_per_job", "max_iteration_per_job", "max_consecutive_failures",
              "total_max_iterations"):
        if lim.get(k) is not None:
            limits[k] = lim[k]
    if lim.get("save_top_k") is not None:
        limits["save_top_k_tasks_only"] = lim["save_top_k"]
    for k in ("time_limit_per_job", "compute_time_limit", "time_limit_queued"):
        if lim.get(k) is not None:
            limits[k] = _clean(lim[k] / 60.0)
    if lim.get("poll_interval"):
        limits["pool_period_min"] = _clean(lim["poll_interval"] / 60.0)
    doc["limits"] = limits
    doc["parameters"] = [dict(p) for p in definition.get("parameters") or []]
    return doc


def _clean(x: float) -> float | int:
    y = float(f"{x:.10g}")
    return int(y) if y.is_integer() else y
