"""Transfer (rechunk, translate, reshard, re-encode) and deletion, checked voxel for voxel."""
import os

import numpy as np
import pytest
import tinybrain
from cloudvolume import CloudVolume
from conftest import read_mip, run_cli, tensorstore_read

from igneous_like.queues import run_locally
from igneous_like.task_creation import create_deletion_tasks, create_transfer_tasks

OFFSET, SIZE = (96, 32, 8), (296, 264, 128)


@pytest.fixture
def seg_crop(real_seg):
    return np.asfortranarray(real_seg[:SIZE[0], :SIZE[1], :SIZE[2]])


def test_rechunk_to_new_offset_reproduces_source(make_layer, seg_crop, tmp_path):
    src = make_layer("src", seg_crop, "segmentation", offset=OFFSET)
    dest = f"file://{tmp_path}/dest"
    run_cli("-p", "2", "image", "xfer", src, dest, "--chunk-size", "128,128,32",
            "--dest-voxel-offset", "10,20,30", "--max-mips", 2, "--compress", "none")
    cv = CloudVolume(dest)
    assert list(cv.meta.voxel_offset(0)) == [10, 20, 30] and list(cv.meta.volume_size(0)) == list(SIZE)
    assert list(cv.meta.chunk_size(0)) == [128, 128, 32]
    assert np.array_equal(read_mip(dest, 0), seg_crop)
    assert np.array_equal(tensorstore_read(dest, 0), seg_crop)
    expected = tinybrain.downsample_segmentation(seg_crop, (2, 2, 1), num_mips=2)
    for mip, want in enumerate(expected, start=1):
        assert np.array_equal(read_mip(dest, mip), want)
        assert np.array_equal(tensorstore_read(dest, mip), want)


def test_sharded_transfer_equals_unsharded(make_layer, real_image, tmp_path):
    data = np.asfortranarray(real_image[:SIZE[0], :SIZE[1], :SIZE[2]])
    src = make_layer("src", data, "image", offset=OFFSET)
    plain, sharded = f"file://{tmp_path}/plain", f"file://{tmp_path}/sharded"
    run_cli("image", "xfer", src, plain, "--skip-downsample", "--compress", "none")
    run_cli("image", "xfer", src, sharded, "--sharded", "--max-mips", 1, "--memory", 10**7,
            "--compress", "none")
    assert len([n for n in os.listdir(tmp_path / "sharded/16_16_40") if n.endswith(".shard")]) > 1
    for reader in (read_mip, tensorstore_read):
        assert np.array_equal(reader(sharded, 0), data)
        assert np.array_equal(reader(plain, 0), data)
    want = tinybrain.downsample_with_averaging(data, (2, 2, 1), num_mips=1)[0]
    assert np.array_equal(tensorstore_read(sharded, 1), want)


def test_translate_bounds_and_encoding(make_layer, seg_crop, tmp_path):
    src = make_layer("src", seg_crop, "segmentation", offset=OFFSET)
    dest = f"file://{tmp_path}/dest"
    lo, hi = (100, 40, 10), (300, 200, 100)
    tasks = create_transfer_tasks(src, dest, bounds=(lo, hi), translate=(-100, 60, 5),
                                  encoding="compressed_segmentation", skip_downsamples=True)
    run_locally(tasks, parallel=2)
    cv = CloudVolume(dest)
    assert cv.meta.encoding(0) == "compressed_segmentation"
    assert list(cv.bounds.minpt) == [0, 100, 15] and list(cv.bounds.maxpt) == [200, 260, 105]
    box = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, OFFSET))
    assert np.array_equal(read_mip(dest, 0), seg_crop[box])


def test_xfer_downsamples_in_passes_until_one_chunk(make_layer, real_image, tmp_path):
    """With a memory budget for one mip a pass (64,64,16 tasks), the passes go on to where the volume fits
    one chunk (256 -> 128 -> 64 -> 32 with 32-voxel chunks), as Igneous's transfer stops; no more."""
    image = np.asfortranarray(real_image[:256, :256, :16])
    src = make_layer("src", image, "image", chunk=(32, 32, 16))
    dest = f"file://{tmp_path}/dest"
    run_cli("image", "xfer", src, dest, "--memory", 400_000, "--compress", "none")
    assert [scale["size"][0] for scale in CloudVolume(dest).info["scales"]] == [256, 128, 64, 32]
    assert np.array_equal(read_mip(dest, 0), image)
    for mip in range(1, 4):  # a pass reads the mip below it, as written
        expected = tinybrain.downsample_with_averaging(read_mip(dest, mip - 1), (2, 2, 1))[0]
        assert np.array_equal(read_mip(dest, mip), expected), mip


