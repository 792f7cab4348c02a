"""Workers that neither lose nor duplicate work: lease renewal for long tasks, SIGTERM stops
after the current task. Real worker processes on a real file queue."""
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest
from conftest import REPO, run_cli
from sleep_task import SleepTask
from taskqueue import TaskQueue

from igneous_like.queues import enqueue, status

WORKER_ENV = dict(os.environ, IGNEOUS_LIKE_TASK_MODULES="sleep_task",
                  PYTHONPATH=os.pathsep.join([str(REPO / "test"), os.environ.get("PYTHONPATH", "")]))


def start_worker(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "igneous_like", *args], env=env or WORKER_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(path) -> list:
    return path.read_text().split() if path.exists() else []


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["fq", "sqs"])
def test_a_task_longer_than_its_lease_runs_once(tmp_path, request, monkeypatch, kind):
    """A 2 s lease and a 6 s task: while it runs, other workers keep trying to lease it, and the
    renewed lease keeps every one of them off it."""
    env = dict(WORKER_ENV)
    if kind == "sqs":
        aws = request.getfixturevalue("sqs_env")
        env.update(aws)
        for key, value in aws.items():
            monkeypatch.setenv(key, value)
    queue = f"fq://{tmp_path / 'q'}" if kind == "fq" else "sqs://igneous-like-test"
    log = tmp_path / "log"
    enqueue([partial(SleepTask, name="slow", seconds=6, log_path=str(log))], queue)
    first = start_worker("execute", "-x", "--lease-sec", "2", queue, env=env)
    wait_for(lambda: "start" in lines(log))
    while first.poll() is None:
        other = start_worker("execute", "-x", "--lease-sec", "2", queue, env=env)
        assert other.wait(timeout=60) == 0, other.stderr.read()
    assert first.returncode == 0, first.stderr.read()
    assert lines(log) == ["start", "slow", "end", "slow"]
    assert status(queue)["enqueued"] == 0


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_sigterm_finishes_the_current_task_then_stops(tmp_path, parallel):
    queue, log = f"fq://{tmp_path / 'q'}", tmp_path / "log"
    tasks = [partial(SleepTask, name=f"t{i}", seconds=2, log_path=str(log)) for i in range(6)]
    enqueue(tasks, queue)
    worker = start_worker("-p", parallel, "execute", "--lease-sec", "60", queue)
    wait_for(lambda: lines(log).count("start") == int(parallel))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.stderr.read()
    started, ended = lines(log).count("start"), lines(log).count("end")
    assert started == ended == int(parallel)  # each worker finished its task and took no other
    counts = status(queue)
    assert counts["enqueued"] == 6 - int(parallel) and counts["leased"] == 0


def test_unregistered_and_garbage_messages_go_to_the_dead_letter_queue(tmp_path):
    """A worker that does not know SleepTask never runs it; neither a garbage message nor it
    crashes the worker: both wait in the dead-letter queue, and go back with release --dead."""
    queue, log = f"fq://{tmp_path / 'q'}", tmp_path / "log"
    enqueue([partial(SleepTask, name="unknown", seconds=0, log_path=str(log))], queue)
    TaskQueue(queue).api.insert([{"payload": ["no_such_module", "nothing", [], {}, None]},
                                 {"payload": "not a task at all"}])
    result = run_cli("execute", "-x", queue, check=False)
    assert result.returncode == 1 and "not a registered task" in result.stderr, result.stderr
    assert not log.exists()
    counts = status(queue)
    assert (counts["enqueued"], counts["dead"]) == (0, 3)
    assert "dead:      3" in run_cli("queue", "status", queue).stdout
    run_cli("queue", "release", "--dead", queue)
    assert (status(queue)["enqueued"], status(queue)["dead"]) == (3, 0)
    worker = start_worker("execute", "-x", queue)  # this one knows SleepTask
    assert worker.wait(timeout=60) == 1
    assert lines(log) == ["start", "unknown", "end", "unknown"] and status(queue)["dead"] == 2


