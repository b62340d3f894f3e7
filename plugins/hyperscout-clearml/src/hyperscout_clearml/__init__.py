"""ClearML execution backend for hyperscout, and a FAKE ClearML server and agent for tests.

``ClearMLBackend`` clones a ClearML base task per job, enqueues it for a ClearML agent and watches it with one
request per poll; importing this package does not import the clearml SDK.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClearMLBackend", "ClearMLTask"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hyperscout_clearml import backend

        return getattr(backend, name)
    raise AttributeError(f"module 'hyperscout_clearml' has no attribute {name!r}")
