"""Igneous's downsample-scale planning (`igneous.downsample_scales`): how many mips a volume or a
task shape supports, and the task shape a memory target allows. Pure arithmetic, except
create_downsample_scales, which adds the planned scales to a layer's info (via
task_creation.image.add_mips, the one place scales are added)."""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from cloudvolume.lib import Vec


def compute_plane_downsampling_scales(size: Sequence[int], preserve_axis: str = "z",
                                      max_scales: float = math.inf, max_downsampling: int = 64,
                                      max_downsampled_size: int = 128) -> List[Tuple[int, int, int]]:
    """Factors (1,1,1), (2,2,1), (4,4,1), ... (the `preserve_axis` kept at 1) while the smaller of the
    two downsampled axes stays at least `max_downsampled_size`, the factor at most
    `max_downsampling`, and at most `max_scales` downsamples after the first entry."""
    plane = [int(extent) for axis, extent in zip("xyz", size) if axis != preserve_axis]
    smallest, count = min(plane), 0
    while (count < max_scales and 2 ** (count + 1) <= min(max_downsampling, smallest)
           and smallest / 2 ** (count + 1) >= max_downsampled_size):
        count += 1
    return [tuple(1 if axis == preserve_axis else 2 ** level for axis in "xyz") for level in range(count + 1)]


def downsample_shape_from_memory_target(data_width: int, cx: int, cy: int, cz: int, factor: Sequence[int],
                                        byte_target: float, max_mips: float = math.inf) -> Vec:
    """The task shape (a multiple of the chunk cx, cy, cz) that makes the most mips by `factor` while its
    `data_width`-byte voxels stay within `byte_target` bytes; with factor (1,1,1), the widest square
    in x and y. ValueError if even one chunk does not fit."""
    chunk, factor = np.array([cx, cy, cz], dtype=np.int64), np.array(factor, dtype=np.int64)
    if data_width <= 0 or np.any(chunk <= 0) or np.any(factor <= 0):
        raise ValueError(f"data width {data_width}, chunk {tuple(chunk)} and factor {tuple(factor)} "
                         "must be positive")
    fits = lambda shape: data_width * int(np.prod(shape)) <= byte_target
    if not fits(chunk):
        raise ValueError(f"one chunk {tuple(chunk)} of {data_width}-byte voxels exceeds {byte_target} bytes")
    if np.all(factor == 1):
        side = step = math.lcm(int(cx), int(cy))
        while fits([side + step, side + step, cz]):
            side += step
        return Vec(side, side, cz) if fits([side, side, cz]) else Vec(*chunk)
    mips = 0
    while mips < max_mips and fits(chunk * factor ** (mips + 1)):
        mips += 1
    return Vec(*(chunk * factor ** mips))


def create_downsample_scales(layer_path: str, mip: int, ds_shape: Sequence[int], axis: str = "z",
                             preserve_chunk_size: bool = False, chunk_size: Optional[Sequence[int]] = None,
                             encoding: Optional[str] = None, factor: Optional[Sequence[int]] = None,
                             max_mips: Optional[int] = None):
    """Add to the layer's info the mips above `mip` that a task of `ds_shape` voxels can make: as many
    as keep the downsampled task at least one chunk (`chunk_size`, else the chunk at `mip`) wide on
    every downsampled axis, at most `max_mips`. Returns the layer's CloudVolume. New scales keep
    the chunk size at `mip` unless `chunk_size` is given (so `preserve_chunk_size` changes nothing)."""
    from igneous_like.task_creation.common import open_layer
    from igneous_like.task_creation.image import add_mips, axis_factor
    cv = open_layer(layer_path, mip)
    factor = Vec(*axis_factor(axis, factor))
    chunk = Vec(*(chunk_size if chunk_size is not None else cv.meta.chunk_size(mip)))
    shape, count = Vec(*ds_shape), 0
    while ((max_mips is None or count < max_mips) and np.any(factor > 1)
           and np.all((factor == 1) | (shape // factor >= chunk))):
        shape, count = shape // factor, count + 1
    add_mips(cv, mip, count, factor, None if chunk_size is None else chunk, encoding)
    cv.commit_info()
    return cv
