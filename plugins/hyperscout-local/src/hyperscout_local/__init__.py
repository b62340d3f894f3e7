"""Run each trial as a local subprocess in its own process group; push its metrics as events."""

from __future__ import annotations

from hyperscout_local.backend import LocalBackend

__all__ = ["LocalBackend"]
