"""pytest plugin shipped with the core (entry point ``pytest11``): fixtures for plugin tests."""

from __future__ import annotations

from collections.abc import Iterator

import pluggy
import pytest


@pytest.fixture
def hyperscout_plugin_manager() -> Iterator[pluggy.PluginManager]:
    """A fresh plugin manager with the installed entry points loaded, private to the test."""
    from hyperscout.plugins import get_plugin_manager

    yield get_plugin_manager()


@pytest.fixture
def hyperscout_storage(tmp_path):  # type: ignore[no-untyped-def]
    """A fresh store directory for one test."""
    d = tmp_path / "store"
    d.mkdir()
    return d
