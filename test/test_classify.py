"""Synapse detection: a voxel classifier trained on sparse annotations of one half of a synthetic
EM-like volume finds the planted clefts of the other half, and blockwise prediction equals
predicting the whole array at once.

The must-show chain runs through the real CLI and a real fq:// queue: `image classify train`,
`image classify predict --queue` + `execute`, `image ccl auto --threshold-gte --dust`.
"""
import inspect
from pathlib import Path

import cc3d
import numpy as np
import pytest
from cloudfiles import CloudFile
from conftest import read_mip, run_cli, tensorstore_read, write_layer
from scipy import ndimage
from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
from sklearn.metrics import average_precision_score
from sklearn.tree import DecisionTreeClassifier
from synthetic_em import RESOLUTION, annotate, make_volume, object_f1, supervoxels

from igneous_like import classifier, features, pooling, tree_ensemble
from igneous_like.cli.pipeline import step_stages
from igneous_like.errors import UserError
from igneous_like.pipeline import stages
from igneous_like.queues import enqueue, run_locally
from igneous_like.task_creation import (
    create_classification_tasks,
    create_pool_sum_tasks,
    train_classifier,
)
from igneous_like.task_creation.classify import pooling_for
from igneous_like.task_creation.common import open_layer
from igneous_like.tasks.classify import table_rows

OFFSET = (40, 24, 8)
CHUNK = (32, 32, 16)
HALF = 80  # x < HALF trains, x >= HALF is predicted and scored
SCALES = "16,32"
THRESHOLD, DUST = 128, 20


@pytest.fixture(scope="module")
def volume():
    return make_volume(shape=(160, 128, 80), count=16, seed=0)


@pytest.fixture(scope="module")
def work(tmp_path_factory, volume):
    """The image and the training half's annotations as file:// layers, and the trained model."""
    root = tmp_path_factory.mktemp("classify")
    image = write_layer(f"file://{root}/image", volume.image, "image", resolution=RESOLUTION, offset=OFFSET,
                        chunk=CHUNK)
    marks = annotate(volume, (slice(0, HALF), slice(None), slice(None)))
    annotations = write_layer(f"file://{root}/annotations", marks, "image", resolution=RESOLUTION,
                              offset=OFFSET, chunk=CHUNK)
    model = f"file://{root}/clefts.model"
    run_cli("image", "classify", "train", image, "--annotations", annotations, "--output", model,
            "--scales", SCALES, "--n-estimators", 50, "--method", "adaboost")
    return {"root": root, "image": image, "annotations": annotations, "model": model, "marks": marks}


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings hold the same objects, whatever their ids."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (np.unique(pairs[0]).size == pairs.shape[1] == np.unique(pairs[1]).size
            and bool(np.all((pairs[0] == 0) == (pairs[1] == 0))))


def test_synapses_found_blockwise_without_seams(work, volume, tmp_path):
    root, image, model_path = work["root"], work["image"], work["model"]
    queue = f"fq://{tmp_path}/queue"
    run_cli("image", "classify", "predict", image, f"file://{root}/prob64", "--model", model_path,
            "--shape", "64,64,64", "--queue", queue)
    run_cli("-p", "2", "execute", "-x", queue)
    tasks = create_classification_tasks(image, f"file://{root}/prob128", model_path, shape=(128, 128, 128))
    run_locally(tasks, parallel=2, quiet=True)
    prob64, prob128 = read_mip(f"file://{root}/prob64", 0), read_mip(f"file://{root}/prob128", 0)
    model = classifier.Model.from_bytes(CloudFile(model_path).get())
    whole = classifier.to_uint8(classifier.predict(model, volume.image))
    assert prob64.dtype == np.uint8 and np.array_equal(prob64, prob128) and np.array_equal(prob64, whole)

    truth = volume.clefts[HALF:]
    precision = average_precision_score((truth > 0).ravel(), prob64[HALF:].ravel())
    found = cc3d.dust(cc3d.connected_components(prob64[HALF:] >= THRESHOLD, connectivity=26), DUST,
                      connectivity=26)
    assert precision >= 0.9, precision
    assert len(np.unique(truth)) - 1 >= 8 and object_f1(found, truth) >= 0.9

    run_cli("-p", "2", "image", "ccl", "auto", f"file://{root}/prob64", f"file://{root}/objects",
            "--threshold-gte", THRESHOLD, "--dust", DUST, "--connectivity", 26)
    objects = read_mip(f"file://{root}/objects", 0)
    reference = cc3d.dust(cc3d.connected_components(whole >= THRESHOLD, connectivity=26), DUST,
                          connectivity=26)
    assert same_partition(objects, reference)
    assert object_f1(objects[HALF:], truth) >= 0.9


