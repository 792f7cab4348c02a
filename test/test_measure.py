"""Measurements equal an independent whole-array computation (numpy, scipy.ndimage, scikit-image,
marching cubes on the whole array) on a crop of the real segmentation split along every axis.

Forge and merge run in this process on file:// layers; the CLI test runs every stage through a
real fq:// queue and `execute`, and checks the segment properties Neuroglancer reads.
"""
import json
from pathlib import Path

import fastremap
import numpy as np
import pandas as pd
import pytest
from cloudvolume import CloudVolume
from conftest import run_cli, write_layer
from scipy import ndimage

from igneous_like import measure
from igneous_like.queues import run_locally
from igneous_like.task_creation import create_measure_merge_tasks, create_measure_tasks, export_measurements

CROP = (slice(100, 300), slice(50, 306), slice(0, 128))  # 200x256x128 of the real data
SHAPE = (100, 128, 64)  # a split along every axis
OFFSET = (30, 20, 10)
RES = np.array([16.0, 16.0, 40.0])
EXACT = dict(rtol=1e-12, atol=1e-9)


@pytest.fixture(scope="module")
def arrays(real_seg, real_image):
    seg = np.asfortranarray(real_seg[CROP])
    return seg, np.asfortranarray(real_image[CROP]), make_nuclei(seg)


def make_nuclei(seg: np.ndarray) -> np.ndarray:
    """Nuclei: the 12 largest cells eroded by 2 voxels; the largest one's nucleus cut in two."""
    labels, counts = fastremap.unique(seg, return_counts=True)
    biggest = labels[labels != 0][np.argsort(counts[labels != 0])[::-1][:12]]
    nuclei = np.zeros(seg.shape, np.uint32)
    for k, label in enumerate(biggest):
        nuclei[ndimage.binary_erosion(seg == label, iterations=2)] = 1000 + k
    first = nuclei == 1000
    cut = int(np.median(np.nonzero(first)[0]))
    nuclei[:cut][first[:cut]] = 2000
    return np.asfortranarray(nuclei)


@pytest.fixture(scope="module")
def measured(arrays, tmp_path_factory):
    """The table of forge + merge (3 label ranges) + export, run in this process."""
    seg, image, nuclei = arrays
    root = tmp_path_factory.mktemp("measure")
    paths = {name: write_layer(f"file://{root / name}", data, kind, offset=OFFSET, chunk=SHAPE)
             for name, data, kind in (("seg", seg, "segmentation"), ("image", image, "image"),
                                      ("nuclei", nuclei, "segmentation"))}
    run_locally(create_measure_tasks(paths["seg"], shape=SHAPE, image=paths["image"], nuclei=paths["nuclei"]),
                parallel=1, quiet=True)
    merge = create_measure_merge_tasks(paths["seg"], num_tasks=3)
    assert len(merge) == 3
    run_locally(merge, parallel=1, quiet=True)
    export_measurements(paths["seg"], str(root / "cells.parquet"))
    return pd.read_parquet(root / "cells.parquet"), paths


@pytest.fixture(scope="module")
def reference(arrays):
    """Whole-array statistics: scipy.ndimage on a renumbered copy (index k = label k)."""
    seg, image, _ = arrays
    renumbered, remap = fastremap.renumber(seg, preserve_zero=True, in_place=False)
    labels = np.zeros(len(remap), np.uint64)
    for old, new in remap.items():
        labels[new] = old
    index = np.arange(1, labels.size)
    return {"labels": labels[1:], "renumbered": renumbered, "index": index}


