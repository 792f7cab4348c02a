"""Analysis tables: threshold categories equal a numpy computation, clusters recover well-separated
groups, and a saved classifier reloads and predicts the same; through the CLI on CSV and Parquet."""
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import adjusted_rand_score

from igneous_like import tables
from igneous_like.errors import UserError


@pytest.fixture
def groups():
    """Three groups of 60 rows, far apart in volume (scale 1e6) and sphericity (scale 0.1)."""
    rng = np.random.default_rng(5)
    truth = np.repeat([0, 1, 2], 60)
    volume = np.array([1e6, 5e6, 9e6])[truth] + rng.normal(0, 2e5, truth.size)
    sphericity = np.array([0.2, 0.8, 0.5])[truth] + rng.normal(0, 0.02, truth.size)
    table = pd.DataFrame({"label": np.arange(1, truth.size + 1), "volume": volume, "sphericity": sphericity,
                          "noise": rng.normal(size=truth.size)})
    return table, truth


def test_threshold_equals_numpy(groups, tmp_path):
    table, _ = groups
    table.loc[3, "volume"] = np.nan
    table.to_csv(tmp_path / "cells.csv", index=False)
    run_cli("table", "threshold", tmp_path / "cells.csv", tmp_path / "sized.parquet", "--column", "volume",
            "--thresholds", "3e6,7e6", "--labels", "small,medium,large", "--name", "size")
    out = pd.read_parquet(tmp_path / "sized.parquet")
    v = table["volume"].to_numpy()
    expected = np.where(v < 3e6, "small", np.where(v < 7e6, "medium", "large")).astype(object)
    expected[np.isnan(v)] = "missing"
    assert list(out["size"].fillna("missing")) == list(expected)
    default = tables.threshold(table, "volume", [3e6])
    assert set(default["category"].dropna()) == {"<3e+06", ">=3e+06"}
    with pytest.raises(UserError, match="increasing"):
        tables.threshold(table, "volume", [7e6, 3e6])


def test_clusters_recover_groups(groups, tmp_path):
    table, truth = groups
    table.to_parquet(tmp_path / "cells.parquet", index=False)
    run_cli("table", "cluster", tmp_path / "cells.parquet", tmp_path / "out.csv",
            "--columns", "volume,sphericity", "--k", "3")
    assert adjusted_rand_score(truth, pd.read_csv(tmp_path / "out.csv")["cluster"]) == 1.0
    dbscan = tables.cluster(table, ["volume", "sphericity"], "dbscan", eps=0.5, min_samples=5)
    assert adjusted_rand_score(truth, dbscan["cluster"]) == 1.0


def test_classifier_saves_reloads_and_predicts(groups, tmp_path):
    table, truth = groups
    names = np.array(["glia", "neuron", "soma"], dtype=object)[truth]
    annotated = np.zeros(truth.size, bool)
    annotated[::4] = True  # a quarter of the rows carry an annotation
    table["kind"] = np.where(annotated, names, None)
    table.to_csv(tmp_path / "cells.csv", index=False)
    model_path = tmp_path / "model.npz"
    run_cli("table", "classify", "train", tmp_path / "cells.csv", "--annotation", "kind",
            "--features", "volume,sphericity,noise", "--output", model_path)
    run_cli("table", "classify", "apply", tmp_path / "cells.csv", model_path, tmp_path / "predicted.parquet")
    predicted = pd.read_parquet(tmp_path / "predicted.parquet")
    saved = tables.load_model(str(model_path))
    assert saved["features"] == ["volume", "sphericity", "noise"] and saved["annotation"] == "kind"
    forest = RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1)  # as training fits it
    rows = table["kind"].notna()
    forest.fit(table.loc[rows, saved["features"]].to_numpy(), table.loc[rows, "kind"].to_numpy())
    values = table[saved["features"]].to_numpy()
    assert list(predicted["prediction"]) == list(forest.predict(values))
    assert np.array_equal(predicted["prediction_probability"], forest.predict_proba(values).max(axis=1))
    assert (predicted["prediction"].to_numpy() == names).all()


def test_tables_and_models_on_s3(groups, tmp_path, sqs_env):
    """The same threshold, training and prediction with every table and the model on s3://
    (a real S3-compatible server) give the local run's results; a missing table is a clear error."""
    import io

    import boto3
    s3 = boto3.client("s3", endpoint_url=sqs_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="lab")
    table, truth = groups
    table["kind"] = np.where(np.arange(truth.size) % 4 == 0, truth.astype(str), None)
    table.to_csv(tmp_path / "cells.csv", index=False)
    s3.put_object(Bucket="lab", Key="cells.csv", Body=(tmp_path / "cells.csv").read_bytes())
    for where, env in ((f"{tmp_path}/", None), ("s3://lab/", sqs_env)):
        run_cli("table", "threshold", f"{where}cells.csv", f"{where}sized.parquet", "--column", "volume",
                "--thresholds", "3e6,7e6", env=env)
        run_cli("table", "classify", "train", f"{where}sized.parquet", "--annotation", "kind",
                "--features", "volume,sphericity", "--output", f"{where}model.npz", env=env)
        run_cli("table", "classify", "apply", f"{where}sized.parquet", f"{where}model.npz",
                f"{where}predicted.csv", env=env)
    remote = pd.read_csv(io.BytesIO(s3.get_object(Bucket="lab", Key="predicted.csv")["Body"].read()))
    local = pd.read_csv(tmp_path / "predicted.csv")
    assert remote.equals(local) and list(local["category"].unique()) == ["<3e+06", "3e+06-7e+06", ">=7e+06"]
    result = run_cli("table", "threshold", "s3://lab/none.csv", "s3://lab/x.csv", "--column", "volume",
                     "--thresholds", "1", env=sqs_env, check=False)
    assert result.returncode != 0 and "no table at s3://lab/none.csv" in result.stderr
    assert "Traceback" not in result.stderr
