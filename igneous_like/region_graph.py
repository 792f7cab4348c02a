"""Region adjacency graphs of fragments with exactly mergeable boundary statistics (numpy only).

A contact is a pair of 6-neighbouring voxels (v, v + e_axis) holding two different nonzero
fragments. Its boundary value is the larger of the two voxels' boundary values, quantized to
an integer level q in 0..65535 (uint8 v becomes v * 257 exactly; float32 x in [0, 1] becomes
round(x * 65535) in float64). Every statistic is an integer, so tables merged in any grouping or order
are bit-identical: per edge (a < b) the contact count, sum of q, sum of q^2, min and max q,
and a 256-bin histogram (bin q // 257, so uint8 value v lands in bin v), kept sparse as
(edge index, channel, bin, count) rows; per node the voxel count and the sums of its voxels'
coordinates x, y, z, x^2, y^2, z^2, xy, xz, yz (MOMENTS; from the volume's origin, so a region
of up to 2^31 voxels in a volume under 2^16 voxels a side fits int64), which add as tasks and
regions merge. A boundary map of C channels (e.g. membrane, mitochondria, cytoplasm) gives every
contact C values, each the larger of the two voxels' values in that channel, and every edge
statistic C columns.

A task reads one extra voxel past its high faces (clipped at the volume end) and counts only
the contacts whose lower voxel lies inside its own box, so each face between tasks is counted
exactly once and the whole graph does not depend on the task shape.
"""
from dataclasses import dataclass, fields, replace
from typing import Iterable, Sequence, Tuple

import numpy as np

LEVELS = 65535  # the quantized boundary value of 1.0
BINS = 256
BIN_WIDTH = LEVELS // (BINS - 1)  # 257: q // 257 maps uint8 value v (q = 257 v) to bin v


MOMENTS = ("x", "y", "z", "xx", "yy", "zz", "xy", "xz", "yz")


def quantize(boundary: np.ndarray) -> np.ndarray:
    """Boundary values as uint16 levels 0..65535; uint8 0..255 and float 0..1 both mean 0..1."""
    boundary = np.asarray(boundary)
    if boundary.dtype == np.uint8:
        return boundary.astype(np.uint16) * np.uint16(BIN_WIDTH)
    if boundary.dtype.kind != "f":
        raise ValueError(f"boundary values must be uint8 or float, not {boundary.dtype}")
    return np.rint(np.clip(np.nan_to_num(boundary.astype(np.float64)), 0.0, 1.0) * LEVELS).astype(np.uint16)


@dataclass
class RegionGraph:
    """Edges sorted by (a, b) with a < b, their statistics (one column per boundary channel),
    the sparse histograms, node sizes and coordinate moments."""
    a: np.ndarray  # uint64 fragment ids
    b: np.ndarray
    count: np.ndarray  # int64 contacts
    total: np.ndarray  # int64 (edges, channels) sum of levels
    squares: np.ndarray  # int64 (edges, channels) sum of squared levels
    low: np.ndarray  # uint16 (edges, channels) min level
    high: np.ndarray  # uint16 (edges, channels) max level
    hist_edge: np.ndarray  # int64 edge index of each histogram row, rows sorted by (edge, channel, bin)
    hist_channel: np.ndarray  # uint8
    hist_bin: np.ndarray  # uint8
    hist_count: np.ndarray  # int64
    nodes: np.ndarray  # uint64 sorted fragment ids
    sizes: np.ndarray  # int64 voxels
    moments: np.ndarray  # int64 (nodes, 9) coordinate sums in MOMENTS order

    @property
    def num_edges(self) -> int:
        return int(self.a.size)

    @property
    def channels(self) -> int:
        return int(self.total.shape[1])

    def arrays(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def equals(self, other: "RegionGraph") -> bool:
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))


def empty_graph(channels: int = 1) -> RegionGraph:
    u64, i64, u8 = np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    column = lambda dtype: np.zeros((0, channels), dtype)
    return RegionGraph(u64, u64, i64, column(np.int64), column(np.int64), column(np.uint16),
                       column(np.uint16), i64, u8, u8, i64, u64, i64, np.zeros((0, len(MOMENTS)), np.int64))


