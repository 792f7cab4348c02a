"""Measurement tasks: partial statistics per block, then merge tasks that each own a label range.

Files live under SEG/KEY/measure/ (KEY: the mip's key):

    measure.json          the forge step's grid, layers and column names (see MeasureRecord)
    parts/BOX.part        one block's partial statistics (format below), written whole
    merge.json            the label ranges of the merge step
    results/LO-HI.npz     final columns of the labels LO <= label < HI (20-digit, zero-padded)

A part file (all integers little-endian, 8 bytes each): magic b"IGMEAS02", N rows, K columns,
the entries of each sparse table of measure.SPARSE (histogram, nucleus pairs, hull corners,
nucleus histogram), SAMPLES labels spread over the sorted labels (the first and the last among
them), then the sections labels[N], columns[N*K] (row-major, int64 or float64 by column), each
table's starts[N], then each table's keys and counts. A merge task
reads the header and the labels of each part, then only the rows and sparse entries of its own
range, with byte-range reads.
"""
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox
from taskqueue import queueable

from igneous_like import measure
from igneous_like.errors import UserError
from igneous_like.grid import Grid, TaskBox
from igneous_like.stage import Record, WorkDir, id_samples, npz

RECORD = "measure.json"
MERGE_RECORD = "merge.json"
MAGIC = b"IGMEAS02"
SAMPLES = 17
HEADER = struct.Struct("<8s" + "Q" * (2 + len(measure.SPARSE) + SAMPLES))
_U8 = np.dtype("<u8")


@dataclass(frozen=True)
class MeasureRecord(Record):
    """What the forge step did, so merge and export find every part and know the columns."""
    mip: int
    bounds: Tuple[int, ...]  # x0,y0,z0,x1,y1,z1 voxels
    shape: Tuple[int, int, int]
    resolution: Tuple[float, float, float]
    columns: Tuple[str, ...]
    image: Optional[str] = None
    nuclei: Optional[str] = None
    integer_image: bool = False
    fill_missing: bool = False
    planar: bool = False  # a single-slice layer: 2-D columns
    float_bins: Optional[Tuple[float, float, int]] = None  # a float image counted in these bins

    @property
    def float_image(self) -> bool:
        """A float image counted value by value (exact), not in bins."""
        return self.image is not None and not self.integer_image and self.float_bins is None

    @property
    def box(self) -> Bbox:
        return Bbox(self.bounds[:3], self.bounds[3:])

    @property
    def grid(self) -> Grid:
        return Grid.over(self.box, self.shape)


def part_name(box: Bbox) -> str:
    return f"parts/{box.to_filename()}.part"


def result_name(low: int, high: int) -> str:
    return f"results/{low:020d}-{high:020d}.npz"


def encode_part(partial: measure.Partial, columns: Sequence[str]) -> bytes:
    """The bytes of a part file (layout in the module docstring)."""
    n = len(partial)
    samples = id_samples(partial.labels, SAMPLES)
    tables = [getattr(partial, name) for name in measure.SPARSE]
    header = HEADER.pack(MAGIC, n, len(columns), *[t[0].size for t in tables], *[int(s) for s in samples])
    records = np.empty((n, len(columns)), _U8)
    for k, name in enumerate(columns):
        records[:, k] = partial.columns[name].astype(measure.column_dtype(name)).view(_U8)
    sections = [partial.labels.astype(_U8), records.ravel()]
    sections += [np.searchsorted(t[0], partial.labels).astype(_U8) for t in tables]
    sections += [a.astype(_U8) for t in tables for a in t[1:]]
    return header + b"".join(np.ascontiguousarray(s).tobytes() for s in sections)


