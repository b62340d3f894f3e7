"""bench/import: what ``from hyperscout import report_scalar`` adds to a trial's start-up.

Every trial script runs this import, so its cost is paid once per trial. Three commands are timed
as whole processes, from spawn to exit, interpreter start-up included:

* ``bare``        ``python -c "pass"``                                  (the floor: an interpreter)
* ``json``        ``python -c "import json"``                           (a yardstick: one stdlib package)
* ``hyperscout``  ``python -c "from hyperscout import report_scalar"``  (what a trial pays)

They run in turn, round after round (the order rotates every round), and each figure is taken
round by round (hyperscout / bare in the same round), so a machine whose speed drifts during the
run (other work, frequency scaling) moves both sides of every ratio alike. The medians are quoted;
the quartiles show the spread. CPU is user + system time of the finished child (``wait4``), which
other work on the machine disturbs less than wall time.

    python bench/import/run.py [--runs 60] [--warmup 3] [--json FILE]

Which modules the import loads is checked by ``tests/test_cli.py::test_trial_side_import_stays_light``;
this script only measures how long it takes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS: dict[str, str] = {
    "bare": "pass",
    "json": "import json",
    "hyperscout": "from hyperscout import report_scalar",
}


def run_once(code: str) -> tuple[float, float]:
    """Spawn ``python -c code`` with empty stdin and output to /dev/null: ``(wall s, cpu s)``."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    argv = [sys.executable, "-c", code]
    start = time.perf_counter()
    pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench/import: {argv} failed (exit {os.waitstatus_to_exitcode(status)}); "
                         f"run it by hand to see why")
    return wall, usage.ru_utime + usage.ru_stime


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def modules_loaded() -> int:
    """How many modules the import adds to ``sys.modules``."""
    code = "import sys; n = len(sys.modules); from hyperscout import report_scalar; print(len(sys.modules) - n)"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def bench(runs: int, warmup: int) -> dict[str, object]:
    names = list(COMMANDS)
    for _ in range(warmup):  # byte-code caches written, files in the page cache
        for name in names:
            run_once(COMMANDS[name])
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            w, c = run_once(COMMANDS[name])
            wall[name].append(w)
            cpu[name].append(c)
    out: dict[str, object] = {
        "runs": runs,
        "python": sys.version.split()[0],
        "modules_added": modules_loaded(),
        "median_ms": {n: {"wall": 1e3 * statistics.median(wall[n]), "cpu": 1e3 * statistics.median(cpu[n])}
                      for n in names},
    }
    pairs: dict[str, dict[str, list[float]]] = {}
    for base in ("bare", "json"):
        hs, b = wall["hyperscout"], wall[base]
        hs_cpu, b_cpu = cpu["hyperscout"], cpu[base]
        pairs[base] = {
            "ratio_wall": quartiles([x / y for x, y in zip(hs, b)]),  # type: ignore[dict-item]
            "extra_wall_ms": quartiles([1e3 * (x - y) for x, y in zip(hs, b)]),  # type: ignore[dict-item]
            "extra_cpu_ms": quartiles([1e3 * (x - y) for x, y in zip(hs_cpu, b_cpu)]),  # type: ignore[dict-item]
        }
    out["vs"] = pairs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=60, help="rounds; each runs every command once (default 60)")
    ap.add_argument("--warmup", type=int, default=3, help="rounds run first and not counted (default 3)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    if args.runs < 4:
        ap.error("--runs must be at least 4 (quartiles)")
    res = bench(args.runs, args.warmup)
    med = res["median_ms"]
    assert isinstance(med, dict)
    print(f"bench/import  {args.runs} alternated rounds, python {res['python']}; "
          f"the import adds {res['modules_added']} modules")
    print("  median per process       wall ms   cpu ms")
    for name, code in COMMANDS.items():
        print(f"  {name:10s} {code!r:40s} {med[name]['wall']:7.1f}  {med[name]['cpu']:7.1f}")
    vs = res["vs"]
    assert isinstance(vs, dict)
    print("  hyperscout against, pair by pair: median [quartiles]")
    for base, fig in vs.items():
        r, e, c = fig["ratio_wall"], fig["extra_wall_ms"], fig["extra_cpu_ms"]
        print(f"  vs {base:5s} ratio {r[1]:5.2f} [{r[0]:.2f}-{r[2]:.2f}]   "
              f"extra wall {e[1]:6.1f} ms [{e[0]:.1f}-{e[2]:.1f}]   extra cpu {c[1]:6.1f} ms [{c[0]:.1f}-{c[2]:.1f}]")
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {"runs": args.runs, "warmup": args.warmup}, **res}, indent=1))


if __name__ == "__main__":
    main()
