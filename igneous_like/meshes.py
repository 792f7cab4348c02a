"""Pure mesh functions: marching cubes per block, seam welding, levels of detail, multi-resolution
fragments and the intermediate fragment encoding. Numpy in, numpy (or bytes) out; no storage.

Coordinates are physical (nm). Voxel i of a layer spans [i, i+1) * resolution, so a surface
between two voxels lies exactly on their shared face and a mesh's bounding box is its label's
voxel bounding box.
"""
import struct
from typing import Dict, Iterator, List, Sequence, Tuple

import DracoPy
import fastremap
import numpy as np
import zmesh
from cloudvolume.datasource.precomputed.mesh.multilod import MultiLevelPrecomputedMeshManifest

Mesh = zmesh.Mesh
QUANTIZATION_BITS = 16  # of multi-resolution fragments; Neuroglancer accepts 10 or 16
SEAM_TOLERANCE = 1 / 8  # of a voxel: seam vertices sit on half-voxel positions, so this is safe


def mesh_block(labels: np.ndarray, resolution: Sequence[float], origin: Sequence[int],
               max_error: float, reduction_factor: int) -> Iterator[Tuple[int, Mesh]]:
    """Mesh every nonzero label of a block whose voxel (0,0,0) is global voxel `origin`.

    Surfaces on the block's faces stay open (the neighbouring block closes them: its piece shares
    those seam vertices exactly, and simplification keeps open-border vertices where they are);
    pad the block with zeros where it meets the volume's edge to close meshes there.
    """
    mesher = zmesh.Mesher(tuple(float(r) for r in resolution))
    mesher.mesh(labels, close=False)
    shift = np.asarray(origin, dtype=np.float64) * np.asarray(resolution, dtype=np.float64)
    try:
        for label in mesher.ids():
            mesh = mesher.get(label, normals=False, reduction_factor=reduction_factor,
                              max_error=max_error, voxel_centered=True)
            mesher.erase(label)
            mesh.vertices = (mesh.vertices + shift).astype(np.float32)
            yield int(label), mesh
    finally:
        mesher.clear()


def seam_planes(bounds_min: Sequence[int], bounds_max: Sequence[int], shape: Sequence[int],
                anchor: Sequence[int], resolution: Sequence[float]) -> List[np.ndarray]:
    """Per axis, the physical positions where the pieces of neighbouring blocks meet."""
    planes = []
    for axis in range(3):
        first = anchor[axis] + shape[axis] * ((bounds_min[axis] - anchor[axis]) // shape[axis] + 1)
        cuts = np.arange(first, bounds_max[axis], shape[axis], dtype=np.float64)
        planes.append((cuts + 0.5) * resolution[axis])
    return planes


def weld_seams(mesh: Mesh, planes: Sequence[np.ndarray], resolution: Sequence[float]) -> Mesh:
    """Join the duplicate vertices that pieces from neighbouring blocks share on their seams."""
    vertices = mesh.vertices.astype(np.float64)
    res = np.asarray(resolution, dtype=np.float64)
    tolerance = res * SEAM_TOLERANCE
    on_seam = np.zeros(len(vertices), dtype=bool)
    for axis, cuts in enumerate(planes):
        on_seam |= near_any(vertices[:, axis], cuts, tolerance[axis])
    if not on_seam.any():
        return mesh
    keys = np.full((len(vertices), 4), -1, dtype=np.int64)
    keys[:, 3] = np.arange(len(vertices))  # off-seam vertices stay distinct
    keys[on_seam, :3] = np.round(vertices[on_seam] / tolerance).astype(np.int64)
    keys[on_seam, 3] = -1
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[mesh.faces]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return Mesh(mesh.vertices[first], faces[keep].astype(np.uint32), None)


def near_any(values: np.ndarray, cuts: np.ndarray, tolerance: float) -> np.ndarray:
    """Whether each value lies within `tolerance` of one of the sorted `cuts`."""
    if len(cuts) == 0:
        return np.zeros(len(values), dtype=bool)
    after = np.searchsorted(cuts, values)
    lower, upper = cuts[np.maximum(after - 1, 0)], cuts[np.minimum(after, len(cuts) - 1)]
    return np.minimum(np.abs(values - lower), np.abs(values - upper)) < tolerance


def concatenate(meshes: Sequence[Mesh]) -> Mesh:
    meshes = [mesh for mesh in meshes if len(mesh.faces)]
    if not meshes:
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32), None)
    offsets = np.cumsum([0] + [len(mesh.vertices) for mesh in meshes[:-1]])
    vertices = np.concatenate([mesh.vertices for mesh in meshes]).astype(np.float32)
    faces = np.concatenate([mesh.faces.astype(np.uint32) + np.uint32(offset)
                            for mesh, offset in zip(meshes, offsets)])
    return Mesh(vertices, faces, None)


