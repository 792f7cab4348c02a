"""Igneous's public names beyond the creators (igneous.downsample_scales, igneous.shards, the planning
helpers of task_creation, its task classes and function tasks), called as Igneous's scripts call
them and checked against CloudVolume reads, numpy and the documented contracts."""
from functools import partial

import numpy as np
import pytest
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.common import compressed_morton_code
from cloudvolume.datasource.precomputed.image.common import gridpoints
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, ShardReader
from cloudvolume.lib import Bbox, Vec
from conftest import read_mip, write_layer
from taskqueue import TaskQueue
from test_contrast import normalized

import igneous_like as igneous
import igneous_like.task_creation as tc
from igneous_like import downsample_scales
from igneous_like.errors import UserError
from igneous_like.shards import image_shard_shape_from_spec
from igneous_like.task_creation.common import compute_shard_params_for_hashed
from igneous_like.task_creation.image import create_sharded_image_info, num_mips_from_memory_target


def test_plane_downsampling_scales_stop_at_the_smallest_plane_axis():
    scales = downsample_scales.compute_plane_downsampling_scales((2048, 1024, 77), max_downsampled_size=100)
    assert scales == [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, 8, 1)]  # 1024 / 8 = 128 >= 100 > 1024 / 16
    assert downsample_scales.compute_plane_downsampling_scales((9, 4096, 4096), preserve_axis="x",
                                                               max_downsampling=16, max_downsampled_size=1) \
        == [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 8, 8), (1, 16, 16)]
    assert downsample_scales.compute_plane_downsampling_scales((4096, 4096, 9), max_scales=1) == [
        (1, 1, 1), (2, 2, 1)]


@pytest.mark.parametrize("factor", [(2, 2, 1), (2, 2, 2), (1, 1, 1)])
@pytest.mark.parametrize("width,chunk,target", [(1, (64, 64, 16), 5e6), (8, (128, 96, 64), 3.5e9),
                                                (2, (50, 50, 7), 1e6)])
def test_memory_target_shape_fits_and_the_next_one_does_not(factor, width, chunk, target):
    shape = downsample_scales.downsample_shape_from_memory_target(width, *chunk, factor, target)
    assert width * np.prod(shape, dtype=np.float64) <= target
    assert np.all(np.asarray(shape) % np.asarray(chunk) == 0)
    if factor == (1, 1, 1):  # the widest square in x and y
        assert shape[0] == shape[1] and shape[2] == chunk[2]
        bigger = np.asarray(shape) + [np.lcm(*chunk[:2]), np.lcm(*chunk[:2]), 0]
    else:
        bigger = np.asarray(shape) * factor
    assert width * np.prod(bigger, dtype=np.float64) > target
    if factor != (1, 1, 1):
        mips = num_mips_from_memory_target(target, np.dtype(f"u{width}"), chunk, 1, factor)
        assert np.array_equal(shape, np.asarray(chunk) * np.asarray(factor) ** mips)
    with pytest.raises(ValueError):
        downsample_scales.downsample_shape_from_memory_target(width, *chunk, factor, np.prod(chunk) / 2)


def test_create_downsample_scales_adds_the_mips_a_task_shape_makes(tmp_path):
    img = np.zeros((100, 90, 20), np.uint8)
    path = write_layer(f"file://{tmp_path}/em", img, "image", chunk=(16, 16, 8))
    cv = downsample_scales.create_downsample_scales(path, 0, ds_shape=(64, 64, 16))  # 64 -> 32 -> 16
    assert [list(CloudVolume(path).mip_volume_size(mip)) for mip in range(3)] == [
        [100, 90, 20], [50, 45, 20], [25, 23, 20]]
    assert len(cv.info["scales"]) == 3 and len(CloudVolume(path).info["scales"]) == 3


def test_sharded_image_info_shards_cover_the_volume_as_image_shard_shape_says():
    size, chunk = Vec(1024, 768, 96), Vec(64, 64, 16)
    spec = create_sharded_image_info(size, chunk, "raw", np.uint8, uncompressed_shard_bytesize=2 ** 22)
    shape = Vec(*image_shard_shape_from_spec(spec, size, chunk))
    reader = ShardReader(None, None, ShardingSpecification.from_dict(spec))
    grid = np.ceil(size / chunk).astype(np.int64)
    volume = Bbox((0, 0, 0), size)
    codes = compressed_morton_code(list(gridpoints(volume, volume, chunk)), grid)
    shards = {reader.get_filename(code) for code in codes}
    assert len(shards) == np.prod(np.ceil(size / np.minimum(shape, size))) > 1
    assert np.prod(np.minimum(shape, size)) <= 2 ** 22


