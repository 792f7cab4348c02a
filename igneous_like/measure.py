"""Per-object statistics that are exact under any task split: pure numpy, no storage.

Each task reduces its block to a `Partial`: per label, sums that simply add up across blocks
(voxel count, sums of voxel indices and of their six products, intensity sums, triangle areas),
minima and maxima (bounding box, intensity range), and two sparse count tables, (label, image
value) -> voxels for integer images and (label, nucleus) -> voxels with a nuclei layer. Merging
partials is concatenation plus a grouped sum/min/max, so any split and any merge order give
the same numbers; `statistics` turns merged partials into the final columns.

Conventions:
* Voxel indices are counted from the layer's bounds (its voxel offset) in int64, so the
  moment sums are exact integers (up to 2**63). Voxel (i, j, k) of the bounds stands at
  ((voxel_offset + i) * res_x, ...) nm: centroids carry no half-voxel shift.
* Bounding boxes are voxel coordinates of the layer, min inclusive, max exclusive.
* Principal axis lengths are the full axes of the solid ellipsoid with the same second moments
  (population covariance of the voxel positions in nm; a semi-axis a has variance a^2/5):
  2 sqrt(5 * eigenvalue), as scikit-image's 3D `axis_major_length` / `axis_minor_length`;
  `equivalent_diameter` is the diameter of the ball of the same volume.
* Surface area: zmesh marching cubes without simplification, each block meshed with one voxel
  of overlap on its high faces (zero padding at the volume's edges), triangle areas summed per
  label; the pieces add up to the whole-volume mesh. Sphericity = pi^(1/3) (6V)^(2/3) / A.
* Intensity statistics come from each object's exact (label, value) histogram: percentiles and
  the median are numpy's default ('linear') method on the object's voxel values; std is the
  population std (ddof 0).
* Solidity: voxel count / volume of the convex hull of the object's voxel *corners* (every voxel
  a unit cube, voxel units; the ratio does not depend on the resolution). Each block keeps, per
  label, only the hull vertices of its part (from the corners of the voxels that start or end a
  run along x); the hull of the union of the parts' vertices is the whole object's hull.
  scikit-image's `solidity` differs: it counts the voxels whose centres lie in the hull of the
  voxel centres' squares (`convex_hull_image`), so it is 1 for a line or a box.
* Single-slice layers (z size 1) get 2-D columns instead of volumes: `area` (nm^2),
  `perimeter` (scikit-image's 4-connected `perimeter`, a sum of per-pixel pattern weights; a
  block counts its own pixels, looking 2 pixels past its edges, in three integer counts per
  weight class), `circularity` 4 pi area / perimeter^2, `eccentricity`, 2-D axis lengths
  (4 sqrt(eigenvalue), as scikit-image's 2-D regionprops) and `equivalent_diameter` of the disc.
  The perimeter needs square pixels (res_x == res_y, as scikit-image); otherwise it is NaN.
* Float images: exact median and percentiles too: each value is turned into an int64 key that
  sorts as the float does, so the (label, value) histogram is exact; it holds one entry per
  distinct value of an object (up to one per voxel), unlike an 8-bit image's at most 256. Where
  that is too many, stated bins (`bin_index`: N equal bins over [low, high]) bound it to N + 1
  entries per object; every intensity statistic is then that of the voxels' bin centres (each
  within half a bin of the exact one), as exact under any task split.
* Nuclei: a cell's `nuclei_count` is the number of distinct nucleus ids that overlap it; its
  nucleus volume and intensity statistics are those of its voxels that lie in any nucleus, the
  cytoplasm is the rest of the cell.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import fastremap
import numpy as np

SUMS = ("count", "sx", "sy", "sz", "sxx", "syy", "szz", "sxy", "sxz", "syz")
MINS = ("minx", "miny", "minz")
MAXS = ("maxx", "maxy", "maxz")
PERIMETER = ("perim_edge", "perim_diagonal", "perim_corner")  # pixels of weight 1, sqrt 2, (1+sqrt 2)/2
PERIMETER_WEIGHTS = (1.0, np.sqrt(2), (1 + np.sqrt(2)) / 2)
SPARSE = ("hist", "pairs", "hull", "nhist")
FLOAT_COLUMNS = ("area",)
HULL_BITS = 21  # bits per axis of a packed hull corner: layers up to 2**21 - 1 voxels per side
MAX_HULL_EXTENT = (1 << HULL_BITS) - 1
PERCENTILES = (10, 25, 75, 90)
Bins = Tuple[float, float, int]  # low, high, count
MAX_BLOCK_MOMENT = 2**53  # voxels x (longest side)^2 of a block must stay below: float64 sums exact
VALUE_STATISTICS = ("mean", "std", "min", "max", "median") + tuple(f"p{q}" for q in PERCENTILES)
REDUCERS = {**{name: np.minimum for name in MINS}, **{name: np.maximum for name in MAXS}}
Sparse = Tuple[np.ndarray, np.ndarray, np.ndarray]  # (label, key, count), sorted by both
_BIG = np.iinfo(np.int64).max
_SMALL = np.iinfo(np.int64).min
_PRODUCTS = (("xx", 0, 0), ("yy", 1, 1), ("zz", 2, 2), ("xy", 0, 1), ("xz", 0, 2), ("yz", 1, 2))


def column_names(image: bool, nuclei: bool, planar: bool = False) -> List[str]:
    """The columns of a partial, in a fixed order (stored in the part files)."""
    names = list(SUMS + MINS + MAXS) + ["area"] + (list(PERIMETER) if planar else [])
    if nuclei:
        names += ["nvox"]
    return names


def column_dtype(name: str) -> np.dtype:
    return np.dtype(np.float64 if name in FLOAT_COLUMNS else np.int64)


@dataclass
class Partial:
    """Per-label partial statistics: `columns[name][i]` belongs to `labels[i]` (sorted, unique);
    `hist` is (label, value, count), `pairs` (label, nucleus, count) and `hull` (label, packed
    hull corner, count) and `nhist` the histogram of the voxels inside nuclei, sorted by both keys;
    float image values are `float_keys`."""
    labels: np.ndarray
    columns: Dict[str, np.ndarray]
    hist: Tuple[np.ndarray, np.ndarray, np.ndarray] = field(default_factory=lambda: empty_sparse())
    pairs: Tuple[np.ndarray, np.ndarray, np.ndarray] = field(default_factory=lambda: empty_sparse())
    hull: Tuple[np.ndarray, np.ndarray, np.ndarray] = field(default_factory=lambda: empty_sparse())
    nhist: Tuple[np.ndarray, np.ndarray, np.ndarray] = field(default_factory=lambda: empty_sparse())

    def __len__(self) -> int:
        return int(self.labels.size)


def empty_sparse() -> Sparse:
    return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)


def sparse_counts(first: np.ndarray, second: np.ndarray, counts: Optional[np.ndarray] = None):
    """Sum `counts` (default 1 each) per distinct (first, second): three arrays sorted by both."""
    first, second = first.astype(np.uint64, copy=False), second.astype(np.int64, copy=False)
    counts = np.ones(first.size, np.int64) if counts is None else counts.astype(np.int64, copy=False)
    if first.size == 0:
        return empty_sparse()
    order = np.lexsort((second, first))
    first, second, counts = first[order], second[order], counts[order]
    starts = np.flatnonzero(np.r_[True, (first[1:] != first[:-1]) | (second[1:] != second[:-1])])
    return first[starts], second[starts], np.add.reduceat(counts, starts)


def block_partial(labels: np.ndarray, origin: Sequence[int], image: Optional[np.ndarray] = None,
                  nuclei: Optional[np.ndarray] = None,
                  areas: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                  halo: Optional[np.ndarray] = None) -> Partial:
    """The partial statistics of one block's own voxels (background 0 left out).

    origin: the block's first voxel, counted from the layer's bounds. areas: (labels, surface
    area) of this block's mesh pieces; labels that only occur there get rows with no voxels.
    halo: for a single-slice layer, the block's slice with 2 pixels more on each side in x and y
    (zeros outside the layer), for the perimeter.
    """
    renumbered, remap = fastremap.renumber(np.asfortranarray(labels), preserve_zero=True, in_place=False)
    ids = np.zeros(len(remap) + 1, np.uint64)
    for old, new in remap.items():
        ids[new] = old
    flat = renumbered.ravel(order="F")
    fg = np.flatnonzero(flat)
    rows = flat[fg].astype(np.int64)
    n_rows = ids.size
    columns = {"count": np.bincount(rows, minlength=n_rows).astype(np.int64)}
    columns.update(_moments(renumbered, n_rows, columns["count"], origin))
    columns.update(_bounding_boxes(renumbered, n_rows, origin))
    partial = Partial(ids, columns, hull=hull_corners(renumbered, ids, origin))
    if halo is not None:
        classes = perimeter_classes(halo).ravel(order="F")
        for k, name in enumerate(PERIMETER):
            columns[name] = np.bincount(flat[classes == k + 1], minlength=n_rows).astype(np.int64)
    values = None if image is None else image.ravel(order="F")[fg]
    if values is not None:
        partial.hist = histogram(ids, rows, values)
    if nuclei is not None:
        _add_nuclei(partial, rows, nuclei.ravel(order="F")[fg], values)
    partial = merge([select(partial, ids != 0)])  # renumbering went by first appearance: sort
    return with_areas(partial, areas)


def _moments(renumbered: np.ndarray, n_rows: int, count: np.ndarray, origin,
             slab: int = 16) -> Dict[str, np.ndarray]:
    """Sums of global voxel indices and their products per row, exact in int64.

    Block-local sums go through float64 bincounts, `slab` z-slices at a time to bound memory,
    exact while below 2**53 (see MAX_BLOCK_MOMENT: blocks up to about 1,500 voxels per side);
    they are then shifted to the layer's origin with integer algebra.
    """
    sums = np.zeros((9, n_rows))
    for z0 in range(0, renumbered.shape[2], slab):
        part = renumbered[:, :, z0:z0 + slab]
        flat = part.ravel(order="F")
        fg = np.flatnonzero(flat)
        rows = flat[fg].astype(np.int64)
        local = [c.astype(np.float64) for c in np.unravel_index(fg, part.shape, order="F")]
        local[2] += z0
        for k in range(3):
            sums[k] += np.bincount(rows, weights=local[k], minlength=n_rows)
        for k, (_, i, j) in enumerate(_PRODUCTS):
            sums[3 + k] += np.bincount(rows, weights=local[i] * local[j], minlength=n_rows)
    exact = np.rint(sums).astype(np.int64)
    first, o = exact[:3], [int(v) for v in origin]
    out = {f"s{a}": first[k] + count * o[k] for k, a in enumerate("xyz")}
    for k, (name, i, j) in enumerate(_PRODUCTS):
        out[f"s{name}"] = exact[3 + k] + o[j] * first[i] + o[i] * first[j] + count * o[i] * o[j]
    return out


def hull_corners(renumbered: np.ndarray, ids: np.ndarray, origin) -> Sparse:
    """(label, packed corner, 1) for the convex hull vertices of each label's voxel corners.

    A row of voxels along x is the box from its first voxel's low-x face to its last voxel's
    high-x face, so the low-x corners of run starts and high-x corners of run ends span the same
    hull as all corners; qhull then keeps only the vertices.
    """
    from scipy.spatial import ConvexHull
    renumbered = np.asfortranarray(renumbered)
    starts = renumbered != 0
    starts[1:] &= renumbered[1:] != renumbered[:-1]
    ends = renumbered != 0
    ends[:-1] &= renumbered[:-1] != renumbered[1:]
    rows, keys = [], []
    o = np.asarray(origin, np.int64)
    size_x, size_y = renumbered.shape[:2]
    flat = renumbered.ravel(order="F")
    for mask, dx in ((starts, 0), (ends, 1)):
        where = np.flatnonzero(mask.ravel(order="F"))  # x fastest; a view of Fortran-ordered masks
        x, y, z = where % size_x, where // size_x % size_y, where // (size_x * size_y)
        row = flat[where].astype(np.int64)
        for dy in (0, 1):
            for dz in (0, 1):
                rows.append(row)
                keys.append(pack_corners(x + dx + o[0], y + dy + o[1], z + dz + o[2]))
    rows, keys, _ = sparse_counts(np.concatenate(rows), np.concatenate(keys))
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if rows.size else np.zeros(0, int)
    kept = []
    for a, b in zip(starts, np.r_[starts[1:], rows.size].astype(int)):
        kept.append(keys[a:b][ConvexHull(unpack_corners(keys[a:b])).vertices])
    lengths = [k.size for k in kept]
    kept = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    labels = np.repeat(ids[rows[starts].astype(np.int64)], lengths)
    return sparse_counts(labels, kept)


def pack_corners(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return x | (y << HULL_BITS) | (z << (2 * HULL_BITS))


def unpack_corners(keys: np.ndarray) -> np.ndarray:
    mask = np.int64(MAX_HULL_EXTENT)
    xyz = [keys & mask, (keys >> HULL_BITS) & mask, keys >> (2 * HULL_BITS)]
    return np.stack(xyz, axis=1).astype(np.float64)


def hull_volumes(partial: Partial) -> np.ndarray:
    """Volume (voxels) of the convex hull of each label's corners; NaN without corners."""
    from scipy.spatial import ConvexHull
    labels, keys, _ = partial.hull
    low, high = np.searchsorted(labels, partial.labels), np.searchsorted(labels, partial.labels, "right")
    return np.array([ConvexHull(unpack_corners(keys[a:b])).volume if b > a else np.nan
                     for a, b in zip(low, high)])


