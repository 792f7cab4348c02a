"""Multi-resolution meshes: one object's mesh cut along an octree and simplified level by level, so
that every level of detail is closed and cells meet without cracks, whatever mix of levels
Neuroglancer draws side by side. Numpy in, bytes out; no storage.

Coordinates are "units": 1/QUANTUM of a finest cell along each axis, from the octree's origin. A
level-k cell is QUANTUM * 2**k units wide, so every cell wall lies on a whole number of units and a
vertex on a wall is stored as exactly 0 or QUANTUM by the cells on both sides.

- Level 0 is the mesh split exactly along the finest cell walls: a triangle that crosses a wall is
  cut in two or three, the new vertex computed from the edge's endpoints in a fixed order, so both
  triangles on that edge get the very same vertex.
- Level k simplifies level k-1 in each level-(k-1) cell on its own, keeping the vertices on that
  cell's walls. Neuroglancer draws a level-k fragment by its eight level-(k-1) octants, next to
  finer fragments; on every wall between them, all levels carry level 0's vertices.
"""
from typing import Dict, List, Tuple

import DracoPy
import numpy as np
import zmesh
from cloudvolume.datasource.precomputed.mesh.multilod import MultiLevelPrecomputedMeshManifest

Mesh = zmesh.Mesh
QUANTIZATION_BITS = 16  # of stored vertices; Neuroglancer accepts 10 or 16
QUANTUM = 2 ** QUANTIZATION_BITS - 1
MAX_LODS = 8  # the widest cell simplified (level 6) is under 2**22 units: float32 tells units apart
Level = Tuple[np.ndarray, np.ndarray]  # vertices (units, float64), faces


def multires_fragments(mesh: Mesh, num_lods: int, resolution, label: int,
                       draco_level: int = 7) -> Tuple[bytes, bytes]:
    """(manifest, fragment data) of one object with up to `num_lods` levels of detail.

    Model space is voxels (the layer info's transform scales by the resolution). The octree's
    coarsest level is one cell around the mesh; small meshes get fewer levels.
    """
    res = np.asarray(resolution, dtype=np.float64)
    voxels = mesh.vertices.astype(np.float64) / res
    low, high = np.floor(voxels.min(axis=0)), np.ceil(voxels.max(axis=0))
    depth = 1
    while depth < min(num_lods, MAX_LODS) and len(mesh.faces) // 4 ** depth >= 4:
        depth += 1
    chunk = np.maximum((high - low) / 2 ** (depth - 1), 1.0).astype(np.float32).astype(np.float64)
    scale = chunk * res / QUANTUM  # nm per unit
    levels = octree_levels((voxels - low) / chunk * QUANTUM, mesh.faces, depth, scale, res.min())
    fragments = [encode_level(*level, lod, 2 ** (depth - 1 - lod), draco_level)
                 for lod, level in enumerate(levels)]
    for lod in range(len(fragments) - 2, -1, -1):  # every fragment needs its parent one level up
        for position in fragments[lod]:
            fragments[lod + 1].setdefault(tuple(p >> 1 for p in position), b"")
    positions = [np.array(sorted(level), dtype=np.int64).reshape(-1, 3) for level in fragments]
    positions = [keys[morton_order(keys)] for keys in positions]
    binaries = [fragments[lod][tuple(key)] for lod, keys in enumerate(positions) for key in keys.tolist()]
    manifest = MultiLevelPrecomputedMeshManifest(
        segment_id=label, chunk_shape=chunk.astype(np.float32), grid_origin=low.astype(np.float32),
        num_lods=len(levels), lod_scales=[2.0 ** k for k in range(len(levels))],
        vertex_offsets=np.zeros((len(levels), 3), np.float32),
        num_fragments_per_lod=[len(keys) for keys in positions], fragment_positions=positions,
        fragment_offsets=[len(binary) for binary in binaries])
    return manifest.to_binary(), b"".join(binaries)


