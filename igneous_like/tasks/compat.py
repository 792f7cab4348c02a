"""Igneous's tasks by name, with its keywords and defaults, called as Igneous's are.

Igneous's function tasks (DeleteTask, BlackoutTask, ...) run when called, and queue as
`partial(DeleteTask, ...)`: they are registered here, and each runs the call of one of
igneous_like's task functions. Its class tasks (MeshTask, ContrastNormalizationTask) are made
first and run with .execute() (or queued): here they return that call as a Task. The names
offered are igneous_like.tasks.IGNEOUS_TASKS. Tasks that need a creator's prepared state
(skeleton forge records, CCL work folders) have no standalone counterpart here: make them with
igneous_like.task_creation.
"""
import functools
from typing import Dict, Optional, Sequence

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.lib import Vec
from taskqueue import queueable

from igneous_like.errors import UserError
from igneous_like.grid import TaskBox
from igneous_like.task_creation.common import Task, compression, graphene_only, ints, open_layer, whole_chunks
from igneous_like.task_creation.image import axis_factor, method_name, pyramid_options
from igneous_like.tasks import contrast, edit, image, mesh, voxels


def runs_when_called(build):
    """An Igneous function task: calling it runs the Task `build` makes; queued as a partial of it,
    a worker runs it (registered under this module)."""
    @functools.wraps(build)
    def run(*args, **kwargs) -> None:
        build(*args, **kwargs)()
    return queueable(run)


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


@runs_when_called
def DeleteTask(layer_path: str, shape: Sequence[int], offset: Sequence[int], mip: int = 0,
               num_mips: int = 5) -> Task:
    """Delete the chunks of one box (chunk-aligned) at mips mip .. mip+num_mips-1."""
    cv = open_layer(layer_path, mip)
    return Task(image.DeleteTask, layer_path=cv.cloudpath, mip=mip, offset=ints(offset), shape=ints(shape),
                num_mips=min(num_mips, len(cv.info["scales"]) - mip))


@runs_when_called
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


@runs_when_called
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


@runs_when_called
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


@runs_when_called
def BlackoutTask(cloudpath: str, mip: int, shape: Sequence[int], offset: Sequence[int], value=0,
                 non_aligned_writes: bool = False) -> Task:
    """Set one box to `value`; the task writes the whole chunks around it, the rest unchanged."""
    cv = open_layer(cloudpath, mip)
    region = TaskBox.at(offset, shape).write
    chunks = whole_chunks(cv, mip, region)
    return Task(edit.BlackoutTask, layer_path=cv.cloudpath, mip=mip, offset=ints(chunks.minpt),
                shape=ints(chunks.size3()), region=[ints(region.minpt), ints(region.maxpt)],
                value=np.asarray(value).item())


@runs_when_called
def QuantizeTask(source_layer_path: str, dest_layer_path: str, shape: Sequence[int], offset: Sequence[int],
                 mip: int, fill_missing: bool = False) -> Task:
    """Write one box of floats in [0, 1] as floor(255 x) into an 8-bit layer made in advance (its
    channels: one, from task_creation.create_quantized_affinity_info)."""
    return Task(edit.QuantizeTask, src_path=open_layer(source_layer_path, mip).cloudpath,
                dest_path=open_layer(dest_layer_path, mip).cloudpath, mip=mip, offset=ints(offset),
                shape=ints(shape), fill_missing=fill_missing, compress=compression("gzip"), truncate=True)


@queueable
def MeshManifestPrefixTask(layer_path: str, prefix: str, lod: int = 0,
                           mesh_dir: Optional[str] = None) -> None:
    """Write legacy manifests for the labels whose fragment names begin with `prefix` (runs when
    called)."""
    mesh.MeshManifestTask(layer_path, legacy_mesh_dir(layer_path, mesh_dir), prefix=prefix, lod=lod)


@queueable
def MeshManifestFilesystemTask(layer_path: str, lod: int = 0, mesh_dir: Optional[str] = None) -> None:
    """Write legacy manifests for every label with fragments at `lod` (runs when called)."""
    mesh.MeshManifestTask(layer_path, legacy_mesh_dir(layer_path, mesh_dir), lod=lod)


def legacy_mesh_dir(layer_path: str, mesh_dir: Optional[str]) -> str:
    """`mesh_dir`, else the info's `mesh`; the info is read as plain JSON, since Igneous's manifest
    tasks also run beside an info that holds nothing else (a mesh folder without a volume)."""
    mesh_dir = mesh_dir or (CloudFiles(layer_path).get_json("info") or {}).get("mesh")
    if not mesh_dir:
        raise UserError(f"{layer_path} has no mesh directory in its info: give mesh_dir")
    return mesh_dir


