"""Chunk-level reading and writing that CloudVolume's whole-box download and upload do at a cost,
and writing an array as a new one-mip layer."""
import os
from itertools import islice
from typing import Iterator, Sequence, Union

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume, chunks
from cloudvolume.datasource import generate_chunks
from cloudvolume.datasource.precomputed.common import cdn_cache_control, content_type, should_compress
from cloudvolume.datasource.precomputed.image.rx import decode
from cloudvolume.lib import Bbox

from igneous_like.grid import Grid

GZIP_LEVEL = int(os.environ.get("IGNEOUS_LIKE_GZIP_LEVEL", 7))
"""gzip level of written chunks: 7 compresses in half the CPU time of CloudFiles' 9 and leaves the
real segmentation's chunks about 10% larger; workers take IGNEOUS_LIKE_GZIP_LEVEL (1-12) instead."""


def upload(cv: CloudVolume, img: np.ndarray, offset: Sequence[int], mip: int) -> None:
    """Write `img` (x,y,z[,c], chunk-aligned at `offset`) into `cv` at `mip`, as cv.image.upload
    does, but gzip at GZIP_LEVEL in CloudFiles' threads: CloudVolume compresses before CloudFiles
    sees a level, always at 9. Sharded scales, other compressions and mem:// layers (which hold
    arrays, not bytes) go through CloudVolume."""
    encoding = cv.meta.encoding(mip)
    if (cv.image.is_sharded(mip) or cv.meta.path.protocol == "mem"
            or should_compress(encoding, cv.compress, cv.cache) != "gzip"):
        cv.image.upload(img, offset, mip)
        return
    img = img.reshape(img.shape[:3] + (-1,), order="F")
    meta, files, stale = cv.meta, [], []
    volume_end = meta.bounds(mip).maxpt
    for start, _, chunk_start, chunk_end in generate_chunks(meta, img, offset, mip):
        chunk_end = np.minimum(chunk_end, volume_end)  # the dataset's edge cuts chunks short
        part = img[tuple(slice(a, a + n) for a, n in zip(start, chunk_end - chunk_start))]
        name = meta.join(meta.key(mip), "_".join(f"{a}-{b}" for a, b in zip(chunk_start, chunk_end)))
        if cv.delete_black_uploads and not np.any(part != cv.background_color):
            stale.append(name)
            continue
        files.append((name, part))
    encoded = ((name, chunks.encode(part, encoding, meta.compressed_segmentation_block_size(mip),
                                    compression_params=meta.compression_params(mip))) for name, part in files)
    remote = CloudFiles(meta.cloudpath)
    remote.puts(encoded, compress="gzip", compression_level=GZIP_LEVEL, content_type=content_type(encoding),
                cache_control=cdn_cache_control(cv.cdn_cache))
    if stale:
        remote.delete(stale)


def chunk_parts(cv: CloudVolume, box: Bbox, mip: int, batch: int = 64) -> Iterator[np.ndarray]:
    """The voxels of `box` at `mip` (x,y,z,c), one chunk's part at a time, never assembled: work
    that treats voxels independently (counting) saves the copy into a box-sized array, which costs
    as much as decoding, and its memory. Sharded scales come whole, through CloudVolume."""
    if cv.image.is_sharded(mip):
        yield np.asarray(cv.image.download(box, mip))
        return
    meta, files = cv.meta, CloudFiles(cv.meta.cloudpath)
    chunks_left = iter(Grid(box, meta.chunk_size(mip), meta.voxel_offset(mip), meta.bounds(mip)))
    while group := list(islice(chunks_left, batch)):
        names = [meta.join(meta.key(mip), chunk.to_filename()) for chunk in group]
        contents = files.get(names, return_dict=True)
        for chunk, name in zip(group, names):
            img = decode(meta, chunk, contents[name], cv.fill_missing, mip, cv.background_color,
                         allow_none=False)
            yield img[(Bbox.intersection(chunk, box) - chunk.minpt).to_slices()]


def write_array(path: str, data: np.ndarray, layer_type: str, resolution: Sequence[int] = (16, 16, 40),
                offset: Sequence[int] = (0, 0, 0), chunk: Sequence[int] = (64, 64, 64),
                encoding: str = "raw", compress: Union[str, bool] = False) -> str:
    """Create the layer's info and write `data` (x,y,z) at `offset`; returns `path`."""
    info = CloudVolume.create_new_info(
        num_channels=1, layer_type=layer_type, data_type=np.dtype(data.dtype).name, encoding=encoding,
        resolution=list(resolution), voxel_offset=list(offset), volume_size=list(data.shape),
        chunk_size=list(chunk))
    cv = CloudVolume(path, info=info, compress=compress, progress=False)
    cv.commit_info()
    cv[cv.bounds] = np.asfortranarray(data)
    return path
