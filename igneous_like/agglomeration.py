"""Hierarchical agglomeration of a region adjacency graph (pure: numpy and a heap).

Regions merge in order of their edges' priority, lowest first, until the lowest left is not
below the threshold. When two regions merge, the smaller adjacency is folded into the larger:
edges to a common neighbour are combined by summing their statistics (counts, sums, min, max,
histograms, per boundary channel) and the regions' sizes and coordinate moments add, so a merged
edge's priority is computed from exactly the contacts and voxels it holds, as if the regions had
been one from the start. Stale heap entries are skipped (lazy deletion): an
entry is live while its edge is and its priority is the edge's current one. Ties break by edge
index, which follows the sorted (a, b) keys, so the result is deterministic.

Policies (priority of an edge; lower merges first):
  mean      mean boundary value of its contacts (0..1)
  median    the median bin of its boundary histogram (bin / 255)
  quantile  the given quantile of that histogram (lowest bin whose cumulative count reaches it)
  learned   a classifier's probability that the two regions should stay apart (merge_model)
  custom    a Python callable given the edges' statistics arrays (custom_policy; API only)
"""
import heapq
import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from igneous_like.region_graph import (
    BINS,
    LEVELS,
    RegionGraph,
    channel_csr,
    csr_quantiles,
    histogram_pointers,
)

log = logging.getLogger(__name__)

POLICIES = ("mean", "median", "quantile", "learned")


@dataclass
class EdgeStats:
    """The working copy of a graph's statistics, changed in place as regions merge."""
    u: np.ndarray  # int64 node index of each edge's endpoints (current regions)
    v: np.ndarray
    count: np.ndarray
    total: np.ndarray  # (edges, channels), as RegionGraph
    squares: np.ndarray
    low: np.ndarray
    high: np.ndarray
    sizes: np.ndarray  # int64 voxels per node (current regions)
    moments: np.ndarray  # int64 (nodes, 9) coordinate sums per node (current regions)
    ptr: np.ndarray  # the graph's histograms as CSR rows, one per (edge, channel): edge * channels + channel
    bins: np.ndarray
    counts: np.ndarray
    merged: Dict[int, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # combined histograms

    @classmethod
    def of(cls, graph: RegionGraph, histograms: bool) -> "EdgeStats":
        positions = lambda ids: np.searchsorted(graph.nodes, ids).astype(np.int64)
        if not (np.isin(graph.a, graph.nodes).all() and np.isin(graph.b, graph.nodes).all()):
            raise ValueError("every edge's fragments must be among the graph's nodes")
        empty = np.zeros(0, np.int64)
        return cls(positions(graph.a), positions(graph.b), graph.count.copy(), graph.total.copy(),
                   graph.squares.copy(), graph.low.astype(np.int64), graph.high.astype(np.int64),
                   graph.sizes.astype(np.int64).copy(), graph.moments.astype(np.int64).copy(),
                   histogram_pointers(graph) if histograms else
                   np.zeros(graph.num_edges * graph.channels + 1, np.int64),
                   graph.hist_bin if histograms else empty, graph.hist_count if histograms else empty)

    @property
    def channels(self) -> int:
        return int(self.total.shape[1])

    def histogram(self, key: int) -> Tuple[np.ndarray, np.ndarray]:
        """The histogram of row `key` = edge * channels + channel."""
        if key in self.merged:
            return self.merged[key]
        start, stop = self.ptr[key], self.ptr[key + 1]
        return self.bins[start:stop], self.counts[start:stop]

    def histograms(self, edges: Optional[np.ndarray], channel: int = 0) -> Tuple[np.ndarray, ...]:
        """The CSR (ptr, bins, counts) of one channel's current histograms of some edges (all:
        None, only before any merge)."""
        if edges is None:
            return channel_csr(self.ptr, self.bins, self.counts, self.channels, channel)
        parts = [self.histogram(int(e) * self.channels + channel) for e in edges]
        ptr = np.cumsum([0] + [p[0].size for p in parts])
        if not parts:
            return ptr, np.zeros(0, np.uint8), np.zeros(0, np.int64)
        return ptr, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def quantiles(self, edges: Optional[np.ndarray], quantile: float, channel: int = 0) -> np.ndarray:
        return csr_quantiles(*self.histograms(edges, channel), quantile)

    def combine(self, keep: int, gone: int, histograms: bool) -> None:
        """Add edge `gone`'s statistics into edge `keep`."""
        self.count[keep] += self.count[gone]
        self.total[keep] += self.total[gone]
        self.squares[keep] += self.squares[gone]
        self.low[keep] = np.minimum(self.low[keep], self.low[gone])
        self.high[keep] = np.maximum(self.high[keep], self.high[gone])
        for channel in range(self.channels if histograms else 0):
            mine, theirs = keep * self.channels + channel, gone * self.channels + channel
            (b1, c1), (b2, c2) = self.histogram(mine), self.histogram(theirs)
            dense = np.bincount(np.concatenate([b1, b2]), np.concatenate([c1, c2]), minlength=BINS)
            bins = np.flatnonzero(dense)
            self.merged[mine] = (bins.astype(np.uint8), dense[bins].astype(np.int64))
            self.merged.pop(theirs, None)

    def join(self, x: int, y: int) -> None:
        """Region y becomes part of region x: sizes and moments add."""
        self.sizes[x] += self.sizes[y]
        self.moments[x] += self.moments[y]


@dataclass(frozen=True)
class Policy:
    """How to compute priorities: `priority(stats, edges or None for all)`."""
    name: str
    priority: Callable[[EdgeStats, Optional[np.ndarray]], np.ndarray]
    histograms: bool = False  # needs the boundary histograms
    size_dependent: bool = False  # priorities change when a region grows, not only its edges
    channel: int = 0  # the boundary channel it reads (the learned policy reads them all)
    channels: Optional[int] = None  # the boundary channel count it needs (a learned model's), if any

    def check(self, graph: RegionGraph) -> None:
        """ValueError unless the graph holds the boundary channels this policy reads."""
        if self.channels not in (None, graph.channels):
            raise ValueError(f"the model was trained on a boundary map of {self.channels} channel(s) but "
                             f"this graph's has {graph.channels}; train one on such a map")
        if not 0 <= self.channel < graph.channels:
            raise ValueError(f"channel {self.channel} is not among the {graph.channels} channel(s) of the "
                             "graph's boundary map")


def mean_priority(stats: EdgeStats, edges: Optional[np.ndarray], channel: int = 0) -> np.ndarray:
    index = slice(None) if edges is None else edges
    return stats.total[index, channel] / (stats.count[index] * float(LEVELS))


def make_policy(name: str, quantile: float = 0.5, model=None, channel: int = 0) -> Policy:
    """A merge policy by name; `model` (a merge_model.MergeModel) for learned, which reads every
    channel of the boundary map; the others read `channel`."""
    if name == "mean":
        return Policy(name, lambda stats, edges: mean_priority(stats, edges, channel), channel=channel)
    if name in ("median", "quantile"):
        q = 0.5 if name == "median" else float(quantile)
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"the quantile must lie in [0, 1], got {quantile}")
        return Policy(name, lambda stats, edges: stats.quantiles(edges, q, channel), histograms=True,
                      channel=channel)
    if name == "learned":
        if model is None:
            raise ValueError("the learned policy needs a model")
        return Policy(name, model.priority, histograms=True, size_dependent=True, channels=model.channels)
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")


