"""Create tasks on a layer's whole mesh or skeleton directory: transfer it into another layer (as
stored, or unsharded into sharded), delete it, or (re)build its spatial index; and copy a spatial
index into a database.

Transfer and delete split the files by label prefix (igneous_like.object_files), as Igneous does,
so no task lists the whole directory except the one for names with few leading digits.
"""
import os
import re
from dataclasses import dataclass
from functools import partial
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume

from igneous_like.errors import UserError
from igneous_like.object_files import prefixes
from igneous_like.paths import inside_layer
from igneous_like.task_creation.common import (
    Grid,
    Tasks,
    check_mip,
    check_vec,
    csv,
    existing_layer,
    ints,
    layer_path,
    open_layer,
    record_provenance,
)
from igneous_like.task_creation.mesh import (
    check_nlod,
    default_mesh_dir,
    format_info,
    hashed_sharding,
    open_segmentation,
)
from igneous_like.tasks.mesh import FORGE_RECORD, FRAGMENTS, shard_numbers
from igneous_like.tasks.objects import (
    MeshShardConversionTask,
    ObjectFilesDeleteTask,
    ObjectFilesTransferTask,
    SkeletonShardConversionTask,
    SpatialIndexTask,
)

COMPRESSIONS = ("gzip", "br", "zstd", None, False)
MAX_MAGNITUDE = 8


@dataclass(frozen=True)
class Kind:
    """Meshes or skeletons: the info key naming their directory, and what a transfer leaves behind
    (intermediates of forging; the info, which task creation writes)."""
    key: str
    what: str
    intermediates: Tuple[str, ...]
    made_by: str

    def directory(self, cv: CloudVolume, given: Optional[str]) -> str:
        """The directory's name inside the layer: `given`, else the one the info names."""
        name = given or cv.info.get(self.key)
        if not name:
            raise UserError(f"{cv.cloudpath} has no {self.what} (its info names no {self.key} directory); "
                            f"run `igneous-like {self.made_by} {cv.cloudpath}` first, or give --dir")
        return inside_layer(name, f"the {self.what} directory")


MESHES = Kind("mesh", "meshes", (FRAGMENTS, FORGE_RECORD, "info"), "mesh forge")
SKELETONS = Kind("skeletons", "skeletons", ("fragments/", "info"), "skeleton forge")


def check_magnitude(magnitude: int) -> None:
    if not 0 <= magnitude <= MAX_MAGNITUDE:
        raise UserError(f"--magnitude must be between 0 and {MAX_MAGNITUDE}, got {magnitude}")


def join(cv_or_path, name: str) -> str:
    """LAYER/NAME, for a CloudVolume or a layer's path."""
    path = getattr(cv_or_path, "cloudpath", cv_or_path)
    return path.rstrip("/") + "/" + name


def source_info(cv: CloudVolume, kind: Kind, name: str) -> dict:
    info = CloudFiles(join(cv, name)).get_json("info")
    if info is None:
        raise UserError(f"{join(cv, name)} has no info file: there are no {kind.what} to transfer; "
                        f"run `igneous-like {kind.made_by} {cv.cloudpath}` (and merge) first")
    return info


def unsharded_labels(cv: CloudVolume, name: str, pattern: str) -> np.ndarray:
    """The labels of an unsharded directory, from its file names."""
    found = (re.fullmatch(pattern, f) for f in CloudFiles(join(cv, name)).list())
    return np.unique(np.array([int(m.group(1)) for m in found if m], dtype=np.uint64))


def xfer_tasks(kind: Kind, src: str, dest: str, dest_dir: Optional[str], magnitude: int,
               convert=None) -> Tasks:
    """Copy the source's directory into `dest` (a layer; made from the source's info if missing).
    `convert(cv, name, info)`, if given, returns (destination info, shard tasks' parts) to write
    the unsharded source sharded."""
    check_magnitude(magnitude)
    cv = open_layer(src)
    src_dir = kind.directory(cv, None)
    info = source_info(cv, kind, src_dir)
    dest = layer_path(dest)
    dest_cv = existing_layer(dest)
    layer_info = dict(dest_cv.info) if dest_cv else {k: v for k, v in cv.info.items() if k not in (
        MESHES.key, SKELETONS.key)}
    dest_dir = inside_layer(dest_dir or layer_info.get(kind.key) or src_dir, f"the {kind.what} directory")
    src_url, dest_url = join(cv, src_dir), join(dest, dest_dir)
    if src_url == dest_url:
        raise UserError(f"{src_url} is both source and destination; give another DEST or --dir")
    converted = convert(cv, src_dir, info) if convert and not info.get("sharding") else None
    if dest_cv is None:
        dest_cv = CloudVolume(dest, info=layer_info, progress=False)
    if not dest_cv.info.get(kind.key):
        dest_cv.info[kind.key] = dest_dir
    dest_cv.commit_info()
    record_provenance(dest_cv, {"task": "ObjectFilesTransferTask", "src": src_url, "dest": dest_url,
                                "sharded": converted is not None})
    if converted is None:
        CloudFiles(dest_url).put_json("info", info)
        make = lambda prefix: partial(ObjectFilesTransferTask, src=src_url, dest=dest_url, prefix=prefix,
                                      magnitude=magnitude, exclude=list(kind.intermediates))
        return Tasks(prefixes(magnitude), make, f"copy the {kind.what} of {src_url} to {dest_url}")
    dest_info, shards, make_shard = converted
    CloudFiles(dest_url).put_json("info", dest_info)
    spatial = partial(ObjectFilesTransferTask, src=src_url, dest=dest_url, prefix="", magnitude=0,
                      exclude=list(kind.intermediates), suffix=".spatial")
    make = lambda part: spatial if part is None else make_shard(src_url, dest_url, part)
    return Tasks([None] + shards, make, f"write the {kind.what} of {src_url} into {len(shards)} shards "
                                        f"in {dest_url}")


