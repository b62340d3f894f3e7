"""Study ownership: one optimizer process runs a study at a time.

The owner is written into the store (pid, host, a random token, when its process started) in the
same transaction that checks the previous owner, and refreshed by a heartbeat. A second run of
the same study refuses with one line naming the owner, unless that owner is provably dead (same
host, its pid gone or reused by another process) or its heartbeat is older than ``stale_after``
seconds (another host, or a hung process). Readers (``status``, ``top``, ``export``, a dashboard)
never take the lease.
"""

from __future__ import annotations

import os
import socket
import uuid

import attrs

__all__ = ["Owner", "process_start"]


def process_start(pid: int) -> str | None:
    """An identity of the process behind ``pid`` that changes when the pid is reused.

    The start time in clock ticks since boot (``/proc/PID/stat`` field 22) plus the boot id;
    ``None`` where ``/proc`` is missing (then only the heartbeat can tell a dead owner).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = ""
    return f"{boot}:{fields[19]}"


@attrs.frozen
class Owner:
    """Who runs a study: stored as JSON in the ``studies.owner`` column."""

    pid: int
    host: str
    token: str
    start: str | None = None

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(pid=pid, host=socket.gethostname(), token=uuid.uuid4().hex, start=process_start(pid))

    @classmethod
    def from_dict(cls, d: dict) -> Owner:
        return cls(pid=int(d["pid"]), host=str(d["host"]), token=str(d["token"]), start=d.get("start"))

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    def alive(self) -> bool | None:
        """True/False when it can be told from here (same host), None from another host."""
        if self.host != socket.gethostname():
            return None
        if self.pid == os.getpid():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else
        if self.start is not None:
            now = process_start(self.pid)
            if now is not None and now != self.start:
                return False  # the pid was reused by another process
        return True

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"
