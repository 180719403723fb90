"""Library loading, dispatch control, threads and the error mapping."""

import os
import signal
import time

import numpy as np
import pytest

import mlak


def test_version_and_best_isa():
    assert mlak.version() == "0.1.0"
    assert mlak.best_isa() in mlak.ISAS
    assert mlak.isa_supported(mlak.best_isa())
    assert not mlak.isa_supported("sse9")


def test_set_isa_rejects_unknown_name():
    with pytest.raises(mlak.MlakUnsupportedIsaError) as e:
        mlak.set_isa("sse9")
    assert e.value.status == 3
    assert "sse9" in e.value.message
    assert isinstance(e.value, RuntimeError)


def test_set_isa_rejects_non_string():
    with pytest.raises(TypeError):
        mlak.set_isa(2)


def test_set_isa_and_last_dispatched(isa):
    assert mlak.isa() == isa
    mlak.softmax(np.zeros((2, 3), np.float32))
    assert mlak.last_dispatched_isa() == isa


def test_threads_round_trip():
    mlak.set_num_threads(1)
    assert mlak.num_threads() == 1
    mlak.set_num_threads(0)
    assert mlak.num_threads() >= 1
    with pytest.raises(ValueError):
        mlak.set_num_threads(-1)
    with pytest.raises(ValueError, match="size_t"):
        mlak.set_num_threads(2**64 + 5)
    with pytest.raises(TypeError, match="integer"):
        mlak.set_num_threads("2")
    mlak.set_num_threads(np.int64(1))
    assert mlak.num_threads() == 1
    mlak.set_num_threads(0)


def test_threaded_calls_work_in_a_forked_child():
    """A child made by fork has none of its parent's worker threads. A
    threaded call there must still finish and give the same result."""
    if not hasattr(os, "fork"):
        pytest.skip("os.fork is not available here")
    from mlak.attention import attention

    rng = np.random.default_rng(7)
    q = rng.standard_normal((1, 8, 1, 16), dtype=np.float32)
    k = rng.standard_normal((1, 8, 40, 16), dtype=np.float32)
    v = rng.standard_normal((1, 8, 40, 16), dtype=np.float32)
    mlak.set_num_threads(2)
    try:
        # 8 KV heads give 8 tasks, so the call runs on 2 threads.
        want = attention(q, k, v, scale=0.25).copy()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                got = attention(q, k, v, scale=0.25)
                code = 0 if np.array_equal(got, want) else 3
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung in a threaded call for 60 s")
            time.sleep(0.02)
        assert os.WIFEXITED(status), f"child exit status {status:#x}"
        assert os.WEXITSTATUS(status) == 0, f"child exit code {os.WEXITSTATUS(status)}"
    finally:
        mlak.set_num_threads(0)


def _wait_child(pid, seconds):
    """Returns the child's exit status, or None after killing it when it
    has not exited within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.002)


def test_fork_during_another_threads_call():
    """A fork can land while another thread of the parent is inside a GEMM
    and holds a lock there. The child's own threaded GEMM must not wait on
    that lock, which no thread of the child will ever release."""
    if not hasattr(os, "fork"):
        pytest.skip("os.fork is not available here")
    import threading

    rng = np.random.default_rng(3)
    a = rng.standard_normal((160, 200), dtype=np.float32)
    b = rng.standard_normal((200, 150), dtype=np.float32)
    ones_a = np.ones((256, 300), np.float32)
    ones_b = np.ones((300, 200), np.float32)
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            mlak.sgemm(a, b)

    mlak.set_num_threads(2)
    worker = threading.Thread(target=busy)
    worker.start()
    try:
        for i in range(100):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = 0 if np.all(mlak.sgemm(ones_a, ones_b) == 300.0) else 3
                finally:
                    os._exit(code)
            status = _wait_child(pid, 10)
            assert status is not None, f"fork {i}: the child hung in its GEMM for 10 s"
            assert status == 0, f"fork {i}: child exit status {status:#x}"
    finally:
        stop.set()
        worker.join()
        mlak.set_num_threads(0)


def test_error_classes_carry_status_and_message():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(mlak.MlakInvalidArgumentError) as e:
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
    assert "could not be loaded" in r.stderr
    assert str(missing) in r.stderr


def test_partial_overlap_is_rejected():
    buf = np.zeros(40, np.float32)
    x = buf[:32].reshape(4, 8)
    y = buf[4:36].reshape(4, 8)
    with pytest.raises(mlak.MlakInvalidArgumentError, match="overlaps"):
        mlak.softmax(x, out=y)
    with pytest.raises(mlak.MlakInvalidArgumentError, match="overlaps"):
        mlak.gelu(x, out=y)


def test_read_only_output_is_rejected():
    x = np.zeros((2, 3), np.float32)
    out = np.zeros((2, 3), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        mlak.softmax(x, out=out)
    with pytest.raises(ValueError, match="read-only"):
        mlak.layernorm(x, out=out)
