"""`igneous-like image ...`: create, downsample, xfer and rm."""
import click

from igneous_like.cli.common import (
    BOUNDS,
    VEC3,
    add_options,
    compress_option,
    encoding_option,
    memory_option,
    queue_option,
    range_options,
    submit,
)
from igneous_like.cli.lazy import LazyGroup
from igneous_like.cli.params import OUTPUT
from igneous_like.downsample import METHODS
from igneous_like.errors import UserError
from igneous_like.sources import AXES
from igneous_like.task_creation.common import Stage
from igneous_like.task_creation.ingest import LAYER_TYPES


@click.group(cls=LazyGroup, lazy={"ccl": "igneous_like.cli.ccl:ccl", "voxels": "igneous_like.cli.ccl:voxels",
                                  "classify": "igneous_like.cli.classify:classify",
                                  "contrast": "igneous_like.cli.contrast:contrast"})
def image():
    """Image ingestion, pyramids, transfers and deletion."""


pyramid_options = [
    click.option("--factor", type=VEC3, default=None, help="Downsample factor X,Y,Z (default 2,2,1)."),
    click.option("--volumetric", is_flag=True, help="Downsample 2x2x2 instead of 2x2x1."),
    click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
                 help="auto is avg for images and mode for segmentation."),
    click.option("--sparse", is_flag=True, help="Ignore background (0) voxels when downsampling."),
    click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros instead of failing."),
    click.option("--delete-bg", "delete_black_uploads", is_flag=True,
                 help="Do not write (delete) chunks that are all background."),
    click.option("--bg-color", "background_color", type=int, default=0, show_default=True,
                 help="The background value for --delete-bg."),
    click.option("--sharded", is_flag=True, help="Write the Neuroglancer sharded format."),
    compress_option, encoding_option,
    click.option("--encoding-level", type=click.IntRange(min=0, max=100), default=None,
                 help="jpeg/jxl quality or png compression level of the written chunks (Igneous's)."),
    click.option("--encoding-effort", type=click.IntRange(min=1, max=10), default=None,
                 help="jxl encoding effort."),
    memory_option,
]


def downsample_factor(factor, volumetric):
    if factor is not None and volumetric:
        raise UserError("give either --factor or --volumetric, not both")
    return (2, 2, 2) if volumetric else (factor or (2, 2, 1))


@image.command()
@click.argument("path")
@click.option("--mip", type=int, default=0, show_default=True, help="Mip to downsample from.")
@click.option("--num-mips", type=click.IntRange(min=1), default=None,
              help="How many mips to make (default, as Igneous: until the volume fits one chunk; "
                   "with --sharded 3).")
@click.option("--chunk-size", type=VEC3, default=None, help="Chunk size of new mips (default: keep).")
@click.option("--shape", type=VEC3, default=None, help="Task shape at --mip (default: from --memory).")
@add_options(pyramid_options + range_options)
@click.option("--bounds-mip", type=int, default=None, help="Mip the ranges are given in (default: --mip).")
@queue_option
@click.pass_context
def downsample(ctx, path, mip, num_mips, chunk_size, shape, factor, volumetric, method, sparse,
               fill_missing, delete_black_uploads, background_color, sharded, compress, encoding,
               encoding_level, encoding_effort, memory_target, xrange, yrange, zrange, bounds_mip, queue):
    """Build an image pyramid: mips --mip+1 .. --mip+--num-mips.

    Example: igneous-like image downsample file:///data/em --num-mips 3 --queue fq:///tmp/q
    """
    options = dict(factor=downsample_factor(factor, volumetric), method=method, sparse=sparse,
                   chunk_size=chunk_size, encoding=encoding, encoding_level=encoding_level,
                   encoding_effort=encoding_effort, compress=compress, fill_missing=fill_missing,
                   delete_black_uploads=delete_black_uploads, background_color=background_color,
                   memory_target=memory_target)
    if sharded and shape is not None:
        raise UserError("--shape does not apply to --sharded downsampling: each task makes one shard")
    submit(ctx, [Stage("create_pyramid_tasks", dict(
        layer_path=path, mip=mip, num_mips=num_mips, sharded=sharded, ranges=[xrange, yrange, zrange],
        bounds_mip=bounds_mip, shape=shape, **options), "downsample")], queue)


