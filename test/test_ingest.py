"""`image create`: every source format goes in through the CLI in several tasks, equal voxel for
voxel to the source (read back with CloudVolume and with TensorStore); then, from the CLI, the new
layer is downsampled (checked against tinybrain) and segmentations are meshed and skeletonized.
Bad input is refused in one line, before anything is written; a task holds only its own box."""
import tracemalloc

import cc3d
import numpy as np
import pytest
import tinybrain
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from conftest import read_mip, run_cli, tensorstore_read

from igneous_like import sources
from igneous_like.errors import UserError
from igneous_like.task_creation import create_ingest_tasks

OFFSET = (10, 20, 5)
CHUNK, SHAPE = "32,32,16", "64,64,16"  # 2x2x3 tasks for the 100x90x40 crop
SKELETON_DUST = 1000


def write_tiff(path, vol):
    import tifffile
    tifffile.imwrite(path / "stack.tif", vol.transpose(2, 1, 0))  # pages are z
    return path / "stack.tif", []


def write_tiff_folder(path, vol):
    import tifffile
    (path / "slices").mkdir()
    for z in range(vol.shape[2]):  # slice2 must come before slice10: names sort as numbers
        tifffile.imwrite(path / "slices" / f"slice{z}.tif", vol[:, :, z].T)
    return path / "slices", []


def write_nrrd(path, vol, encoding="raw", endian="little"):
    import nrrd
    nrrd.write(str(path / "vol.nrrd"), vol, {"encoding": encoding, "endian": endian})  # x first
    return path / "vol.nrrd", []


def write_tensorstore(path, vol, driver):
    import tensorstore as ts
    data = vol if driver == "n5" else vol.transpose(2, 1, 0)  # zarr: z,y,x (OME-Zarr); N5: x,y,z
    store = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": str(path / f"vol.{driver}")},
                     "create": True, "dtype": data.dtype.name,
                     "schema": {"domain": {"shape": list(data.shape)},
                                "chunk_layout": {"chunk": {"shape": [16] * 3}}}}).result()
    store.write(data).result()
    return path / f"vol.{driver}", []


def write_hdf5(path, vol):
    import h5py
    with h5py.File(path / "vol.h5", "w") as handle:
        handle["em/raw"] = vol  # x first
        handle["em/other"] = np.zeros(3)
    return path / "vol.h5", ["--dataset", "em/raw"]


def write_nifti(path, vol):
    import nibabel
    nibabel.save(nibabel.Nifti1Image(vol, np.eye(4)), path / "vol.nii.gz")
    return path / "vol.nii.gz", []


def write_crackle(path, vol):
    import crackle
    crackle.save(vol, str(path / "vol.ckl.gz"))  # x first
    return path / "vol.ckl.gz", []


def write_npy(path, vol):
    np.save(path / "vol.npy", vol)  # x first, C order
    return path / "vol.npy", []


FORMATS = {  # name: (writer, layer type, dtype)
    "tiff": (write_tiff, "segmentation", np.uint32),
    "tiff-folder": (write_tiff_folder, "segmentation", np.uint32),
    "nrrd-raw": (write_nrrd, "segmentation", np.uint32),
    "zarr": (lambda path, vol: write_tensorstore(path, vol, "zarr"), "segmentation", np.uint32),
    "npy": (write_npy, "segmentation", np.uint64),
    "crackle": (write_crackle, "segmentation", np.uint32),
    "nrrd-gzip": (lambda path, vol: write_nrrd(path, vol, "gzip", "big"), "image", np.uint16),
    "zarr3": (lambda path, vol: write_tensorstore(path, vol, "zarr3"), "image", np.uint16),
    "n5": (lambda path, vol: write_tensorstore(path, vol, "n5"), "image", np.uint8),
    "hdf5": (write_hdf5, "image", np.float32),
    "nifti": (write_nifti, "image", np.uint8),
}


@pytest.fixture(scope="module")
def seg_crop(real_seg):
    return np.asfortranarray(real_seg[200:300, 150:240, 100:140])


@pytest.fixture(scope="module")
def image_crop(real_image):
    return np.asfortranarray(real_image[200:300, 150:240, 100:140])


def steps(name, src, dest, layer_type, extra):
    """The CLI command lines of one format's job: ingest, one mip of downsampling, and for labels
    legacy meshes and skeletons."""
    lines = [f"image create {src} {dest} --layer-type {layer_type} --resolution 16,16,40 "
             f"--offset {','.join(map(str, OFFSET))} --chunk-size {CHUNK} --shape {SHAPE} --compress none "
             + " ".join(extra),
             f"image downsample {dest} --num-mips 1 --compress none"]
    if layer_type == "segmentation":
        lines += [f"mesh forge {dest} --shape 128,128,64", f"mesh merge {dest}",
                  f"skeleton forge {dest} --shape 128,128,64 --dust-threshold {SKELETON_DUST}",
                  f"skeleton merge {dest} --dust-threshold 0 --tick-threshold 0"]
    return [f"  - name: {name}-{number}\n    run: {line}\n" for number, line in enumerate(lines)]


