"""Analysis tables: threshold categories equal a numpy computation (and found thresholds equal
scikit-image's and numpy's), clusters recover well-separated groups and equal scikit-learn's, a
saved classifier (forest or logistic, trained on several tables) reloads and predicts the same,
tables join on labels, and a painted segmentation equals a numpy remap of the real data; through
the CLI on CSV, TSV, Parquet and XLSX."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import read_mip, run_cli, write_layer
from sklearn import cluster as sk_cluster
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

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
    for cuts, labels in (("1e6", "small,large"), ("3e6,7e6", "small,medium,large")):  # the 2nd replaces
        run_cli("table", "threshold", tmp_path / "cells.csv", tmp_path / "sized.parquet", "--column",
                "volume", "--thresholds", cuts, "--labels", labels, "--name", "size")
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


def test_found_thresholds_equal_scikit_image_and_numpy(groups, tmp_path):
    from skimage.filters import threshold_li, threshold_otsu
    table, _ = groups
    table.loc[5, "volume"] = np.nan
    table.to_csv(tmp_path / "cells.tsv", index=False, sep="\t")
    finite = table["volume"].dropna().to_numpy()
    for method, reference in (("otsu", threshold_otsu), ("li", threshold_li)):
        shown = run_cli("table", "threshold", tmp_path / "cells.tsv", tmp_path / f"{method}.xlsx",
                        "--column", "volume", "--method", method, "--labels", "low,high").stderr
        cut = reference(finite)
        assert 1e6 < cut < 9e6 and f"cut at {cut:g}" in shown
        out = pd.read_excel(tmp_path / f"{method}.xlsx")
        expected = np.where(table["volume"] < cut, "low", "high").astype(object)
        expected[5] = "missing"
        assert list(out["category"].fillna("missing")) == list(expected)
    cuts = tables.automatic_thresholds(table, "volume", percentiles=[25, 75])
    assert cuts == list(np.percentile(finite, [25, 75]))
    result = run_cli("table", "threshold", tmp_path / "cells.tsv", tmp_path / "x.csv", "--column", "volume",
                     "--method", "otsu", "--thresholds", "1", check=False)
    assert result.returncode == 2 and "give one of --thresholds, --method or --percentiles" in result.stderr
    table["flat"] = 3.0
    with pytest.raises(UserError, match="nothing to separate"):
        tables.automatic_thresholds(table, "flat", "otsu")


def test_hdbscan_and_mean_shift_equal_scikit_learn(groups, tmp_path):
    table, truth = groups
    table.to_parquet(tmp_path / "cells.parquet", index=False)
    scaled = StandardScaler().fit_transform(table[["volume", "sphericity"]].to_numpy())
    for method, reference in (("hdbscan", sk_cluster.HDBSCAN(min_cluster_size=10, min_samples=5, copy=True)),
                              ("meanshift", sk_cluster.MeanShift())):
        run_cli("table", "cluster", tmp_path / "cells.parquet", tmp_path / f"{method}.csv", "--columns",
                "volume,sphericity", "--method", method, "--min-cluster-size", "10")
        found = pd.read_csv(tmp_path / f"{method}.csv")["cluster"].to_numpy()
        assert np.array_equal(found, reference.fit_predict(scaled))
        assert adjusted_rand_score(truth, found) == 1.0


def test_logistic_classifier_trained_on_several_tables_equals_scikit_learn(groups, tmp_path):
    """Rows of a CSV and an XLSX table train one regression on standardized features; its
    probabilities equal scikit-learn's fit on the same rows; a crafted file is refused."""
    table, truth = groups
    names = np.array(["glia", "neuron", "soma"])
    table["kind"] = np.where(np.arange(truth.size) % 3 == 0, names[truth], None)
    table.iloc[:90].to_csv(tmp_path / "a.csv", index=False)
    table.iloc[90:].to_excel(tmp_path / "b.xlsx", index=False)
    features = ["volume", "sphericity", "noise"]
    run_cli("table", "classify", "train", tmp_path / "a.csv", tmp_path / "b.xlsx", "--annotation", "kind",
            "--features", ",".join(features), "--classifier", "logistic", "--output", tmp_path / "m.npz")
    run_cli("table", "classify", "apply", tmp_path / "a.csv", tmp_path / "m.npz", tmp_path / "p.parquet")
    read = pd.concat([pd.read_csv(tmp_path / "a.csv"), pd.read_excel(tmp_path / "b.xlsx")])  # as stored
    rows = read["kind"].notna()
    scaler = StandardScaler().fit(read.loc[rows, features].to_numpy())
    reference = LogisticRegression(max_iter=1000, random_state=0).fit(
        scaler.transform(read.loc[rows, features].to_numpy()), read.loc[rows, "kind"].to_numpy())
    first = scaler.transform(table.iloc[:90][features].to_numpy())
    predicted = pd.read_parquet(tmp_path / "p.parquet")
    assert list(predicted["prediction"]) == list(reference.predict(first))
    # equal up to the order in which the features' means are summed (array layout)
    assert np.allclose(predicted["prediction_probability"], reference.predict_proba(first).max(axis=1),
                       rtol=1e-12, atol=0)
    assert (predicted["prediction"] == names[truth[:90]]).all()
    model = np.load(tmp_path / "m.npz")
    arrays = {name: model[name] for name in model.files}
    arrays["coef"] = arrays["coef"][:, :2]
    np.savez(tmp_path / "bad.npz", **arrays)
    result = run_cli("table", "classify", "apply", tmp_path / "a.csv", tmp_path / "bad.npz",
                     tmp_path / "q.csv", check=False)
    assert result.returncode == 2 and "inconsistent regression arrays" in result.stderr
    assert not (tmp_path / "q.csv").exists()


