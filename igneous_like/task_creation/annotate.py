"""Neuroglancer annotations from a segmentation's objects or a table: gather (tasks per part of the
rows), index (plan the spatial levels, write the info, then tasks per share of each index), clean.
See igneous_like.annotations for the format and igneous_like.tasks.annotate for the files."""
import math
import re
from functools import partial
from typing import Optional, Sequence

import numpy as np
from cloudfiles import CloudFiles

from igneous_like import annotations as ann
from igneous_like.errors import UserError
from igneous_like.stage import WorkDir, from_npz
from igneous_like.task_creation.common import Tasks, compute_shard_params_for_hashed, layer_path, open_layer
from igneous_like.tasks.annotate import (
    PLAN,
    RECORD,
    AnnotateGatherTask,
    AnnotateIndexTask,
    AnnotateRecord,
    gather_parts,
    load_record,
    part_name,
    work_dir,
)

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".xlsx")
ROWS_PER_PART = 100_000
KEYS_PER_TASK = 100_000
LIMIT = 500
CENTROID = ("centroid_x", "centroid_y", "centroid_z")
BOUNDING_BOX = tuple(f"bbox_{end}_{axis}" for end in ("min", "max") for axis in "xyz")
KINDS = {"point": "points", "line": "lines", "axis_aligned_bounding_box": "boxes", "ellipsoid": "ellipsoids"}
SEGMENT_PROPERTIES = ("voxel_count", "volume", "surface_area", "sphericity", "equivalent_diameter",
                      "intensity_mean")
PROPERTY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


def is_table(source: str) -> bool:
    return source.lower().endswith(TABLE_SUFFIXES)


def relationship_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or "segments"


def check_properties(names: Sequence[str], available: Sequence[str]) -> tuple:
    for name in names:
        if name not in available:
            raise UserError(f"no column {name!r} for a property; the source has {', '.join(available)}")
        if not PROPERTY_ID.match(name):
            raise UserError(f"property {name!r} is not a Neuroglancer property id (a lowercase letter, "
                            "then letters, digits or _); rename the column")
    return tuple(names)


def table_source(source: str, kind: str, coordinates, id_column, properties):
    """(parts, id column, properties, extent in nm) of a table, checked."""
    from igneous_like.tables import numeric_columns, read_table
    table = read_table(source)
    if len(table) == 0:
        raise UserError(f"{source} has no rows; there is nothing to annotate")
    positions = numeric_columns(table, list(dict.fromkeys(coordinates)))  # a column may serve both ends
    positions = table[list(coordinates)].to_numpy(np.float64)
    if not np.isfinite(positions).all():
        raise UserError(f"{source}: columns {', '.join(coordinates)} have missing or infinite values")
    if kind == "ellipsoid" and (positions[:, 3:] < 0).any():
        raise UserError(f"{source}: radii in {', '.join(coordinates[3:])} must not be negative")
    if id_column is None and "label" in table:
        id_column = "label"
    if id_column is not None:
        ids = numeric_columns(table, [id_column])[:, 0]
        if (ids < 0).any() or (ids != np.round(ids)).any() or len(np.unique(ids)) != len(ids):
            raise UserError(f"{source}: ids in {id_column!r} must be distinct non-negative integers")
    if properties is None:
        skip = set(coordinates) | {id_column}
        from pandas.api.types import is_numeric_dtype
        properties = [c for c in table.columns if c not in skip and is_numeric_dtype(table[c])
                      and PROPERTY_ID.match(str(c))]
    properties = check_properties(properties, [str(c) for c in table.columns])
    if properties:
        numeric_columns(table, list(properties))  # a UserError for a text column
    parts = [(a, min(a + ROWS_PER_PART, len(table))) for a in range(0, len(table), ROWS_PER_PART)]
    return parts, id_column, properties, ann.extent(kind, positions)


def segmentation_source(source: str, properties):
    """(parts, properties, layer) of a measured segmentation: one part per measure result file."""
    from igneous_like.task_creation.measure import merged_results
    cv, work, names = merged_results(source, 0)
    columns = list(from_npz(work.files.get(names[0])).keys())
    if properties is None:
        properties = [name for name in SEGMENT_PROPERTIES if name in columns]
    properties = check_properties(properties, columns)
    return [f"{work.url}/{name}" for name in names], properties, cv


