"""`igneous-like mesh ...`: forge, merge, merge-sharded, clean, rm, xfer and spatial-index."""
import click

from igneous_like.cli.common import (
    INT_LIST,
    VEC3,
    add_options,
    magnitude_option,
    planning,
    queue_option,
    range_options,
    submit,
)
from igneous_like.cli.params import FLOAT
from igneous_like.meshes import MAX_FILL_LEVEL
from igneous_like.task_creation.common import Stage
from igneous_like.task_creation.mesh import DEFAULT_SHAPE, MESH_ENCODINGS


@click.group()
def mesh():
    """Meshes: forge pieces per block, then merge them into legacy, multi-resolution or sharded meshes."""


dir_option = click.option("--dir", "mesh_dir", default=None,
                          help="Mesh directory in the layer (default: the one the layer's info names).")


@mesh.command()
@click.argument("path")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip to mesh.")
@click.option("--shape", type=VEC3, default=DEFAULT_SHAPE, show_default=True,
              help="Block (task) shape at --mip.")
@click.option("--max-error", type=FLOAT, default=40.0, show_default=True,
              help="Largest distance (nm) simplification may move a vertex.")
@click.option("--simplify/--no-simplify", " /--skip-simplify", default=True, show_default=True,
              help="Simplify meshes.")
@click.option("--simplification-factor", type=click.IntRange(min=1), default=100, show_default=True,
              help="Target triangle reduction factor, bounded by --max-error.")