def split_by_shard(spec, labels: np.ndarray) -> list:
    shards = shard_numbers(spec, labels)
    return [[int(label) for label in labels[shards == shard]] for shard in np.unique(shards)]


def create_xfer_meshes_tasks(src: str, dest: str, mesh_dir: Optional[str] = None, magnitude: int = 2,
                             sharded: bool = False, nlod: int = 0, mip: Optional[int] = None) -> Tasks:
    """Copy a layer's meshes (any format, byte for byte) into layer `dest`, into `mesh_dir` or the
    directory dest's info names (else the source's name), in 10**magnitude prefix tasks.

    sharded: write unsharded meshes as sharded multi-resolution ones instead (one task per
    shard): multi-resolution meshes as they are, legacy ones with `nlod` extra levels of detail,
    in voxels of `mip` (default: the mip the mesh info names). Sharded sources are copied.
    """
    check_nlod(nlod)

    def convert(cv: CloudVolume, name: str, info: dict):
        legacy = info.get("@type", "neuroglancer_legacy_mesh") == "neuroglancer_legacy_mesh"
        if nlod and not legacy:
            raise UserError(f"--nlod makes levels of detail of legacy meshes; the meshes of {cv.cloudpath} "
                            "are multi-resolution already and keep theirs: leave --nlod out")
        level = info.get("mip", 0) if mip is None else mip
        check_mip(cv, level)
        resolution = [float(r) for r in cv.meta.resolution(level)]
        labels = unsharded_labels(cv, name, r"(\d+):0" if legacy else r"(\d+)\.index")
        spec = hashed_sharding(len(labels))
        dest_info = {**(format_info(info, resolution, nlod, spec.to_dict()) if legacy else info),
                     "sharding": spec.to_dict()}
        make = lambda src_url, dest_url, part: partial(
            MeshShardConversionTask, src=src_url, dest=dest_url, labels=part, legacy=legacy, nlod=nlod,
            resolution=resolution)
        return dest_info, split_by_shard(spec, labels), make

    return xfer_tasks(MESHES, src, dest, mesh_dir, magnitude, convert if sharded else None)


def create_xfer_skeleton_tasks(src: str, dest: str, skel_dir: Optional[str] = None, magnitude: int = 2,
                               sharded: bool = False) -> Tasks:
    """Copy a layer's skeletons (unsharded or sharded, byte for byte) into layer `dest`, into
    `skel_dir` or the directory dest's info names (else the source's name), in 10**magnitude prefix
    tasks; sharded: write unsharded skeletons into shards instead (one task per shard)."""

    def convert(cv: CloudVolume, name: str, info: dict):
        labels = unsharded_labels(cv, name, r"(\d+)")
        spec = hashed_sharding(len(labels), data_encoding="gzip")
        make = lambda src_url, dest_url, part: partial(SkeletonShardConversionTask, src=src_url,
                                                       dest=dest_url, labels=part)
        return {**info, "sharding": spec.to_dict()}, split_by_shard(spec, labels), make

    return xfer_tasks(SKELETONS, src, dest, skel_dir, magnitude, convert if sharded else None)


def deletion_tasks(kind: Kind, path: str, magnitude: int, given: Optional[str]) -> Tasks:
    """Delete a whole mesh or skeleton directory in prefix tasks; the layer's info stops naming it."""
    check_magnitude(magnitude)
    cv = open_layer(path)
    name = kind.directory(cv, given)
    if cv.info.get(kind.key) == name:
        del cv.info[kind.key]
        cv.commit_info()
    url = join(cv, name)
    make = lambda prefix: partial(ObjectFilesDeleteTask, path=url, prefix=prefix, magnitude=magnitude)
    return Tasks(prefixes(magnitude), make, f"delete the {kind.what} in {url}")


def create_mesh_deletion_tasks(layer_path: str, magnitude: int = 3, mesh_dir: Optional[str] = None) -> Tasks:
    """Delete every file of a layer's mesh directory (or `mesh_dir`), in 10**magnitude tasks."""
    return deletion_tasks(MESHES, layer_path, magnitude, mesh_dir)