def test_model_file_keeps_its_feature_settings(work):
    model = classifier.Model.from_bytes(CloudFile(work["model"]).get())
    assert model.settings.scales == (16.0, 32.0) and model.settings.resolution == (8.0, 8.0, 40.0)
    assert model.method == "adaboost" and model.dtype == "uint8"
    assert model.training["annotations"] == work["annotations"] and model.training["n_estimators"] == 50
    assert model.training["positive"] == (work["marks"] == 255).sum() and "igneous_like" in model.training
    assert model.ensemble.n_features == len(model.settings.names()) == 17
    assert model.ensemble.kind == "samme" and len(model.ensemble.sizes) == 50
    assert set(model.ensemble.depths) == {1}


def test_random_forest_float32_prediction_equals_whole_array(work, volume, tmp_path):
    """A crop through the API: random forest, erode/dilate, float32 output over 2x2x2 blocks."""
    crop = volume.image[40:104, 32:96, 16:48]
    image = write_layer(f"file://{tmp_path}/crop", crop, "image", resolution=RESOLUTION, chunk=(16, 16, 16))
    marks = annotate(volume, (slice(40, 104), slice(32, 96), slice(16, 48)), fraction=1.0)
    annotations = write_layer(f"file://{tmp_path}/marks", marks, "image", resolution=RESOLUTION,
                              chunk=(16, 16, 16))
    summary = train_classifier(image, annotations, str(tmp_path / "rf.model"), method="random-forest",
                               n_estimators=10, scales=(16, 32), erode=1, dilate=1, max_samples=4000)
    expected = classifier.training_labels(marks, erode=1, dilate=1)
    assert (summary["positive"], summary["negative"]) == ((expected == 1).sum(), (expected == 0).sum())
    tasks = create_classification_tasks(image, f"file://{tmp_path}/p", summary["model"], shape=(32, 32, 16),
                                        dtype="float32", compress="none")
    run_locally(tasks, parallel=1, quiet=True)
    model = classifier.Model.from_bytes(CloudFile(summary["model"]).get())
    out = read_mip(f"file://{tmp_path}/p", 0)
    assert out.dtype == np.float32 and np.array_equal(out, classifier.predict(model, crop))
    assert np.array_equal(tensorstore_read(f"file://{tmp_path}/p", 0), out)


def test_training_labels_erode_then_dilate():
    rng = np.random.default_rng(1)
    marks = rng.choice(np.array([0, 7, 255], np.uint8), size=(20, 18, 12), p=[0.3, 0.2, 0.5])
    positive = marks == 255
    labels = classifier.training_labels(marks, erode=1, dilate=2)
    grown = ndimage.binary_dilation(ndimage.binary_erosion(positive), iterations=2)
    assert np.array_equal(labels == 1, grown)
    assert np.array_equal(labels == 0, (marks == 0) & ~grown)
    assert np.array_equal(labels == -1, ~grown & (marks != 0))
    assert np.array_equal(classifier.sample(labels, 50, seed=3), classifier.sample(labels, 50, seed=3))


