"""The core's backend conformance kit, against both kinds of cluster."""

from __future__ import annotations

import pytest

from hyperscout.testing.backend_suite import BackendTestSuite
from hyperscout_dask import DaskBackend


class TestDaskLocalCluster(BackendTestSuite):
    """No scheduler option: the backend starts (and stops) its own local cluster."""

    @pytest.fixture
    def backend(self) -> DaskBackend:
        return DaskBackend(local_workers=self.concurrency)


class TestDaskShellCluster(BackendTestSuite):
    """``dask scheduler`` + two ``dask worker`` processes started from the shell."""

    @pytest.fixture
    def backend(self, shell_cluster) -> DaskBackend:  # type: ignore[no-untyped-def]
        return DaskBackend(scheduler_file=shell_cluster.scheduler_file)
