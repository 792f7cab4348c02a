"""Create image tasks: downsampling, transfer and deletion, sharded or not.

Each creator validates all of its input first, then writes the destination info file and
provenance, then returns a lazy, sized iterable of tasks laid on a grid whose boxes cover
whole destination chunks (or shards), so no two tasks ever write the same file.
"""
import copy
import math
from dataclasses import replace
from functools import partial
from typing import Optional, Sequence, Union

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import compute_shard_params_for_image
from cloudvolume.lib import Bbox, Vec

from igneous_like.downsample import check_sparse, resolve_method
from igneous_like.errors import UserError
from igneous_like.paths import check_info
from igneous_like.shards import shard_shape
from igneous_like.task_creation.common import (
    MEMORY_TARGET,
    Grid,
    Stage,
    Tasks,
    check_encoding,
    check_mip,
    check_value,
    check_vec,
    compression,
    csv,
    existing_layer,
    graphene_only,
    info_problem,
    ints,
    lcm_shape,
    new_layer_path,
    no_tasks,
    open_layer,
    record_provenance,
    restrict_bounds,
)
from igneous_like.tasks.image import (
    DeleteTask,
    DownsampleTask,
    PyramidOptions,
    TouchTask,
    TransferTask,
    mip_box,
    mip_ratio,
)

BYTES_PER_VOXEL_COPIES = 3  # a task holds its cutout, its mips and tinybrain's working copy
SHARDED_MIPS = 3  # Igneous's sharded downsample makes this many mips when not told how many


def task_bytes(shape: Vec, cv: CloudVolume) -> int:
    return int(np.prod(shape)) * np.dtype(cv.dtype).itemsize * cv.num_channels * BYTES_PER_VOXEL_COPIES


def pyramid_options(cv: CloudVolume, mip: int, factor, method, sparse, fill_missing, delete_black_uploads,
                    background_color, compress, sharded: bool) -> PyramidOptions:
    """Check the downsampling choices against the layer (at `mip`) and bundle them for the tasks."""
    factor = check_factor(cv, mip, factor)
    background_color = check_value("--bg-color", background_color, cv.dtype)
    method = resolve_method(method, cv.layer_type, cv.dtype)
    check_sparse(method, sparse, cv.dtype)
    compress = compression(compress)
    if sharded:
        if compress == "br":
            raise UserError("sharded layers compress chunks with gzip or not at all; "
                            "use --compress gzip or none")
        compress = False  # shard files stay plain; the sharding spec's data_encoding compresses chunks
    return PyramidOptions(factor=tuple(factor), method=method, sparse=sparse,
                          fill_missing=fill_missing, delete_black_uploads=delete_black_uploads,
                          background_color=background_color, compress=compress)


def check_factor(cv: CloudVolume, mip: int, factor) -> Vec:
    """A factor that downsamples, and within the volume: tinybrain pads to whole blocks, so a factor
    far beyond the volume only makes work (1000,1000,1000 is 10^9 voxels a block)."""
    factor, size = check_vec("--factor", factor), cv.meta.volume_size(mip)
    if all(factor == 1):
        raise UserError("--factor 1,1,1 does not downsample; give a factor above 1 on some axis")
    if any(factor > np.maximum(size, 2)):
        raise UserError(f"--factor {csv(factor)} is larger than the volume at mip {mip} ({csv(size)} "
                        "voxels); a factor must not exceed the size on its axis")
    return factor


