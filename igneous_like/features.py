"""Per-voxel image features for the synapse classifier, equal blockwise and on the whole array.

Each scale is given in nm and becomes one Gaussian sigma per axis (scale / resolution), so the
features see the same physical neighbourhood along every axis of an anisotropic layer.
Derivatives are taken in physical units and scale-normalised (times the scale per order), so
orientation does not depend on the voxel grid. Per scale: Gaussian smoothing, gradient
magnitude, the structure tensor's eigenvalues (inner scale half the scale, integrated at the
scale) and the Hessian's eigenvalues; plus the raw intensity. These are the "basic" family.

The "oriented" family follows the boosted synapse detectors (Becker et al., context cues for
synapse segmentation): a cleft is a thin plate, so features aligned to the local orientation
separate it from membranes and vesicles better than axis-bound ones. Per scale: the absolute
components of the structure tensor's principal eigenvector (the local normal) and of the Hessian's
dominant eigenvector, how well the two agree, the Hessian along and across the normal, the
gradient along it, and the smoothed image sampled at +-2 and +-4 scales along the normal (mean
minus centre, and the absolute difference of the two sides: vesicles lie on one side of a
cleft) and at +-2 scales along the in-plane direction (the smallest eigenvector). Sign-free, so
the eigenvectors' arbitrary signs do not matter.

Blockwise exactness: every filter is separable, one 1-D Gaussian pass per axis of radius
int(truncate * sigma + 0.5) voxels (scipy's rule). Chained filters (the structure tensor
smooths products of derivatives) add their radii. A block read with `halo()` more voxels on
each side, or cut at the volume's edge, where the same boundary mode applies to the block as to
the whole array, gives the same feature values inside as the whole array does. Oriented
samples read the smoothed image up to REACH scales away, by trilinear interpolation whose
integer steps and weights come from the voxel's own offset only (clamped at the volume's edge),
so the halo grows by those voxels plus one.
"""
import itertools
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

TRUNCATE = 4.0
MODE = "reflect"
FIRST = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
SECOND = ((2, 0, 0), (1, 1, 0), (1, 0, 1), (0, 2, 0), (0, 1, 1), (0, 0, 2))
PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))  # upper triangle of a symmetric 3x3
KINDS = ("gaussian", "gradient_magnitude", "structure_tensor", "hessian")
FAMILIES = ("basic", "oriented")
ALONG, ACROSS = (2.0, 4.0), (2.0, 4.0, 6.0)  # sample distances along the normal and in-plane, in scales
REACH = max(ALONG + ACROSS)
BASIC = ("gaussian", "gradient_magnitude") + tuple(f"structure_tensor_{k}" for k in range(3)) + tuple(
    f"hessian_{k}" for k in range(3))
ORIENTED = (tuple(f"normal_{a}" for a in "xyz") + tuple(f"hessian_axis_{a}" for a in "xyz")
            + ("alignment", "hessian_normal", "hessian_across", "gradient_normal")
            + tuple(f"{kind}_{d:g}" for d in ALONG for kind in ("along", "asymmetry"))
            + tuple(f"across_{d:g}" for d in ACROSS))


@dataclass(frozen=True)
class FeatureSettings:
    """Scales (nm) and the layer's resolution (nm per voxel): all that fixes the feature stack."""
    scales: Tuple[float, ...]
    resolution: Tuple[float, float, float]
    truncate: float = TRUNCATE
    families: Tuple[str, ...] = ("basic",)

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "families", tuple(f for f in FAMILIES if f in self.families))
        unknown = sorted(set(self.families) ^ set(self.families).intersection(FAMILIES))
        if not self.families or unknown:
            raise ValueError(f"feature families must be some of {', '.join(FAMILIES)}, "
                             f"got {list(self.families)}")
        object.__setattr__(self, "resolution", tuple(float(r) for r in self.resolution))
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"feature scales must be positive nm values, got {list(self.scales)}")
        if len(self.resolution) != 3 or min(self.resolution) <= 0:
            raise ValueError(f"resolution must be three positive nm values, got {list(self.resolution)}")

    def sigmas(self, scale: float) -> np.ndarray:
        """Gaussian sigma in voxels per axis for a scale in nm."""
        return scale / np.asarray(self.resolution)

    def names(self) -> List[str]:
        """One name per feature, in the order of the stack's last axis."""
        out = ["intensity"]
        for scale in self.scales:
            for name in self.per_scale():
                kind, _, rest = name.rpartition("_") if name[-1].isdigit() else (name, "", "")
                out.append(f"{kind}_{scale:g}nm_{rest}" if rest else f"{name}_{scale:g}nm")
        return out

    def per_scale(self) -> Tuple[str, ...]:
        """The names of one scale's features, without the scale."""
        return (BASIC if "basic" in self.families else ()) + (ORIENTED if "oriented" in self.families else ())

    def to_json(self) -> dict:
        return {"scales": list(self.scales), "resolution": list(self.resolution), "truncate": self.truncate,
                "families": list(self.families), "mode": MODE, "kinds": list(KINDS), "names": self.names()}

    @classmethod
    def from_json(cls, data: dict) -> "FeatureSettings":
        # models written before families existed hold the basic ones
        families = tuple(data.get("families", ["basic"]))
        settings = cls(data["scales"], data["resolution"], data["truncate"], families)
        if data.get("mode") != MODE or data.get("names") != settings.names():
            raise ValueError("these feature settings were written by another feature version")
        return settings