def edge_arrays(stats: EdgeStats, edges: Optional[np.ndarray], channel: int = 0) -> Dict[str, np.ndarray]:
    """What a custom priority sees of some edges (all when None), as they are now: contacts `count`,
    sums of levels `total` and squared levels `squares`, `low` and `high` levels (0..65535 means
    boundary 0..1) of boundary channel `channel`, the voxels of the two regions `size_a` and
    `size_b` and their coordinate sums `moments_a` and `moments_b` (region_graph.MOMENTS columns),
    and that channel's 256-bin boundary histograms as CSR rows: edge i's bins and counts are
    hist_bin/hist_count[hist_ptr[i]:hist_ptr[i + 1]]."""
    index = np.arange(stats.count.size) if edges is None else edges
    ptr, bins, counts = stats.histograms(edges, channel)
    u, v = stats.u[index], stats.v[index]
    return {"count": stats.count[index], "total": stats.total[index, channel],
            "squares": stats.squares[index, channel], "low": stats.low[index, channel],
            "high": stats.high[index, channel], "size_a": stats.sizes[u], "size_b": stats.sizes[v],
            "moments_a": stats.moments[u], "moments_b": stats.moments[v], "hist_ptr": ptr, "hist_bin": bins,
            "hist_count": counts}


def custom_policy(priority: Callable[[Dict[str, np.ndarray]], np.ndarray]) -> Policy:
    """A policy whose priority (lower merges first) is `priority(edge_arrays(...))`: one float per
    edge. It is asked again for every edge of a region that grows, so it may use region sizes."""
    def score(stats: EdgeStats, edges: Optional[np.ndarray]) -> np.ndarray:
        arrays = edge_arrays(stats, edges)
        out = np.asarray(priority(arrays), dtype=np.float64)
        if out.shape != arrays["count"].shape:
            raise ValueError(f"a custom priority must give one number per edge: {arrays['count'].size} "
                             f"edges gave an array of shape {out.shape}")
        return out
    return Policy("custom", score, histograms=True, size_dependent=True)


