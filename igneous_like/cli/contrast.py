"""`igneous-like image contrast ...`: per-slice contrast normalization and CLAHE."""
import click

from igneous_like.cli.common import (
    RANGE,
    VEC3,
    add_options,
    compress_option,
    encoding_option,
    queue_option,
    range_options,
    submit,
)
from igneous_like.cli.params import OUTPUT, Finite
from igneous_like.task_creation.common import Stage

mip_option = click.option("--mip", type=click.IntRange(min=0), default=0, show_default=True)
fill_option = click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros.")
writing = [mip_option, fill_option, encoding_option, compress_option, queue_option]


@click.group()
def contrast():
    """Contrast of image stacks, z slice by z slice: normalization between each slice's clip
    levels (histogram, then equalize), or CLAHE. uint8 and uint16 images.

    Example: igneous-like image contrast histogram file:///data/em && igneous-like image contrast
    equalize file:///data/em file:///data/em_norm --clip-fraction 0.01
    """


@contrast.command()
@click.argument("src")
@click.option("--shape", type=VEC3, default=(512, 512, 64), show_default=True, help="Task shape X,Y,Z.")
@add_options([mip_option, fill_option, queue_option])
@click.pass_context
def histogram(ctx, src, shape, mip, fill_missing, queue):
    """(1) Count every slice's grey levels (exactly, all voxels) into SRC/KEY/contrast/."""
    submit(ctx, [Stage("create_histogram_tasks", dict(layer_path=src, mip=mip, shape=shape,
                                                      fill_missing=fill_missing), "histogram")], queue)


@contrast.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@click.option("--clip-fraction", type=Finite(min=0, max=0.5, max_open=True), default=0.01, show_default=True,
              help="Share of each slice's voxels clipped to black, and to white.")
@click.option("--minval", type=click.IntRange(min=0), default=None,
              help="Stretch from this value in every slice instead of its lower clip level.")
@click.option("--maxval", type=click.IntRange(min=0), default=None,
              help="Stretch to this value in every slice instead of its upper clip level.")
@click.option("--shape", type=VEC3, default=(512, 512, 64), show_default=True, help="Task shape X,Y,Z.")
@add_options(writing)
@click.pass_context
def equalize(ctx, src, dest, clip_fraction, minval, maxval, shape, mip, fill_missing, encoding, compress,
             queue):
    """(2) Write DEST: each slice stretched linearly from its lower to its upper clip level onto
    the full range of the type."""
    submit(ctx, [Stage("create_contrast_normalization_tasks", dict(
        src_path=src, dest_path=dest, mip=mip, clip_fraction=clip_fraction, shape=shape,
        fill_missing=fill_missing, encoding=encoding, compress=compress, minval=minval, maxval=maxval),
        "equalize")], queue)


@contrast.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@click.option("--tile-grid-size", type=RANGE, default=(8, 8), show_default=True,
              help="Tiles across a slice in X,Y: each tile gets its own equalization.")
@click.option("--kernel-size", type=click.IntRange(min=2), default=None,
              help="Tile size in voxels, instead of --tile-grid-size.")
@click.option("--clip-limit", type=Finite(min=0, min_open=True), default=40.0, show_default=True,
              help="Clip each tile's histogram at this multiple of its mean count per bin (OpenCV's and "
                   "Igneous's measure), which keeps noise from being magnified.")
@click.option("--nbins", type=click.IntRange(min=2), default=256, show_default=True)
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Slices a task (default: one chunk); each task holds depth whole slices.")
@add_options(range_options + writing)
@click.pass_context
def clahe(ctx, src, dest, tile_grid_size, kernel_size, clip_limit, nbins, depth, xrange, yrange, zrange, mip,
          fill_missing, encoding, compress, queue):
    """Write DEST: each slice (of the ranges, rounded out to whole chunks: they are equalized as
    images of their own) equalized by scikit-image's CLAHE."""
    submit(ctx, [Stage("create_clahe_tasks", dict(
        src=src, dest=dest, mip=mip, tile_grid_size=tile_grid_size, kernel_size=kernel_size,
        clip_limit=clip_limit, nbins=nbins, depth=depth, fill_missing=fill_missing, encoding=encoding,
        compress=compress, ranges=[xrange, yrange, zrange]), "clahe")], queue)
