"""Analysis of exported measurement tables (CSV or Parquet): threshold categories, clusters on
standardized columns, and a random-forest classifier trained from an annotation column.

A model file holds the forest as plain arrays (igneous_like.tree_ensemble: no pickle, loading
one cannot run code) with its feature columns (in order) and the annotation column's name, so
applying a model never guesses the features.
"""
import io
from typing import List, Optional, Sequence

import numpy as np
from cloudfiles import CloudFile

from igneous_like.errors import UserError
from igneous_like.tree_ensemble import TreeEnsemble

FORMATS = (".csv", ".parquet")
MODEL_FORMAT, MODEL_VERSION = "igneous_like.table_classifier", 1


def check_format(path: str) -> str:
    if not path.endswith(FORMATS):
        raise UserError(f"{path}: tables must end with .csv or .parquet")
    return path


def read_bytes(path: str, what: str) -> bytes:
    """A whole file from a local path or any URL CloudFiles reads (file://, s3://, gs://, ...)."""
    data = CloudFile(path).get()
    if data is None:
        raise UserError(f"no {what} at {path}")
    return data


def read_table(path: str):
    """A table as a pandas DataFrame, by its extension."""
    import pandas as pd
    data = io.BytesIO(read_bytes(check_format(path), "table"))
    csv = path.endswith(".csv")
    try:
        return pd.read_csv(data) if csv else pd.read_parquet(data)
    except ValueError as err:  # pandas' and pyarrow's parse errors (empty, binary, ragged) are ValueErrors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path} is not a readable {'CSV' if csv else 'Parquet'} table ({reason}); "
                        "give a table such as `igneous-like measure export` writes") from err


def write_table(table, path: str) -> None:
    """The table as CSV or Parquet, by the extension, to a local path or any URL CloudFiles writes."""
    data = io.BytesIO()
    if check_format(path).endswith(".csv"):
        table.to_csv(data, index=False)
    else:
        table.to_parquet(data, index=False)
    CloudFile(path).put(data.getvalue())


