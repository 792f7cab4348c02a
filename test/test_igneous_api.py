"""Igneous's README examples, written as its README writes them, run against igneous_like with only
the import line changed (`import igneous_like.task_creation as tc`), executed with python-task-queue's
LocalTaskQueue or `for t in tasks: t.execute()`; outputs checked against whole-array references
(tinybrain, cc3d, numpy, kimimaro) and TensorStore reads, on crops of the real data. Task shapes
are smaller than the README's so tasks cut objects, and outputs are uncompressed where TensorStore
reads them (CloudFiles names gzipped local files *.gz, which TensorStore does not look for)."""
import inspect

import numpy as np
import pytest
from cloudfiles import CloudFile
from cloudvolume import CloudVolume, Vec
from conftest import read_mip, tensorstore_read, write_layer
from mapbuffer import IntMap
from taskqueue import LocalTaskQueue
from test_contrast import normalized

import igneous_like.task_creation as tc
from igneous_like.errors import UserError
from igneous_like.task_creation.common import MEMORY_TARGET

SHAPE = (128, 128, 64)


@pytest.fixture
def image(real_image):
    return np.asfortranarray(real_image[200:328, 180:308, 100:164])


@pytest.fixture
def seg(real_seg):
    return np.asfortranarray(real_seg[200:328, 180:308, 100:164])


def run(tasks) -> None:
    tq = LocalTaskQueue(parallel=1)
    tq.insert(tasks)
    tq.execute(progress=False)


def pyramid(img: np.ndarray, num_mips: int) -> list:
    import tinybrain
    return tinybrain.downsample_with_averaging(img, (2, 2, 1), num_mips=num_mips)


def test_downsample_readme_calls(image, tmp_path):
    path = write_layer(f"file://{tmp_path}/em", image, "image", chunk=(32, 32, 16))
    tasks = tc.create_downsampling_tasks(
        path, mip=0, fill_missing=False, axis='z', num_mips=2, chunk_size=None, preserve_chunk_size=True,
        sparse=False, bounds=None, encoding=None, delete_black_uploads=False, background_color=0,
        compress=False, factor=(2, 2, 1), shape=(128, 128, 16),  # TensorStore reads no .gz files
    )
    assert len(tasks) > 1
    for t in tasks:
        t.execute()
    for mip, expected in enumerate(pyramid(image, 2), start=1):
        assert np.array_equal(read_mip(path, mip), expected)
        assert np.array_equal(tensorstore_read(path, mip), expected)

    # the SQS example: no num_mips, so mips stop where the volume fits one chunk (128 -> 64 -> 32)
    other = write_layer(f"file://{tmp_path}/em2", image, "image", chunk=(32, 32, 16))
    run(tc.create_downsampling_tasks(other, mip=0, fill_missing=True, preserve_chunk_size=True,
                                     compress=False))
    sizes = [scale["size"] for scale in CloudVolume(other).info["scales"]]
    assert sizes == [[128, 128, 64], [64, 64, 64], [32, 32, 64]]
    assert np.array_equal(read_mip(other, 2), pyramid(image, 2)[1])


def test_sharded_downsample_of_several_mips_in_one_call(image, tmp_path):
    path = write_layer(f"file://{tmp_path}/em", image, "image", chunk=(16, 16, 16))
    tasks = tc.create_image_shard_downsample_tasks(
        path, mip=0, fill_missing=False, sparse=False, chunk_size=None, encoding=None,
        memory_target=MEMORY_TARGET // 20000, agglomerate=False, timestamp=None, factor=(2, 2, 1),
        num_mips=3,
    )
    assert len(tasks) > 1  # shards cut the volume
    run(tasks)
    scales = CloudVolume(path).info["scales"]
    assert len(scales) == 4 and all("sharding" in scale for scale in scales[1:])
    for mip, expected in enumerate(pyramid(image, 3), start=1):
        assert np.array_equal(read_mip(path, mip), expected)
        assert np.array_equal(tensorstore_read(path, mip), expected)


