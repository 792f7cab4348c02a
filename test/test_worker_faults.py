"""Workers that neither lose nor duplicate work: lease renewal for long tasks, SIGTERM stops
after the current task. Real worker processes on a real file queue."""
import os
import signal
import subprocess
import sys
import time
from functools import partial

import pytest
from conftest import REPO
from sleep_task import SleepTask

from igneous_like.queues import enqueue, status

WORKER_ENV = dict(os.environ, IGNEOUS_LIKE_TASK_MODULES="sleep_task",
                  PYTHONPATH=os.pathsep.join([str(REPO / "test"), os.environ.get("PYTHONPATH", "")]))


def start_worker(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "igneous_like", *args], env=WORKER_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(path) -> list:
    return path.read_text().split() if path.exists() else []


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_task_longer_than_its_lease_runs_once(tmp_path):
    """A 2 s lease and a 6 s task: while it runs, other workers keep trying to lease it, and the
    renewed lease keeps every one of them off it."""
    queue, log = f"fq://{tmp_path / 'q'}", tmp_path / "log"
    enqueue([partial(SleepTask, name="slow", seconds=6, log_path=str(log))], queue)
    first = start_worker("execute", "-x", "--lease-sec", "2", queue)
    wait_for(lambda: "start" in lines(log))
    while first.poll() is None:
        other = start_worker("execute", "-x", "--lease-sec", "2", queue)
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
