"""Run each trial as a subprocess on a Dask worker; stream its metrics and logs back as events."""

from __future__ import annotations

from hyperscout_dask.backend import DaskBackend, queue_resources

__all__ = ["DaskBackend", "queue_resources"]
