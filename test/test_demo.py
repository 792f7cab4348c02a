"""The README's demo: a whole pipeline through a file queue and two workers. Its pyramids equal
tinybrain on the arrays it generated, in two readers; its connected components equal cc3d's;
every cell has a multi-resolution mesh, a skeleton and a row of measurements."""
import cc3d
import numpy as np
import pandas
import tinybrain
from cloudvolume import CloudVolume
from conftest import read_mip, run_cli, tensorstore_read, view_once

from igneous_like.cli.demo import NUM_MIPS, make_volumes


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings hold the same objects, whatever their ids."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (np.unique(pairs[0]).size == pairs.shape[1] == np.unique(pairs[1]).size
            and bool(np.all((pairs[0] == 0) == (pairs[1] == 0))))


def test_demo_outputs_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("-p", "2", "demo", out)
    paths = {name: f"file://{out / name}" for name in ("image", "segmentation", "image_rechunked", "cells")}
    assert all(path in result.stdout for path in paths.values())
    assert result.stdout.count(" done ") == 11, result.stdout

    image, seg = make_volumes()
    expected = {
        "image": [image] + tinybrain.downsample_with_averaging(image, (2, 2, 1), num_mips=NUM_MIPS),
        "segmentation": [seg] + tinybrain.downsample_segmentation(seg, (2, 2, 1), num_mips=NUM_MIPS),
        # 256 voxels in 128-voxel chunks: one mip until it fits one chunk, where Igneous's xfer stops
        "image_rechunked": [image] + tinybrain.downsample_with_averaging(image, (2, 2, 1), num_mips=1),
    }
    for name, mips in expected.items():
        for mip, want in enumerate(mips):
            assert np.array_equal(read_mip(paths[name], mip), want), (name, mip)
            assert np.array_equal(tensorstore_read(paths[name], mip), want), (name, mip)

    cells = read_mip(paths["cells"], 0)
    reference = cc3d.dust(cc3d.connected_components(seg, connectivity=6), 200, connectivity=6)
    assert same_partition(cells, reference)
    labels = [int(label) for label in np.unique(cells) if label]
    cv = CloudVolume(paths["cells"], progress=False)
    meshes = cv.mesh.get(labels, lod=0)
    assert sorted(meshes) == labels and all(len(meshes[label].faces) for label in labels)
    assert all(len(cv.skeleton.get(label).vertices) for label in labels)
    table = pandas.read_csv(out / "cells.csv")
    assert sorted(table["label"]) == labels
    assert np.array_equal(table.set_index("label").loc[labels, "voxel_count"],
                          np.bincount(cells.ravel())[labels])

    view = result.stdout.strip().splitlines()[-1].split()  # the command it ends with opens both
    largest = table.nlargest(3, "voxel_count")["label"]
    assert view == ["igneous-like", "view", paths["image"], paths["cells"],
                    "--segments", ",".join(map(str, largest))]
    url, status, code, err = view_once(*view[2:])
    assert status == 200 and code == 0 and "segmentation  cells:" in err, err

    again = run_cli("demo", out, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    run_cli("--quiet", "demo", out, "--overwrite")
