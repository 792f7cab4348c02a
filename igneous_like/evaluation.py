"""Segmentation quality from a contingency table (pure numpy).

The table holds one (segment id, ground-truth id, voxels) row per overlapping pair of labels;
blocks' tables add up exactly by sorting, so every score below is exact under any task split.
Every voxel counts, label 0 included (0 is a label like any other), unless the table is first
cut to nonzero ground truth (without_gt_zero, the connectomics-challenge convention).

  vi_split, vi_merge   H(SEG | GT) and H(GT | SEG) in bits: how much a true object is split over
                       segments, and how much a segment mixes true objects
  rand, ari            Rand index (the fraction of voxel pairs on which both agree: together in
                       both or apart in both) and its chance-adjusted form (Hubert and Arabie)
  fowlkes_mallows      pairs together in both / sqrt(pairs together in SEG * pairs together in GT)
  adapted_rand_error   1 - the harmonic mean of those two pair precisions (SNEMI3D's score)
  splits_needed        sum over segments of (ground-truth objects it overlaps - 1): the cuts a
                       proofreader makes to undo merge errors
  merges_needed        sum over ground-truth objects of (segments overlapping it - 1): the joins
                       that undo split errors; edit_distance is their sum
"""
from typing import Dict, Tuple

import numpy as np

from igneous_like.merge_model import majority

Table = Tuple[np.ndarray, np.ndarray, np.ndarray]


def contingency(seg: np.ndarray, gt: np.ndarray) -> Table:
    """(seg ids, gt ids, voxels) of every pair of labels that overlap, sorted by (seg, gt)."""
    if seg.shape != gt.shape:
        raise ValueError(f"the segmentations' shapes differ: {seg.shape} and {gt.shape}")
    return merge_tables(seg.ravel().astype(np.uint64), gt.ravel().astype(np.uint64),
                        np.ones(seg.size, dtype=np.uint64))


def merge_tables(seg: np.ndarray, gt: np.ndarray, counts: np.ndarray) -> Table:
    """Sum the counts of equal (seg, gt) rows of concatenated tables."""
    order = np.lexsort((gt, seg))
    seg, gt, counts = seg[order], gt[order], counts[order].astype(np.uint64)
    if seg.size == 0:
        return seg, gt, counts
    starts = np.flatnonzero(np.r_[True, (seg[1:] != seg[:-1]) | (gt[1:] != gt[:-1])])
    return seg[starts], gt[starts], np.add.reduceat(counts, starts)


def without_gt_zero(seg: np.ndarray, gt: np.ndarray, counts: np.ndarray) -> Table:
    """The table of the voxels whose ground truth is not 0."""
    keep = gt != 0
    return seg[keep], gt[keep], counts[keep]


