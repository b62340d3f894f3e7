"""What a simulated job is: a Python callable of the parameters and budget that yields steps.

The job-function protocol::

    def job(params: dict[str, Any], budget: float | None) -> Iterable[tuple[float, int, Mapping[str, float]]]:
        for epoch in range(1, 51):
            yield 2.5, epoch, {"validation/loss": loss_after(params, epoch)}

Each step is ``(duration, iteration, metrics)``: the job spends ``duration`` virtual seconds (a
finite number >= 0), then reports every ``metrics`` entry at ``iteration``. A metric's key is
``"title/series"`` (split at the last ``/``) or a ``(title, series)`` tuple; its value is a number
(NaN and infinities are passed on, the engine fails the job on a non-finite objective).

* ``budget`` is the iteration cap the strategy gave the job (``Suggestion.budget``), or ``None``.
  The engine stops a job at its cap whatever the function does; a function that ends at its
  budget exits by itself, as a well-behaved training script does.
* The job ends when the iterable is exhausted (exit code 0). An exception fails it (exit code 1,
  reason ``"ValueError: ..."``); ``raise SimExit(code, reason)`` picks the exit code and reason.
* A function that also takes a keyword ``rng`` gets a :class:`random.Random` seeded from the
  backend's ``seed`` and the parameters, so noise is the same every time the same configuration
  runs (and different per configuration). Use it instead of the global ``random``.

The function runs in the optimizer's thread, one step at a time, when the virtual clock reaches
that step: keep each step cheap (a formula, a table look-up), never sleep.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import attrs

from hyperscout.errors import ConfigError

__all__ = ["JobFunction", "SimExit", "SimTask", "Step", "StepError", "parse_step"]

Step = tuple[float, int, Mapping[Union[str, tuple[str, str]], float]]
JobFunction = Callable[..., Iterable[Step]]

_FIX = "give a callable job(params, budget), an import string 'module:function' or 'file.py:function', " \
       "or the path of a `hyperscout export --format json` file to replay"


class SimExit(Exception):
    """Raise it in a job function to end the job with ``exit_code`` and ``reason`` (a crash, OOM, ...)."""

    def __init__(self, exit_code: int = 1, reason: str | None = None) -> None:
        super().__init__(exit_code, reason)
        self.exit_code = int(exit_code)
        self.reason = reason


class StepError(ValueError):
    """A yielded step that is not ``(duration, iteration, metrics)``; the message says what to yield."""


@attrs.frozen
class SimTask:
    """A job function, ready to run: what :attr:`JobSpec.task` carries for the ``sim`` backend."""

    function: JobFunction
    #: how the user named it (``"pkg.mod:fn"``, ``"replay:runs.json"``): shown in the study's definition
    label: str
    #: whether the function takes the keyword ``rng``
    wants_rng: bool = False

    def __str__(self) -> str:
        return self.label

    def start(self, params: Mapping[str, Any], budget: float | None, rng: Any) -> Iterator[Step]:
        """Call the function; what it returns must be iterable (a generator, a list of steps)."""
        out = self.function(dict(params), budget, rng=rng) if self.wants_rng else self.function(dict(params), budget)
        try:
            return iter(out)
        except TypeError:
            raise TypeError(f"job function {self.label} returned {type(out).__name__}, not an iterable of "
                            "(duration, iteration, metrics) steps; make it a generator that yields them") from None

    @classmethod
    def of(cls, function: JobFunction, label: str | None = None) -> SimTask:
        """Check that ``function`` can be called as ``job(params, budget)`` (and maybe ``rng=``)."""
        name = label or _label(function)
        try:
            sig = inspect.signature(function)
        except (TypeError, ValueError):  # a builtin without a signature: trust it
            return cls(function, name)
        params = list(sig.parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        star = any(p.kind is p.VAR_POSITIONAL for p in params)
        takes_rng = "rng" in sig.parameters and sig.parameters["rng"].kind is not inspect.Parameter.POSITIONAL_ONLY
        wants_rng = takes_rng or any(p.kind is p.VAR_KEYWORD for p in params)
        plain = [p for p in positional if p.name != "rng"]
        required = [p for p in plain if p.default is p.empty]
        if not star and (len(plain) < 2 or len(required) > 2):
            raise ConfigError(f"sim: job function {name} has signature {sig}; it must accept (params, budget) "
                              "and may take a keyword rng: def job(params, budget, *, rng=None)")
        return cls(function, name, wants_rng=wants_rng)


def _label(function: Any) -> str:
    module = getattr(function, "__module__", None) or "?"
    qual = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}:{qual}"


def load_function(ref: str) -> SimTask:
    """``"package.module:function"`` or ``"path/to/file.py:function"`` (relative to the working directory)."""
    where, sep, attr = ref.rpartition(":")
    if not sep or not where or not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise ConfigError(f"sim: base task {ref!r} is not 'module:function'; {_FIX}")
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise ConfigError(f"sim: base task {ref!r}: no file {str(path)!r}; give an existing .py file "
                              "(relative paths start at the working directory)")
        spec = importlib.util.spec_from_file_location(f"_hyperscout_sim_task_{abs(hash(str(path.resolve())))}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(f"sim: base task {ref!r}: importing {str(path)!r} failed: "
                              f"{type(exc).__name__}: {exc}") from None
    else:
        module = _import(ref, where)
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"sim: base task {ref!r}: {where} has no attribute {attr!r}; check the function's name")
    if not callable(target):
        raise ConfigError(f"sim: base task {ref!r} is a {type(target).__name__}, not a function; {_FIX}")
    return SimTask.of(target, label=ref)


def _import(ref: str, name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not name.startswith(exc.name):
            raise ConfigError(f"sim: base task {ref!r}: importing {name!r} failed: {exc}") from None
        cwd = os.getcwd()
        if cwd in sys.path:  # not a module of the working directory either
            raise ConfigError(f"sim: base task {ref!r}: no module named {name!r}; install it or give "
                              "'path/to/file.py:function'") from None
        sys.path.insert(0, cwd)  # `hyperscout run` from a study's directory: its modules are importable
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            raise ConfigError(f"sim: base task {ref!r}: no module named {name!r} (also looked in {cwd!r}); "
                              "install it or give 'path/to/file.py:function'") from None
        finally:
            sys.path.remove(cwd)
    except Exception as exc:
        raise ConfigError(f"sim: base task {ref!r}: importing {name!r} failed: {type(exc).__name__}: {exc}") from None


_KEYS: dict[Any, tuple[str, str]] = {}


def _metric_key(key: Any) -> tuple[str, str]:
    """``"title/series"`` -> ``(title, series)``, cached: a study reports the same few keys millions of times."""
    hit = _KEYS.get(key) if isinstance(key, (str, tuple)) else None
    if hit is not None:
        return hit
    if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key):
        out = (key[0], key[1])
    elif isinstance(key, str) and "/" in key.strip("/"):
        title, _, series = key.rpartition("/")
        out = (title, series)
    else:
        raise StepError(f"reported metric key {key!r}; use 'title/series' or a (title, series) tuple")
    if len(_KEYS) < 10_000:
        _KEYS[key] = out
    return out


def parse_step(step: Any) -> tuple[float, int, list[tuple[str, str, float]]]:
    """Validate one yielded step; raise :class:`StepError` with a one-line reason naming the fix."""
    try:
        duration, iteration, metrics = step
    except (TypeError, ValueError):
        raise StepError(f"yielded {step!r}; yield (duration, iteration, {{'title/series': value}})") from None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration < 0:
        raise StepError(f"yielded a duration of {duration!r}; it must be a finite number of virtual seconds >= 0")
    if isinstance(iteration, float) and iteration.is_integer():
        iteration = int(iteration)
    if isinstance(iteration, bool) or not isinstance(iteration, int):
        raise StepError(f"yielded iteration {iteration!r}; it must be an integer")
    if not isinstance(metrics, Mapping):
        raise StepError(f"yielded metrics {metrics!r}; they must be a dict {{'title/series': value}}")
    out = []
    for key, value in metrics.items():
        title, series = _metric_key(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)  # numpy scalars and the like
            except (TypeError, ValueError):
                raise StepError(f"reported metric {key!r} = {value!r}, not a number") from None
        out.append((title, series, float(value)))
    return float(duration), iteration, out
