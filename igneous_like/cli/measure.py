"""`igneous-like measure ...`: per-object statistics of a whole segmentation, exact at any size."""
import click

from igneous_like.cli.common import VEC3, compress_option, planning, queue_option, submit
from igneous_like.cli.params import FLOATS, OUTPUT, OUTPUT_FILE
from igneous_like.errors import UserError
from igneous_like.pipeline import verbs
from igneous_like.segment_properties import PROPERTIES_DIR
from igneous_like.task_creation import measure as tc
from igneous_like.task_creation.common import Stage, layer_path


@click.group()
def measure():
    """Per-object statistics: forge, merge, export, clean; ring layers to measure next to objects.

    Per label: voxel count, volume, bounding box, centroid, principal axes, surface area,
    sphericity and solidity (single-slice layers: area, perimeter, circularity, eccentricity);
    with --image exact intensity statistics (mean, std, min, max, median, percentiles); with
    --nuclei nuclei per cell, cell/nucleus ratios and nucleus and cytoplasm intensity statistics.
    Files live in SEG/KEY/measure/.

    Example: igneous-like measure forge file:///data/seg --image file:///data/em --queue fq:///tmp/q
    """


def next_step(ctx, step: str, seg: str, mip: int, extra: str = "") -> None:
    if not planning(ctx):
        click.echo(f"Then: igneous-like measure {step} {seg} {extra + ' ' if extra else ''}--mip {mip}",
                   err=True)


@measure.command()
@click.argument("seg")
@click.option("--image", default=None, help="Image layer on the same voxels, for intensity statistics.")
@click.option("--nuclei", default=None, help="Nuclei segmentation on the same voxels.")
@click.option("--shape", type=VEC3, default=tc.DEFAULT_SHAPE, show_default=True, help="Task shape, any size.")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip to measure.")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros.")
@click.option("--float-bins", type=click.IntRange(min=1), default=None,
              help="Count a float --image in this many equal bins over --float-range (statistics of the bin "
              "centres, within half a bin) instead of value by value (exact; one entry per distinct value).")
@click.option("--float-range", type=FLOATS, default=None, metavar="LOW,HIGH",
              help="The values the --float-bins cover; values outside go to the end bins.")
@queue_option
@click.pass_context
def forge(ctx, seg, image, nuclei, shape, mip, fill_missing, float_bins, float_range, queue):
    """(1) Partial statistics of each block.

    Example: igneous-like measure forge file:///data/seg --image file:///data/em --shape 256,256,128
    """
    submit(ctx, [Stage("create_measure_tasks", dict(
        cloudpath=seg, mip=mip, shape=shape, image=image, nuclei=nuclei, fill_missing=fill_missing,
        float_bins=float_bins, float_range=float_range), "forge")], queue)
    next_step(ctx, "merge", seg, mip)


@measure.command()
@click.argument("seg")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip that was measured.")
@click.option("--tasks", "num_tasks", type=click.IntRange(min=1), default=None,
              help="Merge tasks, each owning a label range (default: one per 200,000 part rows).")
@queue_option
@click.pass_context
def merge(ctx, seg, mip, num_tasks, queue):
    """(2) Merge the blocks' partials, one task per label range.

    Example: igneous-like measure merge file:///data/seg --queue fq:///tmp/q
    """
    submit(ctx, [Stage("create_measure_merge_tasks", dict(cloudpath=seg, mip=mip, num_tasks=num_tasks),
                       "merge")], queue)
    next_step(ctx, "export", seg, mip, "OUTPUT.csv")


@measure.command()
@click.argument("seg")
@click.argument("output", type=OUTPUT_FILE)
@click.option("--mip", type=int, default=0, show_default=True, help="Mip that was measured.")
@click.option("--segment-properties/--no-segment-properties", default=True, show_default=True,
              help="Also write SEG/segment_properties for Neuroglancer.")
