"""`annotate`: Neuroglancer precomputed annotations, decoded by a reader written here from the
format's published description (neuroglancer's src/datasource/precomputed/annotation.rst and
sharded.md), not with the writer's code: the info, the by-id index, each relationship's index and
every spatial level, sharded or not."""
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, write_layer

from igneous_like.queues import run_locally
from igneous_like.task_creation import (
    create_annotation_index_tasks,
    create_annotation_tasks,
    create_measure_merge_tasks,
    create_measure_tasks,
)

SIZES = {"uint32": 4, "int32": 4, "float32": 4, "uint16": 2, "int16": 2, "uint8": 1, "int8": 1}


# ---- the reader ----------------------------------------------------------------------------------
def shard_entries(directory: Path, spec: dict) -> dict:
    """key -> bytes of every entry of every shard file in `directory`."""
    unzip = lambda data, encoding: gzip.decompress(data) if encoding == "gzip" else data
    out = {}
    index_end = 16 << spec["minishard_bits"]
    for shard in directory.glob("*.shard"):
        data = shard.read_bytes()
        for start, end in np.frombuffer(data[:index_end], "<u8").reshape(-1, 2):
            if end == start:
                continue
            table = np.frombuffer(unzip(data[index_end + start:index_end + end],
                                        spec["minishard_index_encoding"]), "<u8").reshape(3, -1)
            keys, sizes = np.cumsum(table[0]), table[2]
            starts = index_end + np.cumsum(table[1]) + np.r_[0, np.cumsum(sizes)[:-1]]
            for key, a, size in zip(keys, starts, sizes):
                out[int(key)] = unzip(data[int(a):int(a + size)], spec["data_encoding"])
    return out


def index_files(root: Path, entry: dict) -> dict:
    """name (unsharded) or uint64 key (sharded) -> bytes of one index."""
    directory = root / entry["key"]
    if "sharding" in entry:
        return shard_entries(directory, entry["sharding"])
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def decode_body(info: dict, data: bytes, at: int):
    """(geometry, properties, offset after the padding) of one annotation at byte `at`."""
    rank = {"point": 3, "line": 6, "axis_aligned_bounding_box": 6, "ellipsoid": 6}[info["annotation_type"]]
    geometry = np.frombuffer(data, "<f4", rank, at)
    at += 4 * rank
    properties = {}
    for size in (4, 2, 1):
        for prop in info["properties"]:
            if SIZES[prop["type"]] == size:
                kind = np.dtype(prop["type"]).newbyteorder("<")
                properties[prop["id"]] = np.frombuffer(data, kind, 1, at)[0]
                at += size
    return geometry, properties, at + (-at) % 4


def decode_list(info: dict, data: bytes) -> dict:
    """id -> (geometry, properties) of a multiple-annotation encoding."""
    count = int(np.frombuffer(data, "<u8", 1)[0])
    at, bodies = 8, []
    for _ in range(count):
        geometry, properties, at = decode_body(info, data, at)
        bodies.append((geometry, properties))
    ids = np.frombuffer(data, "<u8", count, at)
    assert at + 8 * count == len(data)
    return dict(zip(map(int, ids), bodies))


def morton_cell(code: int, grid) -> tuple:
    cell, j = [0, 0, 0], 0
    for i in range(max(int(g - 1).bit_length() for g in grid)):
        for d in range(3):
            if 2**i < grid[d]:
                cell[d] |= ((code >> j) & 1) << i
                j += 1
    return tuple(cell)