def create_skeleton_deletion_tasks(cloudpath: str, magnitude: int = 2,
                                   skel_dir: Optional[str] = None) -> Tasks:
    """Delete every file of a layer's skeleton directory (or `skel_dir`), in 10**magnitude tasks."""
    return deletion_tasks(SKELETONS, cloudpath, magnitude, skel_dir)


def spatial_index_tasks(kind: Kind, cloudpath: str, shape: Sequence[int], mip: int, fill_missing: bool,
                        compress: Union[str, bool, None], given: Optional[str], default_dir: str,
                        default_info: dict) -> Tasks:
    """One task per block of `shape` voxels at `mip`: each writes the block's spatial index file
    from the segmentation. Index files of an earlier grid are deleted first."""
    cv = open_segmentation(cloudpath, mip)
    shape = check_vec("--shape", shape)
    if compress not in COMPRESSIONS:
        raise UserError(f"compress={compress!r}: use one of gzip, br, zstd or None")
    name = inside_layer(given or cv.info.get(kind.key) or default_dir, f"the {kind.what} directory")
    url = join(cv, name)
    files = CloudFiles(url)
    info = files.get_json("info") or default_info
    resolution = cv.meta.resolution(mip)
    info.update({"mip": int(mip), "spatial_index": {"resolution": resolution.tolist(),
                                                   "chunk_size": (shape * resolution).tolist()}})
    if not cv.info.get(kind.key):
        cv.info[kind.key] = name
        cv.commit_info()
    files.put_json("info", info)
    files.delete([f for f in files.list() if re.fullmatch(r"[^/]*\.spatial", f)])
    record_provenance(cv, {"task": "SpatialIndexTask", "mip": mip, "shape": ints(shape), "dir": name})
    grid = Grid.over(cv.meta.bounds(mip), shape)
    make = lambda box: partial(SpatialIndexTask, layer_path=cv.cloudpath, directory=url, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), grid_shape=ints(shape),
                               fill_missing=bool(fill_missing), compress=compress or None)
    return Tasks(grid, make, f"index the {kind.what} of {cv.cloudpath} in blocks of {csv(shape)}")


def create_spatial_index_mesh_tasks(cloudpath: str, shape: Sequence[int] = (448, 448, 448), mip: int = 0,
                                    fill_missing: bool = False, compress: Union[str, bool, None] = "gzip",
                                    mesh_dir: Optional[str] = None) -> Tasks:
    """(Re)build the spatial index of a layer's meshes from its segmentation, so that
    `cv.mesh.spatial_index.query(bbox)` finds the labels in a box."""
    return spatial_index_tasks(MESHES, cloudpath, shape, mip, fill_missing, compress, mesh_dir,
                               default_mesh_dir(mip, 40), {"@type": "neuroglancer_legacy_mesh",
                                                           "chunk_size": ints(shape)})


def create_spatial_index_skeleton_tasks(cloudpath: str, shape: Sequence[int] = (448, 448, 448), mip: int = 0,
                                        fill_missing: bool = False, compress: Union[str, bool, None] = "gzip",
                                        skel_dir: Optional[str] = None) -> Tasks:
    """(Re)build the spatial index of a layer's skeletons from its segmentation, so that
    `cv.skeleton.spatial_index.query(bbox)` finds the labels in a box."""
    return spatial_index_tasks(SKELETONS, cloudpath, shape, mip, fill_missing, compress, skel_dir,
                               f"skeletons_mip_{mip}", {"@type": "neuroglancer_skeletons",
                                                        "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
                                                        "vertex_attributes": []})


def spatial_index_db(layer_path: str, database: str, kind: str = "mesh", progress: bool = False,
                     allow_missing: bool = False) -> str:
    """Copy the spatial index of a layer's meshes (or skeletons) into an sqlite (`sqlite://FILE`
    or a plain file name) or MySQL (`mysql://USER:PWD@HOST/DB`) database; returns its path."""
    cv = open_layer(layer_path)
    source = {"mesh": (MESHES, lambda: cv.mesh), "skeletons": (SKELETONS, lambda: cv.skeleton)}[kind]
    index = source[1]().spatial_index if cv.info.get(source[0].key) else None
    if index is None:
        raise UserError(f"the {source[0].what} of {cv.cloudpath} have no spatial index; run "
                        f"`igneous-like {'mesh' if kind == 'mesh' else 'skeleton'} spatial-index create "
                        f"{cv.cloudpath}` first")
    if "://" not in database or database.startswith("sqlite://"):
        database = database.removeprefix("sqlite://")
        if os.path.exists(database):
            raise UserError(f"{database} exists already; remove it or name a new database file")
        index.to_sqlite(database, allow_missing=allow_missing, progress=progress)
        return database
    try:
        index.to_sql(database, allow_missing=allow_missing, progress=progress)
    except ImportError as err:
        raise UserError(f"{database}: {err}; install the database's Python driver "
                        "(e.g. mysqlclient)") from None
    return database
