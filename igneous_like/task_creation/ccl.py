"""Connected components of a whole volume, in four steps that any number of workers share.

1. faces (create_ccl_face_tasks): each task labels its box with cc3d and stores the labels on
   the faces it shares with other tasks, plus its label counts.
2. links (create_ccl_equivalence_tasks): each task pairs the labels that touch across its low
   faces (and edges and corners, for 18- and 26-connectivity).
3. calc-labels (create_relabeling): one process unions every pair with an array-based
   union-find and plans consecutive final ids, dropping components under `dust_threshold` voxels.
4. relabel (create_ccl_relabel_tasks): each task labels its box again and writes final ids.

All steps must see the same labeling: the faces step records its options (mip, task shape,
thresholds, connectivity) under LAYER/KEY/ccl/ and later steps use them, refusing different
ones. `clean_ccl_files` deletes that directory.
"""
import logging
from functools import partial
from typing import Optional, Sequence

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Vec

from igneous_like import label_table

# threshold_image: Igneous's tasks.image.ccl offers it beside create_relabeling
from igneous_like.ccl import CONNECTIVITIES, kept_by_histogram, plan_numbering, threshold_image  # noqa: F401
from igneous_like.errors import UserError
from igneous_like.stage import WorkDir
from igneous_like.task_creation.common import (
    Grid,
    Tasks,
    check_encoding,
    check_vec,
    compression,
    csv,
    ints,
    new_layer_path,
    open_layer,
    record_provenance,
)
from igneous_like.task_creation.image import destination_info, open_destination
from igneous_like.tasks.ccl import (
    LABELS_FILE,
    PARAMS_FILE,
    RELABEL_TABLE,
    STARTS_TABLE,
    CCLEquivalenceTask,
    CCLFacesTask,
    CCLOptions,
    CCLRelabelTask,
    links_name,
    summary_name,
)

log = logging.getLogger(__name__)

DEFAULT_SHAPE = (512, 512, 512)
LABEL_DTYPES = "biuf"  # cc3d labels booleans, integers and floats (equal values connect)


def work_dir(cv: CloudVolume, mip: int) -> WorkDir:
    """Where the intermediate files of a labeling of this mip live."""
    return WorkDir.of(cv, mip, "ccl")


def check_source(cv: CloudVolume) -> None:
    if cv.num_channels != 1:
        raise UserError(f"{cv.cloudpath} has {cv.num_channels} channels; connected components need one")
    if np.dtype(cv.dtype).kind not in LABEL_DTYPES:
        raise UserError(f"cannot label {cv.dtype} data in {cv.cloudpath}")


def ccl_options(cv: CloudVolume, mip: int, shape: Sequence[int], connectivity: int, threshold_gte,
                threshold_lte, fill_missing: bool) -> CCLOptions:
    """Check the labeling's options against the layer; the task shape is cut to the volume."""
    if connectivity not in CONNECTIVITIES:
        raise UserError(f"--connectivity must be 6, 18 or 26, got {connectivity}")
    size = cv.meta.volume_size(mip)
    shape = Vec(*np.minimum(check_vec("--shape", shape), size))
    for name, value in (("--threshold-gte", threshold_gte), ("--threshold-lte", threshold_lte)):
        if value is not None and not isinstance(value, (int, float)):
            raise UserError(f"{name} must be a number, got {value!r}")
    opts = CCLOptions(offset=ints(cv.meta.voxel_offset(mip)), size=ints(size), shape=ints(shape),
                      connectivity=int(connectivity), threshold_gte=threshold_gte,
                      threshold_lte=threshold_lte, fill_missing=bool(fill_missing))
    if opts.num_tasks * opts.stride >= 2**64:
        raise UserError(f"{opts.num_tasks} tasks of {csv(shape)} voxels overflow 64-bit labels; "
                        "use a larger --shape")
    return opts


def task_grid(opts: CCLOptions, shape=None) -> Grid:
    bounds = opts.bounds
    return Grid.over(bounds, opts.shape if shape is None else shape)


