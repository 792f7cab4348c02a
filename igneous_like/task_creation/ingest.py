"""Create ingest tasks: a new Precomputed layer from a numpy, TIFF, NRRD, HDF5, NIfTI, zarr or N5
array, written box by box so a source larger than memory goes in (igneous_like.sources reads
each box alone)."""
from functools import partial
from typing import Optional, Sequence

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox, Vec

from igneous_like import sources
from igneous_like.errors import UserError
from igneous_like.task_creation.common import (
    MEMORY_TARGET,
    Grid,
    Tasks,
    check_encoding,
    check_vec,
    compression,
    csv,
    ints,
    layer_path,
    record_provenance,
)
from igneous_like.task_creation.image import checked_shape, open_destination
from igneous_like.tasks.ingest import IngestTask
from igneous_like.writable import check_writable

BYTES_PER_VOXEL_COPIES = 3  # a task holds its box as read, reordered, and one chunk being encoded
LAYER_TYPES = ("image", "segmentation")


def default_shape(size: Vec, chunk: Vec, itemsize: int, memory_target: int) -> Vec:
    """Whole x,y planes (rounded up to chunks) one chunk deep, halved in x and y while a task would
    hold more than `memory_target`: TIFF pages and gzip streams are read once per plane that way."""
    shape = Vec(*[-(-int(s) // int(c)) * int(c) for s, c in zip(size, chunk)])
    shape[2] = chunk[2]
    too_big = lambda: int(np.prod(shape)) * itemsize * BYTES_PER_VOXEL_COPIES > memory_target
    while too_big() and any(shape[:2] > chunk[:2]):
        axis = 0 if shape.x // chunk.x >= shape.y // chunk.y else 1
        shape[axis] = -(-int(shape[axis]) // (2 * int(chunk[axis]))) * int(chunk[axis])
    return shape


def check_destination(src: str, dest: str) -> str:
    path = layer_path(dest)
    if path.startswith("file://"):
        local = path[len("file://"):].rstrip("/")
        if local == src or local.startswith(src.rstrip("/") + "/"):
            raise UserError(f"the destination {path} lies inside the source {src}; write the layer elsewhere")
    check_writable(path)
    return path


def create_ingest_tasks(
    src: str, dest: str, resolution: Sequence[int] = (1, 1, 1), offset: Sequence[int] = (0, 0, 0),
    chunk_size: Sequence[int] = (128, 128, 64), layer_type: str = "image", encoding: Optional[str] = None,
    compress: Optional[str] = "gzip", shape: Optional[Sequence[int]] = None, dataset: Optional[str] = None,
    axes: Optional[str] = None, memory_target: int = MEMORY_TARGET,
) -> Tasks:
    """Tasks that write the array at SRC (a local path, see igneous_like.sources) as mip 0 of a new
    layer at DEST, one chunk-aligned box of `shape` each; an existing DEST must match exactly."""
    path = sources.local_path(src)
    kind = sources.source_format(path, dataset)
    if layer_type not in LAYER_TYPES:
        raise UserError(f"--layer-type {layer_type} is not one of {', '.join(LAYER_TYPES)}")
    resolution, offset = check_vec("--resolution", resolution), check_vec("--offset", offset, minimum=-2**31)
    chunk = check_vec("--chunk-size", chunk_size)
    dest_path = check_destination(path, dest)
    with sources.open_source(path, kind, dataset, axes) as source:
        source.check()
        size, dtype = Vec(*source.shape), source.dtype
    sources.check_dtype(dtype, layer_type)
    encoding = encoding or "raw"
    check_encoding(encoding, layer_type, dtype)
    info = CloudVolume.create_new_info(
        num_channels=1, layer_type=layer_type, data_type=dtype.name, encoding=encoding,
        resolution=ints(resolution), voxel_offset=ints(offset), volume_size=ints(size),
        chunk_size=ints(chunk))
    dest_cv = open_destination(dest_path, info, 0)
    if shape is None:
        shape = default_shape(size, chunk, dtype.itemsize, memory_target)
    else:
        shape = checked_shape(shape, chunk, size, "writes whole chunks")
    compress = compression(compress)
    dest_cv.commit_info()
    record_provenance(dest_cv, {"task": "IngestTask", "src": path, "format": kind, "dataset": dataset,
                                "axes": axes or sources.DEFAULT_AXES[kind], "shape": ints(shape)})
    bounds = Bbox(offset, offset + size)
    make = lambda box: partial(IngestTask, src=path, kind=kind, dest_path=dest_cv.cloudpath,
                               offset=ints(box.minpt), shape=ints(box.size3()), dataset=dataset, axes=axes,
                               compress=compress)
    return Tasks(Grid(bounds, shape, bounds.minpt, bounds), make,
                 f"ingest {kind} {path} ({csv(size)} {dtype.name}) into {dest_cv.cloudpath}", mips=range(1))
