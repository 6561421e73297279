"""Shared fixtures. Helpers may add fixtures here; each fixture says what it builds."""

from __future__ import annotations

import os

import pytest

from starkit.plugins import PluginRegistry, reset_registry

# Keep torch to few threads: the test machine has 2 cores and tests are small.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def registry():
    """A fresh plugin registry with starkit's default plugins and no entry points,
    installed as the process-wide registry for the test and removed afterwards."""
    reg = PluginRegistry(load_entry_points=False)
    reset_registry(reg)
    yield reg
    reset_registry(None)


@pytest.fixture
def empty_registry():
    """A registry with neither default plugins nor entry points (process-wide for the test)."""
    reg = PluginRegistry(load_entry_points=False, load_defaults=False)
    reset_registry(reg)
    yield reg
    reset_registry(None)
