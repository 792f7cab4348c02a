"""Region adjacency graphs of fragments with exactly mergeable boundary statistics (numpy only).

A contact is a pair of 6-neighbouring voxels (v, v + e_axis) holding two different nonzero
fragments. Its boundary value is the larger of the two voxels' boundary values, quantized to
an integer level q in 0..65535 (uint8 v becomes v * 257 exactly; float32 x in [0, 1] becomes
round(x * 65535) in float64). Every statistic is an integer, so tables merged in any grouping or order
are bit-identical: per edge (a < b) the contact count, sum of q, sum of q^2, min and max q,
and a 256-bin histogram (bin q // 257, so uint8 value v lands in bin v), kept sparse as
(edge index, bin, count) rows; per node the voxel count.

A task reads one extra voxel past its high faces (clipped at the volume end) and counts only
the contacts whose lower voxel lies inside its own box, so each face between tasks is counted
exactly once and the whole graph does not depend on the task shape.
"""
from dataclasses import dataclass, fields
from typing import Iterable, Sequence, Tuple

import numpy as np

LEVELS = 65535  # the quantized boundary value of 1.0
BINS = 256
BIN_WIDTH = LEVELS // (BINS - 1)  # 257: q // 257 maps uint8 value v (q = 257 v) to bin v


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
    """Edges sorted by (a, b) with a < b, their statistics, the sparse histograms, node sizes."""
    a: np.ndarray  # uint64 fragment ids
    b: np.ndarray
    count: np.ndarray  # int64 contacts
    total: np.ndarray  # int64 sum of levels
    squares: np.ndarray  # int64 sum of squared levels
    low: np.ndarray  # uint16 min level
    high: np.ndarray  # uint16 max level
    hist_edge: np.ndarray  # int64 edge index of each histogram row, rows sorted by (edge, bin)
    hist_bin: np.ndarray  # uint8
    hist_count: np.ndarray  # int64
    nodes: np.ndarray  # uint64 sorted fragment ids
    sizes: np.ndarray  # int64 voxels

    @property
    def num_edges(self) -> int:
        return int(self.a.size)

    def arrays(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def equals(self, other: "RegionGraph") -> bool:
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))


def empty_graph() -> RegionGraph:
    u64, i64 = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return RegionGraph(u64, u64, i64, i64, i64, np.zeros(0, np.uint16), np.zeros(0, np.uint16), i64,
                       np.zeros(0, np.uint8), i64, u64, i64)


def contacts(labels: np.ndarray, levels: np.ndarray, own: Sequence[int]) -> Tuple[np.ndarray, ...]:
    """(a, b, q) of every contact whose lower voxel lies in labels[:own[0], :own[1], :own[2]].

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
            np.concatenate(values))


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


def block_graph(labels: np.ndarray, boundary: np.ndarray, own: Sequence[int]) -> RegionGraph:
    """The graph of one task: contacts as in `contacts`, node sizes over the own box only."""
    a, b, q = contacts(labels, quantize(boundary), own)
    order = np.lexsort((q, b, a))
    a, b, q = a[order], b[order], q[order]
    starts = _runs((a, b))
    q64 = q.astype(np.int64)
    edge = _run_index(q.size, starts)
    bins = (q // BIN_WIDTH).astype(np.uint8)
    hist_starts = _runs((edge, bins))
    ends = np.r_[starts[1:], q.size] - 1 if q.size else starts
    inside = labels[:own[0], :own[1], :own[2]]
    nodes, sizes = np.unique(inside[inside != 0], return_counts=True)
    return RegionGraph(
        a=a[starts], b=b[starts], count=np.diff(np.r_[starts, q.size]).astype(np.int64),
        total=np.add.reduceat(q64, starts) if q.size else q64,
        squares=np.add.reduceat(q64 * q64, starts) if q.size else q64,
        low=q[starts], high=q[ends], hist_edge=edge[hist_starts].astype(np.int64),
        hist_bin=bins[hist_starts], hist_count=np.diff(np.r_[hist_starts, q.size]).astype(np.int64),
        nodes=nodes.astype(np.uint64), sizes=sizes.astype(np.int64))


def merge_graphs(parts: Iterable[RegionGraph]) -> RegionGraph:
    """The exact sum of partial graphs: statistics of equal edges and nodes combined by sorting."""
    parts = [empty_graph()] + list(parts)
    offsets = np.cumsum([0] + [p.num_edges for p in parts])
    cat = {f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(RegionGraph)}
    cat["hist_edge"] = np.concatenate([p.hist_edge + off for p, off in zip(parts, offsets)])
    order = np.lexsort((cat["b"], cat["a"]))
    a, b = cat["a"][order], cat["b"][order]
    starts = _runs((a, b))
    new_index = np.empty(a.size, dtype=np.int64)
    new_index[order] = _run_index(a.size, starts)

    def reduce(name, ufunc):
        values = cat[name][order]
        return ufunc.reduceat(values, starts) if values.size else values

    hist_edge = new_index[cat["hist_edge"]]
    hist_order = np.lexsort((cat["hist_bin"], hist_edge))
    hist_edge, hist_bin = hist_edge[hist_order], cat["hist_bin"][hist_order]
    hist_count = cat["hist_count"][hist_order]
    hist_starts = _runs((hist_edge, hist_bin))
    node_order = np.argsort(cat["nodes"], kind="stable")
    nodes = cat["nodes"][node_order]
    node_starts = _runs((nodes,))
    sizes = cat["sizes"][node_order]
    return RegionGraph(
        a=a[starts], b=b[starts], count=reduce("count", np.add), total=reduce("total", np.add),
        squares=reduce("squares", np.add), low=reduce("low", np.minimum), high=reduce("high", np.maximum),
        hist_edge=hist_edge[hist_starts], hist_bin=hist_bin[hist_starts],
        hist_count=np.add.reduceat(hist_count, hist_starts) if hist_count.size else hist_count,
        nodes=nodes[node_starts], sizes=np.add.reduceat(sizes, node_starts) if sizes.size else sizes)


def histogram_pointers(graph: RegionGraph) -> np.ndarray:
    """CSR pointers: edge i's histogram rows are ptr[i]:ptr[i+1]."""
    return np.searchsorted(graph.hist_edge, np.arange(graph.num_edges + 1))


def csr_quantiles(ptr: np.ndarray, bins: np.ndarray, counts: np.ndarray, quantile: float) -> np.ndarray:
    """Per histogram the lowest bin value (bin / 255) whose cumulative count reaches `quantile`
    of its total; histograms are the row ranges ptr[i]:ptr[i+1] with bins ascending."""
    cumulative = np.cumsum(counts)
    before = np.r_[0, cumulative][ptr[:-1]]
    totals = np.r_[0, cumulative][ptr[1:]] - before
    target = before + np.maximum(np.ceil(quantile * totals), 1)
    rows = np.minimum(np.searchsorted(cumulative, target, "left"), max(bins.size - 1, 0))
    if bins.size == 0:
        return np.zeros(totals.size)
    return bins[rows].astype(np.float64) / (BINS - 1)
