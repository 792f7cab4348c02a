"""Image tasks: downsample, transfer (rechunk, translate, reshard) and delete one box.

Every task reads or writes whole chunks (or whole shards) only, so tasks never touch the same
file and a task killed half way and run again leaves the same output.
"""
from dataclasses import asdict, dataclass
from typing import Sequence, Tuple, Union

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume, chunks
from cloudvolume.lib import Bbox, Vec
from taskqueue import queueable

from igneous_like.downsample import downsample
from igneous_like.grid import TaskBox
from igneous_like.layers import put_raw_chunks, raw_chunks, upload
from igneous_like.paths import check_info


@dataclass(frozen=True)
class PyramidOptions:
    """How a task reads its source and downsamples and writes its mips; travels as a JSON dict."""
    factor: Tuple[int, int, int] = (2, 2, 1)
    method: str = "avg"
    sparse: bool = False
    fill_missing: bool = False
    delete_black_uploads: bool = False
    background_color: Union[int, float] = 0
    compress: Union[str, bool, None] = None

    def __post_init__(self):
        object.__setattr__(self, "factor", tuple(int(f) for f in self.factor))

    def to_json(self) -> dict:
        return asdict(self)


def mip_ratio(cv: CloudVolume, mip: int, to_mip: int) -> Vec:
    """How many voxels of `mip` one voxel of `to_mip` spans, per axis."""
    return Vec(*np.round(cv.meta.resolution(to_mip) / cv.meta.resolution(mip)).astype(int))


