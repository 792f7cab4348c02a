"""The README's demo: its outputs equal tinybrain on the arrays it generated, in two readers."""
import numpy as np
import tinybrain
from conftest import read_mip, run_cli, tensorstore_read

from igneous_like.cli.demo import NUM_MIPS, make_volumes


def test_demo_outputs_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("-p", "2", "demo", out)
    paths = {name: f"file://{out / name}" for name in ("image", "segmentation", "image_rechunked")}
    assert all(path in result.stdout for path in paths.values())

    image, seg = make_volumes()
    expected = {
        "image": [image] + tinybrain.downsample_with_averaging(image, (2, 2, 1), num_mips=NUM_MIPS),
        "segmentation": [seg] + tinybrain.downsample_segmentation(seg, (2, 2, 1), num_mips=NUM_MIPS),
        "image_rechunked": [image] + tinybrain.downsample_with_averaging(image, (2, 2, 1), num_mips=2),
    }
    for name, mips in expected.items():
        for mip, want in enumerate(mips):
            assert np.array_equal(read_mip(paths[name], mip), want), (name, mip)
            assert np.array_equal(tensorstore_read(paths[name], mip), want), (name, mip)

    again = run_cli("demo", out, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    run_cli("--quiet", "demo", out, "--overwrite")