def test_features_blockwise_equal_whole_array_and_halo_is_tight():
    settings = features.FeatureSettings((16, 32), RESOLUTION)
    # int(4 * sigma / 2 + 0.5) + int(4 * sigma + 0.5): sigmas 2, 4 voxels in x, y and 0.4, 0.8 in z
    assert list(features.halo(settings)) == [8 + 16, 8 + 16, 2 + 3]
    image = np.random.default_rng(2).integers(0, 255, (112, 100, 40)).astype(np.uint8)
    whole = features.feature_stack(image, settings)
    for lo, hi in [((40, 36, 12), (72, 64, 28)), ((0, 70, 0), (50, 100, 20))]:
        for trim in range(4):  # trim 0: the full halo; trim 1..3: one voxel less on that axis
            margin = features.halo(settings) - np.eye(4, 3, -1, dtype=int)[trim]
            start, stop = np.maximum(np.subtract(lo, margin), 0), np.minimum(np.add(hi, margin), image.shape)
            block = image[tuple(slice(a, b) for a, b in zip(start, stop))]
            crop = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
            equal = np.array_equal(features.feature_stack(block, settings, crop),
                                   whole[tuple(slice(a, b) for a, b in zip(lo, hi))])
            assert equal if trim == 0 else (not equal or lo == (0, 70, 0)), (lo, trim)


def test_eigenvalues_do_not_depend_on_the_array_around_them():
    """Closed-form eigenvalues: a voxel's value is the same at any position or array length (SIMD
    loops and their tails must not change it), and close to LAPACK's."""
    matrices = np.random.default_rng(4).normal(size=(1001, 3, 3)).astype(np.float32)
    matrices += matrices.transpose(0, 2, 1)
    entries = [matrices[:, a, b] for a, b in features.PAIRS]
    whole = np.stack(features.eigenvalues(entries), -1)
    for start, stop in [(3, 997), (1, 18), (500, 501)]:
        part = np.stack(features.eigenvalues([e[start:stop] for e in entries]), -1)
        assert np.array_equal(part, whole[start:stop])
    np.testing.assert_allclose(whole, np.linalg.eigvalsh(matrices.astype(np.float64)), atol=1e-4)


def test_features_match_direct_filters():
    """Gaussian, gradient magnitude, Hessian and structure tensor against plain scipy and numpy."""
    settings = features.FeatureSettings((24,), RESOLUTION)
    noise = np.random.default_rng(3).normal(size=(40, 36, 20))
    image = ndimage.gaussian_filter(noise, 1.5).astype(np.float32)
    stack = features.feature_stack(image, settings)
    scale, res = 24.0, np.asarray(RESOLUTION, float)
    sigma = scale / res

    def derivative(order, s):
        return ndimage.gaussian_filter(image.astype(np.float64), s, order=order, mode="reflect") / np.prod(
            res ** np.asarray(order))

    grads = [derivative(tuple(np.eye(3, dtype=int)[a]), sigma) * scale for a in range(3)]
    hessian = np.empty(image.shape + (3, 3))
    for a in range(3):
        for b in range(3):
            hessian[..., a, b] = derivative(tuple(np.eye(3, dtype=int)[a] + np.eye(3, dtype=int)[b]), sigma)
    inner = [derivative(tuple(np.eye(3, dtype=int)[a]), sigma / 2) * scale / 2 for a in range(3)]
    tensor = np.stack([np.stack([ndimage.gaussian_filter(inner[a] * inner[b], sigma, mode="reflect")
                                 for b in range(3)], -1) for a in range(3)], -2)
    names = settings.names()
    expected = {"intensity": image, "gaussian_24nm": ndimage.gaussian_filter(image.astype(np.float64), sigma),
                "gradient_magnitude_24nm": np.sqrt(sum(g * g for g in grads))}
    for k, values in enumerate(np.moveaxis(np.linalg.eigvalsh(hessian * scale ** 2), -1, 0)):
        expected[f"hessian_24nm_{k}"] = values
    for k, values in enumerate(np.moveaxis(np.linalg.eigvalsh(tensor), -1, 0)):
        expected[f"structure_tensor_24nm_{k}"] = values
    for name, values in expected.items():
        got = stack[..., names.index(name)]
        np.testing.assert_allclose(got, values, rtol=1e-3, atol=1e-3 * np.abs(values).max(), err_msg=name)