def read_layer(root: Path) -> dict:
    """Everything in an annotation layer: info, by_id {id: (geometry, properties, relations)},
    related {relationship: {object: {ids}}}, spatial [{cell: {id: (geometry, properties)}}]."""
    info = json.loads((root / "info").read_text())
    assert info["@type"] == "neuroglancer_annotations_v1"
    by_id = {}
    for key, data in index_files(root, info["by_id"]).items():
        geometry, properties, at = decode_body(info, data, 0)
        relations = []
        for _ in info["relationships"]:
            count = int(np.frombuffer(data, "<u4", 1, at)[0])
            relations.append(set(map(int, np.frombuffer(data, "<u8", count, at + 4))))
            at += 4 + 8 * count
        assert at == len(data)
        by_id[int(key)] = (geometry, properties, relations)
    related = {rel["id"]: {int(key): set(decode_list(info, data))
                           for key, data in index_files(root, rel).items()}
               for rel in info["relationships"]}
    spatial = []
    for level in info["spatial"]:
        cells = {}
        for key, data in index_files(root, level).items():
            cell = (morton_cell(key, level["grid_shape"]) if "sharding" in level
                    else tuple(int(c) for c in key.split("_")))
            cells[cell] = decode_list(info, data)
        spatial.append(cells)
    return {"info": info, "by_id": by_id, "related": related, "spatial": spatial}


# ---- checks on what was read ---------------------------------------------------------------------
def check_spatial_levels(layer: dict) -> None:
    """Every point in exactly one cell of one level, inside that cell, with the same body as by id;
    each level emits what remains with the format's probability min(1, limit / fullest cell)."""
    info, by_id, spatial = layer["info"], layer["by_id"], layer["spatial"]
    lower, upper = np.array(info["lower_bound"], float), np.array(info["upper_bound"], float)
    seen = {}
    for level, (entry, cells) in enumerate(zip(info["spatial"], spatial)):
        chunk, grid = np.array(entry["chunk_size"]), np.array(entry["grid_shape"])
        assert np.allclose(chunk * grid, upper - lower)
        for cell, members in cells.items():
            for annotation, (geometry, properties) in members.items():
                assert annotation not in seen, f"{annotation} in level {seen[annotation]} and {level}"
                seen[annotation] = level
                assert np.array_equal(geometry, by_id[annotation][0])
                assert properties == by_id[annotation][1]
                low = lower + np.array(cell) * chunk
                assert np.all(low <= geometry) and np.all(geometry <= low + chunk), (geometry, cell, level)
    assert set(seen) == set(by_id)
    levels = np.array([seen[a] for a in by_id])
    position = np.array([by_id[a][0] for a in by_id])
    for level, entry in enumerate(info["spatial"]):
        remaining = levels >= level
        cell = np.floor((position[remaining] - lower) / np.array(entry["chunk_size"])).astype(int)
        most = np.unique(cell, axis=0, return_counts=True)[1].max()
        emitted, p = (levels == level).sum(), min(1.0, entry["limit"] / most)
        if p == 1:
            assert emitted == remaining.sum()
        else:
            n = remaining.sum()
            assert abs(emitted - p * n) <= 5 * np.sqrt(n * p * (1 - p)) + 1, (level, emitted, p, n)


def check_related(layer: dict) -> None:
    """Each relationship's index lists exactly the annotations that name each object by id."""
    for k, rel in enumerate(layer["info"]["relationships"]):
        expected = {}
        for annotation, (_, _, relations) in layer["by_id"].items():
            for segment in relations[k]:
                expected.setdefault(segment, set()).add(annotation)
        assert layer["related"][rel["id"]] == expected


def run(tasks):
    run_locally(tasks, 1, True, tasks.description)


@pytest.fixture(scope="module")
def measured(tmp_path_factory, real_seg):
    """A real-data crop, measured with task blocks that cut objects."""
    out = tmp_path_factory.mktemp("annotate")
    crop = np.asfortranarray(real_seg[:96, 384:480, 384:432])
    write_layer(f"file://{out}/seg", crop, "segmentation", chunk=(32, 32, 16))
    run(create_measure_tasks(f"file://{out}/seg", shape=(40, 40, 20)))
    run(create_measure_merge_tasks(f"file://{out}/seg", num_tasks=3))
    return out, crop


