"""Post-processing of segmentations, pure numpy: global dust removal and hole filling.

Hole filling works on the connected components of the background (0 voxels, 6-connected, as
scipy.ndimage.binary_fill_holes sees them), labelled over the whole volume by the CCL
machinery. A background component is a hole of object L when it does not touch the volume's
edge, every voxel next to it (6-neighbours) that is not background belongs to L, and it has at
most `max_hole_size` voxels. Filling a hole only writes 0 voxels, so no object is ever
overwritten; each block contributes sizes, edge contacts and (component, neighbour label)
pairs that merge exactly, so the result does not depend on the task split.
"""
from typing import Sequence, Tuple

import fastremap
import numpy as np

from igneous_like.ccl import merge_counts, unique_pairs

_DIRECTIONS = [(axis, step) for axis in range(3) for step in (-1, 1)]


def remove_small(labels: np.ndarray, sizes: np.ndarray, min_size: int) -> np.ndarray:
    """Zero the labels whose whole-volume size (`sizes[i]` of the i-th distinct label of `labels`,
    sorted ascending) is below `min_size`."""
    present = fastremap.unique(labels)
    small = present[(sizes < np.uint64(min_size)) & (present != 0)]
    return fastremap.mask(labels, small.tolist(), in_place=False) if small.size else labels


def hole_survey(background: np.ndarray, neighbours: np.ndarray, on_edge: Sequence[Tuple[bool, bool]]):
    """What one block knows about the background components in it.

    background: the block's background component ids (0 where an object is). neighbours: the
    segmentation over the block plus one voxel on every side (0 beyond the volume). on_edge:
    per axis, whether the block's low and high faces lie on the volume's edge.
    Returns (ids, voxel counts), the ids touching the volume's edge, and the (id, label) pairs
    of components and the objects next to them.
    """
    ids, counts = fastremap.unique(background, return_counts=True)
    keep = ids != 0
    edge = []
    for axis, (low, high) in enumerate(on_edge):
        for side, flag in ((0, low), (-1, high)):
            if flag:
                edge.append(np.take(background, [side], axis=axis).ravel())
    edge_ids = np.unique(np.concatenate([np.zeros(0, background.dtype)] + edge))
    firsts, seconds = [], []
    inside = background != 0
    shape = background.shape
    for axis, step in _DIRECTIONS:
        index = tuple(slice(1 + (step if k == axis else 0), 1 + (step if k == axis else 0) + shape[k])
                      for k in range(3))
        beside = neighbours[index]
        touching = inside & (beside != 0)
        firsts.append(background[touching])
        seconds.append(beside[touching])
    pairs = unique_pairs(np.concatenate(firsts), np.concatenate(seconds))
    return (ids[keep].astype(np.uint64), counts[keep].astype(np.uint64)), edge_ids[edge_ids != 0], pairs


def plan_fills(sizes: Tuple[np.ndarray, np.ndarray], edge_ids: np.ndarray,
               pairs: Tuple[np.ndarray, np.ndarray], max_hole_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """(hole ids, the label that fills each) from every block's survey, merged: sizes summed,
    edge contacts and neighbour pairs united."""
    ids, counts = merge_counts(*sizes)
    first, second = unique_pairs(*pairs)
    candidates, neighbours = np.unique(first, return_counts=True)
    single = candidates[neighbours == 1]
    single = single[~np.isin(single, edge_ids)]
    small = np.isin(single, ids[counts <= np.uint64(max_hole_size)])
    holes = single[small]
    return holes, second[np.searchsorted(first, holes)]


def apply_fills(labels: np.ndarray, background: np.ndarray, ids: np.ndarray, fills: np.ndarray) -> np.ndarray:
    """The labels with each background component `ids[i]` set to `fills[i]` (0: left alone);
    only 0 voxels change."""
    out = np.array(labels, order="F")
    if not np.any(fills):
        return out
    lookup = dict(zip(ids.tolist(), fills.tolist()))
    present = fastremap.unique(background)
    mapping = {int(v): lookup.get(int(v), 0) for v in present}
    filled = fastremap.remap(background, mapping, preserve_missing_labels=True, in_place=False)
    hole = (filled != 0) & (out == 0)
    out[hole] = filled[hole].astype(out.dtype)
    return out
