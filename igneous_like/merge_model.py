"""The learned merge policy: edge features, training labels from ground truth, and the model file.

Features of an edge come from its mergeable statistics and its two regions' sizes and coordinate
moments, so they can be recomputed exactly as regions merge. Two families:

  basic     per boundary channel: mean, std, min, max and the QUANTILES of the contacts' values;
            log contacts, log size of the smaller and of the larger region
  extended  basic, and per channel the fractions of contacts in HISTOGRAM_RANGES equal ranges of
            boundary value; contacts per voxel of the smaller and of the larger region and per
            size^(2/3) of the smaller (a surface scale); each region's principal extents (square
            roots of its coordinate covariance's eigenvalues, largest first); the distance of the
            two regions' centroids

"Smaller" orders the two regions by (size, coordinate sums), so it does not depend on which is
which. The trained scikit-learn random forest is stored as plain arrays
(igneous_like.tree_ensemble: no pickle, a model file may come from anywhere) with the family,
the channel count, the feature list and a format version.
"""
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from igneous_like.region_graph import (
    LEVELS,
    RegionGraph,
    channel_csr,
    csr_quantiles,
    histogram_pointers,
)
from igneous_like.tree_ensemble import TreeEnsemble

FORMAT = "igneous_like.merge_model"
VERSION = 2  # 1: its own arrays, before igneous_like.tree_ensemble
FAMILIES = ("basic", "extended")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
HISTOGRAM_RANGES = 8
BOUNDARY = ("mean", "std", "min", "max") + tuple(f"q{int(q * 100)}" for q in QUANTILES)
SIZES = ("log_contacts", "log_size_small", "log_size_large")
SHAPES = ("contacts_per_small", "contacts_per_large", "contacts_per_small_surface") + tuple(
    f"extent{axis}_{which}" for which in ("small", "large") for axis in range(3)) + ("centroid_distance",)


def feature_names(family: str = "basic", channels: int = 1) -> Tuple[str, ...]:
    """The feature columns of a family for a boundary map of `channels` channels (basic of one
    channel: the features of every model file before the families)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown feature family {family!r}; choose one of {', '.join(FAMILIES)}")
    prefix = (lambda c: "") if channels == 1 else (lambda c: f"c{c}_")
    names = [prefix(c) + name for c in range(channels) for name in BOUNDARY]
    if family == "extended":
        names += [f"{prefix(c)}h{i}" for c in range(channels) for i in range(HISTOGRAM_RANGES)]
    names += SIZES
    return tuple(names) + (SHAPES if family == "extended" else ())


FEATURES = feature_names()


def smaller_first(size_a, moments_a, size_b, moments_b) -> np.ndarray:
    """Whether region a orders before region b by (size, coordinate sums): a total order."""
    less, decided = np.zeros(len(size_a), bool), np.zeros(len(size_a), bool)
    for diff in [np.asarray(size_a) - size_b] + list((np.asarray(moments_a) - moments_b).T):
        less |= ~decided & (diff < 0)
        decided |= diff != 0
    return less | ~decided


def extents(size: np.ndarray, moments: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(centroids, principal extents largest first) of regions from their exact coordinate sums."""
    n = np.asarray(size, np.float64)[:, None]
    mean = moments[:, :3] / n
    second = moments[:, 3:] / n  # xx, yy, zz, xy, xz, yz
    cov = np.empty((len(n), 3, 3))
    for (i, j), column in zip(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)), range(6)):
        cov[:, i, j] = cov[:, j, i] = second[:, column] - mean[:, i] * mean[:, j]
    values = np.linalg.eigvalsh(cov) if len(n) else np.zeros((0, 3))
    return mean, np.sqrt(np.maximum(values[:, ::-1], 0.0))


def features(family: str, count, total, squares, low, high, histograms: Callable[[int], tuple],
             size_a, size_b, moments_a, moments_b) -> np.ndarray:
    """The feature_names(family, channels) matrix (edges x features): `total` .. `high` are
    (edges, channels) and histograms(channel) gives that channel's CSR (ptr, bins, counts)."""
    count = np.asarray(count, dtype=np.float64)
    columns, ranges = [], []
    for channel in range(np.shape(total)[1]):
        mean = np.asarray(total)[:, channel] / count
        variance = np.maximum(np.asarray(squares)[:, channel] / count - mean * mean, 0.0)
        columns += [mean / LEVELS, np.sqrt(variance) / LEVELS, np.asarray(low)[:, channel] / LEVELS,
                    np.asarray(high)[:, channel] / LEVELS]
        ptr, bins, counts = histograms(channel)
        columns += list(csr_quantiles(ptr, bins, counts, QUANTILES).T)
        if family == "extended":
            rows = np.repeat(np.arange(count.size), np.diff(ptr))
            coarse = np.asarray(bins, np.int64) * HISTOGRAM_RANGES // 256
            dense = np.bincount(rows * HISTOGRAM_RANGES + coarse, counts,
                                minlength=count.size * HISTOGRAM_RANGES)
            ranges += list((dense.reshape(-1, HISTOGRAM_RANGES) / count[:, None]).T)
    first = smaller_first(size_a, moments_a, size_b, moments_b)
    pick = lambda x, y: np.where(first.reshape((-1,) + (1,) * (np.ndim(x) - 1)), x, y)
    small, large = pick(size_a, size_b), pick(size_b, size_a)
    columns += ranges + [np.log1p(count), np.log1p(small), np.log1p(large)]
    if family == "extended":
        small_centre, small_extent = extents(small, pick(moments_a, moments_b))
        large_centre, large_extent = extents(large, pick(moments_b, moments_a))
        columns += [count / small, count / large, count / np.power(small, 2 / 3)]
        columns += list(small_extent.T) + list(large_extent.T)
        columns.append(np.sqrt(((small_centre - large_centre) ** 2).sum(axis=1)))
    return np.stack(columns, axis=1)


