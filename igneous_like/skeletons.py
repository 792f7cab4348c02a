"""Skeleton algorithms without storage: task cutouts and their seams, stitching task fragments
into one skeleton per object, postprocessing and SWC text.

How chunked skeletons stitch. A forge task owns a box of the task grid; its *crop* is the owned
box plus the first plane of each upper neighbour, so neighbouring crops share one voxel plane
(the seam). The task reads `context` more voxels around the crop, so that TEASAR sees each object
past the seams, and keeps each object's whole skeleton as it read it, marking the vertices that
lie in its crop. Merging keeps in each region the cable of the task that owns it; equal vertices
on the shared planes fuse. Cable a task traced in its context stays too wherever no cable kept
so far lies within TEASAR's invalidation reach of it: a read box that cuts an object lengthwise
pulls the centre line a task traces out of its own crop, and the context must never remove
cable. Where two tasks crossed their seam through different voxels, their cable stops at cut
ends; each joins the nearest cable of another piece within its reach, and pieces still apart are
joined at their closest vertices, so each object (a connected component) comes out in one piece.
Last, the terminal branches only chunking makes are trimmed: stubs ending at a cut end, and the
extra short tips at one branch point where tasks each traced their own way into a tip.

Objects are connected components (26-connected) in each task; components of neighbouring tasks
that share a voxel on a seam are one object. Each task records, for every component, one
representative voxel per 2D component of each seam plane, which both neighbours pick the same
way, so joining components across tasks is a union of equal representatives. Each component's
voxels inside its owned box are counted, so whole-volume component sizes are exact.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cc3d
import fastremap
import kimimaro
import numpy as np
from cloudvolume import Skeleton
from cloudvolume.lib import Bbox
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from igneous_like.grid import TaskBox

RADIUS = {"id": "radius", "data_type": "float32", "num_components": 1}
CROSS_SECTION = {"id": "cross_sectional_area", "data_type": "float32", "num_components": 1}
IN_CROP = {"id": "in_crop", "data_type": "uint8", "num_components": 1}  # fragments only


def vertex_attributes(cross_section: bool) -> List[dict]:
    """The vertex attributes every skeleton of a layer carries, in file order."""
    return [RADIUS, CROSS_SECTION] if cross_section else [RADIUS]


@dataclass(frozen=True)
class Cutout:
    """One forge task's boxes, in voxels of its mip.

    owned: the grid cell; crop: the owned box plus the shared plane of each upper neighbour;
    read: the crop grown by the context (a TaskBox's read box around the crop), all clipped to
    the volume.
    """
    owned: Bbox
    crop: Bbox
    read: Bbox
    volume: Bbox

    @classmethod
    def around(cls, owned: Bbox, volume: Bbox, margin: Sequence[int]) -> "Cutout":
        crop = Bbox.clamp(Bbox(owned.minpt, owned.maxpt + 1), volume)
        return cls(owned, crop, TaskBox.at(crop.minpt, crop.size3(), volume, margin, margin).read, volume)

    def local(self, box: Bbox) -> Tuple[slice, slice, slice]:
        """Slices of the read array that hold `box`."""
        return (box - self.read.minpt).to_slices()

    def seams(self) -> List[Tuple[int, int]]:
        """(axis, global coordinate) of each crop face that a neighbouring task shares."""
        faces = []
        for axis in range(3):
            if self.crop.minpt[axis] > self.volume.minpt[axis]:
                faces.append((axis, int(self.crop.minpt[axis])))
            if self.owned.maxpt[axis] < self.volume.maxpt[axis]:
                faces.append((axis, int(self.crop.maxpt[axis]) - 1))
        return faces

    def open_faces(self) -> List[Tuple[slice, slice, slice]]:
        """Slices of the read box's faces that lie inside the volume (objects continue past them)."""
        faces = []
        shape = self.read.size3()
        for axis in range(3):
            for index, inside in ((0, self.read.minpt[axis] > self.volume.minpt[axis]),
                                  (shape[axis] - 1, self.read.maxpt[axis] < self.volume.maxpt[axis])):
                if inside:
                    face = [slice(None)] * 3
                    face[axis] = slice(index, index + 1)
                    faces.append(tuple(face))
        return faces


def components(labels: np.ndarray) -> np.ndarray:
    """26-connected components of each nonzero label (ids 1..N, Fortran order)."""
    return np.asfortranarray(cc3d.connected_components(labels, connectivity=26))


def unique_counts(arr: np.ndarray) -> Dict[int, int]:
    ids, counts = fastremap.unique(arr, return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts) if i != 0}


