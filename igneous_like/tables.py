"""Analysis of exported measurement tables (CSV, TSV, Parquet or XLSX): threshold categories
(given, or found by Otsu's or Li's method or at percentiles), clusters on standardized columns,
classifiers trained from an annotation column, and tables joined on their labels.

A model file holds a random forest or a logistic regression as plain arrays (no pickle: loading
one cannot run code) with its feature columns (in order) and the annotation column's name, so
applying a model never guesses the features.
"""
import io
from typing import List, Optional, Sequence

import numpy as np
from cloudfiles import CloudFile

from igneous_like import model_file
from igneous_like.errors import UserError
from igneous_like.linear_model import LogisticModel
from igneous_like.tree_ensemble import TreeEnsemble

FORMATS = (".csv", ".tsv", ".parquet", ".xlsx")
XLSX_ROWS = 1_048_575  # a worksheet's rows, less the header
MODEL_FORMAT, MODEL_VERSION = "igneous_like.table_classifier", 1
CLASSIFIERS = {"forest": TreeEnsemble, "logistic": LogisticModel}
THRESHOLD_METHODS = ("otsu", "li")
CLUSTER_METHODS = ("kmeans", "dbscan", "hdbscan", "meanshift")


def check_format(path: str) -> str:
    if not path.endswith(FORMATS):
        raise UserError(f"{path}: tables must end with .csv, .tsv, .parquet or .xlsx")
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
    kind = path.rsplit(".", 1)[1]
    readers = {"csv": pd.read_csv, "tsv": lambda d: pd.read_csv(d, sep="\t"), "parquet": pd.read_parquet,
               "xlsx": lambda d: pd.read_excel(d, engine="openpyxl")}
    try:
        return readers[kind](data)
    except (ValueError, OSError, KeyError) as err:  # parse errors of pandas, pyarrow and openpyxl
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path} is not a readable {kind.upper()} table ({reason}); "
                        "give a table such as `igneous-like measure export` writes") from err


def write_table(table, path: str) -> None:
    """The table in the format its extension names, to a local path or any URL CloudFiles writes."""
    data, kind = io.BytesIO(), check_format(path).rsplit(".", 1)[1]
    if kind == "xlsx" and len(table) > XLSX_ROWS:
        raise UserError(f"{len(table):,} rows do not fit an XLSX worksheet ({XLSX_ROWS:,} at most); "
                        "write .parquet, .csv or .tsv")
    if kind in ("csv", "tsv"):
        table.to_csv(data, index=False, sep="," if kind == "csv" else "\t")
    elif kind == "parquet":
        table.to_parquet(data, index=False)
    else:
        table.to_excel(data, index=False, engine="openpyxl")
    CloudFile(path).put(data.getvalue())


