"""Global dust removal and hole filling equal the whole-array result (numpy / scipy.ndimage) on a
crop of the real segmentation, with holes that cross task boundaries."""
import json

import fastremap
import numpy as np
import pytest
from conftest import read_mip, run_cli, write_layer
from scipy import ndimage

from igneous_like.errors import UserError
from igneous_like.queues import run_locally
from igneous_like.task_creation import accumulate_voxel_counts, create_dust_tasks, create_voxel_counting_tasks

CROP = (slice(0, 160), slice(0, 160), slice(0, 64))
OFFSET = (7, 3, 5)
SHAPE = (64, 64, 32)
MAX_HOLE = 300
DUST_CROP = (slice(100, 260), slice(50, 210), slice(0, 64))  # 33 objects of 9 to 1.5M voxels


@pytest.fixture(scope="module")
def seg(real_seg):
    """The crop with extra cavities: balls cut out of objects, some across task boundaries (64, 32),
    one bigger than MAX_HOLE, one on the volume's edge."""
    out = np.array(real_seg[CROP], order="F")
    grid = np.indices(out.shape)
    for center, radius in (((64, 64, 32), 3), ((30, 100, 16), 2), ((100, 40, 40), 5), ((0, 80, 20), 3),
                           ((128, 128, 31), 2)):
        ball = sum((g - c) ** 2 for g, c in zip(grid, center)) <= radius ** 2
        out[ball] = 0
    return out


def holes_reference(seg: np.ndarray, max_hole: int) -> np.ndarray:
    """Each 6-connected background component off the volume's edge, of at most max_hole voxels,
    whose neighbouring voxels all belong to one object, filled with that object (scipy)."""
    out = seg.copy()
    components, _ = ndimage.label(seg == 0)
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        if any(s.start == 0 or s.stop == n for s, n in zip(box, seg.shape)):
            continue
        wide = tuple(slice(s.start - 1, s.stop + 1) for s in box)
        mine = components[wide] == index
        if mine.sum() > max_hole:
            continue
        around = np.unique(seg[wide][ndimage.binary_dilation(mine) & ~mine])
        if around.size == 1 and around[0] != 0:
            out[wide][mine] = around[0]
    return out


def test_fill_holes_through_queue_equals_whole_array(seg, tmp_path):
    src = write_layer(f"file://{tmp_path / 'seg'}", seg, "segmentation", offset=OFFSET, chunk=SHAPE)
    dest = f"file://{tmp_path / 'filled'}"
    queue = f"fq://{tmp_path / 'queue'}"
    run_cli("postprocess", "fill-holes", src, dest, "--max-hole-size", MAX_HOLE,
            "--shape", ",".join(map(str, SHAPE)), "--queue", queue)  # workers go on from step to step
    result = run_cli("-p", "2", "execute", "-x", queue)
    expected = holes_reference(seg, MAX_HOLE)
    assert (expected != seg).sum() > 500  # the cut balls and many of the data's own cavities
    filled = read_mip(dest, 0)
    np.testing.assert_array_equal(filled, expected)
    assert "plan_hole_filling: " in result.stderr  # the holes to fill, counted by a worker
    assert not [f for f in (tmp_path / "seg" / "16_16_40" / "fill_holes").rglob("*") if f.is_file()]


def test_dust_uses_whole_volume_counts(real_seg, tmp_path):
    seg = np.asfortranarray(real_seg[DUST_CROP])
    src = write_layer(f"file://{tmp_path / 'seg'}", seg, "segmentation", offset=OFFSET, chunk=SHAPE)
    dest = f"file://{tmp_path / 'clean'}"
    with pytest.raises(UserError, match="image voxels count"):
        create_dust_tasks(src, dest, 1000)
    run_locally(create_voxel_counting_tasks(src, shape=SHAPE), quiet=True)
    accumulate_voxel_counts(src)
    run_locally(create_dust_tasks(src, dest, 1000, shape=SHAPE), quiet=True)
    labels, counts = fastremap.unique(seg, return_counts=True)
    small = labels[(counts < 1000) & (labels != 0)]
    assert small.size > 10
    pieces = []  # objects that one task sees as dust but the whole volume keeps
    for x, y, z in np.ndindex(3, 3, 2):
        box = seg[x * 64:, y * 64:, z * 32:][:64, :64, :32]
        local, local_counts = fastremap.unique(box, return_counts=True)
        pieces += list(local[(local_counts < 1000) & ~np.isin(local, small) & (local != 0)])
    assert pieces
    np.testing.assert_array_equal(read_mip(dest, 0), np.where(np.isin(seg, small), 0, seg))


def test_options_reach_tasks(make_layer, tmp_path):
    """measure forge records its layers and options for the tasks; dust passes its own."""
    from taskqueue import TaskQueue
    labels = np.ones((64, 64, 32), np.uint32)
    seg = make_layer("seg", labels, "segmentation", offset=(4, 0, 0), chunk=(32, 32, 32))
    image = make_layer("image", labels.astype(np.uint16), "image", offset=(4, 0, 0), chunk=(32, 32, 32))
    queue = f"fq://{tmp_path}/q"
    run_cli("measure", "forge", seg, "--image", image, "--nuclei", seg, "--shape", "32,64,32",
            "--fill-missing", "--queue", queue)
    kwargs = [task.kwargs for task in TaskQueue(queue).tasks()]
    assert sorted(k["offset"] for k in kwargs) == [[4, 0, 0], [36, 0, 0]]
    assert all(k["shape"] == [32, 64, 32] and k["layer_path"] == seg for k in kwargs)
    record = json.loads((tmp_path / "seg" / "16_16_40" / "measure" / "measure.json").read_text())
    assert (record["image"], record["nuclei"], record["fill_missing"]) == (image, seg, True)
    assert record["integer_image"] and "nvox" in record["columns"] and record["shape"] == [32, 64, 32]
    TaskQueue(queue).purge()
    run_locally(create_voxel_counting_tasks(seg), quiet=True)
    accumulate_voxel_counts(seg)
    run_cli("postprocess", "dust", seg, f"file://{tmp_path}/clean", "--min-size", 7, "--compress", "br",
            "--shape", "32,32,32", "--queue", queue)
    kwargs = [task.kwargs for task in TaskQueue(queue).tasks()]
    assert len(kwargs) == 4 and all(k["min_size"] == 7 and k["compress"] == "br" for k in kwargs)