def source_data(name, seg_crop, image_crop):
    _, layer_type, dtype = FORMATS[name]
    vol = (seg_crop if layer_type == "segmentation" else image_crop).astype(dtype)
    return vol / np.float32(7) if dtype == np.float32 else vol


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, seg_crop, image_crop):
    """Every format's source, and one pipeline file of CLI steps that ingests each and goes on
    (one run: one process start-up for the lot), run; returns the folder."""
    root = tmp_path_factory.mktemp("ingest")
    body = []
    for name, (writer, layer_type, _) in FORMATS.items():
        (root / name).mkdir()
        src, extra = writer(root / name, source_data(name, seg_crop, image_crop))
        body += steps(name, src, f"file://{root / name}/layer", layer_type, extra)
    (root / "job.yaml").write_text("steps:\n" + "".join(body))
    run_cli("pipeline", "run", root / "job.yaml")
    return root


def reference_mip1(vol, layer_type):
    vol = np.asfortranarray(vol)
    if layer_type == "segmentation":
        return tinybrain.downsample_segmentation(vol, (2, 2, 1), num_mips=1)[0]
    return tinybrain.downsample_with_averaging(vol, (2, 2, 1), num_mips=1)[0]


def skeleton_labels_expected(vol) -> set:
    """Labels with a 26-connected piece of more than SKELETON_DUST voxels (what forge keeps)."""
    pieces = cc3d.connected_components(vol, connectivity=26)
    piece_ids, first, counts = np.unique(pieces, return_index=True, return_counts=True)
    owners = vol.ravel()[first[(counts > SKELETON_DUST) & (piece_ids != 0)]]
    return set(owners.tolist()) - {0}


@pytest.mark.parametrize("name", FORMATS)
def test_create_then_downsample_mesh_skeletonize(ingested, name, seg_crop, image_crop):
    _, layer_type, dtype = FORMATS[name]
    vol = source_data(name, seg_crop, image_crop)
    dest = f"file://{ingested / name}/layer"
    cv = CloudVolume(dest, progress=False)
    assert cv.dtype == np.dtype(dtype).name and cv.layer_type == layer_type
    assert tuple(cv.meta.voxel_offset(0)) == OFFSET and tuple(cv.meta.chunk_size(0)) == (32, 32, 16)
    for got in (read_mip(dest, 0), tensorstore_read(dest, 0)):
        assert got.dtype == vol.dtype and got.shape == vol.shape and np.array_equal(got, vol)
    assert np.array_equal(read_mip(dest, 1), reference_mip1(vol, layer_type))
    assert np.array_equal(tensorstore_read(dest, 1), reference_mip1(vol, layer_type))
    if layer_type != "segmentation":
        return
    labels = set(np.unique(vol).tolist()) - {0}
    manifests = [n for n in CloudFiles(f"{dest}/{cv.info['mesh']}").list() if n.endswith(":0")]
    assert {int(n.split(":")[0]) for n in manifests} == labels
    skeletons = {int(n) for n in CloudFiles(f"{dest}/{cv.info['skeletons']}").list() if n.isdigit()}
    assert skeletons == skeleton_labels_expected(vol)


def test_axes_option_reads_the_other_order(tmp_path, image_crop):
    np.save(tmp_path / "zyx.npy", image_crop.transpose(2, 1, 0))
    dest = f"file://{tmp_path}/layer"
    run_cli("image", "create", tmp_path / "zyx.npy", dest, "--axes", "zyx", "--chunk-size", CHUNK,
            "--shape", SHAPE, "--compress", "none", "--seg")
    assert CloudVolume(dest).layer_type == "segmentation"
    assert np.array_equal(read_mip(dest, 0), image_crop)


def test_tasks_go_through_a_queue(tmp_path, image_crop):
    write_tiff(tmp_path, image_crop)
    dest, queue = f"file://{tmp_path}/layer", f"fq://{tmp_path}/queue"
    enqueued = run_cli("image", "create", tmp_path / "stack.tif", dest, "--chunk-size", CHUNK,
                       "--shape", SHAPE, "--queue", queue)
    assert "Enqueued 12 tasks" in enqueued.stderr
    run_cli("-p", "2", "execute", "-x", queue)
    assert np.array_equal(read_mip(dest, 0), image_crop)


def test_default_task_shape_is_whole_planes_within_memory(tmp_path):
    np.save(tmp_path / "vol.npy", np.zeros((300, 200, 40), np.uint16))
    dest = f"file://{tmp_path}/layer"
    tasks = create_ingest_tasks(str(tmp_path / "vol.npy"), dest, chunk_size=(64, 64, 16))
    assert len(tasks) == 3 and [t.keywords["shape"] for t in tasks][0] == [300, 200, 16]
    small = create_ingest_tasks(str(tmp_path / "vol.npy"), dest, chunk_size=(64, 64, 16),
                                memory_target=64 * 64 * 16 * 2 * 3 * 4)
    assert {tuple(t.keywords["shape"][2:]) for t in small} == {(16,), (8,)}
    assert max(np.prod(t.keywords["shape"]) for t in small) <= 2 * 64 * 2 * 64 * 16