def create_annotation_tasks(source: str, dest: str, kind: str = "point",
                            coordinates: Optional[Sequence[str]] = None,
                            id_column: Optional[str] = None, properties: Optional[Sequence[str]] = None,
                            relate: Sequence[str] = (), resolution: Optional[Sequence[float]] = None,
                            limit: int = LIMIT, sharded: bool = False) -> Tasks:
    """Stage 1: check everything, then tasks that each gather one part of the rows (positions in
    voxels, relations looked up in each `relate` layer, raw property values).

    A segmentation gives one annotation per object from its measurement (run `measure forge` and
    `measure merge` first): a point at its exact centroid, its bounding box, or an ellipsoid at the
    centroid with half the box's extent as radii; a table gives its rows (coordinates in nm, voxel
    i's centre at i * resolution, as `measure export` writes them; an ellipsoid's radii in nm)."""
    if kind not in ann.GEOMETRY:
        raise UserError(f"annotation kind must be one of {', '.join(ann.GEOMETRY)}, not {kind!r}")
    if kind == "line" and not is_table(source):
        raise UserError("lines come from a table with two coordinate sets, not from a segmentation")
    if coordinates is None and is_table(source) and kind != "point":
        raise UserError(f"{KINDS[kind]} from a table need their {ann.GEOMETRY[kind]} coordinate columns "
                        "(nm); name them")
    coordinates = tuple(coordinates or CENTROID)
    if is_table(source) and len(coordinates) != ann.GEOMETRY[kind]:
        raise UserError(f"a {kind} needs {ann.GEOMETRY[kind]} coordinate columns, got "
                        f"{', '.join(coordinates)}")
    if limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    layers = [open_layer(path, 0) for path in relate]
    for cv in layers:
        if cv.num_channels != 1 or np.dtype(cv.dtype).kind != "u":
            raise UserError(f"--relate {cv.cloudpath} must be a segmentation (one channel of unsigned "
                            "integers)")
    names = [relationship_name(cv.cloudpath) for cv in layers]
    if len(set(names)) != len(names):
        raise UserError(f"--relate layers need distinct last path components, got {', '.join(names)}")
    if is_table(source):
        parts, id_column, properties, extent = table_source(source, kind, coordinates, id_column, properties)
        reference = layers[0] if layers else None
    else:
        parts, properties, reference = segmentation_source(source, properties)
        extent = None
    if resolution is None and reference is None:
        raise UserError("give --resolution X,Y,Z (nm per voxel) or a --relate layer to take it from")
    if resolution is None:
        resolution = reference.meta.resolution(0)
    resolution = np.asarray(resolution, np.float64)
    if len(resolution) != 3 or (resolution <= 0).any():
        raise UserError(f"--resolution needs three positive numbers, got {list(resolution)}")
    lower, upper = bounds(reference, extent, resolution)
    record = AnnotateRecord(
        kind=kind, source=layer_path(source), table=is_table(source),  # workers may run elsewhere
        id_column=id_column,
        coordinates=coordinates if is_table(source) else CENTROID + (BOUNDING_BOX if kind != "point" else ()),
        properties=tuple(properties), relate=tuple(cv.cloudpath for cv in layers), relationships=tuple(names),
        resolution=tuple(float(r) for r in resolution), lower=tuple(lower), upper=tuple(upper),
        parts=tuple(parts), limit=int(limit), sharded=bool(sharded))
    dest = layer_path(dest)
    work = work_dir(dest)
    work.clean()
    work.save(RECORD, record)
    make = lambda number: partial(AnnotateGatherTask, dest=dest, part=number)
    return Tasks(range(len(parts)), make, f"annotate gather {source}")


def bounds(reference, extent, resolution: np.ndarray):
    """Lower and upper bounds in voxels: the reference layer's, grown to hold every position."""
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    if reference is not None:
        box = reference.meta.bounds(0)
        scale = np.asarray(reference.meta.resolution(0), np.float64) / resolution
        low, high = np.asarray(box.minpt) * scale, np.asarray(box.maxpt) * scale
    if extent is not None:  # voxel i's centre, at i * resolution nm, lies at i + 0.5
        low = np.minimum(low, extent[0] / resolution + 0.5)
        high = np.maximum(high, np.floor(extent[1] / resolution + 0.5) + 1)
    return [int(v) for v in np.floor(low)], [int(v) for v in np.ceil(high)]


def plan_levels(record: AnnotateRecord, parts) -> tuple:
    """The probability of emission at each level and the occupied cells there, level by level
    from the coarsest until nothing remains (the format's sampling; see igneous_like.annotations)."""
    grids = ann.level_grids(record.lower, record.upper, record.resolution, ann.MAX_LEVELS)
    probabilities, occupied = [], []
    for level, (chunk, grid) in enumerate(grids):
        found = [ann.cell_counts(record.kind, ids, geometry, probabilities, record.lower, chunk, grid)
                 for ids, geometry in parts]
        keys = np.concatenate([k for k, _ in found])
        if keys.size == 0:
            break
        cells, where = np.unique(keys, return_inverse=True)
        counts = np.bincount(where.ravel(), weights=np.concatenate([c for _, c in found]))
        probabilities.append(ann.probability(record.limit, int(counts.max()), level == len(grids) - 1))
        occupied.append(len(cells))
    return probabilities, occupied, grids[:len(probabilities)]