def test_one_row_per_object_counts_bbox_centroid(measured, arrays, reference):
    table, _ = measured
    seg = arrays[0]
    assert list(table.columns[:2]) == ["label", "voxel_count"]
    np.testing.assert_array_equal(table["label"], np.sort(reference["labels"]))
    order = np.argsort(reference["labels"])
    renumbered, index = reference["renumbered"], reference["index"]
    counts = ndimage.sum_labels(np.ones(seg.shape), renumbered, index)[order]
    np.testing.assert_array_equal(table["voxel_count"], counts)
    np.testing.assert_allclose(table["volume"], counts * RES.prod(), **EXACT)
    boxes = [ndimage.find_objects(renumbered)[k - 1] for k in index[order]]
    for axis, name in enumerate("xyz"):
        starts, stops = [b[axis].start for b in boxes], [b[axis].stop for b in boxes]
        np.testing.assert_array_equal(table[f"bbox_min_{name}"], np.add(starts, OFFSET[axis]))
        np.testing.assert_array_equal(table[f"bbox_max_{name}"], np.add(stops, OFFSET[axis]))
    centers = np.array(ndimage.center_of_mass(np.ones(seg.shape), renumbered, index))[order]
    for axis, name in enumerate("xyz"):
        np.testing.assert_allclose(table[f"centroid_{name}"], (OFFSET[axis] + centers[:, axis]) * RES[axis],
                                   **EXACT)


def test_intensity_statistics_exact(measured, arrays, reference):
    table, _ = measured
    image = arrays[1].astype(np.float64)
    renumbered, index = reference["renumbered"], reference["index"]
    order = np.argsort(reference["labels"])
    for column, function in (("intensity_mean", ndimage.mean), ("intensity_std", ndimage.standard_deviation),
                             ("intensity_min", ndimage.minimum), ("intensity_max", ndimage.maximum),
                             ("intensity_median", ndimage.median)):
        np.testing.assert_allclose(table[column], np.asarray(function(image, renumbered, index))[order],
                                   **EXACT, err_msg=column)
    flat = renumbered.ravel()
    by_label = np.argsort(flat, kind="stable")
    groups = np.split(image.ravel()[by_label], np.cumsum(np.bincount(flat, minlength=index.size + 1))[:-1])
    for q in measure.PERCENTILES:
        expected = np.array([np.percentile(groups[k], q) for k in index])[order]
        np.testing.assert_allclose(table[f"intensity_p{q}"], expected, **EXACT, err_msg=f"p{q}")


def test_axes_and_surface_within_one_percent(measured, arrays, reference):
    """Axes against scikit-image regionprops (spacing in nm); surface area against marching cubes
    of each object on the whole array."""
    from skimage.measure import marching_cubes, mesh_surface_area, regionprops
    table, _ = measured
    table = table.set_index("label")
    props = regionprops(reference["renumbered"], spacing=tuple(RES))
    big = [p for p in props if p.area >= 1000 * RES.prod()]
    assert len(big) > 20
    for p in big:
        row = table.loc[reference["labels"][p.label - 1]]
        assert row["axis_major_length"] == pytest.approx(p.axis_major_length, rel=0.01)
        assert row["axis_minor_length"] == pytest.approx(p.axis_minor_length, rel=0.01)
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in p.slice)
        mask = np.pad(reference["renumbered"][box] == p.label, 1).astype(np.float32)
        vertices, faces, _, _ = marching_cubes(mask, 0.5, spacing=tuple(RES))
        area = mesh_surface_area(vertices, faces)
        assert row["surface_area"] == pytest.approx(area, rel=0.01)
        volume = p.area
        assert row["sphericity"] == pytest.approx(np.cbrt(np.pi) * np.cbrt(6 * volume) ** 2 / area, rel=0.01)
        assert row["equivalent_diameter"] == pytest.approx(np.cbrt(6 * volume / np.pi), rel=1e-12)


