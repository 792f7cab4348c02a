"""`igneous-like image ccl ...` (connected components) and `image voxels ...` (voxel counts)."""

import click

from igneous_like.cli.common import (
    VEC3,
    add_options,
    compress_option,
    encoding_option,
    planning,
    queue_option,
    submit,
)
from igneous_like.cli.params import NUMBER, OUTPUT
from igneous_like.label_table import voxel_counts_url
from igneous_like.pipeline import verbs
from igneous_like.task_creation import ccl as tc
from igneous_like.task_creation.common import Stage, layer_path, open_layer

labeling_options = [
    click.option("--mip", type=int, default=0, show_default=True, help="Mip to label."),
    click.option("--shape", type=VEC3, default=None,
                 help="Task shape X,Y,Z, any size (faces default 512,512,512; later steps reuse it)."),
    click.option("--threshold-gte", type=NUMBER, default=None,
                 help="Label the voxels >= this value (with --threshold-lte: inside both)."),
    click.option("--threshold-lte", type=NUMBER, default=None, help="Label the voxels <= this value."),
    click.option("--connectivity", type=click.Choice(["6", "18", "26"]), default=None,
                 help="Voxels touching by faces (6), also edges (18), also corners (26). Faces default 6."),
    click.option("--dust", type=click.IntRange(min=0), default=None,
                 help="Drop components of fewer voxels than this, counted over the whole volume."),
    click.option("--fill-missing", is_flag=True, default=None, help="Read missing chunks as zeros."),
]


def labeling(options: dict) -> dict:
    """The labeling options as task_creation takes them (None: use what the faces step recorded)."""
    out = {name: options[name] for name in ("shape", "threshold_gte", "threshold_lte", "fill_missing")}
    out["connectivity"] = None if options["connectivity"] is None else int(options["connectivity"])
    return out


def with_defaults(options: dict) -> dict:
    """Labeling options for the faces step, which records them: unset ones take their defaults."""
    return dict(options, shape=options["shape"] or tc.DEFAULT_SHAPE,
                connectivity=options["connectivity"] or 6, fill_missing=bool(options["fill_missing"]))


@click.group()
def ccl():
    """Connected components of a whole volume, exact at any size, in steps that workers share.

    Steps, in order: faces, links, calc-labels, relabel, clean; or auto for all of them. Each
    component of each nonzero value (of a segmentation), or of the voxels inside the thresholds,
    gets one id, consecutive from 1. Intermediate files live in SRC/KEY/ccl/.

    Example: igneous-like -p 2 image ccl auto file:///data/seg file:///data/seg_cc --connectivity 26
    """


def next_step(ctx, step: str, src: str, mip: int, dest: str = "") -> None:
    if not planning(ctx):
        target = dest + " " if dest else ""
        click.echo(f"Then: igneous-like image ccl {step} {src} {target}--mip {mip}", err=True)


@ccl.command()
@click.argument("src")
@add_options(labeling_options)
@queue_option
@click.pass_context
def faces(ctx, src, queue, mip, dust, **options):
    """(1) Label each task's box and store the faces it shares.

    Example: igneous-like image ccl faces file:///data/seg --shape 512,512,256 --queue fq:///tmp/q
    """
    options = with_defaults(labeling(options))
    submit(ctx, [Stage("create_ccl_face_tasks", dict(cloudpath=src, mip=mip, dust_threshold=dust or 0,
                                                     **options), "faces")], queue)
    next_step(ctx, "links", src, mip)


@ccl.command()
@click.argument("src")
@add_options(labeling_options)
@queue_option
@click.pass_context
def links(ctx, src, queue, mip, dust, **options):
    """(2) Link the labels that touch across task faces.

    Example: igneous-like image ccl links file:///data/seg --queue fq:///tmp/q
    """
    submit(ctx, [Stage("create_ccl_equivalence_tasks", dict(cloudpath=src, mip=mip, **labeling(options)),
                       "links")], queue)
    next_step(ctx, "calc-labels", src, mip)


