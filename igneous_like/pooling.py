"""Supervoxel-pooled features: each voxel also gets the mean and standard deviation of chosen
features over the supervoxel it lies in, as the boosted synapse detectors pool over supervoxels.

A supervoxel crosses task boundaries, so its statistics need sums over the whole volume: tasks
write their supervoxels' sums (`partial_sums`), merge tasks each add up one range of supervoxel
ids (`in_range`, `merge_sums`) and turn them into means and deviations (`PoolTable.from_sums`),
one table per range, which tasks look up per voxel (`pooled`) from the ranges their box holds.

Exact under any task split: a float32 value is m * 2**(e - 24) with an integer m below 2**24,
so the sums are kept per (supervoxel, feature, exponent) as integers (m, and m*m split into two
24-bit halves), which add without rounding in any order. The merged integers are therefore the
same however the volume was cut, and so is the table computed from them in one fixed order.
Voxels of segment 0 (no supervoxel) pool over themselves alone: their own value, deviation 0.
"""
import hashlib
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

STATS = ("mean", "std")
MANTISSA = 24  # float32 significand bits
LOW = (1 << MANTISSA) - 1
EXPONENTS = 512  # frexp exponents of float32 lie in -148..128; offset by half of this in a key
COLUMNS = ("total", "square_high", "square_low")


def pooled_names(features: Sequence[str]) -> list:
    """The names of the pooled columns, per feature its mean then its deviation."""
    return [f"{name}_pool_{stat}" for name in features for stat in STATS]


def columns(names: Sequence[str], features: Sequence[str]) -> list:
    """Indices of `features` among the feature stack's `names`; ValueError naming the unknown."""
    unknown = [f for f in features if f not in names]
    if unknown or not features or len(set(features)) != len(features):
        raise ValueError(f"pooled features must be distinct feature names, some of {', '.join(names)}; "
                         f"got {', '.join(features) or 'none'}")
    return [list(names).index(f) for f in features]


def group_sums(segments: np.ndarray, feature: np.ndarray, exponent: np.ndarray,
               values: np.ndarray) -> Dict[str, np.ndarray]:
    """Integer `values` (rows x COLUMNS) summed per (segment, feature, exponent), rows sorted by them."""
    ids, dense = np.unique(segments, return_inverse=True)
    key = (dense.astype(np.int64) * (int(feature.max(initial=0)) + 1) + feature) * EXPONENTS + exponent
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, np.int64)
    first = order[starts]
    sums = np.add.reduceat(values[order], starts, axis=0) if key.size else values[:0]
    return {"segment": ids[dense[first]] if key.size else ids, "feature": feature[first],
            "exponent": exponent[first], **{name: sums[:, k] for k, name in enumerate(COLUMNS)}}


def segment_counts(segments: np.ndarray, counts: np.ndarray) -> Dict[str, np.ndarray]:
    """Voxel counts summed per segment id, ids sorted (integers, exact)."""
    ids, dense = np.unique(segments, return_inverse=True)
    total = np.zeros(ids.size, np.int64)
    np.add.at(total, dense, counts)
    return {"ids": ids, "counts": total}


def partial_sums(segments: np.ndarray, values: np.ndarray) -> Dict[str, np.ndarray]:
    """One task's exact sums: `segments` (voxels,) ids, `values` (voxels, features) float32.

    Per feature, voxels are binned by (supervoxel, exponent) with np.bincount, whose float64 sums
    of integers below 2**24 stay exact below 2**29 voxels per task.
    """
    segments = np.asarray(segments).ravel().astype(np.uint64)
    values = np.asarray(values, np.float32).reshape(segments.size, -1)
    if segments.size >= 1 << (53 - MANTISSA):
        raise ValueError(f"a task of {segments.size} voxels is too large for exact pooled sums; "
                         "use smaller tasks")
    inside = segments != 0
    values = values[inside]
    if not np.isfinite(values).all():
        raise ValueError("pooled features must be finite; the image holds NaN or infinite values")
    ids, dense = np.unique(segments[inside], return_inverse=True)
    fraction, exponents = np.frexp(values)
    rows = []
    for feature in range(values.shape[1]):
        exponent = exponents[:, feature].astype(np.int64) + EXPONENTS // 2
        present = np.flatnonzero(np.bincount(exponent, minlength=EXPONENTS))
        lookup = np.zeros(EXPONENTS, np.int64)
        lookup[present] = np.arange(present.size)
        key = dense.astype(np.int64) * present.size + lookup[exponent]
        used = None
        if ids.size * present.size > 4 * key.size:  # sparse: number the keys that occur
            used, key = np.unique(key, return_inverse=True)
        occupied = np.flatnonzero(np.bincount(key))
        mantissa = np.rint(np.ldexp(fraction[:, feature].astype(np.float64), MANTISSA)).astype(np.int64)
        square = mantissa * mantissa
        sums = [np.bincount(key, part.astype(np.float64))[occupied].astype(np.int64)
                for part in (mantissa, square >> MANTISSA, square & LOW)]
        segment, exponent_index = np.divmod(occupied if used is None else used[occupied], present.size)
        rows.append({"segment": ids[segment], "feature": np.full(segment.size, feature, np.int64),
                     "exponent": present[exponent_index], **dict(zip(COLUMNS, sums))})
    merged = {name: np.concatenate([row[name] for row in rows] or [np.zeros(0, np.int64)])
              for name in ("segment", "feature", "exponent") + COLUMNS}
    return dict(merged, ids=ids, counts=np.bincount(dense, minlength=ids.size).astype(np.int64))


