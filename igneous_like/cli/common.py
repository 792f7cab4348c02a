"""Options and helpers every CLI area shares: integer tuples, ranges, --queue and submit."""
from typing import Optional, Sequence

import click

from igneous_like import pipeline, queues
from igneous_like.cli.params import INT_LIST  # noqa: F401 (the areas import it from here)
from igneous_like.errors import UserError
from igneous_like.task_creation.common import INT32, MEMORY_TARGET, Stage


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
    help="raw; png, jpeg or jxl (JPEG XL, with imagecodecs) for images; compressed_segmentation, "
         "compresso or crackle for labels.")


def magnitude_option(work: str):
    """--magnitude: how many tasks (10^M) share the labels for `work` (e.g. "the deleting")."""
    return click.option("--magnitude", type=click.IntRange(min=0, max=8), default=2, show_default=True,
                        help=f"Split {work} into up to 10^MAGNITUDE tasks.")


def add_options(options):
    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def planning(ctx: click.Context) -> bool:
    """Whether this command line is being read as a step of a pipeline file (so it must only say
    what its stages are: their inputs may not exist until earlier steps ran)."""
    return "plan" in ctx.find_root().obj


def submit(ctx: click.Context, chain: Sequence[Stage], queue: Optional[str] = None,
           home: Optional[str] = None) -> Optional[list]:
    """Run a verb's stages: here, one after another (with the global -p), returning what its
    one-process stages returned; or on the queue, saying what next (a job of several stages
    becomes a pipeline in HOME/pipelines/ that the workers run to the end); or, while a pipeline
    file is read, only note them as one of its steps (None)."""
    settings = ctx.find_root().obj
    if planning(ctx):
        if queue is not None:
            raise UserError("a pipeline step takes no --queue: give the pipeline's queue: in its file")
        settings["plan"].extend(chain)
        return None
    if queue is None:
        return pipeline.run_here(chain, settings["parallel"], settings["quiet"])
    url = queues.queue_url(queue)
    done = pipeline.enqueue(chain, url, home or chain[0].kwargs.get("layer_path", ""), ctx.info_name)
    click.echo(f"Enqueued {done['tasks']} tasks ({done['description']}) into {url}", err=True)
    if done["state"]:
        click.echo(f"Its later stages follow as the workers finish each one; watch them with\n"
                   f"  igneous-like pipeline status {done['state']}", err=True)
    click.echo(f"Next: igneous-like -p {settings['parallel']} execute -x {url}", err=True)
    return None
