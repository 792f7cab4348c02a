"""A voxel classifier trained from sparse annotations: labels, fitting, the model file, prediction.

Annotations: 255 marks a positive voxel (e.g. a synaptic cleft), 0 a negative one, any other
value is ignored. The model file holds the fitted trees as plain arrays (igneous_like.tree_ensemble:
no pickle, so a file named by a queue message cannot run code) together with the feature
settings they were trained with (scales, resolution, feature names, image dtype), so a
prediction recomputes exactly the training features or refuses to run. A model trained with
supervoxel-pooled features (igneous_like.pooling) names the pooled ones, and predicting with it
needs the pooled table of the same supervoxels.
"""
import hashlib
from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

from igneous_like import __version__, pooling
from igneous_like.features import FeatureSettings, feature_stack
from igneous_like.tree_ensemble import TreeEnsemble

POSITIVE, NEGATIVE = 255, 0
METHODS = ("adaboost", "random-forest")
MODEL_VERSION = 2  # 1: a joblib pickle, no longer read
FORMAT = "igneous_like.voxel_classifier"


def training_labels(annotations: np.ndarray, erode: int = 0, dilate: int = 0) -> np.ndarray:
    """int8 per voxel: 1 positive, 0 negative, -1 ignored.

    `erode` shrinks the positives by that many voxels (6-connected steps) and ignores what it
    removes, for annotations drawn too generously; `dilate` then grows them, over anything,
    for annotations drawn too thin.
    """
    if erode < 0 or dilate < 0:
        raise ValueError(f"erode and dilate are voxel counts, at least 0; got {erode} and {dilate}")
    positive = annotations == POSITIVE
    labels = np.full(annotations.shape, -1, dtype=np.int8)
    labels[annotations == NEGATIVE] = 0
    if erode:
        labels[positive] = -1
        positive = ndimage.binary_erosion(positive, iterations=erode)
    if dilate:
        positive = ndimage.binary_dilation(positive, iterations=dilate)
    labels[positive] = 1
    return labels


def sample(labels: np.ndarray, max_samples: Optional[int], seed: int = 0) -> np.ndarray:
    """Flat indices of the labeled voxels, at most `max_samples` of them, drawn with a fixed seed."""
    chosen = np.flatnonzero(labels.ravel() >= 0)
    if max_samples is not None and chosen.size > max_samples:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, max_samples, replace=False))
    return chosen


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Sample weights that give both classes the same total weight (clefts are rare)."""
    counts = np.bincount(y, minlength=2).astype(np.float64)
    return (y.size / (2 * counts))[y]


def make_estimator(method: str, n_estimators: int, seed: int = 0):
    """AdaBoost of depth-1 decision stumps, or a random forest."""
    from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    if n_estimators < 1:
        raise ValueError(f"n_estimators must be at least 1, got {n_estimators}")
    if method == "adaboost":
        return AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=n_estimators,
                                  random_state=seed)
    if method == "random-forest":
        return RandomForestClassifier(n_estimators=n_estimators, min_samples_leaf=5, random_state=seed,
                                      n_jobs=1)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


@dataclass
class Model:
    """Fitted trees and everything needed to compute their features again."""
    settings: FeatureSettings
    ensemble: TreeEnsemble  # classes 0 (negative) and 1 (positive)
    method: str
    dtype: str  # the image dtype it was trained on
    training: dict = field(default_factory=dict)  # what it was trained on, for the record
    pooled: Tuple[str, ...] = ()  # features also pooled over supervoxels (none: no pooling)

    def feature_names(self) -> list:
        return self.settings.names() + pooling.pooled_names(self.pooled)

    def to_bytes(self) -> bytes:
        pool = {"features": list(self.pooled), "stats": list(pooling.STATS)} if self.pooled else None
        return self.ensemble.to_bytes(FORMAT, MODEL_VERSION, {
            "features": self.settings.to_json(), "method": self.method, "dtype": self.dtype, "pool": pool,
            "training": dict(self.training, igneous_like=__version__)})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Model":
        ensemble, meta = TreeEnsemble.from_bytes(data, FORMAT, MODEL_VERSION, "a voxel classifier model")
        try:
            settings = FeatureSettings.from_json(meta["features"])
            dtype = np.dtype(meta["dtype"]).name
            pool = meta.get("pool") or {"features": [], "stats": list(pooling.STATS)}
            pooled = tuple(pool["features"])
            if pooled:
                pooling.columns(settings.names(), pooled)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"a voxel classifier model without valid settings ({err}); "
                             "train it again") from None
        model = cls(settings, ensemble, meta.get("method"), dtype, meta.get("training", {}), pooled)
        if (ensemble.classes != (0, 1) or model.method not in METHODS or tuple(pool["stats"]) != pooling.STATS
                or ensemble.n_features != len(model.feature_names())):
            raise ValueError("a voxel classifier model of other classes, method or features; train it again")
        return model


@dataclass
class Pooling:
    """What pooled features need: which features, the supervoxel ids of the voxels in the crop,
    and the whole volume's table of their statistics."""
    features: Tuple[str, ...]
    segments: np.ndarray
    table: pooling.PoolTable


