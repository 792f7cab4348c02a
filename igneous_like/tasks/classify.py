"""Voxel classification of one box: read it with a halo, compute features, predict, write.

The halo (igneous_like.features.halo of the model's settings) is clipped at the volume's edge,
where the filters' boundary mode applies to the box as it does to the whole volume, so every
box's probabilities equal those of predicting the whole volume at once: no seams.

With supervoxel-pooled features, PoolSumTask first writes each box's exact per-supervoxel sums
into a work directory beside the supervoxel layer (SEG/KEY/pool-DIGEST/):

    record.json              the image, features and supervoxel layer of the sums
    parts/BOX.npz, BOX.json  one box's sums; then its row count and id samples (written last)
    merge.json               the id ranges of the last merge step (its tasks carry the grid)
    table/LO-HI.npz, .json   the means and deviations of supervoxels LO <= id < HI; then their sha256

PoolMergeTask makes each range's table from the parts whose ids reach into it, so no process holds
every supervoxel; a task that pools reads only the tables of the ranges its box's supervoxels lie
in. Every file's content is the same however often, and by how many runs at once, it is
computed, so runs of the same features share the directory without clearing it.
"""
import hashlib
import json
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from cloudfiles import CloudFile
from cloudvolume import CloudVolume
from taskqueue import queueable

from igneous_like import classifier, pooling
from igneous_like.features import FeatureSettings, feature_stack, halo
from igneous_like.grid import Grid, TaskBox
from igneous_like.stage import WorkDir, from_npz, id_samples, merged_as_they_come

POOL_RECORD = "record.json"
POOL_MERGE_RECORD = "merge.json"
SAMPLES = 17  # ids of each part that the merge step plans its ranges from


def part_name(box) -> str:
    return f"parts/{box.to_filename()}.npz"


def summary_name(box) -> str:
    return f"parts/{box.to_filename()}.json"


def shard_name(low: int, high: int, suffix: str = ".npz") -> str:
    return f"table/{int(low):020d}-{int(high):020d}{suffix}"


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
    """Write one box's exact per-supervoxel sums of the pooled features (pass 1 of pooling), then
    its summary, whose presence says the part is whole."""
    work = WorkDir(work)
    record = work.load(POOL_RECORD)
    settings = FeatureSettings.from_json(record["settings"])
    image, box = read_image(record["image"], record["mip"], record["fill_missing"], settings, offset, shape)
    features = feature_stack(image, settings, box.own)
    chosen = features.reshape(-1, features.shape[-1])[:, pooling.columns(settings.names(), record["pooled"])]
    segments = read_segments(record["pool"], record["pool_mip"], box.write, record["fill_missing"])
    sums = pooling.partial_sums(segments, chosen)
    work.put_arrays(part_name(box.write), **sums)
    work.files.put_json(summary_name(box.write), {
        "rows": int(sums["segment"].size), "samples": [int(i) for i in id_samples(sums["ids"], SAMPLES)]})


@queueable
def PoolMergeTask(work: str, grid: dict, low: int, high: int) -> None:
    """Add up the sums of supervoxels low <= id < high from the parts whose ids reach into the
    range, and write their table, then its sha256."""
    work = WorkDir(work)
    n_features = len(work.load(POOL_RECORD)["pooled"])
    boxes = list(Grid.from_json(grid))
    summaries = map(json.loads, work.gather([summary_name(box) for box in boxes], "supervoxel sum tasks"))
    names = [part_name(box) for box, summary in zip(boxes, summaries)
             if summary["rows"] and summary["samples"][0] < high and summary["samples"][-1] >= low]
    parts = (pooling.in_range(part, low, high) for part in work.gather_arrays(names, "supervoxel sum tasks"))
    sums = merged_as_they_come(parts, pooling.merge_sums, lambda part: len(part["segment"]))
    table = pooling.PoolTable.from_sums(sums, n_features)
    work.put_arrays(shard_name(low, high), **table.arrays())
    work.files.put_json(shard_name(low, high, ".json"),
                        {"sha256": table.digest(), "supervoxels": int(table.ids.size)})


def table_index(work: WorkDir) -> Tuple[List[Tuple[int, int]], List[str], str]:
    """(the id ranges of the merged table, each range's sha256, the sha256 of them all); a
    UserError while the merge has not run or not finished."""
    advice = (f"no pooled table at {work.url}: run the pooled sums first (the classify verbs with "
              "--pool do)")
    edges = [int(e) for e in work.require(POOL_MERGE_RECORD, advice)["edges"]]
    spans = list(zip(edges[:-1], edges[1:]))
    shards = work.gather([shard_name(low, high, ".json") for low, high in spans], "pooled table merge tasks")
    digests = [json.loads(shard)["sha256"] for shard in shards]
    return spans, digests, hashlib.sha256("\n".join(digests).encode()).hexdigest()


@lru_cache(maxsize=2)
def table_ranges(work: str, sha256: str) -> Tuple[Tuple[Tuple[int, int], str], ...]:
    """Each range of the merged table with its sha256, once per worker; the table must still be the
    one the run was made for."""
    spans, digests, combined = table_index(WorkDir(work))
    if combined != sha256:
        raise RuntimeError(f"the pooled table under {work} changed since these tasks were made; "
                           "enqueue them again")
    return tuple(zip(spans, digests))


@lru_cache(maxsize=16)
def table_shard(work: str, low: int, high: int, sha256: str) -> pooling.PoolTable:
    """One range's table, checked against its sha256."""
    data = WorkDir(work).files.get(shard_name(low, high))
    table = None if data is None else pooling.PoolTable.from_arrays(from_npz(data))
    if table is None or table.digest() != sha256:
        raise RuntimeError(f"the pooled table {work}/{shard_name(low, high)} changed or is gone since these "
                           "tasks were made; enqueue them again")
    return table


def table_rows(work: str, sha256: str, segments: np.ndarray, n_features: int) -> pooling.PoolTable:
    """The pooled table's rows for the supervoxels among `segments`: from the ranges that hold
    some of them only."""
    ids = np.unique(np.asarray(segments, np.uint64))
    ids = ids[ids != 0]  # voxels of no supervoxel pool over themselves
    tables = [table_shard(work, low, high, digest) for (low, high), digest in table_ranges(work, sha256)
              if np.searchsorted(ids, np.uint64(low)) < np.searchsorted(ids, np.uint64(high))]
    return pooling.PoolTable.concatenate(tables, n_features)


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
        segments = read_segments(pool_path, pool_mip, box.write, fill_missing)
        pool = classifier.Pooling(model.pooled, segments,
                                  table_rows(pool_work, pool_sha256, segments, len(model.pooled)))
    probability = classifier.predict(model, image, box.own, pool)
    out = classifier.to_uint8(probability) if dest.dtype == np.uint8 else probability
    dest.image.upload(out[..., np.newaxis], box.write.minpt, 0)