def create_ccl_face_tasks(
    cloudpath: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE, threshold_gte=None,
    threshold_lte=None, fill_missing: bool = False, dust_threshold: int = 0, connectivity: int = 6,
) -> Tasks:
    """Step 1: tasks that label their boxes and store their shared faces.

    Components are those of each nonzero value (a segmentation), or, given a threshold, of the
    voxels with threshold_gte <= value <= threshold_lte. `dust_threshold` is recorded as the
    default for calc-labels. A labeling with other options replaces an earlier one's files.
    """
    cv = open_layer(cloudpath, mip)
    check_source(cv)
    check_dust(dust_threshold)
    opts = ccl_options(cv, mip, shape, connectivity, threshold_gte, threshold_lte, fill_missing)
    work = work_dir(cv, mip)
    recorded = work.load(PARAMS_FILE)
    if recorded is not None and CCLOptions.from_json(recorded["options"]) != opts:
        log.info("deleting the intermediate files of an earlier labeling with other options in %s", work.url)
        work.clean()
    work.save(PARAMS_FILE, {"layer": cv.cloudpath, "mip": mip, "dust": int(dust_threshold),
                            "options": opts.to_json()})
    work.files.delete([LABELS_FILE, RELABEL_TABLE, STARTS_TABLE])  # any numbering is stale now
    make = lambda box: partial(CCLFacesTask, layer_path=cv.cloudpath, mip=mip, work=work.url,
                               index=opts.index_of(box), options=opts.to_json())
    return Tasks(task_grid(opts), make, f"ccl faces of {cv.cloudpath} mip {mip}")


def check_dust(dust) -> None:
    if dust is not None and (int(dust) != dust or dust < 0):
        raise UserError(f"--dust must be a whole number of voxels, at least 0, got {dust}")


def recorded_labeling(cloudpath: str, mip: int, shape=None, threshold_gte=None, threshold_lte=None,
                      connectivity=None, fill_missing=None):
    """(layer, work dir, options, params) of the labeling the faces step recorded; any option given
    here must agree with it."""
    cv = open_layer(cloudpath, mip)
    work = work_dir(cv, mip)
    params = work.require(PARAMS_FILE, f"no connected-components faces for {cv.cloudpath} mip {mip}: run "
                                       f"`igneous-like image ccl faces {cv.cloudpath} --mip {mip}` first")
    opts = CCLOptions.from_json(params["options"])
    given = {"--shape": None if shape is None else ints(np.minimum(check_vec("--shape", shape), opts.size)),
             "--threshold-gte": threshold_gte, "--threshold-lte": threshold_lte,
             "--connectivity": connectivity, "--fill-missing": fill_missing}
    recorded = {"--shape": list(opts.shape), "--threshold-gte": opts.threshold_gte,
                "--threshold-lte": opts.threshold_lte, "--connectivity": opts.connectivity,
                "--fill-missing": opts.fill_missing}
    for name, value in given.items():
        if value is not None and value != recorded[name]:
            shown = csv(recorded[name]) if name == "--shape" else recorded[name]
            raise UserError(f"the faces step of {cv.cloudpath} mip {mip} ran with {name} {shown}; every "
                            f"step must use the same, so drop {name} or run faces again")
    return cv, work, opts, params


def create_ccl_equivalence_tasks(cloudpath: str, mip: int = 0, shape=None, threshold_gte=None,
                                 threshold_lte=None, fill_missing=None, dust_threshold: Optional[int] = None,
                                 connectivity=None) -> Tasks:
    """Step 2: tasks that link the labels touching across task faces; needs every faces task done.
    Options left None are the faces step's; a `dust_threshold` given here (Igneous passes it at
    every step) becomes calc-labels' default."""
    cv, work, opts, params = recorded_labeling(cloudpath, mip, shape, threshold_gte, threshold_lte,
                                               connectivity, fill_missing)
    check_dust(dust_threshold)
    if dust_threshold is not None and int(dust_threshold) != params.get("dust", 0):
        work.save(PARAMS_FILE, dict(params, dust=int(dust_threshold)))
    work.check_complete(summaries(opts), "faces tasks", prefix="summary/")
    make = lambda box: partial(CCLEquivalenceTask, work=work.url, index=opts.index_of(box),
                               options=opts.to_json())
    return Tasks(task_grid(opts), make, f"ccl links of {cv.cloudpath} mip {mip}")