@ccl.command("calc-labels")
@click.argument("src")
@add_options(labeling_options)
@click.pass_context
def calc_labels(ctx, src, mip, dust, **options):
    """(3) Union all links here and number the components (and drop dust).

    Example: igneous-like image ccl calc-labels file:///data/seg --dust 100
    """
    done = submit(ctx, [Stage("create_relabeling", dict(cloudpath=src, mip=mip, dust_threshold=dust,
                                                        **labeling(options)), "calc-labels")])
    if done:
        click.echo(f"{done[0]} components", err=True)
        next_step(ctx, "relabel", src, mip, "DEST")


relabel_options = [
    click.option("--chunk-size", type=VEC3, default=None, help="Chunk size of DEST (default: the source's)."),
    encoding_option, compress_option,
]


@ccl.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@add_options(labeling_options + relabel_options)
@queue_option
@click.pass_context
def relabel(ctx, src, dest, queue, mip, dust, chunk_size, encoding, compress, **options):
    """(4) Write the components, 1..N, as a new segmentation DEST.

    Example: igneous-like image ccl relabel file:///data/seg file:///data/seg_cc --compress none
    """
    submit(ctx, [Stage("create_ccl_relabel_tasks", dict(
        src_path=src, dest_path=dest, mip=mip, dust_threshold=dust, chunk_size=chunk_size, encoding=encoding,
        compress=compress, **labeling(options)), "relabel")], queue)
    next_step(ctx, "clean", src, mip)


@ccl.command()
@click.argument("src")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip that was labeled.")
@click.pass_context
def clean(ctx, src, mip):
    """(last) Delete the intermediate files in SRC/KEY/ccl/.

    Example: igneous-like image ccl clean file:///data/seg
    """
    done = submit(ctx, [Stage("clean_ccl_files", dict(cloudpath=src, mip=mip), "clean")])
    if done:
        click.echo(f"Deleted {done[0]} intermediate files", err=True)


@ccl.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@add_options(labeling_options + relabel_options)
@click.option("--clean/--no-clean", default=True, show_default=True, help="Delete the intermediate files.")
@queue_option
@click.pass_context
def auto(ctx, src, dest, queue, mip, dust, chunk_size, encoding, compress, clean, **options):
    """Run every step: here, or through the queue, whose workers go from each step to the next.

    Example: igneous-like -p 2 image ccl auto file:///data/prob file:///data/blobs --threshold-gte 0.5
    """
    if not planning(ctx):
        tc.check_destination(src, dest, mip, chunk_size, encoding)
    submit(ctx, verbs.ccl(src, dest, mip=mip, dust=dust, chunk_size=chunk_size, encoding=encoding,
                          compress=compress, clean=clean, **labeling(options)), queue, home=src)
    if queue is None and not planning(ctx):
        click.echo(f"Connected components written to {layer_path(dest)}", err=True)


@click.group()
def voxels():
    """Voxel counts per label of a whole volume: count, then sum.

    The result is one random-access file, SRC/KEY/stats/voxel_counts.ltab; read it in Python
    with igneous_like.label_table.read_voxel_counts(PATH, labels=None, mip=0).
    """


@voxels.command()
@click.argument("path")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip to count.")
@click.option("--shape", type=VEC3, default=(512, 512, 512), show_default=True, help="Task shape, any size.")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros.")
@queue_option
@click.pass_context
def count(ctx, path, mip, shape, fill_missing, queue):
    """Count the voxels of each label, one part per task.

    Example: igneous-like image voxels count file:///data/seg --queue fq:///tmp/q
    """
    submit(ctx, [Stage("create_voxel_counting_tasks", dict(cloudpath=path, mip=mip, shape=shape,
                                                           fill_missing=fill_missing), "count")], queue)
    if not planning(ctx):
        click.echo(f"Then: igneous-like image voxels sum {path} --mip {mip}", err=True)


@voxels.command("sum")
@click.argument("path")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip that was counted.")
@click.option("--clean", is_flag=True, help="Delete the per-task parts afterwards.")
@click.pass_context
def sum_(ctx, path, mip, clean):
    """Add the parts into one file of (label, voxel count).

    Example: igneous-like image voxels sum file:///data/seg
    """
    done = submit(ctx, [Stage("accumulate_voxel_counts", dict(cloudpath=path, mip=mip, clean=clean),
                              "sum")])
    if done:
        click.echo(f"{done[0]} labels counted: {voxel_counts_url(open_layer(path, mip), mip)}", err=True)