def contacts(labels: np.ndarray, levels: np.ndarray, own: Sequence[int]) -> Tuple[np.ndarray, ...]:
    """(a, b, q) of every contact whose lower voxel lies in labels[:own[0], :own[1], :own[2]];
    q is (contacts, channels) from `levels` of shape labels.shape + (channels,).

    `labels` and `levels` may extend one voxel past `own` on the high side of each axis.
    """
    firsts, seconds, values = [], [], []
    for axis in range(3):
        stop = min(own[axis], labels.shape[axis] - 1)
        low = tuple(slice(0, stop if i == axis else own[i]) for i in range(3))
        high = tuple(slice(1, stop + 1) if i == axis else slice(0, own[i]) for i in range(3))
        x, y = labels[low], labels[high]
        differ = (x != y) & (x != 0) & (y != 0)
        x, y = x[differ], y[differ]
        firsts.append(np.minimum(x, y))
        seconds.append(np.maximum(x, y))
        values.append(np.maximum(levels[low][differ], levels[high][differ]))
    return (np.concatenate(firsts).astype(np.uint64), np.concatenate(seconds).astype(np.uint64),
            np.concatenate(values, axis=0))


def _runs(sorted_keys: Sequence[np.ndarray]) -> np.ndarray:
    """Start positions of the runs of equal rows in lexicographically sorted key columns."""
    size = sorted_keys[0].size
    change = np.zeros(size, dtype=bool)
    if size:
        change[0] = True
    for key in sorted_keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def _run_index(size: int, starts: np.ndarray) -> np.ndarray:
    """For each of `size` sorted rows, the number of its run."""
    marks = np.zeros(size, dtype=np.int64)
    marks[starts] = 1
    return np.cumsum(marks) - 1


def channel_levels(boundary: np.ndarray) -> np.ndarray:
    """Quantized levels with a channel axis last: an (X, Y, Z) map is one channel."""
    levels = quantize(boundary)
    return levels[..., np.newaxis] if levels.ndim == 3 else levels


