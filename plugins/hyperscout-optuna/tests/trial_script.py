"""A real trial for the end-to-end tests: one report per iteration, a short sleep between them.

``--x`` and ``--y`` are the searched parameters; the loss falls with the iteration and is lowest at
x = 0.25, so pruners have something to compare. ``--cost`` adds a second objective that trades
against the loss (for the multi-objective test).
"""

from __future__ import annotations

import argparse
import time

from hyperscout import report_scalar


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, default=0.5)
    parser.add_argument("--y", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=0.05)
    args = parser.parse_args()
    for i in range(1, args.steps + 1):
        loss = (args.x - 0.25) ** 2 + 0.1 * args.y + 1.0 / i
        print(f"iteration {i}", flush=True)
        report_scalar("val", "loss", loss, iteration=i)
        report_scalar("val", "cost", 1.0 - args.x + 0.05 * args.y, iteration=i)
        time.sleep(args.sleep)
    print("done", flush=True)


if __name__ == "__main__":
    main()
