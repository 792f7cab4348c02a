"""What every task creator shares: opening layers, checking input, the task grid, provenance."""
import getpass
import json
import math
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.chunks import NEEDS_INSTALL
from cloudvolume.datasource.precomputed.sharding import compute_shard_params_for_hashed  # noqa: F401
from cloudvolume.exceptions import InfoUnavailableError
from cloudvolume.lib import Bbox, Vec

from igneous_like import __version__
from igneous_like.errors import LayerNotFoundError, UserError
from igneous_like.grid import Grid
from igneous_like.paths import check_info
from igneous_like.writable import check_writable

# compute_shard_params_for_hashed (shard, minishard and preshift bits for hashed object labels) is
# offered here, where Igneous's scripts import it from; mesh and annotation sharding use it.
MEMORY_TARGET = int(3.5e9)  # bytes a task may hold, as Igneous assumes by default

IMAGE_ENCODINGS = ("png", "jpeg", "jxl")
LABEL_ENCODINGS = ("compressed_segmentation", "compresso", "crackle")
ENCODINGS = ("raw",) + IMAGE_ENCODINGS + LABEL_ENCODINGS
PROTOCOLS = ("file", "s3", "gs", "mem", "http", "https", "matrix")
COMPRESSIONS = {"none": False, "gzip": "gzip", "br": "br"}


def layer_path(path: str) -> str:
    """A full cloud path: plain local paths become absolute file:// paths, unknown protocols fail."""
    if "://" not in path:
        return "file://" + os.path.abspath(path)
    protocol = path.split("://", 1)[0]
    if protocol not in PROTOCOLS:
        raise UserError(f"unsupported protocol {protocol}:// in {path}; use one of "
                        + ", ".join(p + "://" for p in PROTOCOLS))
    return path


def new_layer_path(src: str, dest: str, advice: str = "write into a new path",
                   what: str = "the source") -> str:
    """DEST as a full path, refused when it is the layer the job reads: it would overwrite its input."""
    path = layer_path(dest)
    if path.rstrip("/") == layer_path(src).rstrip("/"):
        raise UserError(f"the destination is {what}; {advice}")
    check_writable(path)
    return path


def open_layer(path: str, mip: Optional[int] = None, **kwargs) -> CloudVolume:
    """Open an existing layer, or say clearly that there is none at `path`."""
    cv = existing_layer(path, **kwargs)
    if cv is None:
        raise LayerNotFoundError(f"no Neuroglancer Precomputed layer at {layer_path(path)} (its info file "
                                 "is missing); check the path and protocol")
    if mip is not None:
        check_mip(cv, mip)
    return cv


def existing_layer(path: str, **kwargs) -> Optional[CloudVolume]:
    """The layer at `path`, None where there is no info file, or a UserError for one that is not a
    layer's (a file in the way, invalid JSON, missing scales, sizes CloudVolume cannot hold)."""
    path = layer_path(path)
    try:
        cv = CloudVolume(path, progress=False, **kwargs)
    except InfoUnavailableError:
        return None
    except NotADirectoryError as err:
        raise LayerNotFoundError(f"no Neuroglancer Precomputed layer at {path}: the path runs through a "
                                 "file, not a directory; check the path") from err
    except json.JSONDecodeError as err:
        raise LayerNotFoundError(f"the info file of {path} is not valid JSON ({err}); "
                                 "check the path, or repair or rewrite that info file") from err
    except (KeyError, IndexError, TypeError, ValueError) as err:  # CloudVolume parsing a malformed info
        from cloudfiles import CloudFiles
        problem = info_problem(CloudFiles(path).get_json("info")) or repr(err)
        raise LayerNotFoundError(bad_info(path, problem)) from err
    problem = info_problem(cv.info)
    if problem:
        raise LayerNotFoundError(bad_info(path, problem))
    check_info(cv.info, cv.cloudpath)
    return cv


def bad_info(path: str, problem: str) -> str:
    return f"the info file of {path} does not describe a Precomputed layer: {problem}; repair or rewrite it"


INT32 = (-2**31, 2**31 - 1)  # CloudVolume keeps voxel coordinates in 32 bits