def perimeter_classes(halo: np.ndarray) -> np.ndarray:
    """Per pixel of the slice without its 2-pixel halo: the weight class (1, 2, 3 for PERIMETER's
    weights, 0 for none) of scikit-image's `perimeter(..., 4)` of the pixel's own label.

    A border pixel has a 4-neighbour of another label; its pattern is 1 + 2 per border
    4-neighbour + 10 per border diagonal neighbour, both of its own label.
    """
    h = halo[:, :, 0] if halo.ndim == 3 else halo
    inner = h[1:-1, 1:-1]
    border = (inner != 0) & ((h[:-2, 1:-1] != inner) | (h[2:, 1:-1] != inner) | (h[1:-1, :-2] != inner)
                             | (h[1:-1, 2:] != inner))
    own = inner[1:-1, 1:-1]
    code = border[1:-1, 1:-1].astype(np.int64)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx or dy:
                near = (slice(1 + dx, border.shape[0] - 1 + dx), slice(1 + dy, border.shape[1] - 1 + dy))
                same = border[near] & (inner[near] == own)
                code += same * (2 if dx == 0 or dy == 0 else 10)
    classes = np.zeros(code.shape, np.int8)
    classes[np.isin(code, (5, 7, 15, 17, 25, 27))] = 1
    classes[np.isin(code, (21, 33))] = 2
    classes[np.isin(code, (13, 23))] = 3
    classes[~border[1:-1, 1:-1]] = 0
    return classes[:, :, None]


