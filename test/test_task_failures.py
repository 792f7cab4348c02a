"""Failed tasks: a mistake in the input (a missing chunk) is one line naming the layer, mip, chunk
and the option to use; an unexpected failure keeps its traceback; a queued task that keeps
failing is retried and then waits in the dead-letter queue, never lost and never read as zeros.
"""
import numpy as np
import pytest
from conftest import run_cli

from igneous_like import queues

SHAPE = (64, 64, 64)  # chunks of 32; downsampling 2,2,1 by one mip makes two tasks (z 0-32, 32-64)
CHUNK = "16_16_40/0-32_0-32_0-32"


@pytest.fixture
def layer(make_layer, tmp_path):
    data = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 251).astype(np.uint8)
    return make_layer("img", data, "image", chunk=(32, 32, 32))


def missing_chunk_line(path: str) -> str:
    return f"chunk {CHUNK} of {path} (mip 0) is missing: write it, or run with --fill-missing"


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_a_missing_chunk_is_one_line_naming_it_and_the_option(layer, tmp_path, parallel):
    (tmp_path / "img" / CHUNK).unlink()
    result = run_cli("-p", parallel, "image", "downsample", layer, "--num-mips", 1, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count(missing_chunk_line(layer)) == 1, result.stderr
    assert "Traceback" not in result.stderr and "igneous-like: 1 of 2 tasks failed" in result.stderr
    assert list((tmp_path / "img" / "32_32_40").glob("0-32_0-32_32-64*"))  # the other task ran
    assert not list((tmp_path / "img" / "32_32_40").glob("0-32_0-32_0-32*"))  # no zeros written


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_an_unexpected_failure_keeps_its_traceback(layer, tmp_path, parallel):
    (tmp_path / "img" / CHUNK).write_bytes(b"not a raw chunk")  # the wrong size to decode
    result = run_cli("-p", parallel, "image", "downsample", layer, "--num-mips", 1, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" in result.stderr and "igneous-like: 1 of 2 tasks failed" in result.stderr


def test_a_worker_retries_then_buries_a_task_that_reads_a_missing_chunk(layer, tmp_path):
    (tmp_path / "img" / CHUNK).unlink()
    queue = f"fq://{tmp_path / 'q'}"
    run_cli("image", "downsample", layer, "--num-mips", 1, "--queue", queue)
    result = run_cli("execute", "-x", "--retry-delay", 0, queue, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count(missing_chunk_line(layer)) == 3 and "Traceback" not in result.stderr
    assert "attempt 1 of 3" in result.stderr and "failed 3 times" in result.stderr
    assert "1 of 2 tasks failed and went to the dead-letter queue" in result.stderr
    status = queues.status(queue)
    assert (status["enqueued"], status["leased"], status["completed"], status["dead"]) == (0, 0, 1, 1)