def sharding(keys: int, tasks: int) -> dict:
    """Identity hash: ids (mostly consecutive labels) and Morton codes spread over the shards by
    their low bits, nearby cells share a shard, and tasks find a key's shard in numpy."""
    shards = 2 ** math.ceil(math.log2(tasks))  # a shard per task at least: tasks own whole shards
    shard_bits, minishard_bits, preshift_bits = compute_shard_params_for_hashed(max(keys, 1),
                                                                                min_shards=shards)
    return {"@type": "neuroglancer_uint64_sharded_v1", "hash": "identity",
            "preshift_bits": preshift_bits, "minishard_bits": minishard_bits, "shard_bits": shard_bits,
            "minishard_index_encoding": "gzip", "data_encoding": "gzip"}


def property_types(record: AnnotateRecord, work: WorkDir) -> tuple:
    """Each property's type over all parts, the annotations' (ids, geometry) and related-pair counts."""
    low, high, floats = {}, {}, set()
    parts, pairs = [], np.zeros(len(record.relate), np.int64)
    for part in gather_parts(work, record):
        parts.append((part["ids"], part["geometry"]))
        pairs += (part["relations"] != 0).sum(axis=(0, 2))
        for name in record.properties:
            values = part[f"p_{name}"]
            if values.dtype.kind not in "iub":
                floats.add(name)
            elif values.size:
                low[name] = min(low.get(name, 0), int(values.min()))
                high[name] = max(high.get(name, 0), int(values.max()))
    span = lambda name: np.array([low.get(name, 0), high.get(name, 0)])
    types = {name: "float32" if name in floats else ann.property_type(span(name))
             for name in record.properties}
    return types, parts, pairs


def create_annotation_index_tasks(dest: str, keys_per_task: int = KEYS_PER_TASK) -> Tasks:
    """Stage 2: plan the spatial levels over every gathered part, write the info, then tasks that
    each write one share of one index (by id, by related object, spatial level): about
    `keys_per_task` ids, related objects or cells each."""
    dest = layer_path(dest)
    work = work_dir(dest)
    record = load_record(work)
    work.check_complete([part_name(number) for number in range(len(record.parts))], "annotate gather tasks")
    types, parts, pairs = property_types(record, work)
    probabilities, occupied, grids = plan_levels(record, parts)
    total = sum(len(ids) for ids, _ in parts)
    sizes = {"by_id": total, **{f"rel/{k}": int(n) for k, n in enumerate(pairs)},
             **{f"spatial/{level}": n for level, n in enumerate(occupied)}}
    keys = {"by_id": "by_id", **{f"rel/{k}": f"rel_{name}" for k, name in enumerate(record.relationships)},
            **{f"spatial/{level}": f"spatial{level}" for level in range(len(grids))}}
    plan = {"types": types, "probabilities": probabilities, "keys": keys,
            "levels": [[list(map(float, chunk)), list(map(int, grid))] for chunk, grid in grids],
            "sharding": {}}
    counts = {index: max(1, math.ceil(n / keys_per_task)) for index, n in sizes.items()}
    if record.sharded:
        plan["sharding"] = {index: sharding(n, counts[index]) for index, n in sizes.items()}
    work.save(PLAN, plan)
    CloudFiles(dest).put_json("info", info(record, plan), cache_control="no-cache")
    items = [(index, task) for index, n in counts.items() for task in range(n)]
    make = lambda item: partial(AnnotateIndexTask, dest=dest, index=item[0], task=item[1],
                                tasks=counts[item[0]])
    return Tasks(items, make, f"annotate index {dest}")


def info(record: AnnotateRecord, plan: dict) -> dict:
    sharded = lambda index: {"sharding": plan["sharding"][index]} if index in plan["sharding"] else {}
    return {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": {axis: [r, "nm"] for axis, r in zip("xyz", record.resolution)},
        "lower_bound": list(record.lower), "upper_bound": list(record.upper),
        "annotation_type": record.kind,
        "properties": [{"id": name, "type": plan["types"][name]} for name in record.properties],
        "relationships": [{"id": name, "key": plan["keys"][f"rel/{k}"], **sharded(f"rel/{k}")}
                          for k, name in enumerate(record.relationships)],
        "by_id": {"key": "by_id", **sharded("by_id")},
        "spatial": [{"key": plan["keys"][f"spatial/{level}"], "grid_shape": grid, "chunk_size": chunk,
                     "limit": record.limit, **sharded(f"spatial/{level}")}
                    for level, (chunk, grid) in enumerate(plan["levels"])],
    }


def clean_annotation_files(dest: str) -> int:
    """Delete DEST/_work/ (the record, plan and gathered parts); returns how many files there were."""
    return work_dir(layer_path(dest)).clean()