def levels_of_detail(mesh: Mesh, num_lods: int) -> List[Mesh]:
    """Up to `num_lods` meshes, each with about a quarter of the triangles of the last (a level
    that would not shrink ends the list).

    Uses zmesh's fast quadric reduction with a triangle target: its error-bounded simplifier
    can loop forever on meshes it simplified before.
    """
    lods = [mesh]
    for _ in range(1, num_lods):
        target = len(lods[-1].faces) // 4
        if target < 4:
            break
        coarser = zmesh.simplify_fqmr(lods[-1], target_count=target)
        if len(coarser.faces) == 0 or len(coarser.faces) >= len(lods[-1].faces):
            break
        lods.append(coarser)
    return lods


def morton_order(positions: np.ndarray) -> np.ndarray:
    """Indices that sort integer grid positions along the Z-order curve, as Neuroglancer needs."""
    codes = np.zeros(len(positions), dtype=np.uint64)
    positions = positions.astype(np.uint64)
    for bit in range(21):
        for axis in range(3):
            codes |= ((positions[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(codes, kind="stable")


def multires_fragments(lods: Sequence[Mesh], resolution: Sequence[float], label: int,
                       draco_level: int = 7) -> Tuple[bytes, bytes]:
    """(manifest, fragment data) of one label in the multi-resolution format.

    Model space is voxels (the layer info's transform scales by the resolution). Level k is cut
    into an octree grid of chunks `chunk * 2**k` from a shared origin; the coarsest level is one
    chunk. Parents of every fragment exist (as empty fragments where the coarser level has none).
    """
    res = np.asarray(resolution, dtype=np.float64)
    voxels = [lod.vertices.astype(np.float64) / res for lod in lods]
    low = np.floor(np.min([v.min(axis=0) for v in voxels], axis=0))
    high = np.ceil(np.max([v.max(axis=0) for v in voxels], axis=0))
    num_lods = len(lods)
    chunk = np.maximum((high - low) / 2 ** (num_lods - 1), 1.0) * (1 + 1e-6)
    pieces = [chunked(Mesh(v, lod.faces, None), chunk * 2 ** k, low)
              for k, (v, lod) in enumerate(zip(voxels, lods))]
    for k in range(num_lods - 2, -1, -1):  # every fragment needs its parent one level up
        for position in list(pieces[k]):
            pieces[k + 1].setdefault(tuple(p >> 1 for p in position), None)
    positions, sizes, binaries = [], [], []
    quantum = 2 ** QUANTIZATION_BITS - 1
    for k in range(num_lods):
        keys = np.array(sorted(pieces[k]), dtype=np.int64).reshape(-1, 3)
        keys = keys[morton_order(keys)]
        positions.append(keys)
        for key in map(tuple, keys):
            piece = pieces[k][key]
            if piece is None or len(piece.faces) == 0:
                sizes.append(0)
                continue
            stored = (piece.vertices - low) / (chunk * 2 ** k) - np.asarray(key)
            stored = np.clip(np.round(stored * quantum), 0, quantum).astype(np.float32)
            faces = nondegenerate(stored, piece.faces)
            if len(faces) == 0:
                sizes.append(0)
                continue
            binary = DracoPy.encode(stored, faces, quantization_bits=QUANTIZATION_BITS,
                                    compression_level=draco_level, quantization_range=quantum,
                                    quantization_origin=np.zeros(3), preserve_order=False)
            binaries.append(binary)
            sizes.append(len(binary))
    manifest = MultiLevelPrecomputedMeshManifest(
        segment_id=label, chunk_shape=chunk.astype(np.float32), grid_origin=low.astype(np.float32),
        num_lods=num_lods, lod_scales=[2.0 ** k for k in range(num_lods)],
        vertex_offsets=np.zeros((num_lods, 3), np.float32),
        num_fragments_per_lod=[len(p) for p in positions], fragment_positions=positions,
        fragment_offsets=sizes)
    return manifest.to_binary(), b"".join(binaries)


def nondegenerate(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The faces whose three corners lie at three distinct positions (Draco rejects the others)."""
    corners = vertices[faces]
    same = lambda a, b: (corners[:, a] == corners[:, b]).all(axis=1)
    return faces[~(same(0, 1) | same(1, 2) | same(0, 2))]


def chunked(mesh: Mesh, chunk: np.ndarray, origin: np.ndarray) -> Dict[Tuple[int, int, int], Mesh]:
    """The mesh cut along a grid of `chunk`-sized cells from `origin`, keyed by cell position."""
    cells = zmesh.chunk_mesh(mesh, chunk, tuple(origin))
    return {tuple(int(c) for c in key): piece for key, piece in cells.items() if len(piece.faces)}


def encode_fragment(mesh: Mesh, voxel_count: int, draco_grid: Tuple[np.ndarray, float, int] = None) -> bytes:
    """An intermediate fragment: its label's voxel count in the block, then the mesh in the
    precomputed format (exact) or Draco on a grid shared by every block (so seams still meet)."""
    if draco_grid is None or len(mesh.faces) == 0:
        body = b"P" + mesh.to_precomputed()
    else:
        origin, span, bits = draco_grid
        body = b"D" + DracoPy.encode(mesh.vertices, mesh.faces, quantization_bits=bits, compression_level=4,
                                     quantization_range=span, quantization_origin=origin)
    return struct.pack("<Q", voxel_count) + body


def decode_fragment(binary: bytes) -> Tuple[int, Mesh]:
    (voxel_count,) = struct.unpack("<Q", binary[:8])
    kind, body = binary[8:9], binary[9:]
    if kind == b"P":
        return voxel_count, Mesh.from_precomputed(body)
    decoded = DracoPy.decode(body)
    faces = np.asarray(decoded.faces, dtype=np.uint32).reshape(-1, 3)
    # Draco splits some vertices in two: join them again by position, keeping every face
    vertices, inverse = np.unique(np.asarray(decoded.points, np.float32).reshape(-1, 3), axis=0,
                                  return_inverse=True)
    return voxel_count, Mesh(vertices, inverse.reshape(-1)[faces].astype(np.uint32), None)


def draco_grid(bounds_min: Sequence[int], bounds_max: Sequence[int],
               resolution: Sequence[float]) -> Tuple[np.ndarray, float, int]:
    """A Draco quantization grid over the whole (padded) volume, finer than 1/32 voxel."""
    res = np.asarray(resolution, dtype=np.float64)
    origin = (np.asarray(bounds_min) - 1) * res
    span = float(np.max((np.asarray(bounds_max) - np.asarray(bounds_min) + 2) * res))
    bits = int(min(30, np.ceil(np.log2(span / (res.min() / 32)))))
    return origin, span, bits


def voxel_counts(labels: np.ndarray) -> Dict[int, int]:
    uniq, counts = fastremap.unique(labels, return_counts=True)
    return {int(u): int(c) for u, c in zip(uniq, counts) if u != 0}