def _bounding_boxes(renumbered: np.ndarray, n_rows: int, origin) -> Dict[str, np.ndarray]:
    from scipy import ndimage
    low = np.full((n_rows, 3), _BIG, np.int64)
    high = np.full((n_rows, 3), _SMALL, np.int64)
    for row, box in enumerate(ndimage.find_objects(renumbered), start=1):
        if box is not None:
            low[row] = [s.start for s in box]
            high[row] = [s.stop for s in box]
    shift = np.asarray(origin, np.int64)
    low[1:] += shift
    high[1:] += shift
    return {**{f"min{a}": low[:, k] for k, a in enumerate("xyz")},
            **{f"max{a}": high[:, k] for k, a in enumerate("xyz")}}


def histogram(ids: np.ndarray, rows: np.ndarray, values: np.ndarray) -> Sparse:
    """(label, value, voxels) of one block's image values (floats as `float_keys`)."""
    if rows.size == 0:
        return empty_sparse()
    keys = float_keys(values) if values.dtype.kind == "f" else values.astype(np.int64)
    hist = value_histogram(rows, keys)
    return ids[hist[0].astype(np.int64)], hist[1], hist[2]


def float_keys(values: np.ndarray) -> np.ndarray:
    """int64 keys that sort as the float values do (-0.0 and 0.0 share key 0); `key_values` inverts."""
    bits = values.astype(np.float64).view(np.int64)
    return np.where(bits < 0, -(bits & np.int64(_BIG)), bits)