def test_tables_join_on_labels(tmp_path):
    shape = pd.DataFrame({"label": [5, 1, 9, 3], "volume": [50.0, 10.0, 90.0, 30.0]})
    light = pd.DataFrame({"label": [1, 3, 7], "volume": [1.5, 3.5, 7.5], "mean": [0.1, 0.3, 0.7]})
    shape.to_parquet(tmp_path / "shape.parquet", index=False)
    light.to_csv(tmp_path / "light.tsv", index=False, sep="\t")
    for how, labels in (("inner", [1, 3]), ("left", [5, 1, 9, 3]), ("outer", [1, 3, 5, 7, 9])):
        run_cli("table", "merge", tmp_path / "shape.parquet", tmp_path / "light.tsv",
                tmp_path / f"{how}.xlsx", "--how", how)
        out = pd.read_excel(tmp_path / f"{how}.xlsx")
        assert list(out.columns) == ["label", "volume", "volume_2", "mean"]
        assert sorted(out["label"]) == sorted(labels)
        mine, theirs = dict(zip(shape.label, shape.volume)), dict(zip(light.label, light.volume))
        for row in out.itertuples():
            assert np.nan_to_num(row.volume, nan=-1) == mine.get(row.label, -1)
            assert np.nan_to_num(row.volume_2, nan=-1) == theirs.get(row.label, -1)
    pd.concat([light, light]).to_csv(tmp_path / "twice.csv", index=False)
    result = run_cli("table", "merge", tmp_path / "shape.parquet", tmp_path / "twice.csv", tmp_path / "x.csv",
                     check=False)
    assert result.returncode == 2 and "label 1 appears more than once in table 2" in result.stderr


def test_painted_segmentation_equals_a_numpy_remap(real_seg, tmp_path):
    """Objects of a real crop painted by a class column in tasks that cut them: every voxel is the
    id of its object's class (0 where the table has no class), ids named in segment properties."""
    crop = np.asfortranarray(real_seg[::4, ::4, :40][:96, :80])  # 162 objects
    write_layer(f"file://{tmp_path}/seg", crop, "segmentation", chunk=(32, 32, 16))
    labels = np.unique(crop)
    labels = labels[labels != 0]
    kinds = np.array(["axon", "dendrite", "glia"], dtype=object)[labels % 3]
    kinds[::7] = None  # unclassified objects
    pd.DataFrame({"label": labels, "kind": kinds}).to_csv(tmp_path / "classes.csv", index=False)
    run_cli("table", "paint", f"file://{tmp_path}/seg", tmp_path / "classes.csv", "kind",
            f"file://{tmp_path}/painted", "--shape", "32,32,16")
    painted = read_mip(f"file://{tmp_path}/painted", 0)
    ids = {"axon": 1, "dendrite": 2, "glia": 3}
    lookup = {int(label): ids.get(kind, 0) for label, kind in zip(labels, kinds)}
    expected = np.vectorize(lambda v: lookup.get(int(v), 0), otypes=[np.uint8])(crop)
    assert painted.dtype == np.uint8 and np.array_equal(painted, expected)
    properties = json.loads((tmp_path / "painted" / "segment_properties" / "info").read_text())
    inline = properties["inline"]
    assert inline["ids"] == ["1", "2", "3"] and inline["properties"][0]["values"] == list(ids)
    assert inline["properties"][1]["values"] == [sum(1 for k in kinds if k == name) for name in ids]
    pd.DataFrame({"kind": ["axon"]}).to_csv(tmp_path / "nolabel.csv", index=False)
    result = run_cli("table", "paint", f"file://{tmp_path}/seg", tmp_path / "nolabel.csv", "kind",
                     f"file://{tmp_path}/p2", check=False)
    assert result.returncode == 2 and "no column label" in result.stderr and not (tmp_path / "p2").exists()
