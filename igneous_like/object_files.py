"""Pure functions for a layer's mesh or skeleton directory as a whole: how its files are split
among prefix tasks (transfer, delete), and the label boxes of a spatial index file.

Files of labels start with the label's digits (`123:0`, `123:0:1`, `123.index`, `123`), so a task
per digit prefix of length `magnitude` spreads them evenly. Names with fewer leading digits than
that (small labels, shard files, info, spatial index files, subdirectories) go to one more task,
the one with the empty prefix, so every file has exactly one task.
"""
from itertools import product
from typing import Dict, List, Sequence

import cc3d
import fastremap
import numpy as np


def prefixes(magnitude: int) -> List[str]:
    """The tasks' prefixes: the empty one (the rest) and every digit string of `magnitude` digits."""
    if not magnitude:
        return [""]
    return [""] + ["".join(digits) for digits in product("0123456789", repeat=magnitude)]


def leading_digits(name: str) -> int:
    return len(name) - len(name.lstrip("0123456789"))


def in_group(name: str, prefix: str, magnitude: int) -> bool:
    """Whether the task of `prefix` handles `name`."""
    if prefix:
        return name.startswith(prefix)
    return magnitude == 0 or leading_digits(name) < magnitude


def label_boxes(labels: np.ndarray, origin: Sequence[int], resolution: Sequence[float]) -> Dict[str, list]:
    """{label: [x0, y0, z0, x1, y1, z1]}: each nonzero label's voxel bounding box in physical units,
    voxel i spanning [i, i+1) * resolution, for a block whose voxel (0,0,0) is global `origin`."""
    renumbered, mapping = fastremap.renumber(np.asarray(labels), in_place=False)
    boxes = cc3d.statistics(np.asfortranarray(renumbered), no_slice_conversion=True)["bounding_boxes"]
    origin, resolution = np.asarray(origin, np.float64), np.asarray(resolution, np.float64)
    found = {}
    for label, number in mapping.items():
        if label == 0:
            continue
        box = np.asarray(boxes[number], np.float64)
        low, high = origin + box[0::2], origin + box[1::2] + 1
        found[str(int(label))] = [float(v) for v in np.concatenate([low * resolution, high * resolution])]
    return found