@pytest.mark.parametrize("sharded", [False, True])
def test_points_are_the_objects_exact_centroids(measured, sharded):
    """Against whole-array numpy: ids, centroids, voxel counts and the segment under each point."""
    out, crop = measured
    dest = out / f"points{int(sharded)}"
    args = ["annotate", "points", f"file://{out}/seg", dest, "--relate", f"file://{out}/seg", "--limit", "8"]
    if sharded:  # through a queue and a worker: the three stages as a pipeline
        run_cli(*args, "--sharded", "--queue", f"fq://{out}/queue")
        run_cli("execute", "-x", f"fq://{out}/queue")
    else:
        run_cli(*args)
    layer = read_layer(dest)
    assert not [path for path in (dest / "_work").rglob("*") if path.is_file()]  # cleaned
    labels, counts = np.unique(crop[crop > 0], return_counts=True)
    assert sorted(layer["by_id"]) == labels.tolist()
    index = np.nonzero(crop)
    values = crop[index]
    for label, count in zip(labels[::7], counts[::7]):  # every 7th object: whole-array numpy
        mine = values == label
        centroid = np.array([axis[mine].mean() for axis in index])
        geometry, properties, relations = layer["by_id"][int(label)]
        assert np.allclose(geometry, centroid + 0.5, atol=1e-3), label  # the voxel centres' mean
        assert properties["voxel_count"] == count
        at = tuple(np.rint(centroid).astype(int))
        assert relations == [{int(crop[at])} - {0}]
    assert len(layer["info"]["spatial"]) >= 3
    check_spatial_levels(layer)
    check_related(layer)
    assert (dest / "by_id" / "0.shard").exists() if sharded else (dest / "by_id" / str(labels[0])).exists()
    check_with_neuroglancer(dest, layer)


def check_with_neuroglancer(dest: Path, layer: dict) -> None:
    """Neuroglancer's own Python reader (on TensorStore) finds the same annotations."""
    reading = pytest.importorskip("neuroglancer.read_precomputed_annotations")
    reader = reading.AnnotationReader(f"file://{dest}/")
    found = {int(a.id): a for a in reader.get_within_spatial_bounds()}
    assert set(found) == set(layer["by_id"])
    for annotation, (geometry, properties, _) in layer["by_id"].items():
        theirs = found[annotation]
        kind = layer["info"]["annotation_type"]
        ends = ([theirs.point] if kind == "point" else [theirs.center, theirs.radii] if kind == "ellipsoid"
                else [theirs.point_a, theirs.point_b])
        assert np.array_equal(np.concatenate(ends), geometry)
        assert theirs.props == pytest.approx([properties[p["id"]] for p in layer["info"]["properties"]])


def test_lines_from_a_table_with_two_coordinate_sets(measured, tmp_path):
    """Pairs of points: geometry, properties of each type, both ends' segments related, and each
    line in every cell it crosses at its one level (and no other)."""
    out, crop = measured
    rng = np.random.default_rng(7)
    n = 300
    start = rng.uniform(0, [95, 95, 47], (n, 3))
    end = np.clip(start + rng.normal(0, 12, (n, 3)), 0.1, [95.9, 95.9, 47.9])
    res = np.array([16, 16, 40])
    # uint32 first: neuroglancer's Python reader aligns uint32 to 3 bytes (its _PROPERTY_DTYPES), so
    # it misreads a uint32 at offset 4; the format (and the browser) have no such rule
    table = pd.DataFrame({"pair": np.arange(10, 10 + n) * 3, "kind": rng.integers(0, 3, n),
                          "score": rng.uniform(0, 1, n), "offset": rng.integers(-5, 5, n), "note": "x"})
    for k, axis in enumerate("xyz"):
        table[f"pre_{axis}"], table[f"post_{axis}"] = (start[:, k] - 0.5) * res[k], (end[:, k] - 0.5) * res[k]
    table.to_csv(tmp_path / "pairs.csv", index=False)
    dest = tmp_path / "pairs"
    run_cli("annotate", "lines", tmp_path / "pairs.csv", dest, "--a", "pre_x,pre_y,pre_z", "--b",
            "post_x,post_y,post_z", "--id", "pair", "--relate", f"file://{out}/seg", "--limit", "20")
    layer = read_layer(dest)
    assert {p["id"]: p["type"] for p in layer["info"]["properties"]} == {
        "kind": "uint32", "score": "float32", "offset": "int32"}
    assert sorted(layer["by_id"]) == table["pair"].tolist()
    for row, (a, b) in zip(table.itertuples(), zip(start, end)):
        geometry, properties, relations = layer["by_id"][row.pair]
        assert np.allclose(geometry, np.r_[a, b], atol=1e-3)
        assert (properties["score"], properties["kind"], properties["offset"]) == (
            np.float32(row.score), row.kind, row.offset)
        assert relations == [{int(crop[tuple(np.floor(p).astype(int))]) for p in (a, b)} - {0}]
    check_related(layer)
    check_lines_in_cells(layer)
    check_with_neuroglancer(dest, layer)


