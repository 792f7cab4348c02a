"""`igneous-like execute` and `igneous-like queue ...`: run workers and look after queues."""
import os
import time

import click

from igneous_like import queues
from igneous_like.cli.params import Finite
from igneous_like.progress import format_seconds
from igneous_like.worker import MAX_ATTEMPTS, RETRY_DELAY, revive


@click.command()
@click.argument("queue", envvar="IGNEOUS_LIKE_QUEUE")
@click.option("-x", "--exit-on-empty", is_flag=True,
              help="Stop once the queue holds no task, leased or waiting for a retry.")
@click.option("--lease-sec", type=click.IntRange(min=1), default=600, show_default=True,
              envvar="IGNEOUS_LIKE_LEASE_SEC",
              help="Seconds a task stays leased; a task not finished by then goes back to the queue.")
@click.option("--max-tasks", "-n", "--num-tasks", "max_tasks", type=click.IntRange(min=-1), default=None,
              help="Stop each worker process after this many tasks (-1: no limit).")
@click.option("--min-sec", type=Finite(min=-1), default=-1, show_default=True,
              help="Lease tasks for this many seconds, then stop once the running ones finish "
              "(0: at most one task; -1: no limit).")
@click.option("--aws-region", default=None, help="The SQS queue's AWS region (default: AWS_DEFAULT_REGION).")
@click.option("--max-attempts", type=click.IntRange(min=1), default=MAX_ATTEMPTS, show_default=True,
              help="Runs of a failing task before it goes to the dead-letter queue.")
@click.option("--retry-delay", type=Finite(min=0), default=RETRY_DELAY, show_default=True,
              help="Seconds before a failed task runs again; doubles with each attempt.")
@click.pass_context
def execute(ctx, queue, exit_on_empty, lease_sec, max_tasks, min_sec, aws_region, max_attempts, retry_delay):
    """Lease and run tasks from QUEUE (fq://DIR, a directory, or sqs://NAME).

    In containers, QUEUE and --lease-sec may come from IGNEOUS_LIKE_QUEUE and
    IGNEOUS_LIKE_LEASE_SEC, and -p from IGNEOUS_LIKE_PARALLEL.

    A task longer than --lease-sec keeps its lease while it runs. SIGTERM lets each worker
    finish its task, then stop (exit 0). Each task runs in a worker process that is replaced if
    it dies, and a task that kills its process counts a failed attempt. Tasks that fail
    --max-attempts times, and messages that are not registered tasks, go to the dead-letter
    queue (see queue status/release --dead); execute then exits 1.

    With -x it stops only once the queue is empty: it waits for tasks that other workers (or
    dead ones, until their leases end) hold, and for failed tasks' retries.

    Example: igneous-like -p 2 execute -x fq:///tmp/queue
    """
    settings = ctx.find_root().obj
    if aws_region:
        os.environ["AWS_DEFAULT_REGION"] = aws_region
    max_tasks = 1 if min_sec == 0 else (None if max_tasks in (None, -1) else max_tasks)
    until = time.time() + min_sec if min_sec > 0 else None
    report = queues.execute(queue, settings["parallel"], lease_sec, max_tasks, exit_on_empty,
                            settings["quiet"], max_attempts, retry_delay, until)
    click.echo(f"Finished with {queues.queue_url(queue)}: {report.summary()}", err=True)


@click.group()
def queue():
    """Inspect and manage a task queue."""


@queue.command()
@click.argument("path")
@click.option("--interval", type=Finite(0, 86400), default=2.0, show_default=True,
              help="Seconds to watch the queue to measure its rate for the ETA (0: no ETA).")
def status(path, interval):
    """Show how many tasks are enqueued, leased and completed, and when it will be empty.

    Example: igneous-like queue status fq:///tmp/queue
    """
    first = queues.status(path)
    click.echo(f"queue:     {queues.queue_url(path)}")
    click.echo(f"enqueued:  {first['enqueued']}")
    click.echo(f"leased:    {first['leased']}" + lease_note(first))
    completed = first["completed"]
    click.echo(f"completed: {'n/a (SQS does not count)' if completed != completed else completed}")
    click.echo(f"dead:      {first['dead']}" + ("  (see: queue release --dead)" if first["dead"] else ""))
    if interval <= 0 or first["enqueued"] == 0:
        return
    time.sleep(interval)
    second = queues.status(path)
    rate = (first["enqueued"] - second["enqueued"]) / interval
    if rate > 0:
        click.echo(f"rate:      {rate:.2f} tasks/s")
        click.echo(f"ETA:       {format_seconds(second['enqueued'] / rate)}")
    else:
        click.echo(f"ETA:       unknown (no task finished in {interval:g}s)")