def numeric_columns(table, columns: Sequence[str]) -> np.ndarray:
    """The named columns as a float matrix, after checking they exist and hold numbers."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"no column {', '.join(missing)}; the table has {', '.join(map(str, table.columns))}")
    if not columns:
        raise UserError("name at least one column")
    values = table[list(columns)]
    wrong = [c for c in columns if not np.issubdtype(values[c].dtype, np.number)]
    if wrong:
        raise UserError(f"column {', '.join(wrong)} does not hold numbers")
    return values.to_numpy(np.float64)


def threshold(table, column: str, thresholds: Sequence[float], names: Optional[Sequence[str]] = None,
              output: str = "category"):
    """A categorical column: value < t1 -> names[0], t1 <= value < t2 -> names[1], ...,
    value >= tn -> names[n] (missing values stay missing)."""
    values = numeric_columns(table, [column])[:, 0]
    cuts = np.asarray(thresholds, np.float64)
    if cuts.size == 0 or np.any(np.diff(cuts) <= 0):
        raise UserError(f"thresholds must be one or more increasing numbers, got {list(thresholds)}")
    if names is None:
        edges = [f"{t:g}" for t in cuts]
        names = [f"<{edges[0]}"] + [f"{a}-{b}" for a, b in zip(edges[:-1], edges[1:])] + [f">={edges[-1]}"]
    if len(names) != cuts.size + 1:
        raise UserError(f"{cuts.size} thresholds make {cuts.size + 1} categories, but {len(names)} names "
                        "were given")
    index = np.digitize(values, cuts)
    category = np.asarray(names, dtype=object)[index]
    category[np.isnan(values)] = None
    out = table.copy()
    out[output] = category
    return out


def cluster(table, columns: Sequence[str], method: str = "kmeans", clusters: int = 3, eps: float = 0.5,
            min_samples: int = 5, seed: int = 0, output: str = "cluster"):
    """Cluster ids from k-means or DBSCAN (-1: noise) on the columns, each standardized to mean 0
    and variance 1 (rows with missing values get -1)."""
    from sklearn.cluster import DBSCAN, KMeans
    from sklearn.preprocessing import StandardScaler
    values = numeric_columns(table, columns)
    usable = np.isfinite(values).all(axis=1)
    if usable.sum() < max(clusters if method == "kmeans" else 1, 1):
        raise UserError(f"{usable.sum()} rows with all of {', '.join(columns)} are too few to cluster")
    scaled = StandardScaler().fit_transform(values[usable])
    if method == "kmeans":
        ids = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(scaled)
    elif method == "dbscan":
        ids = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(scaled)
    else:
        raise UserError(f"unknown clustering method {method!r}; use kmeans or dbscan")
    out = table.copy()
    out[output] = -1
    out.loc[usable, output] = ids
    return out


def train_classifier(table, annotation: str, features: Sequence[str], trees: int = 200,
                     seed: int = 0) -> dict:
    """A random forest fitted on the rows whose annotation is present; returns the model dict."""
    from sklearn.ensemble import RandomForestClassifier
    if annotation not in table.columns:
        raise UserError(f"no annotation column {annotation}; the table has "
                        f"{', '.join(map(str, table.columns))}")
    values = numeric_columns(table, features)
    labelled = table[annotation].notna().to_numpy() & np.isfinite(values).all(axis=1)
    targets = table.loc[labelled, annotation]
    if targets.nunique() < 2:
        raise UserError(f"the annotation column {annotation} needs at least two classes among its rows")
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
    forest.fit(values[labelled], targets.to_numpy())
    return {"model": TreeEnsemble.from_sklearn(forest), "features": list(features), "annotation": annotation}


def save_model(model: dict, path: str) -> None:
    manifest = {"features": model["features"], "annotation": model["annotation"]}
    CloudFile(path).put(model["model"].to_bytes(MODEL_FORMAT, MODEL_VERSION, manifest))


def load_model(path: str) -> dict:
    """A model of `table classify train`; anything else (a pickle included) is refused unread."""
    try:
        forest, meta = TreeEnsemble.from_bytes(read_bytes(path, "model"), MODEL_FORMAT, MODEL_VERSION,
                                               "a table classifier model")
        features = meta["features"]
        if not all(isinstance(f, str) for f in features) or len(features) != forest.n_features:
            raise ValueError("a table classifier model whose feature columns do not match its trees")
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: {err}; make one with `igneous-like table classify train`") from None
    return {"model": forest, "features": features, "annotation": meta.get("annotation")}


def apply_classifier(table, model: dict, output: str = "prediction"):
    """Predictions for every row with all features (others stay missing), plus the winning
    class's probability in OUTPUT_probability."""
    values = numeric_columns(table, model["features"])
    usable = np.isfinite(values).all(axis=1)
    out = table.copy()
    out[output] = None
    out[f"{output}_probability"] = np.nan
    if usable.any():
        forest = model["model"]
        probabilities = forest.predict_proba(values[usable])
        out.loc[usable, output] = np.asarray(forest.classes, dtype=object)[probabilities.argmax(axis=1)]
        out.loc[usable, f"{output}_probability"] = probabilities.max(axis=1)
    return out


def columns_list(text: Optional[str]) -> List[str]:
    """Comma-separated column names."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


# Each table verb whole, file to file: the CLI's commands and a pipeline's one-process steps.
def threshold_table(table_path: str, output: str, column: str, thresholds: Sequence[float],
                    labels: Optional[Sequence[str]] = None, name: str = "category") -> int:
    """TABLE with a category column written to OUTPUT; returns the row count."""
    table = read_table(table_path)
    write_table(threshold(table, column, thresholds, labels or None, name), output)
    return len(table)


def cluster_table(table_path: str, output: str, columns: Sequence[str], method: str = "kmeans",
                  clusters: int = 3, eps: float = 0.5, min_samples: int = 5, seed: int = 0,
                  name: str = "cluster") -> int:
    """TABLE with a cluster column written to OUTPUT; returns how many clusters (noise included)."""
    out = cluster(read_table(table_path), columns, method, clusters, eps, min_samples, seed, name)
    write_table(out, output)
    return int(out[name].nunique())


def train_table_classifier(table_path: str, annotation: str, features: Sequence[str], output: str,
                           trees: int = 200, seed: int = 0) -> int:
    """A forest trained on TABLE's annotated rows, saved to OUTPUT; returns its class count."""
    model = train_classifier(read_table(table_path), annotation, features, trees, seed)
    save_model(model, output)
    return len(model["model"].classes)


def apply_table_classifier(table_path: str, model_path: str, output: str, name: str = "prediction") -> int:
    """TABLE with predictions of the model at MODEL_PATH written to OUTPUT; returns the row count."""
    table = read_table(table_path)
    write_table(apply_classifier(table, load_model(model_path), name), output)
    return len(table)
