"""The worker loop: lease a task, run it while keeping its lease alive, delete it.

- A task that fails goes back on the queue with its attempt count, after a delay that doubles
  each time; after `max_attempts` it goes to the dead-letter queue (`fq://DIR/dead` for
  `fq://DIR`, `sqs://NAME-dead` for `sqs://NAME`), which `queue status` reports and
  `queue release --dead` empties back into the queue. Any exception class counts, so no task
  can end a worker; a task that kills its whole process is the supervisor's to count.
- A message that is not one of igneous_like's registered tasks (bad JSON, a JSON value that is
  not an object, an unknown or foreign name) goes to the dead-letter queue at once and nothing
  in it runs.
- While a task runs its lease is renewed, so a task longer than the lease never runs twice at
  once. SIGTERM makes the worker finish (and delete) its task, hand back any task it leased
  meanwhile, and stop.
- With `exit_on_empty` the worker stops only once the queue holds nothing: tasks leased by
  other workers, live or dead, and failed tasks waiting for their retry keep it waiting, so
  the leases of dead workers expire and their tasks run.
"""
import contextvars
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

import tenacity
from taskqueue import TaskQueue
from taskqueue.file_queue_api import get_timestamp
from taskqueue.queueablefns import UnregisteredFunctionError
from taskqueue.queueables import FunctionTask, totask

from igneous_like.errors import UserError
from igneous_like.progress import format_seconds

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_DELAY = 10  # seconds before the first retry; doubles with each attempt
SQS_MAX_DELAY = 900
FILE_LEASE_TRIES = 10  # empty-handed leases of a file queue that still holds leasable tasks
FILE_QUEUE_POLL = 0.2  # seconds between looks at a file queue whose tasks others hold
ORIGIN = contextvars.ContextVar("origin", default=None)
"""The running task's message of origin: the same when the message comes back after a lease or is
put back for a retry, another for an independent copy of the task (pipelines use it)."""


@dataclass
class WorkerReport:
    done: int = 0  # tasks that ran and were deleted
    retried: int = 0  # failed attempts put back for another run
    buried: int = 0  # tasks moved to the dead-letter queue

    def __add__(self, other: "WorkerReport") -> "WorkerReport":
        return WorkerReport(self.done + other.done, self.retried + other.retried, self.buried + other.buried)

    @property
    def attempts(self) -> int:
        return self.done + self.retried + self.buried

    def summary(self) -> str:
        text = f"{self.done} tasks done"
        if self.retried:
            text += f", {self.retried} failed attempts retried"
        if self.buried:
            text += f", {self.buried} tasks moved to the dead-letter queue"
        return text


def dead_letter_url(url: str) -> str:
    return url.rstrip("/") + "/dead" if url.startswith("fq://") else url + "-dead"


def open_dead_letters(queue: TaskQueue, url: str) -> TaskQueue:
    """The dead-letter queue of `queue`, made if need be (SQS queues must be created first)."""
    dead = dead_letter_url(url)
    if dead.startswith("sqs://"):
        queue.api.sqs.create_queue(QueueName=dead[len("sqs://"):])
    return TaskQueue(dead, progress=False)


def runnable(message: dict) -> FunctionTask:
    """The task a leased message holds, or an error if it is not one of our registered tasks."""
    from igneous_like.tasks.registry import is_allowed
    payload = message.get("payload")
    if not (isinstance(payload, list) and len(payload) == 4 and isinstance(payload[0], list)
            and isinstance(payload[1], list) and isinstance(payload[2], dict)):
        raise ValueError("not a task function call [[module, name], args, kwargs, id]")
    task = totask(dict(message))
    if not is_allowed(tuple(task.key)):
        raise ValueError(f"{'.'.join(map(str, task.key))} is not an igneous_like task")
    try:
        task.tofunc()
    except UnregisteredFunctionError as err:  # not an Exception: turned into one
        raise ValueError(str(err)) from None
    return task


def execute_task(task: FunctionTask):
    """Run a task and return what it returns; a chunk it finds missing becomes one line naming the
    layer, mip and chunk."""
    from cloudvolume.exceptions import EmptyVolumeException

    from igneous_like.layers import missing_chunk_error
    try:
        return task()
    except EmptyVolumeException as err:
        raise missing_chunk_error(err) from None