def octree_levels(vertices: np.ndarray, faces: np.ndarray, depth: int, scale: np.ndarray,
                  voxel: float) -> List[Level]:
    """Up to `depth` levels (units), level k simplified from level k-1 by up to 2**k `voxel` nm;
    `scale` is nm per unit by axis. A level that would not shrink ends the list (Neuroglancer adds
    empty levels above it)."""
    vertices, faces = weld(np.round(vertices), faces.astype(np.int64))  # near a wall: on it
    split, faces = split_along_walls(vertices, faces, QUANTUM)
    levels = [weld(np.round(split), faces)]
    for lod in range(1, depth):
        if len(levels[-1][1]) == 0:
            break
        coarser = coarsen(*levels[-1], lod, 2 ** (depth - lod), scale, max_error=2 ** lod * voxel)
        if len(coarser[1]) == 0 or len(coarser[1]) >= len(levels[-1][1]):
            break
        levels.append(coarser)
    return levels


def split_along_walls(vertices: np.ndarray, faces: np.ndarray, spacing: float) -> Level:
    """The mesh with every triangle that crosses a plane at a multiple of `spacing` (on any axis)
    cut there, so each triangle lies in one cell.

    Each pass cuts a crossing triangle at the lowest plane it crosses, which for each edge it cuts
    is that edge's lowest crossing too: both triangles on an edge cut it at the same plane.
    """
    for axis in range(3):
        while True:
            corners = vertices[faces, axis]
            plane = (np.floor(corners.min(axis=1) / spacing) + 1) * spacing
            crossing = plane < corners.max(axis=1)
            if not crossing.any():
                break
            vertices, pieces = cut(vertices, faces[crossing], axis, plane[crossing])
            faces = np.concatenate([faces[~crossing], pieces])
    return vertices, faces


def cut(vertices: np.ndarray, faces: np.ndarray, axis: int, plane: np.ndarray) -> Level:
    """Triangles that cross their `plane` (normal `axis`) cut into two (a corner on the plane) or
    three triangles with the same winding; returns all vertices (new ones appended) and the pieces."""
    side = np.sign(vertices[faces, axis] - plane[:, None])
    lone = np.argmax(side == -side.sum(axis=1, keepdims=True), axis=1)  # the corner alone on its side
    order = (lone[:, None] + np.arange(3)) % 3
    a, b, c = np.take_along_axis(faces, order, axis=1).T
    on = np.take_along_axis(side, order, axis=1)[:, 0] == 0
    off = ~on
    first, n_on, n_off = len(vertices), int(on.sum()), int(off.sum())
    m = first + np.arange(n_on)  # on b-c, when a lies on the plane
    m1 = first + n_on + np.arange(n_off)  # on a-b
    m2 = first + n_on + n_off + np.arange(n_off)  # on a-c
    new = [crossing_points(vertices, b[on], c[on], axis, plane[on]),
           crossing_points(vertices, a[off], b[off], axis, plane[off]),
           crossing_points(vertices, a[off], c[off], axis, plane[off])]
    a_on, b_on, c_on, a_off, b_off, c_off = a[on], b[on], c[on], a[off], b[off], c[off]
    pieces = np.concatenate([np.stack([a_on, b_on, m], 1), np.stack([a_on, m, c_on], 1),
                             np.stack([a_off, m1, m2], 1), np.stack([m1, b_off, c_off], 1),
                             np.stack([m1, c_off, m2], 1)])
    return np.concatenate([vertices, *new]), pieces


def crossing_points(vertices: np.ndarray, p: np.ndarray, q: np.ndarray, axis: int,
                    plane: np.ndarray) -> np.ndarray:
    """Where edges p-q meet their planes, computed from the endpoint lower on `axis`, so an edge
    gives the same point whichever triangle (or copy of its endpoints) asks."""
    low = np.where(vertices[p, axis] < vertices[q, axis], p, q)
    high = p + q - low
    start, step = vertices[low], vertices[high] - vertices[low]
    points = start + ((plane - start[:, axis]) / step[:, axis])[:, None] * step
    points[:, axis] = plane
    return points


