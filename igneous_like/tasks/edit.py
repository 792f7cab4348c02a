"""Image edits, one box each: z slices reordered, a region set to one value (blackout), and
floats in [0, 1] (affinities, probabilities) quantized to 8 bits. Every task writes whole chunks
of its own, so tasks never share a file."""
from typing import List, Sequence, Union

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox, Vec
from taskqueue import queueable

from igneous_like.layers import upload


def open_for(path: str, mip: int, fill_missing: bool = False, compress=None) -> CloudVolume:
    return CloudVolume(path, mip=mip, fill_missing=fill_missing, compress=compress, progress=False)


def runs(values: Sequence[int]) -> List[tuple]:
    """(first place, first value, length) of each stretch of consecutive increasing values."""
    found = []
    for place, value in enumerate(values):
        if found and value == found[-1][1] + found[-1][2] and place == found[-1][0] + found[-1][2]:
            found[-1] = (found[-1][0], found[-1][1], found[-1][2] + 1)
        else:
            found.append((place, value, 1))
    return found


@queueable
def ReorderTask(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                sources: Sequence[int], fill_missing: bool = False,
                compress: Union[str, bool, None] = None) -> None:
    """Write one box whose slice z0+i is the source's slice sources[i] (read in runs of slices)."""
    box = Bbox(offset, Vec(*offset) + Vec(*shape))
    src = open_for(src_path, mip, fill_missing)
    img = np.empty(tuple(box.size3()) + (src.num_channels,), dtype=src.dtype, order="F")
    for place, first, count in runs(list(sources)):
        part = Bbox((box.minpt.x, box.minpt.y, first), (box.maxpt.x, box.maxpt.y, first + count))
        img[:, :, place:place + count] = np.asarray(src.image.download(part, mip))
    upload(open_for(dest_path, mip, compress=compress), img, box.minpt, mip)


@queueable
def BlackoutTask(layer_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                 region: Sequence[Sequence[int]], value: Union[int, float], fill_missing: bool = False,
                 compress: Union[str, bool, None] = None) -> None:
    """Set the part of `region` (corners) inside one chunk-aligned box to `value`; the rest of the
    box is written back as it was."""
    box = Bbox(offset, Vec(*offset) + Vec(*shape))
    cv = open_for(layer_path, mip, fill_missing, compress)
    img = np.array(cv.image.download(box, mip))
    cut = Bbox.intersection(box, Bbox(*region))
    low, high = cut.minpt - box.minpt, cut.maxpt - box.minpt
    img[low.x:high.x, low.y:high.y, low.z:high.z] = value
    upload(cv, img, box.minpt, mip)


@queueable
def QuantizeTask(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                 fill_missing: bool = False, compress: Union[str, bool, None] = None,
                 truncate: bool = False) -> None:
    """Write one box of floats in [0, 1] as uint8: round(255 x) (`truncate`: floor, as Igneous),
    clipped to 0..255 (NaN: 0); the first channels, as many as the destination has."""
    box = Bbox(offset, Vec(*offset) + Vec(*shape))
    dest = open_for(dest_path, mip, compress=compress)
    img = np.asarray(open_for(src_path, mip, fill_missing).image.download(box, mip), dtype=np.float64)
    scaled = np.nan_to_num(img[..., :dest.num_channels], nan=0.0) * 255
    quantized = np.clip(np.floor(scaled) if truncate else np.rint(scaled), 0, 255).astype(np.uint8)
    upload(dest, quantized, box.minpt, mip)
