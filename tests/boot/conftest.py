"""The default guest, built on first use (emu.machine.guest, cached outside the repository), for every boot test."""

from __future__ import annotations

import sys

import pytest

from emu.machine.guest import GuestImage, default_guest


@pytest.fixture(scope="session")
def guest() -> GuestImage:
    return default_guest(progress=lambda line: print(line, file=sys.stderr))