def summaries(opts: CCLOptions) -> list:
    return [summary_name(index) for index in range(opts.num_tasks)]

def create_relabeling(cloudpath: str, mip: int = 0, shape=None, threshold_gte=None, threshold_lte=None,
                      fill_missing=None, dust_threshold: Optional[int] = None, connectivity=None) -> int:
    """Step 3, run here: union the links, plan consecutive ids, drop components under
    `dust_threshold` voxels (default: what the faces step recorded).

    Reads only the face-touching labels and links of each task, so memory grows with the area of
    the task faces. Writes the relabel and starts tables; returns the number of components kept.
    """
    cv, work, opts, params = recorded_labeling(cloudpath, mip, shape, threshold_gte, threshold_lte,
                                               connectivity, fill_missing)
    check_dust(dust_threshold)
    dust = int(params.get("dust", 0) if dust_threshold is None else dust_threshold)
    nodes, counts, tasks = [], [], []
    interior_kept = np.zeros(opts.num_tasks, dtype=np.uint64)
    for index, summary in enumerate(work.gather_arrays(summaries(opts), "faces tasks")):
        nodes.append(summary["face_labels"] + np.uint64(index * opts.stride))
        counts.append(summary["face_counts"])
        tasks.append(np.full(summary["face_labels"].size, index, dtype=np.int64))
        interior_kept[index] = kept_by_histogram(summary["sizes"], summary["frequency"], dust)
    links = list(work.gather_arrays([links_name(index) for index in range(opts.num_tasks)], "links tasks"))
    first = np.concatenate([np.zeros(0, np.uint64)] + [link["first"] for link in links])
    second = np.concatenate([np.zeros(0, np.uint64)] + [link["second"] for link in links])
    del links
    nodes = np.concatenate([np.zeros(0, np.uint64)] + nodes)
    finals, starts, total = plan_numbering(nodes, np.concatenate([np.zeros(0, np.uint64)] + counts),
                                           np.concatenate([np.zeros(0, np.int64)] + tasks), first, second,
                                           interior_kept, dust)
    label_table.write(f"{work.url}/{RELABEL_TABLE}", nodes, finals)
    label_table.write(f"{work.url}/{STARTS_TABLE}", np.arange(opts.num_tasks, dtype=np.uint64), starts)
    work.save(LABELS_FILE, {"dust": dust, "components": total, "face_labels": int(nodes.size),
                                 "links": int(first.size)})
    return total


def output_dtype(components: int, encoding: str) -> str:
    """The smallest unsigned type that holds every id (compressed_segmentation needs 32 bits)."""
    smallest = 8 if components < 2**8 else 16 if components < 2**16 else 32 if components < 2**32 else 64
    return f"uint{max(smallest, 32) if encoding == 'compressed_segmentation' else smallest}"


def default_encoding(cv: CloudVolume, mip: int) -> str:
    """Keep the source's encoding where labels fit it, else raw."""
    encoding = cv.meta.encoding(mip)
    return encoding if encoding in ("raw", "compressed_segmentation", "compresso", "crackle") else "raw"


def segmentation_info(cv: CloudVolume, mip: int, bounds, chunk_size, encoding: str, dtype: str) -> dict:
    """A new segmentation's info: the source's geometry cut to `bounds`, one channel of `dtype`."""
    info = destination_info(cv, mip, bounds, chunk_size, encoding)
    info.update(type="segmentation", data_type=dtype, num_channels=1)
    for scale in info["scales"]:  # the mips below stay empty, but must describe labels too
        scale["encoding"] = encoding
        if encoding == "compressed_segmentation":
            scale.setdefault("compressed_segmentation_block_size", [8, 8, 8])
    for key in ("mesh", "skeletons", "segment_properties"):
        info.pop(key, None)
    return info


