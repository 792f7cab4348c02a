"""Voxel classification of one box: read it with a halo, compute features, predict, write.

The halo (igneous_like.features.halo of the model's settings) is clipped at the volume's edge,
where the filters' boundary mode applies to the box as it does to the whole volume, so every
box's probabilities equal those of predicting the whole volume at once: no seams.

With supervoxel-pooled features, PoolSumTask first writes each box's exact per-supervoxel sums
into a work directory beside the supervoxel layer; they are merged into one table
(task_creation.classify.merge_pool_sums) that prediction looks up per voxel.
"""
from functools import lru_cache
from typing import Optional, Sequence, Union

import numpy as np
from cloudfiles import CloudFile
from cloudvolume import CloudVolume
from taskqueue import queueable

from igneous_like import classifier, pooling
from igneous_like.features import FeatureSettings, feature_stack, halo
from igneous_like.grid import TaskBox
from igneous_like.stage import WorkDir, from_npz

POOL_RECORD = "record.json"
POOL_TABLE = "table.npz"


def part_name(box) -> str:
    return f"parts/{box.to_filename()}"


def read_image(image_path: str, mip: int, fill_missing: bool, settings: FeatureSettings,
               offset: Sequence[int], shape: Sequence[int]):
    """(pixels of the box with the features' halo, the box) of one task."""
    source = CloudVolume(image_path, mip=mip, fill_missing=fill_missing, progress=False)
    margin = halo(settings)
    box = TaskBox.at(offset, shape, source.meta.bounds(mip), low=margin, high=margin)
    return np.asarray(source.image.download(box.read, mip))[..., 0], box


def read_segments(pool_path: str, pool_mip: int, box, fill_missing: bool = False) -> np.ndarray:
    """The supervoxel ids of a box (the layer is on the image's voxel grid)."""
    cv = CloudVolume(pool_path, mip=pool_mip, fill_missing=fill_missing, progress=False)
    return np.asarray(cv.download(box, mip=pool_mip))[..., 0]


@queueable
def PoolSumTask(work: str, offset: Sequence[int], shape: Sequence[int]) -> None:
    """Write one box's exact per-supervoxel sums of the pooled features (pass 1 of pooling)."""
    work = WorkDir(work)
    record = work.load(POOL_RECORD)
    settings = FeatureSettings.from_json(record["settings"])
    image, box = read_image(record["image"], record["mip"], record["fill_missing"], settings, offset, shape)
    features = feature_stack(image, settings, box.own)
    chosen = features.reshape(-1, features.shape[-1])[:, pooling.columns(settings.names(), record["pooled"])]
    segments = read_segments(record["pool"], record["pool_mip"], box.write, record["fill_missing"])
    work.put_arrays(part_name(box.write), **pooling.partial_sums(segments, chosen))


@lru_cache(maxsize=2)
def load_table(work: str, sha256: str) -> pooling.PoolTable:
    """The merged pooled table, once per worker; it must still be the table the run was made for."""
    data = WorkDir(work).files.get(POOL_TABLE)
    if data is None or classifier.digest(data) != sha256:
        raise RuntimeError(f"the pooled table {work}/{POOL_TABLE} changed or is gone since these tasks were "
                           "made; enqueue the prediction again")
    return pooling.PoolTable.from_arrays(from_npz(data))


@lru_cache(maxsize=4)
def load_model(model_path: str, sha256: str) -> classifier.Model:
    """The model at `model_path`, once per worker; it must still be the file the run was made for."""
    data = CloudFile(model_path).get()
    if data is None:
        raise FileNotFoundError(f"model file {model_path} is gone")
    if classifier.digest(data) != sha256:
        raise RuntimeError(f"model file {model_path} changed since these tasks were made; "
                           "enqueue the prediction again")
    return classifier.Model.from_bytes(data)


@queueable
def ClassifyTask(image_path: str, dest_path: str, model_path: str, model_sha256: str, mip: int,
                 offset: Sequence[int], shape: Sequence[int], fill_missing: bool = False,
                 compress: Union[str, bool, None] = "gzip", pool_path: Optional[str] = None,
                 pool_mip: int = 0, pool_work: Optional[str] = None,
                 pool_sha256: Optional[str] = None) -> None:
    """Write the positive-class probability of one box of the image into DEST (uint8 0-255 or float32),
    with the pooled features of the supervoxels in `pool_path` where the model has them."""
    model = load_model(model_path, model_sha256)
    dest = CloudVolume(dest_path, mip=0, compress=compress, progress=False)
    image, box = read_image(image_path, mip, fill_missing, model.settings, offset, shape)
    pool = None
    if pool_path is not None:
        pool = classifier.Pooling(model.pooled, read_segments(pool_path, pool_mip, box.write, fill_missing),
                                  load_table(pool_work, pool_sha256))
    probability = classifier.predict(model, image, box.own, pool)
    out = classifier.to_uint8(probability) if dest.dtype == np.uint8 else probability
    dest.image.upload(out[..., np.newaxis], box.write.minpt, 0)