def pieces_to_keep(cc: np.ndarray, cut: Cutout, dust_threshold: int) -> np.ndarray:
    """Components worth skeletonizing here: those that reach into the crop, unless they lie
    wholly inside the read box (so their whole size is known) with dust_threshold voxels or fewer."""
    in_crop = set(unique_counts(cc[cut.local(cut.crop)]))
    open_ = set()
    for face in cut.open_faces():
        open_.update(unique_counts(cc[face]))
    sizes = unique_counts(cc)
    return np.array(sorted(i for i in in_crop if i in open_ or sizes[i] > dust_threshold), dtype=cc.dtype)


def seam_representatives(cc: np.ndarray, cut: Cutout, keep: set) -> Dict[int, List[int]]:
    """For each kept component, one voxel (a linear index into the volume) per 2D component
    (8-connected) of each crop face shared with a neighbour: the first in C order, which the
    neighbour, seeing the same plane, picks too."""
    reps: Dict[int, List[int]] = {}
    for axis, coord in cut.seams():
        box = cut.crop.clone()
        box.minpt[axis], box.maxpt[axis] = coord, coord + 1
        plane = np.ascontiguousarray(np.squeeze(cc[cut.local(box)], axis=axis))
        ids, first = np.unique(cc3d.connected_components(plane, connectivity=8), return_index=True)
        for index in first[ids != 0]:
            i, j = np.unravel_index(index, plane.shape, order="C")
            if int(plane[i, j]) in keep:
                point = np.array(box.minpt, dtype=np.int64)
                point[[a for a in range(3) if a != axis]] += (i, j)
                reps.setdefault(int(plane[i, j]), []).append(linear_index(point, cut.volume))
    return reps


def linear_index(point: np.ndarray, volume: Bbox) -> int:
    x, y, z = (np.asarray(point) - volume.minpt).astype(np.int64)
    sx, sy, _ = volume.size3().astype(np.int64)
    return int(x + sx * (y + sy * z))


def to_global(skel: Skeleton, cut: Cutout, anisotropy) -> Tuple[np.ndarray, np.ndarray]:
    """A kimimaro skeleton's vertices (read-box physical coordinates) as global voxels, and which
    of them lie inside the crop."""
    vox = np.round(skel.vertices / np.asarray(anisotropy, dtype=np.float32)).astype(np.int64)
    vox += np.asarray(cut.read.minpt, dtype=np.int64)
    return vox, np.all((vox >= cut.crop.minpt) & (vox < cut.crop.maxpt), axis=1)


def make_skeleton(vertices: np.ndarray, edges: np.ndarray, values: Dict[str, np.ndarray],
                  attributes: List[dict], segid: int = 0) -> Skeleton:
    """A Skeleton whose vertex attributes are exactly `attributes` (the layer's, in order); it also
    gets osteoid's default radius and vertex types, which its clone and merge copy."""
    skel = Skeleton(np.asarray(vertices, dtype=np.float32), np.asarray(edges, dtype=np.uint32).reshape(-1, 2),
                    segid=segid, extra_attributes=[dict(a) for a in attributes])
    for a in attributes:
        setattr(skel, a["id"], np.asarray(values[a["id"]], dtype=np.float32))
    return skel


def encode(skel: Skeleton) -> bytes:
    return skel.to_precomputed()


def decode(data: bytes, attributes: List[dict], segid: int = 0) -> Skeleton:
    return Skeleton.from_precomputed(data, segid=segid, vertex_attributes=attributes)


