"""Queues and workers: the same bytes however the work is run, and queue verbs that tell the truth."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import read_mip, run_cli, write_layer
from taskqueue import TaskQueue

JOB = ["image", "downsample", "--num-mips", 2, "--shape", "256,256,64"]  # gzip: bytes must match too


def tree(root: Path) -> dict:
    """Every file's bytes under root, except provenance (it records hosts and times)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "provenance"}


@pytest.fixture
def source(real_seg):
    return np.asfortranarray(real_seg[:300, :260, :64])


def test_same_bytes_in_process_parallel_and_two_workers(tmp_path, source):
    layers = {}
    for name in ("serial", "parallel", "workers"):
        layers[name] = write_layer(f"file://{tmp_path}/{name}", source, "segmentation", offset=(32, 0, 0))
    run_cli(*JOB[:2], layers["serial"], *JOB[2:])
    run_cli("-p", "2", *JOB[:2], layers["parallel"], *JOB[2:])

    queue = f"fq://{tmp_path}/queue"
    run_cli(*JOB[:2], layers["workers"], *JOB[2:], "--queue", queue)
    assert TaskQueue(queue).enqueued == 4
    workers = [subprocess.Popen([sys.executable, "-m", "igneous_like", "--quiet", "execute", "-x", queue],
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    assert TaskQueue(queue).enqueued == 0

    serial = tree(tmp_path / "serial")
    assert len(serial) > 20
    assert tree(tmp_path / "parallel") == serial
    assert tree(tmp_path / "workers") == serial


def test_queue_status_release_purge_and_max_tasks(tmp_path, source):
    path = write_layer(f"file://{tmp_path}/layer", source, "segmentation")
    queue = f"fq://{tmp_path}/queue"
    run_cli(*JOB[:2], path, *JOB[2:], "--queue", queue)

    status = run_cli("queue", "status", queue, "--interval", 0).stdout
    assert "enqueued:  4" in status and "leased:    0" in status

    # a worker that leased a task and died: the task stays leased until released
    tq = TaskQueue(queue)
    tq.lease(seconds=3600)
    assert "leased:    1" in run_cli("queue", "status", queue, "--interval", 0).stdout
    run_cli("queue", "release", queue)
    assert "leased:    0" in run_cli("queue", "status", queue, "--interval", 0).stdout

    run_cli("execute", "--max-tasks", 2, queue)
    assert tq.enqueued == 2
    run_cli("-p", "2", "execute", "-x", queue)
    assert tq.enqueued == 0 and tq.completed == 4
    assert np.array_equal(read_mip(path, 2).shape, (75, 65, 64))

    run_cli(*JOB[:2], path, *JOB[2:], "--queue", queue)
    run_cli("queue", "purge", queue, "--yes")
    assert tq.enqueued == 0


def test_enqueue_says_where_and_what_next(tmp_path, source):
    path = write_layer(f"file://{tmp_path}/layer", source, "segmentation")
    queue_dir = tmp_path / "queue"
    result = run_cli(*JOB[:2], path, *JOB[2:], "--queue", str(queue_dir))
    assert "Enqueued 4 tasks" in result.stderr and f"fq://{queue_dir}" in result.stderr
    assert f"execute -x fq://{queue_dir}" in result.stderr


def test_sqs_queue_end_to_end(tmp_path, source, sqs_env):
    path = write_layer(f"file://{tmp_path}/layer", source, "segmentation")
    expected = write_layer(f"file://{tmp_path}/expected", source, "segmentation")
    run_cli(*JOB[:2], expected, *JOB[2:])
    result = run_cli(*JOB[:2], path, *JOB[2:], "--queue", "sqs://igneous-like-test", env=sqs_env)
    assert "Enqueued 4 tasks" in result.stderr
    run_cli("-p", "2", "execute", "-x", "sqs://igneous-like-test", env=sqs_env)
    assert tree(tmp_path / "layer") == tree(tmp_path / "expected")


def test_mem_layers_refuse_other_processes(tmp_path):
    """mem:// lives in one process: -p 2 or a queue would lose the output, so both are refused."""
    from igneous_like.errors import UserError
    from igneous_like.queues import enqueue, run_locally
    from igneous_like.task_creation import create_downsampling_tasks

    path = write_layer("mem://bench/layer", np.ones((128, 128, 16), np.uint8), "image")
    for run in (lambda tasks: run_locally(tasks, parallel=2),
                lambda tasks: enqueue(tasks, f"fq://{tmp_path}/q")):
        with pytest.raises(UserError, match="mem://"):
            run(create_downsampling_tasks(path, num_mips=1))
    assert not (tmp_path / "q").exists()
    run_locally(create_downsampling_tasks(path, num_mips=1))
    assert read_mip(path, 1).shape == (64, 64, 16)


def test_task_modules_load_when_a_task_needs_them_and_unlisted_ones_never():
    """A worker imports an area's task module (and its heavy libraries) for that area's tasks only,
    and never a module that a message names but igneous_like does not list."""
    code = """
import sys
import igneous_like.tasks.registry
from taskqueue.queueablefns import UnregisteredFunctionError
from taskqueue.queueables import totask
assert "igneous_like.tasks.skeleton" not in sys.modules and "kimimaro" not in sys.modules
totask([["igneous_like.tasks.voxels", "VoxelCountTask"], [], {}, -1]).tofunc()
try:
    totask([["json.tool", "main"], [], {}, -1]).tofunc()
    raise SystemExit("an unlisted module's function was found")
except UnregisteredFunctionError:
    pass
assert "igneous_like.tasks.voxels" in sys.modules and "json.tool" not in sys.modules
assert "igneous_like.tasks.skeleton" not in sys.modules and "kimimaro" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_queue_cp_mv_wait_rezero_and_min_sec(tmp_path, source, sqs_env):
    """Igneous's other queue verbs: a copy of a file queue (a leased task included) and a move
    through SQS and back run to the same bytes as in-process; `queue wait` returns only once the
    workers emptied the queue; rezero zeroes the counts; `execute --min-sec 0` runs one task."""
    expected = write_layer(f"file://{tmp_path}/expected", source, "segmentation")
    run_cli(*JOB[:2], expected, *JOB[2:])
    layer = write_layer(f"file://{tmp_path}/layer", source, "segmentation")
    first, second, sqs = f"fq://{tmp_path}/q1", f"fq://{tmp_path}/q2", "sqs://igneous-like-test"
    run_cli(*JOB[:2], layer, *JOB[2:], "--queue", first)
    TaskQueue(first).lease(seconds=3600)  # a dead worker's task is copied too
    assert "Copied 4 tasks" in run_cli("queue", "cp", first, second).stdout
    run_cli("queue", "release", first)
    assert "Moved 4 tasks" in run_cli("queue", "mv", first, sqs, env=sqs_env).stdout
    assert "Moved 4 tasks" in run_cli("queue", "mv", sqs, f"fq://{tmp_path}/q3", env=sqs_env).stdout
    assert TaskQueue(first).enqueued == 0 and TaskQueue(f"fq://{tmp_path}/q3").enqueued == 4

    command = [sys.executable, "-m", "igneous_like", "queue", "wait", second, "--rate", "0.2"]
    waiting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with pytest.raises(subprocess.TimeoutExpired):
        waiting.wait(timeout=3)  # four tasks wait: so does it
    run_cli("execute", "--min-sec", 0, second)
    assert TaskQueue(second).enqueued == 3
    run_cli("execute", "-x", second)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0 and "is empty" in out and "4 tasks left" in err
    assert tree(tmp_path / "layer") == tree(tmp_path / "expected")
    for scale in json.loads((tmp_path / "layer" / "info").read_text())["scales"][1:]:
        shutil.rmtree(tmp_path / "layer" / scale["key"])  # the downsamples, made again by:
    run_cli("execute", "-x", f"fq://{tmp_path}/q3")  # the job moved through SQS and back
    assert tree(tmp_path / "layer") == tree(tmp_path / "expected")

    run_cli(*JOB[:2], layer, *JOB[2:], "--queue", second)  # four more tasks
    assert TaskQueue(second).completed == 4
    run_cli("queue", "rezero", second)
    assert TaskQueue(second).completed == 0 and TaskQueue(second).enqueued == 4
    for args in (("cp", sqs, second), ("cp", first, first)):
        result = run_cli("queue", *args, env=sqs_env, check=False)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
