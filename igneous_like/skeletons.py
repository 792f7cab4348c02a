"""Skeleton algorithms without storage: task cutouts and their seams, fragment fusion, seam-tick
removal, postprocessing and SWC text.

How chunked skeletons fuse. A forge task owns a box of the task grid and skeletonizes its
*crop*: the owned box plus the first plane of each upper neighbour, so neighbouring crops share
exactly one voxel plane (the seam). It reads `context` more voxels around the crop so that
TEASAR sees each object well past the seam, then keeps only the part of each skeleton inside
the crop. A skeleton edge that left the crop ends at a vertex on the seam plane (26-neighbour
steps cannot jump a plane); that dangling end is joined, inside the plane, to the seam point of
its 2D component: the maximum of the plane's 2D distance transform, which both neighbours
compute from the same plane. Fragments therefore share the seam point exactly and fuse by
consolidating equal vertices. Merging then drops the in-plane stubs nobody needed (terminal
branches that lie wholly in one seam plane).

Objects are connected components (26-connected) in each task; components of neighbouring tasks
that share a voxel on a seam are one object. Each task records, for every component, one
representative voxel per 2D component of each seam plane, which both neighbours pick the same
way, so joining components across tasks is a union of equal representatives. Each component's
voxels inside its owned box are counted, so whole-volume component sizes are exact.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cc3d
import dijkstra3d
import edt
import fastremap
import kimimaro
import kimimaro.skeletontricks
import numpy as np
from cloudvolume import Skeleton
from cloudvolume.lib import Bbox, Vec
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

RADIUS = {"id": "radius", "data_type": "float32", "num_components": 1}
CROSS_SECTION = {"id": "cross_sectional_area", "data_type": "float32", "num_components": 1}


def vertex_attributes(cross_section: bool) -> List[dict]:
    """The vertex attributes every skeleton of a layer carries, in file order."""
    return [RADIUS, CROSS_SECTION] if cross_section else [RADIUS]


@dataclass(frozen=True)
class Cutout:
    """One forge task's boxes, in voxels of its mip.

    owned: the grid cell; crop: the owned box plus the shared plane of each upper neighbour;
    read: the crop grown by the context, all clipped to the volume.
    """
    owned: Bbox
    crop: Bbox
    read: Bbox
    volume: Bbox

    @classmethod
    def around(cls, owned: Bbox, volume: Bbox, margin: Sequence[int]) -> "Cutout":
        crop = Bbox.clamp(Bbox(owned.minpt, owned.maxpt + 1), volume)
        read = Bbox.clamp(Bbox(crop.minpt - Vec(*margin), crop.maxpt + Vec(*margin)), volume)
        return cls(owned, crop, read, volume)

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


@dataclass
class SeamFace:
    """A crop face shared with a neighbour: its 2D components, seam points and representatives."""
    axis: int
    coord: int  # global voxel coordinate of the plane along `axis`
    others: Tuple[int, int]
    corner: Tuple[int, int]  # global coordinates of the plane's first voxel along `others`
    plane: np.ndarray  # 3D component ids on the plane
    weights: Tuple[float, float]  # voxel size (nm) along `others`
    cc2d: np.ndarray
    dist: np.ndarray  # 2D distance transform of cc2d (nm)
    points: Dict[int, Tuple[int, int]]  # 2D component -> its seam point (i, j)

    @classmethod
    def build(cls, cc: np.ndarray, cut: Cutout, axis: int, coord: int, anisotropy) -> "SeamFace":
        box = cut.crop.clone()
        box.minpt[axis], box.maxpt[axis] = coord, coord + 1
        plane = np.ascontiguousarray(np.squeeze(cc[cut.local(box)], axis=axis))
        others = tuple(a for a in range(3) if a != axis)
        weights = (float(anisotropy[others[0]]), float(anisotropy[others[1]]))
        cc2d = cc3d.connected_components(plane, connectivity=8)
        dist = edt.edt(cc2d, black_border=True, anisotropy=weights)
        points = kimimaro.skeletontricks.find_border_targets(dist, cc2d, *weights)
        corner = (int(box.minpt[others[0]]), int(box.minpt[others[1]]))
        return cls(axis, coord, others, corner, plane, weights, cc2d, dist,
                   {int(k): (int(v[0]), int(v[1])) for k, v in points.items()})

    def global_point(self, i: int, j: int) -> np.ndarray:
        point = np.zeros(3, dtype=np.int64)
        point[self.axis] = self.coord
        point[self.others[0]], point[self.others[1]] = self.corner[0] + i, self.corner[1] + j
        return point

    def representatives(self, keep: set, volume: Bbox) -> Dict[int, List[int]]:
        """One voxel per 2D component, as a linear index into the volume, for each kept component."""
        flat = self.cc2d.ravel(order="C")
        ids, first = np.unique(flat, return_index=True)
        reps: Dict[int, List[int]] = {}
        for cc2d_id, index in zip(ids, first):
            if cc2d_id == 0:
                continue
            i, j = np.unravel_index(index, self.cc2d.shape, order="C")
            owner = int(self.plane[i, j])
            if owner in keep:
                reps.setdefault(owner, []).append(linear_index(self.global_point(i, j), volume))
        return reps

    def path_to_seam_point(self, i: int, j: int) -> Optional[np.ndarray]:
        """In-plane voxels (global) from (i, j) to its 2D component's seam point; None if it is one."""
        label = int(self.cc2d[i, j])
        target = self.points.get(label)
        if label == 0 or target is None or target == (i, j):
            return None
        mask = np.asfortranarray((self.cc2d == label)[..., np.newaxis])
        path = dijkstra3d.binary_dijkstra(mask, (i, j, 0), (target[0], target[1], 0),
                                          anisotropy=(*self.weights, 1.0), connectivity=26,
                                          background_color=0)
        return np.array([self.global_point(int(p[0]), int(p[1])) for p in path])


