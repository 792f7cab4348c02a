"""Neuroglancer's precomputed annotations (`neuroglancer_annotations_v1`): pure numpy, no storage.

The format (neuroglancer's src/datasource/precomputed/annotation.rst): each annotation has a uint64
id, its geometry as float32 (a point: x, y, z; a line: both end points; an axis-aligned box: two
opposite corners; an ellipsoid: centre, then radii), its property values
(4-byte types first, then 2-byte, then 1-byte, zero padding to a multiple of 4 bytes) and, in the
by-id index only, for each relationship a uint32 count and that many uint64 related ids. Lists
(related-object index, spatial cells) are a uint64 count, the bodies, then the uint64 ids.

Spatial index: level 0 is one cell over the bounds; each finer level halves the cells along the
dimensions that keep them nearest to isotropic (in nm). Each level emits, in every cell, the
annotations still remaining there with probability min(1, limit / (most remaining in any cell of
that level)), as the format describes. The draw is a hash of (id, level), so an annotation's level
depends only on its id and the levels' probabilities: any task can place any annotation, and a
line, box or ellipsoid emitted at a level is emitted in every cell it meets there. Points lie in
exactly one cell of one level.
"""
import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

GEOMETRY = {"point": 3, "line": 6, "axis_aligned_bounding_box": 6, "ellipsoid": 6}  # float32 values each
MAX_LEVELS = 24  # the last level emits whatever remains (only many points at one spot get there)
_U8 = np.dtype("<u8")


@dataclass(frozen=True)
class Layout:
    """What every annotation carries: its kind, properties (id, type) and relationship names."""
    kind: str
    properties: Tuple[Tuple[str, str], ...] = ()
    relationships: Tuple[str, ...] = ()

    def body_dtype(self) -> np.dtype:
        """The annotation's fixed part as a numpy record: geometry, properties in the format's
        order by size, padded to a multiple of 4 bytes."""
        names, formats, offsets = ["geometry"], [("<f4", (GEOMETRY[self.kind],))], [0]
        offset = 4 * GEOMETRY[self.kind]
        for size in (4, 2, 1):
            for name, kind in self.properties:
                if np.dtype(kind).itemsize == size:
                    names.append(name)
                    formats.append(np.dtype(kind).newbyteorder("<"))
                    offsets.append(offset)
                    offset += size
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": -(-offset // 4) * 4})


def table_geometry(kind: str, nm: np.ndarray, resolution) -> Tuple[np.ndarray, np.ndarray]:
    """(geometry in voxels, anchors in nm) of table rows in nm: positions move to voxel units,
    where voxel i's centre (at i * resolution nm) lies at i + 0.5; an ellipsoid's radii only scale.
    Anchors (n, ends, 3) are where related segments are looked up: a point, both ends of a line,
    the centre of a box or ellipsoid."""
    res = np.asarray(resolution, np.float64)
    ends = nm.reshape(len(nm), -1, 3)
    geometry = ends / res + np.array([0.5, 0.0 if kind == "ellipsoid" else 0.5])[:ends.shape[1], None]
    anchors = ends[:, :1] if kind == "ellipsoid" else ends.mean(axis=1, keepdims=True)
    return geometry.reshape(len(nm), -1), ends if kind in ("point", "line") else anchors


def object_geometry(kind: str, columns: np.ndarray, resolution) -> Tuple[np.ndarray, np.ndarray]:
    """(geometry in voxels, anchors in nm) of measured objects from their centroid (nm) and, for a
    box or an ellipsoid, their bounding box (voxels, max exclusive): the box holds exactly the
    object's voxels; the ellipsoid, at the centroid, has half the box's extent as radii. The
    related segments are looked up at the centroid."""
    point, anchors = table_geometry("point", columns[:, :3], resolution)
    if kind == "point":
        return point, anchors
    low, high = columns[:, 3:6], columns[:, 6:9]
    return np.concatenate([low, high] if kind == "axis_aligned_bounding_box" else [point, (high - low) / 2],
                          axis=1), anchors