@dataclass(frozen=True)
class PartHeader:
    name: str
    rows: int
    num_columns: int
    sparse: Tuple[int, ...]  # entries of each table of measure.SPARSE
    samples: np.ndarray

    @classmethod
    def parse(cls, name: str, data: bytes) -> "PartHeader":
        magic, rows, num_columns, *rest = HEADER.unpack(data[:HEADER.size])
        if magic != MAGIC:
            raise UserError(f"{name} is not a measurement part of this version (starts with {magic!r}); "
                             "run measure forge again")
        tables = len(measure.SPARSE)
        return cls(name, rows, num_columns, tuple(rest[:tables]), np.asarray(rest[tables:], _U8))

    def section(self, index: int) -> int:
        """Byte offset of section `index`: 0 labels, 1 columns, 2.. the starts of each sparse table,
        then each table's values and counts."""
        sizes = [self.rows, self.rows * self.num_columns] + [self.rows] * len(self.sparse)
        sizes += [size for size in self.sparse for _ in range(2)]
        return HEADER.size + 8 * sum(sizes[:index])

    def overlaps(self, low: int, high: int) -> bool:
        return self.rows > 0 and int(self.samples[0]) < high and int(self.samples[-1]) >= low


def ranged(files: CloudFiles, requests: List[Tuple[str, int, int]]) -> Dict[Tuple[str, int, int], np.ndarray]:
    """Byte ranges (path, start, end) of many files in one batch, as uint64 arrays keyed by the
    request; empty ranges are not fetched."""
    wanted = [{"path": p, "start": a, "end": b} for p, a, b in requests if b > a]
    out = {(p, a, b): np.zeros(0, _U8) for p, a, b in requests if b <= a}
    for result in files.get(wanted, raise_errors=True) if wanted else []:
        if result["content"] is None:
            raise FileNotFoundError(f"{files.cloudpath}/{result['path']} is missing")
        start, end = result["byte_range"]
        out[result["path"], start, end] = np.frombuffer(result["content"], _U8)
    return out


def read_headers(files: CloudFiles, names: List[str]) -> List[PartHeader]:
    contents = ranged(files, [(name, 0, HEADER.size) for name in names])
    return [PartHeader.parse(name, contents[name, 0, HEADER.size].tobytes()) for name in names]


class RangeReader:
    """Reads sections of many parts, one batch of byte ranges per round."""

    def __init__(self, files: CloudFiles):
        self.files = files
        self.data: Dict[Tuple[str, int, int], np.ndarray] = {}

    def fetch(self, requests: List[Tuple[PartHeader, int, int, int]]) -> List[np.ndarray]:
        """Entries first..stop-1 of a section (8-byte entries, the columns section by row) per part."""
        keys = [self.key(h, section, first, stop) for h, section, first, stop in requests]
        self.data = ranged(self.files, keys)
        return [self.data[key] for key in keys]

    @staticmethod
    def key(h: PartHeader, section: int, first: int, stop: int) -> Tuple[str, int, int]:
        width = 8 * (h.num_columns if section == 1 else 1)
        return h.name, h.section(section) + width * first, h.section(section) + width * stop


def read_range(files: CloudFiles, headers: List[PartHeader], columns: Sequence[str], low: int,
               high: int) -> List[measure.Partial]:
    """The rows low <= label < high of every part, with their sparse entries."""
    headers = [h for h in headers if h.overlaps(low, high)]
    tables = len(measure.SPARSE)
    reader = RangeReader(files)
    labels = reader.fetch([(h, 0, 0, h.rows) for h in headers])
    spans = [(int(np.searchsorted(found, np.uint64(low))), int(np.searchsorted(found, np.uint64(high))))
             for found in labels]
    requests = []
    for h, (a, b) in zip(headers, spans):  # the next row's starts close this range's sparse entries
        requests += [(h, 1, a, b)] + [(h, 2 + t, a, min(b + 1, h.rows)) for t in range(tables)]
    rows = reader.fetch(requests)
    bounds = []  # per part and table: the entry offsets of each row, then the end
    for k, (h, (a, b)) in enumerate(zip(headers, spans)):
        starts = [rows[(1 + tables) * k + 1 + t].astype(np.int64) for t in range(tables)]
        bounds.append([np.r_[s[:b - a], h.sparse[t] if b >= h.rows else s[b - a]]
                       for t, s in enumerate(starts)])
    first = 2 + tables
    sparse = reader.fetch([(h, first + 2 * t + j, int(edges[t][0]), int(edges[t][-1]))
                           for h, edges in zip(headers, bounds) for t in range(tables) for j in range(2)])
    out = []
    for k, (h, (a, b), edges) in enumerate(zip(headers, spans, bounds)):
        part_labels = labels[k][a:b]
        records = rows[(1 + tables) * k].reshape(b - a, h.num_columns)
        cols = {name: records[:, j].copy().view(measure.column_dtype(name)) for j, name in enumerate(columns)}
        values = [array.view(np.int64) for array in sparse[2 * tables * k:2 * tables * (k + 1)]]
        out.append(measure.Partial(part_labels, cols, *(
            (np.repeat(part_labels, np.diff(edges[t])), values[2 * t], values[2 * t + 1])
            for t in range(tables))))
    return out


