"""Evaluation of a segmentation against ground truth: contingency tasks, then an exact sum and
the scores (igneous_like.evaluation)."""
import hashlib
from functools import partial
from typing import Dict, Sequence, Tuple

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume.lib import Bbox, Vec

from igneous_like.errors import UserError
from igneous_like.evaluation import merge_tables, scores
from igneous_like.stage import WorkDir
from igneous_like.task_creation.agglomerate import (
    check_labels,
    check_same_bounds,
    merged_as_they_come,
    task_grid,
)
from igneous_like.task_creation.common import Grid, Tasks, delete_directory, ints, open_layer
from igneous_like.tasks.evaluation import ContingencyTask, part_name

DEFAULT_SHAPE = (512, 512, 512)
PARAMS_FILE = "params.json"


def parts_dir(seg_path: str, gt_path: str, mip: int) -> Tuple[str, str]:
    """(segmentation path, SEG/KEY/evaluation/G): G names the ground truth, so evaluations
    against different ground truths keep apart."""
    seg = open_layer(seg_path, mip)
    gt = open_layer(gt_path, mip)
    digest = hashlib.sha1(f"{gt.cloudpath.rstrip('/')} {mip}".encode()).hexdigest()[:16]
    return seg.cloudpath, seg.meta.join(seg.cloudpath, seg.meta.key(mip), "evaluation", digest)


def create_contingency_tasks(seg_path: str, gt_path: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                             fill_missing: bool = False) -> Tasks:
    """Tasks that count each box's overlaps of SEG and GT labels (0 included)."""
    seg, gt = open_layer(seg_path, mip), open_layer(gt_path, mip)
    check_labels(seg, "the segmentation")
    check_labels(gt, "the ground truth")
    check_same_bounds(seg, gt, mip)
    grid, shape = task_grid(seg, mip, shape)
    _, parts = parts_dir(seg_path, gt_path, mip)
    files = CloudFiles(parts)
    delete_directory(parts)
    bounds = seg.meta.bounds(mip)
    files.put_json(PARAMS_FILE, {"segmentation": seg.cloudpath, "ground_truth": gt.cloudpath, "mip": mip,
                                 "offset": ints(bounds.minpt), "size": ints(bounds.size3()),
                                 "shape": ints(shape)})
    make = lambda box: partial(ContingencyTask, seg_path=seg.cloudpath, gt_path=gt.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), parts=parts,
                               fill_missing=fill_missing)
    return Tasks(grid, make, f"contingency of {seg.cloudpath} and {gt.cloudpath} mip {mip}")


def accumulate_contingency(seg_path: str, gt_path: str, mip: int = 0,
                           clean: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole contingency table (seg ids, gt ids, voxels), summed exactly from every part."""
    seg, parts = parts_dir(seg_path, gt_path, mip)
    files = CloudFiles(parts)
    params = files.get_json(PARAMS_FILE)
    if params is None:
        raise UserError(f"no contingency parts for {seg} against {gt_path} mip {mip}: run the evaluation's "
                        "tasks first")
    bounds = Bbox(params["offset"], Vec(*params["offset"]) + Vec(*params["size"]))
    names = [part_name(box) for box in Grid(bounds, Vec(*params["shape"]), bounds.minpt, bounds)]
    parts = ((arrays["seg"], arrays["gt"], arrays["count"])
             for arrays in WorkDir(files.cloudpath).gather_arrays(names, "contingency tasks"))
    total = merged_as_they_come(parts, _sum, lambda table: table[0].size)
    if clean:
        delete_directory(files.cloudpath)
    return total


def _sum(tables) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    empty = np.zeros(0, np.uint64)
    return merge_tables(*(np.concatenate([empty] + [t[i] for t in tables]) for i in range(3)))


def evaluation_scores(seg_path: str, gt_path: str, mip: int = 0, clean: bool = True) -> Dict[str, float]:
    """vi_split, vi_merge (bits) and ari, once every contingency task ran; deletes the parts."""
    return scores(*accumulate_contingency(seg_path, gt_path, mip, clean=clean))
