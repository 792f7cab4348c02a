"""Connected components and voxel counts equal cc3d and fastremap on the whole array.

The stages run in this process on mem:// layers for the matrix (task shapes, offsets,
connectivities, thresholds, dust), and once through the CLI and a real fq:// queue.
"""
import json
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import cc3d
import fastremap
import numpy as np
import pytest
from cloudvolume import CloudVolume
from conftest import read_mip, run_cli, tensorstore_read, write_layer
from taskqueue import TaskQueue
from test_bad_input import snapshot

from igneous_like import ccl, label_table
from igneous_like.queues import run_locally
from igneous_like.task_creation import (
    accumulate_voxel_counts,
    create_ccl_equivalence_tasks,
    create_ccl_face_tasks,
    create_ccl_relabel_tasks,
    create_relabeling,
    create_voxel_counting_tasks,
)

OFFSETS = {"origin": (0, 0, 0), "shifted": (100, 50, 7)}
CROP = (slice(256, 512), slice(300, 500), slice(0, 120))  # 256x200x120 of the real data
THRESHOLD = 140  # the image's objects of grey >= 140, split by its dark borders
SESSION = uuid.uuid4().hex


@pytest.fixture(scope="module")
def volumes(real_seg, real_image):
    """(kind, region) -> the array; kind is 'seg' (labels) or 'image' (thresholded)."""
    return {("seg", "full"): real_seg, ("image", "full"): real_image,
            ("seg", "crop"): np.asfortranarray(real_seg[CROP]),
            ("image", "crop"): np.asfortranarray(real_image[CROP])}


@pytest.fixture(scope="module")
def layers(volumes):
    """mem:// source layers, written once per (kind, region, offset)."""
    made = {}

    def get(kind, region, offset):
        key = (kind, region, offset)
        if key not in made:
            layer_type = "segmentation" if kind == "seg" else "image"
            made[key] = write_layer(f"mem://ccl{SESSION}/{kind}_{region}_{offset}", volumes[kind, region],
                                    layer_type, offset=OFFSETS[offset], chunk=(128, 128, 64))
        return made[key]
    return get


@pytest.fixture(scope="module")
def reference(volumes):
    """cc3d on the whole array (cached), with cc3d.dust for --dust."""
    cache = {}

    def get(kind, region, connectivity, dust=0):
        key = (kind, region, connectivity)
        if key not in cache:
            data = volumes[kind, region]
            cache[key] = cc3d.connected_components(data >= THRESHOLD if kind == "image" else data,
                                                   connectivity=connectivity)
        labels = cache[key]
        return cc3d.dust(labels, dust, connectivity=connectivity) if dust else labels
    return get


def threshold(kind: str) -> dict:
    return {"threshold_gte": THRESHOLD} if kind == "image" else {}


def label_in_process(src: str, dest: str, shape, connectivity: int, dust: int = 0, **options) -> int:
    run_locally(create_ccl_face_tasks(src, shape=shape, connectivity=connectivity, dust_threshold=dust,
                                      **options),
                quiet=True)
    run_locally(create_ccl_equivalence_tasks(src), quiet=True)
    count = create_relabeling(src)
    run_locally(create_ccl_relabel_tasks(src, dest, compress="none"), quiet=True)
    return count


def assert_same_components(out: np.ndarray, ref: np.ndarray, count: int) -> None:
    """out equals ref up to a one-to-one relabeling (0 stays 0), with ids 1..count.

    Written to allocate little: a 512^3 comparison must stay quick."""
    assert out.shape == ref.shape
    common = np.promote_types(out.dtype, ref.dtype)
    out, ref = (array.ravel(order="F").astype(common, copy=False) for array in (out, ref))
    present = fastremap.unique(out)
    assert np.array_equal(present[present != 0], np.arange(1, count + 1)), "ids are not 1..N"
    image = np.zeros(int(ref.max()) + 1, dtype=common)
    image[ref] = out  # the id each reference component got (one of them, if it was split)
    mapped = fastremap.remap_from_array(ref, image, in_place=False)
    assert np.array_equal(mapped, out), "a reference component was split"
    ref_ids = fastremap.unique(ref)
    assert np.unique(image[ref_ids]).size == ref_ids.size, "components were merged"
    assert ref_ids[0] != 0 or image[0] == 0, "background was labeled"


def check(layers, reference, kind, region, offset, shape, connectivity, dust):
    src = layers(kind, region, offset)
    dest = f"{src}_cc_{'x'.join(map(str, shape))}_{connectivity}_{dust}"
    count = label_in_process(src, dest, shape, connectivity, dust, **threshold(kind))
    assert_same_components(read_mip(dest, 0), reference(kind, region, connectivity, dust), count)
    assert CloudVolume(dest).meta.voxel_offset(0).tolist() == list(OFFSETS[offset])


@pytest.mark.parametrize("kind,shape,connectivity,offset,dust", [
    ("seg", (512, 512, 512), 6, "origin", 0),
    ("seg", (256, 256, 256), 26, "shifted", 500),
    ("image", (512, 512, 512), 26, "shifted", 0),
    ("image", (256, 256, 256), 6, "origin", 0),
])
def test_full_volume_matches_cc3d(layers, reference, kind, shape, connectivity, offset, dust):
    check(layers, reference, kind, "full", offset, shape, connectivity, dust)