def key_values(keys: np.ndarray) -> np.ndarray:
    return np.where(keys < 0, (-keys) | np.int64(_SMALL), keys).view(np.float64)


def value_histogram(rows: np.ndarray, values: np.ndarray):
    """(row, value, voxels) for every value present in each row: a dense bincount where the
    rows times the value range is small, else a sort."""
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    n_rows = int(rows.max()) + 1
    if n_rows * span <= 1 << 26:
        counts = np.bincount(rows * span + (values - low), minlength=n_rows * span)
        where = np.flatnonzero(counts)
        return (where // span).astype(np.uint64), where % span + low, counts[where].astype(np.int64)
    return sparse_counts(rows, values)


def _add_nuclei(partial: Partial, rows: np.ndarray, nuclei: np.ndarray, values: Optional[np.ndarray]) -> None:
    """Voxels (and image histogram) of each cell inside nuclei, and the (cell, nucleus) overlaps."""
    inside = nuclei != 0
    partial.columns["nvox"] = np.bincount(rows[inside], minlength=partial.labels.size).astype(np.int64)
    if values is not None:
        partial.nhist = histogram(partial.labels, rows[inside], values[inside])
    cells, nucleus, counts = sparse_counts(rows[inside], nuclei[inside].astype(np.int64))
    partial.pairs = (partial.labels[cells.astype(np.int64)], nucleus, counts)


def select(partial: Partial, keep: np.ndarray) -> Partial:
    """The rows where `keep`; sparse entries of dropped labels go too."""
    labels = partial.labels[keep]
    columns = {name: col[keep] for name, col in partial.columns.items()}

    def sparse(table):
        inside = np.isin(table[0], labels)
        return tuple(a[inside] for a in table)
    return Partial(labels, columns, *(sparse(getattr(partial, name)) for name in SPARSE))


def with_areas(partial: Partial, areas: Optional[Tuple[np.ndarray, np.ndarray]]) -> Partial:
    """Add surface-area pieces; labels only in the mesh overlap get rows of their own."""
    names = list(partial.columns)
    if areas is None or areas[0].size == 0:
        partial.columns["area"] = np.zeros(len(partial))
        return partial
    extra = np.setdiff1d(areas[0].astype(np.uint64), partial.labels)
    pieces = [partial, Partial(extra, {name: empty_column(name, extra.size) for name in names})]
    merged = merge(pieces) if extra.size else partial
    area = np.zeros(len(merged))
    area[np.searchsorted(merged.labels, areas[0].astype(np.uint64))] = areas[1]
    merged.columns["area"] = area
    return merged


def empty_column(name: str, size: int) -> np.ndarray:
    """What a row with no voxels holds: 0 for sums, sentinels for minima and maxima."""
    if name in MINS:
        return np.full(size, _BIG, np.int64)
    if name in MAXS:
        return np.full(size, _SMALL, np.int64)
    return np.zeros(size, column_dtype(name))


def merge(parts: Sequence[Partial]) -> Partial:
    """One partial from many (any order): sums add, minima and maxima combine, sparse counts add."""
    parts = [p for p in parts if len(p)] or list(parts[:1])
    if not parts:
        raise ValueError("nothing to merge")
    labels = np.concatenate([p.labels for p in parts])
    order = np.argsort(labels, kind="stable")
    labels = labels[order]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if labels.size else np.zeros(0, int)
    columns = {}
    for name in parts[0].columns:
        col = np.concatenate([p.columns[name] for p in parts])[order]
        reduce = REDUCERS.get(name, np.add)
        columns[name] = reduce.reduceat(col, starts) if col.size else col
    return Partial(labels[starts], columns,
                   *(merge_sparse([getattr(p, name) for p in parts]) for name in SPARSE))


def merge_sparse(tables) -> Sparse:
    return sparse_counts(*(np.concatenate([t[k] for t in tables]) for k in range(3)))


def statistics(partial: Partial, resolution: Sequence[float], voxel_offset: Sequence[int],
               image: bool = False, nuclei: bool = False, planar: bool = False,
               float_image: bool = False, bins: Optional[Bins] = None) -> Dict[str, np.ndarray]:
    """The final columns of fully merged partials, `label` first (one row per label).

    planar: a single-slice layer (2-D columns, see the module docstring); float_image: the
    histogram holds `float_keys`; bins: it holds `bin_index`es of these bins."""
    res = np.asarray(resolution, np.float64)
    cols = partial.columns
    n = cols["count"].astype(np.float64)
    out = {"label": partial.labels.astype(np.uint64), "voxel_count": cols["count"].copy()}
    if not planar:
        out["volume"] = n * float(np.prod(res))
    offset = np.asarray(voxel_offset, np.int64)
    for k, axis in enumerate("xyz"):
        out[f"bbox_min_{axis}"] = cols[f"min{axis}"] + offset[k]
        out[f"bbox_max_{axis}"] = cols[f"max{axis}"] + offset[k]
    for k, axis in enumerate("xyz"):
        out[f"centroid_{axis}"] = (offset[k] + cols[f"s{axis}"] / n) * res[k]
    out.update(planar_columns(cols, res) if planar else solid_columns(cols, res, out["volume"]))
    out["solidity"] = n / hull_volumes(partial)
    if image:
        out.update(intensity_columns(partial, float_image, bins))
    if nuclei:
        out.update(nuclei_columns(partial, float(np.prod(res)), image, float_image, bins))
    return out


def solid_columns(cols: Dict[str, np.ndarray], res: np.ndarray, volume: np.ndarray) -> Dict[str, np.ndarray]:
    """Axis lengths (2 sqrt(5 eigenvalue)), equivalent diameter, surface area and sphericity."""
    out = {}
    lengths = 2 * np.sqrt(5 * covariance_eigenvalues(cols, res))
    for k, name in enumerate(("major", "medium", "minor")):
        out[f"axis_{name}_length"] = lengths[:, k]
    out["equivalent_diameter"] = np.cbrt(6 * volume / np.pi)
    out["surface_area"] = cols["area"].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["sphericity"] = np.cbrt(np.pi) * np.cbrt(6 * volume) ** 2 / out["surface_area"]
    return out


def planar_columns(cols: Dict[str, np.ndarray], res: np.ndarray) -> Dict[str, np.ndarray]:
    """Area, perimeter, circularity, eccentricity, 2-D axis lengths and equivalent diameter."""
    area = cols["count"] * float(res[0] * res[1])
    weights = sum(cols[name] * w for name, w in zip(PERIMETER, PERIMETER_WEIGHTS))
    perimeter = weights * res[0] if res[0] == res[1] else np.full(area.size, np.nan)
    eigen = covariance_eigenvalues(cols, res)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"area": area, "perimeter": perimeter, "circularity": 4 * np.pi * area / perimeter ** 2,
                "eccentricity": np.where(eigen[:, 0] > 0, np.sqrt(1 - eigen[:, 1] / eigen[:, 0]), 0.0),
                "axis_major_length": 4 * np.sqrt(eigen[:, 0]), "axis_minor_length": 4 * np.sqrt(eigen[:, 1]),
                "equivalent_diameter": np.sqrt(4 * area / np.pi)}


