"""Image edits: z slices reordered into a new layer, a region blacked out in place, floats
quantized to 8 bits into a new layer, and the bounding box of what is not background (roi)."""
import json
from dataclasses import replace
from functools import partial
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox, Vec

from igneous_like.errors import UserError
from igneous_like.task_creation.common import (
    Tasks,
    check_encoding,
    check_value,
    chunk_grid,
    compression,
    csv,
    ints,
    new_layer_path,
    open_layer,
    record_provenance,
    restrict_bounds,
)
from igneous_like.task_creation.image import destination_info, open_destination
from igneous_like.tasks.edit import BlackoutTask, QuantizeTask, ReorderTask

DEFAULT_SHAPE = (512, 512, 64)


def new_copy(src: CloudVolume, dest: str, mip: int, encoding: Optional[str], method: dict,
             dtype: Optional[str] = None) -> CloudVolume:
    """DEST: the source's geometry at `mip` (in another type where given), info and job recorded."""
    path = new_layer_path(src.cloudpath, dest)
    info = destination_info(src, mip, src.meta.bounds(mip), None, encoding)
    info["data_type"] = dtype or info["data_type"]
    check_encoding(encoding, info["type"], info["data_type"], src.num_channels)
    out = open_destination(path, info, mip)
    out.commit_info()
    record_provenance(out, method)
    return out


def slice_order(mapping: Union[str, Dict], start: int, stop: int) -> List[int]:
    """For each destination slice start..stop-1, the source slice it shows: the mapping's moves
    (source -> destination) on top of the identity; refused where a slice would be lost."""
    if isinstance(mapping, str):
        try:
            mapping = json.loads(mapping)
        except ValueError as err:
            raise UserError(f"the slice mapping is not JSON ({err}); give e.g. "
                            "'{\"0\": 1, \"1\": 0}'") from None
    try:
        moves = {int(source): int(target) for source, target in mapping.items()}
    except (AttributeError, TypeError, ValueError):
        raise UserError("the slice mapping must be a JSON object of slice numbers, source: "
                        "destination") from None
    outside = [z for pair in moves.items() for z in pair if not start <= z < stop]
    if outside:
        raise UserError(f"slice {outside[0]} lies outside the volume's z range {start}..{stop - 1}")
    targets = list(moves.values())
    if len(set(targets)) < len(targets):
        twice = next(t for t in targets if targets.count(t) > 1)
        raise UserError(f"two slices would move to z={twice}")
    order = list(range(start, stop))
    for source, target in moves.items():
        order[target - start] = source
    lost = sorted(set(range(start, stop)) - set(order))
    if lost:
        raise UserError(f"slice {lost[0]} would be lost (overwritten and moved nowhere); move it too")
    return order


def create_reorder_tasks(src_layer_path: str, dest_layer_path: str, mapping: Union[str, Dict],
                         mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE, fill_missing: bool = False,
                         encoding: Optional[str] = None, compress: Optional[str] = "gzip") -> Tasks:
    """Tasks that write DEST with the source's z slices rearranged by `mapping` (source: destination)."""
    src = open_layer(src_layer_path, mip)
    bounds = src.meta.bounds(mip)
    order = slice_order(mapping, int(bounds.minpt.z), int(bounds.maxpt.z))
    out = new_copy(src, dest_layer_path, mip, encoding,
                   {"task": "ReorderTask", "src": src.cloudpath, "mip": mip, "order": order})
    compress, first = compression(compress), int(bounds.minpt.z)
    make = lambda box: partial(ReorderTask, src_path=src.cloudpath, dest_path=out.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()),
                               sources=order[box.minpt.z - first:box.maxpt.z - first],
                               fill_missing=fill_missing, compress=compress)
    return Tasks(chunk_grid(out, mip, shape), make,
                 f"slices of {src.cloudpath} reordered into {out.cloudpath}", mips=range(mip, mip + 1))


def create_blackout_tasks(cloudpath: str, bounds: Union[Bbox, Sequence[Sequence[int]]], mip: int = 0,
                          shape: Sequence[int] = (2048, 2048, 64), value: Union[int, float] = 0,
                          non_aligned_writes: bool = False, fill_missing: bool = False,
                          compress: Optional[str] = "gzip") -> Tasks:
    """Tasks that set `bounds` (a Bbox or corners, voxels of `mip`) of the layer to `value`, in
    place. Igneous's keywords; tasks always write whole chunks, keeping the voxels outside `bounds`,
    so `non_aligned_writes` changes nothing."""
    if isinstance(bounds, Bbox):
        bounds = [bounds.minpt, bounds.maxpt]
    cv = open_layer(cloudpath, mip)
    value = check_value("--value", value, cv.dtype)
    region = restrict_bounds(cv.meta.bounds(mip), [(lo, hi) for lo, hi in zip(*bounds)])
    grid = replace(chunk_grid(cv, mip, shape), region=region)  # boxes of whole chunks that touch it
    corners = [ints(region.minpt), ints(region.maxpt)]
    record_provenance(cv, {"task": "BlackoutTask", "mip": mip, "bounds": corners, "value": value})
    compress = compression(compress)
    make = lambda box: partial(BlackoutTask, layer_path=cv.cloudpath, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), region=corners, value=value,
                               fill_missing=fill_missing, compress=compress)
    return Tasks(grid, make, f"{csv(region.minpt)}-{csv(region.maxpt)} of {cv.cloudpath} set to {value}",
                 mips=range(mip, mip + 1))