def in_range(sums: Dict[str, np.ndarray], low: int, high: int) -> Dict[str, np.ndarray]:
    """The rows of (partial or merged) sums that belong to supervoxels low <= id < high."""
    low, high = np.uint64(low), np.uint64(high)
    rows = (sums["segment"] >= low) & (sums["segment"] < high)
    ids = (sums["ids"] >= low) & (sums["ids"] < high)
    return {name: values[ids] if name in ("ids", "counts") else values[rows] for name, values in sums.items()}


def merge_sums(parts: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Tasks' partial sums added up (exact integers, so in any order)."""
    join = lambda name, dtype: np.concatenate([np.asarray(p[name], dtype) for p in parts]
                                              or [np.zeros(0, dtype)])
    values = np.stack([join(name, np.int64) for name in COLUMNS], -1)
    sums = group_sums(join("segment", np.uint64), join("feature", np.int64), join("exponent", np.int64),
                      values)
    count = segment_counts(join("ids", np.uint64), join("counts", np.int64))
    return dict(sums, ids=count["ids"], counts=count["counts"])


@dataclass(frozen=True, eq=False)
class PoolTable:
    """Per supervoxel (ids sorted), the mean and deviation of each pooled feature."""
    ids: np.ndarray  # uint64
    mean: np.ndarray  # float32 (supervoxels, features)
    std: np.ndarray

    @classmethod
    def from_sums(cls, sums: Dict[str, np.ndarray], n_features: int) -> "PoolTable":
        """Means and deviations from merged sums, evaluated in one fixed order (rows sorted by key)."""
        ids, counts = sums["ids"], sums["counts"].astype(np.float64)
        row = np.searchsorted(ids, sums["segment"]) * n_features + sums["feature"]
        power = sums["exponent"] - EXPONENTS // 2 - MANTISSA
        square = (np.ldexp(sums["square_high"].astype(np.float64), MANTISSA)
                  + sums["square_low"].astype(np.float64))
        total = np.zeros(ids.size * n_features)
        squares = np.zeros(ids.size * n_features)
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]]) if row.size else np.zeros(0, np.int64)
        if row.size:
            total[row[starts]] = np.add.reduceat(np.ldexp(sums["total"].astype(np.float64), power), starts)
            squares[row[starts]] = np.add.reduceat(np.ldexp(square, 2 * power), starts)
        mean = total.reshape(ids.size, n_features) / counts[:, None]
        var = np.maximum(squares.reshape(ids.size, n_features) / counts[:, None] - mean * mean, 0)
        return cls(ids, mean.astype(np.float32), np.sqrt(var).astype(np.float32))

    def arrays(self) -> Dict[str, np.ndarray]:
        return {"ids": self.ids, "mean": self.mean, "std": self.std}

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> "PoolTable":
        return cls(arrays["ids"], arrays["mean"], arrays["std"])

    @classmethod
    def concatenate(cls, tables: Sequence["PoolTable"], n_features: int) -> "PoolTable":
        """One table of the tables of consecutive id ranges, in that order (ids stay sorted)."""
        tables = list(tables) or [cls(np.zeros(0, np.uint64), *2 * [np.zeros((0, n_features), np.float32)])]
        return cls(*(np.concatenate([getattr(t, name) for t in tables]) for name in ("ids", "mean", "std")))

    def digest(self) -> str:
        """sha256 of the table's values (a file's bytes would also hold the time it was zipped), so
        that a run that computes the same table again leaves it the same to every reader."""
        digest = hashlib.sha256(repr(self.mean.shape).encode())
        for array in (self.ids.astype("<u8"), self.mean.astype("<f4"), self.std.astype("<f4")):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def pooled(segments: np.ndarray, values: np.ndarray, table: PoolTable) -> np.ndarray:
    """float32 (voxels, 2 * features): per feature the mean and deviation over each voxel's
    supervoxel; segment 0 gives the voxel's own value and 0. ValueError for a supervoxel the
    table lacks (a table of another segmentation or image)."""
    segments = np.asarray(segments).ravel().astype(np.uint64)
    values = np.asarray(values, np.float32).reshape(segments.size, -1)
    inside = segments != 0
    index = np.searchsorted(table.ids, segments[inside])
    known = index < table.ids.size
    known[known] = table.ids[index[known]] == segments[inside][known]
    if not known.all():
        raise ValueError(f"supervoxel {int(segments[inside][~known][0])} is not in the pooled table; compute "
                         "the pooled sums of this image and segmentation again")
    out = np.zeros((segments.size, values.shape[1], len(STATS)), np.float32)
    out[:, :, 0] = values
    out[inside, :, 0] = table.mean[index]
    out[inside, :, 1] = table.std[index]
    return out.reshape(segments.size, -1)


def whole_table(segments: np.ndarray, values: np.ndarray) -> PoolTable:
    """The table of one array, as one task would make it."""
    values = np.asarray(values, np.float32).reshape(np.asarray(segments).size, -1)
    return PoolTable.from_sums(merge_sums([partial_sums(segments, values)]), values.shape[1])

