"""A synthetic EM-like volume with planted synapses, their ground truth and sparse annotations.

Bright cytoplasm with a noisy texture, thin moderately dark membranes (zero-crossing sheets of
a smooth random field), and synapses: a dark plate-like cleft (a disk 30 nm thick, random
orientation with its normal at most about 20 degrees out of the xy plane, so that 40 nm
sections cut across it) with a cloud of small dark vesicles on one side. Blurred a little,
plus Gaussian noise. Everything is laid out in nm, so the anisotropic grid is honoured.
"""
from dataclasses import dataclass
from typing import List

import numpy as np
from scipy import ndimage

RESOLUTION = (8, 8, 40)
CYTOPLASM, MEMBRANE, CLEFT, VESICLE = 175.0, 120.0, 45.0, 85.0
UNLABELED = 128  # annotation value the classifier ignores


@dataclass
class Synapse:
    center: np.ndarray  # nm
    normal: np.ndarray
    radius: float  # nm
    vesicles: np.ndarray  # (n, 3) centers in nm


@dataclass
class Volume:
    image: np.ndarray  # uint8 (x, y, z)
    clefts: np.ndarray  # uint32, one id per planted cleft (0 elsewhere)
    vesicles: np.ndarray  # bool
    membranes: np.ndarray  # bool
    synapses: List[Synapse]


THICKNESS = 30.0  # nm
VESICLE_RADIUS = 22.0  # nm


def grid_nm(shape) -> List[np.ndarray]:
    """Voxel-centre coordinates in nm, broadcastable per axis."""
    return [((np.arange(n) + 0.5) * r).reshape([-1 if a == axis else 1 for a in range(3)])
            for axis, (n, r) in enumerate(zip(shape, RESOLUTION))]


def place_synapses(rng, shape, count: int, spacing: float = 480.0, vesicles: int = 18) -> List[Synapse]:
    """Synapses whose centres keep `spacing` nm apart and away from the borders."""
    extent = np.asarray(shape) * RESOLUTION
    margin = np.array([220.0, 220.0, 160.0])
    synapses: List[Synapse] = []
    for _ in range(count * 200):
        if len(synapses) == count:
            break
        center = rng.uniform(margin, extent - margin)
        if any(np.linalg.norm(center - s.center) < spacing for s in synapses):
            continue
        normal = np.array([*rng.normal(size=2), 0.0])
        normal[2] = rng.uniform(-0.35, 0.35) * np.linalg.norm(normal[:2])
        normal /= np.linalg.norm(normal)
        radius = rng.uniform(120, 180)
        synapses.append(Synapse(center, normal, radius, vesicle_cloud(rng, center, normal, radius, vesicles)))
    return synapses


def vesicle_cloud(rng, center, normal, radius, count: int = 18) -> np.ndarray:
    """Vesicle centres on the normal's side: 49-160 nm off the cleft, within its disk."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(normal, helper)
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    depth = rng.uniform(THICKNESS / 2 + VESICLE_RADIUS + 12, 160, count)
    angle, reach = rng.uniform(0, 2 * np.pi, count), radius * np.sqrt(rng.uniform(0, 0.8, count))
    return (center + depth[:, None] * normal + (reach * np.cos(angle))[:, None] * u
            + (reach * np.sin(angle))[:, None] * v)


def membranes(rng, shape, width: float = 0.6) -> np.ndarray:
    """Thin sheets: where a smooth random field crosses zero (about 2 * width voxels thick)."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(12, 12, 2.4))
    field /= field.std()
    grad = np.sqrt(sum(g * g for g in np.gradient(field)))
    return np.abs(field) < width * grad


def render(shape, synapses: List[Synapse], seed: int, membrane: float = MEMBRANE,
           width: float = 0.6) -> Volume:
    rng = np.random.default_rng(seed)
    x, y, z = grid_nm(shape)
    clefts = np.zeros(shape, dtype=np.uint32)
    vesicles = np.zeros(shape, dtype=bool)
    for label, syn in enumerate(synapses, start=1):
        dx, dy, dz = x - syn.center[0], y - syn.center[1], z - syn.center[2]
        height = dx * syn.normal[0] + dy * syn.normal[1] + dz * syn.normal[2]
        across = dx * dx + dy * dy + dz * dz - height * height
        clefts[(np.abs(height) <= THICKNESS / 2) & (across <= syn.radius ** 2)] = label
        for c in syn.vesicles:
            vesicles |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= VESICLE_RADIUS ** 2
    sheets = membranes(rng, shape, width)
    texture = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(2, 2, 0.5)) * 25
    image = CYTOPLASM + texture
    image[sheets] = membrane
    image[vesicles] = VESICLE
    image[clefts > 0] = CLEFT
    image = ndimage.gaussian_filter(image, sigma=(0.8, 0.8, 0.2)) + rng.normal(0, 12, shape)
    return Volume(np.clip(np.rint(image), 0, 255).astype(np.uint8), clefts, vesicles, sheets & ~vesicles,
                  synapses)