def test_nuclei_per_cell(measured, arrays):
    table, _ = measured
    seg, image, nuclei = arrays
    table = table.set_index("label")
    inside = (seg != 0) & (nuclei != 0)
    pairs = np.unique(np.stack([seg[inside], nuclei[inside]]), axis=1)
    cells, per_cell = np.unique(pairs[0], return_counts=True)
    expected = pd.Series(0, index=table.index)
    expected[cells] = per_cell
    np.testing.assert_array_equal(table["nuclei_count"], expected)
    assert table["nuclei_count"].max() == 2
    for cell in cells:
        mine = seg == cell
        nucleus = mine & (nuclei != 0)
        row = table.loc[cell]
        assert row["nucleus_volume"] == nucleus.sum() * RES.prod()
        assert row["cell_nucleus_volume_ratio"] == pytest.approx(mine.sum() / nucleus.sum(), rel=1e-12)
        for part, voxels in (("nucleus", nucleus), ("cytoplasm", mine & (nuclei == 0))):
            values = image[voxels].astype(np.float64)
            expected = {"mean": values.mean(), "std": values.std(), "min": values.min(), "max": values.max(),
                        "median": np.median(values)}
            expected.update({f"p{q}": np.percentile(values, q) for q in measure.PERCENTILES})
            for name, value in expected.items():
                np.testing.assert_allclose(row[f"{part}_intensity_{name}"], value, rtol=1e-12, err_msg=name)
        inner, outer = image[nucleus].mean(), image[mine & (nuclei == 0)].mean()
        assert row["cytoplasm_nucleus_intensity_ratio"] == pytest.approx(outer / inner, rel=1e-12)
    assert np.isnan(table.loc[~table.index.isin(cells), "cell_nucleus_volume_ratio"]).all()
    assert np.isnan(table.loc[~table.index.isin(cells), "nucleus_intensity_median"]).all()


def test_cli_through_queue_and_segment_properties(measured, tmp_path):
    """forge, merge, export and clean through the CLI and a real fq:// queue give the same table."""
    table, paths = measured
    queue = f"fq://{tmp_path / 'queue'}"
    seg = paths["seg"]
    run_cli("measure", "forge", seg, "--image", paths["image"], "--shape", "100,128,64", "--queue", queue)
    run_cli("-p", "2", "execute", "-x", queue)
    run_cli("measure", "merge", seg, "--tasks", "2", "--queue", queue)
    run_cli("execute", "-x", queue)
    run_cli("measure", "export", seg, tmp_path / "cells.csv")
    csv = pd.read_csv(tmp_path / "cells.csv")
    assert csv.columns[0] == "label" and "nuclei_count" not in csv
    for column in csv.columns:
        np.testing.assert_allclose(csv[column], table[column], rtol=1e-12, err_msg=column)
    cv = CloudVolume(seg, progress=False)
    assert cv.info["segment_properties"] == "segment_properties"
    info = json.loads(open(seg[len("file://"):] + "/segment_properties/info").read())
    assert info["@type"] == "neuroglancer_segment_properties"
    ids = info["inline"]["ids"]
    assert ids == [str(v) for v in table["label"]]
    properties = {prop["id"]: prop for prop in info["inline"]["properties"]}
    for prop in properties.values():
        assert prop["type"] == "number" and len(prop["values"]) == len(ids)
        assert prop["data_type"] in ("uint32", "float32")
    assert properties["voxel_count"]["values"] == list(table["voxel_count"])
    np.testing.assert_allclose(properties["sphericity"]["values"], table["sphericity"], rtol=1e-6)
    run_cli("measure", "clean", seg)
    work = Path(seg[len("file://"):]) / "16_16_40" / "measure"
    assert not [f for f in work.rglob("*") if f.is_file()]


def corner_hull_volume(mask: np.ndarray) -> float:
    """Volume (voxels) of the convex hull of every corner of every voxel of `mask` (whole array):
    a grid point is a corner when any of the 2^d voxels around it is set."""
    from scipy.spatial import ConvexHull
    padded = np.pad(mask, 1)
    corners = np.zeros(tuple(n - 1 for n in padded.shape), bool)
    for shift in np.ndindex(*(2,) * mask.ndim):
        corners |= padded[tuple(slice(k, k + n - 1) for k, n in zip(shift, padded.shape))]
    return ConvexHull(np.argwhere(corners).astype(np.float64)).volume


