"""Connected-components tasks: label a box and store its faces, link faces, relabel a box.

Intermediate files live under LAYER/KEY/ccl/ (KEY: the mip's key), named by task index:

    params.json              the labeling's options and task grid (written by the faces step)
    faces/I.{x,y,z}{lo,hi}.npz   labels (and, for segmentations, values) on task I's shared faces
    summary/I.npz            task I's label count, face-touching labels with their voxel counts,
                             and a histogram of its interior component sizes
    links/I.npz              pairs of global labels task I linked with its lower neighbors
    labels.json              the numbering: dust threshold and component count (calc-labels)
    relabel.ltab             label table: face-touching global label -> final id (0: dust)
    starts.ltab              label table: task index -> its first final id

`image ccl clean` deletes the directory. Every file is written whole, so a task run twice
leaves the same files.
"""
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox, Vec
from taskqueue import queueable

from igneous_like import label_table
from igneous_like.ccl import (
    AXES,
    apply_lookup,
    direction_pairs,
    face,
    foreground,
    half_directions,
    label_components,
    label_counts,
    lead_axis,
    size_histogram,
    task_lookup,
    unique_pairs,
)
from igneous_like.grid import TaskBox
from igneous_like.layers import upload
from igneous_like.stage import Record, WorkDir

Number = Union[int, float]