def region_moments(labels: np.ndarray, origin: Sequence[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nodes, sizes, moments) of the nonzero labels of a box whose first voxel lies at `origin`."""
    where = np.nonzero(labels)
    ids = labels[where]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = _runs((ids,))
    x, y, z = (np.asarray(c, np.int64)[order] + int(o) for c, o in zip(where, origin))
    products = {"x": lambda: x, "y": lambda: y, "z": lambda: z, "xx": lambda: x * x, "yy": lambda: y * y,
                "zz": lambda: z * z, "xy": lambda: x * y, "xz": lambda: x * z, "yz": lambda: y * z}
    moments = np.zeros((starts.size, len(MOMENTS)), np.int64)
    if ids.size:
        for column, name in enumerate(MOMENTS):
            moments[:, column] = np.add.reduceat(products[name](), starts)
    return ids[starts].astype(np.uint64), np.diff(np.r_[starts, ids.size]).astype(np.int64), moments


def block_graph(labels: np.ndarray, boundary: np.ndarray, own: Sequence[int],
                origin: Sequence[int] = (0, 0, 0)) -> RegionGraph:
    """The graph of one task: contacts as in `contacts`, nodes over the own box only, which lies
    at `origin` in the volume. `boundary` is (X, Y, Z) or (X, Y, Z, channels)."""
    a, b, q = contacts(labels, channel_levels(boundary), own)
    order = np.lexsort((b, a))
    a, b, q = a[order], b[order], q[order]
    starts = _runs((a, b))
    q64 = q.astype(np.int64)
    reduce = lambda ufunc, values: ufunc.reduceat(values, starts, axis=0) if a.size else values
    channels = q.shape[1]
    edge = np.tile(_run_index(a.size, starts), channels)
    channel = np.repeat(np.arange(channels, dtype=np.uint8), a.size)
    bins = (q.T.ravel() // BIN_WIDTH).astype(np.uint8)
    hist_order = np.lexsort((bins, channel, edge))
    edge, channel, bins = edge[hist_order], channel[hist_order], bins[hist_order]
    hist_starts = _runs((edge, channel, bins))
    nodes, sizes, moments = region_moments(labels[:own[0], :own[1], :own[2]], origin)
    return RegionGraph(
        a=a[starts], b=b[starts], count=np.diff(np.r_[starts, a.size]).astype(np.int64),
        total=reduce(np.add, q64), squares=reduce(np.add, q64 * q64), low=reduce(np.minimum, q),
        high=reduce(np.maximum, q), hist_edge=edge[hist_starts].astype(np.int64),
        hist_channel=channel[hist_starts], hist_bin=bins[hist_starts],
        hist_count=np.diff(np.r_[hist_starts, bins.size]).astype(np.int64), nodes=nodes, sizes=sizes,
        moments=moments)


def merge_graphs(parts: Iterable[RegionGraph]) -> RegionGraph:
    """The exact sum of partial graphs: statistics of equal edges and nodes combined by sorting."""
    parts = list(parts)
    channels = {p.channels for p in parts if p.num_edges} or {max([1] + [p.channels for p in parts])}
    if len(channels) > 1:
        raise ValueError(f"graph parts of different boundary channel counts {sorted(channels)}")
    count = channels.pop()
    empty = empty_graph(count)
    parts = [empty] + [p if p.channels == count else replace(p, total=empty.total, squares=empty.squares,
                                                             low=empty.low, high=empty.high) for p in parts]
    offsets = np.cumsum([0] + [p.num_edges for p in parts])
    cat = {f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(RegionGraph)}
    cat["hist_edge"] = np.concatenate([p.hist_edge + off for p, off in zip(parts, offsets)])
    order = np.lexsort((cat["b"], cat["a"]))
    a, b = cat["a"][order], cat["b"][order]
    starts = _runs((a, b))
    new_index = np.empty(a.size, dtype=np.int64)
    new_index[order] = _run_index(a.size, starts)

    def reduce(name, ufunc, rows=order, at=starts):
        values = cat[name][rows]
        return ufunc.reduceat(values, at, axis=0) if values.size else values

    hist_edge = new_index[cat["hist_edge"]]
    hist_order = np.lexsort((cat["hist_bin"], cat["hist_channel"], hist_edge))
    hist_edge, hist_channel = hist_edge[hist_order], cat["hist_channel"][hist_order]
    hist_bin = cat["hist_bin"][hist_order]
    hist_starts = _runs((hist_edge, hist_channel, hist_bin))
    node_order = np.argsort(cat["nodes"], kind="stable")
    nodes = cat["nodes"][node_order]
    node_starts = _runs((nodes,))
    return RegionGraph(
        a=a[starts], b=b[starts], count=reduce("count", np.add), total=reduce("total", np.add),
        squares=reduce("squares", np.add), low=reduce("low", np.minimum), high=reduce("high", np.maximum),
        hist_edge=hist_edge[hist_starts], hist_channel=hist_channel[hist_starts],
        hist_bin=hist_bin[hist_starts], hist_count=reduce("hist_count", np.add, hist_order, hist_starts),
        nodes=nodes[node_starts], sizes=reduce("sizes", np.add, node_order, node_starts),
        moments=reduce("moments", np.add, node_order, node_starts))


def histogram_pointers(graph: RegionGraph) -> np.ndarray:
    """CSR pointers: edge i's histogram rows of channel c are ptr[i * C + c]:ptr[i * C + c + 1]."""
    keys = graph.hist_edge * graph.channels + graph.hist_channel
    return np.searchsorted(keys, np.arange(graph.num_edges * graph.channels + 1))


def channel_csr(ptr: np.ndarray, bins: np.ndarray, counts: np.ndarray, channels: int,
                channel: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One channel's histograms (rows edge * channels + channel of a CSR of all) as their own CSR."""
    if channels == 1:
        return ptr, bins, counts
    starts, stops = ptr[:-1][channel::channels], ptr[1:][channel::channels]
    lengths = stops - starts
    out = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    rows = np.repeat(starts - out[:-1], lengths) + np.arange(out[-1])
    return out, bins[rows], counts[rows]


def csr_quantiles(ptr: np.ndarray, bins: np.ndarray, counts: np.ndarray, quantile) -> np.ndarray:
    """Per histogram the lowest bin value (bin / 255) whose cumulative count reaches `quantile`
    of its total; histograms are the row ranges ptr[i]:ptr[i+1] with bins ascending. Several
    quantiles (a sequence) give a column each."""
    quantile = np.asarray(quantile, dtype=np.float64)
    cumulative = np.cumsum(counts)
    ends = np.concatenate([[0], cumulative])
    before, totals = ends[ptr[:-1]], ends[ptr[1:]] - ends[ptr[:-1]]
    target = np.expand_dims(before, tuple(range(1, 1 + quantile.ndim))) + \
        np.maximum(np.ceil(np.multiply.outer(totals, quantile)), 1)
    if bins.size == 0:
        return np.zeros(target.shape)
    rows = np.minimum(np.searchsorted(cumulative, target, "left"), bins.size - 1)
    return bins[rows].astype(np.float64) / (BINS - 1)