def test_bad_input_is_refused(work, volume, tmp_path, make_layer):
    image, model = work["image"], work["model"]
    blank = make_layer("blank", np.full((32, 32, 16), 128, np.uint8), "image", resolution=RESOLUTION,
                       offset=OFFSET)
    result = run_cli("image", "classify", "train", image, "--annotations", blank, "--output",
                     tmp_path / "m", check=False)
    assert result.returncode == 2 and "need voxels of 255" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
    coarse = make_layer("coarse", work["marks"][:32, :32, :16], "image", resolution=(16, 16, 40),
                        offset=OFFSET)
    with pytest.raises(UserError, match="no mip at the image's resolution"):
        train_classifier(image, coarse, str(tmp_path / "m"))
    outside = make_layer("outside", work["marks"][:32, :32, :16], "image", resolution=RESOLUTION)
    with pytest.raises(UserError, match="do not lie inside"):
        train_classifier(image, outside, str(tmp_path / "m"))
    other = make_layer("other", volume.image[:64, :64, :32], "image", resolution=(16, 16, 40))
    with pytest.raises(UserError, match="trained at 8,8,40 nm"):
        create_classification_tasks(other, f"file://{tmp_path}/p", model)
    with pytest.raises(UserError, match="must be a multiple of 32,32,16"):
        create_classification_tasks(image, f"file://{tmp_path}/p", model, shape=(48, 64, 64))
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a voxel classifier model file"):
        create_classification_tasks(image, f"file://{tmp_path}/p", str(tmp_path / "junk.model"))
    with pytest.raises(UserError, match="the destination is the image"):
        create_classification_tasks(image, image, model)


def test_options_reach_the_tasks_and_a_changed_model_fails_them(work, tmp_path):
    path = tmp_path / "changing.model"
    path.write_bytes(CloudFile(work["model"]).get())
    tasks = create_classification_tasks(work["image"], f"file://{tmp_path}/p", str(path), fill_missing=True,
                                        compress="br", shape=(64, 64, 32))
    task = next(iter(tasks))
    assert len(tasks) == 3 * 2 * 3 and task.keywords["fill_missing"] is True  # every option reaches the task
    assert task.keywords["compress"] == "br" and task.keywords["shape"] == [64, 64, 32]
    assert task.keywords["model_sha256"] == classifier.digest(path.read_bytes())
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(RuntimeError, match="changed since these tasks were made"):
        task()


@pytest.mark.parametrize("make", [
    lambda: AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=40, random_state=0),
    lambda: AdaBoostClassifier(DecisionTreeClassifier(max_depth=3), n_estimators=15, random_state=0),
    lambda: RandomForestClassifier(n_estimators=12, min_samples_leaf=2, random_state=0, n_jobs=1),
], ids=["adaboost-stumps", "adaboost-trees", "random-forest"])
@pytest.mark.parametrize("classes", [2, 3])
def test_model_arrays_predict_as_scikit_learn(make, classes):
    """The plain-array model file gives scikit-learn's predict_proba bit for bit, for float64
    input (compared as float32) and, for forests (AdaBoost refuses them), NaN features."""
    rng = np.random.default_rng(classes)
    x = rng.normal(size=(3000, 6))
    y = np.digitize(x[:, 0] + x[:, 1] * x[:, 2] + 0.5 * rng.normal(size=len(x)), [-0.5, 0.5][:classes - 1])
    model = make()
    if isinstance(model, RandomForestClassifier):
        x[rng.random(x.shape) < 0.05] = np.nan  # trained with NaN, so they go either way
    model.fit(x[:2000], np.array(["a", "b", "c"])[y[:2000]])
    data = tree_ensemble.TreeEnsemble.from_sklearn(model).to_bytes("test", 1, {})
    loaded, _ = tree_ensemble.TreeEnsemble.from_bytes(data, "test", 1, "a test model")
    assert loaded.classes == tuple("abc"[:classes])
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.predict_proba(x[:0]).shape == (0, classes)


