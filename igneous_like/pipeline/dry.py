"""A pipeline's plan, made without running or writing anything: per stage, its tasks and the voxels
they read and write, where that can be known before the steps before it have run.

A stage can be made now when no stage that runs before it (earlier stages of its step, and every
stage of the steps it waits for) names a path it names: its input is then what storage holds now.
Its creator is called with every storage write kept aside (creators write info files, provenance
and records of their options, and may clear what an earlier run left): nothing is written.
Voxels are those of the stage's task boxes (each clipped to the volume), without the margins some
tasks read around their boxes, at the mip the stage reads; written voxels are those of each mip the
stage writes, in the layer whose info it would commit.
"""
import inspect
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
import orjson
from cloudfiles import CloudFiles

from igneous_like.errors import UserError
from igneous_like.grid import Grid
from igneous_like.pipeline import stages
from igneous_like.task_creation.common import Stage

WRITERS = ("puts", "delete", "touch", "moves", "transfer_to", "transfer_from")  # put* go through puts


@contextmanager
def writes_kept() -> Iterator[Dict[str, Optional[bytes]]]:
    """While open, CloudFiles writes nothing (CloudVolume writes its info and provenance through it
    too): yields what would have been written, full path -> content (None: deleted or moved)."""
    kept: Dict[str, Optional[bytes]] = {}

    def puts(self, files, **_):
        items = [files] if isinstance(files, (tuple, dict)) else files
        for item in items:
            name, content = (item["path"], item["content"]) if isinstance(item, dict) else item
            kept[self.join(self.cloudpath, name)] = content.encode() if isinstance(content, str) else content
        return len(kept)

    def elsewhere(self, paths=(), *args, **kwargs):
        for name in [paths] if isinstance(paths, (str, dict)) else paths:
            kept[self.join(self.cloudpath, str(name))] = None

    saved = {name: getattr(CloudFiles, name) for name in WRITERS}
    try:
        for name in WRITERS:
            setattr(CloudFiles, name, puts if name == "puts" else elsewhere)
        yield kept
    finally:
        for name, method in saved.items():
            setattr(CloudFiles, name, method)


@dataclass(frozen=True)
class Estimate:
    """What a stage made now would do."""
    tasks: int
    description: str
    read: Optional[Tuple[int, int]] = None  # (voxels, mip) its task boxes cover
    written: Dict[int, int] = field(default_factory=dict)  # mip -> voxels written
    then: Tuple[Stage, ...] = ()
    one_process: bool = False


@dataclass(frozen=True)
class Row:
    """One stage of the plan: its estimate, or what it waits for."""
    step: str
    index: int
    stage: Stage
    estimate: Optional[Estimate] = None
    waits: str = ""


def plan(steps: Sequence) -> List[Row]:
    """Every stage of `steps` (pipeline.Step, in order), estimated where it can be made now."""
    by_name, rows = {step.name: step for step in steps}, []
    for step in steps:
        before = set().union(*(named(stage) for name in upstream(step, by_name)
                               for stage in by_name[name].stages))
        for index, stage in enumerate(step.stages):
            waits = after_what(step, index)
            if stage.call in stages.ONE_PROCESS:
                one = Estimate(1, stage.name or stage.call, one_process=True)
                rows.append(Row(step.name, index, stage, one))
            elif named(stage) & before:
                rows.append(Row(step.name, index, stage, waits=f"made after {waits}"))
            else:
                rows.append(made_now(step.name, index, stage, waits))
            before |= named(stage)
    return rows


def after_what(step, index: int) -> str:
    """What a stage is made after: the stage before it, or the steps its step waits for ('' if none)."""
    if index:
        return f"stage {index}"
    if not step.after:
        return ""
    return f"step{'s' if len(step.after) > 1 else ''} {' and '.join(step.after)}"


def made_now(step: str, index: int, stage: Stage, waits: str) -> Row:
    """The stage's row with its estimate; a stage that runs after others and cannot be made now says
    what it waits for, a first stage that cannot be made is the user's error."""
    try:
        return Row(step, index, stage, estimate(stage))
    except (UserError, FileNotFoundError) as err:
        if waits:
            return Row(step, index, stage, waits=f"made after {waits} (now: {err})")
        raise UserError(f"step {step}: {err}") from None


