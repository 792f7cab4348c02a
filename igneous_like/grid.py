"""The task grid: boxes of one shape laid from an anchor. Task creation lays tasks on it; merge
tasks lay it again to find the files stage 1 wrote."""
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from cloudvolume.lib import Bbox, Vec


@dataclass(frozen=True)
class Grid:
    """Boxes of `shape` laid from `anchor`, those touching `region`, each clipped to `clip`.

    Lazy and sized, so millions of tasks can be counted and enqueued without a list.
    """
    region: Bbox
    shape: Vec
    anchor: Vec
    clip: Bbox

    def _index_range(self):
        lo = (self.region.minpt - self.anchor) // self.shape
        hi = -((self.anchor - self.region.maxpt) // self.shape)  # ceiling division
        return lo, hi

    def __len__(self) -> int:
        lo, hi = self._index_range()
        return int(np.prod(np.maximum(hi - lo, 0)))

    def __iter__(self) -> Iterator[Bbox]:
        lo, hi = self._index_range()
        for z in range(lo.z, hi.z):
            for y in range(lo.y, hi.y):
                for x in range(lo.x, hi.x):
                    start = self.anchor + Vec(x, y, z) * self.shape
                    box = Bbox.intersection(Bbox(start, start + self.shape), self.clip)
                    if not box.subvoxel():
                        yield box