def weld(vertices: np.ndarray, faces: np.ndarray) -> Level:
    """Vertices at the same position joined; triangles left with a repeated corner dropped, and
    two-sided zero-volume flaps (two triangles on the same three corners, which edge collapses or
    rounding sometimes leave) dropped too: they would share their edges four ways."""
    first, inverse = row_groups(vertices)
    faces = inverse[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    _, corners = row_groups(np.sort(faces, axis=1))
    return vertices[first], faces[np.bincount(corners)[corners] == 1]


def row_groups(rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(index of one row of each distinct value, each row's group number), groups in sorted order.
    A lexicographic sort: much faster than np.unique(axis=0)."""
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return order[new], inverse


def cells_of(vertices: np.ndarray, faces: np.ndarray, size: float, grid: int) -> np.ndarray:
    """The cell (of `size` units, `grid` a side) holding each triangle, by its centroid. A triangle
    lying on a wall goes to the lower cell, as Neuroglancer gives it to the first octant it fits."""
    centroids = vertices[faces].mean(axis=1)
    return np.clip(np.ceil(centroids / size) - 1, 0, grid - 1).astype(np.int64)


def groups(cells: np.ndarray):
    """(cell, indices of its triangles) for each occupied cell."""
    first, inverse = row_groups(cells)
    order = np.argsort(inverse, kind="stable")
    return zip(cells[first], np.split(order, np.cumsum(np.bincount(inverse))[:-1]))


def coarsen(vertices: np.ndarray, faces: np.ndarray, lod: int, grid: int, scale: np.ndarray,
            max_error: float) -> Level:
    """Level `lod` from the level below: each level-(lod-1) cell (`grid` a side) simplified on its
    own, by up to `max_error` nm and to no fewer than a quarter of its triangles, keeping the
    vertices on its walls, so pieces (and finer levels) still meet there."""
    size = QUANTUM * 2 ** (lod - 1)
    iterations = int(np.ceil((max_error ** 2 / FQMR_ALPHA) ** (1 / FQMR_AGGRESSIVENESS) - FQMR_K))
    pieces = [simplify_piece(vertices, faces[chosen], cell * size, size, scale, iterations, 2 ** lod)
              for cell, chosen in groups(cells_of(vertices, faces, size, grid))]
    offsets = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
    return weld(np.concatenate([v for v, _ in pieces]),
                np.concatenate([f + offset for (_, f), offset in zip(pieces, offsets)]))


def simplify_piece(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, size: float,
                   scale: np.ndarray, iterations: int, inset: float) -> Level:
    """One cell's triangles simplified in nm, their open border (on the walls) kept as it is.

    Vertices the simplifier did not move keep their exact unit positions. All but the border stay
    `inset` (a quantum of the new level) inside the cell, so once stored each triangle still falls
    in its own octant by Neuroglancer's rule (one lying on a wall goes to the lower octant). Where
    the simplifier pinched the surface (an edge shared four ways: zmesh's quadric reduction does
    not check), the piece stays as it was.
    """
    used, local = np.unique(faces, return_inverse=True)
    exact, local = vertices[used], local.reshape(-1, 3)
    edges, counts = edge_counts(local)
    border = edges[counts == 1]
    locked = np.zeros(len(exact), dtype=bool)
    locked[border >> 32] = locked[border & 0xFFFFFFFF] = True
    if len(local) >= 16:
        nm = ((exact - origin) * scale).astype(np.float32)
        out, out_faces = simplify_locked(nm, local, np.flatnonzero(locked), iterations)
        kept = matching_rows(nm, out)
        if same_border(border, np.where(kept >= 0, kept, len(nm) + np.arange(len(out)))[out_faces]):
            exact = np.where((kept >= 0)[:, None], exact[np.maximum(kept, 0)], out / scale + origin)
            local, locked = out_faces, (kept >= 0) & locked[np.maximum(kept, 0)]
    inside = np.clip(exact, origin + inset, origin + size - inset)
    return np.where(locked[:, None], exact, inside), local


FQMR_ALPHA, FQMR_K, FQMR_AGGRESSIVENESS = 1e-9, 3, 7  # zmesh's defaults: threshold alpha*(i+K)**aggr
TAB_CORNER = -1e6  # nm: where tab triangles point, far outside any cell


def simplify_locked(vertices: np.ndarray, faces: np.ndarray, locked: np.ndarray,
                    iterations: int) -> Tuple[np.ndarray, np.ndarray]:
    """zmesh's fast quadric reduction with the `locked` vertices (on open edges) kept in place.

    zmesh 1.15's simplify_fqmr takes a vertex's border flag from whichever neighbour it visits
    last, so preserve_border misses many. A tab triangle on each border vertex, its two corners
    numbered last and far away, makes that last neighbour one across a border edge; tabs are
    dropped afterwards.
    """
    corners = len(vertices) + 2 * np.arange(len(locked))
    far = np.tile(np.array([[TAB_CORNER, 0, 0], [0, TAB_CORNER, 0]], np.float32), (len(locked), 1))
    tabbed = Mesh(np.concatenate([vertices, far]),
                  np.concatenate([faces, np.stack([locked, corners, corners + 1], axis=1)]).astype(np.uint32),
                  None)
    simple = zmesh.simplify_fqmr(tabbed, target_count=len(faces) // 4 + len(locked),  # tabs count too
                                 max_iterations=iterations, alpha=FQMR_ALPHA, K=FQMR_K,
                                 aggressiveness=FQMR_AGGRESSIVENESS, preserve_border=True)
    out, out_faces = np.asarray(simple.vertices, np.float32), simple.faces.astype(np.int64)
    out_faces = out_faces[(out[out_faces] > TAB_CORNER / 2).all(axis=(1, 2))]
    used, out_faces = np.unique(out_faces, return_inverse=True)
    return out[used], out_faces.reshape(-1, 3)


def matching_rows(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query, the index of an equal row of `rows`, or -1."""
    _, inverse = row_groups(np.concatenate([rows, queries]))
    source = np.full(inverse.max() + 1, -1)
    source[inverse[:len(rows)]] = np.arange(len(rows))
    return source[inverse[len(rows):]]


def edge_counts(faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Each undirected edge (low vertex << 32 | high vertex) and how many triangles share it."""
    sides = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique((sides[:, 0] << 32) | sides[:, 1], return_counts=True)


def same_border(border: np.ndarray, faces: np.ndarray) -> bool:
    """Whether `faces` have exactly the open edges `border` and share every other edge two ways."""
    edges, counts = edge_counts(faces)
    return bool((counts <= 2).all()) and np.array_equal(edges[counts == 1], border)


def encode_level(vertices: np.ndarray, faces: np.ndarray, lod: int, grid: int,
                 draco_level: int) -> Dict[Tuple[int, int, int], bytes]:
    """Draco fragments of one level by cell position, vertices stored as whole quanta of the cell.

    Halves round up, so a vertex on a level-(k-1) wall inside a level-k cell lands on 2**15, the
    value Neuroglancer counts in both octants.
    """
    size = QUANTUM * 2 ** lod
    fragments = {}
    for cell, chosen in groups(cells_of(vertices, faces, size, grid)):
        used, local = np.unique(faces[chosen], return_inverse=True)
        stored = np.clip(np.floor((vertices[used] - cell * size) / 2 ** lod + 0.5), 0, QUANTUM)
        stored, local = weld(stored, local.reshape(-1, 3))  # Draco rejects degenerate triangles
        if len(local):
            fragments[tuple(int(c) for c in cell)] = DracoPy.encode(
                stored.astype(np.float32), local.astype(np.uint32), quantization_bits=QUANTIZATION_BITS,
                compression_level=draco_level, quantization_range=QUANTUM, quantization_origin=np.zeros(3),
                preserve_order=False)
    return fragments


def morton_order(positions: np.ndarray) -> np.ndarray:
    """Indices that sort integer grid positions along the Z-order curve, as Neuroglancer needs."""
    codes = np.zeros(len(positions), dtype=np.uint64)
    positions = positions.astype(np.uint64)
    for bit in range(21):
        for axis in range(3):
            codes |= ((positions[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(codes, kind="stable")
