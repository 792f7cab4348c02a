"""Meshes and skeletons as whole directories: transfer (as stored, and unsharded into sharded),
delete, and the spatial index, on a crop of the real segmentation with task shapes that cut objects.

References: the source files themselves (bytes), the source meshes/skeletons decoded by
CloudVolume, and numpy on the whole crop for which labels have voxels in a box.
"""
import re
import shutil
import sqlite3
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox
from conftest import run_cli, write_layer

from igneous_like.queues import run_locally
from igneous_like.task_creation import (
    create_mesh_deletion_tasks,
    create_mesh_manifest_tasks,
    create_meshing_tasks,
    create_sharded_multires_mesh_tasks,
    create_skeletonizing_tasks,
    create_spatial_index_mesh_tasks,
    create_unsharded_skeleton_merge_tasks,
    create_xfer_meshes_tasks,
    create_xfer_skeleton_tasks,
)
from igneous_like.task_creation.skeleton import skeleton_labels

RESOLUTION = np.array([16, 16, 40])
OFFSET = np.array([100, 50, 7])
BLOCK = (64, 48, 24)  # cuts the crop unevenly: the last blocks are partial


def run(tasks):
    run_locally(tasks, 1, True, tasks.description)


@pytest.fixture(scope="module")
def crop(real_seg) -> np.ndarray:
    """128x128x64 voxels of the real segmentation, about 80 objects."""
    return np.asfortranarray(real_seg[200:328, 200:328, 200:264])


def new_layer(root: Path, name: str, crop: np.ndarray) -> str:
    return write_layer(f"file://{root / name}", crop, "segmentation", offset=OFFSET, chunk=(32, 32, 32))


@pytest.fixture(scope="module")
def mesh_layers(crop, tmp_path_factory):
    """A layer per mesh format (legacy, multi-resolution unsharded, sharded), merged from one forge."""
    root = tmp_path_factory.mktemp("meshes")
    forged = new_layer(root, "legacy", crop)
    run(create_meshing_tasks(forged, shape=BLOCK))
    for name in ("multires", "sharded"):
        shutil.copytree(root / "legacy", root / name)
    layers = {name: f"file://{root / name}" for name in ("legacy", "multires", "sharded")}
    run(create_mesh_manifest_tasks(layers["legacy"], magnitude=1, nlod=0))
    run(create_mesh_manifest_tasks(layers["multires"], magnitude=1, nlod=1))
    run(create_sharded_multires_mesh_tasks(layers["sharded"], nlod=1))
    return layers


@pytest.fixture(scope="module")
def skeletonized(crop, tmp_path_factory):
    """Skeletons of the crop, forged in tasks that cut objects and merged unsharded."""
    path = new_layer(tmp_path_factory.mktemp("skeletons"), "seg", crop)
    run(create_skeletonizing_tasks(path, shape=BLOCK, dust_threshold=500, context=0))
    run(create_unsharded_skeleton_merge_tasks(path, magnitude=1, dust_threshold=0))
    return path


def directory(path: str, key: str) -> Path:
    return Path(path.removeprefix("file://")) / CloudVolume(path).info[key]


def stored(folder: Path, skip=()) -> dict:
    """Every file under `folder` (relative name -> bytes), without intermediates."""
    return {str(f.relative_to(folder)): f.read_bytes() for f in folder.rglob("*")
            if f.is_file() and not any(part in str(f.relative_to(folder)) for part in skip)}


def all_meshes(path: str) -> dict:
    """label -> mesh (the finest level) of every label with a mesh, found from the files."""
    cv = CloudVolume(path, progress=False)
    files = CloudFiles(directory(path, "mesh").as_uri())
    if cv.mesh.meta.is_sharded():
        labels = {int(label) for name in files.list() if name.endswith(".shard")
                  for label in cv.mesh.reader.list_labels(f"{cv.info['mesh']}/{name}")}
    else:
        pattern = r"(\d+):0" if cv.mesh.meta.info["@type"] == "neuroglancer_legacy_mesh" else r"(\d+)\.index"
        labels = {int(m.group(1)) for m in map(partial(re.fullmatch, pattern), files.list()) if m}
    meshes = {label: cv.mesh.get(label) for label in labels}
    return {label: mesh[label] if isinstance(mesh, dict) else mesh for label, mesh in meshes.items()}


def same_meshes(a: dict, b: dict) -> None:
    assert set(a) == set(b) and a
    for label in a:
        assert np.array_equal(a[label].vertices, b[label].vertices), label
        assert np.array_equal(a[label].faces, b[label].faces), label


