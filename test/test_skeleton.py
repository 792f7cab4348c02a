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
from igneous_like.skeletons import (
    join_pieces,
    make_skeleton,
    stitch,
    terminal_branches,
    to_swc,
    vertex_attributes,
)
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
    tasks = create_unsharded_skeleton_merge_tasks(path, magnitude=1, dust_threshold=0, tick_threshold=0)
    queues.run_locally(tasks, quiet=True)
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
                                     fix_borders=False, progress=False)  # the forge's default
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
    tasks = create_unsharded_skeleton_merge_tasks(path, magnitude=0, dust_threshold=0, tick_threshold=0)
    queues.run_locally(tasks, quiet=True)
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
    # one task over the whole stack traces the same cable; its path wiggles through the noisy
    # tube along y, 5.4% longer than the line from cap to cap
    for got, want in zip(found, sorted(lengths)):
        assert got == pytest.approx(want, rel=0.06), (found, sorted(lengths))
    run_cli("skeleton", "clean", path)
    fragments = tmp_path / "confocal" / cv.info["skeletons"] / "fragments"
    assert not [p for p in fragments.rglob("*") if p.is_file()]


def test_forge_options_reach_tasks(make_layer, tmp_path):
    path = make_layer("seg", np.ones((64, 64, 32), np.uint32), "segmentation")
    queue = f"fq://{tmp_path}/q"
    run_cli("skeleton", "forge", path, "--shape", "64,64,32", "--scale", 2, "--const", 50,
            "--pdrf-scale", 5000, "--pdrf-exponent", 8, "--soma-detect", 900, "--soma-accept", 3000,
            "--soma-scale", 0.5, "--soma-const", 100, "--max-paths", 7, "--dust-threshold", 5,
            "--no-fix-branching", "--fix-borders", "--fix-avocados", "--fill-holes", 1, "--labels", "1,2",
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
        "dust_threshold": 5, "fix_branching": False, "fix_borders": True, "fix_avocados": True,
        "fill_holes": True, "object_ids": [1, 2], "cross_section": 3, "context": 500.0, "fill_missing": True}
    assert [a["id"] for a in task.kwargs["attributes"]] == ["radius", "cross_sectional_area"]
    json.dumps(task.kwargs)


def test_join_pieces_unions_shared_representatives():
    groups = join_pieces([[5, 9], [9], [7], [7, 11], [], [11]])
    assert groups[0] == groups[1] and groups[2] == groups[3] == groups[5]
    assert len({groups[0], groups[2], groups[4]}) == 3


def path_skeleton(points, radius=1.0, edges=None) -> Skeleton:
    """A skeleton of `points` (nm) with one radius, along them unless `edges` are given."""
    edges = [(i, i + 1) for i in range(len(points) - 1)] if edges is None else edges
    radii = {"radius": np.full(len(points), radius)}
    return make_skeleton(np.asarray(points, float), np.asarray(edges), radii, vertex_attributes(False))


def reach(radius):
    return 4 * np.asarray(radius, float) + 1  # TEASAR's invalidation radius for scale 4, const 1


def test_stitch_keeps_context_cable_that_no_owner_covers():
    # task A traced a tube from x=0 to 100 nm but owns x <= 50; the owner of x > 50 traced it too
    # (and A's context cable goes), or traced cable 100 nm away only (and A's stays, joined up)
    line = [(x, 0, 0) for x in range(0, 101, 10)]
    a = (path_skeleton(line), np.array([x <= 50 for x, _, _ in line]))
    owner = [(x, 0, 0) for x in range(50, 101, 10)]
    elsewhere = [(x, 100, 0) for x in range(50, 101, 10)]
    covered = stitch([a, (path_skeleton(owner), np.ones(len(owner), bool))], reach)
    assert covered.cable_length() == pytest.approx(100) and len(covered.vertices) == len(line)
    apart = stitch([a, (path_skeleton(elsewhere), np.ones(len(elsewhere), bool))], reach)
    assert len(apart.components()) == 1
    assert {tuple(v) for v in apart.vertices} == {tuple(map(float, v)) for v in line + elsewhere}
    assert apart.cable_length() == pytest.approx(100 + 50 + 100)  # A's line, the other, one join


