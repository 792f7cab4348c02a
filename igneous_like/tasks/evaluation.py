"""Evaluation tasks: each counts the overlaps of a segmentation and ground truth in one box.

Parts live under SEG/KEY/evaluation/G/ (G: a digest of the ground truth's path and mip):
params.json, and BOX.npz holding the box's contingency rows (seg, gt, count). The sum step
adds them up exactly and deletes them.
"""
from typing import Sequence

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox
from taskqueue import queueable

from igneous_like.evaluation import contingency
from igneous_like.grid import TaskBox
from igneous_like.stage import WorkDir
from igneous_like.tasks.agglomerate import read_box


def part_name(box: Bbox) -> str:
    return f"{box.to_filename()}.npz"


@queueable
def ContingencyTask(seg_path: str, gt_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                    parts: str, fill_missing: bool = False) -> None:
    """The contingency rows of one box."""
    box = TaskBox.at(offset, shape).write
    seg = read_box(CloudVolume(seg_path, mip=mip, fill_missing=fill_missing, progress=False), box, mip)
    gt = read_box(CloudVolume(gt_path, mip=mip, fill_missing=fill_missing, progress=False), box, mip)
    seg_ids, gt_ids, counts = contingency(seg, gt)
    WorkDir(parts).put_arrays(part_name(box), seg=seg_ids, gt=gt_ids, count=counts.astype(np.uint64))