def work(url: str, lease_sec: int = 600, max_tasks: Optional[int] = None, exit_on_empty: bool = False,
         idle_sleep: float = 5.0, max_attempts: int = MAX_ATTEMPTS, retry_delay: float = RETRY_DELAY,
         announce: Optional[Callable[[tuple], None]] = None, until: Optional[float] = None) -> WorkerReport:
    """Lease, run and delete tasks until the queue holds nothing (with exit_on_empty), max_tasks,
    the time `until` (unix seconds: no lease after it), or SIGTERM. `announce` hears ("run",
    message) before each task runs and ("end", report) after."""
    import igneous_like.tasks.registry  # noqa: F401  registers the @queueable task functions
    queue = TaskQueue(url, progress=False)
    report = WorkerReport()
    stopping = stop_on_sigterm()
    waiting = LeaseWatch(queue)
    wait_sec = 1 if exit_on_empty else 20  # SQS's long poll
    while not stopping.is_set() and (max_tasks is None or report.attempts < max_tasks) \
            and (until is None or time.time() < until):
        message = lease(queue, lease_sec, wait_sec)
        if message is None:
            if exit_on_empty and queue.enqueued == 0:
                break
            pause = waiting.pause() if exit_on_empty else idle_sleep
            stopping.wait(pause if until is None else max(0.0, min(pause, until - time.time())))
            continue
        if stopping.is_set():
            queue.api.cancel_lease(SimpleNamespace(id=message["id"]))  # hand it straight back, unparsed
            break
        if announce:
            announce(("run", message))
        outcome = run_one(queue, url, message, lease_sec, max_attempts, retry_delay)
        report += outcome
        if announce:
            announce(("end", outcome))
    return report


class LeaseWatch:
    """How long an `execute -x` worker waits while the queue's tasks are leased (by other workers,
    or by dead ones until their leases end) or wait for a retry; says so when the count changes."""

    def __init__(self, queue: TaskQueue):
        self.queue, self.said = queue, None

    def pause(self) -> float:
        api = self.queue.api
        if hasattr(api, "sqs"):  # the lease's long poll already waited
            held, detail = self.queue.enqueued, "in flight or delayed on SQS"
        else:
            stamps = lease_stamps(api.queue_path)
            held = len(stamps)
            last = max(stamps, default=0) - time.time()
            detail = f"held by leases; the last ends in {format_seconds(max(last, 0))}"
        if held and held != self.said:
            log.info("waiting for %d tasks %s (run `igneous-like queue release` to hand them out now)",
                     held, detail)
        self.said = held
        return 0 if hasattr(api, "sqs") else FILE_QUEUE_POLL


def lease(queue: TaskQueue, lease_sec: int, wait_sec: int) -> Optional[dict]:
    """One leased message as a dict (its body, plus its id), or None if none came."""
    if not hasattr(queue.api, "sqs"):
        return lease_file(queue.api, lease_sec)
    reply = patiently(queue.api.sqs.receive_message)(QueueUrl=queue.api.qurl, MaxNumberOfMessages=1,
                                                     VisibilityTimeout=lease_sec, WaitTimeSeconds=wait_sec)
    if not reply.get("Messages"):
        return None
    raw = reply["Messages"][0]
    message = as_object(raw["Body"])
    message["id"], message["message_id"] = raw["ReceiptHandle"], raw["MessageId"]
    return message


def as_object(text: str) -> dict:
    """A message body as the JSON object it should be, or kept as text (so the dead-letter queue
    shows what arrived) when it is not JSON or not an object."""
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    return message if isinstance(message, dict) else {"payload": text}


def lease_file(api, lease_sec: int) -> Optional[dict]:
    """One leased file queue message, or None once none is left to lease now.

    python-task-queue's file queue also comes back empty-handed when another worker took the file
    it chose, or when that file was not JSON (it stays leased, unread, and the queue does not say
    which it was): the first means trying again (a few times: a file it cannot move is skipped
    for good); the second is returned as text, so that it goes to the dead-letter queue like a
    garbled SQS message instead of coming back unread forever. A JSON value that is not an object
    with its id (a hand-written file) is returned as text in the same way.
    """
    for _ in range(FILE_LEASE_TRIES):
        start = int(time.time())
        messages = api.lease(lease_sec, 1, 0)  # asked to wait, it would sleep even with tasks to give
        if messages and isinstance(messages[0], dict) and "id" in messages[0]:
            return messages[0]
        unreadable = unreadable_lease(api.queue_path, start + lease_sec, int(time.time()) + lease_sec)
        if unreadable is not None:
            return unreadable
        if min(lease_stamps(api.queue_path), default=float("inf")) > time.time():
            return None
    return None


def lease_stamps(directory: str) -> list:
    """When each message of a file queue can next be leased (unix seconds; 0: now, never leased)."""
    return [get_timestamp(entry.name) for entry in os.scandir(directory)]


def unreadable_lease(directory: str, first: int, last: int) -> Optional[dict]:
    """The file queue message that was just leased, until `first`..`last`, and is not a JSON object
    with an id (a writer killed mid-write, or a hand-made file), as its text; other messages
    leased in those seconds are well-formed."""
    for entry in os.scandir(directory):
        if not first <= get_timestamp(entry.name) <= last:
            continue
        try:
            text = Path(entry.path).read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:  # deleted or leased again meanwhile
            continue
        message = as_object(text)
        if "id" not in message:
            return {"payload": text, "id": entry.name}
    return None


