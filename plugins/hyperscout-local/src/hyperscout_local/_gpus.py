"""GPUs on one machine: which devices exist, and which job holds which.

``gpus = "auto"`` reads ``CUDA_VISIBLE_DEVICES`` when it is set, else counts the lines of
``nvidia-smi -L``; an explicit list names the devices. Each job gets ``gpus_per_job`` free devices
through ``CUDA_VISIBLE_DEVICES``; a job that finds too few free waits (``JobQueued``) until a job
ends, so concurrency is capped by free GPUs whatever ``max_number_of_concurrent_tasks`` says. A
device is given back only once its job's whole process group has exited.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from hyperscout.errors import ConfigError

__all__ = ["GpuPool", "detect_gpus", "gpus_for_queue"]

_QUEUE = re.compile(r"^(\d+)\s*x\s*GPU$", re.IGNORECASE)


def detect_gpus() -> list[str]:
    """The devices this machine offers: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", out, re.MULTILINE)]


def gpus_for_queue(queue: str | None) -> int | None:
    """ClearML-style queue names: ``"1xGPU"``, ``"2xGPU"`` ask for that many devices per job."""
    m = _QUEUE.match(queue or "")
    return int(m.group(1)) if m else None


class GpuPool:
    """Free and held devices; the backend calls it under its own lock."""

    def __init__(self, gpus: Any, gpus_per_job: Any) -> None:
        if gpus == "auto":
            devices = detect_gpus()
            if not devices:
                raise ConfigError("local backend option gpus='auto' found no GPU (CUDA_VISIBLE_DEVICES is unset and "
                                  "nvidia-smi -L lists none); give the devices, e.g. gpus = [0, 1], or remove the option")
        elif isinstance(gpus, Sequence) and not isinstance(gpus, str) and gpus and all(
                isinstance(g, (int, str)) and not isinstance(g, bool) for g in gpus):
            devices = [str(g) for g in gpus]
        else:
            raise ConfigError(f"local backend option gpus={gpus!r} must be 'auto' or a list of device ids, e.g. [0, 1]")
        if len(set(devices)) != len(devices):
            raise ConfigError(f"local backend option gpus={gpus!r} names a device twice")
        per_job = 1 if gpus_per_job is None else gpus_per_job
        if isinstance(per_job, bool) or not isinstance(per_job, int) or per_job < 1:
            raise ConfigError(f"local backend option gpus_per_job={gpus_per_job!r} must be a positive integer")
        self.devices = devices
        self.per_job = per_job
        self.free = list(devices)

    def need(self, queue: str | None) -> int:
        return gpus_for_queue(queue) or self.per_job

    def take(self, n: int) -> list[str] | None:
        if len(self.free) < n:
            return None
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    def give_back(self, devices: Sequence[str]) -> None:
        self.free.extend(d for d in devices if d not in self.free)
        self.free.sort(key=self.devices.index)