@image.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@click.option("--mip", type=int, default=0, show_default=True, help="Mip to transfer.")
@click.option("--chunk-size", type=VEC3, default=None, help="Destination chunk size (default: keep).")
@click.option("--shape", type=VEC3, default=None, help="Task shape (default: from --memory).")
@click.option("--translate", type=VEC3, default=(0, 0, 0), show_default=True, help="Shift X,Y,Z in voxels.")
@click.option("--dest-voxel-offset", type=VEC3, default=None, help="Voxel offset of the destination.")
@click.option("--bounds", type=BOUNDS, default=None, help="X0,Y0,Z0,X1,Y1,Z1 of the source to copy.")
@click.option("--downsample/--skip-downsample", default=True, show_default=True,
              help="Build downsamples of the destination, or not.")
@click.option("--max-mips", type=click.IntRange(min=0), default=5, show_default=True,
              help="At most this many downsamples (they stop where the volume fits one chunk).")
@add_options(pyramid_options)
@queue_option
@click.pass_context
def xfer(ctx, src, dest, mip, chunk_size, shape, translate, dest_voxel_offset, bounds, downsample,
         max_mips, factor, volumetric, method, sparse, fill_missing, delete_black_uploads,
         background_color, sharded, compress, encoding, encoding_level, encoding_effort, memory_target,
         queue):
    """Copy a layer to DEST: rechunk, re-encode, translate, reshard; then downsample it.

    Example: igneous-like image xfer file:///data/em file:///data/em_rechunked --chunk-size 128,128,32
    """
    submit(ctx, [Stage("create_transfer_tasks", dict(
        src_layer_path=src, dest_layer_path=dest, mip=mip, chunk_size=chunk_size, shape=shape,
        translate=translate, dest_voxel_offset=dest_voxel_offset,
        bounds=None if bounds is None else [bounds[:3], bounds[3:]], bounds_mip=mip, encoding=encoding,
        encoding_level=encoding_level, encoding_effort=encoding_effort, skip_downsamples=not downsample,
        max_mips=max_mips, sharded=sharded,
        factor=downsample_factor(factor, volumetric), downsample_method=method, sparse=sparse,
        fill_missing=fill_missing,
        delete_black_uploads=delete_black_uploads, background_color=background_color, compress=compress,
        memory_target=memory_target), "transfer")], queue, home=dest)


