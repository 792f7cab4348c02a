"""The task grid: boxes of one shape laid from an anchor. Task creation lays tasks on it; merge
tasks lay it again to find the files stage 1 wrote. A task's own box and the box it reads."""
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple, Union

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

    @classmethod
    def over(cls, volume: Bbox, shape: Sequence[int]) -> "Grid":
        """Boxes of `shape` laid from the volume's corner, cut to it: the grid of most steps."""
        return cls(volume, Vec(*shape), volume.minpt, volume)

    def to_json(self) -> dict:
        """The volume and shape of a grid `over` it, as a first step records them for the later ones."""
        return {"offset": [int(v) for v in self.region.minpt], "size": [int(v) for v in self.region.size3()],
                "shape": [int(v) for v in self.shape]}

    @classmethod
    def from_json(cls, data: dict) -> "Grid":
        """The grid of a record holding to_json's keys (it may hold others)."""
        return cls.over(Bbox(data["offset"], Vec(*data["offset"]) + Vec(*data["size"])), data["shape"])

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


@dataclass(frozen=True)
class TaskBox:
    """The box a task writes and the box it reads: the written box grown by margins (voxels below
    and above), cut to the volume. `reach` is the grown box before the cut."""
    write: Bbox
    read: Bbox
    reach: Bbox

    @classmethod
    def at(cls, offset: Sequence[int], shape: Sequence[int], volume: Optional[Bbox] = None,
           low: Union[int, Sequence[int]] = 0, high: Union[int, Sequence[int]] = 0) -> "TaskBox":
        """Margins are voxels, one number or one per axis; without a volume nothing is cut."""
        write = Bbox(offset, Vec(*offset) + Vec(*shape))
        reach = Bbox(write.minpt - np.asarray(low), write.maxpt + np.asarray(high))
        return cls(write, reach if volume is None else Bbox.intersection(reach, volume), reach)

    @property
    def own(self) -> Tuple[slice, ...]:
        """Where the written box lies in an array of the read box."""
        return (self.write - self.read.minpt).to_slices()

    @property
    def padding(self) -> List[Tuple[int, int]]:
        """Per axis, the voxels of the reach outside the volume (below, above): np.pad widths that
        turn an array of the read box into one of the reach."""
        return list(zip(self.read.minpt - self.reach.minpt, self.reach.maxpt - self.read.maxpt))
