"""Contrast normalization and CLAHE of image stacks, slice by slice (igneous_like.contrast).

1. histogram (create_histogram_tasks): each task counts the grey levels of each z slice of its
   box into SRC/KEY/contrast/parts/; then (create_levels_tasks) one task per row of boxes sums
   them into SRC/KEY/contrast/levels/, every slice's whole histogram.
2. equalize (create_contrast_normalization_tasks): each task stretches a box of DEST between its
   slices' clip levels. Any number of equalizations (other --clip-fraction) reuse step 1.
clahe (create_clahe_tasks) equalizes whole slices in tasks that span x and y.
"""
from functools import partial
from typing import List, Optional, Sequence

import numpy as np
from cloudvolume import CloudVolume

from igneous_like.contrast import LEVELS
from igneous_like.errors import UserError
from igneous_like.stage import WorkDir
from igneous_like.task_creation.common import (
    Stage,
    Tasks,
    check_vec,
    chunk_grid,
    compression,
    csv,
    ints,
    new_layer_path,
    open_layer,
    restrict_bounds,
    whole_chunks,
)
from igneous_like.task_creation.edit import new_copy
from igneous_like.task_creation.image import region_at
from igneous_like.tasks.contrast import (
    RECORD,
    ClaheTask,
    ContrastTask,
    HistogramTask,
    LevelsTask,
    levels_name,
    part_name,
    row_boxes,
    slice_rows,
)

DEFAULT_SHAPE = (512, 512, 64)


def work_dir(cv: CloudVolume, mip: int) -> WorkDir:
    """SRC/KEY/contrast: where the histogram parts and each slice's levels live."""
    return WorkDir.of(cv, mip, "contrast")


def open_image(path: str, mip: int, histogram: bool = True) -> CloudVolume:
    """The source: one channel of uint8 or uint16 grey levels (the types with histograms)."""
    cv = open_layer(path, mip)
    if cv.num_channels != 1 or (histogram and np.dtype(cv.dtype).name not in LEVELS) \
            or np.dtype(cv.dtype).kind != "u":
        raise UserError(f"contrast works on one channel of uint8 or uint16 grey levels; {cv.cloudpath} has "
                        f"{cv.num_channels} channel(s) of {cv.dtype}")
    return cv


def create_histogram_tasks(layer_path: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                           fill_missing: bool = False) -> Tasks:
    """Step 1: tasks that count each slice's grey levels in a box; then the levels tasks."""
    cv = open_image(layer_path, mip)
    grid = chunk_grid(cv, mip, shape)
    bounds, shape = grid.clip, grid.shape
    work = work_dir(cv, mip)
    work.clean()
    work.save(RECORD, {"mip": mip, "bounds": [ints(bounds.minpt), ints(bounds.maxpt)], "shape": ints(shape),
                       "dtype": np.dtype(cv.dtype).name})
    make = lambda box: partial(HistogramTask, layer_path=cv.cloudpath, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), work=work.url, fill_missing=fill_missing)
    then = (Stage("create_levels_tasks", {"layer_path": cv.cloudpath, "mip": mip}, "levels"),)
    return Tasks(grid, make, f"grey-level counts of {cv.cloudpath}", then=then)


def recorded(cv: CloudVolume, mip: int) -> dict:
    """The histogram step's record, or what to run first."""
    record = work_dir(cv, mip).load(RECORD)
    if record is None or record.get("dtype") != np.dtype(cv.dtype).name:
        raise UserError(f"no grey-level histograms of {cv.cloudpath} mip {mip}: run `igneous-like image "
                        f"contrast histogram {cv.cloudpath} --mip {mip}` first")
    return record


def create_levels_tasks(layer_path: str, mip: int = 0) -> Tasks:
    """Step 1b: one task per row of histogram boxes sums their counts per slice."""
    cv = open_image(layer_path, mip)
    work = work_dir(cv, mip)
    make = lambda row: partial(LevelsTask, work=work.url, z_start=row[0], z_stop=row[1])
    return Tasks(slice_rows(recorded(cv, mip)), make, f"slice histograms of {cv.cloudpath}")


