"""Workers that neither lose nor duplicate work: lease renewal for long tasks, SIGTERM stops
after the current task. Real worker processes on a real file queue."""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, read_mip, run_cli
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


def wait_for(predicate, timeout: float = 90) -> None:
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
                                 {"payload": "not a task at all"},
                                 {"payload": {"class": "PrintTask", "txt": "ran python-task-queue's task"}},
                                 {"payload": [["json.tool", "main"], [], {}, None]}])
    result = run_cli("execute", "-x", queue, check=False)
    assert result.returncode == 1 and "not a registered task" in result.stderr, result.stderr
    assert "ran python-task-queue's task" not in result.stdout + result.stderr
    assert not log.exists()
    counts = status(queue)
    assert (counts["enqueued"], counts["dead"]) == (0, 5)
    assert "dead:      5" in run_cli("queue", "status", queue).stdout
    run_cli("queue", "release", "--dead", queue)
    assert (status(queue)["enqueued"], status(queue)["dead"]) == (5, 0)
    worker = start_worker("execute", "-x", queue)  # this one knows SleepTask
    assert worker.wait(timeout=60) == 1
    assert lines(log) == ["start", "unknown", "end", "unknown"] and status(queue)["dead"] == 4


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


def tree(root):
    """Every file's bytes under root, except provenance (it records hosts and times)."""
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != "provenance"}


@pytest.fixture
def downsample_job(make_layer, tmp_path):
    """(queue, the layer being made, the same job's output from a clean run): 256 tasks enqueued."""
    data = np.random.default_rng(7).integers(0, 255, (512, 512, 128), dtype=np.uint8)
    clean, faulty = (make_layer(name, data, "image", chunk=(32, 32, 32)) for name in ("clean", "faulty"))
    job = ["image", "downsample", "--num-mips", 1, "--shape", "64,64,32", "--compress", "none"]
    run_cli(*job[:2], clean, *job[2:])
    queue = f"fq://{tmp_path / 'q'}"
    run_cli(*job[:2], faulty, *job[2:], "--queue", queue)
    return queue, tmp_path / "faulty", tmp_path / "clean"


def leased_now(queue: str) -> set:
    """The ids of a file queue's messages under a lease now (file names TIMESTAMP--ID.json)."""
    names = [entry.name for entry in os.scandir(Path(queue[len("fq://"):]) / "queue")]
    return {name.split("--")[1] for name in names if int(name.split("--")[0]) > time.time()}


def test_execute_x_after_killed_workers_runs_every_task_they_left(downsample_job):
    """Workers SIGKILLed one after another leave tasks leased; a single `execute -x` afterwards
    waits for those leases to end, runs the tasks and returns only when the queue is empty: the
    output equals a clean run byte for byte."""
    queue, faulty, clean = downsample_job
    rng = np.random.default_rng(1)
    held = set()
    for _ in range(3):  # each leases a task (for longer than the rest of the job takes) and is killed
        worker = start_worker("execute", "-x", "--lease-sec", "30", queue)
        wait_for(lambda seen=frozenset(held): leased_now(queue) - seen)  # a slow start may outlast a lease
        time.sleep(rng.uniform(0, 0.3))
        worker.kill()
        worker.wait()
        held |= leased_now(queue)
    assert len(held) >= 3 and status(queue)["leased"] > 0  # held by dead workers
    result = run_cli("execute", "-x", "--lease-sec", "2", queue)
    assert "waiting for" in result.stderr and "held by leases" in result.stderr, result.stderr
    counts = status(queue)
    assert (counts["enqueued"], counts["leased"], counts["dead"]) == (0, 0, 0)
    assert tree(faulty) == tree(clean)


