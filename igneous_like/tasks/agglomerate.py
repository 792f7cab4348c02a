"""Agglomeration tasks: a box's region graph, a box's relabeling by the merge mapping, and a
box's seeded watershed.

Files live under FRAG/KEY/agglomeration/ (KEY: the mip's key):

    params.json        the graph's layers, mip and task grid (written when graph tasks are made)
    graph/BOX.npz      one task's region graph (igneous_like.region_graph.RegionGraph arrays)
    merge.json         the policy and threshold of the last merge, and its counts
    mapping.ltab       label table: fragment id -> segment id (the smallest fragment id in it)

`agglomerate clean` deletes the directory. Every file is written whole, so a task run twice
leaves the same files.
"""
from typing import Sequence, Union

import fastremap
import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox
from taskqueue import queueable

from igneous_like import label_table
from igneous_like.grid import TaskBox
from igneous_like.region_graph import block_graph
from igneous_like.stage import WorkDir

PARAMS_FILE, MERGE_FILE, MAPPING_TABLE = "params.json", "merge.json", "mapping.ltab"


def graph_name(box: Bbox) -> str:
    return f"graph/{box.to_filename()}.npz"


def read_box(cv: CloudVolume, box: Bbox, mip: int) -> np.ndarray:
    return np.asarray(cv.image.download(box, mip))[..., 0]


def unit_interval(values: np.ndarray) -> np.ndarray:
    """Boundary values as float32 in 0..1 (uint8 0..255 means 0..1)."""
    if values.dtype == np.uint8:
        return values.astype(np.float32) / np.float32(255)
    return np.clip(np.nan_to_num(values.astype(np.float32)), 0, 1)


@queueable
def RegionGraphTask(frag_path: str, boundary_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                    work: str, fill_missing: bool = False) -> None:
    """The region graph of one box: contacts whose lower voxel is in the box, read one voxel past
    its high faces so the faces it shares with the next tasks are counted here and only here; every
    channel of the boundary map; region moments from the volume's first voxel."""
    frag = CloudVolume(frag_path, mip=mip, fill_missing=fill_missing, progress=False)
    boundary = CloudVolume(boundary_path, mip=mip, fill_missing=fill_missing, progress=False)
    bounds = frag.meta.bounds(mip)
    box = TaskBox.at(offset, shape, bounds, high=1)
    labels, levels = read_box(frag, box.read, mip), np.asarray(boundary.image.download(box.read, mip))
    graph = block_graph(labels, levels, tuple(box.write.size3()), tuple(box.write.minpt - bounds.minpt))
    WorkDir(work).put_arrays(graph_name(box.write), **graph.arrays())


@queueable
def AgglomerationRelabelTask(frag_path: str, dest_path: str, mip: int, offset: Sequence[int],
                             shape: Sequence[int], mapping: str, fill_missing: bool = False,
                             compress: Union[str, bool, None] = None, keep_unmapped: bool = True) -> None:
    """Write one box of the agglomerated segmentation: each fragment's value in the mapping, its
    segment id (a value may be 0); fragments the mapping lacks, such as 0, keep their ids, or
    become 0 without keep_unmapped."""
    frag = CloudVolume(frag_path, mip=mip, fill_missing=fill_missing, progress=False)
    dest = CloudVolume(dest_path, mip=mip, compress=compress, progress=False)
    box = TaskBox.at(offset, shape).write
    labels = read_box(frag, box, mip)
    present = fastremap.unique(labels)
    absent = np.iinfo(np.uint64).max
    segments = label_table.Table(mapping).lookup(present, default=absent)
    unmapped = segments == absent
    segments[unmapped] = present[unmapped] if keep_unmapped else 0
    table = dict(zip(present.tolist(), segments.tolist()))
    out = fastremap.remap(labels, table, preserve_missing_labels=True, in_place=False)
    dest.image.upload(out.astype(dest.dtype, copy=False), box.minpt, mip)


def seeded_watershed(boundary: np.ndarray, seed_threshold: float, sigma: float) -> np.ndarray:
    """Fragments 1..n of one block: the watershed of the smoothed boundary map from seeds that
    are the connected regions where it lies below `seed_threshold` (one fragment if none)."""
    import cc3d
    from scipy.ndimage import gaussian_filter
    from skimage.segmentation import watershed
    smooth = gaussian_filter(unit_interval(boundary), sigma) if sigma > 0 else unit_interval(boundary)
    seeds = cc3d.connected_components(smooth < seed_threshold, connectivity=6)
    if seeds.max() == 0:
        return np.ones(boundary.shape, dtype=np.uint64)
    return watershed(smooth, seeds).astype(np.uint64)


@queueable
def WatershedTask(prob_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                  index: int, stride: int, seed_threshold: float, sigma: float, fill_missing: bool = False,
                  compress: Union[str, bool, None] = None) -> None:
    """Seeded watershed of one box; its fragments get ids index * stride + 1.. (globally unique,
    since no box holds more fragments than `stride`, its voxel count)."""
    prob = CloudVolume(prob_path, mip=mip, fill_missing=fill_missing, progress=False)
    dest = CloudVolume(dest_path, mip=mip, compress=compress, progress=False)
    box = TaskBox.at(offset, shape).write
    fragments = seeded_watershed(read_box(prob, box, mip), seed_threshold, sigma)
    dest.image.upload(fragments + np.uint64(index * stride), box.minpt, mip)