def MeshTask(shape: Sequence[int], offset: Sequence[int], layer_path: str, mip: int = 0,
             simplification_factor: int = 100, max_simplification_error: float = 40,
             mesh_dir: Optional[str] = None, remap_table: Optional[Dict[str, str]] = None,
             low_padding: int = 0, high_padding: int = 1, dust_threshold: Optional[int] = None,
             encoding: str = "precomputed", object_ids: Optional[Sequence[int]] = None,
             exclude_object_ids: Sequence[int] = (), fill_missing: bool = False, compress="gzip",
             closed_dataset_edges: bool = True, lod: int = 0, sharded: bool = False,
             spatial_index: bool = False, generate_manifests: bool = False, frag_path: Optional[str] = None,
             fill_holes: int = 0, cache_control: Optional[str] = None, parallel_download: int = 1,
             progress: bool = False, dry_run: bool = False) -> Task:
    """Igneous's unsharded MeshTask (a class there: MeshTask(...).execute()): each label's surface in one
    block as a legacy fragment `LABEL:0:BLOCK` in the mesh directory (the info's `mesh`, else the
    default), for MeshManifestPrefixTask to list. cache_control, parallel_download, progress and
    dry_run change nothing; sharded or draco fragments, other levels of detail, manifests made here
    and frag_path are refused: task_creation.create_meshing_tasks makes those (forge and merge)."""
    if sharded or encoding != "precomputed" or lod or generate_manifests or frag_path is not None:
        raise UserError("MeshTask writes unsharded precomputed fragments at lod 0: for sharded, draco or "
                        "multi-resolution meshes use task_creation.create_meshing_tasks")
    from igneous_like.task_creation.mesh import default_mesh_dir
    cv = open_layer(layer_path, mip)
    options = mesh.MeshOptions(
        max_error=float(max_simplification_error), reduction_factor=int(simplification_factor),
        dust_threshold=int(dust_threshold or 0), dust_global=False,
        labels=None if object_ids is None else tuple(int(x) for x in object_ids),
        exclude_labels=tuple(int(x) for x in exclude_object_ids), fill_missing=fill_missing,
        spatial_index=spatial_index, closed_edges=closed_dataset_edges, fill_holes=fill_holes)
    return Task(mesh.MeshFragmentTask, layer_path=cv.cloudpath,
                mesh_dir=mesh_dir or cv.info.get("mesh") or default_mesh_dir(mip, max_simplification_error),
                mip=mip, offset=ints(offset), shape=ints(shape), options=options.to_json(),
                remap_table=remap_table, low_padding=int(low_padding), high_padding=int(high_padding),
                compress=compression(compress))


def ContrastNormalizationTask(src_path: str, dest_path: str, levels_path: Optional[str], shape: Sequence[int],
                              offset: Sequence[int], mip: int, clip_fraction: float, fill_missing: bool,
                              translate: Sequence[int], minval: Optional[int], maxval: Optional[int]) -> Task:
    """Igneous's class task (ContrastNormalizationTask(...).execute()): one box of DEST (made by
    create_contrast_normalization_tasks) stretched between its slices' levels, from the levels
    that create_luminance_levels_tasks wrote for the source; levels elsewhere and a translation
    are refused, as by the creator."""
    from igneous_like.task_creation.contrast import work_dir
    if levels_path is not None or any(translate):
        raise UserError("levels_path and translate are not supported: the source is normalized in place of "
                        "its own levels (create_luminance_levels_tasks)")
    src = open_layer(src_path, mip)
    return Task(contrast.ContrastTask, src_path=src.cloudpath, dest_path=open_layer(dest_path, mip).cloudpath,
                mip=mip, offset=ints(offset), shape=ints(shape), work=work_dir(src, mip).url,
                clip_fraction=clip_fraction, fill_missing=fill_missing, minval=minval, maxval=maxval)


def HyperSquareConsensusTask(src_path: str, dest_path: str, ew_volume_id: int, consensus_map_path: str,
                             shape: Sequence[int], offset: Sequence[int]) -> Task:
    """Igneous's Eyewire consensus import (obsolete there): refused, as igneous_like reads no Eyewire
    consensus maps."""
    raise UserError("HyperSquareConsensusTask (Eyewire consensus import, obsolete in Igneous) is not "
                    "supported")
