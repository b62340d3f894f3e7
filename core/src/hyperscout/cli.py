"""``hyperscout``: run, resume and inspect studies from the terminal.

Every user error prints one line (``hyperscout: error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperscout.errors import ConfigError, HyperscoutError, PluginNotFoundError, UnsupportedError

EXIT_USAGE = 2
STORAGE_HELP = "the store's directory or .sqlite file (default: $HYPERSCOUT_STORAGE, else .hyperscout)"
#: the study ended without a single ranked job (every job failed, or never reported the objective)
EXIT_NO_RESULT = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return "-" if v is None else str(v)


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# -- running ----------------------------------------------------------------------------------
def _run_optimizer(kwargs: dict[str, Any], top_k: int, where: str | None = None) -> int:
    from hyperscout.optimizer import HyperParameterOptimizer

    report_period = kwargs.pop("_report_period_min", 0.1)
    try:
        opt = HyperParameterOptimizer(**kwargs)
    except (PluginNotFoundError, UnsupportedError) as exc:
        if where is None:
            raise
        msg = str(exc)
        key = "strategy" if msg.startswith(("unknown strategy", "strategy")) else "backend" if "backend" in msg[:20] else "parameters"
        if "has no option" in msg:
            key += ".options"
        elif msg.startswith("unknown"):
            key += ".name"
        raise ConfigError(f"{where}: {key}: {msg}") from None
    opt.set_report_period(report_period)
    interrupted = {"n": 0}

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted["n"] += 1
        if interrupted["n"] == 1:
            print("\nhyperscout: stopping: aborting running jobs (Ctrl-C again to force)...", file=sys.stderr)
            if opt._engine is not None:
                opt._engine.request_stop("stopped")
        else:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, on_sigint)
    old_term = signal.signal(signal.SIGTERM, on_sigint)
    try:
        opt.start()
        while not opt.wait(timeout=0.5 / 60):
            pass
    finally:
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGTERM, old_term)
    engine = opt._engine
    top = opt.get_top_experiments(top_k)
    _print_top(top, opt.objectives)
    if engine is not None:
        store_dir = engine.store.directory
        print(f"hyperscout: study {opt.study_name!r} is in {engine.store.path}; job logs in "
              f"{store_dir / 'jobs' / opt.study_name}")
    if interrupted["n"]:
        print(f"hyperscout: stopped; run the same command again to resume study {opt.study_name!r}")
        return 0
    if engine is not None and engine.end_message:
        print(f"hyperscout: error: {engine.end_message}", file=sys.stderr)
        return EXIT_NO_RESULT
    if not top and engine is not None:
        wanted = ", ".join(o.key for o in opt.objectives)
        seen = engine.reported_metrics()
        got = f"jobs reported {', '.join(seen)}" if seen else "jobs reported no scalar at all"
        print(f"hyperscout: error: no job finished with a value of {wanted}: {got}; check the objective's title and "
              "series, or `hyperscout status` for each job's reason", file=sys.stderr)
        return EXIT_NO_RESULT
    return 0


def _print_top(jobs: list[Any], objectives: Any) -> None:
    if not jobs:
        print("no job finished with an objective value")
        return
    rows = []
    for rank, j in enumerate(jobs, 1):
        row = {"rank": rank, "job": j.id, "status": j.status.value}
        for o, v in zip(objectives, j.objective_values or []):
            row[o.key] = v
        row.update(j.params)
        rows.append(row)
    cols = ["rank", "job", "status", *[o.key for o in objectives], *jobs[0].params.keys()]
    print(_table(rows, cols))


def cmd_run(args: argparse.Namespace) -> int:
    from hyperscout.config import load_study

    cfg = load_study(args.study)
    if args.detach:
        return _detach(args, cfg)
    kwargs = cfg.optimizer_kwargs()
    if args.study_name:
        kwargs["study_name"] = args.study_name
    kwargs["_report_period_min"] = args.report_period
    return _run_optimizer(kwargs, args.top, where=str(cfg.path))


def _detach(args: argparse.Namespace, cfg: Any) -> int:
    """Run the study in its own session: closing the terminal (or a web page) does not stop it."""
    import subprocess

    name = args.study_name or cfg.name
    logs = Path(cfg.storage) / "runs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    argv = [sys.executable, "-m", "hyperscout.cli", "run", str(cfg.path), "--top", str(args.top),
            "--report-period", str(args.report_period)]
    if args.study_name:
        argv += ["--study-name", args.study_name]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    print(f"hyperscout: study {name!r} runs detached as pid {proc.pid}; output in {log_path}; "
          f"`hyperscout status {cfg.path}` to watch, `kill -INT {proc.pid}` to stop")
    return 0


def _json_arg(flag: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag}: {text!r} is not valid JSON ({exc.msg}); quote it like '{{\"name\": ...}}'") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag}: {text!r} must be a JSON object")
    return value


def cmd_param_search(args: argparse.Namespace) -> int:
    from hyperscout.command import Command
    from hyperscout.params import DiscreteParameterRange, parameter_from_dict
    from hyperscout.plugins import strategies

    if not args.script and not args.task_id:
        raise ConfigError("give --script (a Python file to run locally) or --task-id (a task of a remote backend)")
    fixed: list[str] = []
    for a in args.args or []:
        if "=" not in a:
            raise ConfigError(f"--args: {a!r} must look like name=value")
        k, v = a.split("=", 1)
        fixed += [f"--{k.rsplit('/', 1)[-1]}", v]
    params = []
    for text in args.params_search or []:
        params.append(parameter_from_dict(_json_arg("--params-search", text)))
    for text in args.params_override or []:
        d = _json_arg("--params-override", text)
        if set(d) != {"name", "value"}:
            raise ConfigError(f"--params-override: {text!r} must be {{\"name\": ..., \"value\": ...}}")
        params.append(DiscreteParameterRange(d["name"], values=[d["value"]]))
    if not params:
        raise ConfigError("--params-search: give at least one parameter range as JSON")
    optimizer = args.optimizer_class
    if optimizer is None:
        optimizer = "OptimizerOptuna" if "optuna" in strategies() else "RandomSearch"
        print(f"hyperscout: --optimizer-class not given, using {optimizer}")
    kwargs: dict[str, Any] = {
        "base_task_id": args.task_id or Command.for_script(args.script, fixed, params_as=args.params_as),
        "hyper_parameters": params,
        "objective_metric_title": args.objective_metric_title,
        "objective_metric_series": args.objective_metric_series,
        "objective_metric_sign": args.objective_metric_sign,
        "optimizer_class": optimizer,
        "execution_queue": args.queue,
        "storage": args.storage or os.environ.get("HYPERSCOUT_STORAGE") or ".hyperscout",
        "study_name": args.study_name or args.task_name,
        "backend": args.backend,
        "seed": args.seed,
        "save_top_k_tasks_only": args.save_top_k_tasks_only,
        "_report_period_min": args.report_period,
    }
    for flag in ("optimization_time_limit", "compute_time_limit", "pool_period_min", "total_max_jobs",
                 "min_iteration_per_job", "max_iteration_per_job", "time_limit_per_job",
                 "max_number_of_concurrent_tasks", "time_limit_queued", "max_consecutive_failures",
                 "total_max_iterations"):
        value = getattr(args, flag)
        if value is not None:
            kwargs[flag] = value
    if args.metric_pattern:
        kwargs["metric_patterns"] = [_json_arg("--metric-pattern", t) for t in args.metric_pattern]
    if args.task_id:  # as clearml-param-search does: the optimizer is a task of its own on the server
        kwargs["always_create_task"] = True
    top = args.save_top_k_tasks_only if args.save_top_k_tasks_only and args.save_top_k_tasks_only > 0 else 10
    return _run_optimizer(kwargs, min(10, top))


# -- inspecting -------------------------------------------------------------------------------
def _open_store(storage: str) -> Any:
    """Readers open the store read-only: they never need a study's lease, and a read-only file works."""
    from hyperscout.store import Store

    return Store(storage, readonly=True)


