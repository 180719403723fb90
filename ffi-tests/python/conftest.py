"""Shared fixtures: the package from the repository's python/ folder and a
fixture that runs a test under every instruction set this CPU supports."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import mlak  # noqa: E402


def supported_isas():
    return [isa for isa in mlak.ISAS if mlak.isa_supported(isa)]


@pytest.fixture(params=list(mlak.ISAS))
def isa(request):
    """Forces dispatch to one level for the test, skipping levels this CPU
    lacks, and restores the best level afterwards."""
    name = request.param
    if not mlak.isa_supported(name):
        pytest.skip(f"{name} not supported by this CPU")
    mlak.set_isa(name)
    yield name
    mlak.set_isa(mlak.best_isa())


def assert_ran(isa):
    assert mlak.last_dispatched_isa() == isa, f"the call dispatched to {mlak.last_dispatched_isa()}, not {isa}"


_erf = np.frompyfunc(math.erf, 1, 1)


def erf64(x):
    return _erf(np.asarray(x, dtype=np.float64)).astype(np.float64)


def rng(seed=0):
    return np.random.default_rng(seed)