def upstream(step, by_name: dict) -> Set[str]:
    """The names of the steps `step` waits for, directly or through others."""
    found, pending = set(), list(step.after)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending += list(by_name[name].after)
    return found


def named(stage: Stage) -> Set[str]:
    """The paths a stage's arguments name (layers, tables, models), as full URLs."""
    found = set()
    for value in stage.kwargs.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and ("://" in item or item.startswith("/")):
                found.add(("file://" + os.path.abspath(item) if "://" not in item else item).rstrip("/"))
    return found


def estimate(stage: Stage) -> Estimate:
    """Make the stage's tasks with every write kept aside; count them and their voxels."""
    with writes_kept() as kept:
        tasks = stages.create(stage)
    counted = Estimate(len(tasks), tasks.description, then=tuple(tasks.then))
    if not isinstance(tasks.grid, Grid) or len(tasks) == 0:
        return counted
    infos = layer_infos(stage, kept)
    frame = grid_frame(tasks.grid, infos, stage_mip(stage))
    if frame is None:
        return counted
    path, mip = frame
    region = cover(tasks.grid)
    scales, read_mip = infos[path]["scales"], stage_mip(stage)
    read_mip = read_mip if read_mip is not None and read_mip < len(scales) else mip
    read = (voxels_at(region, scales[mip], scales[read_mip]), read_mip)
    committed = [name for name in infos if f"{name}/info" in kept]
    written = {}
    if len(committed) == 1:
        out = infos[committed[0]]["scales"]
        written = {w: voxels_at(region, scales[mip], out[w]) for w in tasks.mips if w < len(out)}
    return Estimate(counted.tasks, counted.description, read, written, counted.then)


def stage_mip(stage: Stage) -> Optional[int]:
    """The mip a stage reads, as its creator takes it (given, or its default)."""
    try:
        bound = inspect.signature(stages.function(stage.call)).bind_partial(**stage.kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    mip = bound.arguments.get("mip")
    return mip if isinstance(mip, int) else None


def layer_infos(stage: Stage, kept: Dict[str, Optional[bytes]]) -> Dict[str, dict]:
    """The info of every layer the stage names: as it would have committed it, else as stored."""
    infos = {}
    for path in sorted(named(stage)):
        content = kept.get(f"{path}/info")
        try:
            info = orjson.loads(content) if content else CloudFiles(path).get_json("info")
        except (OSError, ValueError):  # not a layer: a table, a model
            info = None
        if isinstance(info, dict) and isinstance(info.get("scales"), list):
            infos[path] = info
    return infos


def bounds(scale: dict) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    low = tuple(int(v) for v in scale["voxel_offset"])
    return low, tuple(lo + int(size) for lo, size in zip(low, scale["size"]))


def grid_frame(grid: Grid, infos: Dict[str, dict], mip: Optional[int]) -> Optional[Tuple[str, int]]:
    """(layer, mip) whose volume the grid's boxes are clipped to: the voxels its boxes are in."""
    clip = (tuple(int(v) for v in grid.clip.minpt), tuple(int(v) for v in grid.clip.maxpt))
    found = [(path, index) for path, info in infos.items()
             for index, scale in enumerate(info["scales"]) if bounds(scale) == clip]
    return min(found, key=lambda frame: frame[1] != mip, default=None)


def cover(grid: Grid) -> Tuple[np.ndarray, np.ndarray]:
    """(low, high) corners of the union of the grid's boxes: they tile it, each clipped to the volume."""
    anchor, shape = np.array(grid.anchor, dtype=np.int64), np.array(grid.shape, dtype=np.int64)
    first = (np.array(grid.region.minpt) - anchor) // shape
    last = -((anchor - np.array(grid.region.maxpt)) // shape)
    low = np.maximum(anchor + first * shape, np.array(grid.clip.minpt))
    return low, np.minimum(anchor + last * shape, np.array(grid.clip.maxpt))


def voxels_at(region: Tuple[np.ndarray, np.ndarray], frame: dict, scale: dict) -> int:
    """Voxels of `scale` in `region` (corners in the voxels of scale `frame`), within its volume."""
    ratio = np.array(frame["resolution"], dtype=float) / np.array(scale["resolution"], dtype=float)
    low, high = bounds(scale)
    start = np.maximum(np.floor(region[0] * ratio), low)
    stop = np.minimum(np.ceil(region[1] * ratio), high)
    return int(np.prod(np.maximum(stop - start, 0)))