def test_sharded_downsample_makes_igneous_three_mips_when_not_told(image, tmp_path):
    """Igneous's create_image_shard_downsample_tasks makes 3 mips when num_mips is None; a volume too
    small for 3 gets as many as it has."""
    path = write_layer(f"file://{tmp_path}/em", image[:64, :64, :16], "image", chunk=(16, 16, 16))
    run(tc.create_image_shard_downsample_tasks(path, memory_target=MEMORY_TARGET // 20000))
    assert len(CloudVolume(path).info["scales"]) == 4
    for mip, expected in enumerate(pyramid(image[:64, :64, :16], 3), start=1):
        assert np.array_equal(read_mip(path, mip), expected)
    small = write_layer(f"file://{tmp_path}/small", image[:4, :4, :16], "image", chunk=(4, 4, 16))
    run(tc.create_image_shard_downsample_tasks(small))
    sizes = [scale["size"] for scale in CloudVolume(small).info["scales"]]
    assert sizes == [[4, 4, 16], [2, 2, 16], [1, 1, 16]]
    assert np.array_equal(read_mip(small, 2), pyramid(image[:4, :4, :16], 2)[1])


def test_transfer_downsamples_until_one_chunk_and_at_most_max_mips(image, tmp_path):
    """Igneous's transfer tasks downsample until the volume fits one chunk (128 -> 64 -> 32 with
    32-voxel chunks; more would be mips of one chunk each), and make at most max_mips, which pairs
    with memory_target: an explicit shape gets every mip it holds (Igneous 2.x makes 2 there too)."""
    crop = np.asfortranarray(image[:, :, :16])
    src = write_layer(f"file://{tmp_path}/src", crop, "image", chunk=(32, 32, 16))
    for max_mips, shape, made in ((5, None, 2), (1, None, 1), (1, (128, 128, 16), 2)):
        dest = f"file://{tmp_path}/dest{max_mips}{shape is None}"
        run(tc.create_transfer_tasks(src, dest, max_mips=max_mips, shape=shape, compress=False))
        sizes = [scale["size"] for scale in CloudVolume(dest).info["scales"]]
        assert sizes == [[128, 128, 16], [64, 64, 16], [32, 32, 16]][:made + 1]
        for mip, expected in enumerate(pyramid(crop, made), start=1):
            assert np.array_equal(read_mip(dest, mip), expected)


def test_transfer_into_a_layer_made_in_advance_writes_inside_its_bounds(image, tmp_path):
    src = write_layer(f"file://{tmp_path}/src", image, "image", chunk=(64, 64, 64))
    before = np.full(SHAPE, 7, dtype=np.uint8)  # half of it lies beyond the source, and must stay
    dest = write_layer(f"file://{tmp_path}/dest", before, "image", offset=(64, 0, 0), chunk=(32, 32, 16))
    tasks = tc.create_transfer_tasks(
        src, dest,
        chunk_size=None, shape=None,
        fill_missing=False, translate=None,
        bounds=None, mip=0, preserve_chunk_size=True,
        encoding=None, skip_downsamples=False,
        delete_black_uploads=False, background_color=0,
        agglomerate=False, timestamp=None, compress=False,
        factor=None, sparse=False, dest_voxel_offset=None,
        memory_target=3.5e9, max_mips=5
    )
    run(tasks)
    expected = before.copy()
    expected[:64] = image[64:]
    info = CloudVolume(dest).info
    assert info["scales"][0]["chunk_sizes"] == [[32, 32, 16]]
    assert info["scales"][0]["voxel_offset"] == [64, 0, 0]
    assert np.array_equal(read_mip(dest, 0), expected)
    assert np.array_equal(tensorstore_read(dest, 0), expected)
    if 1 in tasks.mips:
        assert np.array_equal(read_mip(dest, 1), pyramid(expected, 1)[0])


def test_meshing_with_object_ids(seg, tmp_path):
    if "object_ids" not in inspect.signature(tc.create_meshing_tasks).parameters:
        pytest.skip("create_meshing_tasks does not take Igneous's object_ids yet")
    path = write_layer(f"file://{tmp_path}/seg", seg, "segmentation", chunk=(64, 64, 64))
    labels, counts = np.unique(seg[seg > 0], return_counts=True)
    wanted = [int(label) for label in labels[np.argsort(counts)[-3:]]]
    run(tc.create_meshing_tasks(path, mip=0, shape=(64, 64, 64), object_ids=wanted))
    run(tc.create_mesh_manifest_tasks(path))
    cv = CloudVolume(path, progress=False)
    meshes = cv.mesh.get(wanted, fuse=False)
    assert sorted(meshes) == sorted(wanted)
    for label in wanted:
        low, high = np.argwhere(seg == label).min(axis=0), np.argwhere(seg == label).max(axis=0) + 1
        vertices = meshes[label].vertices / cv.resolution
        assert np.all(vertices >= low - 1) and np.all(vertices <= high + 1)


def test_skeletons_readme_calls(seg, tmp_path):
    import kimimaro
    cloudpath = layer_path = write_layer(f"file://{tmp_path}/seg", seg, "segmentation", chunk=(32, 32, 32))
    mip = 0
    tasks = tc.create_skeletonizing_tasks(
        cloudpath,
        mip,
        shape=Vec(64, 64, 64),
        sharded=False,
        spatial_index=False,
        info=None,
        fill_missing=False,
        teasar_params={'scale': 10, 'const': 10},
        object_ids=None,
        mask_ids=None,
        fix_branching=True,
        fix_borders=True,
        dust_threshold=1000,
        progress=False,
        parallel=1,
        cross_sectional_area=False,
        cross_sectional_area_smoothing_window=5,
    )
    assert len(tasks) > 1
    run(tasks)
    run(tc.create_unsharded_skeleton_merge_tasks(  # the README also passes mip, which Igneous refuses too
        layer_path,
        crop=0,  # in voxels
        magnitude=3,  # same as mesh manifests
        dust_threshold=4000,  # in nm
        tick_threshold=6000,  # in nm
        delete_fragments=False,
    ))
    labels, counts = np.unique(seg[seg > 0], return_counts=True)
    biggest = int(labels[np.argmax(counts)])
    whole = kimimaro.skeletonize(seg, teasar_params={"scale": 10, "const": 10}, anisotropy=(16, 16, 40),
                                 dust_threshold=1000, fix_branching=True, parallel=1)
    cv = CloudVolume(cloudpath, progress=False)
    skeleton = cv.skeleton.get(biggest)
    assert skeleton.vertices.size
    assert abs(skeleton.cable_length() - whole[biggest].cable_length()) < 0.15 * whole[biggest].cable_length()
    voxels = np.round(skeleton.vertices / cv.resolution).astype(int)
    voxels = np.minimum(voxels, np.array(seg.shape) - 1)
    near = [np.any(seg[max(x - 1, 0):x + 2, max(y - 1, 0):y + 2, max(z - 1, 0):z + 2] == biggest)
            for x, y, z in voxels]
    assert all(near)


def test_ccl_readme_calls(seg, tmp_path):
    import cc3d
    src = cloudpath = write_layer(f"file://{tmp_path}/seg", seg, "segmentation", chunk=(32, 32, 32))
    dest = f"file://{tmp_path}/cc"
    mip, shape = 0, (64, 64, 32)
    threshold_gte = threshold_lte = None
    dust_threshold = 0
    run(tc.create_ccl_face_tasks(cloudpath, mip, shape=shape, threshold_gte=None, threshold_lte=None,
                                 dust_threshold=0))
    run(tc.create_ccl_equivalence_tasks(cloudpath, mip, shape, threshold_gte, threshold_lte, dust_threshold))
    tc.create_relabeling(src, mip, shape)
    run(tc.create_ccl_relabel_tasks(src, dest, mip, shape=shape, chunk_size=None, encoding=None,
                                    threshold_gte=None, threshold_lte=None, dust_threshold=0,
                                    compress="none"))
    ours, reference = read_mip(dest, 0), cc3d.connected_components(seg, connectivity=6)
    assert np.array_equal(ours == 0, reference == 0)
    pairs = np.unique(np.stack([ours.ravel(), reference.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # one to one
    assert np.array_equal(tensorstore_read(dest, 0), ours)


def test_voxel_counts_read_with_intmap(seg, tmp_path):
    cloudpath = write_layer(f"file://{tmp_path}/seg", seg, "segmentation", chunk=(32, 32, 32))
    mip = 0
    tasks = tc.create_voxel_counting_tasks(
        cloudpath, mip=mip, shape=(64, 64, 32)
    )
    tq = LocalTaskQueue(parallel=1)
    tq.insert_all(tasks)
    tc.accumulate_voxel_counts(cloudpath, mip, additional_output=str(tmp_path / "counts.im"))
    key = CloudVolume(cloudpath).key
    cf = CloudFile("/".join([cloudpath, key, "stats", "voxel_counts.im"]))
    labels, counts = np.unique(seg, return_counts=True)
    for im in (IntMap(cf), IntMap(cf.get()), IntMap((tmp_path / "counts.im").read_bytes())):
        assert len(im) == labels.size
        assert all(im[int(label)] == count for label, count in zip(labels, counts))


def test_contrast_normalization_readme_calls(image, tmp_path):
    stack = np.asfortranarray(np.clip(image * np.linspace(0.4, 1.0, SHAPE[2])[None, None, :], 0, 255)
                              .astype(np.uint8))
    layer_path = src_path = write_layer(f"file://{tmp_path}/em", stack, "image", chunk=(32, 32, 8))
    dest_path = f"file://{tmp_path}/norm"
    run(tc.create_luminance_levels_tasks(layer_path, coverage_factor=0.01, shape=(64, 64, 16),
                                         offset=(0, 0, 0), mip=0))
    run(tc.create_contrast_normalization_tasks(src_path, dest_path, shape=(64, 64, 16), mip=0,
                                               clip_fraction=0.01, fill_missing=False, translate=(0, 0, 0),
                                               compress="none"))
    expected = normalized(stack, 0.01)
    assert not np.array_equal(expected, stack)
    assert np.array_equal(read_mip(dest_path, 0), expected)
    assert np.array_equal(tensorstore_read(dest_path, 0), expected)


def test_clahe_with_igneous_keywords(image, tmp_path):
    from skimage import exposure, util
    stack = np.asfortranarray(image[:, :96, :8])
    src = write_layer(f"file://{tmp_path}/em", stack, "image", chunk=(32, 32, 4))
    dest = f"file://{tmp_path}/clahe"
    tasks = tc.create_clahe_tasks(src, dest, shape=(128, 96, 4), mip=0, fill_missing=False, bounds=None,
                                  bounds_mip=0, clip_limit=20.0, tile_grid_size=(4, 2))
    assert len(tasks) == 2
    run(tasks)
    out = read_mip(dest, 0)
    for z in range(stack.shape[2]):
        equalized = exposure.equalize_adapthist(stack[:, :, z], kernel_size=(32, 48), clip_limit=20 / 256)
        assert np.array_equal(out[:, :, z], util.img_as_ubyte(equalized)), z
    part = f"file://{tmp_path}/part"  # bounds (Igneous's): that region's slices as images of their own
    run(tc.create_clahe_tasks(src, part, bounds=((0, 0, 0), (64, 64, 8)), tile_grid_size=(2, 2)))
    got = np.asarray(CloudVolume(part)[0:64, 0:64, 0:8])[..., 0]
    for z in range(stack.shape[2]):
        equalized = exposure.equalize_adapthist(stack[:64, :64, z], kernel_size=(32, 32), clip_limit=40 / 256)
        assert np.array_equal(got[:, :, z], util.img_as_ubyte(equalized)), z
    for mistake in (dict(shape=(128, 96, 0)), dict(bounds=((500, 500, 0), (600, 600, 8))), dict(clip_limit=0),
                    dict(tile_grid_size=(8,))):
        with pytest.raises(UserError):
            tc.create_clahe_tasks(src, f"file://{tmp_path}/bad", **mistake)
    assert not (tmp_path / "bad").exists()


def test_touch_tasks_fail_exactly_where_a_chunk_is_missing(image, tmp_path):
    """Igneous's create_touch_tasks(cloudpath, mip, shape, bounds): tasks read every chunk; those
    whose box holds a missing chunk fail, the others pass; bounds (mip 0 voxels) limit the reading."""
    from cloudvolume.exceptions import EmptyVolumeException
    from cloudvolume.lib import Bbox
    path = write_layer(f"file://{tmp_path}/em", image[:, :, :32], "image", chunk=(32, 32, 16))
    cv = CloudVolume(path)
    cv.image.delete(Bbox((64, 32, 16), (96, 64, 32)), mip=0)  # one chunk
    files = sorted(p.name for p in (tmp_path / "em" / cv.key).iterdir())
    tasks = tc.create_touch_tasks(path, mip=0, shape=(48, 64, 16))
    failed = []
    for box, task in zip(tasks.grid, tasks):
        try:
            task.execute()
        except EmptyVolumeException:
            failed.append(box)
    assert len(tasks) == 3 * 2 * 2 and failed == [Bbox((48, 0, 16), (96, 64, 32))]
    assert sorted(p.name for p in (tmp_path / "em" / cv.key).iterdir()) == files  # nothing written
    run(tc.create_touch_tasks(path, shape=(64, 64, 64), bounds=Bbox((0, 0, 0), (64, 128, 32))))
    methods = [entry["method"] for entry in CloudVolume(path).provenance.processing]
    assert methods[-1] == {"task": "TouchTask", "mip": 0, "shape": [64, 64, 64],
                           "bounds": [[0, 0, 0], [64, 128, 32]]}
    for mistake in (dict(bounds=Bbox((200, 0, 0), (300, 64, 32))), dict(shape=(0, 64, 64)), dict(mip=3)):
        with pytest.raises(UserError):
            tc.create_touch_tasks(path, **mistake)
    assert len(CloudVolume(path).provenance.processing) == len(methods)  # nothing written


def test_task_classes_and_module_alias(image, tmp_path):
    import igneous_like as igneous
    from igneous_like.tasks import DeleteTask
    assert igneous.task_creation.create_downsampling_tasks is tc.create_downsampling_tasks
    path = write_layer(f"file://{tmp_path}/em", image, "image", chunk=(32, 32, 16))
    DeleteTask(path, (32, 64, 16), (32, 0, 16))  # runs when called; Igneous's order: path, shape, offset
    expected = image.copy()
    expected[32:64, 0:64, 16:32] = 0
    assert np.array_equal(np.asarray(CloudVolume(path, fill_missing=True)[:, :, :])[..., 0], expected)
