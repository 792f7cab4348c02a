"""The learned merge policy: edge features, training labels from ground truth, and the model file.

Features of an edge come from its mergeable statistics and its two regions' sizes, so they can
be recomputed exactly as regions merge. The trained scikit-learn random forest is stored as
plain arrays (igneous_like.tree_ensemble: no pickle, a model file may come from anywhere) with
the feature list and a format version.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from igneous_like.agglomeration import edge_arrays
from igneous_like.region_graph import LEVELS, RegionGraph, csr_quantiles, histogram_pointers
from igneous_like.tree_ensemble import TreeEnsemble

FORMAT = "igneous_like.merge_model"
VERSION = 2  # 1: its own arrays, before igneous_like.tree_ensemble
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
FEATURES = ("mean", "std", "min", "max") + tuple(f"q{int(q * 100)}" for q in QUANTILES) + (
    "log_contacts", "log_size_small", "log_size_large")


def features(count, total, squares, low, high, quantiles: np.ndarray, size_a, size_b) -> np.ndarray:
    """The FEATURES matrix (edges x features); `quantiles` holds QUANTILES per edge, in 0..1."""
    count = np.asarray(count, dtype=np.float64)
    mean = np.asarray(total) / count
    variance = np.maximum(np.asarray(squares) / count - mean * mean, 0.0)
    small, large = np.minimum(size_a, size_b), np.maximum(size_a, size_b)
    columns = [mean / LEVELS, np.sqrt(variance) / LEVELS, np.asarray(low) / LEVELS, np.asarray(high) / LEVELS]
    columns += list(np.asarray(quantiles, dtype=np.float64).reshape(-1, len(QUANTILES)).T)
    columns += [np.log1p(count), np.log1p(small), np.log1p(large)]
    return np.stack(columns, axis=1)


def graph_features(graph: RegionGraph) -> np.ndarray:
    """The features of every edge of a graph, before any merge."""
    ptr = histogram_pointers(graph)
    quantiles = np.stack([csr_quantiles(ptr, graph.hist_bin, graph.hist_count, q) for q in QUANTILES], 1)
    index = lambda ids: np.searchsorted(graph.nodes, ids)
    return features(graph.count, graph.total, graph.squares, graph.low, graph.high, quantiles,
                    graph.sizes[index(graph.a)], graph.sizes[index(graph.b)])


def stats_features(stats, edges: Optional[np.ndarray]) -> np.ndarray:
    """The features of agglomeration.EdgeStats edges (all when None) as they are now."""
    arrays = edge_arrays(stats, edges)
    histograms = arrays["hist_ptr"], arrays["hist_bin"], arrays["hist_count"]
    quantiles = np.stack([csr_quantiles(*histograms, q) for q in QUANTILES], 1)
    return features(arrays["count"], arrays["total"], arrays["squares"], arrays["low"], arrays["high"],
                    quantiles, arrays["size_a"], arrays["size_b"])


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
    """The learned policy's random forest (class 1: keep apart)."""
    forest: TreeEnsemble

    @classmethod
    def from_forest(cls, forest) -> "MergeModel":
        """From a fitted sklearn RandomForestClassifier (classes 0 merge, 1 keep apart)."""
        return cls(TreeEnsemble.from_sklearn(forest))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The forest's probability of keeping each sample's two regions apart."""
        classes = list(self.forest.classes)
        if 1 not in classes:
            return np.zeros(len(x))
        return self.forest.predict_proba(x)[:, classes.index(1)]

    def priority(self, stats, edges: Optional[np.ndarray]) -> np.ndarray:
        """Merge priority of agglomeration.EdgeStats edges (all when None) from their current stats."""
        return self.predict(stats_features(stats, edges))

    def to_bytes(self) -> bytes:
        manifest = {"features": list(FEATURES), "quantiles": list(QUANTILES)}
        return self.forest.to_bytes(FORMAT, VERSION, manifest)

    @classmethod
    def from_bytes(cls, data: bytes) -> "MergeModel":
        """Load a model file, refusing other formats, versions or feature definitions."""
        forest, meta = TreeEnsemble.from_bytes(data, FORMAT, VERSION, "a merge model")
        if tuple(meta.get("features", ())) != FEATURES or forest.kind != "forest":
            raise ValueError("a merge model of other features; train it again with this version")
        return cls(forest)


def train(x: np.ndarray, y: np.ndarray, trees: int = 100, depth: int = 16, seed: int = 0) -> MergeModel:
    """Fit a random forest on edge features and keep-apart labels."""
    from sklearn.ensemble import RandomForestClassifier
    if np.unique(y).size < 2:
        raise ValueError("training needs edges of both kinds (to merge and to keep apart)")
    forest = RandomForestClassifier(n_estimators=trees, max_depth=depth, min_samples_leaf=3,
                                    random_state=seed, n_jobs=1)
    forest.fit(x, y)
    return MergeModel.from_forest(forest)
