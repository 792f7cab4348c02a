"""Segmentation quality from a contingency table (pure numpy).

The table holds (segment id, ground-truth id, voxels) rows; blocks' tables add up exactly by
sorting. Every voxel counts, label 0 included (0 is a label like any other here; crop both
volumes, or relabel, to leave background out).

  vi_split  H(SEG | GT) in bits: how much a true object is split over segments
  vi_merge  H(GT | SEG) in bits: how much a segment mixes true objects
  ari       adjusted Rand index (Hubert and Arabie), 1 for identical partitions
"""
from typing import Dict, Tuple

import numpy as np


def contingency(seg: np.ndarray, gt: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seg ids, gt ids, voxels) of every pair of labels that overlap, sorted by (seg, gt)."""
    if seg.shape != gt.shape:
        raise ValueError(f"the segmentations' shapes differ: {seg.shape} and {gt.shape}")
    return merge_tables(seg.ravel().astype(np.uint64), gt.ravel().astype(np.uint64),
                        np.ones(seg.size, dtype=np.uint64))


def merge_tables(seg: np.ndarray, gt: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, ...]:
    """Sum the counts of equal (seg, gt) rows of concatenated tables."""
    order = np.lexsort((gt, seg))
    seg, gt, counts = seg[order], gt[order], counts[order].astype(np.uint64)
    if seg.size == 0:
        return seg, gt, counts
    starts = np.flatnonzero(np.r_[True, (seg[1:] != seg[:-1]) | (gt[1:] != gt[:-1])])
    return seg[starts], gt[starts], np.add.reduceat(counts, starts)


def _marginal(ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(ids, return_inverse=True)
    return np.bincount(inverse.ravel(), weights=counts.astype(np.float64))


def _entropy_sum(counts: np.ndarray) -> float:
    """sum n log2 n over the nonzero counts."""
    counts = counts[counts > 0].astype(np.float64)
    return float(np.sum(counts * np.log2(counts)))


def scores(seg: np.ndarray, gt: np.ndarray, counts: np.ndarray) -> Dict[str, float]:
    """VI split and merge (bits) and the adjusted Rand index of a contingency table."""
    n = float(np.sum(counts, dtype=np.float64))
    if n == 0:
        raise ValueError("the contingency table is empty")
    joint = _entropy_sum(counts)
    seg_sizes, gt_sizes = _marginal(seg, counts), _marginal(gt, counts)
    # H(S|G) = H(S,G) - H(G) = (sum_g n_g log n_g - sum_sg n_sg log n_sg) / n
    split = (_entropy_sum(gt_sizes) - joint) / n
    merge = (_entropy_sum(seg_sizes) - joint) / n
    pairs = lambda x: np.sum(x.astype(np.float64) * (x.astype(np.float64) - 1) / 2)
    index, seg_pairs, gt_pairs, total = pairs(counts), pairs(seg_sizes), pairs(gt_sizes), n * (n - 1) / 2
    expected = seg_pairs * gt_pairs / total if total else 0.0
    maximum = (seg_pairs + gt_pairs) / 2
    ari = 1.0 if maximum == expected else (index - expected) / (maximum - expected)
    return {"vi_split": max(split, 0.0), "vi_merge": max(merge, 0.0), "ari": float(ari)}