@click.pass_context
def export(ctx, seg, output, mip, segment_properties):
    """(3) Write one table (.csv, .tsv, .parquet or .xlsx), one row per label, `label` first.

    Example: igneous-like measure export file:///data/seg cells.parquet
    """
    done = submit(ctx, [Stage("export_measurements", dict(
        cloudpath=seg, output=output, mip=mip, segment_properties=segment_properties), "export")])
    if not done:
        return
    click.echo(f"{done[0]} objects written to {output}", err=True)
    if segment_properties:
        click.echo(f"Segment properties: {layer_path(seg).rstrip('/')}/{PROPERTIES_DIR}/info", err=True)


@measure.command()
@click.argument("seg")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip that was measured.")
@click.pass_context
def clean(ctx, seg, mip):
    """(last) Delete the intermediate files in SEG/KEY/measure/.

    Example: igneous-like measure clean file:///data/seg
    """
    done = submit(ctx, [Stage("clean_measure_files", dict(cloudpath=seg, mip=mip), "clean")])
    if done:
        click.echo(f"Deleted {done[0]} intermediate files", err=True)


@measure.command()
@click.argument("seg")
@click.argument("dest", type=OUTPUT)
@click.option("--width", type=float, required=True, help="Ring width in nm, outside each object.")
@click.option("--shape", type=VEC3, default=tc.DEFAULT_SHAPE, show_default=True,
              help="Task shape X,Y,Z (rounded up to whole chunks).")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip to process.")
@compress_option
@queue_option
@click.pass_context
def ring(ctx, seg, dest, width, shape, mip, compress, queue):
    """Write DEST: background voxels within --width nm of an object, labelled with the nearest
    object's id (ties to the smallest id). Measure DEST with --image for, e.g., the intensity
    around each nucleus.

    Example: igneous-like measure ring file:///data/nuclei file:///data/nuclei_ring --width 200
    """
    submit(ctx, [Stage("create_ring_tasks", dict(src=seg, dest=dest, width=width, mip=mip, shape=shape,
                                                 compress=compress), "ring")], queue)
    if not planning(ctx):
        click.echo(f"Then: igneous-like measure forge {dest} --image IMAGE", err=True)


@measure.command()
@click.argument("output_dir", type=OUTPUT)
@click.option("--group", "group_file", type=click.Path(dir_okay=False), default=None,
              help="YAML or JSON file: NAME: SEG, or NAME: {seg: SEG, image: IMG, nuclei: NUC, "
              "float_bins: N, float_range: [LOW, HIGH]}, per layer.")
@click.option("--layer", "layers", multiple=True, metavar="NAME=SEG", help="A layer of the group (repeat).")
@click.option("--format", "table_format", type=click.Choice(["csv", "tsv", "parquet", "xlsx"]), default="csv",
              show_default=True, help="Table format.")
@click.option("--shape", type=VEC3, default=tc.DEFAULT_SHAPE, show_default=True, help="Task shape, any size.")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip to measure.")
@click.option("--segment-properties/--no-segment-properties", default=True, show_default=True,
              help="Also write each SEG/segment_properties for Neuroglancer.")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros.")
@queue_option
@click.pass_context
def batch(ctx, output_dir, group_file, layers, table_format, shape, mip, segment_properties, fill_missing,
          queue):
    """Measure a named group of layers in one go: OUTPUT_DIR/NAME.FORMAT per layer (forge, merge,
    export, clean each) and OUTPUT_DIR/combined.FORMAT, every row with its `layer` name first.

    Example: igneous-like measure batch file:///data/tables --layer cells=file:///data/cells
    --layer nuclei=file:///data/nuclei
    """
    group = tc.read_layer_group(group_file) if group_file else {}
    for item in layers:
        name, sep, seg = item.partition("=")
        if not sep or not name or not seg:
            raise UserError(f"--layer {item}: give NAME=SEG")
        group[name] = dict.fromkeys(tc.GROUP_KEYS, None) | {"seg": seg}
    if not group:
        raise UserError("name the layers to measure with --group FILE or --layer NAME=SEG")
    stages = verbs.measure_batch(group, layer_path(output_dir), table_format, mip, shape, fill_missing,
                                 segment_properties)
    done = submit(ctx, stages, queue, home=layer_path(output_dir))
    if done:
        click.echo(f"{len(group)} layers, {done[-1]} objects in all: {layer_path(output_dir).rstrip('/')}/"
                   f"{tc.COMBINED}.{table_format}", err=True)