def test_shard_params_for_hashed_keep_indices_within_their_budgets():
    shard_bits, minishard_bits, preshift_bits = compute_shard_params_for_hashed(10 ** 7, 2 ** 13, 2 ** 15)
    assert preshift_bits == 0
    assert 16 * 2 ** minishard_bits <= 2 ** 13  # a shard index: 16 bytes per minishard
    assert 24 * 10 ** 7 / 2 ** (shard_bits + minishard_bits) <= 2 ** 15  # minishard index: 24 bytes a label


def test_mesh_task_fragments_and_manifests_make_a_legacy_mesh(real_seg, tmp_path):
    seg = np.asfortranarray(real_seg[200:264, 180:244, 100:132])
    path = write_layer(f"file://{tmp_path}/seg", seg, "segmentation", chunk=(32, 32, 16))
    cv = CloudVolume(path)
    cv.info["mesh"] = "mesh"
    cv.commit_info()
    label = int(np.bincount(seg.ravel()).argmax())
    for x in (0, 32):  # two blocks cut the label
        igneous.MeshTask(shape=(32, 64, 32), offset=(x, 0, 0), layer_path=path, remap_table={str(label): "7"},
                         max_simplification_error=0).execute()
    igneous.MeshManifestFilesystemTask(layer_path=path)
    fragments = ["7:0:0-32_0-64_0-32", "7:0:32-64_0-64_0-32"]
    assert CloudFiles(path).get_json("mesh/7:0") == {"fragments": fragments}
    mesh = CloudVolume(path).mesh.get(7)
    where = np.argwhere(seg == label)
    resolution = cv.meta.resolution(0)
    assert np.allclose(mesh.vertices.min(axis=0), where.min(axis=0) * resolution, atol=1e-3)
    assert np.allclose(mesh.vertices.max(axis=0), (where.max(axis=0) + 1) * resolution, atol=1e-3)
    names = [name.split("/")[-1] for name in CloudFiles(path).list("mesh/")]
    assert not any(name.startswith(f"{label}:") for name in names)  # remapped to 7
    bare = f"file://{tmp_path}/bare"  # an info of only "mesh", as Igneous's manifest tasks accept
    CloudFiles(bare).put_json("info", {"mesh": "legacy"})
    CloudFiles(bare).puts([(f"legacy/{name}", b"") for name in ("5:0:a", "5:0:b", "5:1:a", "6:0:a")])
    igneous.MeshManifestFilesystemTask(layer_path=bare)
    assert [CloudFiles(bare).get_json(f"legacy/{n}:0") for n in (5, 6)] == \
        [{"fragments": ["5:0:a", "5:0:b"]}, {"fragments": ["6:0:a"]}]


def test_function_tasks_run_when_called_and_queue_as_partials(tmp_path):
    img = np.arange(64 * 64 * 16, dtype=np.uint32).reshape((64, 64, 16)).astype(np.uint8)
    path = write_layer(f"file://{tmp_path}/em", np.asfortranarray(img), "image", chunk=(32, 32, 8))
    queue = TaskQueue(f"fq://{tmp_path}/queue")
    queue.insert(partial(igneous.BlackoutTask, cloudpath=path, mip=0, offset=(0, 0, 0), shape=(32, 64, 16),
                         value=11))
    assert np.array_equal(read_mip(path, 0), img)  # queued, not run
    queue.lease().execute()
    igneous.BlackoutTask(cloudpath=path, mip=0, offset=(0, 0, 0), shape=(5, 64, 16), value=23,
                         non_aligned_writes=True)
    expected = img.copy()
    expected[:32] = 11
    expected[:5] = 23
    assert np.array_equal(read_mip(path, 0), expected)


def test_quantize_task_floors_the_first_channel_into_the_affinity_info(tmp_path):
    affinities = np.random.default_rng(5).random((64, 32, 16, 3), dtype=np.float32)
    src = f"file://{tmp_path}/aff"
    info = CloudVolume.create_new_info(3, "image", "float32", "raw", [4, 4, 40], [0, 0, 0], [64, 32, 16],
                                       chunk_size=[32, 32, 16])
    CloudVolume(src, info=info).commit_info()
    CloudVolume(src, progress=False)[:, :, :] = affinities
    dest = f"file://{tmp_path}/aff8"
    info = tc.create_quantized_affinity_info(src, dest, (64, 32, 16), mip=0, chunk_size=[16, 16, 16],
                                             encoding="raw")
    CloudVolume(dest, info=info).commit_info()
    igneous.QuantizeTask(source_layer_path=src, dest_layer_path=dest, shape=(64, 32, 16), offset=(0, 0, 0),
                         mip=0)
    out = CloudVolume(dest, progress=False)
    assert out.num_channels == 1 and tuple(out.chunk_size) == (16, 16, 16)
    assert np.array_equal(np.asarray(out[:, :, :])[..., 0], (affinities[..., 0] * 255).astype(np.uint8))


