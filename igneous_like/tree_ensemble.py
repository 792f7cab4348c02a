"""A fitted tree ensemble as plain arrays, in igneous_like's model file container
(igneous_like.model_file: an .npz of numbers with a JSON manifest, never a pickle).

scikit-learn's random forests and SAMME AdaBoost convert to the same arrays: each tree's
nodes as scikit-learn numbers them (children -1 at leaves). Prediction rebuilds scikit-learn's
Cython trees from the checked arrays, for their fast walk, and combines the leaves as
scikit-learn's predict_proba does, in the same order, so probabilities are equal bit for bit.
"""
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from igneous_like import model_file

KINDS = ("forest", "samme")
ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "value", "sizes", "depths", "weights")


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Trees one after another in flat node arrays; `sizes` says how many nodes each has."""
    kind: str  # forest: the mean of the leaves' class fractions; samme: AdaBoost's weighted vote
    classes: tuple  # class labels (JSON values) in scikit-learn's order
    n_features: int
    feature: np.ndarray  # int64: the feature a node tests
    threshold: np.ndarray  # float64: go left where x <= threshold
    missing_left: np.ndarray  # bool: whether a NaN goes left
    left: np.ndarray  # int64: child's index within its tree, -1 at leaves
    right: np.ndarray
    value: np.ndarray  # float64 nodes x classes: a node's class fractions
    sizes: np.ndarray  # int64: nodes per tree
    depths: np.ndarray  # int64: each tree's depth
    weights: np.ndarray  # float64: AdaBoost's estimator_weights_ as fitted (longer than the trees when
    # boosting stopped early); ones for a forest

    @classmethod
    def from_sklearn(cls, model) -> "TreeEnsemble":
        """Convert a fitted RandomForestClassifier or AdaBoostClassifier (SAMME) of decision trees."""
        kind = "samme" if hasattr(model, "estimator_weights_") else "forest"
        fitted = [estimator.tree_ for estimator in model.estimators_]
        if kind == "samme" and any(not np.array_equal(e.classes_, model.classes_) for e in model.estimators_):
            raise ValueError("an AdaBoost tree saw other classes than the ensemble")
        join = lambda name, dtype: np.concatenate([np.asarray(getattr(t, name), dtype) for t in fitted])
        weights = model.estimator_weights_ if kind == "samme" else np.ones(len(fitted))
        return cls(kind, tuple(np.asarray(model.classes_).tolist()), int(model.n_features_in_),
                   join("feature", np.int64), join("threshold", np.float64), join("missing_go_to_left", bool),
                   join("children_left", np.int64), join("children_right", np.int64),
                   np.concatenate([t.value[:, 0, :] for t in fitted]).astype(np.float64),
                   np.array([t.node_count for t in fitted], np.int64),
                   np.array([t.max_depth for t in fitted], np.int64), np.asarray(weights, np.float64))

    @cached_property
    def starts(self) -> np.ndarray:
        return np.cumsum(self.sizes) - self.sizes

    @cached_property
    def trees(self) -> list:
        """scikit-learn's Cython trees, rebuilt from the (checked) arrays: no pickle is involved."""
        from sklearn.tree._tree import NODE_DTYPE, Tree
        fields = {"left_child": self.left, "right_child": self.right, "feature": self.feature,
                  "threshold": self.threshold, "missing_go_to_left": self.missing_left}
        out = []
        for start, size, depth in zip(self.starts, self.sizes, self.depths):
            part = slice(start, start + size)
            nodes = np.zeros(size, NODE_DTYPE)
            for name, array in fields.items():
                nodes[name] = array[part]
            tree = Tree(self.n_features, np.array([len(self.classes)], np.intp), 1)
            tree.__setstate__({"max_depth": int(depth), "node_count": int(size), "nodes": nodes,
                               "values": np.ascontiguousarray(self.value[part, None, :])})
            out.append(tree)
        return out

    def predict_proba(self, x) -> np.ndarray:
        """samples x classes probabilities, as scikit-learn's predict_proba of the fitted model."""
        x = np.ascontiguousarray(x, dtype=np.float32)  # what scikit-learn's trees compare
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"the model takes {self.n_features} features, got an array of shape {x.shape}")
        leaves = (start + tree.apply(x) for start, tree in zip(self.starts, self.trees))
        k = len(self.classes)
        if self.kind == "forest":
            total = np.zeros((len(x), k))
            for leaf in leaves:
                total += self.value[leaf]
            return total / len(self.sizes)
        if k == 1:
            return np.ones((len(x), 1))
        votes = self.value.argmax(axis=1)  # a tree's class: ties to the first, as scikit-learn
        decision = sum(np.where(votes[leaf][:, None] == np.arange(k), weight, -1 / (k - 1) * weight)
                       for leaf, weight in zip(leaves, self.weights))
        decision /= self.weights.sum()
        if k == 2:  # SAMME's two-class margin
            margin = decision[:, 1] - decision[:, 0]
            decision = np.stack([-margin, margin], axis=1) / 2
        else:
            decision /= k - 1
        decision = np.exp(decision - decision.max(axis=1, keepdims=True))
        return decision / decision.sum(axis=1, keepdims=True)

    def to_bytes(self, fmt: str, version: int, manifest: dict) -> bytes:
        """The model file: these arrays, and a manifest of the caller's format, version and settings."""
        spec = {"kind": self.kind, "classes": list(self.classes), "n_features": self.n_features}
        return model_file.pack({name: getattr(self, name) for name in ARRAYS}, dict(manifest, ensemble=spec),
                               fmt, version)

    @classmethod
    def from_bytes(cls, data: bytes, fmt: str, version: int, what: str) -> tuple:
        """(ensemble, manifest) of a model file of `fmt` and `version`; ValueError for anything
        else, pickles and joblib files included (they are never unpickled)."""
        arrays, meta = model_file.unpack(data, fmt, version, what)
        return cls.from_arrays(arrays, meta, what), meta

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict, what: str) -> "TreeEnsemble":
        """The ensemble of an unpacked file, checked."""
        try:
            spec = meta["ensemble"]
            ensemble = cls(spec["kind"], tuple(spec["classes"]), int(spec["n_features"]), **arrays)
        except model_file.UNREADABLE as err:
            raise ValueError(f"not {what} file ({type(err).__name__}: {err}); train it again") from None
        ensemble.check(what)
        return ensemble

    def check(self, what: str) -> None:
        """Refuse arrays that scikit-learn's unchecked walk could follow out of a tree or in circles:
        a model file may be crafted. Children must lie inside their tree, after their parent."""
        if not (self.well_formed() and self.well_linked()):
            raise ValueError(f"{what} file with inconsistent tree arrays; train it again")

    def well_formed(self) -> bool:
        flat = [getattr(self, name) for name in ARRAYS if name != "value"]
        integers = (self.feature, self.left, self.right, self.sizes, self.depths)
        nodes, trees = len(self.value), len(self.sizes)
        return (self.kind in KINDS and trees > 0 and all(a.ndim == 1 for a in flat) and self.value.ndim == 2
                and self.value.shape[1] == len(self.classes) and self.missing_left.dtype == bool
                and all(a.dtype.kind == "f" for a in (self.threshold, self.value, self.weights))
                and all(a.dtype.kind in "iu" for a in integers) and all(len(a) == nodes for a in flat[:5])
                and len(self.depths) == trees and len(self.weights) >= trees
                and self.sizes.min() > 0 and self.sizes.sum() == nodes)

    def well_linked(self) -> bool:
        own = np.arange(len(self.value)) - np.repeat(self.starts, self.sizes)
        size = np.repeat(self.sizes, self.sizes)
        inner = self.left != -1
        return bool(np.array_equal(inner, self.right != -1)
                    and all(((c > own) & (c < size))[inner].all() for c in (self.left, self.right))
                    and ((self.feature >= 0) & (self.feature < self.n_features))[inner].all()
                    and ((self.depths >= 0) & (self.depths < self.sizes)).all())
