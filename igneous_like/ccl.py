"""Connected components across task boundaries: pure numpy functions, no storage.

A volume is cut into a grid of tasks. Each task labels its own box with cc3d (labels 1..n), and
global label `index * stride + local` keeps the label ranges of tasks disjoint. Components
that cross a task boundary show up as pairs of labels on touching faces; an array-based
union-find over those pairs (never a Python loop over labels) merges them, and a numbering
plan gives every surviving component one consecutive id from 1 in a fixed order:

* task by task in grid order; inside a task first its interior components (those touching no
  shared face) by local label, then the face-touching components it owns (a component is owned
  by the task holding its smallest global label), by that smallest label.

The global step only sees face-touching labels; interior ones are counted per task. So its
memory grows with the area of the task faces, not with the number of labels in the volume.
"""
import itertools
from typing import List, Optional, Sequence, Tuple

import numpy as np

CONNECTIVITIES = (6, 18, 26)
AXES = "xyz"
_MAX_OFFSET_AXES = {6: 1, 18: 2, 26: 3}  # how many axes one step may change, per connectivity
_INT32_NODES = 2**31 - 1  # scipy's csgraph indexes nodes with int32


def foreground(image: np.ndarray, threshold_gte=None, threshold_lte=None) -> np.ndarray:
    """What gets labeled: the image itself (components of each value), or the boolean mask
    `threshold_gte <= image <= threshold_lte` when either threshold is given."""
    if threshold_gte is None and threshold_lte is None:
        return image
    mask = np.ones(image.shape, dtype=bool)
    if threshold_gte is not None:
        mask &= image >= threshold_gte
    if threshold_lte is not None:
        mask &= image <= threshold_lte
    return mask


def threshold_image(image: np.ndarray, threshold_lte=None, threshold_gte=None) -> np.ndarray:
    """Igneous's name and argument order (tasks.image.ccl) for foreground."""
    return foreground(image, threshold_gte, threshold_lte)


def label_components(data: np.ndarray, connectivity: int) -> Tuple[np.ndarray, int]:
    """cc3d labels 1..n of the nonzero voxels of `data` (equal values connect), and n."""
    import cc3d
    labels, count = cc3d.connected_components(data, connectivity=connectivity, return_N=True)
    return labels, int(count)


def label_counts(labels: np.ndarray, count: int) -> np.ndarray:
    """Voxels of each label 0..count (index = label), exact, as uint64."""
    import fastremap
    values, counts = fastremap.unique(labels, return_counts=True)
    full = np.zeros(count + 1, dtype=np.uint64)
    full[values.astype(np.int64)] = counts
    return full


def face(array: np.ndarray, axis: int, side: str) -> np.ndarray:
    """The one-voxel-thick face of a 3D array on `side` ('lo' or 'hi') of `axis`, kept 3D."""
    index = slice(0, 1) if side == "lo" else slice(array.shape[axis] - 1, array.shape[axis])
    return np.ascontiguousarray(array[tuple(index if k == axis else slice(None) for k in range(3))])


def half_directions(connectivity: int) -> List[Tuple[int, int, int]]:
    """Neighbor offsets (dx, dy, dz) a task links to: one of each opposite pair (the one whose
    first nonzero step, looking at z, then y, then x, is -1), so every touching pair of tasks
    is linked exactly once, by the task with the higher grid position."""
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {CONNECTIVITIES}, got {connectivity}")
    most = _MAX_OFFSET_AXES[connectivity]
    out = []
    for d in itertools.product((-1, 0, 1), repeat=3):
        steps = sum(map(abs, d))
        if 0 < steps <= most and next(v for v in (d[2], d[1], d[0]) if v) == -1:
            out.append(d)
    return out


def lead_axis(direction: Sequence[int]) -> int:
    """The axis whose faces carry the links in `direction`: its first nonzero axis (z, y, x)."""
    return next(k for k in (2, 1, 0) if direction[k])


