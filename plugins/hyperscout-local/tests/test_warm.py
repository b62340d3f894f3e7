"""Warm starts: a job run by the spare interpreter sees exactly what a cold start would."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from test_local import GUARD, local_harness

from hyperscout import MetricPattern, Reattached
from hyperscout.testing.backend_suite import process_alive, wait_dead
from hyperscout_local import LocalBackend
from hyperscout_local._warm import comm_marker, script_of
from hyperscout_local.backend import find_marked

PROBE = """
    import json, os, sys
    from hyperscout import get_job_id, report_scalar
    print(json.dumps({
        "name": __name__, "argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(),
        "job": get_job_id(), "stdin": sys.stdin.read(), "flag": os.environ.get("ONLY_HERE"),
        "pid": os.getpid(), "pgid": os.getpgid(0),
    }), flush=True)
    print("to stderr", file=sys.stderr)
    report_scalar("v", "x", 1.0, 0)
    raise SystemExit(int(sys.argv[-1]))
"""


def _observe(tmp_path: Path, prestart: bool) -> list[dict]:
    out = []
    with local_harness(tmp_path / ("warm" if prestart else "cold"), prestart=prestart) as h:
        script = h.script("probe.py", PROBE)
        for k in range(3):  # the first job starts cold, later ones take the spare when prestart is on
            spec = h.spec(script, args=["--a", "1", str(k)], env={"ONLY_HERE": f"job{k}"})
            exited = h.run(spec)
            assert exited.exit_code == k
            assert h.recorder.metrics(spec.job_id, "v", "x")[0].value == 1.0
            seen = json.loads(Path(spec.workdir, "stdout.log").read_text().splitlines()[-1])
            assert Path(spec.workdir, "stderr.log").read_text() == "to stderr\n"
            assert seen["pgid"] == seen["pid"]  # the job leads its own process group
            seen.pop("pid"), seen.pop("pgid")
            seen["job_ok"] = seen.pop("job") == spec.job_id
            out.append(seen)
    return out


def test_warm_and_cold_starts_look_the_same_to_the_script(tmp_path: Path) -> None:
    cold, warm = _observe(tmp_path, False), _observe(tmp_path, True)
    for c, w in zip(cold, warm):
        assert c["argv"][0].endswith("probe.py") and w["argv"][0] == c["argv"][0].replace("/cold/", "/warm/")
        assert w["argv"][1:] == c["argv"][1:]
        assert w["name"] == c["name"] == "__main__"
        assert Path(w["path0"]) == Path(w["argv"][0]).parent and Path(c["path0"]) == Path(c["argv"][0]).parent
        assert w["cwd"] == c["cwd"] == os.getcwd()
        assert w["stdin"] == c["stdin"] == ""
        assert w["flag"] == c["flag"] and w["job_ok"] and c["job_ok"]


def test_the_spare_is_started_ahead_and_gone_after_close(tmp_path: Path) -> None:
    with local_harness(tmp_path) as h:
        script = h.script("quick.py", "print('hi')\n")
        h.run(h.spec(script))
        spare = h.backend._spare
        assert spare is not None and process_alive(spare.proc.pid)
        pid = spare.proc.pid
        h.run(h.spec(script))
        assert h.backend._spare is not None and h.backend._spare.proc.pid != pid
        nxt = h.backend._spare.proc.pid
    assert wait_dead([nxt], GUARD) == []


def test_other_commands_start_cold(tmp_path: Path) -> None:
    assert script_of([sys.executable, "-u", __file__, "--x", "1"]) == (sys.executable, [__file__, "--x", "1"])
    assert script_of([sys.executable, "-O", __file__]) is None  # interpreter flags: cold
    assert script_of(["/bin/echo", __file__]) is None
    assert script_of([sys.executable, "-m", "json.tool"]) is None


def test_reattach_recognises_a_warm_started_trial_by_its_name(tmp_path: Path) -> None:
    with local_harness(tmp_path) as h:
        hang = h.script("hang.py", "import time\nprint('up 1', flush=True)\ntime.sleep(60)\n")
        h.run(h.spec(h.script("quick.py", "pass\n")))  # leaves a spare behind
        # "up" on stdout becomes a metric event: the script runs (and its log has the line) once it arrives
        spec = h.spec(hang, patterns=[MetricPattern(r"^up (?P<value>\d+)", "proc", "up")])
        h.launch(spec)
        started = h.recorder.wait_for(lambda ev: [e for e in ev if getattr(e, "job_id", None) == spec.job_id
                                                  and type(e).__name__ == "JobStarted"], GUARD, "start")[0]
        h.recorder.wait_metric(spec.job_id, "proc", "up", GUARD)
        assert Path(spec.workdir, "stdout.log").read_text().startswith("up")
        assert Path(f"/proc/{started.pid}/comm").read_text().strip() == comm_marker(spec.job_id)
        assert find_marked(["someone-else"]) == {}
        assert find_marked([spec.job_id]) == {spec.job_id: [started.pid]}  # its environ lacks the marker: the name
        assert LocalBackend().reattach(spec, None) is Reattached.GONE
        h.recorder.wait_exit(spec.job_id, GUARD)
        assert find_marked([spec.job_id]) == {}


MP_SCRIPT = """
    import multiprocessing as mp
    from hyperscout import report_scalar

    def square(x):
        return x * x

    if __name__ == "__main__":
        with mp.get_context("spawn").Pool(2) as pool:
            report_scalar("v", "x", float(sum(pool.map(square, range(5)))), 0)
"""


def test_multiprocessing_spawn_works_in_a_warm_started_trial(tmp_path: Path) -> None:
    with local_harness(tmp_path) as h:
        script = h.script("mp.py", MP_SCRIPT)
        for _ in range(2):  # the second job runs in the spare interpreter
            spec = h.spec(script)
            assert h.run(spec, timeout=60).exit_code == 0, Path(spec.workdir, "stderr.log").read_text()
            assert h.recorder.metrics(spec.job_id, "v", "x")[0].value == 30.0