@dataclass(frozen=True)
class CCLOptions(Record):
    """What defines a labeling: the volume, the task grid and how voxels connect; JSON in tasks."""
    offset: Tuple[int, int, int]  # the volume's voxel offset at the mip
    size: Tuple[int, int, int]  # the volume's size
    shape: Tuple[int, int, int]  # the task shape; tasks are laid from the offset
    connectivity: int = 6
    threshold_gte: Optional[Number] = None
    threshold_lte: Optional[Number] = None
    fill_missing: bool = False

    def __post_init__(self):
        for name in ("offset", "size", "shape"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))

    @property
    def thresholded(self) -> bool:
        return self.threshold_gte is not None or self.threshold_lte is not None

    @property
    def grid_size(self) -> Vec:
        return Vec(*[-(-s // t) for s, t in zip(self.size, self.shape)])

    @property
    def num_tasks(self) -> int:
        return int(np.prod(self.grid_size))

    @property
    def stride(self) -> int:
        """Global label = task index * stride + local label; no task has more labels than voxels."""
        return int(np.prod(self.shape))

    @property
    def bounds(self) -> Bbox:
        return Bbox(self.offset, Vec(*self.offset) + Vec(*self.size))

    def position(self, index: int) -> Vec:
        nx, ny, _ = self.grid_size
        return Vec(index % nx, (index // nx) % ny, index // (nx * ny))

    def index(self, position) -> int:
        nx, ny, _ = self.grid_size
        return int(position[0] + nx * (position[1] + ny * position[2]))

    def contains(self, position) -> bool:
        return all(0 <= p < n for p, n in zip(position, self.grid_size))

    def box(self, index: int) -> Bbox:
        start = Vec(*self.offset) + self.position(index) * Vec(*self.shape)
        return Bbox.intersection(Bbox(start, start + Vec(*self.shape)), self.bounds)

    def index_of(self, box: Bbox) -> int:
        return self.index((box.minpt - Vec(*self.offset)) // Vec(*self.shape))

    def indices_touching(self, box: Bbox) -> Iterator[int]:
        """Tasks whose boxes overlap `box`, in index order."""
        low = (box.minpt - Vec(*self.offset)) // Vec(*self.shape)
        high = (box.maxpt - 1 - Vec(*self.offset)) // Vec(*self.shape)
        for z in range(low.z, high.z + 1):
            for y in range(low.y, high.y + 1):
                for x in range(low.x, high.x + 1):
                    yield self.index((x, y, z))

    def shared_faces(self, index: int) -> List[Tuple[int, str]]:
        """(axis, side) of each face of the task that another task touches."""
        position, out = self.position(index), []
        for axis in range(3):
            if position[axis] > 0:
                out.append((axis, "lo"))
            if position[axis] < self.grid_size[axis] - 1:
                out.append((axis, "hi"))
        return out


def face_name(index: int, axis: int, side: str) -> str:
    return f"faces/{index}.{AXES[axis]}{side}.npz"


def summary_name(index: int) -> str:
    return f"summary/{index}.npz"


def links_name(index: int) -> str:
    return f"links/{index}.npz"


RELABEL_TABLE, STARTS_TABLE = "relabel.ltab", "starts.ltab"
PARAMS_FILE, LABELS_FILE = "params.json", "labels.json"


def get_faces(work: WorkDir, names: List[str]) -> Dict[str, Dict[str, np.ndarray]]:
    """Fetch several face files at once; a missing one names itself."""
    return dict(zip(names, work.gather_arrays(names, "faces tasks")))


def read_image(cv: CloudVolume, box: Bbox, mip: int) -> np.ndarray:
    return np.asarray(cv.image.download(box, mip))[..., 0]


def label_image(image: np.ndarray, opts: CCLOptions) -> Tuple[np.ndarray, int]:
    """cc3d labels 1..n of the image (or of its thresholded mask), and n."""
    return label_components(foreground(image, opts.threshold_gte, opts.threshold_lte), opts.connectivity)


@queueable
def CCLFacesTask(layer_path: str, mip: int, work: str, index: int, options: dict) -> None:
    """Label task `index`'s box; store its shared faces and what the global step needs of it."""
    opts = CCLOptions.from_json(options)
    cv = CloudVolume(layer_path, mip=mip, fill_missing=opts.fill_missing, progress=False)
    image = read_image(cv, opts.box(index), mip)
    labels, count = label_image(image, opts)
    work = WorkDir(work)
    on_faces = [np.zeros(0, labels.dtype)]
    for axis, side in opts.shared_faces(index):
        arrays = {"labels": face(labels, axis, side)}
        if not opts.thresholded:
            arrays["values"] = face(image, axis, side)
        work.put_arrays(face_name(index, axis, side), **arrays)
        on_faces.append(arrays["labels"].ravel())
    face_labels = np.unique(np.concatenate(on_faces))
    face_labels = face_labels[face_labels != 0].astype(np.uint64)
    counts = label_counts(labels, count)
    interior = np.ones(count + 1, dtype=bool)
    interior[0] = False
    interior[face_labels.astype(np.int64)] = False
    sizes, frequency = size_histogram(counts[interior])
    work.put_arrays(summary_name(index), num_labels=np.uint64(count), face_labels=face_labels,
               face_counts=counts[face_labels.astype(np.int64)], sizes=sizes, frequency=frequency)


@queueable
def CCLEquivalenceTask(work: str, index: int, options: dict) -> None:
    """Link task `index`'s low faces with the faces its lower neighbors stored."""
    opts = CCLOptions.from_json(options)
    position = opts.position(index)
    wanted = []  # (direction, neighbor index, own face file, neighbor face file)
    for direction in half_directions(opts.connectivity):
        neighbor = position + Vec(*direction)
        if opts.contains(neighbor):
            axis, other = lead_axis(direction), opts.index(neighbor)
            wanted.append((direction, other, face_name(index, axis, "lo"), face_name(other, axis, "hi")))
    work = WorkDir(work)
    faces = get_faces(work, sorted({name for w in wanted for name in w[2:]}))
    firsts, seconds = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)]
    for direction, other, own_name, other_name in wanted:
        own, theirs = faces[own_name], faces[other_name]
        a, b = direction_pairs(own["labels"], theirs["labels"], direction, opts.connectivity,
                               own.get("values"), theirs.get("values"))
        firsts.append(a + np.uint64(index * opts.stride))
        seconds.append(b + np.uint64(other * opts.stride))
    first, second = unique_pairs(np.concatenate(firsts), np.concatenate(seconds))
    work.put_arrays(links_name(index), first=first, second=second)


@queueable
def CCLRelabelTask(src_path: str, dest_path: str, mip: int, offset: List[int], shape: List[int], work: str,
                   options: dict, dust: int, compress: Union[str, bool, None] = None) -> None:
    """Write the final labels of one destination box (whole chunks) from the tasks overlapping it."""
    opts = CCLOptions.from_json(options)
    box = TaskBox.at(offset, shape).write
    src = CloudVolume(src_path, mip=mip, fill_missing=opts.fill_missing, progress=False)
    dest = CloudVolume(dest_path, mip=mip, compress=compress, progress=False)
    dtype = np.dtype(dest.dtype)
    relabel = label_table.Table(f"{work}/{RELABEL_TABLE}")
    indices = list(opts.indices_touching(box))
    first_ids = label_table.Table(f"{work}/{STARTS_TABLE}").lookup(indices)
    out = None
    for index, first_id in zip(indices, first_ids):
        task_box = opts.box(index)
        labels, count = label_image(read_image(src, task_box, mip), opts)
        base = index * opts.stride
        keys, finals = relabel.range(base + 1, base + opts.stride + 1)
        lookup = task_lookup(label_counts(labels, count), keys - np.uint64(base), finals, int(first_id),
                             dust, dtype)
        labels = apply_lookup(labels, lookup)
        part = Bbox.intersection(task_box, box)
        inside = (part - task_box.minpt).to_slices()
        if part == box:  # the whole box lies in this task: no copy
            out = labels[inside]
            break
        if out is None:
            out = np.zeros(tuple(box.size3()), dtype=dtype, order="F")
        out[(part - box.minpt).to_slices()] = labels[inside]
    upload(dest, out, box.minpt, mip)