def test_threshold_image_takes_igneous_argument_order():
    from igneous_like.task_creation.ccl import threshold_image
    image = np.arange(27, dtype=np.uint16).reshape(3, 3, 3)
    assert threshold_image(image, None, None) is image
    assert np.array_equal(threshold_image(image, 20, 5), (image <= 20) & (image >= 5))


def test_cli_numberify_parses_thresholds_as_igneous_cli_does():
    """igneous_cli.numberify, which Igneous's CCL commands parse thresholds with (and its tests call):
    integers stay exact (a 64-bit label is no float), text with a point is a float."""
    from igneous_like.cli import numberify
    assert [numberify(v) for v in (".111", "33", 33, 12.2342, "1.23", 1, 0, None)] == \
        [0.111, 33, 33, 12.2342, 1.23, 1, 0, None]
    assert numberify(str(2**64 - 1)) == 2**64 - 1 and isinstance(numberify("33"), int)
    with pytest.raises(ValueError):
        numberify("half")


def test_contrast_normalization_task_class_writes_one_box(real_image, tmp_path):
    stack = np.asfortranarray(np.clip(real_image[200:264, 180:244, 100:116]
                                      * np.linspace(0.4, 1.0, 16)[None, None, :], 0, 255).astype(np.uint8))
    src = write_layer(f"file://{tmp_path}/em", stack, "image", chunk=(32, 32, 8))
    dest = f"file://{tmp_path}/norm"
    for task in tc.create_luminance_levels_tasks(src, coverage_factor=0.01, shape=(64, 64, 8), mip=0):
        task.execute()
    assert len(tc.create_contrast_normalization_tasks(src, dest, shape=(64, 64, 8), clip_fraction=0.01)) == 2
    igneous.ContrastNormalizationTask(src, dest, None, (32, 64, 8), (32, 0, 8), 0, 0.01, False, (0, 0, 0),
                                      None, None).execute()
    out = CloudVolume(dest, fill_missing=True, progress=False)
    assert np.array_equal(np.asarray(out[32:64, :, 8:16])[..., 0], normalized(stack, 0.01)[32:64, :, 8:16])
    with pytest.raises(UserError):
        igneous.HyperSquareConsensusTask("a", "b", 1, "c", (1, 1, 1), (0, 0, 0))


def test_one_skeleton_task_over_the_volume_writes_readable_skeletons(real_seg, tmp_path):
    seg = np.asfortranarray(real_seg[200:264, 180:244, 100:132])
    path = write_layer(f"file://{tmp_path}/seg", seg, "segmentation", chunk=(32, 32, 16))
    tasks = tc.create_skeletonizing_tasks(path, mip=0, teasar_params={"scale": 4, "const": 100},
                                          dust_threshold=0, cross_sectional_area=True)
    assert len(tasks) == 1
    for task in tasks:
        task.execute()
    label = int(np.bincount(seg.ravel()).argmax())
    skel = CloudVolume(path).skeleton.get(label)
    resolution = CloudVolume(path).meta.resolution(0)
    where = np.argwhere(seg == label)
    assert len(skel.vertices) > 1 and np.all(skel.cross_sectional_area >= 0)
    assert np.all(skel.vertices >= where.min(axis=0) * resolution)
    assert np.all(skel.vertices <= (where.max(axis=0) + 1) * resolution)


def test_transfer_downsamples_until_the_volume_fits_one_chunk(tmp_path):
    import tinybrain
    img = np.asfortranarray(np.random.default_rng(2).integers(0, 255, (100, 90, 8), dtype=np.uint8))
    src = write_layer(f"file://{tmp_path}/em", img, "image", chunk=(32, 32, 8))
    dest = f"file://{tmp_path}/copy"
    for task in tc.create_transfer_tasks(src, dest, chunk_size=(16, 16, 8), compress=False):
        task.execute()
    sizes = [scale["size"] for scale in CloudVolume(dest).info["scales"]]
    assert sizes == [[100, 90, 8], [50, 45, 8], [25, 23, 8], [13, 12, 8]]  # 13 x 12 fits a 16 x 16 chunk
    for mip, expected in enumerate(tinybrain.downsample_with_averaging(img, (2, 2, 1), num_mips=3), start=1):
        assert np.array_equal(read_mip(dest, mip), expected)