def radius(sigma: float, truncate: float = TRUNCATE) -> int:
    """Half-width in voxels of scipy's 1-D Gaussian (and its derivatives) for this sigma."""
    return int(truncate * float(sigma) + 0.5)


def reach(settings: FeatureSettings, scale: float) -> np.ndarray:
    """Voxels per axis the oriented samples of a scale may step away from their voxel, plus one."""
    return np.ceil(REACH * scale / np.asarray(settings.resolution)).astype(int) + 1


def halo(settings: FeatureSettings) -> np.ndarray:
    """Voxels per axis a block needs around it so its features equal the whole array's.

    The structure tensor is the widest chain of the basic family: derivatives at half the scale,
    then smoothing at the scale; the other features are one Gaussian pass of the scale per axis.
    Oriented samples read the smoothed image `reach` voxels further.
    """
    widest = np.zeros(3, dtype=int)
    for scale in settings.scales:
        sigmas = settings.sigmas(scale)
        chain = [radius(s / 2, settings.truncate) + radius(s, settings.truncate) for s in sigmas]
        single = np.array([radius(s, settings.truncate) for s in sigmas])
        if "oriented" in settings.families:
            single = single + reach(settings, scale)
        widest = np.maximum(widest, np.maximum(chain, single))
    return widest


def gaussian_derivatives(image: np.ndarray, sigma: Sequence[float], orders: Sequence[Tuple[int, int, int]],
                         truncate: float, crop: Tuple[slice, ...]) -> Dict[Tuple[int, int, int], np.ndarray]:
    """Derivative-of-Gaussian filtered copies of `image` within `crop`, one per order (x, y, z).

    Axes are filtered in order x, y, z, each pass cut to `crop` on its axis before the next
    axis is filtered: a 1-D pass computes each value from its own line only, so this gives the
    values of filtering the whole block at less cost. Orders that start alike share passes, and
    a partial result is dropped once no remaining order starts with it.
    """
    wanted = sorted(set(orders))
    partial: Dict[tuple, np.ndarray] = {(): image}
    out = {}
    for index, order in enumerate(wanted):
        for depth in range(1, 4):
            key = order[:depth]
            if key not in partial:
                axis = depth - 1
                filtered = ndimage.gaussian_filter1d(partial[key[:-1]], sigma[axis], axis=axis, order=key[-1],
                                                     mode=MODE, truncate=truncate, output=np.float32)
                cut = (slice(None),) * axis + (crop[axis],)
                partial[key] = np.ascontiguousarray(filtered[cut])
        out[order] = partial[order]
        rest = wanted[index + 1:]
        for key in [k for k in partial if k and not any(o[:len(k)] == k for o in rest)]:
            del partial[key]
    return out


def widen(crop: Tuple[slice, ...], margin: Sequence[int], shape: Sequence[int]) -> Tuple[slice, ...]:
    """`crop` grown by `margin` voxels per side, inside an array of `shape`."""
    return tuple(slice(max(c.start - m, 0), min(c.stop + m, n)) for c, m, n in zip(crop, margin, shape))


