"""Voxel counts per label of a whole volume: count tasks, then one sum into a label table.

Read the result with igneous_like.label_table.read_voxel_counts.
"""
from functools import partial
from itertools import islice
from typing import Sequence

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume.lib import Bbox, Vec

from igneous_like import label_table
from igneous_like.ccl import merge_counts
from igneous_like.errors import UserError
from igneous_like.task_creation.common import Grid, Tasks, check_vec, delete_directory, ints, open_layer
from igneous_like.tasks.voxels import VoxelCountTask, part_name

DEFAULT_SHAPE = (512, 512, 512)
GRID_FILE = "grid.json"
BATCH = 256  # part files fetched per request batch
MERGE_ENTRIES = 1 << 22  # merge pending parts once they hold this many entries (or the total so far)


def create_voxel_counting_tasks(cloudpath: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                                fill_missing: bool = False) -> Tasks:
    """Tasks that count the voxels of every label (background 0 included) in boxes of `shape`.

    Counting with another shape than an earlier run deletes that run's parts first.
    """
    cv = open_layer(cloudpath, mip)
    if cv.num_channels != 1 or np.dtype(cv.dtype).kind not in "ub":
        raise UserError(f"voxel counts need one channel of unsigned integer labels; {cv.cloudpath} has "
                        f"{cv.num_channels} channel(s) of {cv.dtype}")
    size = cv.meta.volume_size(mip)
    shape = np.minimum(check_vec("--shape", shape), size)
    bounds = cv.meta.bounds(mip)
    grid = Grid(bounds, shape, bounds.minpt, bounds)
    parts = label_table.voxel_counts_url(cv, mip, parts=True)
    files = CloudFiles(parts)
    layout = {"offset": ints(bounds.minpt), "size": ints(size), "shape": ints(shape)}
    if files.get_json(GRID_FILE) not in (None, layout):
        delete_directory(parts)
    files.put_json(GRID_FILE, layout)
    make = lambda box: partial(VoxelCountTask, layer_path=cv.cloudpath, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), parts=parts, fill_missing=fill_missing)
    return Tasks(grid, make, f"count voxels of {cv.cloudpath} mip {mip}")


def accumulate_voxel_counts(cloudpath: str, mip: int = 0, clean: bool = False) -> int:
    """Add up every count task's part into LAYER/KEY/stats/voxel_counts.ltab; returns how many labels.

    Parts are merged as they arrive (array sorts, never a loop over labels), so memory stays near
    a few times the size of the result. `clean` deletes the parts afterwards.
    """
    cv = open_layer(cloudpath, mip)
    parts = label_table.voxel_counts_url(cv, mip, parts=True)
    files = CloudFiles(parts)
    layout = files.get_json(GRID_FILE)
    if layout is None:
        raise UserError(f"no voxel counts to sum for {cv.cloudpath} mip {mip}: run "
                        f"`igneous-like image voxels count {cv.cloudpath} --mip {mip}` first")
    bounds = Bbox(layout["offset"], Vec(*layout["offset"]) + Vec(*layout["size"]))
    names = (part_name(box) for box in Grid(bounds, Vec(*layout["shape"]), bounds.minpt, bounds))
    total_labels, total_counts = np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    pending, pending_size = [], 0
    while True:
        batch = list(islice(names, BATCH))
        contents = files.get(batch, return_dict=True) if batch else {}
        missing = [name for name in batch if contents.get(name) is None]
        if missing:
            raise UserError(f"{len(missing)} voxel count parts are missing (first {parts}/{missing[0]}); "
                            "run every count task first")
        for name in batch:
            pending.append(label_table.decode(contents[name]))
            pending_size += pending[-1][0].size
        if batch and pending_size < max(MERGE_ENTRIES, total_labels.size):
            continue
        pending.append((total_labels, total_counts))
        total_labels, total_counts = merge_counts(np.concatenate([p[0] for p in pending]),
                                                  np.concatenate([p[1] for p in pending]))
        pending, pending_size = [], 0
        if not batch:
            break
    label_table.write(label_table.voxel_counts_url(cv, mip), total_labels, total_counts)
    if clean:
        delete_directory(parts)
    return int(total_labels.size)
