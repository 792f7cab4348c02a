"""Pure downsampling: numpy in, a list of mip arrays out.

Blocks are anchored at the first voxel of the array, and a trailing partial block is reduced
over the voxels it has, so a cutout that starts on a block boundary of the whole volume gives
exactly what downsampling the whole volume gives there.
"""
from typing import List, Sequence

import numpy as np
import tinybrain

from igneous_like.errors import UserError

METHODS = ("auto", "avg", "mode", "min", "max", "striding")


def resolve_method(method: str, layer_type: str, dtype) -> str:
    """Turn `auto` into avg (images) or mode (labels) and reject methods the data cannot use."""
    if method not in METHODS:
        raise UserError(f"unknown downsample method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "auto":
        return "mode" if layer_type == "segmentation" else "avg"
    if method == "mode" and np.dtype(dtype).kind not in "iub":
        raise UserError(f"--method mode needs integer labels, but this layer is {np.dtype(dtype).name}; "
                        "use avg, min, max or striding")
    return method


def check_sparse(method: str, sparse: bool, dtype) -> None:
    """Sparse averaging ignores zeros, which tinybrain supports for 8 and 16 bit data only."""
    if not sparse:
        return
    if method not in ("avg", "mode"):
        raise UserError(f"--sparse applies to avg and mode downsampling, not {method}")
    if method == "avg" and np.dtype(dtype) not in (np.uint8, np.uint16):
        raise UserError(f"--sparse averaging supports uint8 and uint16 images, not {np.dtype(dtype).name}")


def downsample(img: np.ndarray, factor: Sequence[int], num_mips: int, method: str,
               sparse: bool = False) -> List[np.ndarray]:
    """Return `num_mips` successively downsampled copies of a 3D or 4D (x,y,z,channel) array.

    `method` must already be resolved (see resolve_method). avg and mode hand the whole stack
    to tinybrain in one call, as downsampling the whole volume in one call would.
    """
    if num_mips <= 0:
        return []
    factor = tuple(int(f) for f in factor)
    img = np.asfortranarray(img)
    if method == "avg":
        return list(tinybrain.downsample_with_averaging(img, factor, num_mips=num_mips, sparse=sparse))
    if method == "mode":
        return list(tinybrain.downsample_segmentation(img, factor, num_mips=num_mips, sparse=sparse))
    if method == "striding":
        return list(tinybrain.downsample_with_striding(img, factor, num_mips=num_mips))
    reduce = np.min if method == "min" else np.max
    mips = []
    for _ in range(num_mips):
        img = pool(img, factor, reduce)
        mips.append(img)
    return mips


def pool(img: np.ndarray, factor: Sequence[int], reduce) -> np.ndarray:
    """Reduce each factor-sized block with `reduce` (np.min or np.max), partial edge blocks included."""
    factor = tuple(factor) + (1,) * (img.ndim - len(factor))
    if img.dtype == bool:
        fill = reduce is np.min
    else:
        info = np.iinfo(img.dtype) if img.dtype.kind in "iu" else np.finfo(img.dtype)
        fill = info.max if reduce is np.min else info.min
    pad = [(0, (-size) % f) for size, f in zip(img.shape, factor)]
    padded = np.pad(img, pad, constant_values=fill)
    blocked_shape = []
    for size, f in zip(padded.shape, factor):
        blocked_shape += [size // f, f]
    blocks = padded.reshape(blocked_shape)
    return np.asfortranarray(reduce(blocks, axis=tuple(range(1, 2 * img.ndim, 2))))