def _marginal(ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(ids, return_inverse=True)
    return np.bincount(inverse.ravel(), weights=counts.astype(np.float64))


def _entropy_sum(counts: np.ndarray) -> float:
    """sum n log2 n over the nonzero counts."""
    counts = counts[counts > 0].astype(np.float64)
    return float(np.sum(counts * np.log2(counts)))


def _pairs(sizes: np.ndarray) -> float:
    sizes = sizes.astype(np.float64)
    return float(np.sum(sizes * (sizes - 1) / 2))


def pair_scores(n: float, together: float, seg_pairs: float, gt_pairs: float) -> Dict[str, float]:
    """The pair-counting scores from the number of voxel pairs together in both segmentations,
    in SEG and in GT (float64 sums, to about 16 significant digits)."""
    total = n * (n - 1) / 2
    rand = 1.0 if total == 0 else (total + 2 * together - seg_pairs - gt_pairs) / total
    expected = seg_pairs * gt_pairs / total if total else 0.0
    maximum = (seg_pairs + gt_pairs) / 2
    ari = 1.0 if maximum == expected else (together - expected) / (maximum - expected)
    fowlkes_mallows = np.sqrt(together / seg_pairs) * np.sqrt(together / gt_pairs) if together else 0.0
    error = 1 - together / maximum if maximum else 0.0
    return {"rand": float(rand), "ari": float(ari), "fowlkes_mallows": float(fowlkes_mallows),
            "adapted_rand_error": float(error)}


def edits(seg: np.ndarray, gt: np.ndarray, counts: np.ndarray) -> Dict[str, int]:
    """Split/merge edit distance of a table of distinct (seg, gt) rows (see the module)."""
    seg, gt = seg[counts > 0], gt[counts > 0]
    splits, merges = seg.size - np.unique(seg).size, gt.size - np.unique(gt).size
    return {"splits_needed": int(splits), "merges_needed": int(merges), "edit_distance": int(splits + merges)}


def scores(seg: np.ndarray, gt: np.ndarray, counts: np.ndarray) -> Dict[str, float]:
    """Every score of the module from a table of distinct (seg, gt) rows (as merge_tables makes)."""
    n = float(np.sum(counts, dtype=np.float64))
    if n == 0:
        raise ValueError("the contingency table is empty")
    joint = _entropy_sum(counts)
    seg_sizes, gt_sizes = _marginal(seg, counts), _marginal(gt, counts)
    # H(S|G) = H(S,G) - H(G) = (sum_g n_g log n_g - sum_sg n_sg log n_sg) / n
    split = (_entropy_sum(gt_sizes) - joint) / n
    merge = (_entropy_sum(seg_sizes) - joint) / n
    return {"vi_split": max(split, 0.0), "vi_merge": max(merge, 0.0),
            **pair_scores(n, _pairs(counts), _pairs(seg_sizes), _pairs(gt_sizes)), **edits(seg, gt, counts)}


def object_errors(seg: np.ndarray, gt: np.ndarray, counts: np.ndarray) -> Dict[str, np.ndarray]:
    """Per ground-truth object and per segment of a nonempty table: its voxels, how many labels of
    the other side it overlaps (pieces) and its share of VI in bits (a true object's share of
    vi_split, a segment's of vi_merge; the shares add up to them), sorted worst first (vi, pieces)."""
    n = float(np.sum(counts, dtype=np.float64))
    sides = [_one_side(ids, counts, n) for ids in (gt, seg)]
    kind = np.repeat([0, 1], [side["label"].size for side in sides])
    rows = {key: np.concatenate([side[key] for side in sides]) for key in sides[0]}
    order = np.lexsort((rows["label"], kind, -rows["pieces"], -rows["vi"]))
    return {"kind": np.array(["ground truth", "segment"])[kind[order]],
            **{key: column[order] for key, column in rows.items()}}


def _one_side(ids: np.ndarray, counts: np.ndarray, n: float) -> Dict[str, np.ndarray]:
    """For each label i of `ids`: n_i, its rows and -(1/n) sum_j n_ij log2(n_ij / n_i)."""
    order = np.argsort(ids, kind="stable")
    ids, counts = ids[order], counts[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    sizes, pieces = np.add.reduceat(counts, starts), np.diff(np.r_[starts, ids.size])
    vi = -np.add.reduceat(counts * np.log2(counts / np.repeat(sizes, pieces)), starts) / n
    return {"label": ids[starts], "voxels": sizes.astype(np.uint64), "pieces": pieces,
            "vi": np.maximum(vi, 0.0)}


def best_reachable(seg: np.ndarray, gt: np.ndarray,
                   counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Table]:
    """The ceiling of any agglomeration of SEG's segments (fragments): each fragment given to the
    ground-truth object it overlaps most. Returns (fragments, their object, the table of the
    segmentation so made)."""
    fragments, truth = majority(seg, gt, counts)
    mapped = truth[np.searchsorted(fragments, seg)]
    return fragments, truth, merge_tables(mapped, gt, counts)


def relabeled(seg: np.ndarray, gt: np.ndarray, counts: np.ndarray, fragments: np.ndarray,
              segments: np.ndarray) -> Table:
    """The table of SEG's labels replaced by a mapping (FRAGMENTS sorted -> SEGMENTS; labels it
    lacks keep theirs), as relabeling the voxels and counting again would give."""
    if fragments.size == 0:
        return seg, gt, counts
    position = np.minimum(np.searchsorted(fragments, seg), fragments.size - 1)
    mapped = np.where(fragments[position] == seg, segments[position], seg).astype(seg.dtype)
    return merge_tables(mapped, gt, counts)
