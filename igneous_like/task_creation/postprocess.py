"""Post-processing of a whole segmentation: global dust removal and hole filling.

Dust removal reads the whole-volume voxel counts of `image voxels count` + `sum`. Hole filling
runs in steps (see igneous_like.postprocess and igneous_like.tasks.postprocess): the
background's connected components (the CCL steps, thresholded at 0, 6-connected), a survey of
every block, a plan made here from the surveys, and the filling tasks.
"""
from functools import partial
from typing import Optional, Sequence, Tuple

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.lib import Vec

from igneous_like import label_table, postprocess
from igneous_like.errors import UserError
from igneous_like.grid import Grid
from igneous_like.stage import WorkDir
from igneous_like.task_creation import ccl as ccl_steps
from igneous_like.task_creation.common import (
    Tasks,
    check_vec,
    compression,
    ints,
    new_layer_path,
    open_layer,
    record_provenance,
)
from igneous_like.task_creation.image import destination_info, open_destination
from igneous_like.tasks.postprocess import HOLES_TABLE, DustTask, FillHolesTask, HoleSurveyTask, survey_name

DEFAULT_SHAPE = (512, 512, 512)
PARAMS = "params.json"


def source(cloudpath: str, mip: int, shape: Sequence[int]) -> Tuple[CloudVolume, Grid]:
    """The segmentation and its grid of boxes of `shape` rounded up to whole chunks."""
    cv = open_layer(cloudpath, mip)
    if cv.num_channels != 1 or np.dtype(cv.dtype).kind != "u":
        raise UserError(f"post-processing needs one channel of unsigned integer labels; {cv.cloudpath} has "
                        f"{cv.num_channels} channel(s) of {cv.dtype}")
    bounds, chunk = cv.meta.bounds(mip), cv.meta.chunk_size(mip)
    shape = check_vec("--shape", shape)
    shape = Vec(*[min(-(-s // c) * c, n) for s, c, n in zip(shape, chunk, bounds.size3())])
    return cv, Grid.over(bounds, shape)


def open_output(cv: CloudVolume, dest: str, mip: int) -> CloudVolume:
    """DEST with the source's geometry at `mip`, checked (a new path, writable, no other layer
    there) but not yet written."""
    path = new_layer_path(cv.cloudpath, dest)
    info = destination_info(cv, mip, cv.meta.bounds(mip), None, None)
    for key in ("mesh", "skeletons", "segment_properties"):
        info.pop(key, None)
    return open_destination(path, info, mip)


def check_output(src: str, dest: str, mip: int = 0) -> None:
    """What writing DEST will check, for jobs whose earlier steps run first (fill-holes)."""
    open_output(open_layer(src, mip), dest, mip)


def destination(cv: CloudVolume, dest: str, mip: int, method: dict) -> CloudVolume:
    """DEST with the source's geometry at `mip`, its info written and the step recorded."""
    out = open_output(cv, dest, mip)
    out.commit_info()
    record_provenance(out, dict(method, src=cv.cloudpath, mip=mip))
    return out


def box_tasks(grid: Grid, task, description: str, **params) -> Tasks:
    make = lambda box: partial(task, offset=ints(box.minpt), shape=ints(box.size3()), **params)
    return Tasks(grid, make, description)


def create_dust_tasks(src: str, dest: str, min_size: int, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                      compress: Optional[str] = "gzip") -> Tasks:
    """Tasks that copy SRC to DEST without the objects of fewer than `min_size` voxels overall."""
    cv, grid = source(src, mip, shape)
    if min_size < 0:
        raise UserError(f"--min-size must be at least 0, got {min_size}")
    counts = label_table.voxel_counts_url(cv, mip)
    if not CloudFiles(counts.rsplit("/", 1)[0]).exists(counts.rsplit("/", 1)[1]):
        raise UserError(f"no voxel counts for {cv.cloudpath} mip {mip}: run `igneous-like image voxels count "
                        f"{cv.cloudpath} --mip {mip}` and then `image voxels sum` first")
    out = destination(cv, dest, mip, {"task": "DustTask", "min_size": int(min_size)})
    return box_tasks(grid, DustTask, f"dust below {min_size} voxels from {cv.cloudpath} into {out.cloudpath}",
                     src_path=cv.cloudpath, dest_path=out.cloudpath, mip=mip, counts=counts,
                     min_size=int(min_size), compress=compression(compress))


def work_dir(cv: CloudVolume, mip: int) -> WorkDir:
    """SRC/KEY/fill_holes: the background labeling, surveys and hole table."""
    return WorkDir.of(cv, mip, "fill_holes")


def create_background_relabel_tasks(src: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE) -> Tasks:
    """The background's connected components (after the ccl faces, links and calc-labels steps with
    threshold_lte=0, 6-connected) written as WORK/background, which the survey reads."""
    cv, _ = source(src, mip, shape)
    return ccl_steps.create_ccl_relabel_tasks(cv.cloudpath, f"{work_dir(cv, mip).url}/background", mip=mip,
                                              shape=list(shape), threshold_lte=0, connectivity=6,
                                              fill_missing=False, encoding="raw")


def create_hole_survey_tasks(src: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE) -> Tasks:
    """Tasks that survey each block's background components (after create_background_relabel_tasks)."""
    cv, grid = source(src, mip, shape)
    work = work_dir(cv, mip)
    work.clean("survey/")
    work.save(PARAMS, {"shape": ints(grid.shape)})
    return box_tasks(grid, HoleSurveyTask, f"survey the background of {cv.cloudpath}", src_path=cv.cloudpath,
                     work=work.url, mip=mip)


def plan_hole_filling(src: str, max_hole_size: int, mip: int = 0) -> int:
    """Merge every survey here and write the hole table; returns how many holes will be filled."""
    cv = open_layer(src, mip)
    work = work_dir(cv, mip)
    params = work.require(PARAMS, f"no hole survey of {cv.cloudpath} mip {mip}: run `igneous-like "
                                  f"postprocess fill-holes {cv.cloudpath} DEST` (it runs every step)")
    _, grid = source(src, mip, params["shape"])
    parts = {key: [] for key in ("ids", "counts", "edge", "first", "second")}
    for arrays in work.gather_arrays([survey_name(box) for box in grid], "hole survey tasks"):
        for key in parts:
            parts[key].append(arrays[key])
    joined = {key: np.concatenate(value or [np.zeros(0, np.uint64)]) for key, value in parts.items()}
    holes, fills = postprocess.plan_fills((joined["ids"], joined["counts"]), joined["edge"],
                                          (joined["first"], joined["second"]), max_hole_size)
    label_table.write(f"{work.url}/{HOLES_TABLE}", holes, fills)
    return int(holes.size)


def create_fill_holes_tasks(src: str, dest: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                            compress: Optional[str] = "gzip") -> Tasks:
    """Tasks that write DEST: SRC with every planned hole filled."""
    cv, grid = source(src, mip, shape)
    work = work_dir(cv, mip)
    if not work.files.exists(HOLES_TABLE):
        raise UserError(f"no hole plan for {cv.cloudpath} mip {mip}: run `igneous-like postprocess "
                        f"fill-holes {cv.cloudpath} DEST` (it runs every step)")
    out = destination(cv, dest, mip, {"task": "FillHolesTask"})
    return box_tasks(grid, FillHolesTask, f"fill holes of {cv.cloudpath} into {out.cloudpath}",
                     src_path=cv.cloudpath, dest_path=out.cloudpath, work=work.url, mip=mip,
                     compress=compression(compress))


def clean_fill_holes_files(src: str, mip: int = 0) -> int:
    """Delete SRC/KEY/fill_holes/ (background labeling, surveys, plan); returns how many files."""
    return work_dir(open_layer(src, mip), mip).clean()