def children_of(pid: int) -> list:
    """Process ids of `pid`'s children, from /proc."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def worker_processes(execute: int) -> list:
    """The worker processes of an `execute`: its forkserver's children."""
    (server,) = [pid for pid in children_of(execute)
                 if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return children_of(server)


def test_execute_replaces_a_worker_process_that_was_killed(downsample_job):
    """`execute -p 2` whose worker process is SIGKILLed mid-task (as the OOM killer would): another
    takes its place, the task it held runs again, and every task finishes with the clean output."""
    queue, faulty, clean = downsample_job
    execute = start_worker("-p", "2", "execute", "-x", "--retry-delay", "0", queue)
    wait_for(lambda: status(queue)["completed"] >= 8)
    os.kill(worker_processes(execute.pid)[0], signal.SIGKILL)
    _, err = execute.communicate(timeout=120)
    assert execute.returncode == 0, err
    assert "was killed by SIGKILL" in err and "starting another in its place" in err, err
    counts = status(queue)
    assert (counts["enqueued"], counts["dead"], counts["completed"]) == (0, 0, 256)
    assert tree(faulty) == tree(clean)


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
    from igneous_like.tasks import registry
    from igneous_like.worker import work
    monkeypatch.setattr(registry, "OPERATOR_MODULES", frozenset({"sleep_task"}))  # as its workers have it
    queue, log, naps = f"fq://{tmp_path / 'q'}", tmp_path / "log", []
    monkeypatch.setattr(time, "sleep", naps.append)  # SleepTask(seconds=0) naps 0 s: not a wait
    enqueue([partial(SleepTask, name=str(n), seconds=0, log_path=str(log)) for n in range(3)], queue)
    report = work(queue, exit_on_empty=True)
    assert (report.done, report.retried, report.buried) == (3, 0, 0) and lines(log).count("end") == 3
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


def test_poison_tasks_end_in_the_dead_letter_queue_while_one_worker_runs_the_rest(make_layer, tmp_path):
    """Three poisons in one queue with healthy work: a message that is a JSON string, a merge task
    whose intermediate file was cut short (its reader raises a BaseException), and a task whose
    chunk crashes its decoder (a segfault). One `execute -x` process runs throughout: each poison
    is dead-lettered after --max-attempts, and every healthy task's output is right."""
    rng = np.random.default_rng(0)
    crashing = np.asfortranarray(rng.integers(0, 1000, (64, 64, 64), dtype=np.uint32))
    bad = make_layer("bad", crashing, "segmentation", chunk=(64, 64, 64), encoding="compressed_segmentation")
    chunk = tmp_path / "bad" / "16_16_40" / "0-64_0-64_0-64"
    # every block's values said to lie 16 GiB past the chunk: its decoder reads unmapped memory and
    # segfaults every time (one cut short is read just past its end, which crashes only sometimes)
    chunk.write_bytes(struct.pack("<I", 1) + struct.pack("<II", 1 << 24, 0xFFFFFFF0) * 8 ** 3)
    read = "import sys, cloudvolume; cv = cloudvolume.CloudVolume(sys.argv[1]); cv[cv.bounds]"
    assert subprocess.run([sys.executable, "-c", read, bad]).returncode == -signal.SIGSEGV

    seg = np.zeros((64, 64, 64), np.uint32)
    seg[8:40, 8:40, 8:40], seg[30:60, 30:60, 20:50] = 1, 2
    meshed = make_layer("meshed", seg, "segmentation", chunk=(32, 32, 32))
    run_cli("mesh", "forge", meshed, "--shape", "32,32,32")
    fragments = sorted((tmp_path / "meshed").glob("mesh*/*.frags"))
    fragments[0].write_bytes(fragments[0].read_bytes()[:-40])  # a label's bytes fail their checksum

    good = make_layer("good", (seg * 50).astype(np.uint8), "image", chunk=(32, 32, 32))
    queue = f"fq://{tmp_path / 'q'}"
    run_cli("image", "downsample", good, "--num-mips", 1, "--queue", queue)  # 2 tasks
    run_cli("mesh", "merge", meshed, "--queue", queue)  # 1 task, all labels
    run_cli("image", "downsample", bad, "--num-mips", 1, "--queue", queue)  # 1 task
    (tmp_path / "q" / "queue" / "0--0000-json-string.json").write_text('"a JSON string, not an object"')

    result = run_cli("execute", "-x", "--max-attempts", 2, "--retry-delay", 0, queue, check=False)
    assert result.returncode == 1, result.stderr
    summary = r"igneous-like: 3 of \d+ tasks failed and went to the dead-letter queue"
    assert re.search(summary, result.stderr), result.stderr
    assert result.stderr.count("its worker process was killed by SIGSEGV") == 2
    assert "ValidationError" in result.stderr
    counts = status(queue)
    assert (counts["enqueued"], counts["dead"], counts["completed"]) == (0, 3, counts["inserted"] - 2)
    letters = [json.loads(p.read_text()) for p in (tmp_path / "q" / "dead" / "queue").iterdir()]
    reasons = sorted(letter["error"].split(":")[0] for letter in letters)
    assert reasons == ["ValidationError('Label 1 failed its crc32c check. Stored",
                       "its worker process was killed by SIGSEGV", "not a registered task"], reasons
    expected = seg[::2, ::2] * 50  # 2x2x1 average of blocks of equal values
    assert np.array_equal(read_mip(good, 1), expected)


def test_execute_x_on_sqs_waits_for_a_dead_workers_lease(tmp_path, sqs_env):
    """On SQS a message received by a worker that then died stays in flight until its visibility
    timeout ends: `execute -x` counts it (visible + in flight + delayed), waits, and runs it."""
    import boto3
    env = dict(WORKER_ENV, **sqs_env)
    queue, log = "sqs://igneous-like-test", tmp_path / "log"
    tasks = [partial(SleepTask, name=name, seconds=0, log_path=str(log)) for name in ("held", "free")]
    subprocess.run([sys.executable, "-c", "import sys, json; from functools import partial; "
                    "from sleep_task import SleepTask; from igneous_like.queues import enqueue; "
                    "enqueue([partial(SleepTask, **kw) for kw in json.loads(sys.argv[1])], sys.argv[2])",
                    json.dumps([t.keywords for t in tasks]), queue], env=env, check=True)
    sqs = boto3.client("sqs", endpoint_url=sqs_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.get_queue_url(QueueName="igneous-like-test")["QueueUrl"]
    # in flight for 12 s: longer than a worker takes to start on a loaded machine
    held = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=12)["Messages"]
    assert len(held) == 1
    worker = start_worker("execute", "-x", queue, env=env)  # the receiver above never deletes: it "died"
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert sorted(lines(log)) == ["end", "end", "free", "free", "held", "held", "start", "start"], err
    assert "waiting for 1 tasks in flight or delayed on SQS" in err, err
