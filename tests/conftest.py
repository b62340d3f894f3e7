from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a trial script into tmp_path and return its path."""

    def write(name: str, body: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        return path

    return write


@pytest.fixture
def python() -> str:
    return sys.executable


#: Seconds to wait for a condition before failing: a guard against a hang, never a claim about speed.
GUARD = 90.0


def wait_for(predicate: Callable[[], object], what: str, timeout: float = GUARD) -> object:
    """Poll a real condition (a file, a row in the store, a process state) until it holds."""
    import time

    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def read_store(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Read the store the way a reader does (read-only), while a study writes it."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
            return c.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []


def run_cli(*args: str, cwd: Path | None = None, timeout: float = GUARD, **kw: object):  # type: ignore[no-untyped-def]
    """Run the installed `hyperscout` console script as a user would."""
    import shutil
    import subprocess

    exe = shutil.which("hyperscout") or "hyperscout"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