def create_quantized_affinity_info(src_layer: str, dest_layer: str, shape: Sequence[int], mip: int,
                                   chunk_size: Sequence[int], encoding: str) -> dict:
    """Igneous's info (not written) for an 8-bit, one-channel image of the source's first channel
    (QuantizeTask's destination): the source's mips 0..mip in `chunk_size` chunks and `encoding`.
    `dest_layer` and `shape` are Igneous's and change nothing."""
    src = open_layer(src_layer, mip)
    info = destination_info(src, mip, src.meta.bounds(mip), None, None)
    info.update(num_channels=1, data_type="uint8", type="image")
    for scale in info["scales"]:
        scale.update(chunk_sizes=[[int(v) for v in chunk_size]], encoding=encoding)
    return info


def create_quantize_tasks(src_layer: str, dest_layer: str, shape: Sequence[int] = DEFAULT_SHAPE,
                          mip: int = 0, fill_missing: bool = False,
                          chunk_size: Optional[Sequence[int]] = None, encoding: Optional[str] = None,
                          bounds=None, compress: Optional[str] = "gzip") -> Tasks:
    """Tasks that write DEST, uint8: the source's floats in [0, 1] (e.g. affinities, every channel)
    as round(255 x), clipped. Igneous's keywords; DEST keeps the source's chunk size and covers
    all of it, so chunk_size and bounds are refused."""
    if chunk_size is not None or bounds is not None:
        raise UserError("chunk_size and bounds are not supported: the 8-bit copy keeps the source's chunks "
                        "and bounds (transfer it afterwards to rechunk or crop)")
    src = open_layer(src_layer, mip)
    if np.dtype(src.dtype).kind != "f":
        raise UserError(f"{src.cloudpath} holds {src.dtype}; quantize takes floats in [0, 1] (affinities, "
                        "probabilities)")
    out = new_copy(src, dest_layer, mip, encoding,
                   {"task": "QuantizeTask", "src": src.cloudpath, "mip": mip}, dtype="uint8")
    compress = compression(compress)
    make = lambda box: partial(QuantizeTask, src_path=src.cloudpath, dest_path=out.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), fill_missing=fill_missing,
                               compress=compress)
    return Tasks(chunk_grid(out, mip, shape), make, f"{src.cloudpath} quantized into {out.cloudpath}",
                 mips=range(mip, mip + 1))


def compute_rois(cloudpath: str, progress: bool = False, suppress_faint_voxels: int = 0,
                 dust_threshold: int = 10, max_axial_length: int = 512,
                 z_step: Optional[int] = None) -> List[Bbox]:
    """Igneous's name and keywords for find_roi, its boxes as Bboxes (`progress` shows nothing)."""
    boxes = find_roi(cloudpath, suppress_faint=suppress_faint_voxels, dust=dust_threshold,
                     max_axial_len=max_axial_length, z_step=z_step)
    return [Bbox(box[:3], box[3:]) for box in boxes]


def find_roi(layer_path: str, mip: Optional[int] = None, suppress_faint: float = 0, dust: int = 10,
             max_axial_len: int = 512, z_step: Optional[int] = None) -> List[List[int]]:
    """Bounding boxes (corners in mip 0 voxels, outward) of what is not background: voxels above
    `suppress_faint`, without connected pieces of fewer than `dust` voxels; read whole at the
    first mip (from `mip`) whose x*y is at most max_axial_len^2; one box per `z_step` mip-0 slices."""
    import cc3d
    cv = open_layer(layer_path, mip or 0)
    scales = range(len(cv.info["scales"]))
    small = [m for m in scales if np.prod(cv.meta.volume_size(m)[:2]) <= max_axial_len ** 2]
    level = mip if mip is not None else (small[0] if small else scales[-1])
    cv = CloudVolume(cv.cloudpath, mip=level, fill_missing=True, progress=False)
    ratio = Vec(*np.round(cv.meta.resolution(level) / cv.meta.resolution(0)).astype(int))
    bounds = cv.meta.bounds(level)
    depth = max(1, (z_step or int(bounds.size3().z * ratio.z)) // int(ratio.z))
    boxes = []
    for z in range(int(bounds.minpt.z), int(bounds.maxpt.z), depth):
        top = min(z + depth, bounds.maxpt.z)
        part = Bbox((bounds.minpt.x, bounds.minpt.y, z), (bounds.maxpt.x, bounds.maxpt.y, top))
        image = np.asarray(cv.image.download(part, level))
        mask = cc3d.dust((image > suppress_faint).any(axis=3), threshold=dust, connectivity=26)
        found = np.argwhere(mask)
        if found.size:
            low, high = part.minpt + found.min(axis=0), part.minpt + found.max(axis=0) + 1
            boxes.append(ints(low * ratio) + ints(high * ratio))
    return boxes
