"""Shared fixtures of the differential semantics tests."""

from __future__ import annotations

import os
import random

import pytest


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A random source seeded per test; ``--fuzz-seed`` or EMU_FUZZ_SEED changes every seed."""
    base = request.config.getoption("--fuzz-seed", default=None) or os.environ.get("EMU_FUZZ_SEED", "0")
    return random.Random(f"{base}:{request.node.nodeid}")