def test_transfer_into_the_same_layout_is_idempotent(make_layer, seg_crop, tmp_path):
    src = make_layer("src", seg_crop[:128, :128, :64], "segmentation")
    dest = f"file://{tmp_path}/dest"
    for _ in range(2):
        run_locally(create_transfer_tasks(src, dest, max_mips=1))
    assert np.array_equal(read_mip(dest, 0), seg_crop[:128, :128, :64])


def chunk_files(root) -> dict:
    return {d: sorted(os.listdir(os.path.join(root, d))) for d in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, d))}


@pytest.mark.parametrize("sharded", [False, True])
def test_rm_deletes_exactly_the_asked_mips(make_layer, seg_crop, tmp_path, sharded):
    src = make_layer("src", seg_crop, "segmentation", offset=OFFSET)
    dest = f"file://{tmp_path}/dest"
    args = ["--sharded", "--memory", 10**7] if sharded else []
    run_cli("image", "xfer", src, dest, "--max-mips", 3, *args)
    before = chunk_files(tmp_path / "dest")
    assert len(before) == 4 and all(before.values())
    run_locally(create_deletion_tasks(dest, mip=1, num_mips=2))
    after = chunk_files(tmp_path / "dest")
    keys = [CloudVolume(dest).meta.key(mip) for mip in range(4)]
    assert after[keys[0]] == before[keys[0]] and after[keys[3]] == before[keys[3]]
    assert after[keys[1]] == [] and after[keys[2]] == []
    assert np.array_equal(read_mip(dest, 0), seg_crop)


def test_encoding_level_sets_the_jpeg_quality_of_what_is_written(make_layer, real_image, tmp_path):
    """--encoding-level (Igneous's) reaches the info as jpeg_quality and the chunks: a higher
    quality writes larger chunks that decode closer to the exact (tinybrain) downsample."""
    image = np.asfortranarray(real_image[:128, :128, :16])
    expected = tinybrain.downsample_with_averaging(image, (2, 2, 1))[0]
    errors, sizes = {}, {}
    for level in (20, 95):
        src = make_layer(f"em{level}", image, "image", chunk=(64, 64, 16))
        run_cli("image", "downsample", src, "--num-mips", 1, "--encoding", "jpeg", "--encoding-level", level,
                "--compress", "none")
        scale = CloudVolume(src, progress=False).info["scales"][1]
        assert (scale["encoding"], scale["jpeg_quality"]) == ("jpeg", level)
        errors[level] = np.abs(read_mip(src, 1).astype(float) - expected).mean()
        sizes[level] = sum(f.stat().st_size for f in (tmp_path / f"em{level}" / scale["key"]).iterdir())
    assert errors[95] < errors[20] and sizes[95] > sizes[20]
    dest = f"file://{tmp_path}/copy"
    run_cli("image", "xfer", src, dest, "--encoding", "jpeg", "--encoding-level", 40, "--skip-downsample",
            "--compress", "none")
    assert CloudVolume(dest, progress=False).info["scales"][0]["jpeg_quality"] == 40