def linear_index(point: np.ndarray, volume: Bbox) -> int:
    x, y, z = (np.asarray(point) - volume.minpt).astype(np.int64)
    sx, sy, _ = volume.size3().astype(np.int64)
    return int(x + sx * (y + sy * z))


def crop_to_task(skel: Skeleton, cut: Cutout, faces: List[SeamFace], anisotropy,
                 attributes: List[dict]) -> Optional[Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]]:
    """The part of a kimimaro skeleton (read-box physical coordinates) inside the crop, with each
    edge that left it replaced by an in-plane path to a seam point.

    Returns (global voxel coordinates, edges, attributes) or None when nothing lies in the crop.
    """
    vox = np.round(skel.vertices / np.asarray(anisotropy, dtype=np.float32)).astype(np.int64)
    vox += np.asarray(cut.read.minpt, dtype=np.int64)
    inside = np.all((vox >= cut.crop.minpt) & (vox < cut.crop.maxpt), axis=1)
    if not inside.any():
        return None
    edges = skel.edges.astype(np.int64)
    kept = inside[edges[:, 0]] & inside[edges[:, 1]]
    leaving = edges[inside[edges[:, 0]] != inside[edges[:, 1]]]
    dangling = np.unique(np.where(inside[leaving[:, 0]], leaving[:, 0], leaving[:, 1]))

    index = np.full(len(vox), -1, dtype=np.int64)
    index[inside] = np.arange(int(inside.sum()))
    parts_v = [vox[inside]]
    parts_e = [index[edges[kept]]]
    values = {a["id"]: [np.asarray(getattr(skel, a["id"]), dtype=np.float32)[inside]] for a in attributes}
    count = int(inside.sum())
    for vertex in dangling:
        path = seam_path(vox[vertex], faces)
        if path is None:
            continue
        path, radius = path
        ids = np.arange(count, count + len(path))
        count += len(path)
        parts_v.append(path)
        parts_e.append(np.column_stack([np.concatenate([[index[vertex]], ids[:-1]]), ids]))
        for a in attributes:
            fill = radius if a["id"] == "radius" else np.float32(getattr(skel, a["id"])[vertex])
            values[a["id"]].append(np.broadcast_to(np.asarray(fill, dtype=np.float32), len(path)))
    return (np.concatenate(parts_v), np.concatenate(parts_e).astype(np.uint32),
            {k: np.concatenate(v) for k, v in values.items()})


def seam_path(point: np.ndarray, faces: List[SeamFace]):
    """(voxels, radii) of the in-plane path from `point` to its seam point, on the first shared
    face through it; None if it lies on none or already is a seam point."""
    for face in faces:
        if point[face.axis] != face.coord:
            continue
        i, j = int(point[face.others[0]] - face.corner[0]), int(point[face.others[1]] - face.corner[1])
        path = face.path_to_seam_point(i, j)
        if path is None:
            return None
        radii = face.dist[path[:, face.others[0]] - face.corner[0], path[:, face.others[1]] - face.corner[1]]
        return path[1:], radii[1:].astype(np.float32)
    return None