def graph_features(graph: RegionGraph, family: str = "basic") -> np.ndarray:
    """The features of every edge of a graph, before any merge."""
    ptr = histogram_pointers(graph)
    index = lambda ids: np.searchsorted(graph.nodes, ids)
    a, b = index(graph.a), index(graph.b)
    return features(family, graph.count, graph.total, graph.squares, graph.low, graph.high,
                    lambda c: channel_csr(ptr, graph.hist_bin, graph.hist_count, graph.channels, c),
                    graph.sizes[a], graph.sizes[b], graph.moments[a], graph.moments[b])


def stats_features(stats, edges: Optional[np.ndarray], family: str = "basic") -> np.ndarray:
    """The features of agglomeration.EdgeStats edges (all when None) as they are now."""
    index = slice(None) if edges is None else edges
    u, v = stats.u[index], stats.v[index]
    return features(family, stats.count[index], stats.total[index], stats.squares[index], stats.low[index],
                    stats.high[index], lambda c: stats.histograms(edges, c), stats.sizes[u], stats.sizes[v],
                    stats.moments[u], stats.moments[v])


def majority(fragments: np.ndarray, truth: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(fragment ids, the ground-truth id overlapping each most; ties to the lower id) from
    contingency rows (fragment, truth id, voxels)."""
    order = np.lexsort((truth, -counts.astype(np.int64), fragments))
    fragments, truth = fragments[order], truth[order]
    first = np.flatnonzero(np.r_[True, fragments[1:] != fragments[:-1]]) if fragments.size else order
    return fragments[first], truth[first]


def split_labels(graph: RegionGraph, fragments: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1 where an edge's fragments belong to different ground-truth objects (keep apart), else 0."""
    where = lambda ids: truth[np.searchsorted(fragments, ids)]
    return (where(graph.a) != where(graph.b)).astype(np.int64)


@dataclass(frozen=True)
class MergeModel:
    """The learned policy's random forest (class 1: keep apart) on a feature family's columns
    for a boundary map of `channels` channels."""
    forest: TreeEnsemble
    family: str = "basic"
    channels: int = 1

    @classmethod
    def from_forest(cls, forest, family: str = "basic", channels: int = 1) -> "MergeModel":
        """From a fitted sklearn RandomForestClassifier (classes 0 merge, 1 keep apart)."""
        return cls(TreeEnsemble.from_sklearn(forest), family, channels)

    @property
    def num_features(self) -> int:
        return len(feature_names(self.family, self.channels))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The forest's probability of keeping each sample's two regions apart."""
        classes = list(self.forest.classes)
        if 1 not in classes:
            return np.zeros(len(x))
        return self.forest.predict_proba(x)[:, classes.index(1)]

    def priority(self, stats, edges: Optional[np.ndarray]) -> np.ndarray:
        """Merge priority of agglomeration.EdgeStats edges (all when None) from their current stats."""
        return self.predict(stats_features(stats, edges, self.family))

    def to_bytes(self) -> bytes:
        manifest = {"features": list(feature_names(self.family, self.channels)), "quantiles": list(QUANTILES),
                    "family": self.family, "channels": self.channels}
        return self.forest.to_bytes(FORMAT, VERSION, manifest)

    @classmethod
    def from_bytes(cls, data: bytes) -> "MergeModel":
        """Load a model file, refusing other formats, versions or feature definitions (a file
        without a family is basic of one channel, as before the families)."""
        forest, meta = TreeEnsemble.from_bytes(data, FORMAT, VERSION, "a merge model")
        family, channels = meta.get("family", "basic"), meta.get("channels", 1)
        if family not in FAMILIES or not isinstance(channels, int) or channels < 1 or \
                tuple(meta.get("features", ())) != feature_names(family, channels) or forest.kind != "forest":
            raise ValueError("a merge model of other features; train it again with this version")
        return cls(forest, family, channels)


def train(x: np.ndarray, y: np.ndarray, trees: int = 100, depth: int = 16, seed: int = 0,
          family: str = "basic", channels: int = 1) -> MergeModel:
    """Fit a random forest on edge features (of `family` and `channels`) and keep-apart labels."""
    from sklearn.ensemble import RandomForestClassifier
    if np.unique(y).size < 2:
        raise ValueError("training needs edges of both kinds (to merge and to keep apart)")
    forest = RandomForestClassifier(n_estimators=trees, max_depth=depth, min_samples_leaf=3,
                                    random_state=seed, n_jobs=1)
    forest.fit(x, y)
    return MergeModel.from_forest(forest, family, channels)
