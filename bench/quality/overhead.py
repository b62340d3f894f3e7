"""Per-suggestion overhead of each plugin against its library's own ask/tell, side by side.

For each library the same seeded search runs through the plugin (``ask`` + ``tell``, the calls the
engine makes) and through the library directly (its own ask + tell), on Branin: the objective is
nearly free and excluded from the timings, and with the same seed both sides do exactly the same
model work, so the difference is the wrapper. Each repetition runs the sides back to back in
alternating order; the ratio is the median of the per-repetition ratios (one warm-up repetition
is discarded: first calls import and compile).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import direct
import driver
from tasks import SF_TASKS

TASK = SF_TASKS["branin"]


def _optuna_asktell(n: int, seed: int) -> float:
    study, ask = direct.optuna_askteller(TASK, seed)
    spent = 0.0
    for _ in range(n):
        t0 = time.perf_counter()
        trial, params = ask()
        spent += time.perf_counter() - t0
        value = TASK.evaluate(params)
        t0 = time.perf_counter()
        study.tell(trial, value)
        spent += time.perf_counter() - t0
    return spent


SIDES: dict[str, dict[str, Callable[[int, int], float]]] = {
    "optuna": {
        "plugin": lambda n, s: driver.run_sf("optuna", {}, TASK, n, s).opt_seconds,
        "ask/tell": _optuna_asktell,
        "study.optimize": lambda n, s: direct.optuna_direct_sf(TASK, n, s).opt_seconds,
    },
    "skopt": {
        "plugin": lambda n, s: driver.run_sf("skopt", {}, TASK, n, s).opt_seconds,
        "ask/tell": lambda n, s: direct.skopt_direct_sf(TASK, n, s, "GP").opt_seconds,
    },
    "bohb": {
        "plugin": lambda n, s: driver.run_sf("bohb", {}, TASK, n, s).opt_seconds,
        "ask/tell": lambda n, s: direct.bohb_direct_sf(TASK, n, s).opt_seconds,
    },
}
#: what the library's "ask/tell" side is, for the report
DIRECT_CALLS = {
    "optuna": "`study.ask()` + `trial.suggest_*` + `study.tell()`",
    "skopt": "`Optimizer.ask()` + `Optimizer.tell()` (GP)",
    "bohb": "BOHB generator `get_config()` + `new_result()`",
}


def measure(library: str, n: int, reps: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    sides = SIDES[library]
    names = list(sides)
    times: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(reps + 1):  # rep 0 is the warm-up
        order = names if rep % 2 == 0 else names[::-1]
        got: dict[str, float] = {}
        for k in order:
            gc.collect()
            got[k] = sides[k](n, 1000 + rep)
        if rep == 0:
            continue
        for k in names:
            times[k].append(got[k])
    out: dict[str, Any] = {"library": library, "suggestions": n, "repetitions": reps, "direct_call": DIRECT_CALLS[library],
                           "ms_per_suggestion": {k: 1000 * statistics.median(v) / n for k, v in times.items()},
                           "seconds": times, "ratios": {}}
    for k in names[1:]:
        ratios = [p / d for p, d in zip(times["plugin"], times[k])]
        out["ratios"][k] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                            "pooled": sum(times["plugin"]) / sum(times[k])}
    r = out["ratios"]["ask/tell"]
    log(f"  overhead {library:6s}: plugin {out['ms_per_suggestion']['plugin']:.3f} ms/suggestion, "
        f"direct {out['ms_per_suggestion']['ask/tell']:.3f} ms -> ratio {r['median']:.3f} "
        f"[{r['min']:.3f}-{r['max']:.3f}]")
    return out