def make_volume(shape=(160, 128, 80), count: int = 16, seed: int = 0, hard: bool = False) -> Volume:
    """hard: membranes as dark and about as thick as clefts, so that a cleft's context (its
    denser vesicle cloud on one side, its orientation, its limited extent) tells it apart, as in real EM."""
    rng = np.random.default_rng(seed)
    synapses = place_synapses(rng, shape, count, vesicles=40 if hard else 18)
    return render(shape, synapses, seed + 1, CLEFT + 40, 0.8) if hard else render(shape, synapses, seed + 1)


def annotate(volume: Volume, region: tuple, fraction: float = 0.6, seed: int = 0) -> np.ndarray:
    """Sparse annotations of `region` (a tuple of slices): 255 on a share of its clefts, 0 on
    background scribbles (lines in random sections), on the vesicles of the annotated synapses
    and on membrane patches; UNLABELED elsewhere."""
    rng = np.random.default_rng(seed)
    clefts = volume.clefts[region]
    out = np.full(clefts.shape, UNLABELED, dtype=np.uint8)
    inside = np.unique(clefts[clefts > 0])
    chosen = rng.choice(inside, max(1, int(round(fraction * inside.size))), replace=False)
    near_cleft = ndimage.binary_dilation(clefts > 0, iterations=2)
    negative = np.zeros(clefts.shape, dtype=bool)
    for _ in range(60):
        start, stop = rng.uniform(0, clefts.shape[:2], (2, 2))
        steps = np.linspace(0, 1, 200)[:, None]
        points = np.rint(start + steps * (stop - start)).astype(int)
        points = np.clip(points, 0, np.array(clefts.shape[:2]) - 1)
        negative[points[:, 0], points[:, 1], rng.integers(clefts.shape[2])] = True
    for _ in range(12):
        corner = rng.integers(0, np.array(clefts.shape) - 12)
        box = tuple(slice(c, c + s) for c, s in zip(corner, (12, 12, 4)))
        negative[box] |= volume.membranes[region][box]
    annotated = np.isin(clefts, chosen)
    cloud = ndimage.binary_dilation(annotated, iterations=30) & volume.vesicles[region]
    negative |= cloud
    out[negative & ~near_cleft] = 0
    out[annotated] = 255
    return out


def object_f1(found: np.ndarray, truth: np.ndarray) -> float:
    """F1 of objects matched one to one, greedily by the number of voxels they share."""
    both = (found > 0) & (truth > 0)
    pairs, shared = np.unique(np.stack([found[both], truth[both]]), axis=1, return_counts=True)
    used_found, used_truth = set(), set()
    for index in np.argsort(-shared, kind="stable"):
        f, t = pairs[:, index]
        if f not in used_found and t not in used_truth:
            used_found.add(f)
            used_truth.add(t)
    found_count, truth_count = len(np.unique(found[found > 0])), len(np.unique(truth[truth > 0]))
    return 2 * len(used_truth) / (found_count + truth_count)


def supervoxels(image: np.ndarray, step=(10, 10, 2), boundary=None) -> np.ndarray:
    """An oversegmentation: watershed of the lightly smoothed image from a regular grid of seeds
    (`step` voxels apart), as supervoxel pooling expects; voxels of `boundary` (a mask) get 0."""
    from skimage.segmentation import watershed
    smooth = ndimage.gaussian_filter(image.astype(np.float32), (1, 1, 0.25))
    seeds = np.zeros(image.shape, np.int32)
    grid = tuple(slice(s // 2, None, s) for s in step)
    seeds[grid] = np.arange(1, seeds[grid].size + 1).reshape(seeds[grid].shape)
    out = watershed(smooth, seeds).astype(np.uint32)
    if boundary is not None:
        out[boundary] = 0
    return out
