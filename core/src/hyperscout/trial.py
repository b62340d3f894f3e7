"""Inside the trial: report scalars and read parameters.

This module is what a training script imports (``from hyperscout import report_scalar``), so it
stays light on purpose: standard library only, no numpy, no plugin imports. Outside a study
(no ``HYPERSCOUT_*`` environment) every call is a harmless no-op, so the script runs on its own.

Transport: each report is one JSON line written with a single ``os.write`` to the file
descriptor in ``HYPERSCOUT_REPORT_FD`` (a pipe the local backend reads, so reports arrive as
events, not by polling) or appended to the file in ``HYPERSCOUT_REPORT_FILE`` (for backends
whose workers share a file system or ship the file back).

How a trial reports belongs to its backend: when neither is set, the first report asks the
installed *trial reporters* (entry points in the ``hyperscout.trial_reporters`` group, each a
function returning a ``report(title, series, value, iteration)`` callable when it recognises its
environment, else ``None``). The ClearML backend's reporter forwards to ClearML's logger inside a
job a ClearML agent runs, so one script works on every backend. Outside any study it is a no-op.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from typing import Any

__all__ = ["get_job_id", "get_parameters", "report_scalar"]

ENV_REPORT_FD = "HYPERSCOUT_REPORT_FD"
ENV_REPORT_FILE = "HYPERSCOUT_REPORT_FILE"
#: inode of the report pipe: a subprocess that inherited the variable but not the descriptor
#: (``close_fds``) must not write JSON into whatever file now has that number
ENV_REPORT_INO = "HYPERSCOUT_REPORT_INO"
ENV_PARAMS = "HYPERSCOUT_PARAMS"
ENV_PARAMS_FILE = "HYPERSCOUT_PARAMS_FILE"
ENV_JOB_ID = "HYPERSCOUT_JOB_ID"
ENV_STUDY = "HYPERSCOUT_STUDY"

_iterations: dict[tuple[str, str], int] = {}
_checked_fd: dict[tuple[int, str, str], bool] = {}
REPORTER_GROUP = "hyperscout.trial_reporters"
_NO_REPORTER = object()
_reporter: Any = None


def _backend_reporter() -> Any:
    """The first installed trial reporter that recognises this process's environment (looked up once)."""
    global _reporter
    if _reporter is None:
        _reporter = _NO_REPORTER
        from importlib.metadata import entry_points

        for ep in entry_points(group=REPORTER_GROUP):
            try:
                found = ep.load()()
            except Exception:  # a broken reporter must not crash the training script
                continue
            if found is not None:
                _reporter = found
                break
    return None if _reporter is _NO_REPORTER else _reporter


def _fd_is_ours(fd: int) -> bool:
    """Whether ``fd`` is the report pipe the backend handed us (checked once per process)."""
    ino = os.environ.get(ENV_REPORT_INO)
    if not ino:
        return True
    key = (os.getpid(), str(fd), ino)
    if key not in _checked_fd:
        try:
            st = os.fstat(fd)
            _checked_fd[key] = stat.S_ISFIFO(st.st_mode) and str(st.st_ino) == ino
        except OSError:
            _checked_fd[key] = False
    return _checked_fd[key]


def _encode(title: str, series: str, value: float, iteration: int) -> bytes:
    return (json.dumps({"t": title, "s": series, "i": iteration, "v": value, "ts": time.time()}) + "\n").encode()


def report_scalar(title: str, series: str, value: float, iteration: int | None = None) -> None:
    """Report one scalar, with the arguments of ClearML's ``Logger.report_scalar``.

    ``iteration`` defaults to one past the last iteration reported for this title/series.
    """
    key = (str(title), str(series))
    if iteration is None:
        iteration = _iterations.get(key, -1) + 1
    _iterations[key] = int(iteration)
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        value_out: Any = str(value)  # JSON has no NaN; the reader turns it back into a float
    else:
        value_out = value
    line = _encode(key[0], key[1], value_out, int(iteration))
    fd = os.environ.get(ENV_REPORT_FD)
    if fd and fd.isdigit() and _fd_is_ours(int(fd)):
        try:
            os.write(int(fd), line)
            return
        except OSError:
            pass  # the optimizer went away; fall through to the file if there is one
    path = os.environ.get(ENV_REPORT_FILE)
    if path:
        with open(path, "ab") as fh:
            fh.write(line)
        return
    if not fd:
        reporter = _backend_reporter()
        if reporter is not None:
            reporter(key[0], key[1], value, int(iteration))


def get_parameters() -> dict[str, Any]:
    """The parameters hyperscout chose for this trial (``{}`` outside a study)."""
    raw = os.environ.get(ENV_PARAMS)
    if raw:
        return dict(json.loads(raw))
    path = os.environ.get(ENV_PARAMS_FILE)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            return dict(json.load(fh))
    return {}


def get_job_id() -> str | None:
    """This trial's job id, or ``None`` outside a study."""
    return os.environ.get(ENV_JOB_ID)


def decode_report(line: bytes | str) -> tuple[str, str, int, float, float] | None:
    """Parse one report line: ``(title, series, iteration, value, time)``; ``None`` if malformed."""
    try:
        d = json.loads(line)
        return str(d["t"]), str(d["s"]), int(d["i"]), float(d["v"]), float(d.get("ts", time.time()))
    except (ValueError, KeyError, TypeError):
        return None