def bad_sources(tmp_path):
    """case -> (make the source, keyword arguments, part of the message)."""
    import tifffile
    npy = tmp_path / "v.npy"

    def mixed(shapes, dtypes):
        (tmp_path / "slices").mkdir()
        for z, (shape, dtype) in enumerate(zip(shapes, dtypes)):
            tifffile.imwrite(tmp_path / "slices" / f"s{z}.tif", np.zeros(shape, dtype))
        return tmp_path / "slices"

    def save(array):
        np.save(npy, array)
        return npy

    seg = {"layer_type": "segmentation"}
    return {
        "missing": (lambda: tmp_path / "nothing.npy", {}, "does not exist"),
        "extension": (lambda: tmp_path / "vol.png" if (tmp_path / "vol.png").touch() is None else None, {},
                      "unsupported file type"),
        "4-D": (lambda: save(np.zeros((4, 4, 4, 2), np.uint8)), {}, "is 4-D"),
        "float64": (lambda: save(np.zeros((4, 4, 4))), {}, "float64, which Neuroglancer cannot show"),
        "bool": (lambda: save(np.zeros((4, 4, 4), bool)), {}, "bool, which Neuroglancer cannot show"),
        "float labels": (lambda: save(np.zeros((4, 4, 4), np.float32)), seg, "unsigned integer labels"),
        "slice shapes": (lambda: mixed([(8, 8), (8, 9)], [np.uint8] * 2), {}, "one shape and type"),
        "slice types": (lambda: mixed([(8, 8)] * 2, [np.uint8, np.uint16]), {}, "one shape and type"),
        "hdf5 dataset": (lambda: write_hdf5(tmp_path, np.zeros((4, 4, 4), np.uint8))[0], {},
                         "2 datasets (em/other, em/raw); choose one with --dataset"),
        "nrrd encoding": (lambda: write_nrrd(tmp_path, np.zeros((4, 4, 4), np.uint8), "ascii")[0], {},
                          "encoding 'ascii'"),
        "jpeg labels": (lambda: save(np.zeros((4, 4, 4), np.uint32)), dict(seg, encoding="jpeg"), "lossy"),
        "unaligned shape": (lambda: save(np.zeros((64, 64, 64), np.uint8)),
                            {"chunk_size": (32, 32, 32), "shape": (48, 32, 32)}, "multiple of 32,32,32"),
    }


CASES = ["missing", "extension", "4-D", "float64", "bool", "float labels", "slice shapes", "slice types",
         "hdf5 dataset", "nrrd encoding", "jpeg labels", "unaligned shape"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_before_writing(tmp_path, case):
    make, kwargs, message = bad_sources(tmp_path)[case]
    src, dest = make(), tmp_path / "layer"
    if case in ("missing", "slice types"):  # through the CLI: one line, exit 2
        result = run_cli("image", "create", src, f"file://{dest}", check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    else:
        with pytest.raises(UserError) as refusal:
            create_ingest_tasks(str(src), f"file://{dest}", **kwargs)
        assert message in str(refusal.value)
    assert not dest.exists()


def test_an_existing_layer_of_other_geometry_is_refused(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((64, 64, 32), np.uint8))
    dest = f"file://{tmp_path}/layer"
    create_ingest_tasks(str(tmp_path / "v.npy"), dest, chunk_size=(32, 32, 32))
    create_ingest_tasks(str(tmp_path / "v.npy"), dest, chunk_size=(32, 32, 32))  # the same again: a rerun
    before = sorted(p.name for p in (tmp_path / "layer").iterdir())
    with pytest.raises(UserError, match="already holds a layer whose chunk_sizes differ"):
        create_ingest_tasks(str(tmp_path / "v.npy"), dest, chunk_size=(64, 64, 32))
    with pytest.raises(UserError, match="already holds a layer whose resolution differ"):
        create_ingest_tasks(str(tmp_path / "v.npy"), dest, chunk_size=(32, 32, 32), resolution=(4, 4, 40))
    assert sorted(p.name for p in (tmp_path / "layer").iterdir()) == before


@pytest.mark.parametrize("name", ["tiff", "tiff-folder", "nrrd-raw", "nrrd-gzip", "npy", "nifti"])
def test_a_task_holds_only_its_box(tmp_path, name):
    """Reading one eighth of the volume allocates far less than the whole source."""
    vol = np.asfortranarray(np.random.default_rng(0).integers(0, 255, (128, 128, 128), dtype=np.uint8))
    src, extra = FORMATS[name][0](tmp_path, vol)
    kind = sources.source_format(str(src))
    dataset = extra[1] if extra else None
    tracemalloc.start()
    try:
        with sources.open_source(str(src), kind, dataset) as source:
            box = source.read((64, 0, 64), (128, 64, 128))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(box, vol[64:, :64, 64:])
    assert peak < vol.nbytes / 3, f"{peak} bytes for a box of {box.nbytes}"