def numeric_columns(table, columns: Sequence[str]) -> np.ndarray:
    """The named columns as a float matrix, after checking they exist and hold numbers."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"no column {', '.join(missing)}; the table has {', '.join(map(str, table.columns))}")
    if not columns:
        raise UserError("name at least one column")
    values = table[list(columns)]
    from pandas.api.types import is_numeric_dtype  # also answers for pandas' own (string) dtypes
    wrong = [c for c in columns if not is_numeric_dtype(values[c])]
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


def automatic_thresholds(table, column: str, method: Optional[str] = None,
                         percentiles: Optional[Sequence[float]] = None) -> List[float]:
    """Cut points found in the column's values (missing ones left out): Otsu's or Li's single
    threshold (scikit-image's), or the values at the given percentiles (numpy's, linear)."""
    values = numeric_columns(table, [column])[:, 0]
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise UserError(f"column {column} holds no numbers to find thresholds in")
    if percentiles is not None:
        if any(not 0 <= p <= 100 for p in percentiles):
            raise UserError(f"percentiles lie between 0 and 100, got {list(percentiles)}")
        return sorted(set(np.percentile(values, list(percentiles)).tolist()))
    from skimage import filters
    if method not in THRESHOLD_METHODS:
        raise UserError(f"unknown threshold method {method!r}; use {' or '.join(THRESHOLD_METHODS)}")
    if values.min() == values.max():
        raise UserError(f"every value of column {column} is {values[0]:g}: there is nothing to separate")
    return [float((filters.threshold_otsu if method == "otsu" else filters.threshold_li)(values))]


def cluster(table, columns: Sequence[str], method: str = "kmeans", clusters: int = 3, eps: float = 0.5,
            min_samples: int = 5, seed: int = 0, output: str = "cluster", min_cluster_size: int = 5,
            bandwidth: Optional[float] = None):
    """Cluster ids from k-means, DBSCAN, HDBSCAN or mean shift (-1: noise) on the columns, each
    standardized to mean 0 and variance 1 (rows with missing values get -1). Mean shift without
    a bandwidth estimates one from the data."""
    from sklearn import cluster as methods
    from sklearn.preprocessing import StandardScaler
    values = numeric_columns(table, columns)
    usable = np.isfinite(values).all(axis=1)
    needed = {"kmeans": clusters, "hdbscan": max(min_cluster_size, 2)}.get(method, 1)
    if usable.sum() < needed:
        raise UserError(f"{usable.sum()} rows with all of {', '.join(columns)} are too few to cluster")
    makers = {"kmeans": lambda: methods.KMeans(n_clusters=clusters, n_init=10, random_state=seed),
              "dbscan": lambda: methods.DBSCAN(eps=eps, min_samples=min_samples),
              "hdbscan": lambda: methods.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples,
                                                     copy=True),
              "meanshift": lambda: methods.MeanShift(bandwidth=bandwidth)}
    if method not in makers:
        raise UserError(f"unknown clustering method {method!r}; use {', '.join(CLUSTER_METHODS)}")
    ids = makers[method]().fit_predict(StandardScaler().fit_transform(values[usable]))
    out = table.copy()
    out[output] = -1
    out.loc[usable, output] = ids
    return out


def train_classifier(tables, annotation: str, features: Sequence[str], trees: int = 200,
                     seed: int = 0, kind: str = "forest") -> dict:
    """A random forest or a logistic regression fitted on the rows (of one table or several) whose
    annotation and features are present; returns the model dict."""
    import pandas as pd
    tables = [tables] if hasattr(tables, "columns") else list(tables)
    for table in tables:
        if annotation not in table.columns:
            raise UserError(f"no annotation column {annotation}; a table has "
                            f"{', '.join(map(str, table.columns))}")
    values = np.concatenate([numeric_columns(table, features) for table in tables])
    targets = pd.concat([table[annotation] for table in tables], ignore_index=True)
    labelled = targets.notna().to_numpy() & np.isfinite(values).all(axis=1)
    targets = targets[labelled].to_numpy()
    if len(set(targets.tolist())) < 2:
        raise UserError(f"the annotation column {annotation} needs at least two classes among its rows")
    if kind == "logistic":
        model = LogisticModel.fit(values[labelled], targets, seed)
    elif kind == "forest":
        from sklearn.ensemble import RandomForestClassifier
        forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
        model = TreeEnsemble.from_sklearn(forest.fit(values[labelled], targets))
    else:
        raise UserError(f"unknown classifier {kind!r}; use {' or '.join(CLASSIFIERS)}")
    return {"model": model, "features": list(features), "annotation": annotation, "kind": kind}


def save_model(model: dict, path: str) -> None:
    manifest = {"features": model["features"], "annotation": model["annotation"], "classifier": model["kind"]}
    CloudFile(path).put(model["model"].to_bytes(MODEL_FORMAT, MODEL_VERSION, manifest))


def load_model(path: str) -> dict:
    """A model of `table classify train`; anything else (a pickle included) is refused unread."""
    what = "a table classifier model"
    try:
        arrays, meta = model_file.unpack(read_bytes(path, "model"), MODEL_FORMAT, MODEL_VERSION, what)
        kind = meta.get("classifier", "forest")
        if kind not in CLASSIFIERS:
            raise ValueError(f"{what} of an unknown kind {kind!r}")
        model = CLASSIFIERS[kind].from_arrays(arrays, meta, what)
        features = meta["features"]
        if not all(isinstance(f, str) for f in features) or len(features) != model.n_features:
            raise ValueError(f"{what} whose feature columns do not match its arrays")
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: {err}; make one with `igneous-like table classify train`") from None
    return {"model": model, "features": features, "annotation": meta.get("annotation"), "kind": kind}


def merge(tables: Sequence, on: str = "label", how: str = "inner"):
    """The tables side by side, rows matched on column `on` (unique in each table); a column that
    an earlier table already has gets the suffix _2, _3, ... of its table's place."""
    merged = None
    for place, table in enumerate(tables, 1):
        if on not in table.columns:
            raise UserError(f"table {place} has no column {on}; it has {', '.join(map(str, table.columns))}")
        repeated = table[on][table[on].duplicated()]
        if len(repeated):
            raise UserError(f"{on} {repeated.iloc[0]} appears more than once in table {place}; "
                            f"tables are joined on a {on} column that names each row once")
        if merged is None:
            merged = table
            continue
        table = table.rename(columns={c: f"{c}_{place}" for c in table.columns if c != on and c in merged})
        merged = merged.merge(table, on=on, how=how)
    return merged