def test_stitch_joins_seam_crossings_and_trims_second_traces():
    # tasks A (x <= 50) and B (x >= 50) crossed their seam through different voxels: A's cut end
    # (50, 0) joins B's nearest vertex, B's cut end (50, 14) is left as a spur inside A's tube
    # (radius 15) and goes; the context cable of each (covered by the other's) does not come back,
    # and A's side branch (its tip far from other cable) stays
    trunk = [(0, 0, 0), (10, 0, 0), (20, 0, 0), (30, 0, 0), (40, 0, 0), (50, 0, 0), (60, 0, 0)]
    side = [(20, -10, 0), (20, -40, 0), (20, -80, 0)]
    a = path_skeleton(trunk + side, 15, [(i, i + 1) for i in range(6)] + [(2, 7), (7, 8), (8, 9)])
    b = path_skeleton([(40, 14, 0), (50, 14, 0), (58, 6, 0), (70, 6, 0), (80, 6, 0)], radius=15)
    out = stitch([(a, a.vertices[:, 0] <= 50), (b, b.vertices[:, 0] >= 50)], lambda r: 2 * np.asarray(r))
    assert len(out.components()) == 1
    assert {tuple(v) for v in out.vertices} == {tuple(map(float, v)) for v in trunk[:-1] + side +
                                                [(58, 6, 0), (70, 6, 0), (80, 6, 0)]}
    assert out.cable_length() == pytest.approx(50 + 80 + 10 + 22)  # trunk, side, join, B


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


# Seams: skeletons must not depend on the task shape. Branched tubes cross the seams on every axis;
# the references are cc3d's components of the volume and a single-task run of the same volume.

