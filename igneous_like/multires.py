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
from typing import Dict, List, Optional, Tuple

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
                       draco_level: int = 7) -> Optional[Tuple[bytes, bytes]]:
    """(manifest, fragment data) of one object with up to `num_lods` levels of detail, or None if
    no surface is left once zero-volume flaps are dropped.

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
    if not fragments[0]:
        return None
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
    """(index of one row of each distinct value, each row's group number), for rows of 8-byte
    numbers. Groups rows by a 64-bit hash (much faster than np.unique(axis=0)), checked against
    each group's first row; were two values ever to collide, a lexicographic sort decides."""
    rows = np.ascontiguousarray(rows + 0 if rows.dtype.kind == "f" else rows)  # -0.0 is 0.0
    words = rows.view(np.uint64)
    key = np.zeros(len(rows), dtype=np.uint64)
    for column in range(words.shape[1]):
        key = (key ^ words[:, column]) * np.uint64(0x9E3779B97F4A7C15)
        key ^= key >> np.uint64(29)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if (rows[first[inverse]] == rows).all():
        return first, inverse
    order = np.lexsort(rows.T[::-1])
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (rows[order][1:] != rows[order][:-1]).any(axis=1)
    inverse[order] = np.cumsum(new) - 1
    return order[new], inverse


def cells_of(vertices: np.ndarray, faces: np.ndarray, size: float, grid: int) -> np.ndarray:
    """The cell (of `size` units, `grid` a side) holding each triangle, by its centroid. A triangle
    lying on a wall goes to the lower cell, as Neuroglancer gives it to the first octant it fits."""
    centroids = vertices[faces].mean(axis=1)
    return np.clip(np.ceil(centroids / size) - 1, 0, grid - 1).astype(np.int64)


def coarsen(vertices: np.ndarray, faces: np.ndarray, lod: int, grid: int, scale: np.ndarray,
            max_error: float) -> Level:
    """Level `lod` from the level below: each level-(lod-1) cell (`grid` a side) simplified on its
    own (its triangles get their own copies of their vertices) by up to `max_error` nm, keeping the
    vertices on its walls, so cells (and finer levels) still meet there.

    Vertices the simplifier did not move keep their exact unit positions. All but the walls' stay
    a quantum of the new level inside their cell, so once stored each triangle still falls in its
    own octant by Neuroglancer's rule (a triangle lying on a wall goes to the lower octant).
    """
    size = QUANTUM * 2 ** (lod - 1)
    cells = cells_of(vertices, faces, size, grid)
    first_face, piece_of_face = row_groups(cells)
    origin = cells[first_face] * size  # of each piece
    _, first, copies = np.unique(np.repeat(piece_of_face, 3) * len(vertices) + faces.reshape(-1),
                                 return_index=True, return_inverse=True)  # sorted by piece
    piece, exact, local = piece_of_face[first // 3], vertices[faces.reshape(-1)[first]], copies.reshape(-1, 3)
    nm = ((exact - origin[piece]) * scale).astype(np.float32)
    source, nm, faces, locked, piece = simplify_cells(nm, local, piece, max_error)
    low = origin[piece]
    vertices = np.where((source >= 0)[:, None], exact[source], nm / scale + low)
    inside = np.clip(vertices, low + 2 ** lod, low + size - 2 ** lod)
    return weld(np.where(locked[:, None], vertices, inside), faces)


def simplify_cells(vertices: np.ndarray, faces: np.ndarray, piece: np.ndarray, max_error: float):
    """Pieces of surface (vertices in nm, sorted by `piece`, none shared) simplified with their open
    edges kept. Returns (for each vertex after, the vertex it is or -1 where moved; positions;
    faces; whether each lies on an open edge; its piece). Only triangles with a vertex that can
    move go to the simplifier. A piece it pinched (an edge shared four ways: zmesh's quadric
    reduction does not check) stays as it was."""
    edges, counts = edge_counts(faces)
    border = edges[counts == 1]
    locked = np.zeros(len(vertices), dtype=bool)
    locked[border >> 32] = locked[border & 0xFFFFFFFF] = True
    sides = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    movable = np.zeros(len(vertices), dtype=bool)
    movable[sides[~locked[sides].any(axis=1)]] = True  # an end of an edge that can collapse
    active = movable[faces].any(axis=1)
    out_piece, out, out_faces = simplify_locked(vertices, faces[active], piece, locked, max_error)
    kept = matching_rows(np.column_stack([piece, vertices]), np.column_stack([out_piece, out]))
    ids = np.where(kept >= 0, kept, len(vertices) + np.arange(len(out)))
    pinched = np.zeros(piece[-1] + 1, dtype=bool)
    changed = changed_edges(border, np.concatenate([ids[out_faces], faces[~active]]))
    pinched[np.concatenate([piece, out_piece])[changed >> 32]] = True
    faces = np.concatenate([out_faces[~pinched[out_piece[out_faces[:, 0]]]],
                            faces[~active | pinched[piece[faces[:, 0]]]] + len(out)])
    return (np.concatenate([kept, np.arange(len(vertices))]), np.concatenate([out, vertices]), faces,
            np.concatenate([(kept >= 0) & locked[np.maximum(kept, 0)], locked]),
            np.concatenate([out_piece, piece]))


STEPS, SPAN = 20, 32  # error thresholds the simplifier climbs, from max_error / SPAN to max_error
FAR = -1e6  # nm: where the corners of tabs and markers lie, far from any cell


def fqmr_schedule(max_error: float) -> dict:
    """simplify_fqmr's options for a threshold (squared nm) of alpha * (i + K) ** 7 at step i that
    climbs from about (max_error / SPAN) ** 2 to max_error ** 2 in STEPS steps, then stops."""
    k = round(STEPS / (SPAN ** (2 / 7) - 1))
    return {"max_iterations": STEPS + 1, "aggressiveness": 7, "K": k,
            "alpha": max_error ** 2 / (STEPS + k) ** 7}


def simplify_locked(vertices: np.ndarray, faces: np.ndarray, piece: np.ndarray, locked: np.ndarray,
                    max_error: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many pieces (vertices sorted by `piece`, none shared) simplified in one call of zmesh's fast
    quadric reduction, the `locked` vertices kept in place; returns (piece, vertices, faces) of the
    vertices the faces still use.

    zmesh 1.15's simplify_fqmr takes a vertex's border flag from whichever neighbour it visits
    last, so preserve_border misses many: a tab triangle on each locked vertex, its two corners
    numbered after the piece and far away, makes that last neighbour one across a border edge.
    A marker triangle ends each piece; the simplifier keeps the order of the vertices it keeps, so
    markers tell the pieces apart afterwards. Tabs and markers are dropped.
    """
    count = piece[-1] + 1
    used = np.zeros(len(vertices), dtype=bool)
    used[faces] = True
    faces, vertices, locked, piece = (np.cumsum(used) - 1)[faces], vertices[used], locked[used], piece[used]
    tabbed = np.flatnonzero(locked)
    sizes = np.bincount(piece, minlength=count) + 2 * np.bincount(piece[tabbed], minlength=count) + 3
    ends = np.cumsum(sizes)
    at = ends[piece] - sizes[piece] + np.arange(len(piece)) - np.searchsorted(piece, piece)
    after = np.searchsorted(tabbed, np.searchsorted(piece, piece[tabbed], "right")) - np.arange(len(tabbed))
    tab = ends[piece[tabbed]] - 3 - 2 * after  # the piece's tabs follow its vertices, in their order
    marker = ends[:, None] - np.arange(3, 0, -1)
    points = np.zeros((ends[-1], 3), np.float32)
    points[at] = vertices
    points[tab, 0] = points[marker[:, 0], 0] = points[tab + 1, 1] = points[marker[:, 1], 1] = FAR
    points[marker[:, 2], 2] = FAR
    triangles = np.concatenate([at[faces], np.stack([at[tabbed], tab, tab + 1], axis=1), marker])
    triangles = triangles[np.argsort(triangles.min(axis=1), kind="stable")]  # piece by piece: cache
    simple = zmesh.simplify_fqmr(Mesh(points, triangles.astype(np.uint32), None),
                                 target_count=len(faces) // 4 + len(tabbed) + len(marker),
                                 **fqmr_schedule(max_error), preserve_border=True)
    out, out_faces = np.asarray(simple.vertices, np.float32), simple.faces.astype(np.int64)
    ends_here = out[:, 2] == FAR
    far = (out <= FAR / 2).any(axis=1)
    out_faces = out_faces[~far[out_faces].any(axis=1)]
    renumber = np.cumsum(~far) - 1
    return (np.cumsum(ends_here) - ends_here)[~far], out[~far], renumber[out_faces]


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


def changed_edges(border: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The edges that make `faces` differ from a surface open exactly along `border`: open edges
    that are not in it, edges of it that are no longer open, and edges shared more than two ways."""
    edges, counts = edge_counts(faces)
    return np.concatenate([np.setxor1d(edges[counts == 1], border), edges[counts > 2]])


def encode_level(vertices: np.ndarray, faces: np.ndarray, lod: int, grid: int,
                 draco_level: int) -> Dict[Tuple[int, int, int], bytes]:
    """Draco fragments of one level by cell position, vertices stored as whole quanta of the cell
    (welded within each cell once stored: Draco rejects degenerate triangles).

    Halves round up, so a vertex on a level-(k-1) wall inside a level-k cell lands on 2**15, the
    value Neuroglancer counts in both octants.
    """
    size = QUANTUM * 2 ** lod
    cells = cells_of(vertices, faces, size, grid)
    first, fragment = row_groups(cells)
    stored = np.floor((vertices[faces.reshape(-1)] - np.repeat(cells, 3, axis=0) * size) / 2 ** lod + 0.5)
    corners = np.arange(3 * len(faces)).reshape(-1, 3)
    rows, faces = weld(np.column_stack([np.repeat(fragment, 3), np.clip(stored, 0, QUANTUM)]), corners)
    faces = faces[np.argsort(rows[faces[:, 0], 0], kind="stable")]
    ends = np.searchsorted(rows[faces[:, 0], 0], np.arange(len(first) + 1))
    fragments = {}
    for cell, start, end in zip(cells[first].tolist(), ends, ends[1:]):
        if end > start:
            used, local = np.unique(faces[start:end], return_inverse=True)
            fragments[tuple(cell)] = DracoPy.encode(
                rows[used, 1:].astype(np.float32), local.reshape(-1, 3).astype(np.uint32),
                quantization_bits=QUANTIZATION_BITS, compression_level=draco_level,
                quantization_range=QUANTUM, quantization_origin=np.zeros(3), preserve_order=False)
    return fragments


def morton_order(positions: np.ndarray) -> np.ndarray:
    """Indices that sort integer grid positions along the Z-order curve, as Neuroglancer needs."""
    codes = np.zeros(len(positions), dtype=np.uint64)
    positions = positions.astype(np.uint64)
    for bit in range(21):
        for axis in range(3):
            codes |= ((positions[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(codes, kind="stable")
