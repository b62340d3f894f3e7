"""A real trial for the end-to-end tests: one report per iteration, a line of stdout per iteration.

The loss falls with the iteration (more budget, better result) and is lowest at x = 0.25.
``--epochs`` (the budget_parameter test) sets how many iterations the script runs by itself;
``--hang 1`` reports a (too) good loss of -100 at iteration 0 and then sleeps far past any time
limit: a strategy that used the values of jobs aborted for time would promote it.
"""

from __future__ import annotations

import argparse
import sys
import time

from hyperscout import report_scalar


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--hang", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.5)
    args = parser.parse_args()
    print("argv " + " ".join(sys.argv[1:]), flush=True)
    if args.hang:
        report_scalar("val", "loss", -100.0, iteration=0)
        time.sleep(60)
    for i in range(1, args.epochs + 1):
        loss = (args.x - 0.25) ** 2 + 1.0 / i
        print(f"iteration {i}", flush=True)
        report_scalar("val", "loss", loss, iteration=i)
        time.sleep(args.sleep)
    print("done", flush=True)


if __name__ == "__main__":
    main()
