"""Meshes: forge over many blocks, merge into every format, and check them against the voxels.

References are computed independently: label bounding boxes and voxel counts with numpy on the
whole crop, and one-block meshes (no seams at all) for the crack test.
"""
import numpy as np
import pytest
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox
from conftest import run_cli

from igneous_like import meshes
from igneous_like.errors import UserError
from igneous_like.queues import run_locally
from igneous_like.task_creation import (
    create_mesh_manifest_tasks,
    create_meshing_tasks,
)

RESOLUTION = np.array([16.0, 16.0, 40.0])
OFFSET = (100, 50, 7)
BLOCK = (64, 64, 32)  # 8 blocks over the crop


@pytest.fixture(scope="module")
def crop(real_seg) -> np.ndarray:
    """A 128x128x64 crop of the real segmentation with about 80 objects."""
    return np.asfortranarray(real_seg[200:328, 200:328, 200:264])


@pytest.fixture(scope="module")
def truth(crop):
    """label -> (voxel count, voxel bounding box in nm), from numpy on the whole crop."""
    found = {}
    for label in np.unique(crop):
        if label == 0:
            continue
        where = np.argwhere(crop == label)
        low = (where.min(axis=0) + OFFSET) * RESOLUTION
        high = (where.max(axis=0) + 1 + OFFSET) * RESOLUTION
        found[int(label)] = (len(where), low, high)
    return found


@pytest.fixture
def layer(make_layer, crop):
    return make_layer("seg", crop, "segmentation", offset=OFFSET, chunk=(32, 32, 32))


def run(tasks):
    run_locally(tasks, 1, True, tasks.description)


def closed(mesh) -> bool:
    """Every edge is shared by exactly two triangles."""
    faces = np.asarray(mesh.faces)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool(len(faces)) and bool((counts == 2).all())


def area(mesh) -> float:
    v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces)
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()


def check_boxes(found: dict, truth: dict, dust: int, max_error: float) -> None:
    """Exactly the labels above dust have meshes, each spanning its voxels' box in nm."""
    expected = {label for label, (count, _, _) in truth.items() if count >= dust}
    assert set(found) == expected
    for label, mesh in found.items():
        _, low, high = truth[label]
        tolerance = RESOLUTION + max_error
        assert np.all(np.abs(mesh.vertices.min(axis=0) - low) <= tolerance), label
        assert np.all(np.abs(mesh.vertices.max(axis=0) - high) <= tolerance), label


def test_legacy_meshes_match_the_voxels(layer, truth, monkeypatch):
    monkeypatch.setattr("igneous_like.tasks.mesh.LABELS_PER_BATCH", 7)  # many batches per merge task
    run(create_meshing_tasks(layer, shape=BLOCK, dust_threshold=20, dust_global=True))
    run(create_mesh_manifest_tasks(layer, magnitude=1, nlod=0))
    cv = CloudVolume(layer, progress=False)
    labels = [label for label, (count, _, _) in truth.items() if count >= 20]
    assert len(labels) > 40
    found = cv.mesh.get(labels, fuse=False)
    check_boxes(found, truth, 20, 40.0)
    assert all(closed(mesh) for mesh in found.values())
    dust = [label for label, (count, _, _) in truth.items() if count < 20]
    manifests = CloudFiles(layer).exists([f"{cv.info['mesh']}/{label}:0" for label in dust])
    assert dust and not any(manifests.values())


@pytest.mark.parametrize("simplify,encoding",
                         [(False, "precomputed"), (True, "precomputed"), (True, "draco")])
