"""Contrast of image stacks: per-slice normalization equal to a whole-array numpy computation of
the same clip levels (ranks of each slice's sorted voxels), and CLAHE equal to scikit-image's per
slice; tasks cut the slices, uint8 and uint16, read back by CloudVolume and TensorStore."""
import numpy as np
import pytest
from cloudvolume import CloudVolume
from conftest import read_mip, run_cli, tensorstore_read, write_layer


@pytest.fixture
def stack(real_image):
    """A real-like EM crop whose slices differ in brightness and contrast (as sections do)."""
    crop = real_image[300:396, 300:380, 100:112].astype(np.float64)
    gain = np.linspace(0.4, 1.0, crop.shape[2])[None, None, :]
    shift = np.linspace(30, 0, crop.shape[2])[None, None, :]
    return np.asfortranarray(np.clip(crop * gain + shift, 0, 255).astype(np.uint8))


def normalized(img: np.ndarray, fraction: float, minval=None, maxval=None) -> np.ndarray:
    """The reference: each slice's voxels sorted, levels at ranks floor(f n) and ceil((1-f) n) - 1
    (or the given values), a linear stretch between them onto the type's range (a step where they
    are equal)."""
    top, out = np.iinfo(img.dtype).max, np.empty_like(img)
    for z in range(img.shape[2]):
        ordered, plane = np.sort(img[:, :, z], axis=None), img[:, :, z].astype(np.float64)
        n = ordered.size
        lower = int(ordered[int(np.floor(fraction * n))]) if minval is None else minval
        upper = int(ordered[int(np.ceil((1 - fraction) * n)) - 1]) if maxval is None else maxval
        if upper == lower:
            out[:, :, z] = np.where(plane > lower, top, 0)
        else:
            out[:, :, z] = np.clip(np.rint((plane - lower) * top / (upper - lower)), 0, top)
    return out


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_normalization_equals_numpy_per_slice(stack, tmp_path, dtype):
    scale = 257 if dtype == "uint16" else 1
    img = np.asfortranarray(stack.astype(dtype) * scale)
    src, dest = f"file://{tmp_path}/em", f"file://{tmp_path}/norm"
    write_layer(src, img, "image", chunk=(32, 32, 4))
    run_cli("-p", "2", "image", "contrast", "histogram", src, "--shape", "40,48,5")  # 64,64,8 in chunks
    for fraction, name in ((0.01, dest), (0.0, f"{dest}0")):
        run_cli("image", "contrast", "equalize", src, name, "--clip-fraction", str(fraction), "--shape",
                "32,64,4", "--compress", "none")
        expected = normalized(img, fraction)
        assert np.array_equal(read_mip(name, 0), expected)
        assert np.array_equal(tensorstore_read(name, 0), expected)
    assert not np.array_equal(normalized(img, 0.01), img)
    run_cli("image", "contrast", "equalize", src, f"{dest}fixed", "--minval", 20 * scale,
            "--maxval", 200 * scale)
    assert np.array_equal(read_mip(f"{dest}fixed", 0), normalized(img, 0, 20 * scale, 200 * scale))


@pytest.mark.parametrize("options,kernel,clip_limit", [
    ((), None, 40 / 256),  # Igneous's defaults: an 8,8 grid is scikit-image's default kernel
    (("--tile-grid-size", "3,5", "--clip-limit", "10"), (32, 16), 10 / 256),  # 96,80 voxels a slice
    (("--kernel-size", "24", "--clip-limit", "5"), 24, 5 / 256),
])
def test_clahe_equals_scikit_image_per_slice(stack, tmp_path, options, kernel, clip_limit):
    """Igneous's --tile-grid-size (tiles across X,Y) and --clip-limit (OpenCV's: a multiple of the
    mean count per bin) are scikit-image's kernel_size (slice size / tiles) and clip_limit * nbins."""
    from skimage import exposure, util
    src, dest = f"file://{tmp_path}/em", f"file://{tmp_path}/clahe"
    write_layer(src, stack, "image", chunk=(32, 32, 4))
    run_cli("-p", "2", "image", "contrast", "clahe", src, dest, *options, "--depth", "4")
    out = read_mip(dest, 0)
    for z in range(stack.shape[2]):
        equalized = exposure.equalize_adapthist(stack[:, :, z], kernel_size=kernel, clip_limit=clip_limit)
        reference = util.img_as_ubyte(equalized)
        assert np.array_equal(out[:, :, z], reference), z


def test_clahe_of_ranges_equalizes_their_chunks_as_images_of_their_own(stack, tmp_path):
    """--xrange/--yrange/--zrange (Igneous's) round out to whole chunks (32,32,4): x 40-70 -> 32-96,
    y 0-20 -> 0-32, z 5-7 -> 4-8; each slice of that region equals scikit-image's CLAHE of the
    region's slice; DEST has the source's geometry and no chunk outside the region."""
    from skimage import exposure, util
    src, dest = f"file://{tmp_path}/em", f"file://{tmp_path}/clahe"
    write_layer(src, stack, "image", chunk=(32, 32, 4))
    run_cli("image", "contrast", "clahe", src, dest, "--xrange", "40,70", "--yrange", "0,20",
            "--zrange", "5,7", "--tile-grid-size", "2,2")
    out = CloudVolume(dest, progress=False)
    assert list(out.bounds.size3()) == list(stack.shape)
    assert sorted(f.name.split(".")[0] for f in (tmp_path / "clahe" / out.key).iterdir()) == \
        ["32-64_0-32_4-8", "64-96_0-32_4-8"]
    region = stack[32:96, 0:32, 4:8]
    got = np.asarray(out[32:96, 0:32, 4:8])[..., 0]
    for z in range(4):
        equalized = exposure.equalize_adapthist(region[:, :, z], kernel_size=(32, 16), clip_limit=40 / 256)
        assert np.array_equal(got[:, :, z], util.img_as_ubyte(equalized)), z


def test_mistakes_are_one_line_and_write_nothing(stack, tmp_path):
    src = f"file://{tmp_path}/em"
    write_layer(src, stack, "image", chunk=(32, 32, 4))
    write_layer(f"file://{tmp_path}/f", stack.astype(np.float32), "image", chunk=(32, 32, 4))
    cases = [
        (("equalize", src, f"file://{tmp_path}/a"), "contrast histogram"),
        (("histogram", f"file://{tmp_path}/f"), "uint8 or uint16"),
        (("equalize", src, src), "the destination is the source"),
        (("clahe", src, f"file://{tmp_path}/b", "--clip-limit", "0"), "clip-limit"),
        (("clahe", src, f"file://{tmp_path}/b", "--tile-grid-size", "0,4"), "--tile-grid-size two counts"),
        (("clahe", src, f"file://{tmp_path}/b", "--xrange", "90,120"), "--xrange 90,120 lies outside"),
        (("equalize", src, f"file://{tmp_path}/b", "--minval", "300"), "must lie in 0..255"),
    ]
    for args, message in cases:
        result = run_cli("image", "contrast", *args, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