def info_problem(info) -> Optional[str]:
    """What makes `info` unusable as a volume's info (None if nothing): the keys every volume
    needs, and every scale's geometry as three whole numbers within 32 bits."""
    if not isinstance(info, dict):
        return "it is not a JSON object"
    missing = [key for key in ("data_type", "num_channels", "scales") if key not in info]
    if missing:
        return f"it has no {', '.join(missing)}"
    if not isinstance(info["scales"], list) or not info["scales"]:
        return "its scales are not a list of one or more scales"
    for mip, scale in enumerate(info["scales"]):
        if not isinstance(scale, dict) or not isinstance(scale.get("key"), str):
            return f"scale {mip} has no key"
        chunks = scale.get("chunk_sizes")
        vectors = {"resolution": scale.get("resolution"), "size": scale.get("size"),
                   "voxel_offset": scale.get("voxel_offset"),
                   "chunk_sizes": chunks[0] if isinstance(chunks, list) and chunks else None}
        for name, vector in vectors.items():
            if not (isinstance(vector, list) and len(vector) == 3
                    and all(isinstance(v, (int, float)) and np.isfinite(v) for v in vector)):
                return f"scale {mip} has no {name} of three numbers"
        if min(vectors["size"] + vectors["chunk_sizes"] + vectors["resolution"]) <= 0:
            return f"scale {mip} has sizes or a resolution that are not positive"
        corners = np.add(vectors["voxel_offset"], [[0] * 3, vectors["size"]])
        if corners.min() < INT32[0] or corners.max() > INT32[1] or max(vectors["chunk_sizes"]) > INT32[1]:
            return f"scale {mip} reaches beyond 32-bit voxel coordinates"
    return None


def check_mip(cv: CloudVolume, mip: int) -> None:
    available = len(cv.info["scales"])
    if not 0 <= mip < available:
        raise UserError(f"mip {mip} does not exist in {cv.cloudpath}: it has mips 0 to {available - 1}")


def check_encoding(encoding: Optional[str], layer_type: str, dtype, num_channels: int = 1) -> None:
    """Reject encodings that cannot hold this kind of data before anything is written."""
    if encoding is None:
        return
    dtype = np.dtype(dtype)
    if encoding not in ENCODINGS:
        raise UserError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    if encoding in IMAGE_ENCODINGS and layer_type == "segmentation":
        raise UserError(f"--encoding {encoding} is lossy or image-only and would corrupt labels; "
                        f"use raw or one of {', '.join(LABEL_ENCODINGS)} for segmentation layers")
    if encoding in LABEL_ENCODINGS and layer_type != "segmentation":
        raise UserError(f"--encoding {encoding} is for segmentation layers, and this layer is "
                        f"{layer_type}; use raw, png or jpeg")
    if encoding in ("jpeg", "jxl") and (dtype != np.uint8 or num_channels not in (1, 3)):
        raise UserError(f"--encoding {encoding} needs uint8 data with 1 or 3 channels, not "
                        f"{dtype.name} with {num_channels}")
    if encoding in NEEDS_INSTALL:  # CloudVolume's record of the codecs it could not import
        extra = " 'igneous-like[jxl]' (or" if encoding == "jxl" else " ("
        raise UserError(f"--encoding {encoding} needs the {NEEDS_INSTALL[encoding]} package, which is not "
                        f"installed: pip install{extra} {NEEDS_INSTALL[encoding]})")
    if encoding == "png" and dtype not in (np.uint8, np.uint16):
        raise UserError(f"--encoding png needs uint8 or uint16 data, not {dtype.name}")
    if encoding == "compressed_segmentation" and dtype not in (np.uint32, np.uint64):
        raise UserError(f"--encoding compressed_segmentation needs uint32 or uint64 labels, not {dtype.name}")
    if encoding in ("compresso", "crackle") and dtype.kind not in "iu":
        raise UserError(f"--encoding {encoding} needs integer labels, not {dtype.name}")


def graphene_only(agglomerate: bool, timestamp: Optional[int]) -> None:
    """Igneous keywords for graphene (proofreading) sources: refused rather than ignored."""
    if agglomerate or timestamp is not None:
        raise UserError("agglomerate and timestamp read graphene (proofreading) layers, which igneous_like "
                        "does not support")


def check_value(name: str, value, dtype):
    """A value the layer's voxels can hold (a background color), as the Python number it is."""
    dtype = np.dtype(dtype)
    limits = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    if not (limits.min <= value <= limits.max) or (dtype.kind in "iu" and int(value) != value):
        raise UserError(f"{name} {value} does not fit this layer's {dtype.name} voxels "
                        f"({limits.min} to {limits.max})")
    return dtype.type(value).item()


def compression(name: Union[str, bool, None]):
    """Map none/gzip/br (or False/True) onto CloudVolume's compress setting; None (and Igneous's
    "auto") keeps its default."""
    if name is None or name == "auto" or isinstance(name, bool):
        return "gzip" if name is True else (None if name == "auto" else name)
    if name not in COMPRESSIONS:
        raise UserError(f"unknown compression {name!r}; choose one of {', '.join(COMPRESSIONS)}")
    return COMPRESSIONS[name]


def check_vec(name: str, value: Sequence[int], minimum: int = 1) -> Vec:
    """A 3-vector of integers, each at least `minimum`."""
    if value is None or len(value) != 3 or any(int(v) != v for v in value):
        raise UserError(f"{name} needs three integers X,Y,Z, got {value!r}")
    if any(v < minimum for v in value):
        raise UserError(f"{name} values must be at least {minimum}, got {csv(value)}")
    return Vec(*[int(v) for v in value])