def make_skeleton(vertices: np.ndarray, edges: np.ndarray, values: Dict[str, np.ndarray],
                  attributes: List[dict], segid: int = 0) -> Skeleton:
    """A Skeleton whose vertex attributes are exactly `attributes` (the layer's, in order)."""
    skel = Skeleton(np.asarray(vertices, dtype=np.float32), np.asarray(edges, dtype=np.uint32),
                    segid=segid, extra_attributes=[dict(a) for a in attributes], default_attributes=False)
    for a in attributes:
        setattr(skel, a["id"], np.asarray(values[a["id"]], dtype=np.float32))
    return skel


def encode(skel: Skeleton) -> bytes:
    return skel.to_precomputed()


def decode(data: bytes, attributes: List[dict], segid: int = 0) -> Skeleton:
    return Skeleton.from_precomputed(data, segid=segid, vertex_attributes=attributes)


def fuse(fragments: Sequence[Skeleton]) -> Skeleton:
    """One skeleton from fragments: equal vertices (the seams) become one."""
    return Skeleton.simple_merge(list(fragments)).consolidate()


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


def remove_seam_ticks(skel: Skeleton, seam_plane: np.ndarray) -> Skeleton:
    """Drop terminal branches that lie wholly in one seam plane, until none is left.

    seam_plane: (N, 3) int array, the index of the seam plane each vertex lies on along each
    axis, or -1. Such branches are in-plane joins to seam points that only one side needed.
    Each pass leaves every branch point at least two branches, so no component disappears.
    """
    edges = skel.edges.astype(np.int64)
    while len(edges):
        removed = set()
        degree = np.bincount(edges.ravel(), minlength=len(skel.vertices))
        for branch, junction in terminal_branches(edges, len(skel.vertices)):
            planes = seam_plane[branch]
            if degree[junction] > 2 and np.any(np.all((planes == planes[0]) & (planes[0] >= 0), axis=0)):
                degree[junction] -= 1
                removed.update(branch)
        if not removed:
            break
        gone = np.isin(edges, list(removed)).any(axis=1)
        edges = edges[~gone]
    out = skel.clone()
    out.edges = edges.astype(np.uint32)
    return out.consolidate()


def join_seam_gaps(skel: Skeleton, seam_plane: np.ndarray, scale: float, const: float) -> Skeleton:
    """Join pieces a seam left apart: a piece's end on a seam plane gets an edge to the nearest
    vertex of another piece whose TEASAR invalidation ball (scale * radius + const) covers it.

    That happens where one task traced a branch that its neighbour had invalidated, so only one
    side reaches the seam point.
    """
    count = len(skel.vertices)
    edges = skel.edges.astype(np.int64)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    pieces, piece = connected_components(graph, directed=False)
    if pieces < 2:
        return skel
    degree = np.bincount(edges.ravel(), minlength=count)
    ends = np.flatnonzero((seam_plane >= 0).any(axis=1) & (degree <= 1))
    reach = scale * np.asarray(skel.radius, dtype=np.float64) + const
    tree = cKDTree(skel.vertices)
    candidates = []
    for end in ends:
        for vertex in tree.query_ball_point(skel.vertices[end], float(reach.max())):
            distance = float(np.linalg.norm(skel.vertices[vertex] - skel.vertices[end]))
            if piece[vertex] != piece[end] and distance <= reach[vertex]:
                candidates.append((distance, int(end), int(vertex)))
    root = list(range(pieces))

    def find(p):
        while root[p] != p:
            root[p] = root[root[p]]
            p = root[p]
        return p

    added = []
    for _, end, vertex in sorted(candidates):
        a, b = find(piece[end]), find(piece[vertex])
        if a != b:
            root[a] = b
            added.append((end, vertex))
    if not added:
        return skel
    out = skel.clone()
    out.edges = np.concatenate([skel.edges, np.array(added, dtype=np.uint32)])
    return out


def postprocess(skel: Skeleton, dust_threshold: float, tick_threshold: float,
                max_cable_length: Optional[float] = None) -> Skeleton:
    """kimimaro's postprocessing (drop components with cable <= dust_threshold nm, break loops,
    join close pieces, remove ticks shorter than tick_threshold nm), skipped above max_cable_length."""
    if skel.empty() or (max_cable_length is not None and skel.cable_length() > max_cable_length):
        return skel
    label = skel.id
    skel = kimimaro.postprocess(skel, dust_threshold=dust_threshold, tick_threshold=tick_threshold)
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
