"""Image edits against numpy: slices reordered, a region blacked out in place, affinities
quantized to 8 bits (every channel), and the bounding box of what is not background; tasks cut
the volume, and mappings that would lose a slice are refused before anything is written."""
import json

import numpy as np
import pytest
from cloudvolume import CloudVolume
from conftest import read_mip, run_cli, write_layer


@pytest.fixture
def em(real_image, tmp_path):
    img = np.asfortranarray(real_image[300:396, 300:380, 100:112])
    return img, write_layer(f"file://{tmp_path}/em", img, "image", chunk=(32, 32, 4), offset=(5, 0, 3))


def test_reorder_moves_slices_and_refuses_to_lose_one(em, tmp_path):
    img, src = em
    mapping = json.dumps({"3": 4, "4": 3, "8": 13, "13": 8})
    run_cli("-p", "2", "image", "reorder", src, f"file://{tmp_path}/out", mapping, "--shape", "48,64,3")
    order = list(range(12))
    order[1], order[0], order[10], order[5] = 0, 1, 5, 10  # z 3 <-> 4 and 8 <-> 13, offset 3
    assert np.array_equal(read_mip(f"file://{tmp_path}/out", 0), img[:, :, order])
    for mapping, message in (({"4": 5}, "slice 5 would be lost"), ({"3": 5, "4": 5}, "two slices"),
                             ({"0": 4}, "outside the volume's z range 3..14"), ("[1,", "not JSON")):
        mapping = mapping if isinstance(mapping, str) else json.dumps(mapping)
        result = run_cli("image", "reorder", src, f"file://{tmp_path}/bad", mapping, check=False)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_blackout_sets_a_region_in_place(real_seg, tmp_path):
    """In place, gzipped over plain chunks: the plain files must not stay to hide the new ones."""
    seg = np.asfortranarray(real_seg[::4, ::4, :24][:96, :80])
    path = write_layer(f"file://{tmp_path}/seg", seg, "segmentation", chunk=(32, 32, 8))
    run_cli("-p", "2", "image", "blackout", path, "10,20,3,70,50,19", "--shape", "32,32,8")
    expected = seg.copy()
    expected[10:70, 20:50, 3:19] = 0
    assert np.array_equal(read_mip(path, 0), expected) and not np.array_equal(expected, seg)
    result = run_cli("image", "blackout", path, "0,0,0,10,10,10", "--value", "-1", check=False)
    assert result.returncode == 2 and "does not fit" in result.stderr


def test_quantize_affinities_every_channel(tmp_path):
    rng = np.random.default_rng(3)
    affinities = rng.random((64, 48, 20, 3), dtype=np.float32)
    affinities[0, 0, 0] = [-0.5, 1.5, np.nan]
    info = CloudVolume.create_new_info(3, "image", "float32", "raw", [8, 8, 40], [0, 0, 0], [64, 48, 20],
                                       chunk_size=[32, 32, 8])
    CloudVolume(f"file://{tmp_path}/aff", info=info, compress=False).commit_info()
    CloudVolume(f"file://{tmp_path}/aff", compress=False, progress=False)[:, :, :] = affinities
    run_cli("image", "quantize", f"file://{tmp_path}/aff", f"file://{tmp_path}/aff8", "--shape", "32,32,8")
    out = CloudVolume(f"file://{tmp_path}/aff8", progress=False)
    expected = np.clip(np.rint(np.nan_to_num(affinities.astype(np.float64)) * 255), 0, 255).astype(np.uint8)
    assert out.dtype == "uint8" and out.num_channels == 3
    assert np.array_equal(np.asarray(out[:, :, :]), expected)
    result = run_cli("image", "quantize", f"file://{tmp_path}/aff8", f"file://{tmp_path}/x", check=False)
    assert result.returncode == 2 and "takes floats" in result.stderr


def test_roi_is_the_box_of_what_is_not_background(tmp_path):
    img = np.zeros((128, 96, 24), np.uint8)
    img[30:60, 20:50, 4:10] = 200
    img[90:100, 70:80, 15:20] = 5  # faint
    img[0, 0, 0] = 255  # dust
    path = write_layer(f"file://{tmp_path}/em", img, "image", chunk=(32, 32, 8), offset=(0, 0, 2))
    assert run_cli("image", "roi", path).stdout.split() == ["30,20,6,100,80,22"]
    assert run_cli("image", "roi", path, "--suppress-faint", 10).stdout.split() == ["30,20,6,60,50,12"]
    by_step = run_cli("image", "roi", path, "--suppress-faint", 10, "--z-step", 8, "--dust", 0).stdout.split()
    assert by_step == ["0,0,2,60,50,10", "30,20,10,60,50,12"]