def mip_box(cv: CloudVolume, box: Bbox, mip: int, to_mip: int, clip: bool = True) -> Bbox:
    """The box at `to_mip` covered by `box` at `mip`, rounded outward (and clipped to the volume).

    Blocks are anchored at each mip's voxel offset: this keeps every mip equal to downsampling
    the whole volume, for any offset, and matches the offsets and sizes CloudVolume gives
    downsampled scales (offset floor(o/f), size ceil(s/f)).
    """
    ratio = mip_ratio(cv, mip, to_mip)
    origin, to_origin = cv.meta.voxel_offset(mip), cv.meta.voxel_offset(to_mip)
    start = to_origin + (box.minpt - origin) // ratio
    stop = to_origin - ((origin - box.maxpt) // ratio)  # ceiling division
    box = Bbox(start, stop)
    return Bbox.clamp(box, cv.meta.bounds(to_mip)) if clip else box


def open_volume(path: str, options: PyramidOptions) -> CloudVolume:
    """One handle (one info read) that reads and writes the way the options say."""
    return CloudVolume(
        path, progress=False, fill_missing=options.fill_missing, compress=options.compress,
        delete_black_uploads=options.delete_black_uploads,
        background_color=options.background_color,
    )


def read_box(cv: CloudVolume, box: Bbox, mip: int) -> np.ndarray:
    return np.asarray(cv.image.download(box, mip))


def write_pyramid(dest: CloudVolume, img: np.ndarray, box: Bbox, mip: int, num_mips: int,
                  options: PyramidOptions, write_first: bool) -> None:
    """Write `img` (the contents of `box` at `mip`) and `num_mips` downsamples of it."""
    if write_first:
        upload(dest, img, box.minpt, mip)
    mips = downsample(img, options.factor, num_mips, options.method, options.sparse)
    for level, out in enumerate(mips, start=mip + 1):
        upload(dest, out, mip_box(dest, box, mip, level).minpt, level)


@queueable
def DownsampleTask(layer_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                   num_mips: int, options: dict) -> None:
    """Read one box at `mip` and write mips mip+1 .. mip+num_mips of it."""
    opts = PyramidOptions(**options)
    box = TaskBox.at(offset, shape).write
    cv = open_volume(layer_path, opts)
    write_pyramid(cv, read_box(cv, box, mip), box, mip, num_mips, opts, write_first=False)


@queueable
def TransferTask(src_path: str, dest_path: str, mip: int, offset: Sequence[int],
                 shape: Sequence[int], translate: Sequence[int], num_mips: int,
                 options: dict) -> None:
    """Copy one destination box from the source (shifted by `translate`), then downsample it; where the
    box reaches past the source (a destination made larger in advance) its own voxels stay."""
    opts = PyramidOptions(**options)
    box = TaskBox.at(offset, shape).write
    src, dest = open_volume(src_path, opts), open_volume(dest_path, opts)
    wanted = box - Vec(*translate)
    copied = wanted == box and transcoded(src, dest, box, mip, opts)
    if copied and num_mips == 0:
        return
    inside = Bbox.intersection(wanted, src.meta.bounds(mip))
    if inside == wanted:
        img = read_box(src, wanted, mip)
    else:  # a destination larger than the source keeps its voxels outside it
        img = np.array(read_box(CloudVolume(dest_path, progress=False, fill_missing=True), box, mip))
        if not inside.subvoxel():
            where = tuple(map(slice, inside.minpt - wanted.minpt, inside.maxpt - wanted.minpt))
            img[where] = read_box(src, inside, mip)
    write_pyramid(dest, img, box, mip, num_mips, opts, write_first=not copied)


TRANSCODABLE = {("jpeg", "jxl"), ("jxl", "jpeg")}  # JPEG XL's lossless recompression of JPEG files


def transcoded(src: CloudVolume, dest: CloudVolume, box: Bbox, mip: int, opts: PyramidOptions) -> bool:
    """Copy `box` as chunk files re-encoded without decoding where that is exact and both layers have
    one chunk grid: JPEG into lossless (level 100) JPEG XL, which keeps the JPEG file inside, and
    such JPEG XL back into that very JPEG (as Igneous's transfers do). False where it cannot be (a
    missing chunk, JPEG XL not made from a JPEG): then the voxels are copied instead."""
    pair = (src.meta.encoding(mip), dest.meta.encoding(mip))
    same_grid = all(np.array_equal(getattr(src.meta, name)(mip), getattr(dest.meta, name)(mip))
                    for name in ("chunk_size", "voxel_offset", "volume_size"))
    lossless = pair[1] != "jxl" or (dest.meta.compression_params(mip)["level"] or 0) >= 100
    if pair not in TRANSCODABLE or not same_grid or not lossless or opts.delete_black_uploads:
        return False
    import imagecodecs  # JPEG XL's codec: a jxl layer on either side needs it (check_encoding says so)
    files = raw_chunks(src, box, mip)
    if len(files) != int(np.prod(np.ceil(box.size3() / src.meta.chunk_size(mip)))):
        return False
    try:
        recoded = dict(chunks.transcode(files, *pair, src_chunk_size_fn=None, dtype=src.dtype,
                                        compression_params={"level": 100}))
    except (imagecodecs.JpegxlError, ValueError):  # a JPEG XL file that holds no JPEG
        return False
    put_raw_chunks(dest, recoded, box, mip)
    return True


@queueable
def DeleteTask(layer_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
               num_mips: int) -> None:
    """Delete the chunks (or shard files) of one box at mips mip .. mip+num_mips-1."""
    cv = CloudVolume(layer_path, progress=False)
    check_info(cv.info, cv.cloudpath)  # a scale key must not lead into another layer
    box = TaskBox.at(offset, shape).write
    for level in range(mip, mip + num_mips):
        level_box = mip_box(cv, box, mip, level)
        if cv.image.is_sharded(level):
            _, codes = cv.image.morton_codes(level_box, mip=level, same_shard=False)
            reader = cv.image.shard_reader(level)
            filenames = sorted({reader.get_filename(code) for code in codes})
            CloudFiles(cv.meta.join(cv.cloudpath, cv.meta.key(level))).delete(filenames)
        else:
            cv.image.delete(level_box, level)


@queueable
def TouchTask(cloudpath: str, mip: int, shape: Sequence[int], offset: Sequence[int]) -> None:
    """Read one box (within the volume) with missing chunks an error: the task fails where a chunk is
    missing or cannot be decoded, so a queue of them checks that a layer is whole (Igneous's)."""
    cv = CloudVolume(cloudpath, mip=mip, fill_missing=False, progress=False)
    cv.image.download(TaskBox.at(offset, shape, cv.meta.bounds(mip)).read, mip)
