"""Queues: open one by URL, put tasks on it, run worker processes on it (the loop each runs is
in `worker`), or run task lists in this process through the same JSON a queue carries."""
import logging
import multiprocessing
import os
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from itertools import chain, islice
from typing import Callable, Iterable, Iterator, Optional, Tuple

import orjson
from cloudfiles import reset_connection_pools
from taskqueue import TaskQueue
from taskqueue.queueables import totask

from igneous_like.errors import TaskFailures, UserError, outside_problem
from igneous_like.progress import Progress
from igneous_like.supervisor import supervise
from igneous_like.worker import (
    MAX_ATTEMPTS,
    RETRY_DELAY,
    WorkerReport,
    as_object,
    copy_of,
    dead_letter_url,
    execute_task,
    lease_stamps,
    move_messages,
)
from igneous_like.writable import check_writable

log = logging.getLogger(__name__)

QUEUE_PROTOCOLS = ("fq", "sqs")


def queue_url(path: str) -> str:
    """fq://DIR or sqs://NAME; a plain directory path means a file queue there."""
    if "://" not in path:
        return "fq://" + os.path.abspath(path)
    protocol = path.split("://", 1)[0]
    if protocol not in QUEUE_PROTOCOLS:
        raise UserError(f"unsupported queue {path}: use fq://DIRECTORY (or a plain directory) or sqs://NAME")
    if protocol == "fq":
        return "fq://" + os.path.abspath(path[len("fq://"):])
    return path


def open_queue(path: str, create: bool = False) -> TaskQueue:
    """The queue at `path`; a file queue must already exist unless `create` (so typos fail)."""
    url = check_queue(path, create)
    if not url.startswith("fq://"):
        return TaskQueue(url, progress=False)
    queue = TaskQueue(url, progress=False, n_threads=0)  # local file writes: threads only add 0.1 s polls
    start_insert_count(url[len("fq://"):])
    return queue


def check_queue(path: str, create: bool = False) -> str:
    """The queue's URL once it is known to be usable: an SQS queue that exists and answers, or a file
    queue (with `create`, a place where one can be made). A UserError says what to fix."""
    url = queue_url(path)
    if url.startswith("sqs://"):
        check_sqs(url[len("sqs://"):])
        return url
    directory = url[len("fq://"):]
    if os.path.isdir(os.path.join(directory, "queue")):
        return url
    if not create:
        raise UserError(f"no task queue at {url}; check the path, or enqueue tasks there first "
                        f"with --queue {url}")
    if os.path.isdir(directory) and os.listdir(directory):
        raise UserError(f"{directory} holds other files and no task queue; give a new or empty directory")
    check_writable(directory)
    return url


