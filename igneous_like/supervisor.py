"""Worker processes under one supervisor, so that no task can take the worker down with it.

Every task runs in a child process (`execute -p N` keeps N of them). Before a child runs a task
it tells the supervisor which message it holds. A child that dies while running one (a segfault
in a decoder, the OOM killer's SIGKILL) cannot count that failure itself, so the supervisor does:
the task's attempt is counted as a failure (retried, then dead-lettered like any other) and
another child takes the dead one's place (so does one killed between tasks). A child that fails
with an error of its own outside any task (it could not reach the queue, say) is not replaced:
its error is the command's.
"""
import logging
import multiprocessing
import os
import select
import signal
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import List, Optional

from taskqueue import TaskQueue

from igneous_like.errors import WorkerFailures
from igneous_like.worker import WorkerReport, fail, task_name, work

log = logging.getLogger(__name__)


@dataclass
class Child:
    process: multiprocessing.Process
    channel: Connection
    max_tasks: Optional[int]
    running: Optional[dict] = None  # the message the child runs now
    used: int = 0  # tasks it attempted
    report: WorkerReport = field(default_factory=WorkerReport)

    def receive(self) -> None:
        """Take in what the child said: the task it started, or how the last one ended."""
        try:
            while self.channel.poll():
                kind, value = self.channel.recv()
                if kind == "run":
                    self.running = value
                else:
                    self.running, self.used, self.report = None, self.used + 1, self.report + value
        except (EOFError, OSError):  # it ended; all it sent was read
            pass


def supervise(url: str, parallel: int, lease_sec: int, max_tasks: Optional[int], exit_on_empty: bool,
              max_attempts: int, retry_delay: float, until: Optional[float] = None) -> WorkerReport:
    """Keep `parallel` worker processes on the queue until they are done; returns what they did."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["igneous_like.tasks.registry"])
    settings = dict(lease_sec=lease_sec, exit_on_empty=exit_on_empty, max_attempts=max_attempts,
                    retry_delay=retry_delay, until=until)
    level = logging.getLogger().getEffectiveLevel()

    def start(budget: Optional[int]) -> Child:
        ours, theirs = context.Pipe(duplex=False)
        args = (url, dict(settings, max_tasks=budget), theirs, level)
        process = context.Process(target=child_main, args=args, daemon=True)
        process.start()
        theirs.close()
        return Child(process, ours, budget)

    children: List[Child] = [start(max_tasks) for _ in range(parallel)]
    stopping = forward_sigterm(children)
    report, queue = WorkerReport(), None
    failures = []
    try:
        while children:
            wait([c.channel for c in children] + [c.process.sentinel for c in children])
            for child in list(children):
                child.receive()
                if child.process.is_alive():
                    continue
                child.process.join()
                child.receive()
                children.remove(child)
                report += child.report
                if child.process.exitcode == 0:
                    continue
                cause = exit_cause(child.process.exitcode)
                budget = None if child.max_tasks is None else child.max_tasks - child.used
                if child.running is not None:
                    queue = queue or TaskQueue(url, progress=False)
                    report += fail(queue, url, child.running, task_name(child.running),
                                   f"its worker process {cause}", max_attempts, retry_delay)
                    budget = None if budget is None else budget - 1
                elif child.process.exitcode > 0:  # an error of its own, not a kill: it would recur
                    log.error("worker process %d %s outside any task", child.process.pid, cause)
                    failures.append(cause)
                    continue
                if not stopping.is_set() and (budget is None or budget > 0):
                    log.warning("worker process %d %s; starting another in its place",
                                child.process.pid, cause)
                    children.append(start(budget))
    finally:
        for child in children:
            child.process.kill()
    if failures:
        raise WorkerFailures(f"{len(failures)} worker processes failed outside any task (errors above)")
    return report


def child_main(url: str, settings: dict, channel: Connection, level: int) -> None:
    """A worker process: the worker loop, telling the supervisor what it runs."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    end_with_supervisor(channel)
    work(url, announce=channel.send, **settings)
    channel.close()


def end_with_supervisor(channel: Connection) -> None:
    """End this process the moment the supervisor's end of `channel` closes (it was killed), as if
    the whole worker had been killed: the task it held comes back when its lease ends. Left
    running, it would finish its task unsupervised, one more worker than the operator sees."""
    def watch() -> None:
        poller = select.poll()
        poller.register(channel.fileno(), 0)  # a pipe's writer hears only errors: the reader is gone
        poller.poll()
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def exit_cause(exitcode: int) -> str:
    if exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


def forward_sigterm(children: List[Child]):
    """On SIGTERM, pass it on to the worker processes (each finishes its task, then stops) and start
    no more; returns the event it sets."""
    stopping = threading.Event()

    def handle(signum, frame):
        log.warning("SIGTERM: workers finish their current tasks, then stop")
        stopping.set()
        for child in children:
            if child.process.pid is not None:
                os.kill(child.process.pid, signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
    return stopping
