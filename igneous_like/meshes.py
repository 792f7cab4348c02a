"""Pure mesh functions: marching cubes per block, seam welding and the intermediate fragment
encoding (levels of detail are in multires.py). Numpy in, numpy (or bytes) out; no storage.

Coordinates are physical (nm). Voxel i of a layer spans [i, i+1) * resolution, so a surface
between two voxels lies exactly on their shared face and a mesh's bounding box is its label's
voxel bounding box.
"""
import struct
from typing import Dict, Iterator, List, Sequence, Tuple

import DracoPy
import fastmorph
import fastremap
import numpy as np
import zmesh

Mesh = zmesh.Mesh
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


MAX_FILL_LEVEL = 103  # levels above 3 lower fastmorph's enclosure threshold by 1% each, down to 0


def fill_holes(labels: np.ndarray, level: int) -> List[np.ndarray]:
    """Igneous's hole-filling levels, per label: 1 fills what one label encloses (background or
    other labels), 2 also fills holes cut open by the array's faces (2-D fill on each face),
    3 first grows labels into background by one voxel (3x3x3), 4 and up also fill holes that
    a label only encloses for 100 - (level - 3) % of their surface.

    Returns the filled labels and the labels that were enclosed (zero elsewhere): those are
    meshed apart, so an enclosed object keeps its own mesh while its host has no inner surface.
    """
    if level >= 3:
        labels = fastmorph.dilate(labels, background_only=True, parallel=1)
    filled, enclosed = fastmorph.fill_holes_v2(labels, fix_borders=level >= 2, parallel=1,
                                               merge_threshold=1.0 - 0.01 * max(level - 3, 0))
    return [np.asfortranarray(filled), np.asfortranarray(enclosed)]


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