def covariance_eigenvalues(cols: Dict[str, np.ndarray], res: np.ndarray) -> np.ndarray:
    """Eigenvalues (nm^2, at least 0) of each label's covariance, largest first, shape (labels, 3).

    The integer sums are first moved to the bounding box's corner (exactly, in int64) so the
    float covariance does not lose digits to large coordinates."""
    n = cols["count"]
    corner = [cols[f"min{a}"] for a in "xyz"]
    first = [cols[f"s{a}"] - n * corner[k] for k, a in enumerate("xyz")]
    cov = np.zeros((n.size, 3, 3))
    for name, i, j in _PRODUCTS:
        raw = cols[f"s{name}"] - corner[j] * first[i] - corner[i] * first[j] - n * corner[i] * corner[j]
        value = (raw - first[i].astype(np.float64) * first[j] / n) / n * res[i] * res[j]
        cov[:, i, j] = cov[:, j, i] = value
    return np.maximum(np.linalg.eigvalsh(cov)[:, ::-1], 0)


def intensity_columns(partial: Partial, float_image: bool = False,
                      bins: Optional[Bins] = None) -> Dict[str, np.ndarray]:
    """Intensity statistics of each object, exact from its histogram."""
    return value_statistics(partial.labels, decoded(partial.hist, float_image, bins), "intensity_")


