"""Library loading, dispatch control and the error mapping."""

import numpy as np
import pytest

import mlak


def test_version_and_library_path():
    assert mlak.version() == "0.1.0"
    assert "mlak" in str(mlak.library_path)


def test_set_isa_rejects_unknown_name():
    with pytest.raises(mlak.UnsupportedIsaError) as e:
        mlak.set_isa("sse9")
    assert e.value.status == 3
    assert "sse9" in e.value.message
    assert isinstance(e.value, RuntimeError)


def test_set_isa_rejects_non_string():
    with pytest.raises(TypeError):
        mlak.set_isa(2)


def test_set_isa_and_last_dispatched(isa):
    assert mlak.get_isa() == isa
    mlak.softmax(np.zeros((2, 3), np.float32))
    assert mlak.last_dispatched_isa() == isa


def test_threads_round_trip():
    mlak.set_num_threads(1)
    assert mlak.num_threads() == 1
    mlak.set_num_threads(0)
    assert mlak.num_threads() >= 1
    with pytest.raises(mlak.InvalidArgumentError):
        mlak.set_num_threads(-1)


def test_error_classes_carry_status_and_message():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(mlak.InvalidArgumentError) as e:
        mlak.softmax(x, temperature=0.0)
    assert e.value.status == 2
    assert "temperature = 0" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, mlak.MlakError)


def test_library_override_is_honoured(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "libnothere.so"
    code = "import mlak"
    env = {"MLAK_LIBRARY": str(missing), "PYTHONPATH": str(mlak.__file__).rsplit("/mlak/", 1)[0]}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "could not load the mlak library" in r.stderr