def create_luminance_levels_tasks(layer_path: str, levels_path: Optional[str] = None,
                                  coverage_factor: float = 0.01, shape: Optional[Sequence[int]] = None,
                                  offset: Optional[Sequence[int]] = None, mip: int = 0, bounds_mip: int = 0,
                                  bounds=None) -> Tasks:
    """Igneous's name and keywords for step 1: every voxel of every slice is counted, so
    `coverage_factor` (Igneous's sampling) and `offset` change nothing; levels live in the layer's
    work folder, so `levels_path` and `bounds` are refused."""
    if levels_path is not None or bounds is not None:
        raise UserError("levels_path and bounds are not supported: levels cover the whole layer and are kept "
                        "beside it")
    return create_histogram_tasks(layer_path, mip, DEFAULT_SHAPE if shape is None else shape)


def sum_missing_levels(work: WorkDir, record: dict) -> None:
    """Run the levels step here for the rows whose histogram boxes are all counted but not summed."""
    for z_start, z_stop in slice_rows(record):
        name = levels_name(z_start, z_stop)
        if work.missing([name], prefix="levels/") and not work.missing(
                [part_name(box) for box in row_boxes(record, z_start, z_stop)], prefix="parts/"):
            LevelsTask(work=work.url, z_start=z_start, z_stop=z_stop)


def create_contrast_normalization_tasks(src_path: str, dest_path: str, levels_path: Optional[str] = None,
                                        shape: Optional[Sequence[int]] = None, mip: int = 0,
                                        clip_fraction: float = 0.01, fill_missing: bool = False,
                                        translate: Sequence[int] = (0, 0, 0), minval: Optional[int] = None,
                                        maxval: Optional[int] = None, bounds=None, bounds_mip: int = 0,
                                        encoding: Optional[str] = None,
                                        compress: Optional[str] = "gzip") -> Tasks:
    """Step 2: tasks that write DEST, each slice stretched between the levels that clip
    `clip_fraction` of its voxels at either end (or fixed levels `minval`, `maxval`). Igneous's
    keywords; levels_path, bounds and a translation are refused. Slice levels not summed yet
    (Igneous's levels tasks do that, our histogram step's `then` stage too) are summed here first."""
    if levels_path is not None or bounds is not None or any(translate):
        raise UserError("levels_path, bounds and translate are not supported: the whole layer is normalized "
                        "in place of its own levels")
    shape = DEFAULT_SHAPE if shape is None else shape
    src = open_image(src_path, mip)
    path = new_layer_path(src.cloudpath, dest_path)
    if not 0 <= clip_fraction < 0.5:
        raise UserError(f"--clip-fraction must lie in [0, 0.5), got {clip_fraction}")
    top = np.iinfo(src.dtype).max
    if any(v is not None and not 0 <= v <= top for v in (minval, maxval)) or \
            (None not in (minval, maxval) and minval >= maxval):
        raise UserError(f"--minval and --maxval must lie in 0..{top} ({src.dtype}), the first below the "
                        f"second; got {minval} and {maxval}")
    work = work_dir(src, mip)
    record = recorded(src, mip)
    sum_missing_levels(work, record)
    work.check_complete([levels_name(*row) for row in slice_rows(record)], "levels tasks",
                        f"run `igneous-like image contrast histogram {src.cloudpath} --mip {mip}` to the end",
                        prefix="levels/")
    out = new_copy(src, path, mip, encoding, {"task": "ContrastTask", "src": src.cloudpath, "mip": mip,
                                               "clip_fraction": clip_fraction, "minval": minval,
                                               "maxval": maxval})
    compress = compression(compress)
    make = lambda box: partial(ContrastTask, src_path=src.cloudpath, dest_path=out.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), work=work.url,
                               clip_fraction=float(clip_fraction), fill_missing=fill_missing,
                               compress=compress, minval=minval, maxval=maxval)
    return Tasks(chunk_grid(out, mip, shape), make,
                 f"contrast of {src.cloudpath} normalized into {out.cloudpath}", mips=range(mip, mip + 1))


