"""Voxel counts per label of a whole volume: count tasks, then one sum into a label table.

Read the result with igneous_like.label_table.read_voxel_counts, or as Igneous's users do: an
IntMap (mapbuffer) at LAYER/KEY/stats/voxel_counts.im, written beside the label table.
"""
from functools import partial
from typing import Optional, Sequence

import numpy as np
from cloudfiles import CloudFile
from mapbuffer import IntMap

from igneous_like import label_table
from igneous_like.ccl import merge_counts
from igneous_like.errors import UserError
from igneous_like.stage import WorkDir, merged_as_they_come
from igneous_like.task_creation.common import (
    Grid,
    Tasks,
    check_vec,
    compression,
    graphene_only,
    ints,
    layer_path,
    open_layer,
)
from igneous_like.tasks.voxels import VoxelCountTask, part_name

DEFAULT_SHAPE = (512, 512, 512)
GRID_FILE = "grid.json"


def create_voxel_counting_tasks(cloudpath: str, mip: int = 0, fill_missing: bool = False,
                                agglomerate: bool = False, timestamp: Optional[int] = None,
                                shape: Sequence[int] = DEFAULT_SHAPE) -> Tasks:
    """Tasks that count the voxels of every label (background 0 included) in boxes of `shape`
    (Igneous's keywords, plus `shape`).

    Counting with another shape than an earlier run deletes that run's parts first.
    """
    graphene_only(agglomerate, timestamp)
    cv = open_layer(cloudpath, mip)
    if cv.num_channels != 1 or np.dtype(cv.dtype).kind not in "ub":
        raise UserError(f"voxel counts need one channel of unsigned integer labels; {cv.cloudpath} has "
                        f"{cv.num_channels} channel(s) of {cv.dtype}")
    grid = Grid.over(cv.meta.bounds(mip), np.minimum(check_vec("--shape", shape), cv.meta.volume_size(mip)))
    work = WorkDir(label_table.voxel_counts_url(cv, mip, parts=True))
    if work.load(GRID_FILE) not in (None, grid.to_json()):
        work.clean()
    work.save(GRID_FILE, grid.to_json())
    make = lambda box: partial(VoxelCountTask, layer_path=cv.cloudpath, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), parts=work.url, fill_missing=fill_missing)
    return Tasks(grid, make, f"count voxels of {cv.cloudpath} mip {mip}")


def accumulate_voxel_counts(cloudpath: str, mip: int = 0, progress: bool = True,
                            compress: Optional[str] = None, additional_output: Optional[str] = None,
                            clean: bool = False) -> int:
    """Add up every count task's part into LAYER/KEY/stats/voxel_counts.ltab and, as Igneous, an
    IntMap at LAYER/KEY/stats/voxel_counts.im (compressed with `compress`; a copy, uncompressed, at
    `additional_output`, a local file or cloud path, if given); returns how many labels.

    Parts are merged as they arrive (array sorts, never a loop over labels), so memory stays near
    a few times the size of the result. `clean` deletes the parts afterwards; `progress` is
    accepted for Igneous's callers (nothing is shown).
    """
    cv = open_layer(cloudpath, mip)
    work = WorkDir(label_table.voxel_counts_url(cv, mip, parts=True))
    layout = work.require(GRID_FILE, f"no voxel counts to sum for {cv.cloudpath} mip {mip}: run "
                                     f"`igneous-like image voxels count {cv.cloudpath} --mip {mip}` first")
    names = [part_name(box) for box in Grid.from_json(layout)]
    parts = map(label_table.decode, work.gather(names, "voxel count tasks"))
    labels, counts = merged_as_they_come(parts, sum_counts, lambda part: part[0].size)
    label_table.write(label_table.voxel_counts_url(cv, mip), labels, counts)
    intmap = IntMap(dict(zip(labels.tolist(), counts.tolist()))).tobytes()
    CloudFile(intmap_url(cv, mip)).put(intmap, compress=compression(compress))
    if additional_output is not None:
        CloudFile(layer_path(additional_output)).put(intmap, compress=False)
    if clean:
        work.clean()
    return int(labels.size)


def intmap_url(cv, mip: int) -> str:
    """Where Igneous's users look for voxel counts: LAYER/KEY/stats/voxel_counts.im."""
    return label_table.voxel_counts_url(cv, mip).replace(".ltab", ".im")


def sum_counts(parts):
    """(labels, counts) of several (labels, counts) parts, each label's counts added up."""
    empty = np.zeros(0, np.uint64)
    return merge_counts(*(np.concatenate([empty] + [part[k] for part in parts]) for k in range(2)))