def adjacency(u: np.ndarray, v: np.ndarray, num_nodes: int) -> List[Optional[dict]]:
    """Per node {neighbour: edge index}."""
    adj: List[Optional[dict]] = [{} for _ in range(num_nodes)]
    for edge, (x, y) in enumerate(zip(u.tolist(), v.tolist())):
        adj[x][y] = edge
        adj[y][x] = edge
    return adj


class Agglomerator:
    """One run of the merging loop over a graph's working statistics."""

    def __init__(self, graph: RegionGraph, policy: Policy, threshold: float,
                 decide: Optional[Callable[["Agglomerator", int], bool]] = None):
        """`decide(run, edge)`, when given, sees every merge the loop is about to make (the edge's
        statistics as they are then) and says whether to make it: active learning records them."""
        policy.check(graph)
        self.policy, self.threshold, self.decide = policy, float(threshold), decide
        self.stats = EdgeStats.of(graph, policy.histograms)
        self.priority = np.asarray(policy.priority(self.stats, None), dtype=np.float64)
        self.alive = np.ones(graph.num_edges, dtype=bool)
        self.adj = adjacency(self.stats.u, self.stats.v, graph.nodes.size)
        self.parent = np.arange(graph.nodes.size, dtype=np.int64)
        self.heap: List[Tuple[float, int]] = []
        self.merges = 0

    def candidates(self):
        """(priority, edge) below the threshold in order: the initial sorted edges and the heap."""
        order = np.argsort(self.priority, kind="stable")
        cut = int(np.searchsorted(self.priority[order], self.threshold, "left"))
        initial = list(zip(self.priority[order[:cut]].tolist(), order[:cut].tolist()))
        del order
        i = 0
        while True:
            take_heap = self.heap and (i >= len(initial) or self.heap[0] < initial[i])
            if take_heap:
                yield heapq.heappop(self.heap)
            elif i < len(initial):
                i += 1
                yield initial[i - 1]
            else:
                return

    def run(self) -> np.ndarray:
        """Merge until no edge below the threshold is left; the root node of every node."""
        for priority, edge in self.candidates():
            if self.alive[edge] and self.priority[edge] == priority and (
                    self.decide is None or self.decide(self, edge)):
                self.merge(edge)
        parent = self.parent
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent
            parent = grand

    def merge(self, edge: int) -> None:
        """Join the edge's two regions; fold the smaller adjacency into the larger."""
        stats, adj = self.stats, self.adj
        x, y = int(stats.u[edge]), int(stats.v[edge])
        if len(adj[x]) < len(adj[y]):
            x, y = y, x
        self.alive[edge] = False
        ax, ay = adj[x], adj[y]
        del ax[y], ay[x]
        stats.join(x, y)
        self.parent[y] = x
        changed = []
        for k, gone in ay.items():
            ak = adj[k]
            del ak[y]
            keep = ax.get(k)
            if keep is None:
                ax[k] = ak[x] = gone
                if stats.u[gone] == y:
                    stats.u[gone] = x
                else:
                    stats.v[gone] = x
            else:
                stats.combine(keep, gone, self.policy.histograms)
                self.alive[gone] = False
                changed.append(keep)
        adj[y] = None
        self.merges += 1
        if self.policy.size_dependent:
            changed = list(ax.values())
        if changed:
            self.update(np.array(changed, dtype=np.int64))

    def update(self, edges: np.ndarray) -> None:
        new = np.asarray(self.policy.priority(self.stats, edges), dtype=np.float64)
        self.priority[edges] = new
        for priority, edge in zip(new.tolist(), edges.tolist()):
            if priority < self.threshold:
                heapq.heappush(self.heap, (priority, edge))


def agglomerate(graph: RegionGraph, policy: Policy, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """(fragments, segments): every node's fragment id and the id of the segment it joined, which
    is the smallest fragment id in that segment (so it does not depend on the merge order)."""
    run = Agglomerator(graph, policy, threshold)
    roots = run.run()
    log.info("%d merges of %d fragments (%s policy, threshold %g)", run.merges, graph.nodes.size,
             policy.name, threshold)
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    return graph.nodes, graph.nodes[first][inverse.ravel()]
