"""The worker loop: lease a task, run it while keeping its lease alive, delete it.

- A task that fails goes back on the queue with its attempt count, after a delay that doubles
  each time; after `max_attempts` it goes to the dead-letter queue (`fq://DIR/dead` for
  `fq://DIR`, `sqs://NAME-dead` for `sqs://NAME`), which `queue status` reports and
  `queue release --dead` empties back into the queue.
- A message that is not a registered task (bad JSON, unknown name) goes to the dead-letter
  queue at once and nothing in it runs.
- While a task runs its lease is renewed, so a task longer than the lease never runs twice at
  once. SIGTERM makes the worker finish (and delete) its task, hand back any task it leased
  meanwhile, and stop.
"""
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

from taskqueue import TaskQueue
from taskqueue.file_queue_api import get_timestamp
from taskqueue.queueablefns import UnregisteredFunctionError
from taskqueue.queueables import FunctionTask, totask

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_DELAY = 10  # seconds before the first retry; doubles with each attempt
SQS_MAX_DELAY = 900
FILE_LEASE_TRIES = 10  # empty-handed leases of a file queue that still holds leasable tasks


@dataclass
class WorkerReport:
    done: int = 0
    failed: int = 0

    def __add__(self, other: "WorkerReport") -> "WorkerReport":
        return WorkerReport(self.done + other.done, self.failed + other.failed)


def dead_letter_url(url: str) -> str:
    return url.rstrip("/") + "/dead" if url.startswith("fq://") else url + "-dead"


def open_dead_letters(queue: TaskQueue, url: str) -> TaskQueue:
    """The dead-letter queue of `queue`, made if need be (SQS queues must be created first)."""
    dead = dead_letter_url(url)
    if dead.startswith("sqs://"):
        queue.api.sqs.create_queue(QueueName=dead[len("sqs://"):])
    return TaskQueue(dead, progress=False)


def runnable(message: dict):
    """The task a leased message holds, or an error if it is not a registered task."""
    task = totask(dict(message))
    if isinstance(task, FunctionTask):
        task.tofunc()  # raises for a function that is not registered
    return task


def work(url: str, lease_sec: int = 600, max_tasks: Optional[int] = None, exit_on_empty: bool = False,
         idle_sleep: float = 5.0, max_attempts: int = MAX_ATTEMPTS,
         retry_delay: float = RETRY_DELAY) -> WorkerReport:
    """Lease, run and delete tasks until the queue is empty (with exit_on_empty), max_tasks, or SIGTERM."""
    import igneous_like.tasks.registry  # noqa: F401  registers the @queueable task functions
    queue = TaskQueue(url, progress=False)
    report = WorkerReport()
    stopping = stop_on_sigterm()
    wait_sec = 1 if exit_on_empty else 20  # SQS's long poll
    while not stopping.is_set() and (max_tasks is None or report.done + report.failed < max_tasks):
        message = lease(queue, lease_sec, wait_sec)
        if message is None:
            if exit_on_empty:
                break
            stopping.wait(idle_sleep)
            continue
        if stopping.is_set():
            queue.api.cancel_lease(SimpleNamespace(id=message["id"]))  # hand it straight back, unparsed
            break
        if run_one(queue, url, message, lease_sec, max_attempts, retry_delay):
            report.done += 1
        else:
            report.failed += 1
    return report


def lease(queue: TaskQueue, lease_sec: int, wait_sec: int) -> Optional[dict]:
    """One leased message as a dict (its body, plus its id), or None if none came."""
    if not hasattr(queue.api, "sqs"):
        return lease_file(queue.api, lease_sec)
    reply = queue.api.sqs.receive_message(QueueUrl=queue.api.qurl, MaxNumberOfMessages=1,
                                          VisibilityTimeout=lease_sec, WaitTimeSeconds=wait_sec)
    if not reply.get("Messages"):
        return None
    raw = reply["Messages"][0]
    try:
        message = json.loads(raw["Body"])
        if not isinstance(message, dict):
            raise ValueError("not a JSON object")
    except ValueError:  # kept as text, so the dead-letter queue shows what arrived
        message = {"payload": raw["Body"]}
    message["id"] = raw["ReceiptHandle"]
    return message


