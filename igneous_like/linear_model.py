"""A logistic regression on standardized features, as plain arrays in a model file.

The same container as the tree ensembles (igneous_like.model_file: no pickle, loading one
cannot run code). Prediction rebuilds scikit-learn's LogisticRegression from the checked arrays,
so probabilities equal those of the fitted model bit for bit.
"""
from dataclasses import dataclass

import numpy as np

from igneous_like import model_file

ARRAYS = ("mean", "scale", "coef", "intercept")


@dataclass(frozen=True, eq=False)
class LogisticModel:
    """Features are standardized with `mean` and `scale`, then weighed by `coef` (one row for two
    classes, one row per class for more) plus `intercept`."""
    classes: tuple  # class labels (JSON values) in scikit-learn's order
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, targets: np.ndarray, seed: int = 0) -> "LogisticModel":
        """Fitted on standardized features (unscaled ones would make the penalty favour some)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        scaler = StandardScaler().fit(values)
        model = LogisticRegression(max_iter=1000, random_state=seed).fit(scaler.transform(values), targets)
        return cls(tuple(np.asarray(model.classes_).tolist()), scaler.mean_, scaler.scale_, model.coef_,
                   model.intercept_)

    @property
    def n_features(self) -> int:
        return len(self.mean)

    def predict_proba(self, values: np.ndarray) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression
        model = LogisticRegression()
        model.classes_, model.coef_, model.intercept_ = np.asarray(self.classes), self.coef, self.intercept
        model.n_features_in_ = self.n_features
        return model.predict_proba((np.asarray(values, np.float64) - self.mean) / self.scale)

    def to_bytes(self, fmt: str, version: int, manifest: dict) -> bytes:
        spec = {"kind": "logistic", "classes": list(self.classes)}
        return model_file.pack({name: getattr(self, name) for name in ARRAYS}, dict(manifest, linear=spec),
                               fmt, version)

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict, what: str) -> "LogisticModel":
        """The model of an unpacked file; ValueError where its arrays do not fit together."""
        try:
            model = cls(tuple(meta["linear"]["classes"]), **{name: arrays[name] for name in ARRAYS})
        except model_file.UNREADABLE as err:
            raise ValueError(f"not {what} file ({type(err).__name__}: {err}); train it again") from None
        rows = 1 if len(model.classes) == 2 else len(model.classes)
        shapes = [a.shape for a in (model.mean, model.scale, model.coef, model.intercept)]
        features = len(model.mean)
        if (len(model.classes) < 2 or shapes != [(features,), (features,), (rows, features), (rows,)]
                or any(a.dtype.kind != "f" or not np.isfinite(a).all() for a in arrays.values())
                or not (model.scale > 0).all()):
            raise ValueError(f"{what} file with inconsistent regression arrays; train it again")
        return model