def apply_classifier(table, model: dict, output: str = "prediction"):
    """Predictions for every row with all features (others stay missing), plus the winning
    class's probability in OUTPUT_probability."""
    values = numeric_columns(table, model["features"])
    usable = np.isfinite(values).all(axis=1)
    out = table.copy()
    out[output] = None
    out[f"{output}_probability"] = np.nan
    if usable.any():
        classifier = model["model"]
        probabilities = classifier.predict_proba(values[usable])
        out.loc[usable, output] = np.asarray(classifier.classes, dtype=object)[probabilities.argmax(axis=1)]
        out.loc[usable, f"{output}_probability"] = probabilities.max(axis=1)
    return out


def columns_list(text: Optional[str]) -> List[str]:
    """Comma-separated column names."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


# Each table verb whole, file to file: the CLI's commands and a pipeline's one-process steps.
def threshold_table(table_path: str, output: str, column: str, thresholds: Optional[Sequence[float]] = None,
                    labels: Optional[Sequence[str]] = None, name: str = "category",
                    method: Optional[str] = None, percentiles: Optional[Sequence[float]] = None) -> dict:
    """TABLE with a category column written to OUTPUT, cut at the given thresholds or at those
    `method` or `percentiles` find; returns the rows and the thresholds used."""
    table = read_table(table_path)
    if (thresholds is None) == (method is None and percentiles is None):
        raise UserError("give either thresholds, or a method (otsu, li) or percentiles to find them")
    if thresholds is None:
        thresholds = automatic_thresholds(table, column, method, percentiles)
    write_table(threshold(table, column, thresholds, labels or None, name), output)
    return {"rows": len(table), "thresholds": list(thresholds)}


def cluster_table(table_path: str, output: str, columns: Sequence[str], method: str = "kmeans",
                  clusters: int = 3, eps: float = 0.5, min_samples: int = 5, seed: int = 0,
                  name: str = "cluster", min_cluster_size: int = 5, bandwidth: Optional[float] = None) -> int:
    """TABLE with a cluster column written to OUTPUT; returns how many clusters (noise included)."""
    out = cluster(read_table(table_path), columns, method, clusters, eps, min_samples, seed, name,
                  min_cluster_size, bandwidth)
    write_table(out, output)
    return int(out[name].nunique())


def train_table_classifier(table_paths: Sequence[str], annotation: str, features: Sequence[str], output: str,
                           trees: int = 200, seed: int = 0, kind: str = "forest") -> int:
    """A classifier trained on the annotated rows of every table, saved to OUTPUT; returns its
    class count."""
    model = train_classifier([read_table(path) for path in table_paths], annotation, features, trees, seed,
                             kind)
    save_model(model, output)
    return len(model["model"].classes)


def apply_table_classifier(table_path: str, model_path: str, output: str, name: str = "prediction") -> int:
    """TABLE with predictions of the model at MODEL_PATH written to OUTPUT; returns the row count."""
    table = read_table(table_path)
    write_table(apply_classifier(table, load_model(model_path), name), output)
    return len(table)


def merge_tables(table_paths: Sequence[str], output: str, on: str = "label", how: str = "inner") -> int:
    """The tables joined on column `on`, written to OUTPUT; returns the row count."""
    merged = merge([read_table(path) for path in table_paths], on, how)
    write_table(merged, output)
    return len(merged)