def restrict_bounds(volume: Bbox, ranges: Sequence[Optional[Sequence[int]]]) -> Bbox:
    """Cut the volume down to the given per-axis (start, end) ranges, checking they fit inside."""
    bounds = volume.clone()
    for axis, (name, rng) in enumerate(zip("xyz", ranges)):
        if rng is None:
            continue
        start, end = int(rng[0]), int(rng[1])
        lo, hi = int(volume.minpt[axis]), int(volume.maxpt[axis])
        if start >= end:
            raise UserError(f"--{name}range {start},{end} is empty: the start must be below the end")
        if start < lo or end > hi:
            raise UserError(f"--{name}range {start},{end} lies outside the volume's {name} extent {lo},{hi}")
        bounds.minpt[axis], bounds.maxpt[axis] = start, end
    return bounds


@dataclass(frozen=True)
class Stage:
    """One call of a task creator as data (its name in igneous_like.task_creation and JSON keyword
    arguments), so that a job's later stages can be stored and made by whichever worker finishes
    the stage before: the tasks of a stage often read what the stage before wrote."""
    call: str
    kwargs: dict = field(default_factory=dict)
    name: str = ""  # for people, e.g. "links"

    def to_json(self) -> dict:
        return {"call": self.call, "kwargs": self.kwargs, "name": self.name}

    @classmethod
    def from_json(cls, data: dict) -> "Stage":
        return cls(data["call"], data.get("kwargs") or {}, data.get("name", ""))


class Task(partial):
    """A queueable task call that also runs in place, as Igneous's tasks do: `task.execute()`."""

    def execute(self):
        return self()


def runnable(task: partial) -> Task:
    return task if isinstance(task, Task) else Task(task.func, *task.args, **task.keywords)


@dataclass(frozen=True)
class Tasks:
    """A lazy, sized sequence of tasks: `make(item)` for each box of a grid (or other item, such as
    a merge manifest's name). `then`: stages that need these tasks' output, to be made and run
    once they are all done (the next pass of a pyramid, say); queues.run_locally and
    queues.enqueue follow them."""
    grid: Union[Grid, Sequence]
    make: Callable[..., partial]
    description: str
    mips: range = range(0)  # the mips these tasks write
    then: Tuple[Stage, ...] = ()

    def __len__(self) -> int:
        return len(self.grid)

    def __iter__(self):
        return (runnable(self.make(box)) for box in self.grid)


def no_tasks(description: str) -> Tasks:
    """Nothing to do (Igneous makes no tasks there either)."""
    return Tasks([], lambda item: item, description)


def csv(values) -> str:
    """Numbers as the CLI takes them (48,64,32), for messages."""
    return ",".join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in values)


def ints(values) -> list:
    """JSON-native integers from a Vec or numpy array."""
    return [int(v) for v in values]


def lcm_shape(*shapes: Sequence[int]) -> Vec:
    """The smallest shape that every given shape divides, per axis."""
    return Vec(*[math.lcm(*[int(s[axis]) for s in shapes]) for axis in range(3)])


def whole_chunks(cv: CloudVolume, mip: int, region: Bbox) -> Bbox:
    """`region` rounded out to whole chunks of `cv` at `mip` (within the volume)."""
    chunk = cv.meta.chunk_size(mip)
    return Bbox.clamp(region.expand_to_chunk_size(chunk, cv.meta.voxel_offset(mip)), cv.meta.bounds(mip))


def chunk_grid(out: CloudVolume, mip: int, shape: Sequence[int], region: Optional[Bbox] = None) -> Grid:
    """Boxes of `shape` rounded up to whole chunks of `out`, so no two tasks write one chunk; over
    `region` (default: the whole volume) rounded out to whole chunks."""
    chunk = out.meta.chunk_size(mip)
    bounds = out.meta.bounds(mip) if region is None else whole_chunks(out, mip, region)
    shape = check_vec("--shape", shape)
    shape = Vec(*[-(-s // c) * c for s, c in zip(shape, chunk)])
    return Grid(bounds, Vec(*np.minimum(shape, bounds.size3())), bounds.minpt, bounds)


def record_provenance(cv: CloudVolume, method: dict) -> None:
    """Append what was run, by whom and when, to the layer's provenance file."""
    cv.provenance.processing.append({
        "method": method,
        "by": f"igneous_like {__version__}",
        "hostname": socket.gethostname(),
        "user": getpass.getuser(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M %Z"),
    })
    cv.commit_provenance()


def read_yaml(path: str, what: str):
    """A local YAML or JSON file's data (JSON is YAML too), or one line saying why not."""
    import yaml
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise UserError(f"cannot read the {what} {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML or JSON: {err}".replace("\n", " ")) from None