def read_box(path: str, mip: int, box: Bbox, fill_missing: bool) -> np.ndarray:
    cv = CloudVolume(path, mip=mip, fill_missing=fill_missing, progress=False)
    return np.asfortranarray(np.asarray(cv.image.download(box, mip))[..., 0])


@queueable
def MeasureTask(layer_path: str, work: str, offset: Sequence[int], shape: Sequence[int]) -> None:
    """Partial statistics of one block (its mesh read with one voxel of overlap on the high
    faces for the surface area); written whole as the block's part file."""
    from igneous_like.tasks.mesh import MeshOptions, read_labels
    work = WorkDir(work)
    record = work.load(RECORD, MeasureRecord)
    cv = CloudVolume(layer_path, mip=record.mip, fill_missing=record.fill_missing, progress=False)
    box = TaskBox.at(offset, shape).write
    image = None if record.image is None else read_box(record.image, record.mip, box, record.fill_missing)
    if record.float_bins is not None:
        image = measure.bin_index(image, record.float_bins)
    nuclei = None if record.nuclei is None else read_box(record.nuclei, record.mip, box, record.fill_missing)
    if record.planar:  # 2 pixels around the slice for the perimeter; no mesh
        halo = TaskBox.at(box.minpt, box.size3(), record.box, low=(2, 2, 0), high=(2, 2, 0))
        padded = np.pad(read_box(layer_path, record.mip, halo.read, record.fill_missing), halo.padding)
        own, areas = padded[(box - halo.reach.minpt).to_slices()], None
    else:
        padded, padded_box = read_labels(cv, box, record.mip, MeshOptions(fill_missing=record.fill_missing))
        own = padded[(box - padded_box.minpt).to_slices()]
        areas = measure.surface_areas(padded, record.resolution)
    origin = box.minpt - record.box.minpt
    partial = measure.block_partial(np.asfortranarray(own), origin, image, nuclei, areas,
                                    halo=padded if record.planar else None)
    work.put_part(part_name(box), encode_part(partial, record.columns))


@queueable
def MeasureMergeTask(work: str, low: int, high: int) -> None:
    """Merge every part's rows of the labels low <= label < high into their final columns."""
    work = WorkDir(work)
    record = work.load(RECORD, MeasureRecord)
    headers = read_headers(work.files, [part_name(box) for box in record.grid])
    parts = read_range(work.files, headers, record.columns, low, high)
    merged = measure.merge(parts) if parts else empty_partial(record.columns)
    merged = measure.select(merged, merged.columns["count"] > 0)
    table = measure.statistics(merged, record.resolution, record.box.minpt, image=record.image is not None,
                               nuclei=record.nuclei is not None, planar=record.planar,
                               float_image=record.float_image, bins=record.float_bins)
    work.put_part(result_name(low, high), npz(table, compress=False))


@queueable
def RingTask(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
             width: float, compress: Union[str, bool, None] = None) -> None:
    """One box of the rings layer: the box read with the ring's reach around it."""
    from igneous_like.tasks.postprocess import read, write
    cv = CloudVolume(src_path, mip=mip, progress=False)
    resolution = cv.meta.resolution(mip)
    box = TaskBox.at(offset, shape, cv.meta.bounds(mip), low=measure.ring_reach(resolution, width),
                     high=measure.ring_reach(resolution, width))
    labels = np.pad(read(src_path, mip, box.read), box.padding)
    write(dest_path, mip, box.write, measure.ring_labels(labels, resolution, width), compress)


def empty_partial(columns: Sequence[str]) -> measure.Partial:
    return measure.Partial(np.zeros(0, _U8), {name: measure.empty_column(name, 0) for name in columns})
