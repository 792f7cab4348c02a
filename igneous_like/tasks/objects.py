"""Tasks on a layer's mesh or skeleton directory as a whole: copy its files to another layer, delete
them, or index a block of the segmentation for spatial queries.

A spatial index file (CloudVolume's format) is named by the physical box of its block
(`X0-X1_Y0-Y1_Z0-Z1.spatial`) and maps each label with voxels in the block to the physical
bounding box of those voxels, so `cv.mesh.spatial_index.query(box)` finds every label in a box.
"""
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, synthesize_shard_files
from cloudvolume.lib import Bbox
from taskqueue import queueable

from igneous_like import meshes
from igneous_like.grid import TaskBox
from igneous_like.multires import multires_fragments
from igneous_like.object_files import in_group, label_boxes
from igneous_like.tasks.mesh import index_file_name, write_mesh_shard


def group_files(cf: CloudFiles, prefix: str, magnitude: int, exclude: Sequence[str] = ()) -> List[str]:
    """The files of one prefix task, without those starting with or ending in an `exclude` entry."""
    names = cf.list(prefix=prefix) if prefix else cf.list()
    return [name for name in names if in_group(name, prefix, magnitude)
            and not any(name.startswith(x) or name.endswith(x) for x in exclude)]


@queueable
def ObjectFilesTransferTask(src: str, dest: str, prefix: str, magnitude: int, exclude: Sequence[str],
                            suffix: str = "") -> None:
    """Copy one prefix's files (those ending in `suffix`) from directory `src` to `dest`, bytes as
    stored (compression kept)."""
    cf = CloudFiles(src)
    names = [name for name in group_files(cf, prefix, magnitude, exclude) if name.endswith(suffix)]
    cf.transfer_to(dest, paths=names)


@queueable
def ObjectFilesDeleteTask(path: str, prefix: str, magnitude: int) -> None:
    """Delete one prefix's files of directory `path`."""
    cf = CloudFiles(path)
    cf.delete(group_files(cf, prefix, magnitude))


def write_index_file(cv: CloudVolume, directory: str, mip: int, shape: Sequence[int], box: Bbox,
                     labels: np.ndarray, compress: Optional[str] = "gzip") -> None:
    """The spatial index file of one block from its labels (x, y, z)."""
    boxes = label_boxes(labels, box.minpt, cv.meta.resolution(mip))
    CloudFiles(directory).put_json(index_file_name(cv, mip, shape, box), boxes, compress=compress)


@queueable
def SpatialIndexTask(layer_path: str, directory: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                     grid_shape: Sequence[int], fill_missing: bool, compress: Optional[str]) -> None:
    """Index one block of the segmentation: each label's voxel bounding box, in nm."""
    cv = CloudVolume(layer_path, mip=mip, fill_missing=fill_missing, progress=False)
    box = TaskBox.at(offset, shape).write
    labels = np.asarray(cv.image.download(box, mip=mip))[..., 0]
    write_index_file(cv, directory, mip, grid_shape, box, labels, compress)


def shard_spec(dest: str) -> ShardingSpecification:
    return ShardingSpecification.from_dict(CloudFiles(dest).get_json("info")["sharding"])


def multires_from_unsharded(cf: CloudFiles, labels: Sequence[int], legacy: bool, nlod: int,
                            resolution: Sequence[float]) -> Iterator[Tuple[int, bytes, bytes]]:
    """(label, manifest, fragment data) of unsharded meshes: multi-resolution ones as stored, legacy
    ones (their fragments joined) made multi-resolution with `nlod` extra levels of detail."""
    for label in labels:
        if not legacy:
            found = cf.get([f"{label}.index", str(label)], return_dict=True)
            yield label, found[f"{label}.index"], found[str(label)]
            continue
        fragments = cf.get(cf.get_json(f"{label}:0")["fragments"], return_dict=True)
        mesh = meshes.concatenate([meshes.Mesh.from_precomputed(data) for data in fragments.values()])
        written = multires_fragments(mesh, nlod + 1, resolution, label) if len(mesh.faces) else None
        if written is not None:
            yield (label, *written)


@queueable
def MeshShardConversionTask(src: str, dest: str, labels: Sequence[int], legacy: bool, nlod: int,
                            resolution: Optional[Sequence[float]]) -> None:
    """Write one shard of multi-resolution meshes at `dest` from the unsharded meshes at `src`."""
    pieces = multires_from_unsharded(CloudFiles(src), labels, legacy, nlod, resolution)
    write_mesh_shard(CloudFiles(dest), shard_spec(dest), pieces)


@queueable
def SkeletonShardConversionTask(src: str, dest: str, labels: Sequence[int]) -> None:
    """Write one shard of skeletons at `dest` from the unsharded skeleton files at `src`."""
    found = CloudFiles(src).get([str(label) for label in labels], return_dict=True)
    files = synthesize_shard_files(shard_spec(dest), {int(name): data for name, data in found.items()})
    CloudFiles(dest).puts(files.items(), compress=None)
