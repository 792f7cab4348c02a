"""Chunk-level reading and writing that CloudVolume's whole-box download and upload do at a cost,
and writing an array as a new one-mip layer."""
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Callable, Iterable, Iterator, Sequence, Tuple, Union

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume, chunks
from cloudvolume.datasource import generate_chunks
from cloudvolume.datasource.precomputed.common import cdn_cache_control, content_type, should_compress
from cloudvolume.datasource.precomputed.image.rx import decode
from cloudvolume.datasource.precomputed.sharding import synthesize_shard_files
from cloudvolume.lib import Bbox, Vec

from igneous_like import settings
from igneous_like.errors import MissingChunkError
from igneous_like.grid import Grid
from igneous_like.shards import shard_shape

GZIP_LEVEL = settings.gzip_level()
"""gzip level of written chunks (see settings.gzip_level)."""


THREADS = 16  # for chunk transfers: gzip releases the GIL, and object stores answer each request slowly


def upload(cv: CloudVolume, img: np.ndarray, offset: Sequence[int], mip: int) -> None:
    """Write `img` (x,y,z[,c], chunk-aligned at `offset`) into `cv` at `mip` as cv.image.upload
    does, but gzipped at GZIP_LEVEL (CloudVolume compresses before CloudFiles sees a level: always
    9), each chunk encoded, compressed and put by a thread pool that returns as soon as the last
    is done (CloudFiles' and CloudVolume's pools check every 0.1 s, and a task writes many times).
    Sharded scales (one shard file per call, as CloudVolume requires), other compressions and
    mem:// layers (arrays, not bytes) go through CloudVolume.
    """
    encoding = cv.meta.encoding(mip)
    if cv.image.is_sharded(mip):
        for box in shard_boxes(cv, Bbox(offset, np.add(offset, img.shape[:3])), mip):
            low, high = box.minpt - Vec(*offset), box.maxpt - Vec(*offset)
            cv.image.upload(img[low.x:high.x, low.y:high.y, low.z:high.z], box.minpt, mip)
        return
    if (cv.meta.path.protocol == "mem"
            or should_compress(encoding, cv.compress, cv.cache) != "gzip"):
        cv.image.upload(img, offset, mip)
        return
    meta, remote = cv.meta, CloudFiles(cv.meta.cloudpath)
    files, stale = split_chunks(cv, img.reshape(img.shape[:3] + (-1,), order="F"), offset, mip)

    def put(name: str, part: np.ndarray) -> None:
        remote.put(name, chunks.encode(part, encoding, meta.compressed_segmentation_block_size(mip),
                                       compression_params=meta.compression_params(mip)),
                   compress="gzip", compression_level=GZIP_LEVEL, content_type=content_type(encoding),
                   cache_control=cdn_cache_control(cv.cdn_cache))

    in_threads(lambda item: put(*item), files)
    if stale:
        remote.delete(stale)


def shard_boxes(cv: CloudVolume, box: Bbox, mip: int) -> Grid:
    """The parts of `box` one shard file each (CloudVolume writes one shard per upload)."""
    return Grid(box, shard_shape(cv, mip), cv.meta.voxel_offset(mip), box)


def in_threads(work: Callable, items: Iterable) -> list:
    """[work(item) for item in items] on THREADS threads, back as soon as the last is done (the pools
    of CloudFiles' puts and gets, and of CloudVolume, check every 0.1 s: a cost on every call)."""
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(work, items))


def split_chunks(cv: CloudVolume, img: np.ndarray, offset: Sequence[int], mip: int) -> Tuple[list, list]:
    """([(file name, chunk's voxels)], [names of chunks to delete: all background, with
    delete_black_uploads]); chunks at the dataset's edge are cut short as their files are."""
    meta, files, stale = cv.meta, [], []
    volume_end = meta.bounds(mip).maxpt
    for start, _, chunk_start, chunk_end in generate_chunks(meta, img, offset, mip):
        chunk_end = np.minimum(chunk_end, volume_end)
        part = img[tuple(slice(a, a + n) for a, n in zip(start, chunk_end - chunk_start))]
        name = meta.join(meta.key(mip), Bbox(chunk_start, chunk_end).to_filename())
        if cv.delete_black_uploads and not np.any(part != cv.background_color):
            stale.append(name)
        else:
            files.append((name, part))
    return files, stale