def check_destination(src: str, dest: str, mip: int = 0, chunk_size: Optional[Sequence[int]] = None,
                      encoding: Optional[str] = None) -> None:
    """What relabel will check of DEST, for a run of every step (auto) before the first one writes:
    a new, writable path, or a segmentation of the same geometry (its data type follows the count
    of components, known only after calc-labels)."""
    cv = open_layer(src, mip)
    dest_path = new_layer_path(cv.cloudpath, dest, "relabel into a new path")
    encoding = encoding or default_encoding(cv, mip)
    check_encoding(encoding, "segmentation", "uint64")
    chunk_size = None if chunk_size is None else check_vec("--chunk-size", chunk_size)
    info = segmentation_info(cv, mip, cv.meta.bounds(mip), chunk_size, encoding, "uint64")
    open_destination(dest_path, info, mip, layer_keys=("num_channels", "type"))


def relabel_shape(opts: CCLOptions, chunk: Vec) -> Vec:
    """Relabel boxes: the task shape rounded up to whole destination chunks (or the volume)."""
    shape = [s if s >= n else -(-s // c) * c for s, c, n in zip(opts.shape, chunk, opts.size)]
    return Vec(*shape)


def create_ccl_relabel_tasks(
    src_path: str, dest_path: str, mip: int = 0, shape=None, chunk_size: Optional[Sequence[int]] = None,
    encoding: Optional[str] = None, threshold_gte=None, threshold_lte=None, fill_missing=None,
    dust_threshold: Optional[int] = None, connectivity=None, compress: Optional[str] = "gzip",
) -> Tasks:
    """Step 4: tasks that write the final labels (1..N, 0 background) into a new segmentation DEST.

    Each task writes whole chunks of DEST. Where the task shape is not a multiple of the chunk
    size, a task labels every faces box it overlaps, so aligned shapes are cheaper.
    """
    cv, work, opts, _ = recorded_labeling(src_path, mip, shape, threshold_gte, threshold_lte, connectivity,
                                          fill_missing)
    numbering = work.require(LABELS_FILE, f"no numbering for {cv.cloudpath} mip {mip}: run `igneous-like "
                                          f"image ccl calc-labels {cv.cloudpath} --mip {mip}` first")
    check_dust(dust_threshold)
    if dust_threshold is not None and int(dust_threshold) != numbering["dust"]:
        raise UserError(f"calc-labels ran with --dust {numbering['dust']}; relabel with the same, or "
                        "run calc-labels again")
    dest_path = new_layer_path(cv.cloudpath, dest_path, "relabel into a new path")
    encoding = encoding or default_encoding(cv, mip)
    dtype = output_dtype(numbering["components"], encoding)
    check_encoding(encoding, "segmentation", dtype)
    chunk_size = None if chunk_size is None else check_vec("--chunk-size", chunk_size)
    info = segmentation_info(cv, mip, opts.bounds, chunk_size, encoding, dtype)
    out = open_destination(dest_path, info, mip)
    out.commit_info()
    record_provenance(out, {"task": "CCLRelabelTask", "src": cv.cloudpath, "mip": mip,
                            "dust": numbering["dust"], "components": numbering["components"],
                            **opts.to_json()})
    compress = compression(compress)
    boxes = relabel_shape(opts, out.meta.chunk_size(mip))
    make = lambda box: partial(CCLRelabelTask, src_path=cv.cloudpath, dest_path=out.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), work=work.url,
                               options=opts.to_json(), dust=numbering["dust"], compress=compress)
    return Tasks(task_grid(opts, boxes), make, f"ccl relabel {cv.cloudpath} mip {mip} into {out.cloudpath}",
                 mips=range(mip, mip + 1))


def clean_ccl_files(cloudpath: str, mip: int = 0) -> int:
    """Delete the intermediate files of a labeling (LAYER/KEY/ccl/); returns how many there were."""
    return work_dir(open_layer(cloudpath, mip), mip).clean()