def test_a_failing_task_is_retried_then_buried(make_layer, tmp_path):
    """A task that always fails runs --max-attempts times, then waits in the dead-letter queue."""
    data = np.zeros((64, 64, 64), np.uint8)
    path = make_layer("img", data, "image", chunk=(32, 32, 32))
    (tmp_path / "img" / "16_16_40" / "0-32_0-32_0-32").unlink()  # its reads fail
    queue = f"fq://{tmp_path / 'q'}"
    run_cli("image", "downsample", path, "--num-mips", 1, "--queue", queue)
    result = run_cli("execute", "-x", "--max-attempts", 3, "--retry-delay", 0, queue, check=False)
    assert result.returncode == 1 and result.stderr.count("EmptyVolumeException") >= 3, result.stderr
    assert "attempt 1 of 3" in result.stderr and "failed 3 times" in result.stderr
    counts = status(queue)
    assert (counts["enqueued"], counts["dead"], counts["completed"]) == (0, 1, 1)


def test_dead_letters_on_sqs(make_layer, tmp_path, sqs_env):
    """On SQS the dead-letter queue is NAME-dead, made when first needed; status and release see it."""
    data = np.zeros((64, 64, 32), np.uint8)
    path = make_layer("img", data, "image", chunk=(32, 32, 32))
    (tmp_path / "img" / "16_16_40" / "0-32_0-32_0-32").unlink()
    queue = "sqs://igneous-like-test"
    run_cli("image", "downsample", path, "--num-mips", 1, "--queue", queue, env=sqs_env)
    result = run_cli("execute", "-x", "--max-attempts", 2, "--retry-delay", 0, queue, check=False,
                     env=sqs_env)
    assert result.returncode == 1 and "failed 2 times" in result.stderr, result.stderr
    assert "dead:      1" in run_cli("queue", "status", queue, env=sqs_env).stdout
    assert "Moved 1 tasks" in run_cli("queue", "release", "--dead", queue, env=sqs_env).stdout
    assert "dead:      0" in run_cli("queue", "status", queue, "--interval", 0, env=sqs_env).stdout


def test_killed_workers_lose_nothing(make_layer, tmp_path):
    """Three workers on one queue, one SIGKILLed every 0.3 s and replaced, until the job is done:
    the output is byte-identical to a clean run and every task ran to completion."""
    rng = np.random.default_rng(7)
    data = rng.integers(0, 255, (512, 256, 64), dtype=np.uint8)
    clean, faulty = (make_layer(name, data, "image", chunk=(32, 32, 32)) for name in ("clean", "faulty"))
    job = ["image", "downsample", "--num-mips", 1, "--shape", "64,64,32", "--compress", "none"]
    run_cli(*job[:2], clean, *job[2:])
    queue = f"fq://{tmp_path / 'q'}"
    run_cli(*job[:2], faulty, *job[2:], "--queue", queue)
    workers, kills = [], 0
    while status(queue)["enqueued"] > 0:
        workers = [w for w in workers if w.poll() is None]
        while len(workers) < 3:
            workers.append(start_worker("execute", "-x", "--lease-sec", "2", queue))
        time.sleep(0.3)
        victim = workers[rng.integers(len(workers))]
        if victim.poll() is None:
            victim.kill()
            kills += 1
    for worker in workers:
        worker.wait(timeout=60)
    assert kills >= 3
    assert status(queue)["completed"] == 64 and status(queue)["dead"] == 0

    def tree(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()
                and p.name != "provenance"}
    assert tree(tmp_path / "faulty") == tree(tmp_path / "clean")