def fuse(fragments: Sequence[Skeleton]) -> Skeleton:
    """One skeleton from fragments: equal vertices (the seams) become one."""
    return Skeleton.simple_merge([f for f in fragments if len(f.edges)] or fragments[:1]).consolidate()


def with_edges(skel: Skeleton, edges: np.ndarray) -> Skeleton:
    """`skel`'s vertices and their attributes with other edges."""
    values = {a["id"]: getattr(skel, a["id"]) for a in skel.extra_attributes}
    return make_skeleton(skel.vertices, edges, values, skel.extra_attributes, skel.id)


def subgraph(skel: Skeleton, keep: np.ndarray) -> Skeleton:
    """The edges of `skel` between kept vertices, and the vertices they join."""
    edges = skel.edges.astype(np.int64)
    edges = edges[keep[edges].all(axis=1)]
    used = np.zeros(len(skel.vertices), dtype=bool)
    used[edges.ravel()] = True
    values = {a["id"]: getattr(skel, a["id"])[used] for a in skel.extra_attributes}
    index = np.cumsum(used) - 1
    return make_skeleton(skel.vertices[used], index[edges], values, skel.extra_attributes, skel.id)


def stitch(fragments: Sequence[Tuple[Skeleton, np.ndarray]], reach: Callable) -> Skeleton:
    """One connected skeleton from the fragments of one connected object.

    fragments: each task's skeleton of the object as it read it, with which vertices lie in the
    task's crop. reach: TEASAR's invalidation radius (nm) around vertices of given radii.

    Each region keeps the cable of the task that owns it. Cable a task traced in its context stays
    too wherever no cable kept so far reaches it, so a context never removes cable. The ends that
    cropping left (cut ends) are joined across seams, and branches that trace again what other
    cable traces are trimmed.
    """
    skel = fuse([subgraph(frag, in_crop) for frag, in_crop in fragments])
    kept = []
    for frag, in_crop in fragments:
        kept.append(in_crop | ~covered(frag.vertices, skel, reach))
        if (kept[-1] & ~in_crop).any():
            skel = fuse([skel, subgraph(frag, kept[-1])])
    cut = np.concatenate([frag.vertices[cut_ends(frag.edges, keep)]
                          for (frag, _), keep in zip(fragments, kept)])
    skel = connect_pieces(skel, rows_in(skel.vertices, cut), reach(skel.radius))
    return trim_duplicates(skel)


