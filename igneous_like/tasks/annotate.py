"""Annotation tasks: gather (one part of the source's rows per task) and index (one share of the keys
of one index per task). See igneous_like.annotations for the format.

Files under DEST/_work/:

    annotate.json       what to gather (source, columns, relationships, bounds; AnnotateRecord)
    plan.json           the levels' probabilities, property types and sharding (index stage)
    parts/NNNNN.npz     one part's ids, geometry (voxels), relations (rows x layers x ends), properties
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from cloudfiles import CloudFile, CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, synthesize_shard_files
from cloudvolume.lib import Bbox
from taskqueue import queueable

from igneous_like import annotations as ann
from igneous_like.stage import Record, WorkDir, from_npz

WORK = "_work"
RECORD = "annotate.json"
PLAN = "plan.json"


@dataclass(frozen=True)
class AnnotateRecord(Record):
    """What the gather step reads: `parts` are row ranges of a table or measure result files."""
    kind: str
    source: str
    table: bool
    id_column: Optional[str]
    coordinates: Tuple[str, ...]  # a table's 3 or 6 columns in nm; an object's centroid (and bbox)
    properties: Tuple[str, ...]
    relate: Tuple[str, ...]
    relationships: Tuple[str, ...]
    resolution: Tuple[float, ...]
    lower: Tuple[int, ...]
    upper: Tuple[int, ...]
    parts: Tuple
    limit: int
    sharded: bool

    def layout(self, types: Dict[str, str]) -> ann.Layout:
        properties = tuple((name, types[name]) for name in self.properties)
        return ann.Layout(self.kind, properties, self.relationships)


def work_dir(dest: str) -> WorkDir:
    return WorkDir(f"{dest.rstrip('/')}/{WORK}")


def load_record(work: WorkDir) -> AnnotateRecord:
    return work.require(RECORD, "run `annotate points` or `annotate lines` first", AnnotateRecord)


def part_name(index: int) -> str:
    return f"parts/{index:05d}.npz"


def read_rows(record: AnnotateRecord, part: int) -> Dict[str, np.ndarray]:
    """The columns of one part: a row range of the table, or one measure result file."""
    if record.table:
        from igneous_like.tables import read_table
        start, stop = record.parts[part]
        rows = read_table(record.source).iloc[start:stop]
        columns = {name: rows[name].to_numpy() for name in rows.columns}
        if record.id_column is None:
            columns["_id"] = np.arange(start + 1, stop + 1, dtype=np.uint64)
        return columns
    return from_npz(CloudFile(record.parts[part]).get())


def segments_at(layer: str, nm: np.ndarray) -> np.ndarray:
    """The segment id of `layer` (mip 0) at positions in nm (voxel i's centre at i * resolution),
    one download per chunk touched; 0 outside the layer."""
    cv = CloudVolume(layer, mip=0, fill_missing=True, progress=False)
    bounds = cv.meta.bounds(0)
    voxel = np.rint(nm / np.asarray(cv.meta.resolution(0), np.float64)).astype(np.int64)
    out = np.zeros(len(voxel), np.uint64)
    inside = np.all((voxel >= bounds.minpt) & (voxel < bounds.maxpt), axis=1)
    chunk = np.asarray(cv.meta.chunk_size(0), np.int64)
    corner = (voxel - bounds.minpt) // chunk * chunk + bounds.minpt
    keys, which, counts = np.unique(corner[inside], axis=0, return_inverse=True, return_counts=True)
    rows = np.flatnonzero(inside)[np.argsort(which.ravel(), kind="stable")]
    for low, mine in zip(keys, np.split(rows, np.cumsum(counts)[:-1])):
        box = Bbox.intersection(Bbox(low, low + chunk), bounds)
        block = np.asarray(cv.download(box, mip=0))[..., 0]
        local = voxel[mine] - box.minpt
        out[mine] = block[local[:, 0], local[:, 1], local[:, 2]]
    return out


@queueable
def AnnotateGatherTask(dest: str, part: int) -> None:
    """One part's annotations: ids, geometry in voxels, relations to each layer, raw properties."""
    work = work_dir(dest)
    record = load_record(work)
    columns = read_rows(record, part)
    values = np.stack([np.asarray(columns[c], np.float64) for c in record.coordinates], axis=1)
    place = ann.table_geometry if record.table else ann.object_geometry
    geometry, anchors = place(record.kind, values, record.resolution)
    relations = np.zeros((len(values), len(record.relate), anchors.shape[1]), np.uint64)
    for k, layer in enumerate(record.relate):
        for end in range(anchors.shape[1]):
            relations[:, k, end] = segments_at(layer, anchors[:, end])
    ids = columns[record.id_column or "_id"] if record.table else columns["label"]
    arrays = {"ids": np.asarray(ids, np.uint64), "geometry": geometry.astype(np.float32),
              "relations": relations}
    arrays.update({f"p_{name}": np.asarray(columns[name]) for name in record.properties})
    work.put_arrays(part_name(part), **arrays)


def gather_parts(work: WorkDir, record: AnnotateRecord):
    """Every gathered part's arrays, in order, a batch in memory at a time."""
    return work.gather_arrays([part_name(number) for number in range(len(record.parts))],
                              "annotate gather tasks")


def index_keys(record: AnnotateRecord, plan: dict, index: str, part: Dict[str, np.ndarray]):
    """(key, annotation row) pairs of one index for a part's annotations: the id (by_id), each
    related id (rel/K), or the Morton code of each cell at level L where emitted (spatial/L)."""
    ids = part["ids"]
    if index == "by_id":
        return ids, np.arange(len(ids))
    kind, number = index.split("/")
    if kind == "rel":
        values = part["relations"][:, int(number)]
        rows = np.repeat(np.arange(len(ids)), values.shape[1])
        values = values.ravel()
        pairs = np.unique(np.stack([values, rows.astype(np.uint64)], axis=1)[values != 0], axis=0)
        return pairs[:, 0], pairs[:, 1].astype(np.int64)
    level = int(number)
    emitted = np.flatnonzero(ann.levels_of(ids, plan["probabilities"]) == level)
    chunk, grid = plan["levels"][level]
    rows, cell = ann.cells(record.kind, part["geometry"][emitted], record.lower, chunk, grid)
    return ann.morton(cell, grid), emitted[rows]


def owner(plan: dict, index: str, keys: np.ndarray, tasks: int) -> np.ndarray:
    """Which of the index's tasks writes each key: by shard where sharded, else by hash."""
    spec = plan["sharding"].get(index)
    if spec is None:
        return (ann.mix(keys, 99) % np.uint64(tasks)).astype(np.int64)
    return (ann.shard_numbers(keys, spec) % np.uint64(tasks)).astype(np.int64)


def encode_index(index: str, level_grid, keys, ids, bodies, relations) -> Dict[str, Tuple[int, bytes]]:
    """name -> (key, bytes) of every file (or shard entry) of the index among these keys."""
    if index == "by_id":
        return {str(int(i)): (int(i), ann.encode_single(bodies[k], [ann.related_ids(r) for r in rel]))
                for k, (i, rel) in enumerate(zip(ids, relations))}
    level = int(index.split("/")[1]) if index.startswith("spatial") else 0
    order = np.lexsort((ann.mix(ids, level), keys))
    keys, ids, bodies = keys[order], ids[order], bodies[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, int)
    stops = np.r_[starts[1:], len(keys)]
    out = {}
    for a, b in zip(starts, stops):
        key = int(keys[a])
        name = (str(key) if level_grid is None
                else "_".join(map(str, ann.unmorton(np.array([key], np.uint64), level_grid)[0])))
        out[name] = (key, ann.encode_list(bodies[a:b], ids[a:b]))
    return out


@queueable
def AnnotateIndexTask(dest: str, index: str, task: int, tasks: int) -> None:
    """Write this task's share of one index (by_id, rel/K or spatial/L): its files, or its shards."""
    work = work_dir(dest)
    record = load_record(work)
    plan = work.load(PLAN)
    keys, ids, bodies, relations = read_own(work, record, plan, index, task, tasks)
    grid = plan["levels"][int(index.split("/")[1])][1] if index.startswith("spatial") else None
    entries = encode_index(index, grid, keys, ids, bodies, relations)
    out = CloudFiles(f"{dest.rstrip('/')}/{plan['keys'][index]}")
    spec = plan["sharding"].get(index)
    if spec is None:
        out.puts([(name, data) for name, (_, data) in entries.items()], compress=None,
                 content_type="application/octet-stream")
        return
    spec = ShardingSpecification.from_dict(spec)
    shards = synthesize_shard_files(spec, {key: data for key, data in entries.values()}) if entries else {}
    out.puts(list(shards.items()), compress=None, content_type="application/octet-stream")


def read_own(work: WorkDir, record: AnnotateRecord, plan: dict, index: str, task: int, tasks: int):
    """This task's (keys, ids, bodies, relations) of one index, streamed part by part."""
    layout = record.layout(plan["types"])
    found: List[List[np.ndarray]] = [[], [], [], []]
    for part in gather_parts(work, record):
        key, rows = index_keys(record, plan, index, part)
        mine = owner(plan, index, key, tasks) == task
        key, rows = key[mine], rows[mine]
        props = {name: part[f"p_{name}"][rows] for name, _ in layout.properties}
        for bucket, value in zip(found, (key, part["ids"][rows],
                                         ann.encode_bodies(layout, part["geometry"][rows], props),
                                         part["relations"][rows])):
            bucket.append(value)
    return tuple(np.concatenate(bucket) for bucket in found)
