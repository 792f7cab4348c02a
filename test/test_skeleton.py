"""Skeletons: forge + merge over several tasks against kimimaro on the whole array, sharded and
unsharded output read back by CloudVolume (and the shard files by TensorStore), SWC export, and
the light-microscopy path (threshold, components across tasks) on tubes of known length."""
import json

import cc3d
import fastremap
import kimimaro
import numpy as np
import pytest
from cloudvolume import CloudVolume, Skeleton
from conftest import run_cli, write_layer
from taskqueue import TaskQueue

from igneous_like import queues
from igneous_like.skeletons import join_pieces, remove_seam_ticks, to_swc
from igneous_like.task_creation import (
    create_downsampling_tasks,
    create_sharded_skeleton_merge_tasks,
    create_skeletonizing_tasks,
    create_unsharded_skeleton_merge_tasks,
)
from igneous_like.task_creation.skeleton import DEFAULT_TEASAR, skeleton_labels

DUST = 1000  # voxels
ANISOTROPY = (32, 32, 40)  # mip 1 of the real data


@pytest.fixture(scope="module")
def forged(real_seg, tmp_path_factory):
    """A 512x512x128 crop of the real data, downsampled to mip 1 (256x256x128), forged over 8 tasks."""
    root = tmp_path_factory.mktemp("skel")
    path = write_layer(f"file://{root}/seg", np.asfortranarray(real_seg[:512, :512, :128]), "segmentation")
    queues.run_locally(create_downsampling_tasks(path, num_mips=1, compress="none"), quiet=True)
    tasks = create_skeletonizing_tasks(path, mip=1, shape=(128, 128, 64), dust_threshold=DUST)
    assert len(tasks) == 8
    queues.run_locally(tasks, parallel=2, quiet=True)
    cv = CloudVolume(path, mip=1, progress=False)
    return path, np.asfortranarray(cv[cv.bounds][..., 0])


def read_all(path: str) -> dict:
    cv = CloudVolume(path, progress=False)
    return {skel.id: skel for skel in cv.skeleton.get(skeleton_labels(cv))}


@pytest.fixture(scope="module")
def merged(forged):
    path, _ = forged
    queues.run_locally(create_unsharded_skeleton_merge_tasks(path, magnitude=1, dust_threshold=0), quiet=True)
    return read_all(path)


def test_chunked_skeletons_match_one_kimimaro_call(forged, merged):
    _, labels = forged
    cc = cc3d.connected_components(labels, connectivity=26)
    owner = fastremap.component_map(cc, labels)
    ids, counts = fastremap.unique(cc, return_counts=True)
    above_dust = {owner[i] for i, c in zip(ids, counts) if i and c > DUST}
    assert len(above_dust) > 300
    assert above_dust == set(merged)  # every label above the dust threshold, and no other

    teasar = {k: v for k, v in DEFAULT_TEASAR.items() if k != "max_paths"}
    reference = kimimaro.skeletonize(labels, teasar, anisotropy=ANISOTROPY, dust_threshold=DUST,
                                     progress=False)
    within = []
    for label in sorted(above_dust):
        skel = merged[label]
        voxels = np.floor(skel.vertices / ANISOTROPY).astype(int)
        assert np.mean(labels[tuple(voxels.T)] == label) >= 0.9, label
        assert len(skel.components()) <= cc3d.connected_components(labels == label, return_N=True)[1], label
        within.append(abs(skel.cable_length() / reference[label].cable_length() - 1) <= 0.05)
    assert np.mean(within) >= 0.9, np.mean(within)


def test_sharded_output_reads_like_unsharded(forged, merged, tmp_path):
    path, _ = forged
    queues.run_locally(create_sharded_skeleton_merge_tasks(path, dust_threshold=0, min_shards=4), quiet=True)
    cv = CloudVolume(path, progress=False)
    info = cv.skeleton.meta.info
    assert info["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    assert info["vertex_attributes"] == [{"id": "radius", "data_type": "float32", "num_components": 1}]
    sharded = read_all(path)
    assert set(sharded) == set(merged)
    for label, skel in merged.items():
        assert Skeleton.equivalent(skel, sharded[label]) and np.allclose(skel.radius, sharded[label].radius)

    ts = pytest.importorskip("tensorstore")  # reads the shard files, not the skeleton format
    store = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "metadata": info["sharding"],
                             "base": f"{cv.cloudpath}/{cv.info['skeletons']}/"}).result()
    for label in list(merged)[:20]:
        data = store.read(int(label).to_bytes(8, "big")).result().value
        skel = Skeleton.from_precomputed(bytes(data), vertex_attributes=info["vertex_attributes"])
        assert Skeleton.equivalent(skel, merged[label])