def test_no_cracks_across_blocks(make_layer, crop, simplify, encoding):
    """Meshes forged over 8 blocks are closed like those of one block, with the same topology
    (Euler characteristic) and surface: identical without simplification, within 3% with it."""
    meshes_by_blocks = {}
    for name, shape in [("one", crop.shape), ("eight", BLOCK)]:
        path = make_layer(name, crop, "segmentation", offset=OFFSET, chunk=(32, 32, 32))
        run(create_meshing_tasks(path, shape=shape, simplification=simplify, encoding=encoding))
        run(create_mesh_manifest_tasks(path, magnitude=0))
        cv = CloudVolume(path, progress=False)
        meshes_by_blocks[name] = cv.mesh.get([int(x) for x in np.unique(crop) if x], fuse=False)
    one, eight = meshes_by_blocks["one"], meshes_by_blocks["eight"]
    assert set(one) == set(eight)
    for label in one:
        assert closed(one[label]) and closed(eight[label]), label
        euler = [len(m.vertices) - len(m.faces) // 2 for m in (one[label], eight[label])]  # V - E + F
        assert euler[0] == euler[1], label
        if not simplify:
            assert len(one[label].faces) == len(eight[label].faces), label
            assert area(eight[label]) == pytest.approx(area(one[label]), rel=1e-5)
        elif np.count_nonzero(crop == label) >= 5000:
            # seam vertices stay put, so simplification differs a little near seams
            assert area(eight[label]) == pytest.approx(area(one[label]), rel=0.03), label


def test_spatial_index_finds_meshes_by_box(layer, crop, truth):
    run(create_meshing_tasks(layer, shape=BLOCK, simplification=False))
    cv = CloudVolume(layer, progress=False)
    everything = Bbox(cv.bounds.minpt * RESOLUTION, cv.bounds.maxpt * RESOLUTION)
    assert set(map(int, cv.mesh.spatial_index.query(everything))) == set(truth)
    inner = crop[10:60, 70:120, 5:30]
    wanted = set(int(x) for x in np.unique(inner) if x)
    low = (np.array([10, 70, 5]) + OFFSET) * RESOLUTION
    high = (np.array([60, 120, 30]) + OFFSET) * RESOLUTION
    assert wanted <= set(map(int, cv.mesh.spatial_index.query(Bbox(low, high))))


def test_object_ids_and_exclusions(layer, truth):
    """Igneous's object_ids / exclude_object_ids: only (or all but) those labels get meshes."""
    chosen = sorted(truth)[:5]
    run(create_meshing_tasks(layer, shape=BLOCK, object_ids=chosen))
    run(create_mesh_manifest_tasks(layer, magnitude=0))
    cv = CloudVolume(layer, progress=False)
    names = set(CloudFiles(cv.cloudpath + "/" + cv.info["mesh"]).list())
    assert {int(n.split(":")[0]) for n in names if n.endswith(":0")} == set(chosen)
    path = layer
    run(create_meshing_tasks(path, shape=BLOCK, exclude_object_ids=chosen, mesh_dir="without"))
    run(create_mesh_manifest_tasks(path, magnitude=0, mesh_dir="without"))
    names = set(CloudFiles(cv.cloudpath + "/without").list())
    assert {int(n.split(":")[0]) for n in names if n.endswith(":0")} == set(truth) - set(chosen)


def test_merge_splits_labels_evenly(make_layer):
    """8,000 one-voxel objects: 100 merge tasks of 80 labels each, every object meshed once."""
    labels = np.arange(1, 8001, dtype=np.uint32).reshape((20, 20, 20), order="F")
    path = make_layer("many", labels, "segmentation", chunk=(10, 10, 10))
    run(create_meshing_tasks(path, shape=(10, 10, 10), spatial_index=False))
    tasks = create_mesh_manifest_tasks(path, magnitude=2)
    ranges = [task.keywords["label_range"] for task in tasks]
    assert len(ranges) == 100
    assert [min(last, 8000) - first + 1 for first, last in ranges] == [80] * 100
    run(tasks)
    cv = CloudVolume(path, progress=False)
    names = CloudFiles(cv.cloudpath + "/" + cv.info["mesh"]).list()
    assert sorted(int(name[:-2]) for name in names if name.endswith(":0")) == list(range(1, 8001))


def test_merge_refuses_unfinished_forge(layer):
    tasks = create_meshing_tasks(layer, shape=BLOCK)
    for i, task in enumerate(tasks):
        if i != 3:
            task()
    with pytest.raises(UserError, match="1 of 8 forge blocks"):
        create_mesh_manifest_tasks(layer)
    cv = CloudVolume(layer, progress=False)
    assert not [name for name in CloudFiles(cv.cloudpath + "/" + cv.info["mesh"]).list() if ":0" in name]


def test_forge_merge_clean_rm_through_a_queue(layer, tmp_path, truth):
    queue = f"fq://{tmp_path / 'queue'}"
    run_cli("mesh", "forge", layer, "--shape", "64,64,32", "--dust-threshold", "20", "--dust-global",
            "--queue", queue)
    early = run_cli("mesh", "merge", layer, check=False)
    assert early.returncode == 2 and "8 of 8 forge blocks" in early.stderr and "Traceback" not in early.stderr
    run_cli("-p", "2", "execute", "-x", queue)
    run_cli("mesh", "merge-sharded", layer, "--nlod", "1", "--queue", queue)
    run_cli("execute", "-x", queue)
    cv = CloudVolume(layer, progress=False)
    labels = sorted(label for label, (count, _, _) in truth.items() if count >= 20)
    check_boxes(cv.mesh.get(labels, lod=0), truth, 20, 40.0)
    mesh_dir = CloudFiles(cv.cloudpath + "/" + cv.info["mesh"])
    assert any(name.endswith(".frags") for name in mesh_dir.list())
    run_cli("mesh", "clean", layer)
    left = list(mesh_dir.list())
    assert not any(name.endswith(".frags") for name in left) and any(name.endswith(".shard") for name in left)
    run_cli("mesh", "rm", layer)
    assert list(mesh_dir.list()) == [] and "mesh" not in CloudVolume(layer).info


@pytest.mark.parametrize("args,message", [
    (["--labels", "1,2", "--exclude-labels", "3"], "either --labels or --exclude-labels"),
    (["--max-error", "-1"], "--max-error must be at least 0"),
    (["--shape", "0,64,64"], "--shape values must be at least 1"),
    (["--mip", "3"], "mip 3 does not exist"),
    (["--fill-holes", "104"], "104 is not in the range 0<=x<=103"),
])
def test_forge_bad_input(layer, args, message):
    result = run_cli("mesh", "forge", layer, *args, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert "mesh" not in CloudVolume(layer).info


def test_meshes_need_a_segmentation(make_layer, tmp_path):
    path = make_layer("img", np.zeros((32, 32, 32), np.uint8), "image")
    result = run_cli("mesh", "forge", path, check=False)
    assert result.returncode == 2 and "meshes need a segmentation layer" in result.stderr
    merge = run_cli("mesh", "merge", path, check=False)
    assert merge.returncode == 2 and "has no meshes" in merge.stderr


def test_weld_joins_only_seam_vertices():
    """Two unit squares meeting on a seam plane share its vertices after welding; others stay apart."""
    vertices = np.array([[0, 0, 0], [8, 0, 0], [8, 8, 0], [8, 0, 0], [16, 0, 0], [8, 8, 0],
                         [1, 1, 1], [1, 1, 1]], np.float32)
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 0]], np.uint32)
    planes = [np.array([8.0]), np.array([]), np.array([])]
    welded = meshes.weld_seams(meshes.Mesh(vertices, faces, None), planes, (16, 16, 16))
    assert len(welded.vertices) == 6  # 8 - two seam duplicates; the off-seam twins stay distinct
    assert len(welded.faces) == 3


def test_fill_missing_reads_absent_chunks_as_background(layer, crop, truth):
    """Without --fill-missing a missing chunk fails its block; with it, that chunk's voxels are
    background, so labels living only there get no mesh."""
    cv = CloudVolume(layer, progress=False)
    chunk = "100-132_50-82_7-39"
    CloudFiles(cv.cloudpath + "/" + cv.key).delete([chunk, chunk + ".gz"])
    with pytest.raises(Exception, match="1 of 8 tasks failed"):
        run(create_meshing_tasks(layer, shape=BLOCK))
    run(create_meshing_tasks(layer, shape=BLOCK, fill_missing=True))
    run(create_mesh_manifest_tasks(layer, magnitude=0))
    rest = crop.copy()
    rest[:32, :32, :32] = 0
    names = CloudFiles(cv.cloudpath + "/" + CloudVolume(layer).info["mesh"]).list()
    meshed = {int(name[:-2]) for name in names if name.endswith(":0")}
    assert meshed == {int(x) for x in np.unique(rest) if x}
