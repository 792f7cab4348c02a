"""Voxel classification (synapse detection): train a model from sparse annotations, then predict
a probability layer blockwise.

Training runs here, on the annotated region; prediction is tasks over any volume. The model
file (see igneous_like.classifier) carries its feature settings, so prediction computes the
features training saw. With `pool` (a supervoxel layer on the image's grid), pooled features
need two passes over the whole volume: create_pool_sum_tasks writes each box's per-supervoxel
sums, create_pool_merge_tasks adds them into a table beside the supervoxel layer, one task per
range of supervoxel ids, and training or prediction looks up the ranges it needs. Chain to
synapse objects: `image ccl auto DEST OBJECTS --threshold-gte T --dust N`, then measure the
objects.
"""
import hashlib
import json
from functools import partial
from typing import Optional, Sequence, Tuple

import numpy as np
from cloudfiles import CloudFile
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox

from igneous_like import classifier, pooling
from igneous_like.errors import UserError
from igneous_like.features import FAMILIES, FeatureSettings, halo
from igneous_like.grid import TaskBox
from igneous_like.stage import WorkDir, id_ranges
from igneous_like.task_creation.common import (
    Grid,
    Stage,
    Tasks,
    compression,
    csv,
    ints,
    layer_path,
    new_layer_path,
    open_layer,
    read_yaml,
    record_provenance,
)
from igneous_like.task_creation.image import checked_shape, open_destination
from igneous_like.tasks.classify import (
    POOL_MERGE_RECORD,
    POOL_RECORD,
    ClassifyTask,
    PoolMergeTask,
    PoolSumTask,
    read_segments,
    shard_name,
    summary_name,
    table_index,
    table_rows,
)

DEFAULT_SCALES = (40, 80, 160)  # nm
DEFAULT_FEATURES = ("basic",)
# what a training settings file may give: key -> (the type its value must have, what to write)
SETTINGS = {"scales": (list, "a list of nm values"), "features": (list, f"a list of {', '.join(FAMILIES)}"),
            "method": (str, " or ".join(classifier.METHODS)), "n_estimators": (int, "a count"),
            "erode": (int, "voxels"), "dilate": (int, "voxels"), "max_samples": (int, "a count, 0 for all"),
            "seed": (int, "a number"), "mip": (int, "a mip level")}
DEFAULT_SHAPE = (256, 256, 64)
POOL_ROWS_PER_MERGE_TASK = 2_000_000  # part rows (supervoxel, feature, exponent) per pooled merge task
OUTPUT_DTYPES = ("uint8", "float32")


def open_image(path: str, mip: int) -> CloudVolume:
    """The image layer to classify: one channel of numbers."""
    cv = open_layer(path, mip)
    if cv.num_channels != 1 or np.dtype(cv.dtype).kind not in "uif":
        raise UserError(f"classification needs one channel of numbers; {cv.cloudpath} has "
                        f"{cv.num_channels} channel(s) of {cv.dtype}")
    return cv


def annotation_mip(image: CloudVolume, mip: int, annotations: CloudVolume) -> int:
    """The annotation layer's mip at the image mip's resolution, its bounds inside the image's."""
    resolution = image.meta.resolution(mip)
    found = [level for level in range(len(annotations.info["scales"]))
             if np.allclose(annotations.meta.resolution(level), resolution)]
    if not found:
        raise UserError(f"{annotations.cloudpath} has no mip at the image's resolution {csv(resolution)} nm")
    level = found[0]
    if annotations.num_channels != 1 or np.dtype(annotations.dtype).kind not in "ui":
        raise UserError(f"annotations need one channel of integers (255 positive, 0 negative); "
                        f"{annotations.cloudpath} has {annotations.num_channels} of {annotations.dtype}")
    box, image_box = annotations.meta.bounds(level), image.meta.bounds(mip)
    if Bbox.intersection(box, image_box) != box:
        raise UserError(f"the annotations' bounds {box} do not lie inside the image's {image_box}")
    return level