def _resolve_study(args: argparse.Namespace) -> None:
    """``STUDY`` may be a study file: its name and storage are used (no --storage to repeat)."""
    study = getattr(args, "study", None)
    if study and study.endswith(".toml"):
        from hyperscout.config import load_study

        cfg = load_study(study)
        args.study = cfg.name
        if args.storage is None:
            args.storage = str(cfg.storage)
    if args.storage is None:
        args.storage = os.environ.get("HYPERSCOUT_STORAGE") or ".hyperscout"


def _study_info(store: Any, study: str) -> dict[str, Any]:
    info = store.get_study(study)
    if info is None:
        names = ", ".join(s["name"] for s in store.list_studies()) or "none"
        raise ConfigError(f"no study {study!r} in {store.path}; studies there: {names}")
    return info


def _load(storage: str, study: str, *, metrics: bool = True) -> tuple[Any, list[Any], dict[str, Any]]:
    from hyperscout.objective import Objective, ObjectiveSet

    store = _open_store(storage)
    info = _study_info(store, study)
    objectives = ObjectiveSet.of([Objective(**o) for o in info["definition"]["objectives"]])
    return objectives, store.load_jobs(study, with_metrics=metrics), info


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a job's output; ``--follow`` keeps printing while the job runs."""
    from hyperscout.engine import job_dir

    _objectives, jobs, _info = _load(args.storage, args.study, metrics=False)
    matches = [j for j in jobs if str(j.number) == args.job] or [j for j in jobs if j.id.startswith(args.job)]
    if len(matches) != 1:
        ids = ", ".join(f"{j.id} (#{j.number})" for j in jobs[:10]) or "none"
        what = "matches several jobs" if matches else "is not a job of this study"
        raise ConfigError(f"{args.job!r} {what}; give a job id or number, e.g. {ids}")
    job = matches[0]
    store = _open_store(args.storage)
    name = "stderr" if args.stderr else "stdout"
    path = Path(getattr(job, f"{name}_path") or job_dir(store, args.study, job.id) / f"{name}.log")
    if not path.exists():
        raise ConfigError(f"job {job.id} has no {name} log yet ({path}); it has not started")
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 16)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                continue
            if not args.follow:
                return 0
            (current,) = [j for j in store.load_jobs(args.study, with_metrics=False) if j.id == job.id]
            if current.status.finished:
                rest = fh.read()
                sys.stdout.buffer.write(rest)
                sys.stdout.buffer.flush()
                return 0
            time.sleep(0.2)  # tail -f: wait for the job to write more


