"""Downsampling: every mip equals an independent whole-array computation (tinybrain / numpy)."""
import itertools
import os

import numpy as np
import pytest
import tinybrain
from cloudvolume import CloudVolume
from conftest import read_mip, run_cli, tensorstore_read

from igneous_like.queues import run_locally
from igneous_like.task_creation import create_downsampling_tasks, create_image_shard_downsample_tasks

OFFSET, SIZE = (96, 32, 8), (296, 264, 128)


def reference(data: np.ndarray, layer_type: str, factor, num_mips: int, sparse=False):
    data = np.asfortranarray(data)  # tinybrain needs contiguous input (see NOTES.md)
    if layer_type == "segmentation":
        return tinybrain.downsample_segmentation(data, factor, num_mips=num_mips, sparse=sparse)
    return tinybrain.downsample_with_averaging(data, factor, num_mips=num_mips, sparse=sparse)


def assert_pyramid(path: str, expected, first_mip: int = 1):
    for mip, want in enumerate(expected, start=first_mip):
        got = read_mip(path, mip)
        assert got.shape == want.shape, f"mip {mip}"
        assert np.array_equal(got, want), f"mip {mip}: {np.count_nonzero(got != want)} voxels differ"


@pytest.fixture(params=["segmentation", "image"])
def crop(request, real_seg, real_image):
    """The real data cut to an awkward size, to be stored at an awkward voxel offset."""
    data = real_seg if request.param == "segmentation" else real_image
    return request.param, np.asfortranarray(data[:SIZE[0], :SIZE[1], :SIZE[2]])


