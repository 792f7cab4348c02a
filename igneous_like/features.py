"""Per-voxel image features for the synapse classifier, equal blockwise and on the whole array.

Each scale is given in nm and becomes one Gaussian sigma per axis (scale / resolution), so the
features see the same physical neighbourhood along every axis of an anisotropic layer.
Derivatives are taken in physical units and scale-normalised (times the scale per order), so
orientation does not depend on the voxel grid. Per scale: Gaussian smoothing, gradient
magnitude, the structure tensor's eigenvalues (inner scale half the scale, integrated at the
scale) and the Hessian's eigenvalues; plus the raw intensity.

Blockwise exactness: every filter is separable, one 1-D Gaussian pass per axis of radius
int(truncate * sigma + 0.5) voxels (scipy's rule). Chained filters (the structure tensor
smooths products of derivatives) add their radii. A block read with `halo()` more voxels on
each side, or cut at the volume's edge, where the same boundary mode applies to the block as to
the whole array, gives the same feature values inside as the whole array does.
"""
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
FEATURES_PER_SCALE = 8  # gaussian, gradient magnitude, 3 structure tensor and 3 Hessian eigenvalues


@dataclass(frozen=True)
class FeatureSettings:
    """Scales (nm) and the layer's resolution (nm per voxel): all that fixes the feature stack."""
    scales: Tuple[float, ...]
    resolution: Tuple[float, float, float]
    truncate: float = TRUNCATE

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
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
            tag = f"{scale:g}nm"
            out += [f"gaussian_{tag}", f"gradient_magnitude_{tag}"]
            out += [f"structure_tensor_{tag}_{k}" for k in range(3)]
            out += [f"hessian_{tag}_{k}" for k in range(3)]
        return out

    def to_json(self) -> dict:
        return {"scales": list(self.scales), "resolution": list(self.resolution), "truncate": self.truncate,
                "mode": MODE, "kinds": list(KINDS), "names": self.names()}

    @classmethod
    def from_json(cls, data: dict) -> "FeatureSettings":
        settings = cls(data["scales"], data["resolution"], data["truncate"])
        if data.get("mode") != MODE or data.get("names") != settings.names():
            raise ValueError("these feature settings were written by another feature version")
        return settings


def radius(sigma: float, truncate: float = TRUNCATE) -> int:
    """Half-width in voxels of scipy's 1-D Gaussian (and its derivatives) for this sigma."""
    return int(truncate * float(sigma) + 0.5)


def halo(settings: FeatureSettings) -> np.ndarray:
    """Voxels per axis a block needs around it so its features equal the whole array's.

    The structure tensor is the widest chain: derivatives at half the scale, then smoothing at
    the scale; the other features are one Gaussian pass of the scale per axis.
    """
    widest = np.zeros(3, dtype=int)
    for scale in settings.scales:
        sigmas = settings.sigmas(scale)
        chain = [radius(s / 2, settings.truncate) + radius(s, settings.truncate) for s in sigmas]
        single = [radius(s, settings.truncate) for s in sigmas]
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
    """Ascending float32 eigenvalues of symmetric 3x3 matrices given by their PAIRS entries.

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
    return [v.astype(np.float32) for v in (smallest, middle, largest)]


def scale_features(image: np.ndarray, settings: FeatureSettings, scale: float,
                   crop: Tuple[slice, ...]) -> List[np.ndarray]:
    """The eight features of one scale, each cut to `crop`."""
    sigma, res, truncate = settings.sigmas(scale), np.asarray(settings.resolution), settings.truncate
    derivs = gaussian_derivatives(image, sigma, ((0, 0, 0),) + FIRST + SECOND, truncate, crop)
    smooth = derivs.pop((0, 0, 0))
    grads = [derivs.pop(order) * np.float32(scale / res[axis]) for axis, order in enumerate(FIRST)]
    magnitude = np.sqrt(sum(g * g for g in grads))
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
    return [smooth, magnitude] + eigenvalues(tensor) + eigenvalues(hessian)


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
        start = 1 + index * FEATURES_PER_SCALE
        for offset, feature in enumerate(scale_features(volume, settings, scale, crop)):
            out[..., start + offset] = feature
    return out