def labeled_region(annotations: np.ndarray, offset) -> Tuple[Bbox, Tuple[slice, ...]]:
    """The smallest box (volume voxels, and as slices of `annotations`) holding every 0 and 255."""
    marked = (annotations == classifier.POSITIVE) | (annotations == classifier.NEGATIVE)
    if not (annotations == classifier.POSITIVE).any() or not (annotations == classifier.NEGATIVE).any():
        raise UserError(f"the annotations need voxels of {classifier.POSITIVE} (positive) and "
                        f"{classifier.NEGATIVE} (negative); they hold {int(marked.sum())} such voxels "
                        f"({int((annotations == classifier.POSITIVE).sum())} positive)")
    lo, hi = [], []
    for axis in range(3):
        present = np.flatnonzero(marked.any(axis=tuple(a for a in range(3) if a != axis)))
        lo.append(int(present[0]))
        hi.append(int(present[-1]) + 1)
    region = tuple(slice(a, b) for a, b in zip(lo, hi))
    return Bbox(np.add(offset, lo), np.add(offset, hi)), region


def read_training_settings(path: str) -> dict:
    """A training settings file (YAML or JSON, one mapping of SETTINGS keys; dashes or
    underscores), checked, so one file keeps a training recipe that the command line can vary."""
    data = read_yaml(path, "settings file")
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold one mapping of {', '.join(SETTINGS)}")
    out = {str(key).replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(out) - set(SETTINGS))
    if unknown:
        raise UserError(f"{path}: unknown key {', '.join(unknown)}; a training settings file has "
                        f"{', '.join(SETTINGS)}")
    for key, value in out.items():
        kind, what = SETTINGS[key]
        wrong = not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0)
        if wrong or (key == "scales" and not all(type(v) in (int, float) for v in value)):
            raise UserError(f"{path}: {key} must be {what}, not {json.dumps(value)}")
    return out


def train_classifier(image_path: str, annotations_path: str, output: str, mip: int = 0,
                     method: str = "adaboost", n_estimators: int = 100,
                     scales: Sequence[float] = DEFAULT_SCALES, features: Sequence[str] = DEFAULT_FEATURES,
                     erode: int = 0, dilate: int = 0, max_samples: Optional[int] = 500_000, seed: int = 0,
                     fill_missing: bool = False, pool: Optional[str] = None,
                     pool_features: Optional[Sequence[str]] = None) -> dict:
    """Fit a voxel classifier to the annotated voxels and write the model file to `output`.

    Reads the annotation layer whole (make it a cutout of the annotated region) and the image
    around its labeled voxels, with the halo the features need. `features` names the feature
    families (see igneous_like.features), kept in the model file for prediction. With `pool`, a
    supervoxel layer whose pooled table create_pool_sum_tasks made, `pool_features` (default all)
    are pooled too. Returns a summary.
    """
    image = open_image(image_path, mip)
    settings = feature_settings(image, mip, scales, features)
    if pool is not None:
        pooled = pooled_features(settings, pool_features)
        layer, pool_mip, work, table_sha = pooling_for(pool, image, mip, settings, pooled, fill_missing)
    annotations, marks, box, region = read_annotations(image, mip, annotations_path, fill_missing)
    if method not in classifier.METHODS:
        raise UserError(f"unknown --method {method!r}; choose one of {', '.join(classifier.METHODS)}")
    try:
        labels = classifier.training_labels(marks[region], erode, dilate)
        margin = halo(settings)
        area = TaskBox.at(box.minpt, box.size3(), image.meta.bounds(mip), low=margin, high=margin)
        pixels = np.asarray(CloudVolume(image.cloudpath, mip=mip, fill_missing=fill_missing, progress=False)
                            .download(area.read, mip=mip))[..., 0]
        if pool is not None:
            segments = read_segments(layer.cloudpath, pool_mip, box, fill_missing)
            together = classifier.Pooling(pooled, segments, table_rows(work.url, table_sha, segments,
                                                                       len(pooled)))
        else:
            together = None
        model = classifier.fit(pixels, labels, settings, method, n_estimators, area.own, max_samples, seed,
                               together)
    except ValueError as err:
        raise UserError(str(err)) from err
    model.training = {"image": image.cloudpath, "mip": mip, "annotations": annotations.cloudpath,
                      "box": [ints(box.minpt), ints(box.maxpt)], "erode": erode, "dilate": dilate,
                      "n_estimators": n_estimators, "max_samples": max_samples, "seed": seed,
                      "features": list(settings.families),
                      "positive": int((labels == 1).sum()), "negative": int((labels == 0).sum()),
                      "pool": None if pool is None else {"layer": layer.cloudpath, "table_sha256": table_sha}}
    data = model.to_bytes()
    output = layer_path(output)
    CloudFile(output).put(data, compress=None)
    return dict(model.training, model=output, box=box, features=len(model.feature_names()),
                sha256=classifier.digest(data))


