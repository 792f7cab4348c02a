"""Help to design jobs and layers: what a downsample task shape costs and makes, the shape that
makes the most mips in a memory budget, and a layer's bounds and chunk size read from its chunk
files (for an info file that was lost or damaged)."""
import re
from collections import Counter
from typing import Optional, Sequence, Tuple

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox, Vec

from igneous_like.errors import UserError
from igneous_like.task_creation.common import check_vec, csv, existing_layer, layer_path, open_layer
from igneous_like.task_creation.image import (
    add_mips,
    check_factor,
    fit_mips,
    pyramid_unit,
    supported_mips,
    task_bytes,
    whole_blocks,
)

CHUNK_NAME = re.compile(r"^(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)(\.\w+)?$")


def planned(path: str, mip: int, factor: Sequence[int],
            mips: Optional[int] = None) -> Tuple[CloudVolume, int]:
    """The layer with the mips a pyramid by `factor` would add above `mip` (in memory only), and how
    many that is (at most `mips`)."""
    cv = open_layer(path, mip)
    factor = check_factor(cv, mip, factor)
    count = supported_mips(cv, mip, factor) if mips is None else min(mips, supported_mips(cv, mip, factor))
    add_mips(cv, mip, count, factor, None, None)
    return cv, count


def shape_cost(path: str, shape: Sequence[int], mip: int = 0, factor=(2, 2, 1)) -> Tuple[int, int, Vec]:
    """(bytes one downsample task of `shape` holds, how many mips above `mip` it writes whole
    chunks of, the smallest shape that writes one)."""
    cv, count = planned(path, mip, factor)
    shape, extent = check_vec("SHAPE", shape), cv.meta.volume_size(mip)
    made = max((n for n in range(1, count + 1) if whole_blocks(shape, pyramid_unit(cv, mip, n), extent)),
               default=0)
    return task_bytes(Vec(*np.minimum(shape, extent)), cv), made, pyramid_unit(cv, mip, min(count, 1))


def memory_shape(path: str, memory: int, mip: int = 0, factor=(2, 2, 1),
                 max_mips: int = 5) -> Tuple[Vec, int]:
    """(the task shape that makes the most mips, up to `max_mips`, within `memory` bytes, those mips)."""
    cv, count = planned(path, mip, factor, max_mips)
    if count == 0:
        raise UserError(f"mip {mip} of {cv.cloudpath} cannot be downsampled by {csv(factor)}")
    made = fit_mips(cv, mip, count, memory, cv.meta.bounds(mip))
    return Vec(*np.minimum(pyramid_unit(cv, mip, made), cv.meta.volume_size(mip))), made


def chunk_bounds(path: str, mip: int = 0) -> Tuple[Bbox, Vec, int]:
    """(bounds, chunk size, chunk count) of an unsharded scale, from its chunk files' names: PATH is
    a layer (its info names the scale's folder) or, when its info is lost, that folder itself."""
    cv = existing_layer(path) if CloudFiles(layer_path(path)).exists("info") else None
    folder = layer_path(path) if cv is None else cv.meta.join(cv.cloudpath, cv.meta.key(mip))
    if cv is not None and cv.image.is_sharded(mip):
        raise UserError(f"mip {mip} of {cv.cloudpath} is sharded: its chunks are inside shard files")
    try:
        corners = [CHUNK_NAME.match(name) for name in CloudFiles(folder).list(flat=True)]
    except FileNotFoundError:  # no such folder
        corners = []
    corners = np.array([[int(v) for v in match.groups()[:6]] for match in corners if match], dtype=np.int64)
    if corners.size == 0:
        raise UserError(f"no chunk files (named x0-x1_y0-y1_z0-z1) in {folder}")
    low, high = corners[:, 0::2], corners[:, 1::2]
    sizes = Counter(map(tuple, (high - low).tolist()))
    chunk = Vec(*max(sizes, key=lambda size: (sizes[size], size)))
    return Bbox(low.min(axis=0), high.max(axis=0)), chunk, len(corners)