def direction_pairs(own: np.ndarray, neighbor: np.ndarray, direction: Sequence[int], connectivity: int,
                    own_values: Optional[np.ndarray] = None,
                    neighbor_values: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Pairs (own label, neighbor label) of touching foreground voxels across one task boundary.

    `own` is this task's low face on lead_axis(direction); `neighbor` is the high face on that
    axis of the task at grid offset `direction`. Along the other axes where `direction` steps,
    only the voxels at the touching end count; along the axes where it does not, the two faces
    span the same range and voxels may also touch diagonally, as `connectivity` allows. With
    values (labeling a segmentation), touching voxels link only where their values are equal.
    """
    lead = lead_axis(direction)
    own_index, neighbor_index, free = [], [], []
    for axis, step in enumerate(direction):
        if axis == lead or step == 0:
            own_index.append(slice(None))
            neighbor_index.append(slice(None))
            if axis != lead:
                free.append(axis)
        else:  # the own end that faces the neighbor, and the neighbor's end that faces back
            low, high = slice(0, 1), slice(-1, None)
            own_index.append(low if step < 0 else high)
            neighbor_index.append(high if step < 0 else low)
    own, neighbor = own[tuple(own_index)], neighbor[tuple(neighbor_index)]
    with_values = own_values is not None
    if with_values:
        own_values, neighbor_values = own_values[tuple(own_index)], neighbor_values[tuple(neighbor_index)]
    spare = _MAX_OFFSET_AXES[connectivity] - sum(map(abs, direction))
    firsts, seconds = [], []
    for shift in itertools.product((-1, 0, 1), repeat=len(free)):
        if sum(map(abs, shift)) > spare:
            continue
        own_cut, neighbor_cut = [slice(None)] * 3, [slice(None)] * 3
        for axis, step in zip(free, shift):
            size = own.shape[axis]
            if step > 0:
                own_cut[axis], neighbor_cut[axis] = slice(0, size - 1), slice(1, size)
            elif step < 0:
                own_cut[axis], neighbor_cut[axis] = slice(1, size), slice(0, size - 1)
        a, b = own[tuple(own_cut)], neighbor[tuple(neighbor_cut)]
        touching = (a != 0) & (b != 0)
        if with_values:
            touching &= own_values[tuple(own_cut)] == neighbor_values[tuple(neighbor_cut)]
        firsts.append(a[touching])
        seconds.append(b[touching])
    if not firsts:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    return unique_pairs(np.concatenate(firsts), np.concatenate(seconds))


def unique_pairs(first: np.ndarray, second: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Distinct (first, second) pairs as two uint64 arrays, sorted."""
    first, second = first.astype(np.uint64, copy=False), second.astype(np.uint64, copy=False)
    if first.size == 0:
        return first, second
    order = np.lexsort((second, first))
    first, second = first[order], second[order]
    new = np.ones(first.size, dtype=bool)
    new[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    return first[new], second[new]


def size_histogram(sizes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(distinct sizes, how many components have each): compact, since sizes sum to at most the
    voxels of a task there are few distinct ones, and any dust threshold can be applied later."""
    return np.unique(sizes.astype(np.uint64), return_counts=True)


def kept_by_histogram(sizes: np.ndarray, frequency: np.ndarray, dust: int) -> int:
    """How many components of a size histogram have at least `dust` voxels."""
    return int(frequency[sizes >= np.uint64(dust)].sum())


def connected_components(num_nodes: int, first: np.ndarray, second: np.ndarray) -> Tuple[np.ndarray, int]:
    """Component id (0..count-1) of each node of an undirected graph given as an edge list.

    scipy's csgraph (C, int32 node indices) up to 2**31 nodes; beyond that an array-based
    union-find in numpy: hook each edge's larger root under its smaller one, then jump
    pointers until every node points at its root, until no edge joins two roots.
    """
    if num_nodes <= _INT32_NODES:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components as csgraph_components
        weights = np.ones(first.size, dtype=np.int8)
        graph = coo_matrix((weights, (first, second)), shape=(num_nodes, num_nodes))
        count, ids = csgraph_components(graph, directed=False)
        return ids.astype(np.int64), int(count)
    return union_find(num_nodes, first, second)


def union_find(num_nodes: int, first: np.ndarray, second: np.ndarray) -> Tuple[np.ndarray, int]:
    """connected_components in numpy with int64 indices: any number of nodes memory allows."""
    parent = np.arange(num_nodes, dtype=np.int64)
    first, second = first.astype(np.int64), second.astype(np.int64)
    while first.size:
        a, b = parent[first], parent[second]
        low, high = np.minimum(a, b), np.maximum(a, b)
        apart = low != high
        first, second, low, high = first[apart], second[apart], low[apart], high[apart]
        np.minimum.at(parent, high, low)  # parent never exceeds the node, so no cycles
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    roots, ids = np.unique(parent, return_inverse=True)
    return ids.astype(np.int64), int(roots.size)


def plan_numbering(nodes: np.ndarray, node_counts: np.ndarray, node_tasks: np.ndarray,
                   first: np.ndarray, second: np.ndarray, interior_kept: np.ndarray,
                   dust: int = 0) -> Tuple[np.ndarray, np.ndarray, int]:
    """The final id of each face-touching label and the first id of each task.

    nodes: the face-touching global labels of all tasks, sorted ascending, with their voxel
    counts and task indices; (first, second): linked global labels; interior_kept: per task,
    how many of its interior components have at least `dust` voxels. Returns (final id of each
    node, 0 where its component has fewer than `dust` voxels; first id of each task; total).
    """
    num_tasks = interior_kept.size
    if nodes.size == 0:
        return np.zeros(0, np.uint64), first_ids(interior_kept.astype(np.uint64)), int(interior_kept.sum())
    linked = np.concatenate([first, second])
    found = positions(nodes, linked)
    if linked.size and (found.max() >= nodes.size or not np.array_equal(nodes[found], linked)):
        raise ValueError("a link names a label that no task reported on its faces")
    u, v = found[:first.size], found[first.size:]
    ids, count = connected_components(nodes.size, u, v)
    order = np.argsort(ids, kind="stable")  # stable: each component's first node is its smallest label
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    totals = np.add.reduceat(node_counts.astype(np.uint64)[order], starts)  # exact integer sums
    smallest = order[starts]
    kept = totals >= np.uint64(dust)
    kept_components = sorted_ids[starts][kept]
    by_label = np.argsort(smallest[kept], kind="stable")
    kept_components, kept_smallest = kept_components[by_label], smallest[kept][by_label]
    owners = node_tasks[kept_smallest].astype(np.int64)
    owned = np.bincount(owners, minlength=num_tasks).astype(np.uint64)
    interior_kept = interior_kept.astype(np.uint64)
    starts_of_tasks = first_ids(interior_kept + owned)
    rank = np.arange(owners.size, dtype=np.uint64) - np.searchsorted(owners, owners).astype(np.uint64)
    final = np.zeros(count, dtype=np.uint64)
    final[kept_components] = starts_of_tasks[owners] + interior_kept[owners] + rank
    return final[ids], starts_of_tasks, int(interior_kept.sum() + owned.sum())


def positions(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """np.searchsorted for many queries, sorted first: binary searches in order stay in cache."""
    order = np.argsort(queries, kind="stable")
    out = np.empty(queries.size, dtype=np.int64)
    out[order] = np.searchsorted(sorted_values, queries[order])
    return out


def first_ids(per_task: np.ndarray) -> np.ndarray:
    """The first final id of each task, from how many ids each task gives out (ids start at 1)."""
    starts = np.ones(per_task.size, dtype=np.uint64)
    starts[1:] += np.cumsum(per_task, dtype=np.uint64)[:-1]
    return starts


def task_lookup(counts: np.ndarray, face_labels: np.ndarray, face_finals: np.ndarray, first_id: int,
                dust: int, dtype) -> np.ndarray:
    """The final id of each local label 0..n of one task (an array to index with the labels).

    Interior labels with at least `dust` voxels take first_id, first_id+1, ... in label order;
    face-touching labels take the ids the global step gave them; everything else is 0.
    """
    lookup = np.zeros(counts.size, dtype=dtype)
    interior = counts >= np.uint64(max(dust, 1))
    interior[0] = False
    interior[face_labels.astype(np.int64)] = False
    lookup[interior] = np.arange(first_id, first_id + int(interior.sum()), dtype=np.uint64).astype(dtype)
    lookup[face_labels.astype(np.int64)] = face_finals.astype(dtype)
    return lookup


def apply_lookup(labels: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """lookup[labels], in the same memory order, as lookup's dtype; may overwrite `labels`.

    A task can hold more local labels than there are final ids (one component that enters its
    box many times), so the lookup runs in the wider of the two dtypes and narrows after."""
    import fastremap
    wide = np.promote_types(labels.dtype, lookup.dtype)
    if not (labels.flags.c_contiguous or labels.flags.f_contiguous):
        return lookup[labels]
    labels = labels.astype(wide, order="K", copy=False)
    fastremap.remap_from_array(labels.ravel(order="K"), lookup.astype(wide, copy=False), in_place=True)
    return labels.astype(lookup.dtype, order="K", copy=False)


def merge_counts(labels: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sum counts per distinct label: (sorted distinct labels, uint64 totals)."""
    labels = labels.astype(np.uint64, copy=False)
    order = np.argsort(labels, kind="stable")
    labels, counts = labels[order], counts.astype(np.uint64, copy=False)[order]
    if labels.size == 0:
        return labels, counts
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    return labels[starts], np.add.reduceat(counts, starts)

