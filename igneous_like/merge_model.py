"""The learned merge policy: edge features, training labels from ground truth, and the model file.

Features of an edge come from its mergeable statistics and its two regions' sizes, so they can
be recomputed exactly as regions merge. The trained scikit-learn random forest is stored as
plain arrays (an .npz, no pickle: a model file may come from anywhere) with the feature list
and a format version; prediction walks every tree at once in numpy, which is what lets the
merging loop re-score a region's edges after each merge quickly.
"""
import io
import json
from dataclasses import dataclass, fields
from typing import Optional, Tuple

import numpy as np

from igneous_like.region_graph import LEVELS, RegionGraph, csr_quantiles, histogram_pointers

FORMAT = "igneous_like.merge_model"
VERSION = 1
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
    """A random forest as flat node arrays; trees start at `roots`."""
    feature: np.ndarray  # int64 feature each node tests (0 at leaves)
    threshold: np.ndarray  # float64: go left where x[feature] <= threshold (+inf at leaves)
    left: np.ndarray  # int64 global node index (a leaf points at itself, so walks stop there)
    right: np.ndarray
    split_probability: np.ndarray  # float64: the leaf's fraction of "keep apart" samples
    roots: np.ndarray  # int64
    depth: int

    @classmethod
    def from_forest(cls, forest) -> "MergeModel":
        """Flatten a fitted sklearn RandomForestClassifier (classes 0 merge, 1 keep apart)."""
        parts, offset = [], 0
        column = list(forest.classes_).index(1) if 1 in forest.classes_ else None
        for estimator in forest.estimators_:
            tree = estimator.tree_
            value = tree.value[:, 0, :]
            probability = value[:, column] / value.sum(axis=1) if column is not None else np.zeros(len(value))
            leaf = tree.children_left < 0
            itself = np.arange(tree.node_count) + offset
            parts.append((np.where(leaf, 0, tree.feature), np.where(leaf, np.inf, tree.threshold),
                          np.where(leaf, itself, tree.children_left + offset),
                          np.where(leaf, itself, tree.children_right + offset), probability, offset))
            offset += tree.node_count
        join = lambda i, dtype: np.concatenate([np.asarray(p[i], dtype=dtype) for p in parts])
        return cls(join(0, np.int64), join(1, np.float64), join(2, np.int64), join(3, np.int64),
                   join(4, np.float64), np.array([p[5] for p in parts], np.int64),
                   max(e.tree_.max_depth for e in forest.estimators_))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The mean over trees of each sample's leaf probability of keeping apart."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        flat, base = x.ravel(), (np.arange(x.shape[0]) * x.shape[1])[None, :]
        node = np.repeat(self.roots[:, None], x.shape[0], axis=1)
        for _ in range(self.depth):
            goes_left = flat[base + self.feature[node]] <= self.threshold[node]
            node = np.where(goes_left, self.left[node], self.right[node])
        return self.split_probability[node].mean(axis=0)

    def priority(self, stats, edges: Optional[np.ndarray]) -> np.ndarray:
        """Merge priority of agglomeration.EdgeStats edges (all when None) from their current stats."""
        index = np.arange(stats.count.size) if edges is None else edges
        ptr, bins, counts = stats.histograms(edges) if edges is not None else (stats.ptr, stats.bins,
                                                                                 stats.counts)
        quantiles = np.stack([csr_quantiles(ptr, bins, counts, q) for q in QUANTILES], 1)
        x = features(stats.count[index], stats.total[index], stats.squares[index], stats.low[index],
                     stats.high[index], quantiles, stats.sizes[stats.u[index]], stats.sizes[stats.v[index]])
        return self.predict(x)

    def to_bytes(self) -> bytes:
        meta = {"format": FORMAT, "version": VERSION, "features": list(FEATURES),
                "quantiles": list(QUANTILES),
                "depth": self.depth}
        buffer = io.BytesIO()
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "depth"}
        np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "MergeModel":
        """Load a model file, refusing other formats, versions or feature definitions."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (ValueError, OSError, KeyError) as err:
            raise ValueError(f"not a merge model file ({err})") from None
        if meta.get("format") != FORMAT or meta.get("version") != VERSION or \
                tuple(meta.get("features", ())) != FEATURES:
            raise ValueError(f"a merge model of another format or version ({meta.get('format')} "
                             f"{meta.get('version')}); train it again with this version")
        return cls(depth=int(meta["depth"]), **arrays)


def train(x: np.ndarray, y: np.ndarray, trees: int = 100, depth: int = 16, seed: int = 0) -> MergeModel:
    """Fit a random forest on edge features and keep-apart labels."""
    from sklearn.ensemble import RandomForestClassifier
    if np.unique(y).size < 2:
        raise ValueError("training needs edges of both kinds (to merge and to keep apart)")
    forest = RandomForestClassifier(n_estimators=trees, max_depth=depth, min_samples_leaf=3,
                                    random_state=seed, n_jobs=1)
    forest.fit(x, y)
    return MergeModel.from_forest(forest)