def test_jpeg_xl_chunks_lossless_at_level_100_and_lossy_below(make_layer, real_image, tmp_path):
    """--encoding jxl (Igneous's JPEG XL, through imagecodecs): at --encoding-level 100 the chunks
    are lossless JPEG XL files equal to the source; at 60 smaller and close; the downsamples get
    the same level."""
    pytest.importorskip("imagecodecs", reason="the JPEG XL codec (imagecodecs) is not installed")
    noise = np.random.default_rng(0).normal(0, 12, (128, 128, 16))  # EM's grain: lossy pays off
    image = np.asfortranarray(np.clip(real_image[:128, :128, :16] + noise, 0, 255).astype(np.uint8))
    src = make_layer("src", image, "image", chunk=(64, 64, 16))
    sizes = {}
    for level in (100, 60):
        dest = f"file://{tmp_path}/jxl{level}"
        run_cli("image", "xfer", src, dest, "--encoding", "jxl", "--encoding-level", level,
                "--encoding-effort", 1, "--max-mips", 1, "--compress", "none")
        scales = CloudVolume(dest, progress=False).info["scales"]
        assert [(s["encoding"], s["jxl_quality"], s["jxl_effort"]) for s in scales[:1]] == [("jxl", level, 1)]
        files = list((tmp_path / f"jxl{level}" / scales[0]["key"]).iterdir())
        assert len(files) == 4 and all(f.read_bytes()[:2] == b"\xff\x0a" for f in files)  # JPEG XL files
        sizes[level] = sum(f.stat().st_size for f in files)
        written = read_mip(dest, 0)
        if level == 100:
            assert np.array_equal(written, image)
        else:
            assert 0 < np.abs(written.astype(float) - image).mean() < 12  # under the grain's deviation
        expected = tinybrain.downsample_with_averaging(written, (2, 2, 1))[0]
        assert np.abs(read_mip(dest, 1).astype(float) - expected).mean() < (0.5 if level == 100 else 12)
    assert sizes[60] < sizes[100]


@pytest.mark.parametrize("sharded", [False, True])
def test_jpeg_to_lossless_jpeg_xl_and_back_keeps_the_jpeg_files(make_layer, real_image, tmp_path, sharded):
    """JPEG chunks into JPEG XL at level 100 are recompressed without decoding (smaller, the same
    voxels to within JPEG XL's rounding), and back into JPEG they are the very JPEG files again,
    byte for byte; a downsample in the same task is made from the voxels. JPEG XL made from voxels
    (no JPEG inside) into JPEG: decoded."""
    pytest.importorskip("imagecodecs", reason="the JPEG XL codec (imagecodecs) is not installed")
    noise = np.random.default_rng(1).normal(0, 12, (128, 128, 16))
    image = np.asfortranarray(np.clip(real_image[:128, :128, :16] + noise, 0, 255).astype(np.uint8))
    raw = make_layer("raw", image, "image", chunk=(64, 64, 16))
    jpeg, jxl, back = (f"file://{tmp_path}/{name}" for name in ("jpeg", "jxl", "back"))
    layout = ["--sharded"] if sharded else []
    run_cli("image", "xfer", raw, jpeg, "--encoding", "jpeg", "--skip-downsample", *layout)
    run_cli("image", "xfer", jpeg, jxl, "--encoding", "jxl", "--encoding-level", 100,
            "--max-mips", 1 - sharded, *layout)
    run_cli("image", "xfer", jxl, back, "--encoding", "jpeg", "--skip-downsample", *layout)
    key = CloudVolume(jpeg).meta.key(0)
    files = {name: {f.name: f.read_bytes() for f in (tmp_path / name / key).iterdir()}
             for name in ("jpeg", "jxl", "back")}
    assert files["back"] == files["jpeg"] and len(files["jpeg"]) == (1 if sharded else 4)
    assert sum(map(len, files["jxl"].values())) < 0.9 * sum(map(len, files["jpeg"].values()))
    voxels = read_mip(jpeg, 0)
    # the same JPEG, decoded by JPEG XL's decoder, which rounds its inverse DCT otherwise (on this
    # noise by 0.65 grey levels on average)
    assert np.abs(read_mip(jxl, 0).astype(int) - voxels).mean() < 1 and not np.array_equal(voxels, image)
    if not sharded:
        expected = tinybrain.downsample_with_averaging(voxels, (2, 2, 1))[0]
        assert np.abs(read_mip(jxl, 1).astype(float) - expected).mean() < 12
    if not sharded:
        pixels = f"file://{tmp_path}/pixels"
        run_cli("image", "xfer", raw, pixels, "--encoding", "jxl", "--encoding-level", 100,
                "--skip-downsample")
        run_cli("image", "xfer", pixels, f"{pixels}_jpeg", "--encoding", "jpeg", "--skip-downsample")
        assert np.abs(read_mip(f"{pixels}_jpeg", 0).astype(float) - image).mean() < 12