def check_lines_in_cells(layer: dict) -> None:
    """Each line at one level only, in every cell that points along it fall in, and only in cells
    it comes near."""
    info, seen = layer["info"], {}
    lower = np.array(info["lower_bound"], float)
    for level, (entry, cells) in enumerate(zip(info["spatial"], layer["spatial"])):
        chunk = np.array(entry["chunk_size"])
        listed = {}
        for cell, members in cells.items():
            for annotation in members:
                assert seen.setdefault(annotation, level) == level
                listed.setdefault(annotation, set()).add(cell)
        for annotation, where in listed.items():
            geometry = layer["by_id"][annotation][0]
            along = geometry[:3] + np.linspace(0, 1, 2001)[:, None] * (geometry[3:] - geometry[:3])
            crossed = {tuple(c) for c in np.floor((along - lower) / chunk).astype(int)}
            assert crossed <= where
            for cell in where - crossed:  # grazed between two samples
                gap = np.maximum(0, np.maximum(lower + np.array(cell) * chunk - along,
                                               along - lower - (np.array(cell) + 1) * chunk)).max(axis=1)
                assert gap.min() <= np.linalg.norm(geometry[3:] - geometry[:3]) / 2000 + 1e-6
    assert set(seen) == set(layer["by_id"])


@pytest.mark.parametrize("sharded", [False, True])
def test_points_from_a_table_in_many_index_tasks(tmp_path, sharded):
    """Without a layer: --resolution, the row number as id when there is no label column; each
    index split over several tasks (each owning whole shards when sharded)."""
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 1000, (500, 3))
    pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "z": points[:, 2],
                  "size": rng.integers(1, 2**33, 500)}).to_parquet(tmp_path / "p.parquet")
    dest = f"file://{tmp_path}/out"
    run(create_annotation_tasks(str(tmp_path / "p.parquet"), dest, coordinates=["x", "y", "z"],
                                resolution=[4, 4, 4], limit=30, sharded=sharded))
    tasks = create_annotation_index_tasks(dest, keys_per_task=37)
    assert sum(1 for task in tasks if task.keywords["index"] == "by_id") == 14
    run(tasks)
    if sharded:
        assert len(list((tmp_path / "out" / "by_id").glob("*.shard"))) == 16
    layer = read_layer(tmp_path / "out")
    assert layer["info"]["properties"] == [{"id": "size", "type": "float32"}]
    assert sorted(layer["by_id"]) == list(range(1, 501))
    assert np.allclose([layer["by_id"][k + 1][0] for k in range(500)], points / 4 + 0.5, atol=1e-3)
    check_spatial_levels(layer)