def read_annotations(image: CloudVolume, mip: int, annotations_path: str,
                     fill_missing: bool) -> Tuple[CloudVolume, np.ndarray, Bbox, Tuple[slice, ...]]:
    """(the annotation layer, its marks, the box of the labeled ones and their slices), checked."""
    annotations = open_layer(annotations_path, fill_missing=fill_missing)
    level = annotation_mip(image, mip, annotations)
    labels_box = annotations.meta.bounds(level)
    marks = np.asarray(annotations.download(labels_box, mip=level))[..., 0]
    return (annotations, marks) + labeled_region(marks, labels_box.minpt)


def feature_settings(image: CloudVolume, mip: int, scales: Sequence[float],
                     features: Sequence[str]) -> FeatureSettings:
    """The feature settings of training at the image mip's resolution, checked."""
    try:
        settings = FeatureSettings(scales, image.meta.resolution(mip), families=tuple(features))
    except ValueError as err:
        raise UserError(str(err)) from err
    check_scales(settings, image, mip)
    return settings


def check_scales(settings: FeatureSettings, image: CloudVolume, mip: int) -> None:
    """Each feature scale within the image: a Gaussian wider than the image along some axis blurs
    it flat and only costs time (10^6 nm is hours of filtering)."""
    size, resolution = image.meta.volume_size(mip), image.meta.resolution(mip)
    widest = float(min(size * resolution))
    for scale in settings.scales:
        if np.any(settings.sigmas(scale) > size):
            raise UserError(f"--scales {csv([scale])} nm is wider than the image ({csv(size)} voxels of "
                            f"{csv(resolution)} nm at mip {mip}); use scales up to {csv([widest])} nm")


def read_model(path: str) -> Tuple[classifier.Model, str, str]:
    """(model, its full path, its sha256), or a clear error."""
    path = layer_path(path)
    data = CloudFile(path).get()
    if data is None:
        raise UserError(f"no model file at {path}; train one with `igneous-like image classify train`")
    try:
        return classifier.Model.from_bytes(data), path, classifier.digest(data)
    except ValueError as err:
        raise UserError(f"{path}: {err}") from err


def check_fit(model: classifier.Model, image: CloudVolume, mip: int) -> None:
    """The image must be what the model was trained on: same resolution and dtype."""
    resolution = image.meta.resolution(mip)
    if not np.allclose(resolution, model.settings.resolution):
        raise UserError(f"the model was trained at {csv(model.settings.resolution)} nm; {image.cloudpath} "
                        f"mip {mip} is {csv(resolution)} nm: pick the mip of that resolution or train again")
    if np.dtype(image.dtype).name != model.dtype:
        raise UserError(f"the model was trained on {model.dtype} images; {image.cloudpath} is {image.dtype}")


def check_pooling(model: classifier.Model, model_path: str, pool: Optional[str]) -> None:
    """A model trained with pooled features is given supervoxels (`pool`), and only such a model."""
    if model.pooled and pool is None:
        raise UserError(f"{model_path} was trained with supervoxel-pooled features; give --pool SEG, "
                        "supervoxels on the image's voxel grid")
    if pool is not None and not model.pooled:
        raise UserError(f"{model_path} was trained without pooled features; predict without --pool")


def open_pool(pool_path: str, image: CloudVolume, mip: int,
              fill_missing: bool = False) -> Tuple[CloudVolume, int]:
    """The supervoxel layer and its mip on the image mip's voxel grid (same resolution and bounds)."""
    cv = open_layer(pool_path, fill_missing=fill_missing)
    if cv.num_channels != 1 or np.dtype(cv.dtype).kind not in "ui":
        raise UserError(f"--pool needs one channel of supervoxel ids (integers); {cv.cloudpath} has "
                        f"{cv.num_channels} of {cv.dtype}")
    resolution, bounds = image.meta.resolution(mip), image.meta.bounds(mip)
    for level in range(len(cv.info["scales"])):
        if np.allclose(cv.meta.resolution(level), resolution) and cv.meta.bounds(level) == bounds:
            return cv, level
    raise UserError(f"--pool {cv.cloudpath} has no mip on the image's voxel grid ({csv(resolution)} nm, "
                    f"bounds {bounds}); give supervoxels of the same shape as {image.cloudpath} mip {mip}")