def cmd_status(args: argparse.Namespace) -> int:
    store = _open_store(args.storage)
    if args.study is None:
        rows = store.list_studies()
        if not rows:
            print(f"no studies in {store.path}")
            return 0
        for r in rows:
            r["owner"] = r["owner"].describe() if r["owner"] is not None and r["state"] == "running" else None
        print(_table(rows, ["name", "state", "end_reason", "jobs", "completed", "failed", "pruned", "aborted",
                            "active", "owner"]))
        return 0
    info = _study_info(store, args.study)
    state = store.state_of(info["status"], info["owner"], info["heartbeat"])
    who = f" by {info['owner'].describe()}" if state == "running" and info["owner"] is not None else ""
    print(f"study {info['name']!r}: {state}{who}" + (f" ({info['end_reason']})" if info["end_reason"] else ""))
    # counted in SQL and only the last rows read: as quick at 100,000 jobs as at 10
    counts = store.job_counts(args.study)
    total = sum(counts.values())
    parts = [f"{n} {k}" for k, n in counts.items() if n and k != "superseded"]
    rerun = f" ({counts['superseded']} re-run)" if counts["superseded"] else ""
    print(f"jobs: {total}" + (f" = {', '.join(parts)}" if parts else "") + rerun)
    jobs = store.load_jobs(args.study, with_metrics=False) if args.all else store.last_jobs(args.study, args.last)
    rows = []
    for j in jobs:
        row = {"#": j.number, "job": j.id, "status": j.status.value, "duration": j.duration,
               "objective": j.objective_values, "budget": j.budget, "reason": j.reason}
        rows.append(row)
    print(_table(rows, ["#", "job", "status", "objective", "budget", "duration", "reason"]))
    if len(jobs) < total:
        print(f"(the last {len(jobs)} of {total} jobs; --all for every one, `hyperscout top {args.study}` for the best)")
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from hyperscout.objective import Objective, ObjectiveSet
    from hyperscout.results import ranked_jobs

    store = _open_store(args.storage)
    info = store.get_study(args.study)
    if info is not None and len(info["definition"]["objectives"]) == 1:  # ranked in SQL: no full load
        objectives = ObjectiveSet.of([Objective(**o) for o in info["definition"]["objectives"]])
        _print_top(store.top_single(args.study, objectives.primary.maximize, args.k), objectives)
        return 0
    objectives, jobs, _ = _load(args.storage, args.study, metrics=False)
    _print_top(ranked_jobs(jobs, objectives, args.k), objectives)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hyperscout.export import export_csv, export_json
    from hyperscout.objective import Objective, ObjectiveSet

    store = _open_store(args.storage)
    info = _study_info(store, args.study)
    objectives = ObjectiveSet.of([Objective(**o) for o in info["definition"]["objectives"]])
    write = export_json if args.format == "json" else export_csv
    if args.output:
        # written next to the target and renamed at the end: a failed export never leaves half a file
        target = Path(args.output)
        partial = target.with_name(target.name + ".partial")
        try:
            with open(partial, "w", encoding="utf-8", newline="") as out:
                n = write(store, info, objectives, out, **({"parallel": True} if args.format == "json" else {}))
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        print(f"wrote {n} jobs to {args.output}")
    else:
        write(store, info, objectives, sys.stdout)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    store = _open_store(args.storage)
    out = store.backup(args.output, args.study)
    what = f"study {args.study!r}" if args.study else "every study"
    print(f"wrote a backup of {what} to {out}; use it with --storage {out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from hyperscout.report import plot_study

    objectives, jobs, info = _load(args.storage, args.study)
    out = plot_study(info["name"], jobs, objectives, args.output)
    print(f"wrote {out}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from hyperscout.plugins import backends, strategies

    rows = []
    for kind, reg in (("strategy", strategies()), ("backend", backends())):
        for e in sorted(reg, key=lambda e: e.name):
            rows.append({"kind": kind, "name": e.name, "class": e.cls.__name__, "distribution": e.distribution,
                         "version": e.version})
    if args.json:
        print(json.dumps(rows, indent=1))
    elif rows:
        print(_table(rows, ["kind", "name", "class", "distribution", "version"]))
    else:
        print("no plugins installed; `pip install hyperscout-random hyperscout-local` for the basics")
    return 0


# -- parser -----------------------------------------------------------------------------------
#: the commands of the core itself: running one of them loads no plugin to build the parser
BUILTIN_COMMANDS = ("run", "param-search", "status", "top", "export", "plot", "backup", "logs", "plugins")


def build_parser(plugin_commands: bool = True) -> argparse.ArgumentParser:
    p = _Parser(prog="hyperscout", description="Hyperparameter optimization from plugins.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__import__('hyperscout').__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) the study described by a TOML file")
    run.add_argument("study", help="the study file (TOML)")
    run.add_argument("--study-name", help="override [study].name")
    run.add_argument("--detach", action="store_true",
                     help="run in the background, in its own session (output in STORAGE/runs/)")
    run.add_argument("--top", type=int, default=5, help="rows of the final table (default 5)")
    run.add_argument("--report-period", type=float, default=0.1, help="minutes between progress lines (default 0.1)")
    run.set_defaults(func=cmd_run)

    ps = sub.add_parser("param-search", help="the flags of clearml-param-search, run locally")
    ps.add_argument("--project-name", help="accepted for ClearML compatibility; recorded only")
    ps.add_argument("--task-name", help="the study name (same as --study-name)")
    src = ps.add_mutually_exclusive_group()
    src.add_argument("--task-id", help="a ClearML task id (needs a ClearML backend)")
    src.add_argument("--script", help="the Python script to optimize")
    ps.add_argument("--args", nargs="*", help="fixed script arguments as name=value")
    ps.add_argument("--queue", default=None, help="execution queue (remote backends)")
    ps.add_argument("--params-search", nargs="*", help="parameter ranges as JSON objects")
    ps.add_argument("--params-override", nargs="*", help='fixed parameters as {"name": ..., "value": ...}')
    ps.add_argument("--objective-metric-title", required=True)
    ps.add_argument("--objective-metric-series", required=True)
    ps.add_argument("--objective-metric-sign", required=True, choices=["min", "max", "min_global", "max_global"])
    ps.add_argument("--optimizer-class", default=None,
                    help="OptimizerOptuna, OptimizerBOHB, GridSearch, RandomSearch or any registered name "
                         "(default: optuna if installed, else random)")
    ps.add_argument("--optimization-time-limit", type=float, help="minutes for the whole study")
    ps.add_argument("--compute-time-limit", type=float, help="total minutes of job running time")
    ps.add_argument("--pool-period-min", type=float, help="minutes between polls of remote backends")
    ps.add_argument("--total-max-jobs", type=int)
    ps.add_argument("--min-iteration-per-job", type=int)
    ps.add_argument("--max-iteration-per-job", type=int)
    ps.add_argument("--save-top-k-tasks-only", type=int, default=10, help="-1 keeps everything")
    ps.add_argument("--time-limit-per-job", type=float, help="minutes")
    ps.add_argument("--max-number-of-concurrent-tasks", type=int)
    ps.add_argument("--time-limit-queued", type=float, help="minutes a job may wait in a queue before it is aborted")
    ps.add_argument("--total-max-iterations", type=int,
                    help="iterations of the objective summed over all jobs; then no new job starts")
    ps.add_argument("--max-consecutive-failures", type=int,
                    help="stop after this many jobs in a row fail the same way (default 5)")
    ps.add_argument("--local", action="store_true", help="run the jobs locally (the default backend)")
    ps.add_argument("--study-name")
    ps.add_argument("--storage", default=None, help=STORAGE_HELP)
    ps.add_argument("--backend", default=None, help="default: local for --script, the owner of --task-id")
    ps.add_argument("--seed", type=int)
    ps.add_argument("--params-as", default="argparse", choices=["argparse", "hydra", "env", "json"])
    ps.add_argument("--metric-pattern", nargs="*", help='{"regex": "...(?P<value>...)", "title": ..., "series": ...}')
    ps.add_argument("--report-period", type=float, default=0.1)
    ps.set_defaults(func=cmd_param_search)

    st = sub.add_parser("status", help="studies in a store, or the jobs of one study")
    st.add_argument("study", nargs="?")
    st.add_argument("--last", type=int, default=20, metavar="N", help="the last N jobs of the study (default 20)")
    st.add_argument("--all", action="store_true", help="every job of the study")
    st.add_argument("--storage", default=None, help=STORAGE_HELP)
    st.set_defaults(func=cmd_status)

    top = sub.add_parser("top", help="the best jobs of a study")
    top.add_argument("study")
    top.add_argument("-k", type=int, default=5)
    top.add_argument("--storage", default=None, help=STORAGE_HELP)
    top.set_defaults(func=cmd_top)

    ex = sub.add_parser("export", help="every job of a study as JSON or CSV")
    ex.add_argument("study")
    ex.add_argument("--format", choices=["json", "csv"], default="json")
    ex.add_argument("-o", "--output")
    ex.add_argument("--storage", default=None, help=STORAGE_HELP)
    ex.set_defaults(func=cmd_export)

    pl = sub.add_parser("plot", help="objective per job, best so far and parameter plots as a PNG")
    pl.add_argument("study")
    pl.add_argument("-o", "--output", default=None, help="PNG path (default STUDY.png)")
    pl.add_argument("--storage", default=None, help=STORAGE_HELP)
    pl.set_defaults(func=cmd_plot)

    bk = sub.add_parser("backup", help="copy the store (or one study) with SQLite's online backup, safe while it runs")
    bk.add_argument("study", nargs="?", help="keep only this study (default: every study)")
    bk.add_argument("-o", "--output", required=True, help="the new .sqlite file")
    bk.add_argument("--storage", default=None, help=STORAGE_HELP)
    bk.set_defaults(func=cmd_backup)

    lg = sub.add_parser("logs", help="a job's output (--follow while it runs)")
    lg.add_argument("study", help="the study's name, or its study file")
    lg.add_argument("job", help="the job's id (or a prefix of it) or its number")
    lg.add_argument("--stderr", action="store_true", help="the job's stderr instead of its stdout")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    lg.add_argument("--storage", default=None, help=STORAGE_HELP)
    lg.set_defaults(func=cmd_logs)

    pg = sub.add_parser("plugins", help="installed strategies and backends")
    pg.add_argument("--json", action="store_true")
    pg.set_defaults(func=cmd_plugins)

    if plugin_commands:
        from hyperscout.plugins import plugin_manager

        plugin_manager().hook.hyperscout_register_commands(subparsers=sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        first = next((w for w in words if not w.startswith("-")), None)
        # `hyperscout status ...` needs no plugin's command: skip importing every plugin (0.2 s)
        builtin = first in BUILTIN_COMMANDS and not any(w in ("-h", "--help") for w in words[:words.index(first)])
        args = build_parser(plugin_commands=not builtin).parse_args(words)
        if hasattr(args, "storage") and args.func is not cmd_param_search:
            _resolve_study(args)
        return int(args.func(args) or 0)
    except HyperscoutError as exc:
        print(f"hyperscout: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hyperscout: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