@pytest.mark.parametrize("args, message", [
    (["points", "{out}/seg", "{tmp}/a", "--properties", "nope"], "no column 'nope'"),
    (["points", "{tmp}/t.csv", "{tmp}/a", "--position", "x,y,z", "--resolution", "1,1,1",
      "--properties", "name"], "column name does not hold numbers"),
    (["points", "{tmp}/unmeasured", "{tmp}/a"], "measure forge"),
    (["boxes", "{tmp}/t.csv", "{tmp}/a", "--resolution", "1,1,1"], "boxes from a table need their 6"),
    (["ellipsoids", "{tmp}/t.csv", "{tmp}/a", "--center", "x,y,z"], "give both coordinate sets"),
])
def test_bad_input_is_one_line_and_writes_nothing(measured, tmp_path, args, message):
    out, _ = measured
    (tmp_path / "t.csv").write_text("x,y,z,name\n1,2,3,a\n4,5,6,b\n")
    write_layer(f"file://{tmp_path}/unmeasured", np.ones((8, 8, 8), np.uint32), "segmentation",
                chunk=(8, 8, 8))
    args = [arg.format(out=out, tmp=tmp_path) for arg in args]
    result = run_cli("annotate", *args, check=False)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(source="{tmp}/t.csv", coordinates=["x", "y", "z"]), "--resolution"),
    (dict(source="{tmp}/t.csv", coordinates=["x", "y"], resolution=[1, 1, 1]), "needs 3 coordinate"),
    (dict(source="{out}/seg", kind="line"), "from a table"),
    (dict(source="{tmp}/t.csv", coordinates=["x", "y", "z"], relate=["{tmp}/no"]), "no Neuroglancer"),
    (dict(source="{tmp}/t.csv", coordinates=["x", "y", "z"], resolution=[1, 1, 1], properties=["Y"]),
     "'Y' is not a Neuroglancer property id"),
    (dict(source="{tmp}/t.csv", coordinates=["x", "y", "z"], resolution=[1, 1, 1], id_column="x"),
     "distinct non-negative integers"),
])
def test_bad_arguments_raise_user_errors_before_writing(measured, tmp_path, kwargs, message):
    from igneous_like.errors import UserError
    out, _ = measured
    (tmp_path / "t.csv").write_text("x,y,z,Y\n1,2,3,4\n1,5,6,7\n")
    kwargs = {k: [v.format(out=out, tmp=tmp_path) for v in value] if k == "relate" else
              value.format(out=out, tmp=tmp_path) if k == "source" else value for k, value in kwargs.items()}
    with pytest.raises(UserError, match=message):
        create_annotation_tasks(dest=f"file://{tmp_path}/a", **kwargs)
    assert not (tmp_path / "a").exists()


def test_bodies_order_properties_by_size_and_pad():
    """Mixed property sizes (the writer's own tables give 4-byte types only): 4-byte values first,
    then 2-byte, then 1-byte, zero padding to a multiple of 4, as the reader here expects."""
    from igneous_like import annotations
    properties = (("a", "uint8"), ("b", "float32"), ("c", "int16"), ("e", "uint32"))
    layout = annotations.Layout("line", properties)
    geometry = np.arange(12, dtype=np.float32).reshape(2, 6)
    values = {"a": [1, 255], "b": [0.5, -2.0], "c": [-300, 7], "e": [2**32 - 1, 9]}
    bodies = annotations.encode_bodies(layout, geometry, values)
    assert bodies.shape == (2, 36)  # 24 + 4 + 4 + 2 + 1 = 35 bytes and one of padding
    info = {"annotation_type": "line", "properties": [{"id": n, "type": t} for n, t in properties]}
    for k in range(2):
        decoded, found, end = decode_body(info, bodies[k].tobytes(), 0)
        assert end == 36 and bodies[k, 35] == 0
        assert bodies[k, 34] == values["a"][k]  # the 1-byte value last
        assert np.array_equal(decoded, geometry[k])
        assert found == {name: np.array(values[name][k]).astype(t) for name, t in properties}


