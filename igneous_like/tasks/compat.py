"""Igneous's task classes by name, with its constructor keywords and defaults.

Each builds the call of one of igneous_like's registered task functions (a Task: queue it, or run it
with .execute() as Igneous's tasks run), so workers still run only registered functions. The
names offered are igneous_like.tasks.IGNEOUS_TASKS. Tasks that
need a creator's prepared state (skeleton forge records, CCL work folders, mesh settings) have no
standalone counterpart here: make them with igneous_like.task_creation.
"""
from typing import Optional, Sequence

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox, Vec

from igneous_like.errors import UserError
from igneous_like.grid import TaskBox
from igneous_like.task_creation.common import Task, compression, graphene_only, ints, open_layer
from igneous_like.task_creation.image import axis_factor, method_name, pyramid_options
from igneous_like.tasks import edit, image, voxels


def mips_above(cv: CloudVolume, mip: int, max_mips: Optional[int]) -> int:
    """The mips above `mip` the layer's info already describes (at most `max_mips`): what Igneous's
    downsample and transfer tasks fill."""
    available = len(cv.info["scales"]) - 1 - mip
    return max(0, available if max_mips is None else min(max_mips, available))


def pyramid_json(cv: CloudVolume, mip: int, axis: str, factor, method, sparse: bool, fill_missing: bool,
                 delete_black_uploads: bool, background_color: int, compress) -> dict:
    options = pyramid_options(cv, mip, axis_factor(axis, factor), method_name(method), sparse, fill_missing,
                              delete_black_uploads, background_color, compress, cv.image.is_sharded(mip))
    return options.to_json()


def DeleteTask(layer_path: str, shape: Sequence[int], offset: Sequence[int], mip: int = 0,
               num_mips: int = 5) -> Task:
    """Delete the chunks of one box (chunk-aligned) at mips mip .. mip+num_mips-1."""
    cv = open_layer(layer_path, mip)
    return Task(image.DeleteTask, layer_path=cv.cloudpath, mip=mip, offset=ints(offset), shape=ints(shape),
                num_mips=min(num_mips, len(cv.info["scales"]) - mip))


def DownsampleTask(layer_path: str, mip: int, shape: Sequence[int], offset: Sequence[int],
                   fill_missing: bool = False, axis: str = "z", sparse: bool = False,
                   delete_black_uploads: bool = False, background_color: int = 0,
                   dest_path: Optional[str] = None, compress="gzip", factor=None,
                   max_mips: Optional[int] = None, method=6, codec_threads: int = 1) -> Task:
    """Downsample one box (whole chunks at every mip written) into the mips the info describes."""
    if dest_path is not None:
        raise UserError("dest_path is not supported: transfer the layer first, then downsample the copy")
    cv = open_layer(layer_path, mip)
    options = pyramid_json(cv, mip, axis, factor, method, sparse, fill_missing, delete_black_uploads,
                           background_color, compress)
    return Task(image.DownsampleTask, layer_path=cv.cloudpath, mip=mip, offset=ints(offset),
                shape=ints(shape), num_mips=mips_above(cv, mip, max_mips), options=options)


def TransferTask(src_path: str, dest_path: str, mip: int, shape: Sequence[int], offset: Sequence[int],
                 translate: Sequence[int] = (0, 0, 0), fill_missing: bool = False,
                 skip_first: bool = False, skip_downsamples: bool = False,
                 delete_black_uploads: bool = False, background_color: int = 0, sparse: bool = False,
                 axis: str = "z", agglomerate: bool = False, timestamp: Optional[int] = None,
                 compress="gzip", factor=None, max_mips: Optional[int] = None,
                 stop_layer: Optional[int] = None, downsample_method=6, use_https_for_source: bool = False,
                 codec_threads: int = 1) -> Task:
    """Copy the source box (`offset`, `shape`) to the destination shifted by `translate`, and fill the
    destination's mips above it that the box covers in whole chunks."""
    graphene_only(agglomerate or stop_layer is not None, timestamp)
    if skip_first:
        raise UserError("skip_first is not supported: use DownsampleTask on the destination instead")
    dest = open_layer(dest_path, mip)
    options = pyramid_json(dest, mip, axis, factor, downsample_method, sparse, fill_missing,
                           delete_black_uploads, background_color, compress)
    num_mips = 0 if skip_downsamples else mips_above(dest, mip, max_mips)
    return Task(image.TransferTask, src_path=open_layer(src_path, mip).cloudpath, dest_path=dest.cloudpath,
                mip=mip, offset=ints(Vec(*offset) + Vec(*translate)), shape=ints(shape),
                translate=ints(translate), num_mips=num_mips, options=options)


def CountVoxelsTask(cloudpath: str, shape: Sequence[int], offset: Sequence[int], mip: int = 0,
                    fill_missing: bool = False, agglomerate: bool = False,
                    timestamp: Optional[int] = None) -> Task:
    """Count the voxels per label of one box into the layer's voxel-count parts."""
    from igneous_like import label_table
    graphene_only(agglomerate, timestamp)
    cv = open_layer(cloudpath, mip)
    return Task(voxels.VoxelCountTask, layer_path=cv.cloudpath, mip=mip, offset=ints(offset),
                shape=ints(shape), parts=label_table.voxel_counts_url(cv, mip, parts=True),
                fill_missing=fill_missing)


def BlackoutTask(cloudpath: str, mip: int, shape: Sequence[int], offset: Sequence[int], value=0,
                 non_aligned_writes: bool = False) -> Task:
    """Set one box to `value`; the task writes the whole chunks around it, the rest unchanged."""
    cv = open_layer(cloudpath, mip)
    region = TaskBox.at(offset, shape).write
    chunks = Bbox.clamp(region.expand_to_chunk_size(cv.meta.chunk_size(mip), cv.meta.voxel_offset(mip)),
                        cv.meta.bounds(mip))
    return Task(edit.BlackoutTask, layer_path=cv.cloudpath, mip=mip, offset=ints(chunks.minpt),
                shape=ints(chunks.size3()), region=[ints(region.minpt), ints(region.maxpt)],
                value=np.asarray(value).item())


def QuantizeTask(source_layer_path: str, dest_layer_path: str, shape: Sequence[int], offset: Sequence[int],
                 mip: int, fill_missing: bool = False) -> Task:
    """Write one box of floats in [0, 1] into an 8-bit layer made in advance."""
    return Task(edit.QuantizeTask, src_path=open_layer(source_layer_path, mip).cloudpath,
                dest_path=open_layer(dest_layer_path, mip).cloudpath, mip=mip, offset=ints(offset),
                shape=ints(shape), fill_missing=fill_missing, compress=compression("gzip"))