def test_solidity_equals_whole_object_corner_hull(measured, arrays, reference):
    """Solidity from the parts' hull vertices equals voxels / the hull of all of the whole
    object's voxel corners, for every object, also those cut by the 100x128x64 tasks."""
    table, _ = measured
    table = table.set_index("label")
    renumbered = reference["renumbered"]
    boxes = ndimage.find_objects(renumbered)
    cut = 0
    worst = 0.0
    for k, label in enumerate(reference["labels"]):
        mask = renumbered[boxes[k]] == k + 1
        expected = mask.sum() / corner_hull_volume(mask)
        worst = max(worst, abs(table.loc[label, "solidity"] - expected))
        cut += any(s.start // n != (s.stop - 1) // n for s, n in zip(boxes[k], SHAPE))
    assert cut > 20 and worst < 1e-12, (cut, worst)
    assert (table["solidity"] <= 1).all()


@pytest.fixture(scope="module")
def planar(real_seg, real_image, tmp_path_factory):
    """A single z-slice (128x128) of the real data and a float32 image, measured in 40x50 tasks."""
    seg = np.asfortranarray(real_seg[200:328, 100:228, 30:31])
    rng = np.random.default_rng(5)
    image = np.asfortranarray(real_image[200:328, 100:228, 30:31] * np.float32(0.37)
                              + rng.normal(0, 3, seg.shape).astype(np.float32))
    root = tmp_path_factory.mktemp("planar")
    seg_path = write_layer(f"file://{root / 'seg'}", seg, "segmentation", offset=OFFSET, chunk=(64, 64, 1))
    image_path = write_layer(f"file://{root / 'image'}", image, "image", offset=OFFSET, chunk=(64, 64, 1))
    run_locally(create_measure_tasks(seg_path, shape=(40, 50, 1), image=image_path), parallel=1, quiet=True)
    run_locally(create_measure_merge_tasks(seg_path, num_tasks=2), parallel=1, quiet=True)
    export_measurements(seg_path, str(root / "cells.csv"))
    return pd.read_csv(root / "cells.csv").set_index("label"), seg[:, :, 0], image[:, :, 0]


def test_single_slice_2d_measures_equal_regionprops(planar):
    """area, perimeter, circularity, eccentricity, 2-D axes against scikit-image regionprops of the
    whole slice (16 nm pixels); solidity against the 2-D hull of all pixel corners."""
    from skimage.measure import regionprops
    table, seg, _ = planar
    assert "volume" not in table and "surface_area" not in table
    props = regionprops(seg.astype(np.int64), spacing=(16.0, 16.0))
    assert len(props) == len(table) >= 8
    cut = 0
    for p in props:
        row = table.loc[p.label]
        assert row["area"] == p.area
        np.testing.assert_allclose(row["perimeter"], p.perimeter, rtol=1e-12, atol=1e-9)
        if p.perimeter > 0:
            np.testing.assert_allclose(row["circularity"], 4 * np.pi * p.area / p.perimeter ** 2, rtol=1e-12)
        for name in ("eccentricity", "axis_major_length", "axis_minor_length"):
            np.testing.assert_allclose(row[name], getattr(p, name), rtol=1e-9, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(row["equivalent_diameter"], p.equivalent_diameter_area, rtol=1e-12)
        np.testing.assert_allclose(row["solidity"], p.num_pixels / corner_hull_volume(p.image), rtol=1e-12)
        cut += p.slice[0].start // 40 != (p.slice[0].stop - 1) // 40 or p.slice[1].start // 50 != (
            p.slice[1].stop - 1) // 50
    assert cut >= 4


def test_float_image_exact_median_and_percentiles(planar):
    """A float32 image gets exact median and percentiles (numpy 'linear') across the task split."""
    table, seg, image = planar
    for label, row in table.iterrows():
        values = image[seg == label].astype(np.float64)
        np.testing.assert_allclose(row["intensity_median"], np.median(values), rtol=1e-12)
        for q in measure.PERCENTILES:
            np.testing.assert_allclose(row[f"intensity_p{q}"], np.percentile(values, q), rtol=1e-12)
        np.testing.assert_allclose([row["intensity_mean"], row["intensity_std"]],
                                   [values.mean(), values.std()], rtol=1e-9)


def test_float_image_in_stated_bins_equals_numpy_of_the_bin_centres(real_seg, real_image, tmp_path):
    """--float-bins 32 --float-range 0.1,0.9 (values outside go to the end bins), tasks cutting
    objects: every intensity column equals numpy's of each voxel's bin centre; the part files hold
    at most 33 values per object where the exact count keeps each distinct value. Bad pairs refused."""
    seg = np.asfortranarray(real_seg[200:296, 100:196, 20:52])
    rng = np.random.default_rng(8)
    image = np.asfortranarray((real_image[200:296, 100:196, 20:52] / np.float32(255)
                               + rng.normal(0, 0.1, seg.shape)).astype(np.float32))
    seg_path = write_layer(f"file://{tmp_path}/seg", seg, "segmentation", offset=OFFSET, chunk=(32, 32, 16))
    image_path = write_layer(f"file://{tmp_path}/image", image, "image", offset=OFFSET, chunk=(32, 32, 16))
    for args, message in [(["--float-bins", "8"], "together"), (["--float-range", "0,1"], "together"),
                          (["--float-bins", "8", "--float-range", "1,0"], "the first below the second")]:
        result = run_cli("measure", "forge", seg_path, "--image", image_path, *args, check=False)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "seg" / "16_16_40" / "measure").exists()
    run_cli("measure", "forge", seg_path, "--image", image_path, "--float-bins", 32,
            "--float-range", "0.1,0.9", "--shape", "40,40,16")
    parts = sum(f.stat().st_size for f in (tmp_path / "seg" / "16_16_40" / "measure" / "parts").iterdir())
    run_cli("measure", "merge", seg_path)
    run_cli("measure", "export", seg_path, tmp_path / "cells.csv", "--no-segment-properties")
    table = pd.read_csv(tmp_path / "cells.csv").set_index("label")
    width = 0.8 / 32
    centres = 0.1 + (np.clip(np.floor((image.astype(np.float64) - 0.1) / width), 0, 31) + 0.5) * width
    for label, row in table.iterrows():
        values = centres[seg == label]
        expected = [values.mean(), values.std(), values.min(), values.max(), np.median(values),
                    *(np.percentile(values, q) for q in measure.PERCENTILES)]
        names = ["mean", "std", "min", "max", "median", *(f"p{q}" for q in measure.PERCENTILES)]
        np.testing.assert_allclose([row[f"intensity_{n}"] for n in names], expected, rtol=1e-9, atol=1e-12)
    group = tmp_path / "group.yaml"  # measure batch takes the bins per layer
    group.write_text(f"cells: {{seg: {seg_path}, image: {image_path}, float_bins: 32, "
                     "float_range: [0.1, 0.9]}\n")
    run_cli("measure", "batch", f"file://{tmp_path}/tables", "--group", group, "--shape", "48,48,16",
            "--no-segment-properties")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "tables" / "cells.csv"), table.reset_index(),
                                  rtol=1e-12)
    run_cli("measure", "forge", seg_path, "--image", image_path, "--shape", "40,40,16")  # exact: larger parts
    exact = sum(f.stat().st_size for f in (tmp_path / "seg" / "16_16_40" / "measure" / "parts").iterdir())
    assert exact > 5 * parts