@click.option("--dust-threshold", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip labels with fewer voxels than this in a block (or, with --dust-global, in the "
                   "whole volume).")
@click.option("--dust-global/--dust-local", default=False, show_default=True,
              help="Judge dust by the label's voxels in the whole volume (counted while merging) or in "
                   "each block, as Igneous does by default.")
@click.option("--fill-holes", type=click.IntRange(0, MAX_FILL_LEVEL), default=0, show_default=True,
              help="Fill holes before meshing: 0 none; 1 cavities a label encloses (the enclosed "
                   "objects keep their own meshes); 2 also holes cut by a block's faces; 3 also grow "
                   "labels by one voxel into background first; 4+ also holes enclosed on only "
                   "(100-(N-3))% of their surface.")
@click.option("--closed-edge/--open-edge", default=True, show_default=True,
              help="Close meshes where objects meet the volume's edge, or leave them open there.")
@click.option("--labels", type=INT_LIST, default=None, help="Mesh only these labels: ID,ID,...")
@click.option("--exclude-labels", type=INT_LIST, default=(), help="Do not mesh these labels: ID,ID,...")
@dir_option
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros instead of failing.")
@click.option("--encoding", type=click.Choice(MESH_ENCODINGS), default="precomputed", show_default=True,
              help="Encoding of the intermediate pieces (draco: smaller, quantized to 1/32 voxel).")
@click.option("--spatial-index/--no-spatial-index", " /--skip-spatial-index", default=True, show_default=True,
              help="Write spatial index files so meshes can be found by bounding box.")
@click.option("--sharded", is_flag=True, help="The next step will be merge-sharded (forging is the same).")
@add_options(range_options)
@queue_option
@click.pass_context
def forge(ctx, path, mip, shape, max_error, simplify, simplification_factor, dust_threshold, dust_global,
          fill_holes, closed_edge, labels, exclude_labels, mesh_dir, fill_missing, encoding, spatial_index,
          sharded, xrange, yrange, zrange, queue):
    """Stage 1: mesh each block; pieces of neighbouring blocks meet without cracks.

    Example: igneous-like mesh forge file:///data/seg --shape 256,256,256 --queue fq:///tmp/q
    """
    submit(ctx, [Stage("create_meshing_tasks", dict(
        layer_path=path, mip=mip, shape=shape, max_simplification_error=max_error, simplification=simplify,
        simplification_factor=simplification_factor, dust_threshold=dust_threshold, dust_global=dust_global,
        fill_holes=fill_holes, closed_dataset_edges=closed_edge, object_ids=labels,
        exclude_object_ids=exclude_labels, mesh_dir=mesh_dir, fill_missing=fill_missing, encoding=encoding,
        spatial_index=spatial_index, ranges=[xrange, yrange, zrange]), "forge")], queue)
    if planning(ctx):
        return
    step = "merge-sharded --nlod 2" if sharded else "merge"
    when = "Once the queue is empty, merge" if queue else "Next, merge"
    click.echo(f"{when}: igneous-like mesh {step} {path}", err=True)


@mesh.command()
@click.argument("path")
@magnitude_option("the labels evenly")
@click.option("--nlod", type=click.IntRange(min=0), default=0, show_default=True,
              help="0: legacy format; N (up to 7): multi-resolution format with N extra levels of detail.")
@dir_option
@queue_option
@click.pass_context
def merge(ctx, path, magnitude, nlod, mesh_dir, queue):
    """Stage 2: weld each label's pieces into one mesh (legacy or multi-resolution).

    Example: igneous-like mesh merge file:///data/seg --nlod 2
    """
    submit(ctx, [Stage("create_mesh_manifest_tasks", dict(layer_path=path, magnitude=magnitude, nlod=nlod,
                                                          mesh_dir=mesh_dir), "merge")], queue)


@mesh.command("merge-sharded")
@click.argument("path")
@click.option("--nlod", type=click.IntRange(min=0), default=1, show_default=True,
              help="Extra levels of detail (up to 7).")
@click.option("--labels-per-shard", type=click.IntRange(min=1), default=None,
              help="Cap on labels per shard (default: shard sizes from the label count).")
@dir_option
@queue_option
@click.pass_context
def merge_sharded(ctx, path, nlod, labels_per_shard, mesh_dir, queue):
    """Stage 2: write multi-resolution meshes into shard files, one task per shard.

    Example: igneous-like mesh merge-sharded file:///data/seg --nlod 2
    """
    submit(ctx, [Stage("create_sharded_multires_mesh_tasks", dict(
        layer_path=path, nlod=nlod, mesh_dir=mesh_dir, labels_per_shard=labels_per_shard), "merge")], queue)


@mesh.command()
@click.argument("path")
@dir_option
@click.pass_context
def clean(ctx, path, mesh_dir):
    """Delete forge intermediates (.frags files); meshes and the spatial index stay.

    Example: igneous-like mesh clean file:///data/seg
    """
    done = submit(ctx, [Stage("clean_mesh_intermediates", dict(layer_path=path, mesh_dir=mesh_dir), "clean")])
    if done:
        click.echo(f"Deleted {done[0]} intermediate files", err=True)


@mesh.command()
@click.argument("path")
@magnitude_option("the deleting")
@dir_option
@queue_option
@click.pass_context
def rm(ctx, path, magnitude, mesh_dir, queue):
    """Delete a layer's mesh directory (every file) and unlink it from the layer's info.

    Example: igneous-like mesh rm file:///data/seg
    """
    submit(ctx, [Stage("create_mesh_deletion_tasks", dict(layer_path=path, magnitude=magnitude,
                                                          mesh_dir=mesh_dir), "rm")], queue)


def xfer_options(what: str, sharded: str, dir_name: str) -> list:
    """SRC, DEST, --sharded, --dir and --magnitude of `mesh xfer` and `skeleton xfer`."""
    return [
        click.argument("src"),
        click.argument("dest"),
        click.option("--sharded", is_flag=True, help=f"{sharded} (sharded ones are copied)."),
        click.option("--dir", dir_name, default=None,
                     help=f"{what} directory at DEST (default: the one its info names, else the source's)."),
        magnitude_option("the copying"),
    ]


@mesh.command()
@add_options(xfer_options("Mesh", "Write unsharded meshes as sharded multi-resolution ones", "mesh_dir"))
@click.option("--mip", type=click.IntRange(min=0), default=None,
              help="--sharded, legacy meshes: the mip they were made at (default: the mesh info's).")
@click.option("--nlod", type=click.IntRange(min=0), default=0, show_default=True,
              help="--sharded, legacy meshes: extra levels of detail to make.")
@queue_option
@click.pass_context
def xfer(ctx, src, dest, sharded, mesh_dir, magnitude, mip, nlod, queue):
    """Copy a layer's meshes (legacy, multi-resolution or sharded) into layer DEST.

    DEST gets SRC's info if it has none. Example: igneous-like mesh xfer file:///a/seg file:///b/seg
    """
    submit(ctx, [Stage("create_xfer_meshes_tasks", dict(
        src=src, dest=dest, mesh_dir=mesh_dir, magnitude=magnitude, sharded=sharded, nlod=nlod, mip=mip),
        "xfer")], queue)


@mesh.group("spatial-index")
def spatial_index():
    """Spatial index of meshes: which labels lie in a box (cv.mesh.spatial_index)."""


def index_options(shape: tuple, directory) -> list:
    """The options of `mesh spatial-index create` and `skeleton spatial-index create`."""
    return [
        click.argument("path"),
        click.option("--mip", type=int, default=0, show_default=True,
                     help="Index the segmentation at this mip."),
        click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros instead of failing."),
        click.option("--shape", type=VEC3, default=shape, show_default=True,
                     help="Block (task) shape in voxels; each writes one index file."),
        directory,
        queue_option,
        click.pass_context,
    ]


@spatial_index.command()
@add_options(index_options((448, 448, 448), dir_option))
def create(ctx, path, mip, fill_missing, shape, mesh_dir, queue):
    """(Re)build the spatial index of existing meshes from the segmentation, without remeshing.

    Example: igneous-like mesh spatial-index create file:///data/seg --shape 512,512,256
    """
    submit(ctx, [Stage("create_spatial_index_mesh_tasks", dict(
        cloudpath=path, shape=shape, mip=mip, fill_missing=fill_missing, mesh_dir=mesh_dir), "index")], queue)


db_options = [
    click.argument("path"),
    click.argument("database"),
    click.option("--progress", is_flag=True, help="Show progress bars."),
    click.option("--allow-missing", is_flag=True, help="Skip missing index files instead of failing."),
    click.pass_context,
]


def spatial_index_db(ctx, path, database, kind, progress, allow_missing):
    """The `db` verb of meshes and skeletons."""
    done = submit(ctx, [Stage("spatial_index_db", dict(layer_path=path, database=database, kind=kind,
                                                        progress=progress, allow_missing=allow_missing),
                              "db")])
    if done:
        click.echo(f"Wrote the spatial index of {path} into {done[0]}", err=True)


@spatial_index.command()
@add_options(db_options)
def db(ctx, path, database, progress, allow_missing):
    """Copy the mesh spatial index into a database: sqlite://FILE (or FILE) or mysql://USER:PWD@HOST/DB.

    Example: igneous-like mesh spatial-index db file:///data/seg index.db
    """
    spatial_index_db(ctx, path, database, "mesh", progress, allow_missing)