def eigenvalues(components: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Ascending float32 eigenvalues of symmetric 3x3 matrices given by their PAIRS entries."""
    return [v.astype(np.float32) for v in eigenvalues64(components)]


def eigenvalues64(components: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Ascending float64 eigenvalues of symmetric 3x3 matrices given by their PAIRS entries.

    Closed form (trigonometric solution of the characteristic cubic) in float64, element by
    element: several times faster than a LAPACK call per voxel, and a voxel's value depends on
    its own matrix only.
    """
    m00, m01, m02, m11, m12, m22 = (np.asarray(c, dtype=np.float64) for c in components)
    mean = (m00 + m11 + m22) / 3
    off = m01 * m01 + m02 * m02 + m12 * m12
    d00, d11, d22 = m00 - mean, m11 - mean, m22 - mean
    spread = np.sqrt((d00 * d00 + d11 * d11 + d22 * d22 + 2 * off) / 6)
    safe = np.where(spread > 0, spread, 1.0)
    b00, b01, b02, b11, b12, b22 = d00 / safe, m01 / safe, m02 / safe, d11 / safe, m12 / safe, d22 / safe
    half_det = (b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02)
                + b02 * (b01 * b12 - b11 * b02)) / 2
    angle = np.arccos(np.clip(half_det, -1.0, 1.0)) / 3
    largest = mean + 2 * spread * np.cos(angle)
    smallest = mean + 2 * spread * np.cos(angle + 2 * np.pi / 3)
    middle = 3 * mean - largest - smallest
    return [smallest, middle, largest]


def eigenvector(components: Sequence[np.ndarray], value: np.ndarray) -> np.ndarray:
    """Unit eigenvectors (3, ...) for one eigenvalue per matrix, zero where it is not simple.

    The largest cross product of two rows of M - value * I, element by element like the values.
    """
    m00, m01, m02, m11, m12, m22 = (np.asarray(c, dtype=np.float64) for c in components)
    rows = [(m00 - value, m01, m02), (m01, m11 - value, m12), (m02, m12, m22 - value)]
    best, best_norm = np.zeros((3,) + value.shape), np.zeros(value.shape)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        (a0, a1, a2), (b0, b1, b2) = rows[a], rows[b]
        cross = np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])
        norm = np.sqrt((cross * cross).sum(axis=0))
        better = norm > best_norm
        best = np.where(better, cross, best)
        best_norm = np.where(better, norm, best_norm)
    return best / np.where(best_norm > 0, best_norm, 1.0)


def quadratic(components: Sequence[np.ndarray], v: np.ndarray) -> np.ndarray:
    """v^T M v per element, for symmetric M given by its PAIRS entries."""
    return sum((1 if a == b else 2) * c * v[a] * v[b] for (a, b), c in zip(PAIRS, components))


def interpolate(values: np.ndarray, grid: Sequence[np.ndarray], offset: np.ndarray) -> np.ndarray:
    """Trilinear samples of `values` at `grid` (integer index arrays) + `offset` (3, ...) voxels.

    Integer steps and weights come from the offset alone and indices are clamped to the array,
    so a voxel's sample does not depend on where its block starts.
    """
    step = np.floor(offset)
    weight = (offset - step).astype(np.float32)
    step = step.astype(np.int64)
    strides = np.cumprod((1,) + values.shape[:0:-1])[::-1]
    # per axis: (flat index part, weight) of the lower and the upper neighbour
    parts = [[(np.clip(g + s + c, 0, n - 1) * stride, w if c else 1 - w) for c in (0, 1)]
             for g, s, w, n, stride in zip(grid, step, weight, values.shape, strides)]
    flat = values.ravel()
    out = np.zeros(offset.shape[1:], dtype=np.float32)
    for (ix, wx), (iy, wy), (iz, wz) in itertools.product(*parts):
        out += wx * wy * wz * flat[ix + iy + iz]
    return out