def extent(kind: str, nm: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The lowest and highest positions (nm) that table rows of `kind` reach."""
    ends = nm.reshape(len(nm), -1, 3)
    if kind == "ellipsoid":
        ends = np.concatenate([ends[:, :1] - np.abs(ends[:, 1:]), ends[:, :1] + np.abs(ends[:, 1:])], axis=1)
    ends = ends.reshape(-1, 3)
    return ends.min(axis=0), ends.max(axis=0)


def encode_bodies(layout: Layout, geometry: np.ndarray, properties: dict) -> np.ndarray:
    """(n, body bytes) uint8: each annotation's geometry and property values, zero padded."""
    dtype = layout.body_dtype()
    records = np.zeros(len(geometry), dtype)
    records["geometry"] = geometry
    for name, _ in layout.properties:
        records[name] = properties[name]
    return records.view(np.uint8).reshape(len(geometry), dtype.itemsize)


def encode_single(body: np.ndarray, related: Sequence[np.ndarray]) -> bytes:
    """One annotation as the by-id index stores it: body, then each relationship's id list."""
    out = [body.tobytes()]
    for ids in related:
        out += [np.array(len(ids), "<u4").tobytes(), np.asarray(ids, _U8).tobytes()]
    return b"".join(out)


def encode_list(bodies: np.ndarray, ids: np.ndarray) -> bytes:
    """Several annotations as a cell or a related object stores them: count, bodies, ids."""
    return np.array(len(ids), _U8).tobytes() + bodies.tobytes() + np.asarray(ids, _U8).tobytes()


def related_ids(values: np.ndarray) -> np.ndarray:
    """The distinct nonzero ids among one annotation's values of a relationship (end points)."""
    values = np.unique(values)
    return values[values != 0]


def mix(keys: np.ndarray, salt: int = 0) -> np.ndarray:
    """A well-mixed uint64 hash of each key (splitmix64's finaliser), salted."""
    with np.errstate(over="ignore"):
        z = np.asarray(keys, np.uint64) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(salt + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def draw(ids: np.ndarray, level: int) -> np.ndarray:
    """The uniform number in [0, 1) that decides whether `ids` are emitted at `level`."""
    return (mix(ids, level) >> np.uint64(11)).astype(np.float64) / float(2**53)


def level_grids(lower: Sequence[float], upper: Sequence[float], scale: Sequence[float],
                levels: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(chunk size, grid shape) of each level: one cell at level 0, then halving along the
    dimensions whose cells are within a factor sqrt(2) of the longest (in nm)."""
    chunk = np.asarray(upper, np.float64) - np.asarray(lower, np.float64)
    grid = np.ones(len(chunk), np.int64)
    out = [(chunk.copy(), grid.copy())]
    for _ in range(levels - 1):
        physical = chunk * np.asarray(scale, np.float64)
        halve = physical * math.sqrt(2) >= physical.max()
        chunk, grid = np.where(halve, chunk / 2, chunk), np.where(halve, grid * 2, grid)
        out.append((chunk.copy(), grid.copy()))
    return out


def cells(kind: str, geometry: np.ndarray, lower, chunk, grid) -> Tuple[np.ndarray, np.ndarray]:
    """(annotation index, cell) pairs, clipped to the grid: the cell of each point; every cell a
    line crosses; every cell whose span [low, high) meets a box's [min, max) (a box flat along an
    axis: the cell of its corner there, as for a point); every cell an ellipsoid meets."""
    lower, chunk, grid = (np.asarray(v, np.float64) for v in (lower, chunk, grid))
    start = (np.asarray(geometry[:, :3], np.float64) - lower) / chunk
    if kind == "point":
        return np.arange(len(geometry)), np.clip(np.floor(start), 0, grid - 1).astype(np.int64)
    tail = np.asarray(geometry[:, 3:], np.float64)
    if kind == "ellipsoid":
        radii = np.abs(tail) / chunk
        first, last = np.floor(start - radii), np.floor(start + radii)
    else:
        end = (tail - lower) / chunk
        first, last = np.floor(np.minimum(start, end)), np.maximum(start, end)
        last = np.maximum(first, np.ceil(last) - 1) if kind == "axis_aligned_bounding_box" else np.floor(last)
    low, high = (np.clip(v, 0, grid - 1).astype(np.int64) for v in (first, last))
    counts = np.prod(high - low + 1, axis=1)
    index = np.repeat(np.arange(len(geometry)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    span = (high - low + 1)[index]
    step = np.stack([offsets % span[:, 0], offsets // span[:, 0] % span[:, 1],
                     offsets // (span[:, 0] * span[:, 1])], axis=1)
    candidate = low[index] + step
    if kind == "axis_aligned_bounding_box":
        return index, candidate
    if kind == "ellipsoid":
        keep = meets_ellipsoid(start[index], radii[index], candidate)
    else:
        keep = crosses(start[index], end[index], candidate)
    return index[keep], candidate[keep]


def crosses(start: np.ndarray, end: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Whether each segment start-end (in cell units) meets its unit cell (slab test)."""
    direction = end - start
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (cell - start) / direction, (cell + 1 - start) / direction
    flat = direction == 0
    inside = (start >= cell) & (start <= cell + 1)
    enter = np.where(flat, np.where(inside, -np.inf, np.inf), np.minimum(t0, t1)).max(axis=1)
    leave = np.where(flat, np.where(inside, np.inf, -np.inf), np.maximum(t0, t1)).min(axis=1)
    return (enter <= leave) & (leave >= 0) & (enter <= 1)


def meets_ellipsoid(centre: np.ndarray, radii: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Whether each ellipsoid (in cell units) meets its closed unit cell: the cell's point nearest
    the centre lies inside. A zero radius is a flat ellipsoid (the cell must hold the centre there)."""
    gap = np.clip(centre, cell, cell + 1) - centre
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(radii > 0, gap / radii, np.where(gap == 0, 0.0, np.inf))
    return (scaled ** 2).sum(axis=1) <= 1


def levels_of(ids: np.ndarray, probabilities: Sequence[float]) -> np.ndarray:
    """The level each annotation is emitted at: the first whose draw falls below its probability
    (-1 while the probabilities given do not reach it)."""
    level = np.full(len(ids), -1, np.int64)
    for k, p in enumerate(probabilities):
        fresh = (level < 0) & (draw(ids, k) < p)
        level[fresh] = k
    return level


def cell_counts(kind: str, ids: np.ndarray, geometry: np.ndarray, probabilities: Sequence[float], lower,
                chunk, grid) -> Tuple[np.ndarray, np.ndarray]:
    """(cell keys, counts) of the annotations still remaining at level len(probabilities)."""
    remaining = levels_of(ids, probabilities) < 0
    _, where = cells(kind, geometry[remaining], lower, chunk, grid)
    return np.unique(linear(where, grid), return_counts=True)


def linear(cell: np.ndarray, grid) -> np.ndarray:
    grid = np.asarray(grid, np.int64)
    return cell[:, 0] + grid[0] * (cell[:, 1] + grid[1] * cell[:, 2])


def probability(limit: int, most: int, last: bool) -> float:
    """The chance of emission at a level whose fullest cell holds `most` remaining annotations."""
    return 1.0 if last or most <= limit else limit / most


def morton(cell: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """Compressed Morton codes of cells (bits of a dimension are left out where its grid needs none)."""
    cell = np.asarray(cell, np.uint64)
    code = np.zeros(len(cell), np.uint64)
    bits = max(int(g - 1).bit_length() for g in grid)
    j = 0
    for i in range(bits):
        for d in range(3):
            if 2**i < grid[d]:
                code |= ((cell[:, d] >> np.uint64(i)) & np.uint64(1)) << np.uint64(j)
                j += 1
    return code


def unmorton(codes: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """The cells of compressed Morton codes (the inverse of `morton`)."""
    codes = np.asarray(codes, np.uint64)
    cell = np.zeros((len(codes), 3), np.uint64)
    bits = max(int(g - 1).bit_length() for g in grid)
    j = 0
    for i in range(bits):
        for d in range(3):
            if 2**i < grid[d]:
                cell[:, d] |= ((codes >> np.uint64(j)) & np.uint64(1)) << np.uint64(i)
                j += 1
    return cell.astype(np.int64)


def shard_numbers(keys: np.ndarray, sharding: dict) -> np.ndarray:
    """The shard of each key under an identity-hash sharding: bits [minishard_bits, minishard_bits +
    shard_bits) of key >> preshift_bits (vectorized, unlike a hash per key)."""
    assert sharding["hash"] == "identity"
    hashed = np.asarray(keys, np.uint64) >> np.uint64(sharding["preshift_bits"])
    return (hashed >> np.uint64(sharding["minishard_bits"])) & np.uint64((1 << sharding["shard_bits"]) - 1)


def property_type(values: np.ndarray) -> str:
    """The narrowest 4-byte type that holds a column exactly: uint32, int32, else float32."""
    if values.dtype.kind in "iub" and values.size:
        low, high = int(values.min()), int(values.max())
        if 0 <= low and high < 2**32:
            return "uint32"
        if -2**31 <= low and high < 2**31:
            return "int32"
    return "float32"