def lease_note(counts: dict) -> str:
    """What leased tasks mean: held by running workers, or by dead ones until their leases end."""
    if not counts["leased"]:
        return ""
    note = "  (held by workers; a dead worker's tasks come back when its lease ends"
    if counts.get("lease_ends") is not None:
        note += f", the last in {format_seconds(counts['lease_ends'])}"
    return note + "; queue release hands them out now)"


@queue.command()
@click.argument("path")
@click.option("--dead", is_flag=True, help="Move the dead-letter queue's tasks back, attempts reset.")
def release(path, dead):
    """Return every leased task to the queue at once (after workers died), or with --dead every
    task of the dead-letter queue.

    Example: igneous-like queue release fq:///tmp/queue
    """
    queue = queues.open_queue(path)
    if dead:
        moved = revive(queues.queue_url(path))
        click.echo(f"Moved {moved} tasks from the dead-letter queue back into {queues.queue_url(path)}")
        return
    queue.release_all()
    click.echo(f"Released all leases in {queues.queue_url(path)}")


@queue.command()
@click.argument("path")
@click.confirmation_option(prompt="Delete every task in this queue?")
def purge(path):
    """Delete every task in the queue.

    Example: igneous-like queue purge fq:///tmp/queue --yes
    """
    queues.open_queue(path).purge()
    click.echo(f"Purged {queues.queue_url(path)}")


@queue.command()
@click.argument("src")
@click.argument("dest")
def cp(src, dest):
    """Copy every task of file queue SRC, enqueued or leased, into DEST (a file or SQS queue).
    Stop the workers of SRC first. An SQS queue cannot be copied without taking its messages:
    move it with `queue mv`.

    Example: igneous-like queue cp fq:///tmp/queue sqs://my-queue
    """
    copied = queues.copy_queue(src, dest)
    click.echo(f"Copied {copied} tasks from {queues.queue_url(src)} into {queues.queue_url(dest)}")


@queue.command()
@click.argument("src")
@click.argument("dest")
def mv(src, dest):
    """Move every task of SRC that is not leased into DEST. Each is written to DEST before it is
    deleted from SRC: an interruption can leave one in both, never in neither.

    Example: igneous-like queue mv sqs://my-queue fq:///tmp/queue
    """
    moved = queues.move_queue(src, dest)
    click.echo(f"Moved {moved} tasks from {queues.queue_url(src)} into {queues.queue_url(dest)}")


@queue.command()
@click.argument("path")
def rezero(path):
    """Set a file queue's counts of inserted and completed tasks to zero (its tasks stay).

    Example: igneous-like queue rezero fq:///tmp/queue
    """
    queues.open_queue(path).rezero()
    click.echo(f"Counts of {queues.queue_url(path)} set to zero")


@queue.command("wait")
@click.argument("path")
@click.option("--rate", type=Finite(min=0.1, max=86400), default=30.0, show_default=True,
              help="Seconds between looks at the queue.")
@click.option("--aws-region", default=None, help="The SQS queue's AWS region (default: AWS_DEFAULT_REGION).")
def wait_(path, rate, aws_region):
    """Return once the queue holds no task (enqueued, leased or waiting for a retry), without
    running any: e.g. in a script, before it enqueues the next step for a fleet.

    Example: igneous-like queue wait fq:///tmp/queue --rate 10
    """
    if aws_region:
        os.environ["AWS_DEFAULT_REGION"] = aws_region
    queues.wait_until_empty(path, rate, lambda left: click.echo(
        f"{left} tasks left in {queues.queue_url(path)}", err=True))
    click.echo(f"{queues.queue_url(path)} is empty")