def test_points_from_a_measure_export_table_match_the_segmentation_source(measured, tmp_path):
    """`measure export`'s table as the source: its label ids, centroids and numeric columns, the
    resolution and bounds of the --relate layer; the same points as from the segmentation."""
    from igneous_like.task_creation.annotate import clean_annotation_files
    from igneous_like.task_creation.measure import export_measurements
    out, crop = measured
    export_measurements(f"file://{out}/seg", str(tmp_path / "cells.csv"), segment_properties=False)
    for source, name in ((str(tmp_path / "cells.csv"), "table"), (f"file://{out}/seg", "seg")):
        dest = f"file://{tmp_path}/{name}"
        run(create_annotation_tasks(source, dest, relate=[f"file://{out}/seg"], limit=10))
        run(create_annotation_index_tasks(dest))
        clean_annotation_files(dest)
    table, seg = read_layer(tmp_path / "table"), read_layer(tmp_path / "seg")
    columns = pd.read_csv(tmp_path / "cells.csv").columns
    assert [p["id"] for p in table["info"]["properties"]] == [c for c in columns if c not in (
        "label", "centroid_x", "centroid_y", "centroid_z")]
    assert table["info"]["lower_bound"] == [0, 0, 0] and table["info"]["upper_bound"] == list(crop.shape)
    assert sorted(table["by_id"]) == sorted(seg["by_id"])
    for label, (geometry, properties, relations) in seg["by_id"].items():
        assert np.array_equal(table["by_id"][label][0], geometry)
        assert table["by_id"][label][2] == relations
        assert table["by_id"][label][1]["voxel_count"] == properties["voxel_count"]
    check_spatial_levels(table)


# ---- boxes and ellipsoids ------------------------------------------------------------------------
def cells_met(kind: str, geometry: np.ndarray, lower, chunk, grid) -> set:
    """Every cell of the grid that a box or ellipsoid meets, by brute force over all cells, per the
    format: a box [min, max) meets a cell [low, low + chunk) where they overlap (a box flat along an
    axis: the cell holding it); an ellipsoid where the cell's point nearest the centre is inside."""
    edges = [lower[d] + np.arange(grid[d] + 1) * chunk[d] for d in range(3)]
    if kind == "axis_aligned_bounding_box":
        a, b = np.minimum(geometry[:3], geometry[3:]), np.maximum(geometry[:3], geometry[3:])
        hit = [np.flatnonzero(((a[d] < edges[d][1:]) & (b[d] > edges[d][:-1])) |
                              ((a[d] == b[d]) & (edges[d][:-1] <= a[d]) & (a[d] < edges[d][1:])))
               for d in range(3)]
        return {(x, y, z) for x in hit[0] for y in hit[1] for z in hit[2]}
    centre, radii = geometry[:3].astype(float), geometry[3:].astype(float)
    gaps = [((np.clip(centre[d], edges[d][:-1], edges[d][1:]) - centre[d]) / radii[d]) ** 2 for d in range(3)]
    inside = gaps[0][:, None, None] + gaps[1][None, :, None] + gaps[2][None, None, :] <= 1
    return set(map(tuple, np.argwhere(inside)))


def check_cells_met(layer: dict) -> None:
    """Each annotation at one level only, there in exactly the cells it meets (and the same body as
    by id); each level emits what remains with the format's probability, counting an annotation
    in every cell it meets."""
    info, by_id, kind = layer["info"], layer["by_id"], layer["info"]["annotation_type"]
    lower = np.array(info["lower_bound"], float)
    seen = {}
    for level, (entry, cells) in enumerate(zip(info["spatial"], layer["spatial"])):
        listed = {}
        for cell, members in cells.items():
            for annotation, (geometry, properties) in members.items():
                assert seen.setdefault(annotation, level) == level, annotation
                assert np.array_equal(geometry, by_id[annotation][0]) and properties == by_id[annotation][1]
                listed.setdefault(annotation, set()).add(cell)
        for annotation, where in listed.items():
            met = cells_met(kind, by_id[annotation][0], lower, entry["chunk_size"], entry["grid_shape"])
            assert where == met, (annotation, level, where ^ met)
    assert set(seen) == set(by_id)
    for level, entry in enumerate(info["spatial"]):
        remaining = [a for a in by_id if seen[a] >= level]
        per_cell = {}
        for annotation in remaining:
            met = cells_met(kind, by_id[annotation][0], lower, entry["chunk_size"], entry["grid_shape"])
            for cell in met:
                per_cell[cell] = per_cell.get(cell, 0) + 1
        p, n = min(1.0, entry["limit"] / max(per_cell.values())), len(remaining)
        emitted = sum(seen[a] == level for a in by_id)
        assert abs(emitted - p * n) <= 5 * np.sqrt(n * p * (1 - p)) + 1 - (p == 1), (level, emitted, p, n)