def test_s3_and_sqs_through_flaky_storage_match_the_local_run(make_layer, tmp_path, sqs_env):
    """The same job on s3:// through sqs:// while a fifth of all requests fail with 503: every
    request is retried and the output equals the file:// + fq:// run byte for byte. Then voxel
    counting reads the s3:// layer chunk by chunk, with reads ahead, and counts every voxel."""
    import boto3
    import fastremap
    from cloudvolume import CloudVolume
    from cloudvolume.lib import Bbox
    from conftest import FlakyProxy

    from igneous_like.label_table import read_voxel_counts
    from igneous_like.layers import chunk_parts
    rng = np.random.default_rng(3)
    data = rng.integers(0, 255, (128, 128, 64), dtype=np.uint8)
    local = make_layer("local", data, "image", chunk=(32, 32, 32))
    boto3.client("s3", endpoint_url=sqs_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="lab")
    job = ["image", "downsample", "--num-mips", 1, "--shape", "64,64,32"]
    proxy = FlakyProxy(sqs_env["AWS_ENDPOINT_URL"], failure_rate=0.2)
    flaky_env = dict(sqs_env, AWS_ENDPOINT_URL=proxy.url)
    try:
        remote = "s3://lab/em"
        write = "from igneous_like.layers import write_array; import numpy as np, sys; " \
                f"write_array('{remote}', np.load(sys.argv[1]), 'image', chunk=(32, 32, 32))"
        np.save(tmp_path / "data.npy", data)
        subprocess.run([sys.executable, "-c", write, str(tmp_path / "data.npy")],
                       env={**os.environ, **flaky_env}, check=True)
        run_cli(*job[:2], remote, *job[2:], "--queue", "sqs://igneous-like-test", env=flaky_env)
        run_cli("-p", "2", "execute", "-x", "sqs://igneous-like-test", env=flaky_env)
        run_cli(*job[:2], local, *job[2:], "--queue", f"fq://{tmp_path / 'q'}")
        run_cli("execute", "-x", f"fq://{tmp_path / 'q'}")
    finally:
        proxy.close()
    assert proxy.failed > 20 and proxy.passed > 0
    os.environ.update(sqs_env)  # read back through the healthy endpoint
    try:
        for mip in range(2):
            ours = CloudVolume(remote, mip=mip, progress=False)
            theirs = CloudVolume(local, mip=mip, progress=False)
            assert np.array_equal(ours[ours.bounds], theirs[theirs.bounds]), mip
        # chunk by chunk from the object store, a few reads ahead: every voxel of the box once
        box = Bbox((10, 0, 5), (128, 100, 64))
        parts = list(chunk_parts(CloudVolume(remote, progress=False), box, 0, ahead=3))
        assert np.array_equal(np.bincount(np.concatenate([part.ravel() for part in parts]), minlength=256),
                              np.bincount(data[box.to_slices()].ravel(), minlength=256))
        run_cli("image", "voxels", "count", remote, env=sqs_env)
        run_cli("image", "voxels", "sum", remote, env=sqs_env)
        assert np.array_equal(read_voxel_counts(remote), fastremap.unique(data, return_counts=True))
    finally:
        for key in sqs_env:
            os.environ.pop(key, None)


def test_garbage_on_sqs_goes_to_the_dead_letter_queue(sqs_env):
    """A message body that is not even JSON neither crashes the worker nor comes back forever."""
    import boto3
    sqs = boto3.client("sqs", endpoint_url=sqs_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.get_queue_url(QueueName="igneous-like-test")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{this is not json")
    result = run_cli("execute", "-x", "sqs://igneous-like-test", check=False, env=sqs_env)
    assert result.returncode == 1 and "not a registered task" in result.stderr, result.stderr
    assert "dead:      1" in run_cli("queue", "status", "sqs://igneous-like-test", env=sqs_env).stdout


def test_file_queues_never_nap_to_count_or_to_lease(tmp_path, monkeypatch):
    """python-task-queue's file queue naps when a new queue has no insert count yet (retries with
    backoff) and when a lease may wait; a new queue gets its count and workers never ask to wait."""
    from igneous_like.worker import work
    queue, log, naps = f"fq://{tmp_path / 'q'}", tmp_path / "log", []
    monkeypatch.setattr(time, "sleep", naps.append)  # SleepTask(seconds=0) naps 0 s: not a wait
    enqueue([partial(SleepTask, name=str(n), seconds=0, log_path=str(log)) for n in range(3)], queue)
    report = work(queue, exit_on_empty=True)
    assert (report.done, report.failed) == (3, 0) and lines(log).count("end") == 3
    assert [nap for nap in naps if nap] == []
    assert (status(queue)["inserted"], status(queue)["completed"]) == (3, 3)


def test_a_truncated_file_queue_message_goes_to_the_dead_letter_queue(tmp_path):
    """A message file cut short (its writer killed mid-write) is not JSON: the worker that leases it
    moves its text to the dead-letter queue instead of leaving it to come back unread forever, and
    runs the other tasks."""
    queue, log = f"fq://{tmp_path / 'q'}", tmp_path / "log"
    enqueue([partial(SleepTask, name=name, seconds=0, log_path=str(log)) for name in ("cut", "whole")], queue)
    files = sorted((tmp_path / "q" / "queue").iterdir())
    cut = next(path for path in files if '"cut"' in path.read_text())
    truncated = cut.read_text()[:40]
    cut.write_text(truncated)
    worker = start_worker("execute", "-x", queue)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 1 and "not a registered task" in err, err
    assert lines(log) == ["start", "whole", "end", "whole"]
    assert (status(queue)["enqueued"], status(queue)["dead"]) == (0, 1)
    (letter,) = (tmp_path / "q" / "dead" / "queue").iterdir()
    assert json.loads(letter.read_text())["payload"] == truncated
