"""A trial script run by the FAKE agent: the real clearml SDK in remote mode (``CLEARML_TASK_ID`` set).

Reads ``Args/`` through argparse (the SDK overrides parsed values from the task) and ``General/`` through
``task.connect(dict)``, reports a decreasing loss per epoch, and can be told to fail, to run long, or to write
a marker file once it reported its first scalar.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from clearml import Task


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--optimizer", default="sgd")
    task = Task.init(
        project_name="ignored-in-remote-mode",
        task_name="trial",
        auto_resource_monitoring=False,
        auto_connect_frameworks=False,
    )
    args = parser.parse_args()
    config = task.connect({"epochs": 3, "sleep": 0.0, "fail": False, "marker": ""})
    logger = task.get_logger()
    for epoch in range(int(config["epochs"])):
        loss = 1.0 / (1.0 + args.lr * (epoch + 1))
        logger.report_scalar("validation", "loss", loss, iteration=epoch)
        logger.report_scalar("train", "lr", args.lr, iteration=epoch)
        if epoch == 0 and config["marker"]:
            logger.flush()
            Path(config["marker"]).write_text(f"{task.id} {args.optimizer}\n", encoding="utf-8")
        if config["sleep"]:
            time.sleep(float(config["sleep"]))
    print(f"done lr={args.lr} optimizer={args.optimizer} epochs={config['epochs']}")
    if config["fail"]:
        print("trial failed on purpose: diverged", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
