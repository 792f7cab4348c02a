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
* Percentiles and the median of integer images are exact, numpy's default ('linear') method
  on the object's voxel values; intensity std is the population std (ddof 0).
* Nuclei: a cell's `nuclei_count` is the number of distinct nucleus ids that overlap it; its
  nucleus volume and intensity are those of its voxels that lie in any nucleus, the cytoplasm
  is the rest of the cell.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import fastremap
import numpy as np

SUMS = ("count", "sx", "sy", "sz", "sxx", "syy", "szz", "sxy", "sxz", "syz")
MINS = ("minx", "miny", "minz")
MAXS = ("maxx", "maxy", "maxz")
IMAGE_SUMS = ("isum", "isumsq")
NUCLEI_SUMS = ("nvox", "nisum")
FLOAT_COLUMNS = ("area", "isum", "isumsq", "imin", "imax", "nisum")
PERCENTILES = (10, 25, 75, 90)
MAX_BLOCK_MOMENT = 2**53  # voxels x (longest side)^2 of a block must stay below: float64 sums exact
REDUCERS = {**{name: np.minimum for name in MINS + ("imin",)},
            **{name: np.maximum for name in MAXS + ("imax",)}}
_BIG = np.iinfo(np.int64).max
_SMALL = np.iinfo(np.int64).min
_PRODUCTS = (("xx", 0, 0), ("yy", 1, 1), ("zz", 2, 2), ("xy", 0, 1), ("xz", 0, 2), ("yz", 1, 2))


def column_names(image: bool, nuclei: bool) -> List[str]:
    """The columns of a partial, in a fixed order (stored in the part files)."""
    names = list(SUMS + MINS + MAXS) + ["area"]
    if image:
        names += list(IMAGE_SUMS) + ["imin", "imax"]
    if nuclei:
        names += list(NUCLEI_SUMS)
    return names


def column_dtype(name: str) -> np.dtype:
    return np.dtype(np.float64 if name in FLOAT_COLUMNS else np.int64)


@dataclass
class Partial:
    """Per-label partial statistics: `columns[name][i]` belongs to `labels[i]` (sorted, unique);
    `hist` is (label, value, count) and `pairs` (label, nucleus, count), sorted by both keys."""
    labels: np.ndarray
    columns: Dict[str, np.ndarray]
    hist: Tuple[np.ndarray, np.ndarray, np.ndarray] = field(default_factory=lambda: empty_sparse())
    pairs: Tuple[np.ndarray, np.ndarray, np.ndarray] = field(default_factory=lambda: empty_sparse())

    def __len__(self) -> int:
        return int(self.labels.size)


