"""The trial side: ``hyperscout.report_scalar`` inside a job a ClearML agent runs goes to ClearML's logger.

Entry point ``clearml`` in the ``hyperscout.trial_reporters`` group. It recognises its environment by
``CLEARML_TASK_ID`` (what clearml-agent sets) and attaches to ``Task.current_task()`` or, when the script never
called ``Task.init``, to the task the agent runs (``Task.init()`` in remote mode). One training script then
reports the same way on every backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["trial_reporter"]


def trial_reporter() -> Callable[[str, str, float, int], None] | None:
    """``report(title, series, value, iteration)`` inside a ClearML job, else None."""
    if not os.environ.get("CLEARML_TASK_ID"):
        return None
    try:
        from clearml import Logger, Task
    except ImportError:
        return None
    task: Any = Task.current_task() or Task.init()
    logger = task.get_logger()
    # ClearML reports NaN and infinity as 0.0 by default: a diverged run would look perfect. hyperscout fails a
    # job whose objective is not finite, so send the value as it is.
    Logger.set_reporting_nan_value(float("nan"), warn_period=10**9)
    Logger.set_reporting_inf_value(float("inf"), warn_period=10**9)

    def report(title: str, series: str, value: float, iteration: int) -> None:
        logger.report_scalar(title, series, value, iteration=iteration)

    return report