def oriented_features(image: np.ndarray, settings: FeatureSettings, scale: float, crop: Tuple[slice, ...],
                      gradient: Sequence[np.ndarray], hessian: Sequence[np.ndarray],
                      tensor: Sequence[np.ndarray]) -> List[np.ndarray]:
    """The ORIENTED features of one scale within `crop`, from that scale's gradient, Hessian and
    structure tensor there (all cut to `crop`)."""
    smallest, _, largest = eigenvalues64(tensor)
    normal, plane = eigenvector(tensor, largest), eigenvector(tensor, smallest)
    values = eigenvalues64(hessian)
    dominant = np.where(np.abs(values[0]) > np.abs(values[2]), values[0], values[2])
    axis = eigenvector(hessian, dominant)
    along = quadratic(hessian, normal)
    trace = sum(hessian[k] for k in (0, 3, 5))
    out = list(np.abs(normal)) + list(np.abs(axis))
    out += [np.abs((normal * axis).sum(axis=0)), along, trace - along,
            np.abs(sum(g * n for g, n in zip(gradient, normal)))]
    sigma, res = settings.sigmas(scale), np.asarray(settings.resolution)
    around = widen(crop, reach(settings, scale), image.shape)
    smooth = gaussian_derivatives(image, sigma, [(0, 0, 0)], settings.truncate, around)[(0, 0, 0)]
    grid = [np.arange(c.start - a.start, c.stop - a.start).reshape([-1 if k == n else 1 for k in range(3)])
            for n, (c, a) in enumerate(zip(crop, around))]
    centre = smooth[tuple(np.broadcast_arrays(*grid))]
    for direction, distances, pair in ((normal, ALONG, True), (plane, ACROSS, False)):
        for distance in distances:
            offset = direction * (distance * scale / res).reshape(3, 1, 1, 1)
            ahead, behind = interpolate(smooth, grid, offset), interpolate(smooth, grid, -offset)
            out.append((ahead + behind) / 2 - centre)
            if pair:
                out.append(np.abs(ahead - behind))
    return [o.astype(np.float32) for o in out]


def scale_features(image: np.ndarray, settings: FeatureSettings, scale: float,
                   crop: Tuple[slice, ...]) -> List[np.ndarray]:
    """The features of one scale (settings.per_scale()), each cut to `crop`."""
    sigma, res, truncate = settings.sigmas(scale), np.asarray(settings.resolution), settings.truncate
    derivs = gaussian_derivatives(image, sigma, ((0, 0, 0),) + FIRST + SECOND, truncate, crop)
    smooth = derivs.pop((0, 0, 0))
    gradient = [derivs.pop(order) * np.float32(scale / res[axis]) for axis, order in enumerate(FIRST)]
    magnitude = np.sqrt(sum(g * g for g in gradient))
    hessian = []
    for order in SECOND:
        physical = np.prod([res[axis] ** k for axis, k in enumerate(order)])
        hessian.append(derivs.pop(order) * np.float32(scale * scale / physical))
    # structure tensor: derivatives at half the scale over crop + the smoothing radius, then smoothing
    around = widen(crop, [radius(s, truncate) for s in sigma], image.shape)
    inner = gaussian_derivatives(image, sigma / 2, FIRST, truncate, around)
    grads = [inner.pop(order) * np.float32(scale / 2 / res[axis]) for axis, order in enumerate(FIRST)]
    within = tuple(slice(c.start - a.start, c.stop - a.start) for c, a in zip(crop, around))
    tensor = [gaussian_derivatives(grads[a] * grads[b], sigma, [(0, 0, 0)], truncate, within)[(0, 0, 0)]
              for a, b in PAIRS]
    del grads
    out = []
    if "basic" in settings.families:
        out += [smooth, magnitude] + eigenvalues(tensor) + eigenvalues(hessian)
    if "oriented" in settings.families:
        out += oriented_features(image, settings, scale, crop, gradient, hessian, tensor)
    return out


def feature_stack(image: np.ndarray, settings: FeatureSettings,
                  crop: Optional[Tuple[slice, ...]] = None) -> np.ndarray:
    """float32 features (x, y, z, feature) of a 3-D image, for the voxels in `crop` (default all).

    Pass a block read with halo(settings) extra voxels (fewer where the volume ends) and the
    crop that removes that halo: the result equals the whole array's features there.
    """
    if image.ndim != 3:
        raise ValueError(f"features need a 3-D image, got shape {image.shape}")
    crop = tuple(slice(*c.indices(n)[:2]) for c, n in zip(crop or (slice(None),) * 3, image.shape))
    volume = np.ascontiguousarray(image, dtype=np.float32)
    first = volume[crop]
    out = np.empty(first.shape + (len(settings.names()),), dtype=np.float32)
    out[..., 0] = first
    for index, scale in enumerate(settings.scales):
        start = 1 + index * len(settings.per_scale())
        for offset, feature in enumerate(scale_features(volume, settings, scale, crop)):
            out[..., start + offset] = feature
    return out