def parse_swc(text: str) -> np.ndarray:
    rows = np.array([line.split() for line in text.splitlines() if line and not line.startswith("#")], float)
    assert rows.shape[1] == 7
    return rows


def test_swc_export(forged, merged, tmp_path):
    path, _ = forged
    queues.run_locally(create_unsharded_skeleton_merge_tasks(path, magnitude=0, dust_threshold=0), quiet=True)
    labels = sorted(merged)[:5]
    run_cli("skeleton", "convert", path, tmp_path / "swc", "--format", "swc",
            "--labels", ",".join(map(str, labels)))
    assert sorted(p.name for p in (tmp_path / "swc").iterdir()) == sorted(f"{label}.swc" for label in labels)
    navis = pytest.importorskip("navis")
    for label in labels:
        text = (tmp_path / "swc" / f"{label}.swc").read_text()
        rows = parse_swc(text)
        ids, parents = rows[:, 0].astype(int), rows[:, 6].astype(int)
        assert set(parents[parents != -1]) <= set(ids) and len(set(ids)) == len(ids)
        skel = merged[label]
        assert len(rows) == len(skel.vertices)
        assert (parents == -1).sum() == len(skel.components())
        assert np.allclose(np.sort(rows[:, 2:5], axis=0), np.sort(skel.vertices, axis=0), atol=1e-3)  # nm
        neuron = navis.read_swc(str(tmp_path / "swc" / f"{label}.swc"))
        assert neuron.n_nodes == len(skel.vertices)
        assert neuron.cable_length == pytest.approx(skel.cable_length(), rel=1e-4)


RADIUS = 3.0  # tube radius in x voxels (300 nm)


def tubes_volume(rng):
    """A noisy confocal-like image (100x100x200 nm voxels) with 4 tubes of known centre lines.

    Each crosses at least one task seam; lines are axis-aligned or at 45 degrees in x-y, where a
    26-connected voxel path is as long as the line. Returns the image and each tube's length in
    nm from cap to cap (centre line plus a radius at each end).
    """
    shape = (160, 120, 48)
    image = rng.normal(30, 25, shape)
    lines = [((8, 20, 10), (150, 20, 10)), ((20, 8, 30), (20, 110, 30)), ((40, 70, 4), (40, 70, 44)),
             ((30, 10, 38), (130, 110, 38))]
    scale = np.array([1.0, 1.0, 2.0])
    points = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1) * scale
    lengths = []
    for start, end in lines:
        a, b = np.array(start) * scale, np.array(end) * scale
        t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        image[np.linalg.norm(points - (a + t[..., None] * (b - a)), axis=-1) <= RADIUS] += 150
        lengths.append((np.linalg.norm(b - a) + 2 * RADIUS) * 100)
    return np.clip(image, 0, 255).astype(np.uint8), lengths


def test_light_microscopy_tubes_through_a_queue(tmp_path):
    image, lengths = tubes_volume(np.random.default_rng(0))
    path = write_layer(f"file://{tmp_path}/confocal", image, "image", resolution=(100, 100, 200),
                       chunk=(64, 64, 24))
    queue = f"fq://{tmp_path}/queue"
    run_cli("skeleton", "forge", path, "--shape", "80,60,24", "--threshold-gte", 110, "--dust-threshold", 200,
            "--scale", 2, "--const", 300, "--queue", queue)
    assert TaskQueue(queue).enqueued == 8
    run_cli("-p", "2", "execute", "-x", queue)
    run_cli("skeleton", "merge", path, "--tick-threshold", 800, "--dust-threshold", 500, "--queue", queue)
    run_cli("execute", "-x", queue)
    cv = CloudVolume(path, progress=False)
    skeletons = cv.skeleton.get(skeleton_labels(cv))

    foreground = image >= 110
    _, components = cc3d.connected_components(foreground, connectivity=26, return_N=True)
    assert components > 4  # the noise has specks too; the dust threshold must drop them
    assert len(skeletons) == len(lengths) == 4
    found = sorted(s.cable_length() for s in skeletons)
    assert all(len(s.components()) == 1 for s in skeletons)
    for got, want in zip(found, sorted(lengths)):
        assert got == pytest.approx(want, rel=0.05), (found, sorted(lengths))
    run_cli("skeleton", "clean", path)
    fragments = tmp_path / "confocal" / cv.info["skeletons"] / "fragments"
    assert not [p for p in fragments.rglob("*") if p.is_file()]


