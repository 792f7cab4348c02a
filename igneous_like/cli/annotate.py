"""`igneous-like annotate ...`: Neuroglancer annotation layers (points, lines, boxes, ellipsoids) from
objects or tables."""
import click

from igneous_like.cli.common import queue_option, submit
from igneous_like.cli.params import FLOATS
from igneous_like.errors import UserError
from igneous_like.pipeline import verbs
from igneous_like.tables import columns_list
from igneous_like.task_creation.common import layer_path


@click.group()
def annotate():
    """Neuroglancer precomputed annotations: points, boxes and ellipsoids from a segmentation's
    objects or a table, lines from a table; numeric properties, relationships to segmentations,
    the by-id index and a multi-level spatial index, unsharded or sharded, built in tasks.

    Example: igneous-like annotate points file:///data/synapses file:///data/synapse_points --relate file:///data/cells
    """


def common(function):
    options = [
        click.option("--relate", multiple=True, metavar="SEG",
                     help="Segmentation whose id at each point is related (repeatable), e.g. the cells."),
        click.option("--properties", default=None,
                     help="Numeric columns to attach, e.g. volume,sphericity (default: all numeric ones)."),
        click.option("--id", "id_column", default=None, help="Table column of the annotation ids (default: "
                     "label if present, else the row number from 1)."),
        click.option("--resolution", type=FLOATS, default=None,
                     help="nm per voxel X,Y,Z for a table (default: the first --relate layer's)."),
        click.option("--limit", type=click.IntRange(min=1), default=500, show_default=True,
                     help="Annotations per spatial index cell the viewer draws at once."),
        click.option("--sharded", is_flag=True, help="Write sharded indices (few large files)."),
        queue_option, click.pass_context]
    for option in reversed(options):
        function = option(function)
    return function


def run(ctx, queue, source, dest, **kwargs) -> None:
    kwargs["properties"] = None if kwargs["properties"] is None else columns_list(kwargs["properties"])
    kwargs["relate"] = list(kwargs["relate"])
    submit(ctx, verbs.annotate(source, dest, **kwargs), queue, home=layer_path(dest))


@annotate.command()
@click.argument("source")
@click.argument("dest")
@click.option("--position", default=None, help="Table columns of the point in nm (voxel i's centre at "
              "i * resolution) [default: centroid_x,centroid_y,centroid_z].")
@common
def points(ctx, source, dest, position, relate, properties, id_column, resolution, limit, sharded, queue):
    """One point per row of a table (.csv, .tsv, .parquet, .xlsx) or per object of a segmentation,
    at its exact centroid (measure it first: `measure forge` and `measure merge`).

    Example: igneous-like annotate points synapses.csv file:///data/synapse_points --relate file:///data/cells
    """
    coordinates = None if position is None else columns_list(position)
    run(ctx, queue, source, dest, kind="point", coordinates=coordinates, relate=relate, properties=properties,
        id_column=id_column, resolution=resolution, limit=limit, sharded=sharded)


@annotate.command()
@click.argument("table_path", metavar="TABLE")
@click.argument("dest")
@click.option("--a", "a", required=True, help="Columns of the first end in nm, e.g. pre_x,pre_y,pre_z.")
@click.option("--b", "b", required=True, help="Columns of the second end in nm, e.g. post_x,post_y,post_z.")
@common
def lines(ctx, table_path, dest, a, b, relate, properties, id_column, resolution, limit, sharded, queue):
    """One line per table row between two points, e.g. pre- and post-synaptic partners; a
    relationship relates both ends' segments.

    Example: igneous-like annotate lines pairs.csv file:///data/pairs --a x1,y1,z1 --b x2,y2,z2
    --resolution 8,8,40
    """
    run(ctx, queue, table_path, dest, kind="line", coordinates=columns_list(a) + columns_list(b),
        relate=relate, properties=properties, id_column=id_column, resolution=resolution, limit=limit,
        sharded=sharded)


def pair(first: str, second: str):
    """A table's two coordinate sets, or None for a segmentation's own (both or neither given)."""
    if (first is None) != (second is None):
        raise UserError("give both coordinate sets of the table or neither (a segmentation)")
    return None if first is None else columns_list(first) + columns_list(second)


@annotate.command()
@click.argument("source")
@click.argument("dest")
@click.option("--a", "a", default=None, help="Table columns of one corner in nm, e.g. min_x,min_y,min_z.")
@click.option("--b", "b", default=None, help="Table columns of the opposite corner in nm.")
@common
def boxes(ctx, source, dest, a, b, relate, properties, id_column, resolution, limit, sharded, queue):
    """One axis-aligned box per object of a measured segmentation (its bounding box, exactly around
    its voxels; related segments at its centroid) or per table row between two corners (related
    segments at the box's centre).

    Example: igneous-like annotate boxes file:///data/cells file:///data/cell_boxes
    """
    run(ctx, queue, source, dest, kind="axis_aligned_bounding_box", coordinates=pair(a, b), relate=relate,
        properties=properties, id_column=id_column, resolution=resolution, limit=limit, sharded=sharded)


@annotate.command()
@click.argument("source")
@click.argument("dest")
@click.option("--center", default=None, help="Table columns of the centre in nm, e.g. x,y,z.")
@click.option("--radii", default=None, help="Table columns of the radii along x, y, z in nm.")
@common
def ellipsoids(ctx, source, dest, center, radii, relate, properties, id_column, resolution, limit, sharded,
               queue):
    """One axis-aligned ellipsoid per object of a measured segmentation (at its centroid, with half
    its bounding box's extent as radii) or per table row (centre and radii); related segments at
    the centre.

    Example: igneous-like annotate ellipsoids nuclei.csv file:///data/nuclei --center x,y,z --radii rx,ry,rz
    --resolution 8,8,40
    """
    run(ctx, queue, source, dest, kind="ellipsoid", coordinates=pair(center, radii), relate=relate,
        properties=properties, id_column=id_column, resolution=resolution, limit=limit, sharded=sharded)