@pytest.mark.parametrize("verb", ["boxes", "ellipsoids"])
def test_boxes_and_ellipsoids_of_a_segmentations_objects(measured, verb):
    """Against whole-array numpy: each object's bounding box exactly around its voxels (or the
    ellipsoid at its centroid with half that box's extent as radii), its voxel count, the segment
    at its centroid related; each in exactly the spatial cells it meets."""
    out, crop = measured
    dest = out / verb
    run_cli("annotate", verb, f"file://{out}/seg", dest, "--relate", f"file://{out}/seg", "--limit", "6")
    layer = read_layer(dest)
    assert layer["info"]["annotation_type"] == {"boxes": "axis_aligned_bounding_box",
                                                "ellipsoids": "ellipsoid"}[verb]
    labels, counts = np.unique(crop[crop > 0], return_counts=True)
    assert sorted(layer["by_id"]) == labels.tolist()
    index = np.nonzero(crop)
    values = crop[index]
    for label, count in zip(labels[::5], counts[::5]):
        mine = values == label
        low = np.array([axis[mine].min() for axis in index])
        high = np.array([axis[mine].max() + 1 for axis in index])
        centroid = np.array([axis[mine].mean() for axis in index])
        geometry, properties, relations = layer["by_id"][int(label)]
        expected = np.r_[low, high] if verb == "boxes" else np.r_[centroid + 0.5, (high - low) / 2]
        assert np.allclose(geometry, expected, atol=1e-3), label
        assert properties["voxel_count"] == count
        assert relations == [{int(crop[tuple(np.rint(centroid).astype(int))])} - {0}]
    assert len(layer["info"]["spatial"]) >= 3
    check_cells_met(layer)
    check_related(layer)
    check_with_neuroglancer(dest, layer)


@pytest.mark.parametrize("verb", ["boxes", "ellipsoids"])
def test_boxes_and_ellipsoids_from_a_table(measured, tmp_path, verb):
    """Two corners or a centre and radii per row in nm, sharded: the geometry in voxels, the
    segment at each centre related, each in exactly the cells it meets."""
    out, crop = measured
    rng = np.random.default_rng(11)
    n, res = 200, np.array([16, 16, 40])
    centre = rng.uniform(8, [88, 88, 40], (n, 3))
    half = rng.uniform(0.5, 8, (n, 3))
    table = pd.DataFrame({"score": rng.uniform(0, 1, n)})
    first, second = (centre - half, centre + half) if verb == "boxes" else (centre, half)
    for k, axis in enumerate("xyz"):
        table[f"a_{axis}"] = (first[:, k] - 0.5) * res[k]
        table[f"b_{axis}"] = (second[:, k] - (0.5 if verb == "boxes" else 0)) * res[k]
    table.to_csv(tmp_path / "t.csv", index=False)
    options = ["--a", "a_x,a_y,a_z", "--b", "b_x,b_y,b_z"] if verb == "boxes" else [
        "--center", "a_x,a_y,a_z", "--radii", "b_x,b_y,b_z"]
    dest = tmp_path / "out"
    run_cli("annotate", verb, tmp_path / "t.csv", dest, *options, "--relate", f"file://{out}/seg",
            "--limit", "15", "--sharded")
    layer = read_layer(dest)
    assert sorted(layer["by_id"]) == list(range(1, n + 1))
    for k in range(n):
        geometry, properties, relations = layer["by_id"][k + 1]
        assert np.allclose(geometry, np.r_[first[k], second[k]], atol=1e-3)
        assert properties["score"] == np.float32(table["score"][k])
        assert relations == [{int(crop[tuple(np.floor(centre[k]).astype(int))])} - {0}]
    check_cells_met(layer)
    check_related(layer)
    check_with_neuroglancer(dest, layer)
