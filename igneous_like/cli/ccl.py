"""`igneous-like image ccl ...` (connected components) and `image voxels ...` (voxel counts)."""
from typing import Callable, List, Optional, Tuple

import click

from igneous_like import queues
from igneous_like.cli.common import (
    VEC3,
    add_options,
    compress_option,
    dispatch,
    encoding_option,
    queue_option,
)
from igneous_like.cli.params import NUMBER, OUTPUT
from igneous_like.label_table import voxel_counts_url
from igneous_like.task_creation import ccl as tc
from igneous_like.task_creation.common import (
    layer_path,
    open_layer,
)
from igneous_like.task_creation.voxels import accumulate_voxel_counts, create_voxel_counting_tasks

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


def next_step(step: str, src: str, mip: int, dest: str = "") -> None:
    click.echo(f"Then: igneous-like image ccl {step} {src} {dest + ' ' if dest else ''}--mip {mip}", err=True)


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
    dispatch(ctx, tc.create_ccl_face_tasks(src, mip=mip, dust_threshold=dust or 0, **options), queue)
    next_step("links", src, mip)


@ccl.command()
@click.argument("src")
@add_options(labeling_options)
@queue_option
@click.pass_context
def links(ctx, src, queue, mip, dust, **options):
    """(2) Link the labels that touch across task faces.

    Example: igneous-like image ccl links file:///data/seg --queue fq:///tmp/q
    """
    dispatch(ctx, tc.create_ccl_equivalence_tasks(src, mip=mip, **labeling(options)), queue)
    next_step("calc-labels", src, mip)


@ccl.command("calc-labels")
@click.argument("src")
@add_options(labeling_options)
def calc_labels(src, mip, dust, **options):
    """(3) Union all links here and number the components (and drop dust).

    Example: igneous-like image ccl calc-labels file:///data/seg --dust 100
    """
    total = tc.create_relabeling(src, mip=mip, dust_threshold=dust, **labeling(options))
    click.echo(f"{total} components", err=True)
    next_step("relabel", src, mip, "DEST")


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
    tasks = tc.create_ccl_relabel_tasks(src, dest, mip=mip, dust_threshold=dust, chunk_size=chunk_size,
                                        encoding=encoding, compress=compress, **labeling(options))
    dispatch(ctx, tasks, queue)
    next_step("clean", src, mip)


@ccl.command()
@click.argument("src")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip that was labeled.")
def clean(src, mip):
    """(last) Delete the intermediate files in SRC/KEY/ccl/.

    Example: igneous-like image ccl clean file:///data/seg
    """
    click.echo(f"Deleted {tc.clean_ccl_files(src, mip)} intermediate files", err=True)


def run_step(ctx, tasks, queue: Optional[str]) -> None:
    """Run a step's tasks here, or through the queue with -p workers until it is empty."""
    if queue is None:
        dispatch(ctx, tasks, None)
        return
    settings = ctx.find_root().obj
    click.echo(f"Enqueued {queues.enqueue(tasks, queue)} tasks ({tasks.description}) into {queue}", err=True)
    queues.execute(queue, settings["parallel"], exit_on_empty=True, quiet=settings["quiet"])


@ccl.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@add_options(labeling_options + relabel_options)
@click.option("--clean/--no-clean", default=True, show_default=True, help="Delete the intermediate files.")
@queue_option
@click.pass_context
def auto(ctx, src, dest, queue, mip, dust, chunk_size, encoding, compress, clean, **options):
    """Run every step, each through the queue (with -p workers) or here.

    Example: igneous-like -p 2 image ccl auto file:///data/prob file:///data/blobs --threshold-gte 0.5
    """
    tc.check_destination(src, dest, mip, chunk_size, encoding)
    first = with_defaults(labeling(options))
    steps: List[Tuple[str, Callable]] = [
        ("faces", lambda: tc.create_ccl_face_tasks(src, mip=mip, dust_threshold=dust or 0, **first)),
        ("links", lambda: tc.create_ccl_equivalence_tasks(src, mip=mip, **first)),
        ("calc-labels", lambda: tc.create_relabeling(src, mip=mip, dust_threshold=dust, **first)),
        ("relabel", lambda: tc.create_ccl_relabel_tasks(src, dest, mip=mip, chunk_size=chunk_size,
                                                        encoding=encoding, compress=compress, **first)),
    ]
    for name, step in steps:
        result = step()
        if isinstance(result, int):
            click.echo(f"{name}: {result} components", err=True)
        else:
            run_step(ctx, result, queue)
    if clean:
        tc.clean_ccl_files(src, mip)
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
    dispatch(ctx, create_voxel_counting_tasks(path, mip=mip, shape=shape, fill_missing=fill_missing), queue)
    click.echo(f"Then: igneous-like image voxels sum {path} --mip {mip}", err=True)


@voxels.command("sum")
@click.argument("path")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip that was counted.")
@click.option("--clean", is_flag=True, help="Delete the per-task parts afterwards.")
def sum_(path, mip, clean):
    """Add the parts into one file of (label, voxel count).

    Example: igneous-like image voxels sum file:///data/seg
    """
    labels = accumulate_voxel_counts(path, mip=mip, clean=clean)
    click.echo(f"{labels} labels counted: {voxel_counts_url(open_layer(path, mip), mip)}", err=True)