def check_sqs(name: str) -> None:
    """Ask SQS for the queue once (python-task-queue would retry for seconds, then raise a traceback)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from taskqueue.secrets import AWS_DEFAULT_REGION, aws_credentials
    credentials = aws_credentials()
    client = boto3.client("sqs", region_name=AWS_DEFAULT_REGION,
                          aws_access_key_id=credentials.get("AWS_ACCESS_KEY_ID") or None,  # "": unset
                          aws_secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY") or None,
                          config=Config(connect_timeout=5, read_timeout=10,  # quick retries: a refused
                                        retries={"mode": "standard", "total_max_attempts": 6}))  # port, 1 s
    try:
        client.get_queue_url(QueueName=name)
    except ClientError as err:
        if "NonExistentQueue" in str(err) or "QueueDoesNotExist" in str(err):
            raise UserError(f"no SQS queue named {name} in {AWS_DEFAULT_REGION}; create it first (aws sqs "
                            f"create-queue --queue-name {name}) or check AWS_DEFAULT_REGION") from err
        raise UserError(f"SQS refused sqs://{name} ({err}); check the AWS credentials and their "
                        "permissions") from err
    except BotoCoreError as err:
        raise UserError(outside_problem(err) or f"cannot use SQS for sqs://{name}: {err}") from err


def start_insert_count(directory: str) -> None:
    """Give a new file queue its insert count, 0. python-task-queue retries reading a missing count
    file with backoff, about 1.7 s, before it counts from zero: that wait was most of enqueueing."""
    counter = os.path.join(directory, "insertions")
    if os.path.exists(counter):
        return
    draft = f"{counter}.{uuid.uuid4().hex}"
    with open(draft, "w") as file:
        file.write("0")
    try:
        os.link(draft, counter)  # atomic, and never over a count another process just wrote
    except FileExistsError:
        pass
    finally:
        os.unlink(draft)


def encode(task) -> bytes:
    """The JSON a queue would carry for this task (a partial of a @queueable function)."""
    return orjson.dumps(list(totask(task).payload()))


def run_encoded(payload: bytes) -> None:
    """Decode a task from its JSON and run it: the one way every worker runs a task."""
    import igneous_like.tasks.registry  # noqa: F401  registers the @queueable task functions
    task = totask(payload)
    log.debug("running %s", task.key)
    execute_task(task)


def worker_pool(parallel: int) -> ProcessPoolExecutor:
    """`parallel` processes forked from this one, for in-process runs (they start at once); each
    drops the connection pools it inherited."""
    return ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("fork"),
                               initializer=reset_connection_pools)


def execute(path: str, parallel: int = 1, lease_sec: int = 600, max_tasks: Optional[int] = None,
            exit_on_empty: bool = False, quiet: bool = False, max_attempts: int = MAX_ATTEMPTS,
            retry_delay: float = RETRY_DELAY, until: Optional[float] = None) -> WorkerReport:
    """Run `parallel` worker processes on one queue (see `supervisor`) until it is done or, with
    `until` (unix seconds), until then; raise TaskFailures if a task ended in the dead-letter queue."""
    queue = open_queue(path)
    progress = Progress(queue.enqueued, f"executing {queue_url(path)}", quiet)
    watcher = QueueWatcher(queue, progress)
    watcher.start()
    try:
        report = supervise(queue_url(path), parallel, lease_sec, max_tasks, exit_on_empty, max_attempts,
                           retry_delay, until)
    finally:
        watcher.stop()
        progress.close()
    if report.buried:
        raise TaskFailures(report.buried, report.done + report.buried,
                           "failed and went to the dead-letter queue")
    return report


class QueueWatcher(threading.Thread):
    """Polls the queue so progress shows however many processes work. A file queue counts its
    completions, so tasks added meanwhile (a pipeline's next stages, retries) count too; on SQS
    progress is the first count less what is left."""

    def __init__(self, queue: TaskQueue, progress: Progress, interval: float = 2.0):
        super().__init__(daemon=True)
        self.queue, self.progress, self.interval = queue, progress, interval
        self.initial = progress.total or 0
        self.counted = not hasattr(queue.api, "sqs")
        self.completed = queue.completed if self.counted else 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            left = self.queue.enqueued
            finished = self.queue.completed - self.completed if self.counted else self.initial - left
        except Exception:  # a flaky status read must not stop the workers
            return
        if self.counted:
            self.progress.set_total(finished + left)
        if finished > self.progress.done:
            self.progress.update(finished - self.progress.done)

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.poll()


def run_locally(tasks: Iterable, parallel: int = 1, quiet: bool = False, desc: str = "tasks") -> int:
    """Run tasks in this process (or `parallel` forked ones) through the same JSON a queue carries.

    Failures are logged as they happen (a mistake in the input, such as a missing chunk, as one
    line; anything else with its traceback) and raised together at the end; returns the task count.
    """
    total = len(tasks) if hasattr(tasks, "__len__") else None
    then = getattr(tasks, "then", ())
    if parallel > 1:
        tasks = refuse_memory_layers(tasks)
    outcome = Outcome()
    with Progress(total, desc, quiet) as progress:
        if parallel == 1 or total == 1:  # one task: forking a worker for it only adds start-up
            for task in tasks:
                try:
                    run_encoded(encode(task))
                    outcome.add(None)
                except KeyboardInterrupt:
                    raise
                except BaseException as err:  # any class: one task's failure ends no run
                    outcome.add(err)
                progress.update()
        else:
            _run_in_pool(tasks, parallel, progress, outcome)
    if outcome.failed:
        raise TaskFailures(outcome.failed, outcome.done, user_errors=outcome.user_errors)
    for stage in then:  # later passes, which read what these tasks wrote
        from igneous_like.pipeline.stages import create
        later = create(stage)
        outcome.done += run_locally(later, parallel, quiet, later.description)
    return outcome.done


class Outcome:
    """Tasks run and failed so far; each failure logged once, as it happens."""

    def __init__(self):
        self.done = self.failed = 0
        self.user_errors = True

    def add(self, error: Optional[BaseException]) -> None:
        self.done += 1
        if error is None:
            return
        self.failed += 1
        if isinstance(error, UserError):
            log.error("task failed: %s", error)
        else:
            self.user_errors = False
            log.error("task failed", exc_info=error)


def _run_in_pool(tasks: Iterable, parallel: int, progress: Progress, outcome: Outcome) -> None:
    """Keep a bounded window of tasks in flight so huge lazy task lists never sit in memory."""
    payloads = map(encode, tasks)
    with worker_pool(parallel) as pool:
        pending = {pool.submit(run_encoded, p) for p in islice(payloads, parallel * 4)}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    raise TaskFailures(outcome.failed + len(finished) + len(pending), outcome.done,
                                       "did not finish: a task process died (killed for memory, or a crash "
                                       "in a library); run the command again") from None
                outcome.add(error)
                progress.update()
            pending |= {pool.submit(run_encoded, p) for p in islice(payloads, len(finished))}


def enqueue(tasks: Iterable, path: str) -> int:
    """Insert tasks into the queue at `path`; returns how many went in. Stages that must follow
    them (`tasks.then`) are not enqueued: igneous_like.pipeline.enqueue has workers run those too."""
    total = len(tasks) if hasattr(tasks, "__len__") else None
    if getattr(tasks, "then", ()):
        log.warning("%s: enqueued without its later stages (%s), which need its output; "
                    "igneous_like.pipeline.enqueue runs those too", tasks.description,
                    ", ".join(stage.name or stage.call for stage in tasks.then))
    tasks = refuse_memory_layers(tasks)
    return open_queue(path, create=True).insert(tasks, total=total)


def refuse_memory_layers(tasks: Iterable) -> Iterator:
    """Stop before the first task if it names a mem:// layer: other processes cannot see it."""
    iterator = iter(tasks)
    first = next(iterator, None)
    if first is None:
        return iter(())
    if any(isinstance(value, str) and value.startswith("mem://") for value in totask(first).kwargs.values()):
        raise UserError("mem:// layers live inside one process, so other worker processes would write "
                        "into copies that vanish; run mem:// jobs without --queue and with -p 1")
    return chain([first], iterator)


def status(path: str) -> dict:
    """Counts of the queue; `lease_ends`: seconds until the last lease of a file queue ends."""
    queue = open_queue(path)
    counts = {"enqueued": queue.enqueued, "leased": queue.leased, "completed": queue.completed,
              "inserted": queue.inserted, "dead": dead_letters(queue_url(path)), "lease_ends": None}
    if not hasattr(queue.api, "sqs"):
        counts["lease_ends"] = max(0, max(lease_stamps(queue.api.queue_path), default=0) - time.time())
    return counts


def dead_letters(url: str) -> int:
    """How many tasks wait in the dead-letter queue (0 if there is none)."""
    try:
        return open_queue(dead_letter_url(url)).enqueued
    except Exception:  # none made yet: no directory (a UserError), or an SQS queue never created
        return 0


def two_queues(source: str, dest: str) -> Tuple[TaskQueue, TaskQueue]:
    """The source (which must exist) and the destination (made if it is a new file queue)."""
    if queue_url(source) == queue_url(dest):
        raise UserError(f"{queue_url(source)} is both the source and the destination; name another queue")
    return open_queue(source), open_queue(dest, create=True)


def copy_queue(source: str, dest: str) -> int:
    """Copy every task of a file queue, enqueued or leased, into DEST; returns how many. An SQS
    queue cannot be read without leasing (hiding) its messages, so it is refused."""
    if not queue_url(source).startswith("fq://"):
        raise UserError(f"{source}: an SQS queue cannot be read without taking its messages; "
                        "use `igneous-like queue mv` to move them")
    src, target = two_queues(source, dest)
    messages = [copy_of(as_object(text)) for text in src.api]
    target.api.insert(messages, 0)
    target.add_insert_count(len(messages))
    return len(messages)


def move_queue(source: str, dest: str) -> int:
    """Move every task that can be leased now from SOURCE into DEST; returns how many. A task is
    written to DEST before it is deleted from SOURCE, so an interruption can copy one twice but
    never loses one."""
    src, target = two_queues(source, dest)
    moved = move_messages(src, target)
    target.add_insert_count(moved)
    return moved


def wait_until_empty(path: str, interval: float, note: Callable[[int], None]) -> None:
    """Return once the queue holds no task (enqueued, leased or waiting for a retry), telling
    `note` how many remain each time it changes."""
    queue, said = open_queue(path), None
    while queue.enqueued:
        if queue.enqueued != said:
            said = queue.enqueued
            note(said)
        time.sleep(interval)
