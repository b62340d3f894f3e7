"""Job functions to start from: ``[task] task_id = "hyperscout_sim.examples:curve"`` in a study file."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

__all__ = ["MAX_ITERATIONS", "curve"]

#: iterations of :func:`curve` when the job has no budget
MAX_ITERATIONS = 50


def curve(params: dict[str, Any], budget: float | None, *, rng: random.Random | None = None
          ) -> Iterator[tuple[float, int, dict[str, float]]]:
    """A learning curve: ``validation/loss`` falls from 1 towards a floor set by the parameters.

    Every numeric parameter, read on ``[0, 1]``, has its best value at 0.3 (the floor is the mean
    squared distance to it). Configurations with a low floor learn more slowly, so a short budget
    misranks some of them, as early stopping does on real models. One iteration takes one virtual
    second (``epoch_seconds`` overrides it); the job stops at its budget or after
    :data:`MAX_ITERATIONS`. ``rng`` adds a little noise, the same each time a configuration runs.
    """
    numbers = [float(v) for k, v in sorted(params.items())
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch_seconds"]
    floor = sum((v - 0.3) ** 2 for v in numbers) / max(len(numbers), 1)
    tau = 2.0 + 8.0 * (1.0 - min(4.0 * floor, 1.0))
    seconds = float(params.get("epoch_seconds", 1.0))
    last = MAX_ITERATIONS if budget is None else max(1, min(math.ceil(budget), MAX_ITERATIONS))
    for i in range(1, last + 1):
        loss = floor + (1.0 - floor) * math.exp(-i / tau)
        if rng is not None:
            loss += rng.gauss(0.0, 0.005)
        yield seconds, i, {"validation/loss": loss}