def tube_mask(shape, segments, radius) -> np.ndarray:
    """Voxels within an ellipsoidal `radius` (voxels per axis) of any segment (voxel coordinates)."""
    points = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1).astype(np.float32)
    mask = np.zeros(shape, bool)
    for a, b in segments:
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        t = np.clip((points - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
        mask |= np.linalg.norm((points - a - t[..., None] * (b - a)) / radius, axis=-1) <= 1
    return mask


def forge_and_merge(root, name, data, layer_type, resolution, shape, mip=0, **options) -> dict:
    """{label: Skeleton} of a fresh layer holding `data`, forged in tasks of `shape` and merged."""
    path = write_layer(f"file://{root / name}", data, layer_type, resolution=resolution)
    if mip:
        queues.run_locally(create_downsampling_tasks(path, num_mips=mip, compress="none"), quiet=True)
    queues.run_locally(create_skeletonizing_tasks(path, mip=mip, shape=shape, **options), quiet=True)
    queues.run_locally(create_unsharded_skeleton_merge_tasks(path, dust_threshold=0, tick_threshold=0),
                       quiet=True)
    return read_all(path)


def by_object(skeletons: dict, objects: np.ndarray, resolution) -> dict:
    """Skeletons keyed by the object (its id in `objects`) that holds every one of their vertices."""
    out = {}
    for skel in skeletons.values():
        inside = np.unique(objects[tuple(np.floor(skel.vertices / resolution).astype(int).T)])
        assert len(inside) == 1 and inside[0] != 0 and inside[0] not in out, (skel.id, inside)
        out[int(inside[0])] = skel
    return out


def assert_seamless(got: dict, single: dict, pieces: dict):
    """No object lost or added, each in as many pieces as it has connected components, and cable
    within 5% of the single-task run for at least 90% of the objects."""
    assert set(got) == set(single) == set(pieces)
    assert {k: len(s.components()) for k, s in got.items()} == pieces
    ratios = {k: round(got[k].cable_length() / single[k].cable_length(), 3) for k in got}
    assert np.mean([abs(r - 1) <= 0.05 for r in ratios.values()]) >= 0.9, ratios


LM_RESOLUTION = (190, 190, 380)  # a confocal-like stack; the tubes are 5x5x4 voxels across
LM_TUBES = [  # voxel coordinates of each object's centre lines (seams of 64x64x20 and 32x32x10 tasks)
    # the main axis along x lies in the y=64 and z=20 seam planes; the branch along y leaves it at
    # (64, 64, 20), a corner of the x, y and z seams of 64x64x20 tasks
    [((4, 64, 20), (124, 64, 20)), ((64, 64, 20), (64, 124, 20))],
    # along z across the z seams, with a branch along x leaving it on the z=20 seam
    [((100, 24, 2), (100, 24, 38)), ((100, 24, 20), (124, 24, 20))],
    # diagonal across the z seams, with a branch across the y and z seams
    [((10, 96, 3), (56, 110, 37)), ((33, 103, 20), (40, 126, 10))],
    # a Y whose branch point lies on the z=20 seam, its arms across the x, y and z seams
    [((8, 16, 30), (32, 30, 20)), ((32, 30, 20), (56, 10, 6)), ((32, 30, 20), (50, 44, 36))],
]


@pytest.fixture(scope="module")
def lm_stack(tmp_path_factory):
    """The stack, its objects (26-connected components of the foreground, dust dropped) and the
    skeletons of a single task, keyed by object."""
    shape = (128, 128, 40)
    image = np.random.default_rng(0).normal(15, 6, shape)
    for segments in LM_TUBES:
        image[tube_mask(shape, segments, (2.5, 2.5, 2))] += 100
    image = np.clip(image, 0, 255).astype(np.uint8)
    objects = cc3d.dust(cc3d.connected_components(image >= 40, connectivity=26), DUST)
    assert len(np.unique(objects)) == len(LM_TUBES) + 1
    single = forge_and_merge(tmp_path_factory.mktemp("lm"), "single", image, "image", LM_RESOLUTION, shape,
                             threshold_gte=40)
    return image, objects, by_object(single, objects, LM_RESOLUTION)


@pytest.mark.parametrize("shape", [(64, 64, 20), (32, 32, 10)])
def test_light_microscopy_branches_across_seams(lm_stack, tmp_path, shape):
    image, objects, single = lm_stack
    got = forge_and_merge(tmp_path, "lm", image, "image", LM_RESOLUTION, shape, threshold_gte=40)
    assert_seamless(by_object(got, objects, LM_RESOLUTION), single, {k: 1 for k in single})


@pytest.mark.parametrize("context", [0, 200])
def test_a_small_context_removes_no_cable(lm_stack, tmp_path, context):
    # 200 nm is about a voxel: the read box then cuts the tubes that lie along seams lengthwise, and the
    # centre line a task traces for them runs outside its crop (in its neighbour's)
    image, objects, single = lm_stack
    got = by_object(forge_and_merge(tmp_path, "lm", image, "image", LM_RESOLUTION, (64, 64, 20),
                                    threshold_gte=40, context=context), objects, LM_RESOLUTION)
    assert set(got) == set(single) and all(len(s.components()) == 1 for s in got.values())
    ratios = {k: round(got[k].cable_length() / single[k].cable_length(), 3) for k in got}
    assert min(ratios.values()) >= 0.95, ratios


SEG_RESOLUTION = (32, 32, 40)
SEG_TUBES = {  # label: centre lines (voxels); seams of 64x64x32 and 48x40x20 tasks
    7: [((6, 64, 32), (122, 64, 32)), ((64, 64, 32), (64, 120, 32)), ((64, 64, 32), (64, 64, 4))],
    9: [((100, 24, 3), (100, 24, 60)), ((100, 24, 32), (124, 30, 32)), ((100, 24, 16), (80, 4, 16))],
    11: [((10, 10, 10), (40, 30, 20)), ((40, 30, 20), (40, 50, 30)), ((40, 30, 20), (60, 10, 40)),
         ((20, 100, 50), (30, 122, 50)), ((30, 122, 50), (50, 100, 60))],  # two components
    5: [((70, 72, 20), (120, 110, 58)), ((96, 91, 39), (96, 124, 39))],
    3: [((10, 80, 8), (50, 80, 56)), ((30, 80, 32), (30, 126, 32)), ((30, 80, 32), (10, 60, 32))],
}


@pytest.fixture(scope="module")
def seg_stack(tmp_path_factory):
    """Labelled branched tubes (touching each other where they cross), each label's component count
    above the dust threshold (cc3d), and the skeletons of a single task."""
    shape = (128, 128, 64)
    seg = np.zeros(shape, np.uint32)
    for label, segments in SEG_TUBES.items():
        seg[tube_mask(shape, segments, (3.5, 3.5, 2.8)) & (seg == 0)] = label
    pieces = {label: len(np.unique(cc3d.dust(cc3d.connected_components(seg == label), DUST))) - 1
              for label in SEG_TUBES}
    assert pieces[11] == 2
    single = forge_and_merge(tmp_path_factory.mktemp("seg"), "single", seg, "segmentation", SEG_RESOLUTION,
                             shape)
    assert by_object(single, seg, SEG_RESOLUTION) == single
    return seg, pieces, single


@pytest.mark.parametrize("shape", [(64, 64, 32), (48, 40, 20)])
def test_segmentation_branches_across_seams(seg_stack, tmp_path, shape):
    seg, pieces, single = seg_stack
    got = forge_and_merge(tmp_path, "seg", seg, "segmentation", SEG_RESOLUTION, shape)
    assert by_object(got, seg, SEG_RESOLUTION) == got  # every vertex inside its own label
    assert_seamless(got, single, pieces)


@pytest.fixture(scope="module")
def real_crop(real_seg, tmp_path_factory):
    """A 256x256x64 crop of the real data at mip 1 (128x128x64, 35 objects above the dust
    threshold), the labels above the dust threshold with their component counts, and the
    skeletons of a single task."""
    crop = np.asfortranarray(real_seg[:256, :256, :64])
    root = tmp_path_factory.mktemp("real")
    single = forge_and_merge(root, "single", crop, "segmentation", (16, 16, 40), (128, 128, 64), mip=1)
    labels = np.asfortranarray(CloudVolume(f"file://{root / 'single'}", mip=1)[:, :, :][..., 0])
    cc = cc3d.connected_components(labels, connectivity=26)
    owner = fastremap.component_map(cc, labels)
    ids, counts = fastremap.unique(cc, return_counts=True)
    above_dust = {owner[i] for i, c in zip(ids, counts) if i and c > DUST}
    pieces = {k: cc3d.connected_components(labels == k, return_N=True)[1] for k in above_dust}
    return crop, pieces, single, f"file://{root / 'single'}"


@pytest.mark.parametrize("shape", [(64, 64, 16), (64, 64, 32)])
def test_real_crop_across_seams(real_crop, tmp_path, shape):
    crop, pieces, single, _ = real_crop
    got = forge_and_merge(tmp_path, "tasks", crop, "segmentation", (16, 16, 40), shape, mip=1)
    assert len(pieces) > 30 and set(got) == set(single) == set(pieces)
    for label, skel in got.items():
        assert len(skel.components()) <= pieces[label], label
    ratios = [got[k].cable_length() / single[k].cable_length() for k in got]
    assert np.mean(np.abs(np.array(ratios) - 1) <= 0.05) >= 0.9, sorted(np.round(ratios, 3))


def test_tick_removal_never_splits_a_skeleton(real_crop):
    # kimimaro's tick removal cuts one of these objects (2 components) into 3 pieces
    _, pieces, single, path = real_crop
    queues.run_locally(create_unsharded_skeleton_merge_tasks(path, dust_threshold=0, tick_threshold=1000),
                       quiet=True)
    got = read_all(path)
    assert set(got) == set(single)
    for label, skel in got.items():
        assert len(skel.components()) <= pieces[label], label
        for branch, junction in terminal_branches(skel.edges.astype(int), len(skel.vertices)):
            tick = np.linalg.norm(np.diff(skel.vertices[branch + [junction]], axis=0), axis=1).sum()
            assert tick >= 1000, label


def test_merge_refuses_fragments_of_another_version(make_layer, tmp_path):
    path = make_layer("seg", np.zeros((64, 64, 32), np.uint32), "segmentation")
    run_cli("skeleton", "forge", path, "--queue", f"fq://{tmp_path}/q")
    forge = tmp_path / "seg" / "skeletons_mip_0" / "fragments" / "forge.json"
    record = json.loads(forge.read_text())
    del record["soma_accept"]  # as an earlier version wrote it
    forge.write_text(json.dumps(record))
    result = run_cli("skeleton", "merge", path, check=False)
    assert result.returncode == 2 and "forged by another version" in result.stderr
