"""Options and helpers every CLI area shares: integer tuples, ranges, --queue and dispatch."""
import shlex
import sys
from typing import Callable, Optional

import click
from cloudvolume.lib import Bbox

from igneous_like import queues
from igneous_like.task_creation.common import (
    INT32,
    MEMORY_TARGET,
    Tasks,
    open_layer,
    restrict_bounds,
)


class IntTuple(click.ParamType):
    """Comma-separated integers, e.g. 128,128,64."""

    def __init__(self, length: int):
        self.length = length
        self.name = f"INT,{'INT,' * (length - 1)}".rstrip(",")

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(int(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not {self.length} comma-separated integers", param, ctx)
        if len(numbers) != self.length:
            self.fail(f"{value!r} has {len(numbers)} numbers; expected {self.length}", param, ctx)
        if not all(INT32[0] <= number <= INT32[1] for number in numbers):
            self.fail(f"{value!r} reaches beyond 32-bit voxel coordinates (at most {INT32[1]} in size)",
                      param, ctx)
        return numbers


class IntList(click.ParamType):
    """Comma-separated integers of any count from 0 to 2^64-1, e.g. label ids 12,345,6789."""

    name = "INT,INT,..."

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return value
        try:
            numbers = [int(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a list of comma-separated integers", param, ctx)
        if not all(0 <= number < 2**64 for number in numbers):
            self.fail(f"{value!r} holds numbers outside 0 to 2^64-1 (64-bit labels)", param, ctx)
        return numbers


class QueueURL(click.ParamType):
    """fq://DIR, a plain directory or sqs://NAME, checked while parsing (a file queue's place can be
    written, an SQS queue exists and answers) so a bad one stops the command before it writes."""

    name = "QUEUE"

    def convert(self, value, param, ctx):
        return queues.check_queue(value, create=True)  # a UserError ends the command before any work


class Corners(IntTuple):
    """X0,Y0,Z0,X1,Y1,Z1: a box's start corner and its (exclusive) end corner."""

    def __init__(self):
        super().__init__(6)
        self.name = "X0,Y0,Z0,X1,Y1,Z1"

    def convert(self, value, param, ctx):
        numbers = super().convert(value, param, ctx)
        if any(start >= end for start, end in zip(numbers[:3], numbers[3:])):
            self.fail(f"{value!r} is empty: each end X1,Y1,Z1 must be above its start X0,Y0,Z0", param, ctx)
        return numbers


VEC3 = IntTuple(3)
RANGE = IntTuple(2)
BOUNDS = Corners()
INT_LIST = IntList()

queue_option = click.option(
    "--queue", "-q", type=QueueURL(), default=None, metavar="QUEUE",
    help="fq://DIR or sqs://NAME to enqueue into; without it the tasks run here (see -p).")
range_options = [
    click.option(f"--{axis}range", type=RANGE, default=None, help=f"START,END of {axis} voxels to process.")
    for axis in "xyz"
]
memory_option = click.option(
    "--memory", "memory_target", type=int, default=MEMORY_TARGET, show_default=True,
    help="Bytes one task may use; sets the task shape.")
compress_option = click.option(
    "--compress", type=click.Choice(["none", "gzip", "br"]), default="gzip", show_default=True,
    help="Compression of written chunks (use none for readers such as TensorStore on file://).")
encoding_option = click.option(
    "--encoding", default=None,
    help="raw; png or jpeg for images; compressed_segmentation, compresso or crackle for labels.")


def add_options(options):
    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def ranges_to_bounds(path: str, mip: int, xrange, yrange, zrange) -> Optional[Bbox]:
    if xrange is None and yrange is None and zrange is None:
        return None
    cv = open_layer(path, mip)
    return restrict_bounds(cv.meta.bounds(mip), (xrange, yrange, zrange))


def dispatch(ctx: click.Context, tasks: Tasks, queue: Optional[str]) -> None:
    """Run the tasks here (with the global -p) or put them on the queue and say what next."""
    settings = ctx.find_root().obj
    if queue is None:
        count = queues.run_locally(tasks, settings["parallel"], settings["quiet"], tasks.description)
        click.echo(f"Ran {count} tasks: {tasks.description}", err=True)
        return
    count = queues.enqueue(tasks, queue)
    url = queues.queue_url(queue)
    click.echo(f"Enqueued {count} tasks ({tasks.description}) into {url}", err=True)
    click.echo(f"Next: igneous-like -p {settings['parallel']} execute -x {url}", err=True)


def rerun_command(replace: dict) -> str:
    """This command line with some options set to new values, to continue a multi-pass job."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in replace:
            skip = "=" not in arg
            continue
        args.append(arg)
    for name, value in replace.items():
        args += [name, str(value)]
    return "igneous-like " + shlex.join(args)


def run_passes(ctx: click.Context, create: Callable[[int, int], Tasks], mip: int, num_mips: int,
               queue: Optional[str], rerun: Callable[[int, int], str]) -> None:
    """Make mips in as many passes as memory or sharding need; each pass reads the last one's output.

    Without a queue every pass runs here in order. With a queue only the first pass can be
    enqueued, since the next one reads its output: the command prints how to continue.
    """
    while num_mips > 0:
        tasks = create(mip, num_mips)
        dispatch(ctx, tasks, queue)
        made = len(tasks.mips)
        mip, num_mips = mip + made, num_mips - made
        if queue is not None and num_mips > 0:
            click.echo(f"This pass makes mips {tasks.mips.start}-{tasks.mips.stop - 1}; {num_mips} more "
                       f"need its output. Once the queue is empty, run:\n  {rerun(mip, num_mips)}", err=True)
            return
