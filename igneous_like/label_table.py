"""Label tables: one compact, random-access file mapping uint64 labels to uint64 values.

Voxel counts (`image voxels sum`) and the connected-components relabeling are stored this way.
The layout (all integers little-endian uint64):

    bytes 0-7     magic b"IGLTAB01"
    bytes 8-15    N, the number of entries
    bytes 16-23   B, entries per block (4096)
    then          ceil(N / B) fences: the first label of each block
    then          N labels, strictly increasing
    then          N values, in the same order

A reader fetches the header and the fences (8 bytes per 4096 entries), then only the blocks
that can hold the labels it wants, with byte-range reads; so a worker looking up a few labels
in a table of billions reads kilobytes, on any storage CloudFiles reaches. Small tables are
read in one piece. With numpy alone: `np.frombuffer(data, "<u8")` and the layout above.
"""
import struct
from typing import Optional, Tuple

import numpy as np
from cloudfiles import CloudFiles

MAGIC = b"IGLTAB01"
HEADER = struct.Struct("<8sQQ")
BLOCK = 4096
WHOLE_FILE_BYTES = 1 << 20  # read tables up to this size in one request
_U8 = np.dtype("<u8")


def encode(labels: np.ndarray, values: np.ndarray, block: int = BLOCK) -> bytes:
    """The bytes of a table; labels must be strictly increasing."""
    labels = np.ascontiguousarray(labels, dtype=_U8)
    values = np.ascontiguousarray(values, dtype=_U8)
    if labels.shape != values.shape or labels.ndim != 1:
        raise ValueError("labels and values must be 1D arrays of the same length")
    if labels.size > 1 and not np.all(labels[1:] > labels[:-1]):
        raise ValueError("labels must be strictly increasing")
    fences = labels[::block]
    return b"".join((HEADER.pack(MAGIC, labels.size, block), fences.tobytes(), labels.tobytes(),
                     values.tobytes()))


def decode(data: bytes) -> Tuple[np.ndarray, np.ndarray]:
    """(labels, values) of a whole table."""
    count, block = _header(data[:HEADER.size])
    start = HEADER.size + 8 * _num_fences(count, block)
    labels = np.frombuffer(data, _U8, count, start)
    values = np.frombuffer(data, _U8, count, start + 8 * count)
    return labels, values


def _header(data: bytes) -> Tuple[int, int]:
    if data is None or len(data) < HEADER.size:
        raise ValueError("not a label table: too short")
    magic, count, block = HEADER.unpack(data[:HEADER.size])
    if magic != MAGIC:
        raise ValueError(f"not a label table: starts with {magic!r}, not {MAGIC!r}")
    return count, block