def supported_mips(cv: CloudVolume, mip: int, factor: Sequence[int]) -> int:
    """How many mips above `mip` downsampling by `factor` makes before every downsampled axis is
    one voxel (more would repeat that voxel)."""
    size, factor = np.asarray(cv.meta.volume_size(mip)), np.asarray(factor)
    count = 0
    while np.any((factor > 1) & (size > 1)):
        size, count = -(-size // factor), count + 1
    return count


def mips_to_one_chunk(cv: CloudVolume, mip: int, factor: Sequence[int]) -> int:
    """How many mips above `mip` it takes until the volume fits one chunk along every downsampled
    axis: where Igneous stops when not told how many mips to make."""
    size, factor = np.asarray(cv.meta.volume_size(mip)), np.asarray(factor)
    chunk = np.asarray(cv.meta.chunk_size(mip))
    count = 0
    while np.any((factor > 1) & (size > chunk)):
        size, count = -(-size // factor), count + 1
    return count


def sharded_default(cv: CloudVolume, mip: int, factor: Sequence[int], wanted: Optional[int]) -> int:
    """`wanted` sharded mips, or when None Igneous's 3, or fewer where the volume allows fewer."""
    if wanted is not None:
        return wanted
    return min(SHARDED_MIPS, max(supported_mips(cv, mip, check_factor(cv, mip, factor)), 1))


def pyramid_mips(cv: CloudVolume, mip: int, factor: Sequence[int], wanted: Optional[int]) -> int:
    """`wanted` mips above `mip`, refused beyond what the volume supports; None: until the volume fits
    one chunk (0 if it already does)."""
    factor = check_factor(cv, mip, factor)
    if wanted is None:
        return mips_to_one_chunk(cv, mip, factor)
    supported, size = supported_mips(cv, mip, factor), csv(cv.meta.volume_size(mip))
    if supported == 0:
        raise UserError(f"mip {mip} of {cv.cloudpath} ({size} voxels) is one voxel wide along every axis "
                        f"that --factor {csv(factor)} downsamples: there is nothing left to downsample")
    if wanted > supported:
        raise UserError(f"--num-mips {wanted} goes beyond the volume: downsampling its {size} voxels at mip "
                        f"{mip} by {csv(factor)} reaches one voxel after {supported} mips; use --num-mips "
                        f"{supported} or fewer")
    return wanted


def create_sharded_image_info(dataset_size: Sequence[int], chunk_size: Sequence[int], encoding: str, dtype,
                              uncompressed_shard_bytesize: int = int(3.5e9),
                              max_shard_index_bytes: int = 8192, max_minishard_index_bytes: int = 40000,
                              max_labels_per_minishard: int = 4000, minishard_index_encoding: str = "gzip",
                              data_encoding: str = "gzip") -> dict:
    """Igneous's sharding spec (a scale's "sharding" dict) for an image of `dataset_size` voxels in
    `chunk_size` chunks: as few shard files as keep each near `uncompressed_shard_bytesize` raw bytes
    with small indices (CloudVolume's compute_shard_params_for_image; image codecs store raw)."""
    spec = compute_shard_params_for_image(
        dataset_size, chunk_size, encoding, dtype, uncompressed_shard_bytesize, max_shard_index_bytes,
        max_minishard_index_bytes, max_labels_per_minishard, minishard_index_encoding, data_encoding)
    return {key: int(value) if isinstance(value, np.integer) else value
            for key, value in spec.to_dict().items()}


def shard_spec(cv: CloudVolume, mip: int, memory_target: int, compress) -> dict:
    """A sharding spec whose shards hold about `memory_target` bytes of raw voxels."""
    return create_sharded_image_info(
        dataset_size=cv.meta.volume_size(mip), chunk_size=cv.meta.chunk_size(mip),
        encoding=cv.meta.encoding(mip), dtype=cv.dtype,
        uncompressed_shard_bytesize=max(memory_target // BYTES_PER_VOXEL_COPIES, 1),
        data_encoding="raw" if compression(compress) is False else "gzip",
    )


def num_mips_from_memory_target(memory_target: int, dtype, chunk_size: Sequence[int], num_channels: int,
                                factor: Sequence[int]) -> int:
    """Igneous's count of the mips (at least 1) one downsampling task of `chunk_size` chunks makes
    within `memory_target` bytes (downsample_scales.downsample_shape_from_memory_target)."""
    from igneous_like.downsample_scales import downsample_shape_from_memory_target
    width = np.dtype(dtype).itemsize * num_channels
    try:
        shape = downsample_shape_from_memory_target(width, *chunk_size, factor, memory_target)
    except ValueError:
        return 1
    axis = int(np.argmax(factor))  # shape = chunk_size * factor ** mips
    if factor[axis] == 1:
        return 1
    return max(1, round(math.log(shape[axis] // chunk_size[axis], factor[axis])))


def add_mips(cv: CloudVolume, mip: int, num_mips: int, factor: Vec, chunk_size: Optional[Vec],
             encoding: Optional[str], quality: Optional[int] = None, effort: Optional[int] = None) -> None:
    """Add (or redefine) scales mip+1 .. mip+num_mips in `cv.info`, each with the encoding `quality`
    and `effort` (see set_encoding_level); nothing is written yet."""
    for level in range(mip + 1, mip + num_mips + 1):
        ratio = mip_ratio(cv, 0, level - 1) * factor
        resolution = cv.meta.resolution(0) * ratio
        if level < len(cv.info["scales"]) and not np.allclose(cv.meta.resolution(level), resolution):
            raise UserError(
                f"mip {level} of {cv.cloudpath} has resolution {csv(cv.meta.resolution(level))}, "
                f"but downsampling mip {level - 1} by {csv(factor)} gives {csv(resolution)}; "
                f"use the factor that made this pyramid, or delete mips {level}+ first (image rm)")
        chunk = chunk_size if chunk_size is not None else cv.meta.chunk_size(level - 1)
        cv.meta.add_scale(ratio, encoding=encoding or cv.meta.encoding(level - 1), chunk_size=chunk)
        set_encoding_level(cv.meta.scale(level), quality, effort)


ENCODING_LEVEL_KEYS = {"jpeg": "jpeg_quality", "png": "png_level", "jxl": "jxl_quality",
                       "fpzip": "fpzip_precision"}


def set_encoding_level(scale: dict, quality: Optional[int], effort: Optional[int]) -> None:
    """Igneous's encoding_level (jpeg/jxl quality, png level) and encoding_effort (jxl) written into
    a scale as CloudVolume reads them; encodings without such a setting ignore them, as Igneous."""
    key = ENCODING_LEVEL_KEYS.get(scale["encoding"])
    if quality is not None and key is not None:
        scale[key] = int(quality)
    if effort is not None and scale["encoding"] == "jxl":
        scale["jxl_effort"] = int(effort)


def pyramid_unit(cv: CloudVolume, mip: int, num_mips: int) -> Vec:
    """The smallest task shape at `mip` whose mips mip .. mip+num_mips are all whole chunks (on an
    axis where that exceeds the volume, the volume's extent: one task spans it)."""
    shapes = []
    for level in range(mip, mip + num_mips + 1):
        ratio = mip_ratio(cv, mip, level)
        shapes.append(cv.meta.chunk_size(level) * ratio)
    return Vec(*np.minimum(lcm_shape(*shapes), cv.meta.volume_size(mip)))


def fit_mips(cv: CloudVolume, mip: int, num_mips: int, memory_target: int, region: Bbox,
             minimum: int = 1) -> int:
    """How many of the wanted mips (at least `minimum`) one task can make within the memory target."""
    for n in range(num_mips, minimum - 1, -1):
        shape = Vec(*np.minimum(pyramid_unit(cv, mip, n), region.size3()))
        if task_bytes(shape, cv) <= memory_target:
            return n
    shape = Vec(*np.minimum(pyramid_unit(cv, mip, minimum), region.size3()))
    raise UserError(f"--memory {memory_target} is too small: tasks of shape {csv(shape)} "
                    f"need {task_bytes(shape, cv)} bytes")


def keep_mips(cv: CloudVolume, count: int) -> None:
    """Drop scales past the first `count`: mips a pass was going to make but cannot."""
    cv.info["scales"] = cv.info["scales"][:count]


def whole_blocks(shape: Vec, unit: Vec, extent: Vec) -> bool:
    """Whether tasks of `shape` cut the volume only at multiples of `unit`, or not at all."""
    return bool(np.all((shape % unit == 0) | (shape >= extent)))


def checked_shape(shape: Sequence[int], unit: Vec, extent: Vec, purpose: str) -> Vec:
    shape = check_vec("--shape", shape)
    if not whole_blocks(shape, unit, extent):
        raise UserError(f"--shape {csv(shape)} must be a multiple of {csv(unit)} (or span the volume, "
                        f"{csv(extent)}) so that each task {purpose}")
    return shape


def task_shape(cv: CloudVolume, mip: int, num_mips: int, shape: Optional[Sequence[int]]) -> Vec:
    """The given task shape, checked to cover whole chunks at every mip; else the smallest such."""
    unit = pyramid_unit(cv, mip, num_mips)
    if shape is None:
        return unit
    return checked_shape(shape, unit, cv.meta.volume_size(mip),
                         f"writes whole chunks at mips {mip} to {mip + num_mips}")


def region_at(cv: CloudVolume, mip: int, bounds, bounds_mip: Optional[int] = None) -> Bbox:
    """The part of the volume at `mip` to process: `bounds` (a Bbox or (min, max) corners, in
    voxels of `bounds_mip`, default `mip`) within it, rounded outward."""
    volume = cv.meta.bounds(mip)
    if bounds is None:
        return volume
    if not isinstance(bounds, Bbox):
        low, high = (np.asarray(corner, dtype=int) for corner in bounds)
        if np.any(high <= low):
            raise UserError(f"bounds {csv(low)}-{csv(high)} are empty: each end must be above its start")
        bounds = Bbox(low, high)
    if bounds.subvoxel():
        raise UserError(f"bounds {csv(bounds.minpt)}-{csv(bounds.maxpt)} are empty: "
                        "each end must be above its start")
    if bounds_mip is not None and bounds_mip != mip:
        check_mip(cv, bounds_mip)
        bounds = mip_box(cv, bounds, bounds_mip, mip, clip=False)
    region = Bbox.intersection(bounds, volume)
    if region.subvoxel():
        raise UserError(f"bounds {csv(bounds.minpt)}-{csv(bounds.maxpt)} lie outside the volume "
                        f"{csv(volume.minpt)}-{csv(volume.maxpt)} at mip {mip}")
    return region


IGNEOUS_METHODS = {1: "avg", 2: "mode", 3: "min", 4: "max", 5: "striding", 6: "auto"}  # its DownsampleMethods


def method_name(method) -> str:
    """Our name of a downsample method given by name or as Igneous's DownsampleMethods number."""
    return method if isinstance(method, str) else IGNEOUS_METHODS.get(int(method), str(method))


def axis_factor(axis: str, factor: Optional[Sequence[int]]) -> Sequence[int]:
    """Igneous's `axis` (the one axis not downsampled), unless a factor is given."""
    if factor is not None:
        return factor
    if axis not in ("x", "y", "z"):
        raise UserError(f"axis {axis!r} must be x, y or z (the axis that is not downsampled)")
    return tuple(1 if name == axis else 2 for name in "xyz")


def check_igneous_only(dest_path: Optional[str], preserve_chunk_size: bool, chunk_size) -> None:
    """Igneous keywords whose behaviour igneous_like does not have: refused, not ignored."""
    if dest_path is not None:
        raise UserError("dest_path is not supported: transfer the layer first (create_transfer_tasks), "
                        "then downsample the copy")
    if not preserve_chunk_size and chunk_size is None:
        raise UserError("preserve_chunk_size=False is not supported; give the new mips' chunk_size instead")


def create_downsampling_tasks(
    layer_path: str, mip: int = 0, fill_missing: bool = False, axis: str = "z",
    num_mips: Optional[int] = None, preserve_chunk_size: bool = True, sparse: bool = False,
    bounds: Optional[Bbox] = None, chunk_size: Optional[Sequence[int]] = None,
    encoding: Optional[str] = None, delete_black_uploads: bool = False, background_color: int = 0,
    dest_path: Optional[str] = None, compress: Optional[str] = None,
    factor: Optional[Sequence[int]] = None, bounds_mip: int = 0, memory_target: int = MEMORY_TARGET,
    encoding_level: Optional[int] = None, encoding_effort: Optional[int] = None, method="auto",
    codec_threads: int = 1, shape: Optional[Sequence[int]] = None,
) -> Tasks:
    """Tasks that build mips mip+1 .. mip+n in one pass, n <= num_mips as memory allows (num_mips
    None: until the volume fits one chunk, as Igneous). Igneous's keywords and defaults, plus
    `shape` (the task shape); `codec_threads` is accepted and left to CloudVolume.

    `tasks.mips` says which mips the pass makes; run it, then call again from the last one to
    make the rest (the CLI does this).
    """
    check_igneous_only(dest_path, preserve_chunk_size, chunk_size)
    factor, method = axis_factor(axis, factor), method_name(method)
    cv = open_layer(layer_path, mip)
    if num_mips is not None and num_mips < 1:
        raise UserError(f"--num-mips must be at least 1, got {num_mips}")
    options = pyramid_options(cv, mip, factor, method, sparse, fill_missing, delete_black_uploads,
                              background_color, compress, sharded=False)
    num_mips = pyramid_mips(cv, mip, options.factor, num_mips)
    check_encoding(encoding, cv.layer_type, cv.dtype, cv.num_channels)
    chunk_size = None if chunk_size is None else check_vec("--chunk-size", chunk_size)
    region = region_at(cv, mip, bounds, bounds_mip)
    if num_mips == 0:
        return no_tasks(f"downsample {cv.cloudpath} mip {mip}: it already fits one chunk")
    existing = len(cv.info["scales"])
    add_mips(cv, mip, num_mips, Vec(*options.factor), chunk_size, encoding, encoding_level, encoding_effort)
    if shape is None:
        num_mips = fit_mips(cv, mip, num_mips, memory_target, region)
    shape = task_shape(cv, mip, num_mips, shape)
    keep_mips(cv, max(existing, mip + num_mips + 1))
    cv.commit_info()
    record_provenance(cv, {"task": "DownsampleTask", "mip": mip, "num_mips": num_mips,
                           "shape": ints(shape), "bounds": str(region), **options.to_json()})
    make = lambda box: partial(DownsampleTask, layer_path=cv.cloudpath, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), num_mips=num_mips, options=options.to_json())
    grid = Grid(region, shape, cv.meta.voxel_offset(mip), cv.meta.bounds(mip))
    return Tasks(grid, make, f"downsample {cv.cloudpath} mip {mip} to mips {mip + 1}-{mip + num_mips}",
                 mips=range(mip + 1, mip + num_mips + 1))


def create_image_shard_downsample_tasks(
    cloudpath: str, mip: int = 0, fill_missing: bool = False, sparse: bool = False,
    chunk_size: Optional[Sequence[int]] = None, encoding: Optional[str] = None,
    memory_target: int = MEMORY_TARGET, agglomerate: bool = False, timestamp: Optional[int] = None,
    factor: Sequence[int] = (2, 2, 1), bounds: Optional[Bbox] = None, bounds_mip: int = 0,
    encoding_level: Optional[int] = None, encoding_effort: Optional[int] = None, method="auto",
    num_mips: Optional[int] = None, truncate_scales: bool = True, codec_threads: int = 1,
    compress: Optional[str] = "gzip", delete_black_uploads: bool = False, background_color: int = 0,
) -> Tasks:
    """Tasks that build sharded mips mip+1 .. mip+num_mips in one pass, Igneous's keywords (None:
    Igneous's 3, or as many as the volume allows below that).

    Each level's shards hold about the same region of `mip` (memory_target's worth), so one task
    reads the region of its shards at every level and writes them whole. `truncate_scales` drops
    the info's scales above the last one made; `codec_threads` is left to CloudVolume.
    """
    graphene_only(agglomerate, timestamp)
    cv = open_layer(cloudpath, mip)
    options = pyramid_options(cv, mip, factor, method_name(method), sparse, fill_missing,
                              delete_black_uploads, background_color, compress, sharded=True)
    if num_mips is not None and num_mips < 1:
        raise UserError(f"--num-mips must be at least 1, got {num_mips}")
    num_mips = pyramid_mips(cv, mip, options.factor, sharded_default(cv, mip, options.factor, num_mips))
    check_encoding(encoding, cv.layer_type, cv.dtype, cv.num_channels)
    chunk_size = None if chunk_size is None else check_vec("--chunk-size", chunk_size)
    region = region_at(cv, mip, bounds, bounds_mip)
    add_mips(cv, mip, num_mips, Vec(*options.factor), chunk_size, encoding, encoding_level, encoding_effort)
    shards = []
    for level in range(mip + 1, mip + num_mips + 1):
        budget = memory_target // int(np.prod(options.factor)) ** (level - mip)
        cv.meta.scale(level)["sharding"] = shard_spec(cv, level, budget, compress)
        shards.append(shard_shape(cv, level) * mip_ratio(cv, mip, level))
    unit = Vec(*np.minimum(lcm_shape(*shards), cv.meta.volume_size(mip)))
    if truncate_scales:
        keep_mips(cv, mip + num_mips + 1)
    cv.commit_info()
    record_provenance(cv, {"task": "DownsampleTask", "mip": mip, "num_mips": num_mips, "sharded": True,
                           "bounds": str(region), **options.to_json()})
    make = lambda box: partial(DownsampleTask, layer_path=cv.cloudpath, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), num_mips=num_mips, options=options.to_json())
    grid = Grid(region, unit, cv.meta.voxel_offset(mip), cv.meta.bounds(mip))
    mips = range(mip + 1, mip + num_mips + 1)
    return Tasks(grid, make, f"downsample {cv.cloudpath} mip {mip} to sharded mips {mips[0]}-{mips[-1]}",
                 mips=mips)


def destination_info(src: CloudVolume, mip: int, bounds: Bbox, chunk_size: Optional[Vec],
                     encoding: Optional[str]) -> dict:
    """The source's info cut to mips 0..mip, covering `bounds` (destination voxels at `mip`)."""
    info = copy.deepcopy(src.info)
    info["scales"] = info["scales"][:mip + 1]
    for level, scale in enumerate(info["scales"]):
        ratio = mip_ratio(src, level, mip)
        scale["voxel_offset"] = [int(v) for v in bounds.minpt * ratio]
        scale["size"] = [int(v) for v in bounds.size3() * ratio]
        scale.pop("sharding", None)
    top = info["scales"][mip]
    if chunk_size is not None:
        top["chunk_sizes"] = [[int(v) for v in chunk_size]]
    if encoding is not None:
        top["encoding"] = encoding
        if encoding == "compressed_segmentation":
            top.setdefault("compressed_segmentation_block_size", [8, 8, 8])
    return info


LAYER_KEYS = ("data_type", "num_channels", "type")
GEOMETRY_KEYS = ("resolution", "voxel_offset", "size", "chunk_sizes", "encoding", "sharding")


def open_destination(path: str, info: dict, mip: int, layer_keys=LAYER_KEYS) -> CloudVolume:
    """Open the destination (nothing is written yet): a new layer of `info`, or an existing one
    that already matches it in `layer_keys` and in mip `mip`'s geometry."""
    problem = info_problem(info)
    if problem:
        raise UserError(f"cannot make a layer at {path}: {problem}; check the bounds, translation and "
                        "chunk size")
    existing = existing_layer(path)
    if existing is None:  # no layer there yet
        return CloudVolume(path, info=info, progress=False)
    check_info(existing.info, path)
    scales = existing.info["scales"]
    mine, theirs = info["scales"][mip], (scales[mip] if mip < len(scales) else {})
    mismatched = [key for key in layer_keys if existing.info.get(key) != info.get(key)]
    mismatched += [key for key in GEOMETRY_KEYS if mine.get(key) != theirs.get(key)]
    if mismatched:
        raise UserError(f"{path} already holds a layer whose {', '.join(mismatched)} differ from this "
                        "job's; choose a new destination or delete that layer first")
    return existing


def transfer_translation(region: Bbox, translate: Sequence[int],
                         dest_voxel_offset: Optional[Sequence[int]]) -> Vec:
    translate = check_vec("--translate", translate, minimum=-2**62)
    if dest_voxel_offset is None:
        return translate
    if any(translate):
        raise UserError("give either --translate or --dest-voxel-offset, not both")
    return check_vec("--dest-voxel-offset", dest_voxel_offset, minimum=-2**62) - region.minpt


def prepared_destination(src: CloudVolume, dest_path: str, mip: int, region: Bbox, translate: Vec,
                         chunk_size: Optional[Vec], encoding: Optional[str], clean_info: bool):
    """(destination, its region to write at `mip`) - a layer created in advance keeps its info and
    gets the part of the translated source inside its bounds, as Igneous does; `clean_info` (or no
    layer there) makes a new info covering the translated source."""
    existing = None if clean_info else existing_layer(dest_path)
    if existing is None:
        info = destination_info(src, mip, region + translate, chunk_size, encoding)
        return CloudVolume(dest_path, info=info, progress=False), region + translate
    check_info(existing.info, dest_path)
    mismatched = [key for key in LAYER_KEYS if existing.info.get(key) != src.info.get(key)]
    if mip >= len(existing.info["scales"]) or not np.allclose(existing.meta.resolution(mip),
                                                              src.meta.resolution(mip)):
        mismatched.append(f"mip {mip} resolution")
    if chunk_size is not None and any(chunk_size != existing.meta.chunk_size(mip)):
        mismatched.append("chunk size")
    if encoding is not None and encoding != existing.meta.encoding(mip):
        mismatched.append("encoding")
    if mismatched:
        raise UserError(f"{dest_path} already holds a layer whose {', '.join(mismatched)} differ from this "
                        "transfer's; pass clean_info=True to replace its info, or choose a new destination")
    inside = Bbox.intersection(region + translate, existing.meta.bounds(mip))
    if inside.subvoxel():
        raise UserError(f"the translated source {region + translate} lies outside {dest_path}'s bounds "
                        f"{existing.meta.bounds(mip)} at mip {mip}; check translate and bounds")
    return existing, inside


def create_transfer_tasks(
    src_layer_path: str, dest_layer_path: str, chunk_size: Optional[Sequence[int]] = None,
    shape: Optional[Sequence[int]] = None, fill_missing: bool = False,
    translate: Optional[Sequence[int]] = None, bounds: Optional[Bbox] = None, mip: int = 0,
    preserve_chunk_size: bool = True, encoding: Optional[str] = None, skip_downsamples: bool = False,
    delete_black_uploads: bool = False, background_color: int = 0, agglomerate: bool = False,
    timestamp: Optional[int] = None, compress: Union[str, bool, None] = "auto",
    factor: Optional[Sequence[int]] = None, sparse: bool = False,
    dest_voxel_offset: Optional[Sequence[int]] = None, memory_target: int = MEMORY_TARGET,
    max_mips: int = 5, clean_info: bool = False, no_src_update: bool = False, bounds_mip: int = 0,
    encoding_level: Optional[int] = None, truncate_scales: bool = True, cutout: bool = False,
    stop_layer: Optional[int] = None, downsample_method="auto", encoding_effort: Optional[int] = None,
    use_https_for_source: bool = False, sharded: bool = False,
) -> Tasks:
    """Tasks that copy `bounds` of the source at `mip` into a new layout, and downsample it.

    Igneous's keywords and defaults; `sharded` is igneous_like's (create_image_shard_transfer_tasks).
    A destination made in advance keeps its info (unless clean_info) and gets the part of the source
    inside its bounds. Unsharded tasks also write as many downsamples (only until the volume fits
    one chunk, as Igneous; up to `max_mips`, which pairs with `memory_target`: an explicit `shape`
    gets every mip it holds, as Igneous's) as their shape allows, and the `then` stage the rest
    up to `max_mips`, each with mip's encoding level and effort; sharded tasks write one shard of
    `mip` each. The source is only read (`no_src_update` is always so); `truncate_scales`, `cutout`
    and `use_https_for_source` concern Igneous's info handling and graphene sources and change
    nothing here.
    """
    graphene_only(agglomerate or stop_layer is not None, timestamp)
    src = open_layer(src_layer_path, mip)
    dest_path = new_layer_path(src.cloudpath, dest_layer_path, "transfer to a new path")
    factor = (2, 2, 1) if factor is None else factor
    check_igneous_only(None, preserve_chunk_size, chunk_size)
    options = pyramid_options(src, mip, factor, method_name(downsample_method), sparse, fill_missing,
                              delete_black_uploads, background_color, compress, sharded)
    check_encoding(encoding, src.layer_type, src.dtype, src.num_channels)
    chunk_size = None if chunk_size is None else check_vec("--chunk-size", chunk_size)
    region = region_at(src, mip, bounds, bounds_mip)
    translate = transfer_translation(region, (0, 0, 0) if translate is None else translate, dest_voxel_offset)
    dest, target = prepared_destination(src, dest_path, mip, region, translate, chunk_size, encoding,
                                        clean_info)
    if sharded:
        dest.info["scales"][mip]["sharding"] = shard_spec(dest, mip, memory_target, compress)
    dest = open_destination(dest_path, dest.info, mip)
    set_encoding_level(dest.meta.scale(mip), encoding_level, encoding_effort)
    limit = 0 if (skip_downsamples or sharded) else (max_mips if shape is None else None)
    num_mips, shape = transfer_mips(dest, mip, limit, Vec(*options.factor), memory_target, shape,
                                    encoding_level, encoding_effort)
    dest.commit_info()
    record_provenance(dest, {"task": "TransferTask", "src": src.cloudpath, "mip": mip,
                             "translate": ints(translate), "num_mips": num_mips, "sharded": sharded,
                             "shape": ints(shape), **options.to_json()})
    make = lambda box: partial(TransferTask, src_path=src.cloudpath, dest_path=dest.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), translate=ints(translate),
                               num_mips=num_mips, options=options.to_json())
    grid = Grid(target, shape, dest.meta.voxel_offset(mip), dest.meta.bounds(mip))
    method = options.method
    top = mip + num_mips
    rest = 0 if skip_downsamples else min(max_mips - num_mips, mips_to_one_chunk(dest, top, options.factor))
    then = () if rest <= 0 else (Stage("create_pyramid_tasks", dict(
        layer_path=dest.cloudpath, mip=top, num_mips=rest, sharded=sharded, factor=list(options.factor),
        method=method, sparse=sparse, fill_missing=fill_missing, delete_black_uploads=delete_black_uploads,
        background_color=background_color, compress=compress, memory_target=memory_target,
        encoding_level=encoding_level, encoding_effort=encoding_effort), "downsample"),)
    return Tasks(grid, make, f"transfer {src.cloudpath} mip {mip} to {dest.cloudpath}",
                 mips=range(mip, top + 1), then=then)


def create_pyramid_tasks(layer_path: str, mip: int = 0, num_mips: Optional[int] = None,
                         sharded: bool = False, ranges: Optional[Sequence] = None,
                         bounds_mip: Optional[int] = None, shape: Optional[Sequence[int]] = None,
                         **options) -> Tasks:
    """The first pass of a pyramid of `num_mips` mips above `mip` (None: as Igneous, until the volume
    fits one chunk, or for a sharded pyramid 3), with the passes after it as `then`: each pass
    reads the one before. Unsharded passes make as many mips as fit in `memory_target`, sharded
    ones one mip each. `ranges` ((start, end) or None per axis, in voxels of `bounds_mip`) limit the region.
    Other keywords are create_downsampling_tasks'."""
    cv = open_layer(layer_path, mip)
    factor = options.get("factor", (2, 2, 1))
    wanted = sharded_default(cv, mip, factor, num_mips) if sharded else num_mips
    num_mips = pyramid_mips(cv, mip, factor, wanted)
    if num_mips == 0:
        return no_tasks(f"downsample {cv.cloudpath} mip {mip}: it already fits one chunk")
    bounds_mip = mip if bounds_mip is None else bounds_mip
    bounds = None
    if ranges is not None and any(axis is not None for axis in ranges):
        region = restrict_bounds(open_layer(layer_path, bounds_mip).meta.bounds(bounds_mip), ranges)
        bounds = [ints(region.minpt), ints(region.maxpt)]
    if sharded:
        if shape is not None:
            raise UserError("--shape does not apply to --sharded downsampling: each task makes one shard")
        tasks = create_image_shard_downsample_tasks(layer_path, mip=mip, bounds=bounds, num_mips=1,
                                                    bounds_mip=bounds_mip, **options)
    else:
        tasks = create_downsampling_tasks(layer_path, mip=mip, num_mips=num_mips, bounds=bounds,
                                          bounds_mip=bounds_mip, shape=shape, **options)
    made = len(tasks.mips)
    if made == num_mips:
        return tasks
    later = dict(layer_path=cv.cloudpath, mip=mip + made, num_mips=num_mips - made, sharded=sharded,
                 ranges=ranges, bounds_mip=bounds_mip, shape=shape, **options)
    next_pass = Stage("create_pyramid_tasks", later, f"mips {mip + made + 1}-{mip + num_mips}")
    return replace(tasks, then=(next_pass,))


def transfer_mips(dest: CloudVolume, mip: int, max_mips: Optional[int], factor: Vec, memory_target: int,
                  shape: Optional[Sequence[int]], quality: Optional[int] = None,
                  effort: Optional[int] = None):
    """How many downsamples transfer tasks make, and their shape; trims the info to match. As
    Igneous's, they stop where the volume fits one chunk, and make at most `max_mips` (None: as
    many as `shape` holds). The downsamples get the encoding `quality` and `effort` of mip."""
    existing = len(dest.info["scales"])
    limits = (supported_mips(dest, mip, factor), mips_to_one_chunk(dest, mip, factor))
    max_mips = min(limits if max_mips is None else (max_mips, *limits))
    add_mips(dest, mip, max_mips, factor, None, None, quality, effort)
    region = dest.meta.bounds(mip)
    if dest.image.is_sharded(mip):
        num_mips, shape = 0, shard_shape(dest, mip)
    elif shape is None:
        num_mips = fit_mips(dest, mip, max_mips, memory_target, region, minimum=0)
        shape = pyramid_unit(dest, mip, num_mips)
    else:
        shape = task_shape(dest, mip, 0, shape)  # whole chunks at mip itself
        extent = dest.meta.volume_size(mip)
        fitting = [n for n in range(max_mips + 1) if whole_blocks(shape, pyramid_unit(dest, mip, n), extent)]
        num_mips = max(fitting)
    keep_mips(dest, max(existing, mip + num_mips + 1))
    return num_mips, shape


def create_deletion_tasks(layer_path: str, mip: int = 0, num_mips: int = 5,
                          shape: Optional[Sequence[int]] = None, bounds: Optional[Bbox] = None) -> Tasks:
    """Tasks that delete mips mip .. mip+num_mips-1 (those that exist), chunk files and shards;
    within `bounds` (mip 0 voxels, as Igneous) if given, widened to whole task boxes."""
    cv = open_layer(layer_path, mip)
    if num_mips < 1:
        raise UserError(f"--num-mips must be at least 1, got {num_mips}")
    num_mips = min(num_mips, len(cv.info["scales"]) - mip)
    units = []
    for level in range(mip, mip + num_mips):
        ratio = mip_ratio(cv, mip, level)
        block = shard_shape(cv, level) if cv.image.is_sharded(level) else cv.meta.chunk_size(level)
        units.append(block * ratio)
    unit = lcm_shape(*units)
    if shape is not None:
        shape = checked_shape(shape, unit, cv.meta.volume_size(mip),
                              f"deletes whole chunks or shards at mips {mip} to {mip + num_mips - 1}")
    record_provenance(cv, {"task": "DeleteTask", "mip": mip, "num_mips": num_mips})
    shape = unit if shape is None else shape
    make = lambda box: partial(DeleteTask, layer_path=cv.cloudpath, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), num_mips=num_mips)
    grid = Grid(region_at(cv, mip, bounds, 0), shape, cv.meta.voxel_offset(mip), cv.meta.bounds(mip))
    return Tasks(grid, make, f"delete {cv.cloudpath} mips {mip}-{mip + num_mips - 1}",
                 mips=range(mip, mip + num_mips))


def create_image_shard_transfer_tasks(
    src_layer_path: str, dst_layer_path: str, mip: int = 0, chunk_size: Optional[Sequence[int]] = None,
    encoding: Optional[str] = None, bounds: Optional[Bbox] = None, bounds_mip: int = 0,
    fill_missing: bool = False, translate: Sequence[int] = (0, 0, 0),
    dest_voxel_offset: Optional[Sequence[int]] = None, agglomerate: bool = False,
    timestamp: Optional[int] = None, memory_target: int = MEMORY_TARGET, clean_info: bool = False,
    encoding_level: Optional[int] = None, truncate_scales: bool = True, compress="auto", cutout: bool = False,
    minishard_index_encoding: str = "gzip", stop_layer: Optional[int] = None,
    encoding_effort: Optional[int] = None, use_https_for_source: bool = False,
) -> Tasks:
    """Igneous's sharded transfer: one task per destination shard (see create_transfer_tasks).
    Minishard indices are always gzipped."""
    return create_transfer_tasks(
        src_layer_path, dst_layer_path, mip=mip, chunk_size=chunk_size, encoding=encoding, bounds=bounds,
        bounds_mip=bounds_mip, fill_missing=fill_missing, translate=translate,
        dest_voxel_offset=dest_voxel_offset, agglomerate=agglomerate, timestamp=timestamp,
        memory_target=memory_target, clean_info=clean_info, encoding_level=encoding_level,
        compress=compress, stop_layer=stop_layer, encoding_effort=encoding_effort, sharded=True)


def create_touch_tasks(cloudpath: str, mip: int = 0, shape: Sequence[int] = (2048, 2048, 64),
                       bounds=None) -> Tasks:
    """Tasks that read `bounds` (voxels of mip 0; default the whole volume) of `mip` box by box,
    each failing where a chunk is missing or unreadable: Igneous's check that a layer is whole.
    Nothing is written but the layer's provenance."""
    cv = open_layer(cloudpath, mip)
    region, shape = region_at(cv, mip, bounds, bounds_mip=0), check_vec("--shape", shape)
    record_provenance(cv, {"task": "TouchTask", "mip": mip, "shape": ints(shape),
                           "bounds": [ints(region.minpt), ints(region.maxpt)]})
    make = lambda box: partial(TouchTask, cloudpath=cv.cloudpath, mip=mip, shape=ints(box.size3()),
                               offset=ints(box.minpt))
    return Tasks(Grid(region, shape, cv.meta.voxel_offset(mip), region), make,
                 f"read {cv.cloudpath} mip {mip} for missing chunks")
