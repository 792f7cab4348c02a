"""`igneous-like skeleton ...`: forge, merge, merge-sharded, clean, convert, xfer, rm and spatial-index."""
import click

from igneous_like.cli.common import (
    INT_LIST,
    VEC3,
    add_options,
    magnitude_option,
    planning,
    queue_option,
    submit,
)
from igneous_like.cli.mesh import db_options, index_options, spatial_index_db, xfer_options
from igneous_like.cli.params import FLOAT, OUTPUT, Finite
from igneous_like.task_creation.common import Stage, layer_path
from igneous_like.tasks.skeleton import DEFAULT_CONTEXT

NM = Finite(min=0)


@click.group()
def skeleton():
    """Skeletons with kimimaro (TEASAR): forge fragments task by task, then merge them per label."""


@skeleton.command()
@click.argument("path")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip to skeletonize.")
@click.option("--shape", type=VEC3, default=(512, 512, 512), show_default=True, help="Task shape in voxels.")
@click.option("--scale", type=NM, default=4.0, show_default=True,
              help="TEASAR: invalidation radius = scale x distance to boundary + const.")
@click.option("--const", type=NM, default=10.0, show_default=True, help="TEASAR: the constant part (nm).")
@click.option("--pdrf-scale", type=NM, default=100000.0, show_default=True,
              help="TEASAR: weight of the distance to boundary in path costs.")
@click.option("--pdrf-exponent", type=click.IntRange(min=1), default=4, show_default=True,
              help="TEASAR: exponent of the distance to boundary in path costs.")
@click.option("--soma-detect", type=NM, default=1100.0, show_default=True,
              help="Objects whose distance to boundary exceeds this (nm) may hold a soma.")
@click.option("--soma-accept", type=NM, default=3500.0, show_default=True,
              help="Above this distance to boundary (nm), treat the peak as a soma.")
@click.option("--soma-scale", type=NM, default=1.0, show_default=True, help="Soma invalidation scale.")
@click.option("--soma-const", type=NM, default=300.0, show_default=True,
              help="Soma invalidation constant (nm).")
@click.option("--max-paths", type=click.IntRange(min=1), default=None,
              help="Stop tracing an object after this many paths.")