def chunk_parts(cv: CloudVolume, box: Bbox, mip: int, ahead: int = 64) -> Iterator[np.ndarray]:
    """The voxels of `box` at `mip` (x,y,z,c), one chunk's part at a time, never assembled: work
    that treats voxels independently (counting) saves the copy into a box-sized array, which costs
    as much as decoding, and its memory. From object stores, a thread pool reads and decodes up to
    `ahead` chunks while the caller works on earlier ones. Sharded scales come whole, through
    CloudVolume."""
    if cv.image.is_sharded(mip):
        yield np.asarray(cv.image.download(box, mip))
        return
    meta, files = cv.meta, CloudFiles(cv.meta.cloudpath)

    def load(chunk: Bbox) -> np.ndarray:
        content = files.get(meta.join(meta.key(mip), chunk.to_filename()))
        img = decode(meta, chunk, content, cv.fill_missing, mip, cv.background_color, allow_none=False)
        return img[(Bbox.intersection(chunk, box) - chunk.minpt).to_slices()]

    chunks_left = iter(Grid(box, meta.chunk_size(mip), meta.voxel_offset(mip), meta.bounds(mip)))
    if meta.path.protocol == "file":  # local reads are quick: threads' GIL hand-offs would cost more
        yield from map(load, chunks_left)
        return
    with ThreadPoolExecutor(max_workers=THREADS) as pool:  # not CloudFiles.get: it polls
        pending = deque(pool.submit(load, chunk) for chunk in islice(chunks_left, ahead))
        while pending:
            part = pending.popleft().result()
            for chunk in islice(chunks_left, 1):
                pending.append(pool.submit(load, chunk))
            yield part


def missing_chunk_error(err: Exception) -> MissingChunkError:
    """CloudVolume's EmptyVolumeException (its text is only the chunk's name) as one line naming
    the layer, mip and chunk, read from the decoder's frame that raised it, and what to do."""
    frame = err.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    names = frame.tb_frame.f_locals if frame is not None else {}
    layer = getattr(names.get("meta"), "cloudpath", "a layer")
    mip = names.get("mip")
    return MissingChunkError(f"chunk {err} of {layer}{'' if mip is None else f' (mip {mip})'} is missing: "
                             "write it, or run with --fill-missing to read missing chunks as background")


def write_array(path: str, data: np.ndarray, layer_type: str, resolution: Sequence[int] = (16, 16, 40),
                offset: Sequence[int] = (0, 0, 0), chunk: Sequence[int] = (64, 64, 64),
                encoding: str = "raw", compress: Union[str, bool] = False) -> str:
    """Create the layer's info and write `data` (x,y,z) or (x,y,z,channels) at `offset`; returns `path`."""
    info = CloudVolume.create_new_info(
        num_channels=data.shape[3] if data.ndim == 4 else 1, layer_type=layer_type,
        data_type=np.dtype(data.dtype).name, encoding=encoding, resolution=list(resolution),
        voxel_offset=list(offset), volume_size=list(data.shape[:3]), chunk_size=list(chunk))
    cv = CloudVolume(path, info=info, compress=compress, progress=False)
    cv.commit_info()
    cv[cv.bounds] = np.asfortranarray(data)
    return path


def raw_chunks(cv: CloudVolume, box: Bbox, mip: int) -> dict:
    """The chunk files of chunk-aligned `box` at `mip` as stored (their encoding, gzip or br taken
    off), by grid point (x, y, z chunk indices); missing chunks are absent."""
    files = cv.image.download_files(box, mip, decompress=True)
    if cv.image.is_sharded(mip):
        point_of = {code: point for point, code in morton_codes(cv, box, mip).items()}
        return {point_of[int(code)]: data for code, data in files.items() if data is not None}
    chunk, offset = cv.meta.chunk_size(mip), cv.meta.voxel_offset(mip)
    return {tuple(int(p) for p in (Bbox.from_filename(name.rsplit("/", 1)[-1]).minpt - offset) // chunk): data
            for name, data in files.items() if data is not None}


def morton_codes(cv: CloudVolume, box: Bbox, mip: int) -> dict:
    """Each chunk grid point of `box` at sharded `mip` -> its morton code (its id in the shards)."""
    points, codes = cv.image.morton_codes(box, mip, same_shard=False)
    return {tuple(int(p) for p in point): int(code) for point, code in zip(points, codes)}


def put_raw_chunks(cv: CloudVolume, files: dict, box: Bbox, mip: int) -> None:
    """Write encoded chunk files (raw_chunks' form) that cover chunk-aligned `box` at `mip`: as chunk
    files, or as the whole shard files `box` spans."""
    remote = CloudFiles(cv.meta.join(cv.meta.cloudpath, cv.meta.key(mip)))
    if cv.image.is_sharded(mip):
        code_of = morton_codes(cv, box, mip)
        by_code = {code_of[point]: data for point, data in files.items()}
        shards = synthesize_shard_files(cv.image.shard_spec(mip), by_code)
        remote.puts(list(shards.items()), compress=None, content_type="application/octet-stream")
        return
    chunk, offset, bounds = cv.meta.chunk_size(mip), cv.meta.voxel_offset(mip), cv.meta.bounds(mip)
    encoding = cv.meta.encoding(mip)

    def name(point) -> str:
        low = offset + Vec(*point) * chunk
        return Bbox(low, Vec(*np.minimum(low + chunk, bounds.maxpt))).to_filename()

    remote.puts([(name(point), data) for point, data in files.items()],
                compress=should_compress(encoding, cv.compress, cv.cache), compression_level=GZIP_LEVEL,
                content_type=content_type(encoding), cache_control=cdn_cache_control(cv.cdn_cache))