@image.command()
@click.argument("path")
@click.option("--mip", type=int, default=0, show_default=True, help="First mip to delete.")
@click.option("--num-mips", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many mips to delete.")
@click.option("--shape", type=VEC3, default=None, help="Task shape at --mip.")
@queue_option
@click.pass_context
def rm(ctx, path, mip, num_mips, shape, queue):
    """Delete the chunks of mips --mip .. --mip+--num-mips-1 (the info file stays).

    Example: igneous-like image rm file:///data/em --mip 1 --num-mips 4
    """
    submit(ctx, [Stage("create_deletion_tasks", dict(layer_path=path, mip=mip, num_mips=num_mips,
                                                     shape=shape), "delete")], queue)


edit_options = [
    click.option("--mip", type=click.IntRange(min=0), default=0, show_default=True),
    click.option("--shape", type=VEC3, default=(512, 512, 64), show_default=True,
                 help="Task shape X,Y,Z (rounded up to whole chunks)."),
    click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros instead of failing."),
    compress_option,
]


@image.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@click.argument("mapping")
@add_options(edit_options + [encoding_option])
@queue_option
@click.pass_context
def reorder(ctx, src, dest, mapping, mip, shape, fill_missing, compress, encoding, queue):
    """Copy SRC to DEST with z slices moved as MAPPING says: a JSON object source: destination;
    slices it does not move stay. A mapping that would lose a slice (overwritten, moved nowhere)
    is refused before anything is written.

    Example: igneous-like image reorder file:///data/em file:///data/em_fixed '{"10": 11, "11": 10}'
    """
    submit(ctx, [Stage("create_reorder_tasks", dict(
        src_layer_path=src, dest_layer_path=dest, mapping=mapping, mip=mip, shape=shape,
        fill_missing=fill_missing, encoding=encoding, compress=compress), "reorder")], queue)


@image.command()
@click.argument("path")
@click.argument("bounds", type=BOUNDS)
@click.option("--value", type=float, default=0, show_default=True, help="The value to write.")
@add_options(edit_options)
@queue_option
@click.pass_context
def blackout(ctx, path, bounds, value, mip, shape, fill_missing, compress, queue):
    """Set the region BOUNDS (X0,Y0,Z0,X1,Y1,Z1 in voxels of --mip) of the layer to --value, in
    place (e.g. to blank out a damaged region before meshing).

    Example: igneous-like image blackout file:///data/seg 0,0,100,2048,2048,101
    """
    submit(ctx, [Stage("create_blackout_tasks", dict(
        cloudpath=path, bounds=[bounds[:3], bounds[3:]], mip=mip, value=value, shape=shape,
        fill_missing=fill_missing, compress=compress), "blackout")], queue)


@image.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@add_options(edit_options + [encoding_option])
@queue_option
@click.pass_context
def quantize(ctx, src, dest, mip, shape, fill_missing, compress, encoding, queue):
    """Write DEST as 8 bits: the floats of SRC in [0, 1] (affinities, probabilities; every
    channel) as round(255 x), clipped.

    Example: igneous-like image quantize file:///data/affinities file:///data/affinities_8bit
    """
    submit(ctx, [Stage("create_quantize_tasks", dict(
        src_layer=src, dest_layer=dest, mip=mip, shape=shape, fill_missing=fill_missing,
        encoding=encoding, compress=compress), "quantize")], queue)


@image.command()
@click.argument("src")
@click.option("--mip", type=click.IntRange(min=0), default=None,
              help="Mip to read (default: the first whose x*y is at most --max-axial-len squared).")
@click.option("--suppress-faint", type=float, default=0, show_default=True,
              help="Voxels at or below this value are background.")
@click.option("--dust", type=click.IntRange(min=0), default=10, show_default=True,
              help="Ignore connected pieces smaller than this many voxels (of the mip read).")
@click.option("--max-axial-len", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--z-step", type=click.IntRange(min=1), default=None,
              help="One box per this many mip-0 slices (default: one box).")
@click.pass_context
def roi(ctx, src, mip, suppress_faint, dust, max_axial_len, z_step):
    """Print the bounding box of what is not background, X0,Y0,Z0,X1,Y1,Z1 in mip 0 voxels (as
    --bounds takes it).

    Example: igneous-like image roi file:///data/em --suppress-faint 20
    """
    done = submit(ctx, [Stage("find_roi", dict(
        layer_path=src, mip=mip, suppress_faint=suppress_faint, dust=dust, max_axial_len=max_axial_len,
        z_step=z_step), "roi")])
    for box in (done or [[]])[0]:
        click.echo(",".join(map(str, box)))
@image.command()
@click.argument("src")
@click.argument("dest", type=OUTPUT)
@click.option("--resolution", type=VEC3, default=(1, 1, 1), show_default=True, help="Voxel size X,Y,Z in nm.")
@click.option("--offset", type=VEC3, default=(0, 0, 0), show_default=True, help="Voxel offset X,Y,Z.")
@click.option("--chunk-size", type=VEC3, default=(128, 128, 64), show_default=True, help="Chunk size X,Y,Z.")
@click.option("--layer-type", type=click.Choice(LAYER_TYPES), default="image", show_default=True,
              help="segmentation needs unsigned integer labels.")
@click.option("--seg", is_flag=True, help="Same as --layer-type segmentation (Igneous's flag).")
@click.option("--shape", type=VEC3, default=None,
              help="Task shape, a multiple of --chunk-size (default: whole x,y planes one chunk deep, "
                   "split to fit --memory).")
@click.option("--dataset", "--h5-dataset", "dataset", default=None,
              help="The array inside an HDF5 file or a zarr/N5 group (default: an HDF5 file's only "
                   "dataset; SRC itself for zarr/N5).")
@click.option("--axes", type=click.Choice(AXES), default=None,
              help="The source array's index order. Default: zyx for TIFF (pages are z) and zarr "
                   "(OME-Zarr's order); xyz for .npy, HDF5 and crackle (as Igneous), NRRD, NIfTI and N5 "
                   "(x first).")
@add_options([compress_option, encoding_option, memory_option])
@queue_option
@click.pass_context
def create(ctx, src, dest, resolution, offset, chunk_size, layer_type, seg, shape, dataset, axes,
           compress, encoding, memory_target, queue):
    """Make a new layer DEST from the array in SRC, box by box: .npy, .tif/.tiff (one file, or a
    folder of 2-D slices sorted by name, numbers as numbers), .nrrd (raw or gzip), .h5/.hdf5,
    .nii/.nii.gz, .ckl/.ckl.gz (crackle), a zarr (v2 or v3) or N5 array. SRC is a local path that
    every worker must be able to read (a shared file system for a fleet). Build its pyramid
    afterwards with image downsample.

    Example: igneous-like image create stack.tif file:///data/em --resolution 4,4,40 --queue fq:///tmp/q
    """
    submit(ctx, [Stage("create_ingest_tasks", dict(
        src=src, dest=dest, resolution=resolution, offset=offset, chunk_size=chunk_size,
        layer_type="segmentation" if seg else layer_type, encoding=encoding, compress=compress, shape=shape,
        dataset=dataset, axes=axes, memory_target=memory_target), "ingest")], queue, home=dest)