def decoded(hist: Sparse, float_image: bool, bins: Optional[Bins] = None) -> Sparse:
    """A histogram with float64 values (from `float_keys` for a float image, bin centres for
    `bin_index`es)."""
    if bins is not None:
        values = bin_centres(hist[1], bins)
    else:
        values = key_values(hist[1]) if float_image else hist[1].astype(np.float64)
    return hist[0], values, hist[2]


def bin_index(values: np.ndarray, bins: Bins) -> np.ndarray:
    """Each value's bin of `bins` (low, high, count: equal bins over [low, high]; values outside in
    the end bins, NaN one past the last) as int64: the keys of a histogram of at most count + 1
    values per object, where `float_keys` keep one per distinct value."""
    low, high, count = bins
    scaled = np.clip((values.astype(np.float64) - low) * (count / (high - low)), 0, count - 1)
    return np.where(np.isnan(scaled), count, np.floor(scaled)).astype(np.int64)


def bin_centres(keys: np.ndarray, bins: Bins) -> np.ndarray:
    """The value each `bin_index` stands for: its bin's centre (NaN for NaN's key)."""
    low, high, count = bins
    centres = low + (keys + 0.5) * ((high - low) / count)
    return np.where(keys >= count, np.nan, centres)


def value_statistics(labels: np.ndarray, hist: Sparse, prefix: str) -> Dict[str, np.ndarray]:
    """PREFIX + VALUE_STATISTICS of each label's values, from a histogram whose labels are among
    `labels`: population std, numpy 'linear' median and percentiles; NaN for labels without values."""
    hist_labels, values, counts = hist
    low, high = np.searchsorted(hist_labels, labels), np.searchsorted(hist_labels, labels, "right")
    present = high > low
    out = {prefix + name: np.full(labels.size, np.nan) for name in VALUE_STATISTICS}
    if not present.any():
        return out
    starts, lengths = low[present], (high - low)[present]
    totals = np.add.reduceat(counts, starts)
    mean = np.add.reduceat(counts * values, starts) / totals
    deviation = values - np.repeat(mean, lengths)
    found = {"mean": mean, "std": np.sqrt(np.add.reduceat(counts * deviation ** 2, starts) / totals),
             "min": values[starts], "max": values[high[present] - 1]}
    for q in (50,) + PERCENTILES:
        found["median" if q == 50 else f"p{q}"] = histogram_percentile(labels[present], hist, totals, q)
    for name in VALUE_STATISTICS:
        out[prefix + name][present] = found[name]
    return out