def run_one(queue: TaskQueue, url: str, message: dict, lease_sec: int, max_attempts: int,
            retry_delay: float) -> WorkerReport:
    """Run one leased message: deleted once done, retried or buried if it failed."""
    try:
        task = runnable(message)
    except Exception as err:
        log.error("message %s is not a registered task (%s); moved to the dead-letter queue",
                  message.get("id"), err)
        bury(queue, url, message, f"not a registered task: {err}")
        return WorkerReport(buried=1)
    origin = ORIGIN.set(origin_of(message))
    try:
        with LeaseKeeper(queue, task, lease_sec):
            execute_task(task)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # SystemExit, or a library's BaseException: still the task's failure
        return fail(queue, url, message, task_name(message), err, max_attempts, retry_delay)
    finally:
        ORIGIN.reset(origin)
    remove(queue, message)
    queue.api.tally()
    return WorkerReport(done=1)


def task_name(message: dict) -> str:
    """module.function of the task a message holds, for messages in the log."""
    payload = message.get("payload")
    if isinstance(payload, list) and payload and isinstance(payload[0], list):
        return ".".join(map(str, payload[0]))
    return f"message {message.get('id')}"


def fail(queue: TaskQueue, url: str, message: dict, name: str, error, max_attempts: int,
         retry_delay: float) -> WorkerReport:
    """Count one failed attempt of a leased task: back on the queue after a delay, or, after
    `max_attempts`, into the dead-letter queue. `error` is the exception, or a text saying why."""
    attempts = int(message.get("attempts", 0)) + 1
    if isinstance(error, BaseException) and not isinstance(error, UserError):
        log.error("task %s raised:", name, exc_info=error)
    reason = str(error) if isinstance(error, (str, UserError)) else repr(error)
    if attempts >= max_attempts:
        log.error("task %s failed %d times (%s); moved to the dead-letter queue", name, attempts, reason)
        bury(queue, url, message, reason, attempts)
        return WorkerReport(buried=1)
    delay = min(retry_delay * 2 ** (attempts - 1), SQS_MAX_DELAY)
    log.error("task %s failed (attempt %d of %d: %s); it runs again in %g s",
              name, attempts, max_attempts, reason, delay)
    requeue(queue, message, attempts, delay)
    return WorkerReport(retried=1)


def transient(err: BaseException) -> bool:
    """Whether an error of SQS is worth trying again: the server failed, throttled, or was not reached."""
    from botocore.exceptions import BotoCoreError, ClientError
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or "Throttl" in err.response.get("Error", {}).get("Code", "")
    return isinstance(err, BotoCoreError)


def patiently(call: Callable) -> Callable:
    """`call`, tried again over about a minute while SQS fails in passing (botocore itself retries
    only twice): one busy moment must not end a worker."""
    return tenacity.retry(reraise=True, stop=tenacity.stop_after_attempt(6),
                          wait=tenacity.wait_random_exponential(0.5, 20),
                          retry=tenacity.retry_if_exception(transient))(call)


def remove(queue: TaskQueue, message: dict) -> None:
    """Delete a leased message. On SQS passing failures are tried again (python-task-queue's delete
    drops every error, so the task would silently run again); a receipt that is no longer valid
    (the lease ended and another worker has the task) is only logged."""
    if not hasattr(queue.api, "sqs"):
        queue.api.delete(message)
        return
    from botocore.exceptions import ClientError
    try:
        patiently(queue.api.sqs.delete_message)(QueueUrl=queue.api.qurl, ReceiptHandle=message["id"])
    except ClientError as err:
        log.warning("could not delete message %s (%s): its task may run again", task_name(message), err)


def origin_of(message: dict) -> str:
    """The message's origin: kept in its body once put back, else its id (SQS: the message id, which
    stays the same when the message is received again)."""
    return str(message.get("origin") or message.get("message_id") or message.get("id"))


def body(message: dict, **extra) -> dict:
    return {"payload": message.get("payload"), "queueName": message.get("queueName"),
            "origin": origin_of(message), **extra}


def requeue(queue: TaskQueue, message: dict, attempts: int, delay: float) -> None:
    """Put the task back with its attempt count, then drop the failed copy (never lost)."""
    queue.api.insert([body(message, attempts=attempts)], int(delay))
    remove(queue, message)


def bury(queue: TaskQueue, url: str, message: dict, error: str, attempts: int = 0) -> None:
    """Move a message to the dead-letter queue (first written there, then deleted here)."""
    open_dead_letters(queue, url).api.insert([body(message, attempts=attempts, error=error[:2000])], 0)
    remove(queue, message)


def revive(url: str) -> int:
    """Move every dead letter back into the queue with its attempts reset; returns how many."""
    queue = TaskQueue(url, progress=False)
    return move_messages(open_dead_letters(queue, url), queue, reset=True)


def move_messages(source: TaskQueue, dest: TaskQueue, reset: bool = False) -> int:
    """Move every message that can be leased now from `source` into `dest` (written there, then
    deleted here, so none is lost), as it is or with its attempts reset; returns how many."""
    moved = 0
    while True:
        message = lease(source, 600, 1)
        if message is None:
            return moved
        dest.api.insert([body(message) if reset else copy_of(message)], 0)
        remove(source, message)
        moved += 1


def copy_of(message: dict) -> dict:
    """The message as another queue takes it: all but the ids this queue gave it."""
    return {key: value for key, value in message.items() if key not in ("id", "message_id")}


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
