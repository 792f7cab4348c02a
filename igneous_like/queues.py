"""Queues: open one by URL, put tasks on it, run worker processes on it (the loop each runs is
in `worker`), or run task lists in this process through the same JSON a queue carries."""
import logging
import multiprocessing
import os
import signal
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from functools import partial
from itertools import chain, islice
from typing import Callable, Iterable, Iterator, Optional

import orjson
from cloudfiles import reset_connection_pools
from taskqueue import TaskQueue
from taskqueue.queueables import totask

from igneous_like.errors import TaskFailures, UserError, outside_problem
from igneous_like.progress import Progress
from igneous_like.worker import MAX_ATTEMPTS, RETRY_DELAY, WorkerReport, dead_letter_url, work
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
    task.execute()


def worker_pool(parallel: int, long_lived: bool) -> ProcessPoolExecutor:
    """`parallel` worker processes.

    Long-lived queue workers fork from a clean server process, so they inherit no threads,
    locks or connections (execute runs a progress thread). Short in-process runs fork this
    process, which starts at once; each child drops the connection pools it inherited.
    """
    if long_lived:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["igneous_like.tasks.registry"])
        return ProcessPoolExecutor(parallel, mp_context=context)
    return ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("fork"),
                               initializer=reset_connection_pools)


def _work_in_child(level: int, job: Callable[[], WorkerReport]) -> WorkerReport:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    return job()


def execute(path: str, parallel: int = 1, lease_sec: int = 600, max_tasks: Optional[int] = None,
            exit_on_empty: bool = False, quiet: bool = False, max_attempts: int = MAX_ATTEMPTS,
            retry_delay: float = RETRY_DELAY) -> WorkerReport:
    """Run `parallel` worker processes on one queue; raise TaskFailures if any task failed."""
    queue = open_queue(path)
    progress = Progress(queue.enqueued, f"executing {queue_url(path)}", quiet)
    watcher = QueueWatcher(queue, progress)
    watcher.start()
    try:
        job = partial(work, queue_url(path), lease_sec=lease_sec, max_tasks=max_tasks,
                      exit_on_empty=exit_on_empty, max_attempts=max_attempts, retry_delay=retry_delay)
        if parallel == 1:
            report = job()
        else:
            with worker_pool(parallel, long_lived=True) as pool:
                forward_sigterm(pool)
                level = logging.getLogger().getEffectiveLevel()
                report = sum(pool.map(_work_in_child, [level] * parallel, [job] * parallel), WorkerReport())
    finally:
        watcher.stop()
        progress.close()
    if report.failed:
        raise TaskFailures(report.failed, report.done + report.failed)
    return report


def forward_sigterm(pool: ProcessPoolExecutor) -> None:
    """Pass SIGTERM on to the worker processes; each finishes its task and stops."""
    def handle(signum, frame):
        log.warning("SIGTERM: workers finish their current tasks, then stop")
        for process in list(pool._processes.values()):
            os.kill(process.pid, signal.SIGTERM)
    signal.signal(signal.SIGTERM, handle)


class QueueWatcher(threading.Thread):
    """Polls the queue's remaining count so progress shows however many processes work."""

    def __init__(self, queue: TaskQueue, progress: Progress, interval: float = 2.0):
        super().__init__(daemon=True)
        self.queue, self.progress, self.interval = queue, progress, interval
        self.initial = progress.total or 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            finished = self.initial - self.queue.enqueued
        except Exception:  # a flaky status read must not stop the workers
            return
        if finished > self.progress.done:
            self.progress.update(finished - self.progress.done)

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.poll()


def run_locally(tasks: Iterable, parallel: int = 1, quiet: bool = False, desc: str = "tasks") -> int:
    """Run tasks in this process (or `parallel` spawned ones) through the same JSON a queue carries.

    Failures are logged as they happen and raised together at the end; returns the task count.
    """
    total = len(tasks) if hasattr(tasks, "__len__") else None
    if parallel > 1:
        tasks = refuse_memory_layers(tasks)
    failed = done = 0
    with Progress(total, desc, quiet) as progress:
        if parallel == 1 or total == 1:  # one task: forking a worker for it only adds start-up
            for task in tasks:
                try:
                    run_encoded(encode(task))
                except Exception:
                    log.exception("task failed")
                    failed += 1
                done += 1
                progress.update()
        else:
            done, failed = _run_in_pool(tasks, parallel, progress)
    if failed:
        raise TaskFailures(failed, done)
    return done


def _run_in_pool(tasks: Iterable, parallel: int, progress: Progress):
    """Keep a bounded window of tasks in flight so huge lazy task lists never sit in memory."""
    done = failed = 0
    payloads = map(encode, tasks)
    with worker_pool(parallel, long_lived=False) as pool:
        pending = {pool.submit(run_encoded, p) for p in islice(payloads, parallel * 4)}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                error = future.exception()
                if error is not None:
                    log.error("task failed", exc_info=error)
                    failed += 1
                done += 1
                progress.update()
            pending |= {pool.submit(run_encoded, p) for p in islice(payloads, len(finished))}
    return done, failed


def enqueue(tasks: Iterable, path: str) -> int:
    """Insert tasks into the queue at `path`; returns how many went in."""
    total = len(tasks) if hasattr(tasks, "__len__") else None
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
    queue = open_queue(path)
    return {"enqueued": queue.enqueued, "leased": queue.leased, "completed": queue.completed,
            "inserted": queue.inserted, "dead": dead_letters(queue_url(path))}


def dead_letters(url: str) -> int:
    """How many tasks wait in the dead-letter queue (0 if there is none)."""
    try:
        return open_queue(dead_letter_url(url)).enqueued
    except Exception:  # none made yet: no directory (a UserError), or an SQS queue never created
        return 0