def empty_sparse() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
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
                  areas: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> Partial:
    """The partial statistics of one block's own voxels (background 0 left out).

    origin: the block's first voxel, counted from the layer's bounds. areas: (labels, surface
    area) of this block's mesh pieces; labels that only occur there get rows with no voxels.
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
    partial = Partial(ids, columns)
    if image is not None:
        _add_intensity(partial, rows, image.ravel(order="F")[fg], n_rows)
    if nuclei is not None:
        _add_nuclei(partial, rows, nuclei.ravel(order="F")[fg], image, fg)
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


def _add_intensity(partial: Partial, rows: np.ndarray, values: np.ndarray, n_rows: int) -> None:
    """Intensity sums and range; for integer images also the (label, value) histogram."""
    from scipy import ndimage
    cols = partial.columns
    as_float = values.astype(np.float64)
    cols["isum"] = np.bincount(rows, weights=as_float, minlength=n_rows)
    cols["isumsq"] = np.bincount(rows, weights=as_float * as_float, minlength=n_rows)
    cols["imin"], cols["imax"] = np.full(n_rows, np.inf), np.full(n_rows, -np.inf)
    if rows.size == 0:
        return
    if values.dtype.kind in "iub":
        hist = value_histogram(rows, values.astype(np.int64))
        partial.hist = (partial.labels[hist[0].astype(np.int64)], hist[1], hist[2])
        starts = np.flatnonzero(np.r_[True, hist[0][1:] != hist[0][:-1]])
        ends = np.r_[starts[1:], hist[0].size] - 1
        present = hist[0][starts].astype(np.int64)
        cols["imin"][present] = hist[1][starts]
        cols["imax"][present] = hist[1][ends]
        return
    index = np.arange(n_rows)
    cols["imin"] = np.asarray(ndimage.minimum(as_float, rows, index), np.float64)
    cols["imax"] = np.asarray(ndimage.maximum(as_float, rows, index), np.float64)
    absent = cols["count"] == 0
    cols["imin"][absent], cols["imax"][absent] = np.inf, -np.inf


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


def _add_nuclei(partial: Partial, rows: np.ndarray, nuclei: np.ndarray, image, fg: np.ndarray) -> None:
    """Voxels (and intensity) of each cell inside nuclei, and the (cell, nucleus) overlaps."""
    n_rows = partial.labels.size
    inside = nuclei != 0
    partial.columns["nvox"] = np.bincount(rows[inside], minlength=n_rows).astype(np.int64)
    if image is not None:
        values = image.ravel(order="F")[fg][inside].astype(np.float64)
        partial.columns["nisum"] = np.bincount(rows[inside], weights=values, minlength=n_rows)
    else:
        partial.columns["nisum"] = np.zeros(n_rows)
    cells, nucleus, counts = sparse_counts(rows[inside], nuclei[inside].astype(np.int64))
    partial.pairs = (partial.labels[cells.astype(np.int64)], nucleus, counts)


def select(partial: Partial, keep: np.ndarray) -> Partial:
    """The rows where `keep`; sparse entries of dropped labels go too."""
    labels = partial.labels[keep]
    columns = {name: col[keep] for name, col in partial.columns.items()}

    def sparse(table):
        inside = np.isin(table[0], labels)
        return tuple(a[inside] for a in table)
    return Partial(labels, columns, sparse(partial.hist), sparse(partial.pairs))


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
    if name in ("imin", "imax"):
        return np.full(size, np.inf if name == "imin" else -np.inf)
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
    return Partial(labels[starts], columns, merge_sparse([p.hist for p in parts]),
                   merge_sparse([p.pairs for p in parts]))


def merge_sparse(tables) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    return sparse_counts(*(np.concatenate([t[k] for t in tables]) for k in range(3)))


def statistics(partial: Partial, resolution: Sequence[float], voxel_offset: Sequence[int],
               image: bool = False, nuclei: bool = False) -> Dict[str, np.ndarray]:
    """The final columns of fully merged partials, `label` first (one row per label)."""
    res = np.asarray(resolution, np.float64)
    cols = partial.columns
    n = cols["count"].astype(np.float64)
    out = {"label": partial.labels.astype(np.uint64), "voxel_count": cols["count"].copy()}
    out["volume"] = n * float(np.prod(res))
    offset = np.asarray(voxel_offset, np.int64)
    for k, axis in enumerate("xyz"):
        out[f"bbox_min_{axis}"] = cols[f"min{axis}"] + offset[k]
        out[f"bbox_max_{axis}"] = cols[f"max{axis}"] + offset[k]
    for k, axis in enumerate("xyz"):
        out[f"centroid_{axis}"] = (offset[k] + cols[f"s{axis}"] / n) * res[k]
    lengths = axis_lengths(cols, res)
    for k, name in enumerate(("major", "medium", "minor")):
        out[f"axis_{name}_length"] = lengths[:, k]
    out["equivalent_diameter"] = np.cbrt(6 * out["volume"] / np.pi)
    out["surface_area"] = cols["area"].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["sphericity"] = np.cbrt(np.pi) * np.cbrt(6 * out["volume"]) ** 2 / out["surface_area"]
    if image:
        out.update(intensity_columns(partial))
    if nuclei:
        out.update(nuclei_columns(partial, float(np.prod(res)), image))
    return out


def axis_lengths(cols: Dict[str, np.ndarray], res: np.ndarray) -> np.ndarray:
    """2 sqrt(5 eigenvalue) of each label's covariance in nm, largest first, shape (labels, 3).

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
    eigen = np.linalg.eigvalsh(cov)[:, ::-1]
    return 2 * np.sqrt(5 * np.maximum(eigen, 0))


def intensity_columns(partial: Partial) -> Dict[str, np.ndarray]:
    """Mean, std, min, max, and for integer images (a histogram) exact median and percentiles."""
    cols = partial.columns
    n = cols["count"].astype(np.float64)
    out = {}
    hist_labels, values, counts = partial.hist
    if hist_labels.size:
        starts = np.searchsorted(hist_labels, partial.labels)
        weighted = np.add.reduceat(counts * values, starts)
        out["intensity_mean"] = weighted / n
        deviation = values - np.repeat(out["intensity_mean"], np.diff(np.r_[starts, values.size]))
        out["intensity_std"] = np.sqrt(np.add.reduceat(counts * deviation ** 2, starts) / n)
    else:
        out["intensity_mean"] = cols["isum"] / n
        out["intensity_std"] = np.sqrt(np.maximum(cols["isumsq"] / n - out["intensity_mean"] ** 2, 0))
    out["intensity_min"], out["intensity_max"] = cols["imin"].copy(), cols["imax"].copy()
    for q in (50,) + PERCENTILES:
        name = "intensity_median" if q == 50 else f"intensity_p{q}"
        out[name] = (histogram_percentile(partial.labels, partial.hist, cols["count"], q) if hist_labels.size
                     else np.full(n.size, np.nan))
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


def nuclei_columns(partial: Partial, voxel_volume: float, image: bool) -> Dict[str, np.ndarray]:
    """Nuclei per cell, nucleus volume and cell/nucleus volume ratio, and with an image the mean
    intensity inside nuclei and in the rest of the cell (cytoplasm), and their ratio."""
    cols = partial.columns
    cells = partial.pairs[0]
    count, nvox = cols["count"], cols["nvox"]
    nuclei = np.searchsorted(cells, partial.labels, "right") - np.searchsorted(cells, partial.labels)
    out = {"nuclei_count": nuclei}
    out["nucleus_volume"] = nvox * voxel_volume
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cell_nucleus_volume_ratio"] = np.where(nvox > 0, count / nvox, np.nan)
        if image:
            out["nucleus_intensity_mean"] = np.where(nvox > 0, cols["nisum"] / nvox, np.nan)
            cyto = count - nvox
            cyto_mean = np.where(cyto > 0, (cols["isum"] - cols["nisum"]) / cyto, np.nan)
            out["cytoplasm_intensity_mean"] = cyto_mean
            out["cytoplasm_nucleus_intensity_ratio"] = cyto_mean / out["nucleus_intensity_mean"]
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