def cut_ends(edges: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Which kept vertices have an edge to a vertex that was not kept."""
    edges = edges.astype(np.int64)
    out = np.zeros(len(kept), dtype=bool)
    out[edges[kept[edges[:, 0]] != kept[edges[:, 1]]].ravel()] = True
    return out & kept


def rows_in(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Which points (rows) are exactly one of `others`."""
    row = np.dtype((np.void, 12))
    points, others = (np.ascontiguousarray(p, dtype=np.float32).reshape(-1, 3).view(row).ravel()
                      for p in (points, others))
    return np.isin(points, others)


def covered(points: np.ndarray, skel: Skeleton, reach: Callable) -> np.ndarray:
    """Which points lie inside the invalidation ball of a vertex of `skel`."""
    if skel.empty() or not len(points):
        return np.zeros(len(points), dtype=bool)
    radius = reach(skel.radius)
    near = cKDTree(skel.vertices).query_ball_point(points, float(radius.max()))
    which = np.repeat(np.arange(len(points)), [len(found) for found in near])
    vertex = np.concatenate([np.asarray(found, dtype=np.int64) for found in near])
    inside = np.linalg.norm(skel.vertices[vertex] - points[which], axis=1) <= radius[vertex]
    return np.bincount(which[inside], minlength=len(points)) > 0


def connect_pieces(skel: Skeleton, cut: np.ndarray, reach: np.ndarray) -> Skeleton:
    """Join the pieces of one object's skeleton into one.

    Where neighbouring tasks crossed their seam through different voxels, each side's cable stops
    at a cut end. Each cut end left dangling (degree <= 1) is joined to the nearest vertex of
    another piece inside its invalidation ball (`reach`, per vertex), shortest joins first and only
    between pieces still apart (so no loop is made); pieces left apart after that are joined at
    their closest vertices, closest first.
    """
    count = len(skel.vertices)
    edges = skel.edges.astype(np.int64)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    pieces, piece = connected_components(graph, directed=False)
    if pieces < 2:
        return skel
    root = list(range(pieces))

    def find(p):
        while root[p] != p:
            root[p] = root[root[p]]
            p = root[p]
        return p

    def join(candidates):
        added = []
        for _, a, b in sorted(candidates):
            if find(piece[a]) != find(piece[b]):
                root[find(piece[a])] = find(piece[b])
                added.append((a, b))
        return added

    ends = np.flatnonzero(cut & (np.bincount(edges.ravel(), minlength=count) <= 1))
    added = join(c for c in nearest_in_other_pieces(skel.vertices, piece, ends) if c[0] <= reach[c[1]])
    groups = np.array([find(p) for p in range(pieces)])[piece]
    if len(np.unique(groups)) > 1:
        added += join(closest_between(skel.vertices, groups))
    return with_edges(skel, np.concatenate([skel.edges, np.array(added, dtype=np.uint32).reshape(-1, 2)]))


def nearest_in_other_pieces(vertices: np.ndarray, piece: np.ndarray, ends: np.ndarray) -> list:
    """(distance, end, vertex) from each end to the nearest vertex of every other piece."""
    out = []
    for end in ends:
        distance = np.linalg.norm(vertices - vertices[end], axis=1)
        order = np.lexsort((distance, piece))
        nearest = order[np.unique(piece[order], return_index=True)[1]]
        out += [(float(distance[v]), int(end), int(v)) for v in nearest if piece[v] != piece[end]]
    return out


def closest_between(vertices: np.ndarray, group: np.ndarray) -> list:
    """(distance, a, b) for the closest vertices a, b of every two groups."""
    members = [np.flatnonzero(group == g) for g in np.unique(group)]
    out = []
    for i, first in enumerate(members):
        tree = cKDTree(vertices[first])
        for second in members[i + 1:]:
            distance, index = tree.query(vertices[second])
            best = int(np.argmin(distance))
            out.append((float(distance[best]), int(first[index[best]]), int(second[best])))
    return out


def terminal_branches(edges: np.ndarray, count: int) -> List[Tuple[List[int], int]]:
    """Each terminal branch as (its vertices from the terminal on, the branch point it ends at);
    components that are a single path have none."""
    degree = np.bincount(edges.ravel(), minlength=count)
    neighbours: List[List[int]] = [[] for _ in range(count)]
    for a, b in edges:
        neighbours[a].append(int(b))
        neighbours[b].append(int(a))
    branches = []
    for terminal in np.flatnonzero(degree == 1):
        path, previous, current = [int(terminal)], -1, int(terminal)
        while True:
            step = [n for n in neighbours[current] if n != previous]
            previous, current = current, step[0]
            if degree[current] != 2:
                break
            path.append(current)
        if degree[current] > 2:
            branches.append((path, current))
    return branches


def prune(skel: Skeleton, doomed: Callable[[List[int], int, float, np.ndarray], bool]) -> Skeleton:
    """Drop the terminal branches `doomed(path, junction, length, alive)` picks (path: the branch's
    vertices from its tip on; alive: which vertices are still cable), shortest first and again
    on the branches left, until none is picked. A branch point always keeps two branches, so no
    piece comes apart."""
    edges = skel.edges.astype(np.int64)
    while len(edges):
        degree = np.bincount(edges.ravel(), minlength=len(skel.vertices))
        alive = degree > 0
        before = alive.sum()
        branches = terminal_branches(edges, len(skel.vertices))
        length = [np.linalg.norm(np.diff(skel.vertices[path + [junction]], axis=0), axis=1).sum()
                  for path, junction in branches]
        for index in np.argsort(length, kind="stable"):
            path, junction = branches[index]
            if degree[junction] > 2 and doomed(path, junction, length[index], alive):
                degree[junction] -= 1
                alive[path] = False
        if alive.sum() == before:
            break
        edges = edges[alive[edges].all(axis=1)]
    return with_edges(skel, edges).consolidate()


def trim_duplicates(skel: Skeleton) -> Skeleton:
    """Drop terminal branches whose tip lies inside the tube (radius) of cable elsewhere.

    Such a branch traces a stretch of the object that other cable already traces: neighbouring
    tasks that crossed their seam, or reached into the same tip, each their own way. One TEASAR run
    makes them at most as spurs shorter than a radius (it never picks a target inside the
    invalidation ball of traced cable).
    """
    radius = np.asarray(skel.radius, dtype=np.float64)
    tree = cKDTree(skel.vertices)

    def inside(path, junction, length, alive):
        tip = skel.vertices[path[0]]
        near = np.setdiff1d(tree.query_ball_point(tip, float(radius.max())), path)
        near = near[alive[near]]
        return bool((np.linalg.norm(skel.vertices[near] - tip, axis=1) <= radius[near]).any())
    return prune(skel, inside)


def remove_ticks(skel: Skeleton, threshold: float) -> Skeleton:
    """Drop terminal branches shorter than `threshold` nm (kimimaro's tick removal, which can
    split a skeleton where a branch point loses all but one branch)."""
    return prune(skel, lambda path, junction, length, alive: length < threshold) if threshold > 0 else skel


def postprocess(skel: Skeleton, dust_threshold: float, tick_threshold: float,
                max_cable_length: Optional[float] = None) -> Skeleton:
    """kimimaro's postprocessing (drop components with cable <= dust_threshold nm, break loops,
    join close pieces, remove ticks shorter than tick_threshold nm), skipped above max_cable_length."""
    if skel.empty() or (max_cable_length is not None and skel.cable_length() > max_cable_length):
        return skel
    label = skel.id
    skel = kimimaro.postprocess(skel, dust_threshold=dust_threshold, tick_threshold=0)
    skel = remove_ticks(skel, tick_threshold)
    skel.id = label
    return skel


def join_pieces(representatives: Sequence[Sequence[int]]) -> np.ndarray:
    """Connected groups of pieces that share a representative voxel; one group id per piece."""
    count = len(representatives)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    lengths = np.array([len(r) for r in representatives], dtype=np.int64)
    reps = np.concatenate([np.asarray(r, dtype=np.int64) for r in representatives] + [np.zeros(0, np.int64)])
    owners = np.repeat(np.arange(count), lengths)
    order = np.argsort(reps, kind="stable")
    reps, owners = reps[order], owners[order]
    same = reps[1:] == reps[:-1]
    pairs = (owners[:-1][same], owners[1:][same])
    graph = coo_matrix((np.ones(len(pairs[0])), pairs), shape=(count, count))
    return connected_components(graph, directed=False)[1]


def to_swc(skel: Skeleton, label: int) -> str:
    """SWC text: one tree per connected component (isolated vertices are roots of their own),
    ids 1..N in breadth-first order, parent -1 for roots, coordinates and radius as stored (nm)."""
    count = len(skel.vertices)
    edges = skel.edges.astype(np.int64)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    _, component = connected_components(graph, directed=False)
    radius = np.asarray(getattr(skel, "radius", np.zeros(count)), dtype=np.float64)
    ids = np.zeros(count, dtype=np.int64)
    rows, next_id = [], 1
    for comp in np.unique(component):
        root = int(np.flatnonzero(component == comp)[0])
        order, parents = breadth_first_order(graph, root, directed=False, return_predecessors=True)
        for vertex in order:
            ids[vertex] = next_id
            next_id += 1
            parent = parents[vertex]
            x, y, z = skel.vertices[vertex]
            rows.append(f"{ids[vertex]} 0 {x:.3f} {y:.3f} {z:.3f} {radius[vertex]:.3f} "
                        f"{-1 if parent < 0 else ids[parent]}")
    header = [f"# skeleton {label} written by igneous_like", "# coordinates and radius in nanometers",
              "# id type x y z radius parent"]
    return "\n".join(header + rows) + "\n"
