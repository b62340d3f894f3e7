"""How a job is started and how it receives its parameters.

The local "base task" is either a path to a Python script (run with the current interpreter,
parameters passed as ``--name value``) or a :class:`Command`, which sets argv, working directory,
environment and one of four ways of passing parameters:

* ``argparse``: ``--name value`` appended to argv (a ClearML section prefix such as ``Args/`` is
  dropped: ``Args/lr`` becomes ``--lr``);
* ``hydra``: ``name=value`` overrides appended to argv, as Hydra takes them;
* ``env``: one environment variable per parameter, ``PREFIX`` + the name upper-cased with
  non-alphanumerics turned into ``_``;
* ``json``: the parameters written to a JSON file whose path is in ``HYPERSCOUT_PARAMS_FILE``
  (and replaces ``{params_file}`` in argv).

Whatever the style, argv items may hold ``{name}`` placeholders, and the trial can always read
its parameters with :func:`hyperscout.trial.get_parameters`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from hyperscout.errors import ConfigError
from hyperscout.trial import ENV_JOB_ID, ENV_PARAMS, ENV_PARAMS_FILE, ENV_STUDY

__all__ = ["PARAM_STYLES", "Command", "format_value"]

PARAM_STYLES = ("argparse", "hydra", "env", "json")


def format_value(value: Any) -> str:
    """A parameter value as text on a command line (full float precision, lists as JSON)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _check_style(_inst: Any, _attr: Any, value: str) -> None:
    if value not in PARAM_STYLES:
        raise ConfigError(f"params_as={value!r} is not one of {', '.join(PARAM_STYLES)}")


def _argv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"command argv must be a non-empty list of strings, got {value!r}")
    return tuple(str(v) for v in value)


class _Placeholders(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@attrs.frozen
class Command:
    """A command template: one per study, rendered once per job."""

    argv: tuple[str, ...] = attrs.field(converter=_argv)
    cwd: str | None = None
    env: Mapping[str, str] = attrs.field(factory=dict, converter=lambda e: {str(k): str(v) for k, v in dict(e).items()})
    params_as: str = attrs.field(default="argparse", validator=_check_style)
    env_prefix: str = ""

    @classmethod
    def for_script(cls, script: str | os.PathLike[str], args: Sequence[str] = (), **kwargs: Any) -> Command:
        """Run a Python script with this interpreter, unbuffered so output arrives as it is printed."""
        path = Path(script)
        if not path.is_file():
            raise ConfigError(f"script {str(script)!r} does not exist; give the path to a Python file")
        return cls(argv=(sys.executable, "-u", str(path.resolve()), *map(str, args)), **kwargs)

    @classmethod
    def coerce(cls, base: str | os.PathLike[str] | Command) -> Command:
        """``base_task_id`` as the local backend takes it: a Command or a path to a script."""
        if isinstance(base, Command):
            return base
        if isinstance(base, (str, os.PathLike)):
            return cls.for_script(base)
        raise ConfigError(f"base_task_id={base!r} must be a path to a Python script or a hyperscout.Command")

    def render(
        self, params: Mapping[str, Any], *, job_id: str, study: str, params_file: str | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """argv and the extra environment for one job."""
        values = _Placeholders({k: format_value(v) for k, v in params.items()})
        values.update({_short(k): format_value(v) for k, v in params.items()})
        if params_file:
            values["params_file"] = params_file
        argv = [a.format_map(values) if "{" in a else a for a in self.argv]
        env = dict(self.env)
        env[ENV_PARAMS] = json.dumps(dict(params), default=str)
        env[ENV_JOB_ID] = job_id
        env[ENV_STUDY] = study
        if self.params_as == "argparse":
            for k, v in params.items():
                argv += [f"--{_short(k)}", format_value(v)]
        elif self.params_as == "hydra":
            argv += [f"{k}={format_value(v)}" for k, v in params.items()]
        elif self.params_as == "env":
            for k, v in params.items():
                env[self.env_prefix + re.sub(r"[^A-Za-z0-9]", "_", k).upper()] = format_value(v)
        if params_file:
            Path(params_file).write_text(json.dumps(dict(params), indent=1, default=str), encoding="utf-8")
            env[ENV_PARAMS_FILE] = params_file
        return argv, env

    def to_dict(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "cwd": self.cwd, "env": dict(self.env), "params_as": self.params_as,
                "env_prefix": self.env_prefix}
