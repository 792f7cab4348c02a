"""`design`: a task shape's cost and mips agree with what `image downsample` accepts, the shape for
a memory budget fits it, and bounds read from chunk files equal the info's, with or without it."""
import numpy as np
from conftest import run_cli, write_layer


def test_task_shapes_agree_with_downsample(tmp_path):
    path = write_layer(f"file://{tmp_path}/em", np.zeros((300, 260, 70), np.uint8), "image",
                       chunk=(64, 64, 16), offset=(10, 0, 5))
    shown = run_cli("design", "ds-shape", path, "256,256,64").stdout
    assert shown.strip() == "12 MiB a task (12582912 bytes); makes 2 mips"  # 256*256*64 voxels, 3 copies
    assert "use a multiple of 128,128,16" in run_cli("design", "ds-shape", path, "100,100,10").stdout
    refused = run_cli("image", "downsample", path, "--shape", "256,256,64", "--num-mips", 3, check=False)
    assert refused.returncode == 2 and "multiple" in refused.stderr
    run_cli("image", "downsample", path, "--shape", "256,256,64", "--num-mips", 2)

    fresh = write_layer(f"file://{tmp_path}/em2", np.zeros((300, 260, 70), np.uint8), "image",
                        chunk=(64, 64, 16))
    result = run_cli("design", "ds-memory", fresh, 3_000_000, "--verbose")
    assert result.stdout.strip() == "128,128,16" and "makes 1 mips" in result.stderr
    assert 128 * 128 * 16 * 3 <= 3_000_000 < 256 * 256 * 16 * 3  # the 2-mip shape would not fit
    assert run_cli("design", "ds-memory", fresh, 4_000_000).stdout.strip() == "300,260,16"  # spans x, y


def test_bounds_from_chunk_files_with_and_without_the_info(tmp_path):
    path = write_layer(f"file://{tmp_path}/em", np.ones((300, 260, 70), np.uint8), "image",
                       chunk=(64, 64, 16), offset=(10, 0, 5))
    expected = "bounds:     10,0,5 to 310,260,75 (size 300,260,70)\nchunk size: 64,64,16 (125 chunk files)\n"
    assert run_cli("design", "bounds", path).stdout == expected
    (tmp_path / "em" / "info").unlink()  # the info is lost: read the scale's folder itself
    assert run_cli("design", "bounds", f"{path}/16_16_40").stdout == expected
    result = run_cli("design", "bounds", path, check=False)
    assert result.returncode == 2 and "no chunk files" in result.stderr
