"""Contrast tasks: count grey levels per z slice in one box, sum a row of boxes into each slice's
histogram, stretch one box between its slices' levels, or equalize whole slices by CLAHE."""
from typing import List, Optional, Sequence, Union

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox, Vec
from taskqueue import queueable

from igneous_like import contrast
from igneous_like.grid import Grid
from igneous_like.layers import upload
from igneous_like.stage import WorkDir

RECORD = "record.json"


def part_name(box: Bbox) -> str:
    return f"parts/{box.to_filename()}"


def levels_name(z_start: int, z_stop: int) -> str:
    return f"levels/{z_start}-{z_stop}"


def slice_rows(record: dict) -> List[List[int]]:
    """The z ranges of the histogram boxes: each a row of boxes whose counts one levels file holds."""
    start, stop, depth = record["bounds"][0][2], record["bounds"][1][2], record["shape"][2]
    return [[z, min(z + depth, stop)] for z in range(start, stop, depth)]


def row_boxes(record: dict, z_start: int, z_stop: int) -> Grid:
    """The histogram boxes of one row."""
    low, high = record["bounds"]
    region = Bbox((low[0], low[1], z_start), (high[0], high[1], z_stop))
    return Grid(region, Vec(*record["shape"]), Vec(*low), Bbox(low, high))


def read_box(path: str, box: Bbox, mip: int, fill_missing: bool) -> np.ndarray:
    cv = CloudVolume(path, mip=mip, fill_missing=fill_missing, progress=False)
    return np.asarray(cv.image.download(box, mip))[..., 0]


@queueable
def HistogramTask(layer_path: str, mip: int, offset: Sequence[int], shape: Sequence[int], work: str,
                  fill_missing: bool = False) -> None:
    """Store the grey-level counts of each z slice of one box."""
    box = Bbox(offset, Vec(*offset) + Vec(*shape))
    histograms = contrast.slice_histograms(read_box(layer_path, box, mip, fill_missing))
    WorkDir(work).put_arrays(part_name(box), histograms=histograms)


@queueable
def LevelsTask(work: str, z_start: int, z_stop: int) -> None:
    """Sum the counts of one row of boxes into its slices' histograms (a missing part fails the task)."""
    parts = WorkDir(work)
    names = [part_name(box) for box in row_boxes(parts.load(RECORD), z_start, z_stop)]
    total = sum(part["histograms"] for part in parts.gather_arrays(names, "histogram tasks"))
    parts.put_arrays(levels_name(z_start, z_stop), histograms=total)


def slice_levels(work: str, record: dict, z_start: int, z_stop: int) -> np.ndarray:
    """The histograms of slices z_start..z_stop-1, from the levels files that hold them."""
    rows = [row for row in slice_rows(record) if row[0] < z_stop and row[1] > z_start]
    levels = WorkDir(work).gather_arrays([levels_name(*row) for row in rows], "levels tasks")
    histograms = np.concatenate([level["histograms"] for level in levels])
    first = rows[0][0]
    return histograms[z_start - first:z_stop - first]


@queueable
def ContrastTask(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                 work: str, clip_fraction: float, fill_missing: bool = False,
                 compress: Union[str, bool, None] = None, minval: Optional[int] = None,
                 maxval: Optional[int] = None) -> None:
    """Write one box stretched between its slices' clip levels (or minval and maxval, where given)."""
    box = Bbox(offset, Vec(*offset) + Vec(*shape))
    img = read_box(src_path, box, mip, fill_missing)
    record = WorkDir(work).load(RECORD)
    lower, upper = contrast.clip_levels(slice_levels(work, record, int(box.minpt.z), int(box.maxpt.z)),
                                        clip_fraction)
    if minval is not None:
        lower[:] = minval
    if maxval is not None:
        upper[:] = maxval
    dest = CloudVolume(dest_path, mip=mip, compress=compress, progress=False)
    upload(dest, contrast.stretch(img, lower, upper)[..., None], box.minpt, mip)


@queueable
def ClaheTask(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
              kernel_size: Union[int, Sequence[int], None] = None, clip_limit: float = 0.01,
              nbins: int = 256,
              fill_missing: bool = False, compress: Union[str, bool, None] = None) -> None:
    """Write whole slices (the box spans x and y) equalized by CLAHE (scikit-image's kernel_size and
    clip_limit)."""
    box = Bbox(offset, Vec(*offset) + Vec(*shape))
    img = read_box(src_path, box, mip, fill_missing)
    dest = CloudVolume(dest_path, mip=mip, compress=compress, progress=False)
    upload(dest, contrast.clahe(img, kernel_size, clip_limit, nbins)[..., None], box.minpt, mip)