@pytest.mark.parametrize("dust", [0])
@pytest.mark.parametrize("offset", list(OFFSETS))
@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("shape", [(128, 128, 128), (100, 128, 64)])
@pytest.mark.parametrize("kind", ["seg", "image"])
def test_crop_small_tasks_match_cc3d(layers, reference, kind, shape, connectivity, offset, dust):
    check(layers, reference, kind, "crop", offset, shape, connectivity, dust)


@pytest.mark.parametrize("kind,shape,connectivity,dust", [
    ("seg", (100, 128, 64), 26, 300),
    ("seg", (37, 41, 29), 18, 1000),  # tiny odd tasks: many edge and corner links
    ("image", (128, 128, 128), 6, 1000),
])
def test_crop_dust_matches_cc3d_dust(layers, reference, kind, shape, connectivity, dust):
    check(layers, reference, kind, "crop", "shifted", shape, connectivity, dust)


def test_dust_and_threshold_from_the_faces_step_carry_on(layers, reference):
    """Later steps reuse what faces recorded; calc-labels may change dust without new faces."""
    src = layers("image", "crop", "shifted")
    run_locally(create_ccl_face_tasks(src, shape=(128, 96, 64), connectivity=26, threshold_gte=THRESHOLD,
                                      dust_threshold=10**9), quiet=True)
    run_locally(create_ccl_equivalence_tasks(src), quiet=True)
    assert create_relabeling(src) == 0  # the recorded dust drops everything
    count = create_relabeling(src, dust_threshold=700)
    run_locally(create_ccl_relabel_tasks(src, f"{src}_redust", compress="none", dust_threshold=700),
                quiet=True)
    assert_same_components(read_mip(f"{src}_redust", 0), reference("image", "crop", 26, 700), count)


