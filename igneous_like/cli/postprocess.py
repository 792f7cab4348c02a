"""`igneous-like postprocess ...`: global dust removal and hole filling of a segmentation."""
import click

from igneous_like.cli.common import VEC3, compress_option, planning, queue_option, submit
from igneous_like.cli.params import OUTPUT
from igneous_like.pipeline import verbs
from igneous_like.task_creation import postprocess as tc
from igneous_like.task_creation.common import Stage, layer_path

shape_option = click.option("--shape", type=VEC3, default=tc.DEFAULT_SHAPE, show_default=True,
                            help="Task shape X,Y,Z (rounded up to whole chunks).")
mip_option = click.option("--mip", type=int, default=0, show_default=True, help="Mip to process.")


@click.group()
def postprocess():
    """Clean up a segmentation over the whole volume: dust, fill-holes.

    Example: igneous-like postprocess dust file:///data/seg file:///data/seg_clean --min-size 1000
    """


@postprocess.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@click.option("--min-size", type=click.IntRange(min=0), required=True,
              help="Remove objects of fewer voxels than this in the whole volume.")
@shape_option
@mip_option
@compress_option
@queue_option
@click.pass_context
def dust(ctx, src, dest, min_size, shape, mip, compress, queue):
    """Write DEST without the small objects, by whole-volume voxel counts.

    Needs `igneous-like image voxels count SRC` and `image voxels sum SRC` first.

    Example: igneous-like postprocess dust file:///data/seg file:///data/seg_clean --min-size 1000
    """
    submit(ctx, [Stage("create_dust_tasks", dict(src=src, dest=dest, min_size=min_size, mip=mip, shape=shape,
                                                 compress=compress), "dust")], queue)


@postprocess.command("fill-holes")
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@click.option("--max-hole-size", type=click.IntRange(min=0), required=True,
              help="Fill background cavities of at most this many voxels.")
@shape_option
@mip_option
@compress_option
@click.option("--clean/--no-clean", default=True, show_default=True, help="Delete the intermediate files.")
@queue_option
@click.pass_context
def fill_holes(ctx, src, dest, max_hole_size, shape, mip, compress, clean, queue):
    """Fill each background cavity enclosed by a single object with that object's label.

    Runs every step, here or through the queue (whose workers go from step to step): label the
    background's connected components, survey each block, plan the holes, write DEST. Other
    objects are never overwritten, and the result does not depend on --shape.

    Example: igneous-like -p 4 postprocess fill-holes file:///data/seg file:///data/full --max-hole-size 5000
    """
    if not planning(ctx):
        tc.check_output(src, dest, mip)
    stages = verbs.fill_holes(src, dest, max_hole_size, mip=mip, shape=shape, compress=compress, clean=clean)
    submit(ctx, stages, queue, home=src)
    if queue is None and not planning(ctx):
        click.echo(f"Filled segmentation written to {layer_path(dest)}", err=True)