@pytest.mark.parametrize("factor,num_mips,shape", [
    ((2, 2, 1), 3, None),
    ((2, 2, 1), 3, (512, 512, 64)),
    ((2, 2, 1), 3, (1024, 512, 128)),
    ((2, 2, 2), 2, None),
    ((2, 2, 2), 2, (256, 256, 256)),
    ((2, 2, 2), 2, (512, 256, 256)),
])
def test_offset_volume_matches_tinybrain(make_layer, crop, factor, num_mips, shape):
    layer_type, data = crop
    path = make_layer("layer", data, layer_type, offset=OFFSET)
    tasks = create_downsampling_tasks(path, num_mips=num_mips, factor=factor, shape=shape)
    assert list(tasks.mips) == list(range(1, num_mips + 1))
    run_locally(tasks)
    assert_pyramid(path, reference(data, layer_type, factor, num_mips))
    cv = CloudVolume(path)
    assert list(cv.meta.voxel_offset(num_mips)) == [o // f ** num_mips for o, f in zip(OFFSET, factor)]


@pytest.mark.parametrize("layer_type,factor,num_mips", [
    ("segmentation", (2, 2, 1), 3), ("segmentation", (2, 2, 2), 2),
    ("image", (2, 2, 1), 3), ("image", (2, 2, 2), 2),
])
def test_full_real_volume_via_cli(make_layer, real_seg, real_image, layer_type, factor, num_mips):
    data = real_seg if layer_type == "segmentation" else real_image
    path = make_layer("layer", data, layer_type)
    run_cli("-p", "2", "image", "downsample", path, "--num-mips", num_mips,
            "--factor", ",".join(map(str, factor)))
    assert_pyramid(path, reference(data, layer_type, factor, num_mips))


def block_reduce_slow(data: np.ndarray, factor, fn) -> np.ndarray:
    """One output voxel at a time: an obviously-correct reference for min/max pooling."""
    out_shape = [-(-s // f) for s, f in zip(data.shape, factor)]
    out = np.zeros(out_shape, dtype=data.dtype)
    for idx in itertools.product(*map(range, out_shape)):
        block = data[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factor))]
        out[idx] = fn(block)
    return out


@pytest.mark.parametrize("method", ["min", "max", "striding"])
def test_min_max_striding_on_odd_shapes(make_layer, method):
    data = np.random.default_rng(1).integers(0, 60000, (45, 37, 9), dtype=np.uint16)
    path = make_layer("layer", data, "image", offset=(3, 5, 7), chunk=(16, 16, 8))
    run_locally(create_downsampling_tasks(path, num_mips=2, method=method, shape=(64, 64, 8)))
    expected, level = [], data
    for _ in range(2):
        if method == "striding":
            level = level[::2, ::2, :]
        else:
            level = block_reduce_slow(level, (2, 2, 1), np.min if method == "min" else np.max)
        expected.append(level)
    assert_pyramid(path, expected)


@pytest.mark.parametrize("layer_type", ["segmentation", "image"])
def test_sparse(make_layer, real_seg, layer_type):
    data = real_seg[:128, :128, :32].copy()
    data[::3] = 0  # plenty of background to ignore
    if layer_type == "image":
        data = (data % 251).astype(np.uint8)
    path = make_layer("layer", data, layer_type)
    run_locally(create_downsampling_tasks(path, num_mips=2, sparse=True))
    assert_pyramid(path, reference(data, layer_type, (2, 2, 1), 2, sparse=True))


@pytest.mark.parametrize("layer_type,encoding", [
    ("segmentation", "compressed_segmentation"), ("segmentation", "compresso"),
    ("segmentation", "crackle"), ("image", "png"), ("image", "raw"),
])
def test_lossless_encodings(make_layer, real_seg, real_image, layer_type, encoding):
    data = (real_seg if layer_type == "segmentation" else real_image)[:200, :136, :40]
    path = make_layer("layer", data, layer_type, offset=(8, 8, 0))
    run_cli("image", "downsample", path, "--num-mips", 2, "--encoding", encoding, "--chunk-size", "32,32,20")
    cv = CloudVolume(path)
    assert [cv.meta.encoding(m) for m in (1, 2)] == [encoding] * 2
    assert list(cv.meta.chunk_size(2)) == [32, 32, 20]
    assert_pyramid(path, reference(data, layer_type, (2, 2, 1), 2))


def test_jpeg_is_close(make_layer, real_image):
    data = real_image[:256, :256, :16]
    path = make_layer("layer", data, "image")
    run_cli("image", "downsample", path, "--num-mips", 1, "--encoding", "jpeg")
    want = reference(data, "image", (2, 2, 1), 1)[0].astype(float)
    assert np.abs(read_mip(path, 1).astype(float) - want).mean() < 4


@pytest.mark.parametrize("compress,suffix", [("none", ""), ("gzip", ".gz"), ("br", ".br")])
def test_compression_of_written_chunks(make_layer, real_seg, compress, suffix):
    data = real_seg[:128, :128, :64]
    path = make_layer("layer", data, "segmentation")
    run_cli("image", "downsample", path, "--num-mips", 1, "--compress", compress)
    names = os.listdir(path[len("file://"):] + "/32_32_40")
    assert names and all(n.endswith(suffix) and n.count(".") == suffix.count(".") for n in names)
    assert_pyramid(path, reference(data, "segmentation", (2, 2, 1), 1))


def test_fill_missing_and_delete_bg(make_layer, real_seg, tmp_path):
    data = real_seg[:128, :128, :64].copy()
    path = make_layer("layer", data, "segmentation")
    os.remove(tmp_path / "layer/16_16_40/0-64_0-64_0-64")  # a lost chunk reads as background
    failed = run_cli("image", "downsample", path, "--num-mips", 1, check=False)
    assert failed.returncode == 2 and "is missing" in failed.stderr and "--fill-missing" in failed.stderr
    run_cli("image", "downsample", path, "--num-mips", 1, "--fill-missing", "--delete-bg",
            "--chunk-size", "32,32,32")
    data[:64, :64, :64] = 0
    got = np.asarray(CloudVolume(path, mip=1, fill_missing=True)[:, :, :])[..., 0]
    assert np.array_equal(got, reference(data, "segmentation", (2, 2, 1), 1)[0])
    written = sorted(os.listdir(tmp_path / "layer/32_32_40"))
    assert len(written) == 6 and "0-32_0-32_0-32.gz" not in written  # empty chunks are not stored


def test_ranges_limit_the_work(make_layer, real_seg, tmp_path):
    data = real_seg[:256, :256, :64]
    path = make_layer("layer", data, "segmentation")
    run_cli("image", "downsample", path, "--num-mips", 1, "--shape", "128,128,64",
            "--xrange", "0,100", "--yrange", "130,200", "--compress", "none")
    assert sorted(os.listdir(tmp_path / "layer/32_32_40")) == ["0-64_64-128_0-64"]
    got = np.asarray(CloudVolume(path, mip=1)[0:64, 64:128, 0:64])[..., 0]
    assert np.array_equal(got, reference(data, "segmentation", (2, 2, 1), 1)[0][0:64, 64:128])


def test_sharded_matches_one_mip_passes_and_tensorstore_reads_it(make_layer, crop, tmp_path):
    """Sharded pyramids are made one mip per pass (shards of different mips do not nest), so
    each mip equals downsampling the mip below it; for labels that is also the one-call pyramid."""
    layer_type, data = crop
    plain = make_layer("plain", data, layer_type, offset=OFFSET)
    sharded = make_layer("sharded", data, layer_type, offset=OFFSET)
    for mip in (0, 1):
        run_locally(create_downsampling_tasks(plain, mip=mip, num_mips=1, compress="none"))
        tasks = create_image_shard_downsample_tasks(sharded, mip=mip, num_mips=1, compress="none",
                                                    memory_target=10**7)
        assert len(tasks) > 1  # several shards, so their seams are tested
        run_locally(tasks)
    assert os.listdir(tmp_path / "sharded/32_32_40")[0].endswith(".shard")
    first = reference(data, layer_type, (2, 2, 1), 1)[0]
    expected = [first, reference(first, layer_type, (2, 2, 1), 1)[0]]
    assert_pyramid(plain, expected)
    assert_pyramid(sharded, expected)
    for path in (plain, sharded):
        for mip, want in enumerate(expected, start=1):
            assert np.array_equal(tensorstore_read(path, mip), want)


def test_sharded_cli_makes_igneous_three_mips_when_not_told(make_layer, real_seg):
    """`image downsample --sharded` without --num-mips makes 3 mips, as Igneous's CLI, though the
    volume fits one chunk only after 4; each pass reads the mip below it."""
    data = np.asfortranarray(real_seg[:256, :256, :16])
    path = make_layer("layer", data, "segmentation", chunk=(16, 16, 16))
    run_cli("image", "downsample", path, "--sharded", "--memory", 10**6)
    scales = CloudVolume(path).info["scales"]
    assert len(scales) == 4 and all("sharding" in scale for scale in scales[1:])
    expected = [data]
    for _ in range(3):
        expected.append(reference(expected[-1], "segmentation", (2, 2, 1), 1)[0])
    assert_pyramid(path, expected[1:])


def test_ranges_hold_across_sharded_passes(make_layer, real_seg):
    """Ranges are voxels of the starting mip; the second (mip 1 -> 2) pass must convert them.

    Its shards reach past the range into mip 1 voxels the first pass did not write, hence
    --fill-missing."""
    data = real_seg[:256, :256, :64]
    path = make_layer("layer", data, "segmentation", offset=(64, 0, 0))
    run_cli("image", "downsample", path, "--sharded", "--num-mips", 2, "--xrange", "64,160",
            "--memory", 10**6, "--fill-missing")
    expected = reference(data, "segmentation", (2, 2, 1), 2)
    for mip, want in enumerate(expected, start=1):
        cv = CloudVolume(path, mip=mip, fill_missing=True)
        width = -(-96 // 2 ** mip)  # the 96 wide range, rounded out at this mip
        got = np.asarray(cv[cv.bounds])[..., 0]
        assert np.array_equal(got[:width], want[:width])


def test_a_shape_spanning_the_volume_needs_no_alignment(make_layer, real_seg):
    data = real_seg[:96, :80, :64]
    path = make_layer("layer", data, "segmentation", chunk=(32, 32, 32))
    run_cli("image", "downsample", path, "--num-mips", 5, "--shape", "96,80,64")  # 5 mips: 1024,1024,32
    assert_pyramid(path, reference(data, "segmentation", (2, 2, 1), 5))
