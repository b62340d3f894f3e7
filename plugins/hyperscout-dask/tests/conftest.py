"""Cluster fixtures (see ``dask_testing``): one shell cluster per session, a fragile one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dask_testing import ShellCluster, start_cluster, stop_cluster


@pytest.fixture(scope="session")
def shell_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShellCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("shell-cluster"))
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture(scope="module")
def fragile_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShellCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("fragile-cluster"),
                     env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
