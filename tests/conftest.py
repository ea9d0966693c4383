"""Test-wide options."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-seed", default=None, help="seed for the randomized differential tests (pytest -m fuzz)")