def test_binned_statistics_are_within_half_a_bin_of_exact():
    """Pure functions: with bins that cover every value, each order statistic of the bin centres
    lies within half a bin of the exact one (binning keeps the order), the mean too."""
    rng = np.random.default_rng(4)
    labels = np.asfortranarray(rng.integers(1, 5, (30, 20, 10)).astype(np.uint32))
    image = np.asfortranarray(rng.gamma(2.0, 3.0, labels.shape).astype(np.float32))
    bins = (0.0, float(image.max()) * 1.001, 50)
    exact = measure.statistics(measure.block_partial(labels, (0, 0, 0), image), RES, OFFSET, image=True,
                               float_image=True)
    binned = measure.statistics(measure.block_partial(labels, (0, 0, 0), measure.bin_index(image, bins)),
                                RES, OFFSET, image=True, bins=bins)
    half = (bins[1] - bins[0]) / bins[2] / 2
    for name in ("mean", "min", "max", "median", *(f"p{q}" for q in measure.PERCENTILES)):
        assert np.all(np.abs(binned[f"intensity_{name}"] - exact[f"intensity_{name}"]) <= half + 1e-9), name


def test_float_image_any_split_and_merge_order():
    """Pure functions: float intensities and moments from blocks of uneven shapes, merged in a
    shuffled order, equal the whole array's (numpy), median included."""
    rng = np.random.default_rng(3)
    labels = np.asfortranarray(rng.integers(0, 6, (37, 29, 23)).astype(np.uint64) * np.uint64(10**12))
    image = np.asfortranarray(rng.normal(100, 20, labels.shape).astype(np.float32))
    cuts = [(0, 11, 37), (0, 20, 29), (0, 5, 23)]
    parts = []
    for x0, x1 in zip(cuts[0][:-1], cuts[0][1:]):
        for y0, y1 in zip(cuts[1][:-1], cuts[1][1:]):
            for z0, z1 in zip(cuts[2][:-1], cuts[2][1:]):
                box = (slice(x0, x1), slice(y0, y1), slice(z0, z1))
                parts.append(measure.block_partial(labels[box], (x0, y0, z0), image[box]))
    rng.shuffle(parts)
    table = measure.statistics(measure.merge(parts), RES, OFFSET, image=True, float_image=True)
    values = image.astype(np.float64)
    for k, label in enumerate(table["label"]):
        mine = labels == label
        assert table["voxel_count"][k] == mine.sum()
        np.testing.assert_allclose(table["centroid_x"][k], (OFFSET[0] + np.nonzero(mine)[0].mean()) * RES[0],
                                   **EXACT)
        np.testing.assert_allclose([table["intensity_mean"][k], table["intensity_std"][k]],
                                   [values[mine].mean(), values[mine].std()], rtol=1e-9)
        assert table["intensity_min"][k] == values[mine].min()
        assert table["intensity_max"][k] == values[mine].max()
        assert table["intensity_median"][k] == np.median(values[mine])
    assert 0 not in table["label"]


