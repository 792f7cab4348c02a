"""Evaluation of a segmentation against ground truth: contingency tasks, then an exact sum and
the scores (igneous_like.evaluation)."""
import hashlib
from functools import partial
from typing import Dict, Sequence, Tuple

import numpy as np

from igneous_like.evaluation import merge_tables, scores
from igneous_like.stage import WorkDir, merged_as_they_come
from igneous_like.task_creation.agglomerate import (
    check_labels,
    check_same_bounds,
    task_grid,
)
from igneous_like.task_creation.common import Grid, Tasks, ints, open_layer
from igneous_like.tasks.evaluation import ContingencyTask, part_name

DEFAULT_SHAPE = (512, 512, 512)
PARAMS_FILE = "params.json"


def parts_dir(seg_path: str, gt_path: str, mip: int) -> Tuple[str, WorkDir]:
    """(segmentation path, SEG/KEY/evaluation/G): G names the ground truth, so evaluations
    against different ground truths keep apart."""
    seg = open_layer(seg_path, mip)
    gt = open_layer(gt_path, mip)
    digest = hashlib.sha1(f"{gt.cloudpath.rstrip('/')} {mip}".encode()).hexdigest()[:16]
    return seg.cloudpath, WorkDir.of(seg, mip, f"evaluation/{digest}")


def create_contingency_tasks(seg_path: str, gt_path: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                             fill_missing: bool = False) -> Tasks:
    """Tasks that count each box's overlaps of SEG and GT labels (0 included)."""
    seg, gt = open_layer(seg_path, mip), open_layer(gt_path, mip)
    check_labels(seg, "the segmentation")
    check_labels(gt, "the ground truth")
    check_same_bounds(seg, gt, mip)
    grid = task_grid(seg, mip, shape)
    _, work = parts_dir(seg_path, gt_path, mip)
    work.clean()
    work.save(PARAMS_FILE, {"segmentation": seg.cloudpath, "ground_truth": gt.cloudpath, "mip": mip,
                            **grid.to_json()})
    make = lambda box: partial(ContingencyTask, seg_path=seg.cloudpath, gt_path=gt.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), parts=work.url,
                               fill_missing=fill_missing)
    return Tasks(grid, make, f"contingency of {seg.cloudpath} and {gt.cloudpath} mip {mip}")


def accumulate_contingency(seg_path: str, gt_path: str, mip: int = 0,
                           clean: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole contingency table (seg ids, gt ids, voxels), summed exactly from every part."""
    seg, work = parts_dir(seg_path, gt_path, mip)
    params = work.require(PARAMS_FILE, f"no contingency parts for {seg} against {gt_path} mip {mip}: run the "
                                       "evaluation's tasks first")
    names = [part_name(box) for box in Grid.from_json(params)]
    tables = ((arrays["seg"], arrays["gt"], arrays["count"])
              for arrays in work.gather_arrays(names, "contingency tasks"))
    total = merged_as_they_come(tables, _sum, lambda table: table[0].size)
    if clean:
        work.clean()
    return total


def _sum(tables) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    empty = np.zeros(0, np.uint64)
    return merge_tables(*(np.concatenate([empty] + [t[i] for t in tables]) for i in range(3)))


def evaluation_scores(seg_path: str, gt_path: str, mip: int = 0, clean: bool = True) -> Dict[str, float]:
    """vi_split, vi_merge (bits) and ari, once every contingency task ran; deletes the parts."""
    return scores(*accumulate_contingency(seg_path, gt_path, mip, clean=clean))