@pytest.mark.parametrize("kind", ["legacy", "multires", "sharded"])
def test_mesh_xfer_copies_every_file_byte_for_byte(mesh_layers, kind, tmp_path):
    src = mesh_layers[kind]
    dest = f"file://{tmp_path}/dest"
    tasks = create_xfer_meshes_tasks(src, dest, magnitude=2)
    assert len(tasks) == 101
    run(tasks)
    source = stored(directory(src, "mesh"), skip=(".frags", "forge.json"))
    assert stored(directory(dest, "mesh")) == source
    assert any(name.endswith(".spatial") for name in source)
    same_meshes(all_meshes(dest), all_meshes(src))


def test_mesh_xfer_into_another_directory_of_an_existing_layer(mesh_layers, crop, tmp_path):
    dest = new_layer(tmp_path, "dest", crop)
    run_cli("mesh", "xfer", mesh_layers["multires"], dest, "--dir", "copied", "--magnitude", "1")
    assert CloudVolume(dest).info["mesh"] == "copied"
    same_meshes(all_meshes(dest), all_meshes(mesh_layers["multires"]))


@pytest.mark.parametrize("kind", ["legacy", "multires"])
def test_mesh_xfer_sharded_equals_sharded_merge(mesh_layers, kind, tmp_path):
    """Unsharded meshes written as shards decode to what a sharded merge of the same forge gives."""
    dest = f"file://{tmp_path}/dest"
    run_cli("mesh", "xfer", mesh_layers[kind], dest, "--sharded", "--nlod", "1" if kind == "legacy" else "0")
    assert CloudVolume(dest).mesh.meta.is_sharded()
    same_meshes(all_meshes(dest), all_meshes(mesh_layers["sharded"]))


def test_mesh_deletion_leaves_nothing_of_the_meshes_and_everything_else(mesh_layers, crop, tmp_path):
    path = new_layer(tmp_path, "seg", crop)
    run(create_xfer_meshes_tasks(mesh_layers["legacy"], path))
    root = Path(path.removeprefix("file://"))
    mesh_dir = directory(path, "mesh")
    others = {f: f.read_bytes() for f in root.rglob("*") if f.is_file() and mesh_dir not in f.parents
              and f.name != "info" and f.name != "provenance"}
    assert any(f.is_file() for f in mesh_dir.rglob("*"))
    run(create_mesh_deletion_tasks(path, magnitude=1))
    assert not [f for f in mesh_dir.rglob("*") if f.is_file()]
    assert "mesh" not in CloudVolume(path).info
    assert {f: f.read_bytes() for f in others} == others and others


def skeleton_arrays(path: str) -> dict:
    cv = CloudVolume(path, progress=False)
    return {s.id: s for s in cv.skeleton.get(skeleton_labels(cv))}


def test_skeleton_xfer_byte_for_byte_and_into_shards(skeletonized, tmp_path):
    plain, sharded = f"file://{tmp_path}/plain", f"file://{tmp_path}/sharded"
    run(create_xfer_skeleton_tasks(skeletonized, plain, magnitude=1))
    source = stored(directory(skeletonized, "skeletons"), skip=("fragments",))
    assert stored(directory(plain, "skeletons")) == source
    run_cli("skeleton", "xfer", skeletonized, sharded, "--sharded")
    assert CloudVolume(sharded).skeleton.meta.is_sharded()
    expected, found = skeleton_arrays(skeletonized), skeleton_arrays(sharded)
    assert set(found) == set(expected) and len(expected) > 10
    for label, skel in expected.items():
        assert np.array_equal(found[label].vertices, skel.vertices), label
        assert np.array_equal(found[label].edges, skel.edges), label


def test_skeleton_rm_leaves_nothing_of_the_skeletons_and_everything_else(skeletonized, crop, tmp_path):
    path = new_layer(tmp_path, "seg", crop)
    run(create_xfer_skeleton_tasks(skeletonized, path))
    CloudFiles(path).put("skeletons_mip_0/fragments/leftover", b"x")
    folder = directory(path, "skeletons")
    root = Path(path.removeprefix("file://"))
    chunks = {f: f.read_bytes() for f in root.rglob("*") if f.is_file() and folder not in f.parents
              and f.name not in ("info", "provenance")}
    run_cli("skeleton", "rm", path, "--magnitude", "1")
    assert not [f for f in folder.rglob("*") if f.is_file()]
    assert "skeletons" not in CloudVolume(path).info
    assert {f: f.read_bytes() for f in chunks} == chunks and chunks