def test_forge_checks_companion_layers(arrays, measured, tmp_path):
    from igneous_like.errors import UserError
    _, paths = measured
    other = write_layer(f"file://{tmp_path / 'shifted'}", arrays[1], "image", offset=(0, 0, 0), chunk=SHAPE)
    with pytest.raises(UserError, match="must match"):
        create_measure_tasks(paths["seg"], image=other)
    with pytest.raises(UserError, match="measure forge"):
        create_measure_merge_tasks(paths["image"])


def test_ring_layer_and_its_intensity(arrays, tmp_path):
    """`measure ring` on nuclei (128x128x64 of the real crop, 50x60x30 tasks, chunks 25x30x15):
    each background voxel within 100 nm of a nucleus carries the nearest nucleus's id (ties to the
    smallest id), as from one scipy distance transform per nucleus on the whole array; measured
    with --image, the ring's mean intensity is the image's mean there."""
    seg, image, nuclei = (np.asfortranarray(a[:128, :128, :64]) for a in arrays)
    res, width = np.array([16.0, 16.0, 40.0]), 100.0
    paths = {name: write_layer(f"file://{tmp_path / name}", data, kind, offset=OFFSET, chunk=(25, 30, 15))
             for name, data, kind in (("nuclei", nuclei, "segmentation"), ("image", image, "image"))}
    ring = f"file://{tmp_path / 'ring'}"
    run_cli("measure", "ring", paths["nuclei"], ring, "--width", width, "--shape", "50,60,30")
    got = CloudVolume(ring, progress=False)[:, :, :][..., 0]
    best, nearest = np.full(nuclei.shape, np.inf), np.zeros(nuclei.shape, np.uint32)
    for label in np.unique(nuclei[nuclei != 0]):  # increasing ids: a tie keeps the smaller one
        distance = ndimage.distance_transform_edt(nuclei != label, sampling=res)
        closer = distance < best
        best[closer], nearest[closer] = distance[closer], label
    expected = np.where((nuclei == 0) & (best <= width), nearest, 0)
    assert (expected != 0).sum() > 10_000 and len(np.unique(expected)) > 4
    np.testing.assert_array_equal(got, expected)
    run_locally(create_measure_tasks(ring, shape=(50, 60, 30), image=paths["image"]), parallel=1, quiet=True)
    run_locally(create_measure_merge_tasks(ring), parallel=1, quiet=True)
    export_measurements(ring, str(tmp_path / "ring.csv"), segment_properties=False)
    table = pd.read_csv(tmp_path / "ring.csv").set_index("label")
    for label, row in table.iterrows():
        np.testing.assert_allclose(row["intensity_mean"], image[expected == label].mean(), rtol=1e-12)