def test_oriented_features_blockwise_equal_whole_array():
    """The oriented family samples the smoothed image away from each voxel: its wider halo
    still makes every block equal the whole array, at the volume's edges too."""
    settings = features.FeatureSettings((16, 32), RESOLUTION, families=("basic", "oriented"))
    assert len(settings.names()) == 1 + 2 * (8 + len(features.ORIENTED))
    assert all(features.halo(settings) > features.halo(features.FeatureSettings((16, 32), RESOLUTION)))
    image = make_volume(shape=(96, 88, 40), count=2, seed=5).image
    whole = features.feature_stack(image, settings)
    for lo, hi in [((40, 36, 12), (64, 60, 28)), ((0, 60, 0), (30, 88, 16))]:
        margin = features.halo(settings)
        start, stop = np.maximum(np.subtract(lo, margin), 0), np.minimum(np.add(hi, margin), image.shape)
        block = image[tuple(slice(a, b) for a, b in zip(start, stop))]
        crop = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
        assert np.array_equal(features.feature_stack(block, settings, crop),
                              whole[tuple(slice(a, b) for a, b in zip(lo, hi))]), lo


def test_eigenvectors_match_lapack():
    matrices = np.random.default_rng(6).normal(size=(500, 3, 3))
    matrices += matrices.transpose(0, 2, 1)
    entries = [matrices[:, a, b] for a, b in features.PAIRS]
    values, vectors = np.linalg.eigh(matrices)
    for k, value in enumerate(features.eigenvalues64(entries)):
        mine = features.eigenvector(entries, value)
        np.testing.assert_allclose(np.abs((mine.T * vectors[:, :, k]).sum(axis=1)), 1, atol=1e-9)
    v = vectors[:, :, 2].T
    np.testing.assert_allclose(features.quadratic(entries, v), values[:, 2], atol=1e-9)


def scores(volume, settings, n_estimators):
    """(voxel average precision, object F1) on the x >= HALF half, trained on the other half (the
    image read whole, as training and prediction tasks read it with its halo)."""
    train, test = (slice(0, HALF), slice(None), slice(None)), (slice(HALF, None), slice(None), slice(None))
    labels = classifier.training_labels(annotate(volume, train))
    model = classifier.fit(volume.image, labels, settings, "adaboost", n_estimators, train)
    prob = classifier.to_uint8(classifier.predict(model, volume.image, test))
    truth = volume.clefts[HALF:]
    found = cc3d.dust(cc3d.connected_components(prob >= THRESHOLD, connectivity=26), DUST, connectivity=26)
    return average_precision_score((truth > 0).ravel(), prob.ravel()), object_f1(found, truth)


def test_oriented_features_raise_average_precision():
    """The must-show: on the hard synthetic volume (membranes nearly as dark as clefts), adding the
    oriented family raises voxel average precision at the same number of stumps (20)."""
    volume = make_volume(shape=(160, 128, 80), count=16, seed=0, hard=True)
    basic = scores(volume, features.FeatureSettings((16, 32), RESOLUTION), 20)
    both = features.FeatureSettings((16, 32), RESOLUTION, families=("basic", "oriented"))
    oriented = scores(volume, both, 20)
    print(f"basic AP {basic[0]:.3f} F1 {basic[1]:.3f}; "
          f"basic+oriented AP {oriented[0]:.3f} F1 {oriented[1]:.3f}")
    assert oriented[0] > basic[0] + 0.03


