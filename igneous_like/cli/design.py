"""`igneous-like design ...`: task shapes and layer bounds, before a job or after a lost info."""
import click

from igneous_like import design as plans
from igneous_like.cli.common import VEC3
from igneous_like.task_creation.common import csv


def size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.4g} {unit}" if unit != "bytes" else f"{count} bytes"
        count /= 1024


@click.group()
def design():
    """Design tasks and layers: what a downsample task shape costs, the shape for a memory budget,
    and a layer's bounds from its chunk files."""


mip_option = click.option("--mip", type=click.IntRange(min=0), default=0, show_default=True)
factor_option = click.option("--factor", type=VEC3, default=(2, 2, 1), show_default=True,
                             help="Downsample factor X,Y,Z.")


@design.command("ds-shape")
@click.argument("path")
@click.argument("shape", type=VEC3)
@mip_option
@factor_option
def ds_shape(path, shape, mip, factor):
    """The memory a downsample task of SHAPE (X,Y,Z) holds, and how many mips it makes.

    Example: igneous-like design ds-shape file:///data/em 1024,1024,64
    """
    memory, mips, unit = plans.shape_cost(path, shape, mip, factor)
    made = f"makes {mips} mips" if mips else f"makes no mip: use a multiple of {csv(unit)}"
    click.echo(f"{size(memory)} a task ({memory} bytes); {made}")


@design.command("ds-memory")
@click.argument("path")
@click.argument("memory_bytes", type=click.IntRange(min=1))
@mip_option
@factor_option
@click.option("--max-mips", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--verbose", is_flag=True, help="Also say how many mips and bytes.")
def ds_memory(path, memory_bytes, mip, factor, max_mips, verbose):
    """The downsample task shape that makes the most mips within MEMORY_BYTES a task.

    Example: igneous-like design ds-memory file:///data/em 3500000000
    """
    shape, mips = plans.memory_shape(path, memory_bytes, mip, factor, max_mips)
    click.echo(csv(shape))
    if verbose:
        cost = plans.shape_cost(path, shape, mip, factor)[0]
        click.echo(f"makes {mips} mips; {size(cost)} a task", err=True)


@design.command()
@click.argument("path")
@mip_option
def bounds(path, mip):
    """The bounds and chunk size of an unsharded scale, read from its chunk files: PATH is the layer,
    or the scale's folder when the info is lost.

    Example: igneous-like design bounds file:///data/em --mip 1
    """
    box, chunk, count = plans.chunk_bounds(path, mip)
    click.echo(f"bounds:     {csv(box.minpt)} to {csv(box.maxpt)} (size {csv(box.size3())})")
    click.echo(f"chunk size: {csv(chunk)} ({count} chunk files)")