def test_batch_tables_equal_separate_runs_and_combine_with_layer(arrays, tmp_path):
    """`measure batch`: a group file layer (with --image) and a --layer one; each table equals its
    own forge/merge/export run at another task shape, and the combined table is their rows in group
    order with `layer` first. A bad layer stops the batch before it writes anything."""
    seg, image, nuclei = (a[:, :, 48:80] for a in arrays)
    paths = {name: write_layer(f"file://{tmp_path / name}", data, kind, offset=OFFSET, chunk=(64, 64, 32))
             for name, data, kind in (("seg", seg, "segmentation"), ("image", image, "image"),
                                      ("nuclei", nuclei, "segmentation"))}
    (tmp_path / "group.yaml").write_text(f"cells: {{seg: {paths['seg']}, image: {paths['image']}}}\n")
    out = tmp_path / "tables"
    run_cli("-p", "2", "measure", "batch", f"file://{out}", "--group", tmp_path / "group.yaml",
            "--layer", f"nuclei={paths['nuclei']}", "--shape", "90,100,20", "--no-segment-properties")
    batch = {name: pd.read_csv(out / f"{name}.csv") for name in ("cells", "nuclei")}
    assert "intensity_mean" in batch["cells"] and "intensity_mean" not in batch["nuclei"]
    for name, extra in (("cells", ["--image", paths["image"]]), ("nuclei", [])):
        layer = paths["seg" if name == "cells" else "nuclei"]
        run_cli("measure", "forge", layer, *extra, "--shape", "200,256,32")
        run_cli("measure", "merge", layer)
        run_cli("measure", "export", layer, tmp_path / f"{name}.csv", "--no-segment-properties")
        pd.testing.assert_frame_equal(batch[name], pd.read_csv(tmp_path / f"{name}.csv"), rtol=1e-12)
    combined = pd.read_csv(out / "combined.csv")
    assert list(combined.columns[:2]) == ["layer", "label"]
    assert len(combined) == len(batch["cells"]) + len(batch["nuclei"]) and len(batch["cells"]) > 3
    expected = pd.concat([t.assign(layer=n) for n, t in batch.items()], ignore_index=True)[combined.columns]
    pd.testing.assert_frame_equal(combined, expected, rtol=1e-12)

    gone = ["--layer", f"ok={paths['seg']}", "--layer", f"gone=file://{tmp_path}/none"]
    for args, message in [(["--layer", f"combined={paths['seg']}"], "must be a plain word"),
                          (gone, "layer gone:")]:
        result = run_cli("measure", "batch", f"file://{tmp_path}/bad", *args, check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr and not (tmp_path / "bad").exists(), result.stderr