def test_settings_file_with_overrides_reaches_model_and_blockwise_prediction(volume, tmp_path):
    region = (slice(40, 104), slice(32, 96), slice(16, 48))
    image = write_layer(f"file://{tmp_path}/crop", volume.image[region], "image", resolution=RESOLUTION,
                        chunk=(16, 16, 16))
    annotations = write_layer(f"file://{tmp_path}/marks", annotate(volume, region, fraction=1.0), "image",
                              resolution=RESOLUTION, chunk=(16, 16, 16))
    (tmp_path / "train.yaml").write_text("scales: [16, 32]\nfeatures: [basic, oriented]\nn-estimators: 3\n"
                                         "seed: 4\n")
    run_cli("image", "classify", "train", image, "--annotations", annotations, "--output",
            tmp_path / "o.model", "--settings", tmp_path / "train.yaml", "--n-estimators", 5)
    model = classifier.Model.from_bytes((tmp_path / "o.model").read_bytes())
    assert model.settings.families == ("basic", "oriented") and model.settings.scales == (16.0, 32.0)
    assert len(model.ensemble.sizes) == 5 and model.training["seed"] == 4  # the option wins over the file
    run_cli("image", "classify", "predict", image, f"file://{tmp_path}/p", "--model", tmp_path / "o.model",
            "--shape", "32,32,16", "--dtype", "float32")
    expected = classifier.predict(model, volume.image[region])
    assert np.array_equal(read_mip(f"file://{tmp_path}/p", 0), expected)

    for text, message in [("n_trees: 3\n", "unknown key n_trees"), ("scales: 16\n", "scales must be"),
                          ("features: [shiny]\n", "feature families must be"), ("- 1\n", "one mapping")]:
        (tmp_path / "bad.json").write_text(text)
        result = run_cli("image", "classify", "train", image, "--annotations", annotations, "--output",
                         tmp_path / "bad.model", "--settings", tmp_path / "bad.json", check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.model").exists()


POOL_REGION = (slice(32, 128), slice(16, 112), slice(16, 64))  # 96x96x48 of the volume
POOL_SETTINGS = features.FeatureSettings((16,), RESOLUTION)  # 9 features
POOLED = ["intensity", "gaussian_16nm", "gradient_magnitude_16nm", "hessian_16nm_2"]


@pytest.fixture(scope="module")
def pooled_layers(tmp_path_factory, volume):
    """A crop of the image, its supervoxels (membranes 0) and its annotations as layers."""
    root = tmp_path_factory.mktemp("pool")
    image = volume.image[POOL_REGION]
    segments = supervoxels(image, boundary=volume.membranes[POOL_REGION])
    layer = lambda name, data, kind: write_layer(f"file://{root}/{name}", data, kind,
                                                 resolution=RESOLUTION, offset=OFFSET, chunk=(32, 32, 16))
    return {"root": root, "image": image, "segments": segments,
            "image_path": layer("image", image, "image"),
            "segments_path": layer("segments", segments, "segmentation"),
            "annotations": layer("annotations", annotate(volume, POOL_REGION, fraction=1.0), "image")}


def reference_table(segments, values):
    """Whole-array per-supervoxel means and deviations by np.bincount, in float64."""
    flat = segments.ravel()
    values = values.reshape(flat.size, -1).astype(np.float64)
    counts = np.bincount(flat)
    mean = np.stack([np.bincount(flat, v) for v in values.T], -1) / np.maximum(counts, 1)[:, None]
    square = np.stack([np.bincount(flat, v * v) for v in values.T], -1) / np.maximum(counts, 1)[:, None]
    return mean, np.sqrt(np.maximum(square - mean * mean, 0)), counts


def pooled_table(paths, segments, settings=POOL_SETTINGS):
    """The merged pooled table of the supervoxels in `segments`, as tasks read it; its work folder."""
    work, sha256 = pooling_for(paths[1], open_layer(paths[0]), 0, settings, POOLED, False)[2:]
    return table_rows(work.url, sha256, segments, len(POOLED)), Path(work.url[len("file://"):])


def test_pooled_table_from_tasks_equals_whole_array_reference(pooled_layers):
    """Pass 1 over boxes that cut supervoxels, merged by tasks that each own a range of supervoxel
    ids, equals bincount means over the whole label array (to float32 rounding), and is bit for
    bit the same table for another split and for the whole array as one piece."""
    image, segments, settings = pooled_layers["image"], pooled_layers["segments"], POOL_SETTINGS
    stack = features.feature_stack(image, settings).reshape(-1, len(settings.names()))
    chosen = stack[:, pooling.columns(settings.names(), POOLED)]
    paths = pooled_layers["image_path"], pooled_layers["segments_path"]
    tables = []
    for shape, merge_tasks in [((40, 40, 20), 6), ((96, 96, 48), 1)]:
        run_locally(create_pool_sum_tasks(*paths, scales=(16,), pool_features=POOLED, shape=shape,
                                          merge_tasks=merge_tasks), parallel=2, quiet=True)
        table, work = pooled_table(paths, segments)
        assert len(list((work / "table").glob("*.npz"))) == merge_tasks  # the ranges of the last run only
        tables.append(table)
        piece = segments[56:, 56:, 28:]  # a box reads the ranges of its supervoxels only
        rows = pooled_table(paths, piece)[0]
        assert set(np.unique(piece)) - {0} <= set(rows.ids)
        assert rows.ids.size < table.ids.size if merge_tasks > 1 else rows.ids.size == table.ids.size
    box_of = lambda x: (slice(x, x + 40), slice(0, 40), slice(0, 20))
    cut = set(np.unique(segments[box_of(0)])) & set(np.unique(segments[box_of(40)]))
    assert len(cut - {0}) >= 10  # supervoxels cross the task boundaries
    whole = pooling.whole_table(segments, chosen)
    for table in tables:
        assert all(np.array_equal(a, b) for a, b in zip(table.arrays().values(), whole.arrays().values()))
    mean, std, counts = reference_table(segments, chosen)
    ids = np.flatnonzero(counts)[1:]
    assert np.array_equal(whole.ids, ids) and ids.size > 300
    np.testing.assert_allclose(whole.mean, mean[ids], rtol=2e-6, atol=1e-6 * np.abs(mean).max())
    np.testing.assert_allclose(whole.std, std[ids], rtol=1e-4, atol=1e-5 * np.abs(std).max())
    per_voxel = pooling.pooled(segments, chosen, whole).reshape(-1, len(POOLED), 2)
    inside = segments.ravel() != 0
    where = np.searchsorted(ids, segments.ravel()[inside])
    assert np.array_equal(per_voxel[inside, :, 0], whole.mean[where])
    assert np.array_equal(per_voxel[~inside, :, 0], chosen[~inside]) and not per_voxel[~inside, :, 1].any()


def test_pooled_model_predicts_as_the_whole_array(pooled_layers, tmp_path):
    """Training with pooling (its two passes through the API), then predict --pool through the
    CLI and a queue (boxes cutting supervoxels), equals predicting the whole array with a table
    made from the whole label array."""
    image, segments = pooled_layers["image"], pooled_layers["segments"]
    image_path, segments_path = pooled_layers["image_path"], pooled_layers["segments_path"]
    model_path = tmp_path / "pooled.model"
    run_locally(create_pool_sum_tasks(image_path, segments_path, scales=(16,), pool_features=POOLED,
                                      shape=(48, 48, 24)), parallel=2, quiet=True)
    train_classifier(image_path, pooled_layers["annotations"], str(model_path), scales=(16,), n_estimators=15,
                     max_samples=20000, pool=segments_path, pool_features=POOLED)
    model = classifier.Model.from_bytes(model_path.read_bytes())
    assert model.pooled == tuple(POOLED) and model.training["pool"]["layer"] == segments_path
    assert model.ensemble.n_features == len(model.feature_names()) == 9 + 2 * len(POOLED)
    assert max(model.ensemble.feature) >= 9  # the stumps use pooled features
    queue = f"fq://{tmp_path}/queue"
    run_cli("image", "classify", "predict", image_path, f"file://{tmp_path}/prob", "--model", model_path,
            "--pool", segments_path, "--shape", "64,32,32", "--queue", queue)
    run_cli("-p", "2", "execute", "-x", queue)
    stack = features.feature_stack(image, model.settings).reshape(-1, 9)
    table = pooling.whole_table(segments, stack[:, pooling.columns(model.settings.names(), POOLED)])
    whole = classifier.to_uint8(classifier.predict(model, image, pool=classifier.Pooling(tuple(POOLED),
                                                                                          segments, table)))
    assert np.array_equal(read_mip(f"file://{tmp_path}/prob", 0), whole)
    # another run of the same pooled sums while a prediction's tasks wait leaves them a table they trust
    again = create_classification_tasks(image_path, f"file://{tmp_path}/again", str(model_path),
                                        shape=(64, 32, 32), pool=segments_path)
    enqueue(again, f"{queue}2")
    run_locally(create_pool_sum_tasks(image_path, segments_path, model_path=str(model_path),
                                      shape=(64, 32, 32)), parallel=2, quiet=True)
    run_cli("execute", "-x", "--max-attempts", 1, f"{queue}2")
    assert np.array_equal(read_mip(f"file://{tmp_path}/again", 0), whole)


def test_pooling_bad_input_is_refused(pooled_layers, work, tmp_path, make_layer):
    """A pooled model without --pool, supervoxels of another shape, unknown pooled features, blank
    annotations: one line, exit 2, nothing written (the pooled passes do not start); a model
    trained without pooling given --pool is refused."""
    image_path, segments_path = pooled_layers["image_path"], pooled_layers["segments_path"]
    pooled_model = tmp_path / "p.model"
    piece, segments = pooled_layers["image"][:32, :32, :16], pooled_layers["segments"][:32, :32, :16]
    labels = np.where(piece < 100, 1, 0).astype(np.int8)
    table = pooling.whole_table(segments, piece.astype(np.float32))
    model = classifier.fit(piece, labels, POOL_SETTINGS, "adaboost", 2,
                           pool=classifier.Pooling(("intensity",), segments, table))
    pooled_model.write_bytes(model.to_bytes())
    smaller = make_layer("smaller", pooled_layers["segments"][:64], "segmentation", resolution=RESOLUTION,
                         offset=OFFSET)
    blank = make_layer("blank", np.full((32, 32, 16), 128, np.uint8), "image", resolution=RESOLUTION,
                       offset=OFFSET)
    cases = [
        (["predict", image_path, f"file://{tmp_path}/a", "--model", pooled_model],
         "trained with supervoxel-pooled"),
        (["predict", image_path, f"file://{tmp_path}/b", "--model", pooled_model, "--pool", smaller],
         "no mip on the image's voxel grid"),
        (["train", image_path, "--annotations", pooled_layers["annotations"], "--output", tmp_path / "d",
          "--scales", "16", "--pool", segments_path, "--pool-features", "intensity,shininess"],
         "pooled features must be distinct feature names"),
        (["train", image_path, "--annotations", blank, "--output", tmp_path / "e", "--scales", "16", "--pool",
          segments_path], "need voxels of 255"),
        (["predict", image_path, image_path, "--model", pooled_model, "--pool", segments_path],
         "write the probabilities into a new path"),  # DEST checked before the pooled passes
    ]
    segment_files = sorted(Path(segments_path[len("file://"):]).rglob("*"))
    for args, message in cases:
        result = run_cli("image", "classify", *args, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not any((tmp_path / name).exists() for name in "abde")
    assert sorted(Path(segments_path[len("file://"):]).rglob("*")) == segment_files  # no pooled sums
    assert sorted(p.name for p in (tmp_path / "smaller").iterdir()) == ["8_8_40", "info"]
    for tasks in (lambda: create_pool_sum_tasks(work["image"], segments_path, model_path=work["model"]),
                  lambda: create_classification_tasks(work["image"], f"file://{tmp_path}/c", work["model"],
                                                      pool=segments_path)):
        with pytest.raises(UserError, match="trained without pooled features; predict without --pool"):
            tasks()
    assert not (tmp_path / "c").exists()


def test_pooled_verbs_are_three_steps_whose_functions_take_their_arguments():
    """train --pool and predict --pool: the sums pass, the merge it is followed by, then the verb."""
    pool = "--pool file:///data/seg"
    for line, last in [(f"image classify train file:///data/em --annotations file:///data/a --output /tmp/m "
                        f"{pool} --pool-features intensity,gaussian_16nm", "train_classifier"),
                       (f"image classify predict file:///data/em file:///tmp/p --model /tmp/m {pool}",
                        "create_classification_tasks")]:
        chain = step_stages("s", line)
        assert [stage.call for stage in chain] == ["create_pool_sum_tasks", last]
        for stage in chain:
            inspect.signature(stages.function(stage.call)).bind(**stage.kwargs)
        assert chain[0].kwargs["pool_path"] == chain[1].kwargs["pool"] == "file:///data/seg"
    merge = stages.function("create_pool_merge_tasks")
    inspect.signature(merge).bind(work="file:///w", grid={}, num_tasks=None)
