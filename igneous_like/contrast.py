"""Contrast of image stacks, one z slice at a time (pure numpy; CLAHE by scikit-image).

Normalization is exact over whole slices of any size: tasks count each slice's grey levels in
boxes, the counts are summed per slice, and each slice is stretched between the levels that
leave `fraction` of its voxels below and above (the darkest and brightest are clipped).
With a slice's n voxels sorted, the lower level is the value of rank floor(fraction * n) and the
upper level that of rank ceil((1 - fraction) * n) - 1 (ranks from 0).
"""
from typing import Tuple

import numpy as np

LEVELS = {"uint8": 256, "uint16": 65536}  # grey levels of the image types that have histograms


def slice_histograms(img: np.ndarray) -> np.ndarray:
    """(z, levels) int64 counts of each grey level in each z slice of an x,y,z image."""
    levels = LEVELS[img.dtype.name]
    return np.stack([np.bincount(img[:, :, z].ravel(), minlength=levels) for z in range(img.shape[2])])


def clip_levels(histograms: np.ndarray, fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """(lower, upper) per slice: the grey levels of ranks floor(fraction n) and ceil((1-fraction) n)
    - 1 of the slice's n voxels (both 0 for an empty slice)."""
    cumulative = np.cumsum(histograms, axis=1)
    total = cumulative[:, -1]
    low_rank = np.floor(fraction * total).astype(np.int64)
    high_rank = np.maximum(np.ceil((1 - fraction) * total).astype(np.int64) - 1, 0)
    rank = lambda ranks: np.array([np.searchsorted(c, r, side="right") for c, r in zip(cumulative, ranks)])
    lower, upper = rank(low_rank), rank(high_rank)
    empty = total == 0
    lower[empty] = upper[empty] = 0
    return lower.astype(np.int64), upper.astype(np.int64)


def stretch(img: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Each z slice mapped linearly from [lower, upper] onto the type's full range, clipped and
    rounded; a slice whose levels are equal becomes 0 up to that level and the maximum above."""
    top = np.iinfo(img.dtype).max
    low = lower.astype(np.float64)[None, None, :]
    span = (upper - lower).astype(np.float64)[None, None, :]
    scaled = (img.astype(np.float64) - low) * (top / np.where(span > 0, span, 1))
    scaled = np.where(span > 0, scaled, np.where(img > low, top, 0))
    return np.clip(np.rint(scaled), 0, top).astype(img.dtype)


def clahe(img: np.ndarray, kernel_size=None, clip_limit: float = 0.01, nbins: int = 256) -> np.ndarray:
    """scikit-image's contrast-limited adaptive histogram equalization of each whole z slice (as
    the x,y array), back in the image's type."""
    from skimage import exposure, util
    convert = util.img_as_ubyte if img.dtype == np.uint8 else util.img_as_uint
    out = np.empty_like(img)
    for z in range(img.shape[2]):
        equalized = exposure.equalize_adapthist(img[:, :, z], kernel_size=kernel_size, clip_limit=clip_limit,
                                                nbins=nbins)
        out[:, :, z] = convert(equalized)
    return out