@click.option("--dust-threshold", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Skip connected components of this many voxels or fewer (whole-volume counts).")
@click.option("--fix-branching/--no-fix-branching", default=True, show_default=True,
              help="Place branch points where paths really part (slower).")
@click.option("--fix-borders/--no-fix-borders", default=False, show_default=True,
              help="End paths in the middle of where objects touch the edge of what a task reads "
                   "(makes skeletons depend on the task shape).")
@click.option("--fix-avocados", is_flag=True, help="Join somata whose nucleus is a separate label.")
@click.option("--fill-holes", type=click.IntRange(0, 1), default=0, show_default=True,
              help="1: fill holes in each object first (labels inside others are removed).")
@click.option("--labels", type=INT_LIST, default=None, help="Skeletonize only these labels, e.g. 12,345.")
@click.option("--cross-section", type=click.IntRange(min=0), default=0, show_default=True,
              help="Add each vertex's cross-sectional area; the value is the smoothing window (0: off).")
@click.option("--context", type=NM, default=DEFAULT_CONTEXT, show_default=True,
              help="nm each task reads around its box so skeletons match an unchunked run "
                   "(0: Igneous's one-voxel overlap only).")
@click.option("--threshold-gte", type=FLOAT, default=None,
              help="Skeletonize an image: foreground is >= this (with or without --threshold-lte).")
@click.option("--threshold-lte", type=FLOAT, default=None,
              help="Skeletonize an image: foreground is <= this.")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros instead of failing.")
@click.option("--spatial-index/--no-spatial-index", default=True, show_default=True,
              help="Write spatial index files so skeletons can be found by bounding box.")
@click.option("--sharded", is_flag=True, help="Meant for merge-sharded (the fragments are the same).")
@queue_option
@click.pass_context
def forge(ctx, path, mip, shape, scale, const, pdrf_scale, pdrf_exponent, soma_detect, soma_accept,
          soma_scale, soma_const, max_paths, dust_threshold, fix_branching, fix_borders, fix_avocados,
          fill_holes, labels, cross_section, context, threshold_gte, threshold_lte,
          fill_missing, spatial_index, sharded, queue):
    """Skeletonize a segmentation (or a thresholded image) into fragments, task by task.

    Example: igneous-like skeleton forge file:///data/seg --mip 1 --queue fq:///tmp/q

    Light microscopy: igneous-like skeleton forge file:///data/confocal --threshold-gte 120
    """
    teasar = {"scale": scale, "const": const, "pdrf_scale": pdrf_scale, "pdrf_exponent": pdrf_exponent,
              "soma_detection_threshold": soma_detect, "soma_acceptance_threshold": soma_accept,
              "soma_invalidation_scale": soma_scale, "soma_invalidation_const": soma_const,
              "max_paths": max_paths}
    submit(ctx, [Stage("create_skeletonizing_tasks", dict(
        cloudpath=path, mip=mip, shape=shape, teasar_params=teasar, object_ids=labels,
        fix_branching=fix_branching, fix_borders=fix_borders, fix_avocados=fix_avocados,
        fill_holes=fill_holes,
        dust_threshold=dust_threshold, fill_missing=fill_missing, sharded=sharded,
        cross_sectional_area=cross_section > 0, cross_sectional_area_smoothing_window=max(cross_section, 1),
        threshold_gte=threshold_gte, threshold_lte=threshold_lte, context=context,
        spatial_index=spatial_index), "forge")], queue)
    if planning(ctx):
        return
    merge = f"igneous-like skeleton {'merge-sharded' if sharded else 'merge'} {layer_path(path)}"
    if queue is not None:
        merge += f" --queue {queue}"
        click.echo(f"Once the queue is empty, merge the fragments:\n  {merge}", err=True)
    else:
        click.echo(f"Next, merge the fragments:\n  {merge}", err=True)


merge_options = [
    click.option("--dust-threshold", "--min-cable-length", "dust_threshold", type=NM, default=1000.0,
                 show_default=True, help="Drop skeleton pieces with this much cable (nm) or less."),
    click.option("--tick-threshold", type=NM, default=0.0, show_default=True,
                 help="Remove terminal branches shorter than this (nm), shortest first (0: keep all)."),
    click.option("--max-cable-length", type=NM, default=None,
                 help="Skip the cleanup (dust, loops, ticks) of skeletons longer than this (nm)."),
]


def after_merge(ctx, stage, queue, path):
    submit(ctx, [stage], queue)
    if queue is None and not planning(ctx):
        click.echo(f"Skeletons of {path} are ready (cv.skeleton.get); intermediate fragments stay until "
                   f"igneous-like skeleton clean {path}", err=True)


@skeleton.command()
@click.argument("path")
@add_options(merge_options)
@magnitude_option("the work")
@queue_option
@click.pass_context
def merge(ctx, path, dust_threshold, tick_threshold, max_cable_length, magnitude, queue):
    """Fuse each label's fragments into one skeleton file per label.

    Example: igneous-like skeleton merge file:///data/seg --tick-threshold 1500
    """
    after_merge(ctx, Stage("create_unsharded_skeleton_merge_tasks", dict(
        layer_path=path, magnitude=magnitude, dust_threshold=dust_threshold, tick_threshold=tick_threshold,
        max_cable_length=max_cable_length), "merge"), queue, path)


@skeleton.command("merge-sharded")
@click.argument("path")
@add_options(merge_options)
@click.option("--max-labels-per-shard", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Use enough shards that each holds about this many labels at most.")
@click.option("--min-shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="At least this many shards (one task each).")
@click.option("--shard-index-bytes", type=click.IntRange(min=1), default=2 ** 13, show_default=True)
@click.option("--minishard-index-bytes", type=click.IntRange(min=1), default=2 ** 15, show_default=True)
@click.option("--minishard-index-encoding", type=click.Choice(["gzip", "raw"]), default="gzip",
              show_default=True)
@click.option("--data-encoding", type=click.Choice(["gzip", "raw"]), default="gzip", show_default=True)
@queue_option
@click.pass_context
def merge_sharded(ctx, path, dust_threshold, tick_threshold, max_cable_length, max_labels_per_shard,
                  min_shards, shard_index_bytes, minishard_index_bytes, minishard_index_encoding,
                  data_encoding, queue):
    """Fuse each label's fragments into neuroglancer_uint64_sharded_v1 shards, a task per shard.

    Example: igneous-like skeleton merge-sharded file:///data/seg --queue fq:///tmp/q
    """
    after_merge(ctx, Stage("create_sharded_skeleton_merge_tasks", dict(
        layer_path=path, dust_threshold=dust_threshold, tick_threshold=tick_threshold,
        max_cable_length=max_cable_length, max_labels_per_shard=max_labels_per_shard, min_shards=min_shards,
        shard_index_bytes=shard_index_bytes, minishard_index_bytes=minishard_index_bytes,
        minishard_index_encoding=minishard_index_encoding, data_encoding=data_encoding), "merge"),
        queue, path)


@skeleton.command()
@click.argument("path")
@click.pass_context
def clean(ctx, path):
    """Delete the intermediate fragments (SKELETON_DIR/fragments/) once merging is done.

    Example: igneous-like skeleton clean file:///data/seg
    """
    done = submit(ctx, [Stage("delete_skeleton_fragments", dict(layer_path=path), "clean")])
    if done:
        click.echo(f"Deleted {done[0]} fragment files of {path}", err=True)


@skeleton.command()
@click.argument("path")
@click.argument("outdir", type=OUTPUT)
@click.option("--format", "fmt", type=click.Choice(["swc"]), default="swc", show_default=True)
@click.option("--labels", type=INT_LIST, default=None, help="Only these labels (default: all).")
@click.pass_context
def convert(ctx, path, outdir, fmt, labels):
    """Write each skeleton as OUTDIR/LABEL.swc (coordinates in nm).

    Example: igneous-like skeleton convert file:///data/seg ./swc --labels 12,345
    """
    done = submit(ctx, [Stage("export_swc", dict(path=path, outdir=outdir, labels=labels), "convert")])
    if done:
        click.echo(f"Wrote {done[0]} SWC files to {layer_path(outdir)}", err=True)


skel_dir_option = click.option("--dir", "skel_dir", default=None,
                               help="Skeleton directory (default: the one the layer's info names).")


@skeleton.command()
@add_options(xfer_options("Skeleton", "Write unsharded skeletons into shards", "skel_dir"))
@queue_option
@click.pass_context
def xfer(ctx, src, dest, sharded, skel_dir, magnitude, queue):
    """Copy a layer's skeletons (unsharded or sharded) into layer DEST.

    DEST gets SRC's info if it has none. Example: igneous-like skeleton xfer file:///a/seg file:///b/seg
    """
    submit(ctx, [Stage("create_xfer_skeleton_tasks", dict(
        src=src, dest=dest, skel_dir=skel_dir, magnitude=magnitude, sharded=sharded), "xfer")], queue)


@skeleton.command()
@click.argument("path")
@magnitude_option("the deleting")
@skel_dir_option
@queue_option
@click.pass_context
def rm(ctx, path, magnitude, skel_dir, queue):
    """Delete a layer's skeleton directory (every file) and unlink it from the layer's info.

    Example: igneous-like skeleton rm file:///data/seg
    """
    submit(ctx, [Stage("create_skeleton_deletion_tasks", dict(cloudpath=path, magnitude=magnitude,
                                                              skel_dir=skel_dir), "rm")], queue)


@skeleton.group("spatial-index")
def spatial_index():
    """Spatial index of skeletons: which labels lie in a box (cv.skeleton.spatial_index)."""


@spatial_index.command()
@add_options(index_options((512, 512, 512), skel_dir_option))
def create(ctx, path, mip, fill_missing, shape, skel_dir, queue):
    """(Re)build the spatial index of existing skeletons from the segmentation (forge writes one).

    Example: igneous-like skeleton spatial-index create file:///data/seg
    """
    submit(ctx, [Stage("create_spatial_index_skeleton_tasks", dict(
        cloudpath=path, shape=shape, mip=mip, fill_missing=fill_missing, skel_dir=skel_dir), "index")], queue)


@spatial_index.command()
@add_options(db_options)
def db(ctx, path, database, progress, allow_missing):
    """Copy the skeleton spatial index into a database: sqlite://FILE (or FILE) or mysql://USER:PWD@HOST/DB.

    Example: igneous-like skeleton spatial-index db file:///data/seg index.db
    """
    spatial_index_db(ctx, path, database, "skeletons", progress, allow_missing)