def pooled_features(settings: FeatureSettings, names: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """The features to pool: the given names (default all), checked against the feature stack."""
    names = tuple(settings.names() if not names else names)
    try:
        pooling.columns(settings.names(), names)
    except ValueError as err:
        raise UserError(f"--pool-features: {err}") from err
    return names


def pool_work(pool: CloudVolume, level: int, image: CloudVolume, mip: int, settings: FeatureSettings,
              pooled: Sequence[str], fill_missing: bool) -> WorkDir:
    """POOL/KEY/pool-DIGEST: one table per image, feature settings and pooled features, so training
    and prediction with the same ones share it."""
    spec = {"image": image.cloudpath, "mip": mip, "settings": settings.to_json(), "pooled": list(pooled),
            "fill_missing": fill_missing}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return WorkDir.of(pool, level, f"pool-{key}")


def create_pool_sum_tasks(image_path: str, pool_path: str, mip: int = 0, model_path: Optional[str] = None,
                          scales: Sequence[float] = DEFAULT_SCALES,
                          features: Sequence[str] = DEFAULT_FEATURES,
                          pool_features: Optional[Sequence[str]] = None,
                          shape: Optional[Sequence[int]] = None, fill_missing: bool = False,
                          annotations_path: Optional[str] = None, dest_path: Optional[str] = None,
                          dtype: str = "uint8", merge_tasks: Optional[int] = None) -> Tasks:
    """Pass 1 of pooled features: tasks that write each box's exact per-supervoxel sums of the
    pooled features of the whole image, then create_pool_merge_tasks (`merge_tasks` of them, by
    default one per POOL_ROWS_PER_MERGE_TASK rows of sums). The features are the model's
    (`model_path`, for prediction) or those of `scales`, `features` and `pool_features` (training).
    The later pass's input is checked here, so that a mistake stops before anything is written:
    training's `annotations_path`, prediction's `dest_path`, `dtype` and `shape`."""
    image = open_image(image_path, mip)
    if annotations_path is not None:
        read_annotations(image, mip, annotations_path, fill_missing)
    if model_path is not None:
        model, path, _ = read_model(model_path)
        check_fit(model, image, mip)
        check_pooling(model, path, pool_path)
        settings, pooled = model.settings, model.pooled
        if dest_path is not None:
            prediction_output(image, mip, dest_path, dtype, shape)
    else:
        settings = feature_settings(image, mip, scales, features)
        pooled = pooled_features(settings, pool_features)
    if merge_tasks is not None and merge_tasks < 1:
        raise UserError(f"merge_tasks must be at least 1, got {merge_tasks}")
    pool, level = open_pool(pool_path, image, mip, fill_missing)
    grid = Grid.over(image.meta.bounds(mip), np.minimum(shape or DEFAULT_SHAPE, image.meta.volume_size(mip)))
    work = pool_work(pool, level, image, mip, settings, pooled, fill_missing)
    work.save(POOL_RECORD, dict(image=image.cloudpath, mip=mip, pool=pool.cloudpath, pool_mip=level,
                                settings=settings.to_json(), pooled=list(pooled), fill_missing=fill_missing))
    make = lambda box: partial(PoolSumTask, work=work.url, offset=ints(box.minpt), shape=ints(box.size3()))
    merge = Stage("create_pool_merge_tasks",
                  {"work": work.url, "grid": grid.to_json(), "num_tasks": merge_tasks}, "merge")
    return Tasks(grid, make, f"supervoxel sums of {len(pooled)} features of {image.cloudpath} over "
                             f"{pool.cloudpath}", then=(merge,))


def create_pool_merge_tasks(work: str, grid: dict, num_tasks: Optional[int] = None) -> Tasks:
    """Pass 1b: tasks that each add up the sums of one range of supervoxel ids into its part of the
    table of means and deviations; needs every sum task of `grid` done. The ranges come from id
    samples of each part, so that each task gets about as many rows."""
    work = WorkDir(work)
    work.require(POOL_RECORD, "no pooled sums here; run create_pool_sum_tasks first")
    names = [summary_name(box) for box in Grid.from_json(grid)]
    summaries = [json.loads(data) for data in work.gather(names, "supervoxel sum tasks")]
    rows = sum(summary["rows"] for summary in summaries)
    edges = id_ranges([(s["rows"], np.array(s["samples"], np.uint64)) for s in summaries],
                      num_tasks or max(1, -(-rows // POOL_ROWS_PER_MERGE_TASK)))
    spans = [(int(low), int(high)) for low, high in zip(edges[:-1], edges[1:])]
    current = {shard_name(low, high, suffix) for low, high in spans for suffix in (".npz", ".json")}
    work.files.delete([name for name in work.files.list(prefix="table/") if name not in current])
    work.save(POOL_MERGE_RECORD, {"edges": [int(e) for e in edges]})
    make = lambda span: partial(PoolMergeTask, work=work.url, grid=grid, low=span[0], high=span[1])
    return Tasks(spans, make, f"pooled table of {work.url} in {len(spans)} ranges of supervoxel ids")


def pooling_for(pool_path: str, image: CloudVolume, mip: int, settings: FeatureSettings,
                pooled: Sequence[str], fill_missing: bool) -> Tuple[CloudVolume, int, WorkDir, str]:
    """The supervoxel layer, its mip, the work directory and the sha256 of its merged table."""
    pool, level = open_pool(pool_path, image, mip, fill_missing)
    work = pool_work(pool, level, image, mip, settings, pooled, fill_missing)
    return pool, level, work, table_index(work)[2]


def probability_info(image: CloudVolume, mip: int, dtype: str) -> dict:
    """One image scale with the source mip's resolution, bounds and chunking."""
    return CloudVolume.create_new_info(
        num_channels=1, layer_type="image", data_type=dtype, encoding="raw",
        resolution=ints(image.meta.resolution(mip)), voxel_offset=ints(image.meta.voxel_offset(mip)),
        volume_size=ints(image.meta.volume_size(mip)), chunk_size=ints(image.meta.chunk_size(mip)))


def prediction_output(image: CloudVolume, mip: int, dest_path: str, dtype: str,
                      shape: Optional[Sequence[int]]) -> Tuple[CloudVolume, Sequence[int]]:
    """DEST's handle (nothing written yet) and the task shape, both checked: a new path, a known
    dtype, an existing DEST of the same geometry, whole chunks."""
    if dtype not in OUTPUT_DTYPES:
        raise UserError(f"unknown output dtype {dtype!r}; choose one of {', '.join(OUTPUT_DTYPES)}")
    dest = new_layer_path(image.cloudpath, dest_path, "write the probabilities into a new path", "the image")
    chunk, size = image.meta.chunk_size(mip), image.meta.volume_size(mip)
    if shape is None:
        shape = np.minimum(-(-np.asarray(DEFAULT_SHAPE) // chunk) * chunk, size)
    shape = checked_shape(shape, chunk, size, "writes whole chunks of DEST")
    return open_destination(dest, probability_info(image, mip, dtype), 0), shape


def create_classification_tasks(image_path: str, dest_path: str, model_path: str, mip: int = 0,
                                shape: Optional[Sequence[int]] = None, dtype: str = "uint8",
                                compress: Optional[str] = "gzip", fill_missing: bool = False,
                                pool: Optional[str] = None) -> Tasks:
    """Tasks that write the model's positive-class probability of every voxel into a new image
    layer DEST (uint8 0-255 or float32), with the source mip's resolution, bounds and chunks.

    `shape` must be a multiple of the chunk size, so that each task writes whole chunks. A model
    trained with pooled features needs `pool`, supervoxels whose table create_pool_sum_tasks made.
    """
    image = open_image(image_path, mip)
    model, model_path, sha256 = read_model(model_path)
    check_fit(model, image, mip)
    check_pooling(model, model_path, pool)
    pool_kwargs = {}
    if pool is not None:
        layer, level, work, table_sha256 = pooling_for(pool, image, mip, model.settings, model.pooled,
                                                       fill_missing)
        pool_kwargs = dict(pool_path=layer.cloudpath, pool_mip=level, pool_work=work.url,
                           pool_sha256=table_sha256)
    out, shape = prediction_output(image, mip, dest_path, dtype, shape)
    out.commit_info()
    record_provenance(out, {"task": "ClassifyTask", "src": image.cloudpath, "mip": mip, "model": model_path,
                            "model_sha256": sha256, "method": model.method,
                            "features": model.settings.to_json(), "pooled": list(model.pooled),
                            "pool": pool_kwargs.get("pool_path")})
    bounds = image.meta.bounds(mip)
    make = lambda box: partial(ClassifyTask, image_path=image.cloudpath, dest_path=out.cloudpath,
                               model_path=model_path, model_sha256=sha256, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), fill_missing=fill_missing,
                               compress=compression(compress), **pool_kwargs)
    return Tasks(Grid.over(bounds, shape), make,
                 f"classify {image.cloudpath} mip {mip} into {out.cloudpath}", mips=range(0, 1))
