"""A task that fails unexpectedly: its traceback is logged, the command exits 1, and a queued task
stays in the queue (leased) so it comes back for a retry instead of being lost.

The failure: one source chunk is deleted, so reading it fails (no --fill-missing).
"""
import numpy as np
import pytest
from conftest import run_cli

from igneous_like import queues

SHAPE = (64, 64, 64)  # chunks of 32; downsampling 2,2,1 by one mip makes two tasks (z 0-32, 32-64)


@pytest.fixture
def broken_layer(make_layer, tmp_path):
    data = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 251).astype(np.uint8)
    path = make_layer("img", data, "image", chunk=(32, 32, 32))
    (tmp_path / "img" / "16_16_40" / "0-32_0-32_0-32").unlink()
    return path


def assert_failure_reported(result, failed: str):
    assert result.returncode == 1, result.stderr
    assert "Traceback" in result.stderr and "EmptyVolumeException" in result.stderr, result.stderr
    assert f"igneous-like: {failed} tasks failed" in result.stderr, result.stderr


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_in_process_run_exits_1_with_the_traceback(broken_layer, tmp_path, parallel):
    result = run_cli("-p", parallel, "image", "downsample", broken_layer, "--num-mips", 1, check=False)
    assert_failure_reported(result, "1 of 2")
    assert list((tmp_path / "img" / "32_32_40").glob("0-32_0-32_32-64*"))  # the other task ran


def test_worker_exits_1_and_leaves_the_failed_task_in_the_queue(broken_layer, tmp_path):
    queue = f"fq://{tmp_path / 'q'}"
    run_cli("image", "downsample", broken_layer, "--num-mips", 1, "--queue", queue)
    result = run_cli("execute", "-x", queue, check=False)
    assert_failure_reported(result, "1 of 2")
    assert len(list((tmp_path / "q" / "queue").iterdir())) == 1  # still there, leased
    status = queues.status(queue)
    assert (status["enqueued"], status["leased"], status["completed"]) == (1, 1, 1)
