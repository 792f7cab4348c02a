"""Voxel counting: each task counts the labels of one box into a label table.

Per-task tables live under LAYER/KEY/stats/voxel_counts/, one per box (X0-X1_Y0-Y1_Z0-Z1.ltab);
`image voxels sum` adds them into LAYER/KEY/stats/voxel_counts.ltab (see igneous_like.label_table).
"""
from typing import Sequence

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox
from taskqueue import queueable

from igneous_like import label_table
from igneous_like.ccl import merge_counts
from igneous_like.grid import TaskBox
from igneous_like.layers import chunk_parts


def part_name(box: Bbox) -> str:
    return f"{box.to_filename()}.ltab"


def count_voxels(image: np.ndarray):
    """(sorted distinct labels, uint64 voxel counts) of an array, background included."""
    import fastremap
    labels, counts = fastremap.unique(image, return_counts=True)
    return labels.astype(np.uint64), counts.astype(np.uint64)


@queueable
def VoxelCountTask(layer_path: str, mip: int, offset: Sequence[int], shape: Sequence[int], parts: str,
                   fill_missing: bool = False) -> None:
    """Count the voxels of each label in one box, chunk by chunk; write the counts as the box's part
    under `parts`."""
    cv = CloudVolume(layer_path, mip=mip, fill_missing=fill_missing, progress=False)
    box = TaskBox.at(offset, shape).write
    labels, counts = zip(*(count_voxels(part) for part in chunk_parts(cv, box, mip)))
    labels, counts = merge_counts(np.concatenate(labels), np.concatenate(counts))
    label_table.write(f"{parts}/{part_name(box)}", labels, counts)