def lease_file(api, lease_sec: int) -> Optional[dict]:
    """One leased file queue message, or None once none is left to lease now.

    python-task-queue's file queue also comes back empty-handed when another worker took the file
    it chose, or when that file was not JSON (it stays leased, unread, and the queue does not say
    which it was): the first means trying again (a few times: a file it cannot move is skipped
    for good); the second is returned as text, so that it goes to the dead-letter queue like a
    garbled SQS message instead of coming back unread forever.
    """
    for _ in range(FILE_LEASE_TRIES):
        start = int(time.time())
        messages = api.lease(lease_sec, 1, 0)  # asked to wait, it would sleep even with tasks to give
        if messages:
            return messages[0]
        unreadable = unreadable_lease(api.queue_path, start + lease_sec, int(time.time()) + lease_sec)
        if unreadable is not None:
            return unreadable
        now = int(time.time())
        if not any(get_timestamp(entry.name) <= now for entry in os.scandir(api.queue_path)):
            return None
    return None


def unreadable_lease(directory: str, first: int, last: int) -> Optional[dict]:
    """The file queue message that was just leased, until `first`..`last`, and is not JSON (a
    writer killed mid-write), as its text; other messages leased in those seconds are JSON."""
    for entry in os.scandir(directory):
        if not first <= get_timestamp(entry.name) <= last:
            continue
        try:
            text = Path(entry.path).read_bytes().decode("utf-8", errors="replace")
            json.loads(text)
        except FileNotFoundError:  # deleted or leased again meanwhile
            continue
        except ValueError:
            return {"payload": text, "id": entry.name}
    return None


def run_one(queue: TaskQueue, url: str, message: dict, lease_sec: int, max_attempts: int,
            retry_delay: float) -> bool:
    """Run one leased message; True if it ran and was deleted."""
    try:
        task = runnable(message)
    except (Exception, UnregisteredFunctionError) as err:  # the latter is not an Exception
        log.error("message %s is not a registered task (%s); moved to the dead-letter queue",
                  message.get("id"), err)
        bury(queue, url, message, f"not a registered task: {err}")
        return False
    try:
        with LeaseKeeper(queue, task, lease_sec):
            task.execute()
    except Exception as err:
        attempts = int(message.get("attempts", 0)) + 1
        if attempts >= max_attempts:
            log.exception("task %s failed %d times; moved to the dead-letter queue", task.key, attempts)
            bury(queue, url, message, repr(err), attempts)
        else:
            delay = min(retry_delay * 2 ** (attempts - 1), SQS_MAX_DELAY)
            log.exception("task %s failed (attempt %d of %d); it runs again in %g s",
                          task.key, attempts, max_attempts, delay)
            requeue(queue, message, attempts, delay)
        return False
    queue.delete(task, tally=True)
    return True


def body(message: dict, **extra) -> dict:
    return {"payload": message.get("payload"), "queueName": message.get("queueName"), **extra}


def requeue(queue: TaskQueue, message: dict, attempts: int, delay: float) -> None:
    """Put the task back with its attempt count, then drop the failed copy (never lost)."""
    queue.api.insert([body(message, attempts=attempts)], int(delay))
    queue.api.delete(message)


def bury(queue: TaskQueue, url: str, message: dict, error: str, attempts: int = 0) -> None:
    """Move a message to the dead-letter queue (first written there, then deleted here)."""
    open_dead_letters(queue, url).api.insert([body(message, attempts=attempts, error=error[:2000])], 0)
    queue.api.delete(message)


def revive(url: str) -> int:
    """Move every dead letter back into the queue with its attempts reset; returns how many."""
    queue = TaskQueue(url, progress=False)
    dead = open_dead_letters(queue, url)
    moved = 0
    while True:
        messages = dead.api.lease(60, 1, 0)
        if not messages:
            return moved
        queue.api.insert([body(messages[0])], 0)
        dead.api.delete(messages[0])
        moved += 1


def stop_on_sigterm() -> threading.Event:
    """An event SIGTERM sets (in the main thread only, where Python delivers signals)."""
    stopping = threading.Event()
    if threading.current_thread() is threading.main_thread():
        def handle(signum, frame):
            log.warning("SIGTERM: finishing the current task, then stopping")
            stopping.set()
        signal.signal(signal.SIGTERM, handle)
    return stopping


class LeaseKeeper:
    """Renews a task's lease every third of the lease while the task runs, so no other worker
    leases it meanwhile; a failed renewal is logged and tried again at the next beat."""

    def __init__(self, queue: TaskQueue, task, lease_sec: int):
        self.queue, self.task, self.lease_sec = queue, task, lease_sec
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)

    def beat(self) -> None:
        while not self.halt.wait(self.lease_sec / 3):
            try:
                self.queue.renew(self.task, self.lease_sec)
            except Exception:
                log.warning("could not renew the lease of task %s", self.task.key, exc_info=True)

    def __enter__(self) -> "LeaseKeeper":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.halt.set()
        self.thread.join()