def clahe_kernel(slice_size: Sequence[int], tile_grid_size: Sequence[int],
                 kernel_size: Optional[int]) -> List[int]:
    """CLAHE's tile in voxels (x, y): `kernel_size` where given, else the slice cut into
    `tile_grid_size` tiles along x and y (scikit-image's default kernel is the 8,8 grid's)."""
    if kernel_size is not None:
        return [int(kernel_size)] * 2
    return [max(int(size) // int(tiles), 1) for size, tiles in zip(slice_size, tile_grid_size)]


def create_clahe_tasks(src: str, dest: str, shape: Optional[Sequence[int]] = None, mip: int = 0,
                       fill_missing: bool = False, bounds=None, bounds_mip: int = 0, clip_limit: float = 40.0,
                       tile_grid_size: Sequence[int] = (8, 8), kernel_size: Optional[int] = None,
                       nbins: int = 256, depth: Optional[int] = None, encoding: Optional[str] = None,
                       compress: Optional[str] = "gzip", ranges: Optional[Sequence] = None) -> Tasks:
    """Tasks that write DEST, each of `depth` whole slices (default: `shape`'s z, else one chunk)
    equalized by scikit-image's CLAHE. Igneous's keywords and meanings: `clip_limit` is OpenCV's, a
    multiple of a tile's mean count per grey-level bin (scikit-image's clip_limit * nbins), and
    `tile_grid_size` the tiles across a slice in x and y; a task spans whole slices of the region, so
    `shape`'s x and y change nothing. `bounds` (voxels of `bounds_mip`, rounded out to whole chunks)
    limit the region, as do `ranges` ((start, end) or None per axis, voxels of `mip`: the CLI's
    form): its slices are equalized as images of their own, and DEST (the source's geometry, as
    Igneous's) gets only the region's chunks."""
    source = open_image(src, mip, histogram=False)
    region = whole_chunks(source, mip, restrict_bounds(region_at(source, mip, bounds, bounds_mip),
                                                       ranges or (None,) * 3))
    path, size = new_layer_path(source.cloudpath, dest), region.size3()
    depth = int(check_vec("--shape", shape).z) if depth is None and shape is not None else depth
    if not 0 < clip_limit < float("inf") or nbins < 2 or (kernel_size is not None and kernel_size < 2) \
            or len(tile_grid_size) != 2 or min(tile_grid_size) < 1 or (depth is not None and depth < 1):
        raise UserError("--clip-limit must be above 0, --nbins at least 2, --kernel-size at least 2, "
                        "--tile-grid-size two counts of at least 1 and the depth (shape's z) at least 1; got "
                        f"{clip_limit}, {nbins}, {kernel_size}, {csv(tile_grid_size)} and {depth}")
    kernel = clahe_kernel(size[:2], tile_grid_size, kernel_size)
    out = new_copy(source, path, mip, encoding, {
        "task": "ClaheTask", "src": source.cloudpath, "mip": mip, "kernel_size": kernel,
        "clip_limit": clip_limit, "nbins": nbins, "bounds": [ints(region.minpt), ints(region.maxpt)]})
    grid = chunk_grid(out, mip, (size.x, size.y, depth or out.meta.chunk_size(mip).z), region)
    compress = compression(compress)
    make = lambda box: partial(ClaheTask, src_path=source.cloudpath, dest_path=out.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), kernel_size=kernel,
                               clip_limit=float(clip_limit) / nbins, nbins=nbins, fill_missing=fill_missing,
                               compress=compress)
    return Tasks(grid, make, f"CLAHE of {source.cloudpath} into {out.cloudpath} ({csv(grid.shape)} a task)",
                 mips=range(mip, mip + 1))
