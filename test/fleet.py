"""A pipeline of nine steps with branches, run by `execute` workers that are SIGKILLed at random and
replaced, its queue purged half way and `pipeline run` called again; what the workers' logs and the
done markers say about tasks run again. Shared by test_pipeline.py and bench/pipeline_fleet.py."""
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from taskqueue import TaskQueue

JOB = """\
{queue}
state: {state}
vars: {{D: "{data}"}}
steps:
  - name: pyramid
    run: image downsample ${{D}}/seg --num-mips 1 --shape {box},{box},{box}
  - name: cc
    run: image ccl auto ${{D}}/seg ${{D}}/cc --shape {box},{box},{box} --dust 50 --compress none
    after: []
  - name: mesh-forge
    run: mesh forge ${{D}}/cc --shape {box},{box},{half}
  - name: meshes
    run: mesh merge-sharded ${{D}}/cc --nlod 1
  - name: skeleton-forge
    run: skeleton forge ${{D}}/cc --shape {box},{box},{box} --dust-threshold 100
    after: [cc]
  - name: skeletons
    run: skeleton merge ${{D}}/cc
  - name: measure-forge
    run: measure forge ${{D}}/cc --shape {box},{box},{box}
    after: [cc]
  - name: measure-merge
    run: measure merge ${{D}}/cc
  - name: table
    run: measure export ${{D}}/cc {table}
"""
STEPS = 9
MTIME_SLACK = 0.011  # seconds: a file's time of change can trail the clock by one tick (HZ >= 100)
LOG = re.compile(r"^(\S+ \S+) \w+ pipeline task (\S+/\d+/\d+) (runs|is recorded done|is done already)", re.M)


def job_file(root: Path, name: str, queue: Optional[str], box: int = 64):
    """NAME.yaml under `root` (its data in root/NAME, its state in root/NAME.state), and the data folder."""
    data = root / name
    data.mkdir()
    path = root / f"{name}.yaml"
    path.write_text(JOB.format(queue=f"queue: {queue}" if queue else "", data=f"file://{data}",
                               state=f"file://{root}/{name}.state", table=data / "cells.csv",
                               box=box, half=box // 2))
    return path, data


def tree(root: Path) -> dict:
    """Every output file's bytes (provenance records hosts and times; pipelines/ its own progress)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "provenance" and "pipelines" not in p.parts}


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "igneous_like", *map(str, args)], capture_output=True,
                          text=True, check=True)


class Fleet:
    """`execute -x` workers on one queue, each logging (-v) to its own file under `logs`, with a short
    lease so that a killed one's task soon comes back."""

    def __init__(self, queue: str, logs: Path, lease: int = 8):
        self.queue, self.logs, self.lease = queue, logs, lease
        self.workers: List[subprocess.Popen] = []
        self.started = 0
        logs.mkdir(exist_ok=True)

    def keep(self, count: int) -> None:
        """Replace the workers that ended until `count` run."""
        self.workers = [worker for worker in self.workers if worker.poll() is None]
        while len(self.workers) < count:
            log = (self.logs / f"worker{self.started}.log").open("w")
            command = [sys.executable, "-m", "igneous_like", "-v", "--quiet", "execute", "-x",
                       "--lease-sec", str(self.lease), "--retry-delay", "0", self.queue]
            self.workers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log))
            log.close()
            self.started += 1

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()
            worker.wait()
        self.workers = []

    def log_files(self) -> List[Path]:
        return sorted(self.logs.glob("worker*.log"))

    def recorded(self) -> int:
        """How many task runs the workers have recorded done."""
        return sum(log.read_text(errors="replace").count(" is recorded done\n") for log in self.log_files())


def run_with_kills(fleet: Fleet, until: Callable[[], bool], rng, pause: Sequence[float] = (0.2, 1.0),
                   workers: int = 3, most: int = 1000) -> int:
    """Keep `workers` running and, each time one more task is recorded done, SIGKILL one at random
    `pause` seconds later (drawn between the two), until `until()`; then kill them all. Waiting for a
    task to end first keeps a busy machine's slow start-ups from stopping all progress. Returns how
    many were killed at random."""
    kills, seen = 0, 0
    while not until():
        fleet.keep(workers)
        while fleet.recorded() <= seen and not until() and any(w.poll() is None for w in fleet.workers):
            time.sleep(0.1)
        if until():
            break
        seen = fleet.recorded()
        time.sleep(rng.uniform(*pause))
        victim = fleet.workers[rng.integers(len(fleet.workers))]
        victim.kill()
        victim.wait()
        kills += 1
        if kills >= most:
            raise RuntimeError(f"{kills} workers killed and the pipeline has not got there")
    fleet.kill_all()
    return kills


def purge_and_run(queue: str, job: Path) -> subprocess.CompletedProcess:
    """Empty the queue (every task, leased or not), then `pipeline run` the job again."""
    TaskQueue(queue).purge()
    return cli("pipeline", "run", job)


def finish(fleet: Fleet, job: Path, workers: int = 3, rounds: int = 3, timeout: float = 3600) -> str:
    """Start `workers` and wait for them to end (-x: once the queue holds nothing), again up to
    `rounds` times until `pipeline status` says every step is done; returns that status."""
    for _ in range(rounds):
        fleet.keep(workers)
        for worker in fleet.workers:
            worker.wait(timeout=timeout)
        report = cli("pipeline", "status", job).stdout
        if report.count(" done ") == STEPS:
            break
    return report


def task_runs(logs: Sequence[Path], state: Path) -> Counter:
    """From the workers' logs and the done markers under `state`: tasks recorded done, runs begun and
    ended, tasks begun more than once (killed half way, or two copies at once) and recorded done more
    than once (two copies at once), copies skipped as done, and runs begun after the moment their
    task was first recorded done: as its worker logged it (the same clock as the runs, to the
    millisecond), or, for a worker killed between the record and its log line, the done marker's
    time of change plus MTIME_SLACK (file times lag the clock by up to a kernel tick)."""
    done = {"/".join(p.parts[-5:-3] + p.parts[-1:]): p.stat().st_mtime for p in state.glob("*/*/done/*/*")}
    marked, logged, runs = {key: t + MTIME_SLACK for key, t in done.items()}, {}, []
    counts, recorded = Counter({"recorded done": len(done)}), Counter()
    for log in logs:
        for stamp, key, what in LOG.findall(log.read_text(errors="replace")):
            moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            counts[what] += 1
            if what == "runs":
                runs.append((key, moment))
            elif what == "is recorded done":
                recorded[key] += 1
                logged[key] = min(logged.get(key, moment), moment)
    counts["run more than once"] = sum(n > 1 for n in Counter(key for key, _ in runs).values())
    counts["recorded done more than once"] = sum(n > 1 for n in recorded.values())
    first_done = {**marked, **logged}
    counts["run after recorded done"] = sum(moment > first_done.get(key, float("inf"))
                                            for key, moment in runs)
    return counts