def labels_in(crop: np.ndarray, low, high) -> set:
    """Labels with a voxel in [low, high) (global voxels), by numpy on the crop."""
    lo, hi = np.maximum(np.asarray(low) - OFFSET, 0), np.asarray(high) - OFFSET
    part = crop[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return set(int(x) for x in np.unique(part) if x)


def block_boxes(crop: np.ndarray, shape) -> list:
    """(label, low, high) in global voxels: each label's voxel box within each block of `shape`."""
    found = []
    for x, y, z in np.ndindex(*(-(-np.array(crop.shape) // shape))):
        start = np.array([x, y, z]) * shape
        block = crop[start[0]:start[0] + shape[0], start[1]:start[1] + shape[1], start[2]:start[2] + shape[2]]
        for label in np.unique(block[block != 0]):
            where = np.argwhere(block == label) + OFFSET + start
            found.append((int(label), where.min(axis=0), where.max(axis=0) + 1))
    return found


BOXES = [((100, 50, 7), (228, 178, 71)), ((130, 70, 20), (171, 95, 33)), ((160, 120, 40), (161, 121, 41)),
         ((100, 150, 60), (140, 178, 71)), ((201, 51, 8), (228, 99, 30))]


def check_queries(index, crop, shape) -> None:
    """A query answers the labels whose voxel box in some block of the index's grid meets the box
    (a superset of those with voxels in it, exactly what the format promises)."""
    boxes = block_boxes(crop, np.array(shape))
    for low, high in BOXES:
        box = Bbox(np.array(low) * RESOLUTION, np.array(high) * RESOLUTION)
        expected = {label for label, lo, hi in boxes if np.all(lo < high) and np.all(hi > low)}
        assert expected >= labels_in(crop, low, high)
        assert set(int(x) for x in index.query(box)) == expected, (low, high)
    every = labels_in(crop, OFFSET, OFFSET + crop.shape)
    assert set(int(x) for x in index.file_locations_per_label()) == every


def test_mesh_spatial_index_create_answers_box_queries(mesh_layers, crop, tmp_path):
    path = new_layer(tmp_path, "seg", crop)
    run(create_xfer_meshes_tasks(mesh_layers["sharded"], path))
    run(create_spatial_index_mesh_tasks(path, shape=(40, 56, 24)))
    cv = CloudVolume(path, progress=False)
    assert cv.mesh.meta.info["spatial_index"]["chunk_size"] == [640, 896, 960]
    check_queries(cv.mesh.spatial_index, crop, (40, 56, 24))
    database = tmp_path / "index.db"
    run_cli("mesh", "spatial-index", "db", path, f"sqlite://{database}")
    with sqlite3.connect(database) as db:
        rows = set(row[0] for row in db.execute("select distinct label from file_lookup"))
    assert rows == labels_in(crop, OFFSET, OFFSET + crop.shape)


def test_skeleton_forge_writes_the_spatial_index_and_create_rebuilds_it(skeletonized, crop, tmp_path):
    check_queries(CloudVolume(skeletonized, progress=False).skeleton.spatial_index, crop, BLOCK)
    path = new_layer(tmp_path, "seg", crop)
    run(create_xfer_skeleton_tasks(skeletonized, path))
    for f in CloudFiles(directory(path, "skeletons").as_uri()).list():
        if f.endswith(".spatial"):
            CloudFiles(directory(path, "skeletons").as_uri()).delete(f)
    run_cli("skeleton", "spatial-index", "create", path, "--shape", "72,40,20")
    cv = CloudVolume(path, progress=False)
    assert cv.skeleton.meta.info["spatial_index"]["chunk_size"] == [1152, 640, 800]
    check_queries(cv.skeleton.spatial_index, crop, (72, 40, 20))


@pytest.mark.parametrize("args,message", [
    (["mesh", "xfer", "{seg}", "{dest}"], "has no meshes"),
    (["skeleton", "xfer", "{seg}", "{dest}"], "has no skeletons"),
    (["skeleton", "rm", "{seg}"], "has no skeletons"),
    (["mesh", "xfer", "{multires}", "{dest}", "--sharded", "--nlod", "2"], "multi-resolution already"),
    (["mesh", "xfer", "{multires}", "{multires}"], "both source and destination"),
    (["mesh", "xfer", "{multires}", "{dest}", "--dir", "../out"], "not a path inside the layer"),
    (["mesh", "spatial-index", "create", "{image}"], "segmentation"),
    (["mesh", "spatial-index", "db", "{seg}", "{tmp}/x.db"], "no spatial index"),
    (["skeleton", "spatial-index", "create", "{seg}", "--shape", "0,4,4"], "--shape"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(mesh_layers, crop, tmp_path, args, message):
    small = np.asfortranarray(crop[:32, :32, :16])
    seg = new_layer(tmp_path, "seg", small)
    image = write_layer(f"file://{tmp_path}/image", small.astype(np.uint8), "image")
    names = dict(seg=seg, image=image, dest=f"file://{tmp_path}/dest", tmp=tmp_path,
                 multires=mesh_layers["multires"])
    before = {f: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()}
    src_before = stored(directory(mesh_layers["multires"], "mesh"))
    result = run_cli(*[a.format(**names) for a in args], check=False)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert {f: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()} == before
    assert stored(directory(mesh_layers["multires"], "mesh")) == src_before