def _num_fences(count: int, block: int) -> int:
    return -(-count // block)


def split_url(url: str) -> Tuple[str, str]:
    """(directory, file name) of a file's cloud path."""
    directory, _, name = url.rstrip("/").rpartition("/")
    return directory, name


def write(url: str, labels: np.ndarray, values: np.ndarray) -> None:
    """Write a table to a cloud path (uncompressed, so that byte ranges can be read)."""
    directory, name = split_url(url)
    CloudFiles(directory).put(name, encode(labels, values), compress=None,
                              content_type="application/octet-stream")


class Table:
    """A label table at a cloud path, read lazily by byte ranges."""

    def __init__(self, url: str):
        directory, self.name = split_url(url)
        self.url = url
        self.files = CloudFiles(directory)
        head = self._get(0, HEADER.size)
        if head is None:
            raise FileNotFoundError(f"no label table at {url}")
        self.count, self.block = _header(head)
        self.labels_at = HEADER.size + 8 * _num_fences(self.count, self.block)
        self.values_at = self.labels_at + 8 * self.count
        self._fences = None
        self._whole = None
        if self.values_at + 8 * self.count <= WHOLE_FILE_BYTES:
            self._whole = decode(self._get(0, self.values_at + 8 * self.count))

    def __len__(self) -> int:
        return self.count

    def _get(self, start: int, end: int) -> Optional[bytes]:
        (result,) = self.files.get([{"path": self.name, "start": start, "end": end}], raise_errors=True)
        return result["content"]

    def _entries(self, first: int, stop: int) -> Tuple[np.ndarray, np.ndarray]:
        """Entries first..stop-1 by position."""
        return self._spans([(first, stop)])[0]

    def _spans(self, spans) -> list:
        """(labels, values) of each span (first, stop) of positions, fetched in one batch."""
        if self._whole is not None:
            return [(self._whole[0][a:b], self._whole[1][a:b]) for a, b in spans]
        requests = [{"path": self.name, "start": at + 8 * a, "end": at + 8 * b}
                    for a, b in spans if b > a for at in (self.labels_at, self.values_at)]
        parts = {result["byte_range"][0]: result["content"] for result in self.files.get(requests)}
        empty = np.zeros(0, _U8)
        return [(np.frombuffer(parts[self.labels_at + 8 * a], _U8),
                 np.frombuffer(parts[self.values_at + 8 * a], _U8)) if b > a else (empty, empty)
                for a, b in spans]

    def fences(self) -> np.ndarray:
        if self._fences is None:
            if self._whole is not None:
                self._fences = self._whole[0][::self.block]
            else:
                self._fences = np.frombuffer(self._get(HEADER.size, self.labels_at), _U8)
        return self._fences

    def read(self) -> Tuple[np.ndarray, np.ndarray]:
        """Every (label, value)."""
        return self._entries(0, self.count)

    def range(self, low: int, high: int) -> Tuple[np.ndarray, np.ndarray]:
        """Entries with low <= label < high, from one contiguous read."""
        if self.count == 0 or high <= low:
            return np.zeros(0, _U8), np.zeros(0, _U8)
        fences = self.fences()
        first_block = max(int(np.searchsorted(fences, np.uint64(low), "right")) - 1, 0)
        stop_block = int(np.searchsorted(fences, np.uint64(high), "left"))
        labels, values = self._entries(first_block * self.block, min(stop_block * self.block, self.count))
        inside = (labels >= np.uint64(low)) & (labels < np.uint64(high))
        return labels[inside], values[inside]

    def lookup(self, labels, default: int = 0) -> np.ndarray:
        """The value of each label (`default` where a label is absent), reading only their blocks."""
        wanted = np.asarray(labels, dtype=_U8).ravel()
        out = np.full(wanted.size, default, dtype=_U8)
        if self.count == 0 or wanted.size == 0:
            return out.reshape(np.shape(labels))
        fences = self.fences()
        blocks = np.searchsorted(fences, wanted, "right") - 1
        needed = np.unique(blocks[blocks >= 0])
        spans = [(int(b) * self.block, min((int(b) + 1) * self.block, self.count)) for b in needed]
        for block, (keys, values) in zip(needed, self._spans(spans)):
            mine = np.flatnonzero(blocks == block)
            position = np.minimum(np.searchsorted(keys, wanted[mine]), keys.size - 1)
            found = keys[position] == wanted[mine]
            out[mine[found]] = values[position[found]]
        return out.reshape(np.shape(labels))


def voxel_counts_url(cv, mip: int, parts: bool = False) -> str:
    """LAYER/KEY/stats/voxel_counts.ltab of a CloudVolume (or the folder of per-task parts)."""
    stats = cv.meta.join(cv.cloudpath, cv.meta.key(mip), "stats")
    return f"{stats}/voxel_counts" if parts else f"{stats}/voxel_counts.ltab"


def read_voxel_counts(layer_path: str, labels=None, mip: int = 0):
    """Voxel counts per label of a layer, as written by `igneous-like image voxels sum`.

    labels=None: returns (labels, counts), two uint64 arrays sorted by label (background 0
    included when present). Otherwise returns the count of each given label (an array shaped
    like `labels`, 0 for labels that do not occur), reading only the blocks of the file that
    hold them. For example:

        from igneous_like.label_table import read_voxel_counts
        labels, counts = read_voxel_counts("file:///data/seg")
        sizes = read_voxel_counts("gs://bucket/seg", labels=[12, 99])
    """
    from igneous_like.task_creation.common import open_layer
    url = voxel_counts_url(open_layer(layer_path, mip), mip)
    try:
        table = Table(url)
    except FileNotFoundError:
        from igneous_like.errors import UserError
        raise UserError(f"no voxel counts at {url}: run `igneous-like image voxels count` and "
                        "then `image voxels sum` first") from None
    return table.read() if labels is None else table.lookup(labels)