def histogram_percentile(labels: np.ndarray, hist, totals: np.ndarray, q: float) -> np.ndarray:
    """numpy's percentile (method 'linear') of each label's voxel values, from its histogram."""
    hist_labels, values, counts = hist
    cumulative = np.cumsum(counts)
    before = cumulative[np.searchsorted(hist_labels, labels)] - counts[np.searchsorted(hist_labels, labels)]
    index = (q / 100) * (totals - 1).astype(np.float64)
    previous = np.floor(index).astype(np.int64)
    following = np.minimum(previous + 1, totals - 1)
    gamma = index - previous
    low = values[np.searchsorted(cumulative, before + previous, "right")].astype(np.float64)
    high = values[np.searchsorted(cumulative, before + following, "right")].astype(np.float64)
    return np.where(gamma >= 0.5, high - (high - low) * (1 - gamma), low + (high - low) * gamma)


def nuclei_columns(partial: Partial, voxel_volume: float, image: bool,
                   float_image: bool = False, bins: Optional[Bins] = None) -> Dict[str, np.ndarray]:
    """Nuclei per cell, nucleus volume and cell/nucleus volume ratio, and with an image the
    intensity statistics inside nuclei and in the rest of the cell (cytoplasm: the cell's
    histogram less its nuclei's), and the ratio of their means."""
    cols = partial.columns
    cells = partial.pairs[0]
    count, nvox = cols["count"], cols["nvox"]
    nuclei = np.searchsorted(cells, partial.labels, "right") - np.searchsorted(cells, partial.labels)
    out = {"nuclei_count": nuclei}
    out["nucleus_volume"] = nvox * voxel_volume
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cell_nucleus_volume_ratio"] = np.where(nvox > 0, count / nvox, np.nan)
    if image:
        nhist = partial.nhist
        cytoplasm = merge_sparse([partial.hist, (nhist[0], nhist[1], -nhist[2])])
        cytoplasm = tuple(a[cytoplasm[2] != 0] for a in cytoplasm)
        out.update(value_statistics(partial.labels, decoded(nhist, float_image, bins), "nucleus_intensity_"))
        out.update(value_statistics(partial.labels, decoded(cytoplasm, float_image, bins),
                                    "cytoplasm_intensity_"))
        means = out["cytoplasm_intensity_mean"], out["nucleus_intensity_mean"]
        out["cytoplasm_nucleus_intensity_ratio"] = means[0] / means[1]
    return out