def test_forge_options_reach_tasks(make_layer, tmp_path):
    path = make_layer("seg", np.ones((64, 64, 32), np.uint32), "segmentation")
    queue = f"fq://{tmp_path}/q"
    run_cli("skeleton", "forge", path, "--shape", "64,64,32", "--scale", 2, "--const", 50,
            "--pdrf-scale", 5000, "--pdrf-exponent", 8, "--soma-detect", 900, "--soma-accept", 3000,
            "--soma-scale", 0.5, "--soma-const", 100, "--max-paths", 7, "--dust-threshold", 5,
            "--no-fix-branching", "--no-fix-borders", "--fix-avocados", "--fill-holes", 1, "--labels", "1,2",
            "--cross-section", 3, "--context", 500, "--fill-missing", "--queue", queue)
    (task,) = TaskQueue(queue).tasks()
    options = task.kwargs["options"]
    assert options["teasar_params"] == {
        "scale": 2.0, "const": 50.0, "pdrf_scale": 5000.0, "pdrf_exponent": 8,
        "soma_detection_threshold": 900.0, "soma_acceptance_threshold": 3000.0,
        "soma_invalidation_scale": 0.5, "soma_invalidation_const": 100.0, "max_paths": 7}
    names = ("dust_threshold", "fix_branching", "fix_borders", "fix_avocados", "fill_holes", "object_ids",
             "cross_section", "context", "fill_missing")
    assert {k: options[k] for k in names} == {
        "dust_threshold": 5, "fix_branching": False, "fix_borders": False, "fix_avocados": True,
        "fill_holes": True, "object_ids": [1, 2], "cross_section": 3, "context": 500.0, "fill_missing": True}
    assert [a["id"] for a in task.kwargs["attributes"]] == ["radius", "cross_sectional_area"]
    json.dumps(task.kwargs)


def test_join_pieces_unions_shared_representatives():
    groups = join_pieces([[5, 9], [9], [7], [7, 11], [], [11]])
    assert groups[0] == groups[1] and groups[2] == groups[3] == groups[5]
    assert len({groups[0], groups[2], groups[4]}) == 3


def test_seam_ticks_go_and_other_branches_stay():
    # a path along x (off the seam plane y=5), with an in-plane stub on y=5 and a real branch
    vertices = np.array([[0, 4, 0], [1, 4, 0], [2, 4, 0], [3, 4, 0],  # 0-3 trunk
                         [2, 5, 0], [2, 5, 1], [2, 5, 2],             # 4-6 stub lying in plane y=5
                         [1, 3, 0], [1, 2, 0]], np.float32)           # 7-8 real branch
    edges = np.array([[0, 1], [1, 2], [2, 3], [2, 4], [4, 5], [5, 6], [1, 7], [7, 8]], np.uint32)
    skel = Skeleton(vertices, edges, radii=np.ones(9, np.float32))
    planes = np.full((9, 3), -1)
    planes[vertices[:, 1] == 5, 1] = 5
    out = remove_seam_ticks(skel, planes)
    assert len(out.vertices) == 6 and out.cable_length() == pytest.approx(5.0)


def test_swc_text_has_roots_and_parents():
    skel = Skeleton(np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [9, 9, 9]], np.float32),
                    np.array([[0, 1], [1, 2]], np.uint32), radii=np.full(4, 2, np.float32))
    rows = parse_swc(to_swc(skel, 7))
    assert rows[:, 0].tolist() == [1, 2, 3, 4]
    assert rows[:, 6].tolist() == [-1, 1, 2, -1]
    assert rows[:, 5].tolist() == [2, 2, 2, 2]


def test_merge_before_forge_finishes_says_so(make_layer, tmp_path):
    path = make_layer("seg", np.zeros((64, 64, 32), np.uint32), "segmentation")
    queue = f"fq://{tmp_path}/q"
    run_cli("skeleton", "forge", path, "--shape", "32,64,32", "--queue", queue)
    result = run_cli("skeleton", "merge", path, check=False)
    assert result.returncode == 2 and "2 of 2 forge tasks have not finished" in result.stderr
    run_cli("execute", "-x", queue)
    run_cli("skeleton", "merge", path)  # an empty volume merges into no skeletons
    assert CloudVolume(path).skeleton.meta.info["vertex_attributes"][0]["id"] == "radius"
