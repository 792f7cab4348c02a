"""Evaluation of a segmentation against ground truth: contingency tasks, then an exact sum and
the scores (igneous_like.evaluation), a per-object table, and optionally the best segmentation
reachable by merging the segmentation's pieces (the ceiling) written as a layer."""
import hashlib
from functools import partial
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from igneous_like import label_table
from igneous_like.errors import UserError
from igneous_like.evaluation import (
    best_reachable,
    merge_tables,
    object_errors,
    relabeled,
    scores,
    without_gt_zero,
)
from igneous_like.stage import WorkDir, merged_as_they_come
from igneous_like.tables import write_table
from igneous_like.task_creation.agglomerate import (
    check_labels,
    check_same_bounds,
    mapping_relabel_tasks,
    task_grid,
)
from igneous_like.task_creation.common import Grid, Tasks, ints, open_layer
from igneous_like.tasks.evaluation import ContingencyTask, part_name

DEFAULT_SHAPE = (512, 512, 512)
PARAMS_FILE = "params.json"
CEILING_TABLE = "ceiling.ltab"  # each segment's majority object, kept for create_ceiling_tasks


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


def scored_part(table, ignore_gt_zero: bool, gt_path: str):
    """The table's rows that count: all, or those of nonzero ground truth."""
    counted = without_gt_zero(*table) if ignore_gt_zero else table
    if counted[0].size == 0:
        raise UserError(f"the ground truth {gt_path} is 0 everywhere, so --ignore-gt-zero leaves no voxel "
                        "to score; drop --ignore-gt-zero or give a ground truth with objects")
    return counted


def threshold_sweep(seg_path: str, gt_path: str, thresholds: Sequence[float], policy: str = "mean",
                    quantile: float = 0.5, model: Optional[str] = None, mip: int = 0,
                    ignore_gt_zero: bool = False, plot: Optional[str] = None, features: Optional[str] = None,
                    channel: int = 0) -> Dict[str, Any]:
    """The scores of SEG's fragments agglomerated at each threshold (its region graph made, every
    contingency task run), each exact: the graph and the contingency table are read once, and
    each threshold's mapping relabels the table as `agglomerate relabel` would the voxels.
    `plot`: VI split against VI merge written there (.png or .html); `features` and `channel` as
    agglomerate_fragments takes them. Deletes the parts."""
    from igneous_like.agglomeration import agglomerate
    from igneous_like.task_creation.agglomerate import merge_policy, policy_graph
    chosen = merge_policy(policy, quantile, model, features, channel)
    graph = policy_graph(chosen, seg_path, mip)
    whole = accumulate_contingency(seg_path, gt_path, mip, clean=True)
    sweep = []
    for threshold in sorted(set(float(t) for t in thresholds)):
        fragments, segments = agglomerate(graph, chosen, threshold)
        counted = scored_part(relabeled(*whole, fragments, segments), ignore_gt_zero, gt_path)
        sweep.append({"threshold": threshold, "segments": int(np.count_nonzero(np.unique(counted[0]))),
                      **scores(*counted)})
    if plot is not None:
        from igneous_like import plots
        plots.write(plots.sweep(sweep), plot)
    ceiling = best_reachable(*scored_part(whole, ignore_gt_zero, gt_path))[2]
    return {"sweep": sweep, "ceiling": scores(*ceiling)}


def evaluation_scores(seg_path: str, gt_path: str, mip: int = 0, clean: bool = True,
                      ignore_gt_zero: bool = False, table: Optional[str] = None,
                      mapping: bool = False) -> Dict[str, Any]:
    """Every score of igneous_like.evaluation, and under "ceiling" those of the best segmentation
    reachable by merging SEG's segments, once every contingency task ran; deletes the parts.
    `table`: write the per-object table there (CSV or Parquet). `mapping`: keep each segment's
    majority object for create_ceiling_tasks (clean_evaluation_files deletes it)."""
    whole = accumulate_contingency(seg_path, gt_path, mip, clean=clean)
    counted = scored_part(whole, ignore_gt_zero, gt_path)
    fragments, truth, ceiling = best_reachable(*counted)
    if table is not None:
        import pandas as pd
        write_table(pd.DataFrame(object_errors(*counted)), table)
    if mapping:
        every = np.unique(whole[0])  # segments only on ground truth 0 (when ignored) get 0
        position = np.minimum(np.searchsorted(fragments, every), max(fragments.size - 1, 0))
        values = np.where(fragments[position] == every, truth[position], 0).astype(np.uint64)
        label_table.write(f"{parts_dir(seg_path, gt_path, mip)[1].url}/{CEILING_TABLE}", every, values)
    return {**scores(*counted), "ceiling": scores(*ceiling)}


def create_ceiling_tasks(seg_path: str, gt_path: str, dest: str, mip: int = 0,
                         shape: Sequence[int] = DEFAULT_SHAPE, encoding: Optional[str] = None,
                         compress: Optional[str] = "gzip", fill_missing: bool = False) -> Tasks:
    """Tasks that write the ceiling into DEST: each segment of SEG replaced by the ground-truth
    object it overlaps most (the mapping evaluation_scores kept with mapping=True)."""
    seg, gt = open_layer(seg_path, mip), open_layer(gt_path, mip)
    _, parts = parts_dir(seg_path, gt_path, mip)
    if not parts.files.exists(CEILING_TABLE):
        raise UserError(f"no best-segment mapping of {seg.cloudpath} against {gt.cloudpath} mip {mip}: run "
                        "`igneous-like evaluate SEG GT --ceiling DEST`")
    return mapping_relabel_tasks(seg, f"{parts.url}/{CEILING_TABLE}", dest, np.dtype(gt.dtype).name,
                                 {"task": "AgglomerationRelabelTask", "fragments": seg.cloudpath,
                                  "ground_truth": gt.cloudpath, "mip": mip, "ceiling": True},
                                 mip, shape, encoding, compress, fill_missing,
                                 f"best segmentation of {seg.cloudpath} against {gt.cloudpath}")


def clean_evaluation_files(seg_path: str, gt_path: str, mip: int = 0) -> int:
    """Delete the evaluation's files of SEG against GT; returns how many there were."""
    return parts_dir(seg_path, gt_path, mip)[1].clean()