def ring_reach(resolution: Sequence[float], width: float) -> np.ndarray:
    """Voxels per axis that a ring of `width` nm reaches past its object."""
    return np.floor(width / np.asarray(resolution, np.float64)).astype(int)


def ring_labels(labels: np.ndarray, resolution: Sequence[float], width: float) -> np.ndarray:
    """The ring of each object: every background voxel within `width` nm (Euclidean, voxel centres)
    of an object gets the id of the nearest object, ties to the smallest id; other voxels 0.

    labels: the block with `ring_reach` voxels more on each side (zeros outside the layer); the
    answer is the block alone. Offsets in the ball are tried nearest first, so the cost is the
    ball's voxels times the block's.
    """
    res = np.asarray(resolution, np.float64)
    reach = ring_reach(res, width)
    ball = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    squared = ((ball * res) ** 2).sum(axis=1)
    inside = (squared <= width * width) & (squared > 0)
    ball, squared = ball[inside], squared[inside]
    core = tuple(slice(r, n - r) for r, n in zip(reach, labels.shape))
    own = labels[core]
    out = np.zeros_like(own)
    todo = own == 0
    for distance in np.unique(squared):
        best = np.zeros_like(own)
        for offset in ball[squared == distance]:
            shifted = labels[tuple(slice(r + d, n - r + d) for r, d, n in zip(reach, offset, labels.shape))]
            better = (shifted != 0) & ((best == 0) | (shifted < best))
            best[better] = shifted[better]
        hit = todo & (best != 0)
        out[hit] = best[hit]
        todo &= ~hit
        if not todo.any():
            break
    return out


def surface_areas(padded: np.ndarray, resolution: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """(labels, surface area in nm^2) of the marching-cubes pieces of a block (with its overlap)."""
    import zmesh
    mesher = zmesh.Mesher(tuple(float(r) for r in resolution))
    mesher.mesh(np.asfortranarray(padded), close=False)
    labels = np.asarray(sorted(label for label in mesher.ids() if label != 0), np.uint64)
    areas = np.zeros(labels.size)
    try:
        for k, label in enumerate(labels):
            mesh = mesher.get(int(label), normals=False, reduction_factor=0)
            mesher.erase(int(label))
            areas[k] = triangle_area(mesh.vertices, mesh.faces)
    finally:
        mesher.clear()
    return labels, areas


def triangle_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    corners = vertices.astype(np.float64)[faces.astype(np.int64)]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return float(np.linalg.norm(cross, axis=1).sum() / 2)