@pytest.mark.parametrize("region,offset,shape", [
    ("full", "origin", (512, 512, 512)),
    ("crop", "shifted", (100, 128, 64)),
])
def test_voxel_counts_match_fastremap(layers, volumes, region, offset, shape):
    src = layers("seg", region, offset)
    run_locally(create_voxel_counting_tasks(src, shape=shape), quiet=True)
    assert accumulate_voxel_counts(src) > 0
    want_labels, want_counts = fastremap.unique(volumes["seg", region], return_counts=True)
    labels, counts = label_table.read_voxel_counts(src)
    assert np.array_equal(labels, want_labels) and np.array_equal(counts, want_counts)
    probe = np.array([want_labels[-1], 1, want_labels[len(want_labels) // 2], 2**40], dtype=np.uint64)
    expected = [want_counts[-1], 0, want_counts[len(want_labels) // 2], 0]
    assert label_table.read_voxel_counts(src, labels=probe).tolist() == expected


def test_label_table_reads_blocks_of_a_large_table():
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 2**63, 300_000, dtype=np.uint64))
    values = rng.integers(0, 2**50, keys.size, dtype=np.uint64)
    url = f"mem://ccl{SESSION}/table.ltab"
    label_table.write(url, keys, values)
    table = label_table.Table(url)
    assert table.count * 16 > label_table.WHOLE_FILE_BYTES  # read by blocks, not whole
    got_keys, got_values = table.read()
    assert np.array_equal(got_keys, keys) and np.array_equal(got_values, values)
    absent = np.setdiff1d(keys[::997] + np.uint64(1), keys)
    probe = np.concatenate([keys[::997], absent])
    expected = np.concatenate([values[::997], np.zeros(absent.size, np.uint64)])
    assert np.array_equal(table.lookup(probe), expected)
    low, high = int(keys[5000]), int(keys[123_456])
    assert np.array_equal(table.range(low, high)[0], keys[5000:123_456])
    assert np.array_equal(table.range(low + 1, high + 1)[1], values[5001:123_457])


@pytest.mark.parametrize("connectivity,count", [(6, 3), (18, 9), (26, 13)])
def test_each_neighbor_pair_is_linked_once(connectivity, count):
    directions = ccl.half_directions(connectivity)
    assert len(directions) == count
    assert not {tuple(-d for d in direction) for direction in directions} & set(directions)


def test_numpy_union_find_matches_scipy():
    rng = np.random.default_rng(7)
    first, second = rng.integers(0, 5000, (2, 4000))
    ids, count = ccl.union_find(5000, first, second)
    want, want_count = ccl.connected_components(5000, first, second)
    assert count == want_count
    assert np.array_equal(fastremap.renumber(ids + 1)[0], fastremap.renumber(want + 1)[0])


def intermediate_files(layer) -> list:
    return [path for path in (layer / "16_16_40" / "ccl").rglob("*") if path.is_file()]


def test_cli_steps_through_a_file_queue(tmp_path, volumes):
    data = volumes["seg", "crop"][:, :, :64]
    src = write_layer(f"file://{tmp_path}/seg", data, "segmentation", offset=OFFSETS["shifted"])
    dest, queue = f"file://{tmp_path}/cc", f"fq://{tmp_path}/queue"
    common = ["--shape", "100,128,64", "--connectivity", 26]
    run_cli("image", "ccl", "faces", src, *common, "--dust", 200, "--queue", queue)
    run_cli("-p", 2, "execute", "-x", queue)
    run_cli("image", "ccl", "links", src, "--connectivity", 26, "--queue", queue)
    run_cli("execute", "-x", queue)
    assert "components" in run_cli("image", "ccl", "calc-labels", src).stderr
    run_cli("image", "ccl", "relabel", src, dest, "--encoding", "compressed_segmentation",
            "--compress", "none", "--queue", queue)
    run_cli("execute", "-x", queue)
    run_cli("image", "ccl", "clean", src)
    assert not intermediate_files(tmp_path / "seg")
    out = read_mip(dest, 0)
    reference = cc3d.dust(cc3d.connected_components(data, connectivity=26), 200, connectivity=26)
    assert_same_components(out, reference, int(out.max()))
    assert np.array_equal(tensorstore_read(dest, 0), out)

    run_cli("image", "voxels", "count", dest, "--shape", "64,64,64", "--queue", queue)
    run_cli("execute", "-x", queue)
    run_cli("image", "voxels", "sum", dest, "--clean")
    labels, counts = label_table.read_voxel_counts(dest)
    want_labels, want_counts = fastremap.unique(out, return_counts=True)
    assert np.array_equal(labels, want_labels) and np.array_equal(counts, want_counts)


def test_cli_auto_runs_every_step(tmp_path, volumes):
    """`ccl auto --queue` enqueues the first step; the workers alone go on through the others."""
    data = volumes["image", "crop"]
    src = write_layer(f"file://{tmp_path}/img", data, "image")
    dest = f"file://{tmp_path}/blobs"
    queue = f"fq://{tmp_path}/queue"
    run_cli("image", "ccl", "auto", src, dest, "--threshold-gte", THRESHOLD, "--shape", "128,128,64",
            "--connectivity", 6, "--compress", "none", "--queue", queue)
    run_cli("-p", 2, "execute", "-x", queue)
    out = read_mip(dest, 0)
    assert_same_components(out, cc3d.connected_components(data >= THRESHOLD, connectivity=6), int(out.max()))
    assert not intermediate_files(tmp_path / "img")


def test_options_reach_the_tasks(tmp_path, volumes):
    src = write_layer(f"file://{tmp_path}/img", volumes["image", "crop"][:64, :64, :64], "image")
    queue = f"fq://{tmp_path}/queue"
    run_cli("image", "ccl", "faces", src, "--shape", "32,64,64", "--threshold-gte", 0.5,
            "--threshold-lte", 200, "--connectivity", 18, "--fill-missing", "--dust", 9, "--queue", queue)
    tasks = [task.kwargs for task in TaskQueue(queue).tasks()]
    assert len(tasks) == 2 and sorted(task["index"] for task in tasks) == [0, 1]
    assert tasks[0]["options"] == {"offset": [0, 0, 0], "size": [64, 64, 64], "shape": [32, 64, 64],
                                   "connectivity": 18, "threshold_gte": 0.5, "threshold_lte": 200,
                                   "fill_missing": True}
    params = json.loads((tmp_path / "img" / "16_16_40" / "ccl" / "params.json").read_text())
    assert params["dust"] == 9 and params["options"] == tasks[0]["options"]


BAD = [  # (command line, what the one error line must say); {seg} {img} are layers, {tmp} the directory
    ("image ccl links {seg}", r"no connected-components faces .* run `igneous-like image ccl faces"),
    ("image ccl calc-labels {seg}", r"no connected-components faces"),
    ("image ccl faces {seg} --connectivity 8", r"'8' is not one of '6', '18', '26'"),
    ("image ccl faces {seg} --shape 0,64,64", r"--shape values must be at least 1"),
    ("image ccl faces {seg} --threshold-gte high", r"'high' is not a number"),
    ("image ccl auto {seg} {seg}", r"the destination is the source"),
    ("image ccl faces {tmp}/nothing", r"no Neuroglancer Precomputed layer"),
    ("image voxels count {img2}", r"unsigned integer labels"),
    ("image voxels sum {seg}", r"no voxel counts to sum .* run `igneous-like image voxels count"),
]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path_factory):
    def run(case):
        command, _ = case
        root = tmp_path_factory.mktemp("bad")
        data = np.arange(64 * 64 * 32, dtype=np.uint32).reshape(64, 64, 32) % 5
        places = {"seg": write_layer(f"file://{root}/seg", data, "segmentation"),
                  "img2": write_layer(f"file://{root}/img2", data.astype(np.float32), "image"), "tmp": root}
        before = snapshot(root)
        return root, before, run_cli(*command.format(**places).split(), check=False)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        outcomes = list(pool.map(run, BAD))
    for (command, pattern), (root, before, result) in zip(BAD, outcomes):
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, (command, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("igneous-like: error: "), (command, result.stderr)
        assert re.search(pattern, lines[0]), (command, lines[0])
        assert snapshot(root) == before, command