def stack(image: np.ndarray, settings: FeatureSettings, crop: Optional[Tuple[slice, ...]] = None,
          pool: Optional[Pooling] = None) -> np.ndarray:
    """float32 (x, y, z, features) of the voxels in crop: the feature stack, then the pooled features."""
    features = feature_stack(image, settings, crop)
    if pool is None:
        return features
    if pool.segments.shape != features.shape[:3]:
        raise ValueError(f"supervoxels of shape {pool.segments.shape} for features of {features.shape[:3]}")
    chosen = features[..., pooling.columns(settings.names(), pool.features)]
    pooled = pooling.pooled(pool.segments, chosen, pool.table).reshape(features.shape[:3] + (-1,))
    return np.concatenate([features, pooled], axis=-1)


def digest(data: bytes) -> str:
    """The model file's sha256, so every task of a run uses the same model."""
    return hashlib.sha256(data).hexdigest()


def fit(image: np.ndarray, labels: np.ndarray, settings: FeatureSettings, method: str, n_estimators: int,
        crop: Optional[Tuple[slice, ...]] = None, max_samples: Optional[int] = None,
        seed: int = 0, pool: Optional[Pooling] = None) -> Model:
    """Train on the labeled voxels of `labels`, which covers `crop` of `image` (all of it by default),
    with pooled features too where `pool` is given."""
    chosen = sample(labels, max_samples, seed)
    y = (labels.ravel()[chosen] == 1).astype(np.int64)
    if y.min(initial=1) == 1 or y.max(initial=0) == 0:
        raise ValueError(f"training needs positive ({POSITIVE}) and negative ({NEGATIVE}) voxels; "
                         f"the annotations hold {int(y.sum())} positive and {int((y == 0).sum())} negative")
    features = stack(image, settings, crop, pool)
    features = features.reshape(-1, features.shape[-1])[chosen]
    estimator = make_estimator(method, n_estimators, seed)
    estimator.fit(features, y, sample_weight=balanced_weights(y))
    return Model(settings, TreeEnsemble.from_sklearn(estimator), method, np.dtype(image.dtype).name,
                 pooled=pool.features if pool else ())


def predict(model: Model, image: np.ndarray, crop: Optional[Tuple[slice, ...]] = None,
            pool: Optional[Pooling] = None) -> np.ndarray:
    """float32 probability of the positive class for the voxels in `crop` of `image`; a model
    trained with pooled features needs `pool` of the same features."""
    if (pool.features if pool else ()) != model.pooled:
        raise ValueError(f"the model was trained with pooled features {list(model.pooled)}; "
                         f"got {list(pool.features) if pool else []}")
    features = stack(image, model.settings, crop, pool)
    flat = features.reshape(-1, features.shape[-1])
    return model.ensemble.predict_proba(flat)[:, 1].astype(np.float32).reshape(features.shape[:3])


def to_uint8(probability: np.ndarray) -> np.ndarray:
    """Probabilities 0..1 as 0..255, rounded to nearest."""
    return np.rint(np.clip(probability, 0, 1) * 255).astype(np.uint8)
