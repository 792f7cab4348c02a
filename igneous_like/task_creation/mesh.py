"""Create mesh tasks: forge blocks (stage 1), then merge labels into legacy, multi-resolution or
sharded meshes (stage 2), and remove intermediates (whole mesh directories: task_creation.objects).

Stage 2 first checks that every block of stage 1 finished and says which are missing. It then
reads only the label index of each block and splits the labels evenly across merge tasks
(equal label counts, or one task per shard); each task learns which blocks hold its labels.
"""
import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Optional, Sequence, Tuple

import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification
from cloudvolume.lib import Bbox

from igneous_like.errors import UserError
from igneous_like.meshes import MAX_FILL_LEVEL
from igneous_like.multires import MAX_LODS, QUANTIZATION_BITS
from igneous_like.stage import WorkDir
from igneous_like.task_creation.common import (
    Tasks,
    check_vec,
    compute_shard_params_for_hashed,
    csv,
    ints,
    open_layer,
    record_provenance,
    restrict_bounds,
)
from igneous_like.tasks.mesh import (
    FORGE_RECORD,
    FRAGMENTS,
    ForgeRecord,
    MeshMergeTask,
    MeshOptions,
    MeshShardTask,
    MeshTask,
    fragment_name,
    mesh_work,
    pack_bits,
    read_fragment_index,
    shard_numbers,
)

MESH_ENCODINGS = ("precomputed", "draco")
DEFAULT_SHAPE = (448, 448, 448)


def default_mesh_dir(mip: int, max_error: float) -> str:
    return f"mesh_mip_{mip}_err_{max_error:g}"


def open_segmentation(layer_path: str, mip: int) -> CloudVolume:
    cv = open_layer(layer_path, mip)
    if cv.layer_type != "segmentation":
        raise UserError(f"{cv.cloudpath} is a {cv.layer_type} layer; meshes need a segmentation layer")
    if np.dtype(cv.dtype).kind not in "iu":
        raise UserError(f"{cv.cloudpath} holds {cv.dtype} data; meshes need integer labels")
    return cv


def create_meshing_tasks(layer_path: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                         simplification: bool = True, max_simplification_error: float = 40.0,
                         mesh_dir: Optional[str] = None, cdn_cache: bool = False,
                         dust_threshold: Optional[int] = None, object_ids: Optional[Sequence[int]] = None,
                         progress: bool = False, fill_missing: bool = False, encoding: str = "precomputed",
                         spatial_index: bool = True, frag_path: Optional[str] = None, sharded: bool = False,
                         compress: Optional[str] = "gzip", closed_dataset_edges: bool = True,
                         dust_global: bool = False, fill_holes: int = 0, dry_run: bool = False,
                         exclude_object_ids: Sequence[int] = (), simplification_factor: int = 100,
                         bounds: Optional[Bbox] = None, ranges: Optional[Sequence] = None) -> Tasks:
    """Stage 1: one task per block of `shape` voxels at `mip`; each writes its label pieces.

    Igneous's keywords and defaults. `dust_threshold` drops labels with fewer voxels than that in
    a block (`dust_global`: in the whole volume, counted by the merge itself, so no voxel-count
    file is needed). `fill_holes` is a meshes.fill_holes level (0-103); `closed_dataset_edges`
    closes meshes where objects meet the volume's edge. The merge step always works from the
    forged pieces, so `sharded` (forging is the same), `compress`, `cdn_cache`, `progress` and
    `dry_run` change nothing; `frag_path` is refused (pieces live in the mesh directory).
    Extra: `simplification_factor` (triangle reduction target), and `bounds`, or per axis
    (start, end) `ranges` (None: the whole axis), to limit the region.
    """
    cv = open_segmentation(layer_path, mip)
    shape = check_vec("--shape", shape)
    if max_simplification_error < 0:
        raise UserError(f"--max-error must be at least 0 nm, got {max_simplification_error}")
    if encoding not in MESH_ENCODINGS:
        raise UserError(f"unknown mesh encoding {encoding!r}; choose one of {', '.join(MESH_ENCODINGS)}")
    dust_threshold = dust_threshold or 0
    if dust_threshold < 0:
        raise UserError(f"--dust-threshold must be at least 0 voxels, got {dust_threshold}")
    if not 0 <= fill_holes <= MAX_FILL_LEVEL:
        raise UserError(f"--fill-holes must be between 0 and {MAX_FILL_LEVEL}, got {fill_holes}")
    if object_ids is not None and len(exclude_object_ids):
        raise UserError("give either --labels or --exclude-labels, not both")
    if frag_path is not None:
        raise UserError("frag_path is not supported: forge pieces are kept in the mesh directory")
    options = MeshOptions(
        max_error=float(max_simplification_error),
        reduction_factor=int(simplification_factor) if simplification else 0,
        dust_threshold=int(dust_threshold), dust_global=bool(dust_global),
        labels=None if object_ids is None else tuple(int(x) for x in object_ids),
        exclude_labels=tuple(int(x) for x in exclude_object_ids), fill_missing=fill_missing,
        encoding=encoding, spatial_index=spatial_index, closed_edges=bool(closed_dataset_edges),
        fill_holes=int(fill_holes))
    mesh_dir = mesh_dir or cv.info.get("mesh") or default_mesh_dir(mip, max_simplification_error)
    bounds = cv.meta.bounds(mip) if bounds is None else bounds
    if ranges is not None:
        bounds = restrict_bounds(bounds, ranges)
    resolution = cv.meta.resolution(mip)
    record = ForgeRecord(mip=mip, resolution=tuple(resolution.tolist()),  # ints stay ints: index file names
                         bounds=tuple(ints(bounds.minpt) + ints(bounds.maxpt)),
                         anchor=tuple(ints(cv.meta.voxel_offset(mip))), shape=tuple(ints(shape)),
                         options=options.to_json())
    write_mesh_info(cv, mesh_dir, record)
    record_provenance(cv, {"task": "MeshTask", "mip": mip, "shape": ints(shape), "mesh_dir": mesh_dir,
                           **options.to_json()})
    make = lambda box: partial(MeshTask, layer_path=cv.cloudpath, mesh_dir=mesh_dir, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), options=options.to_json())
    grid = record.grid
    return Tasks(grid, make, f"forge meshes of {cv.cloudpath} into {mesh_dir} in blocks of {csv(shape)}")


def write_mesh_info(cv: CloudVolume, mesh_dir: str, record: ForgeRecord) -> None:
    """Point the layer at the mesh directory and describe it; stage 2 rewrites the format part."""
    work = mesh_work(cv.cloudpath, mesh_dir)
    work.save(FORGE_RECORD, record)
    info = {"@type": "neuroglancer_legacy_mesh", "mip": record.mip, "chunk_size": list(record.shape)}
    if record.mesh_options.spatial_index:
        info["spatial_index"] = {"resolution": list(record.resolution),
                                 "chunk_size": [s * r for s, r in zip(record.shape, record.resolution)]}
    work.save("info", info)
    if cv.info.get("mesh") != mesh_dir:
        cv.info["mesh"] = mesh_dir
        cv.commit_info()


def forged(layer_path: str, mesh_dir: Optional[str]) -> Tuple[CloudVolume, str, WorkDir, ForgeRecord]:
    """The layer, its mesh directory (name and files) and stage 1's record, checking that every
    block finished."""
    cv = open_layer(layer_path)
    mesh_dir = mesh_dir or cv.info.get("mesh")
    if not mesh_dir:
        raise UserError(f"{cv.cloudpath} has no meshes; run `igneous-like mesh forge {cv.cloudpath}` first")
    work = mesh_work(cv.cloudpath, mesh_dir)
    record = work.require(FORGE_RECORD, f"{work.url} has no {FORGE_RECORD}: its meshes were not forged by "
                                        f"igneous-like; run `igneous-like mesh forge {cv.cloudpath}` first",
                          ForgeRecord)
    work.check_complete([fragment_name(box) for box in record.grid], "forge blocks",
                        "run `igneous-like execute` on the forge queue until it is empty (or forge again), "
                        "then merge")
    return cv, mesh_dir, work, record


def label_blocks(work: WorkDir, record: ForgeRecord) -> Tuple[np.ndarray, np.ndarray]:
    """(labels, block indices): one pair per label piece, read from each block's index alone."""
    names = [fragment_name(box) for box in record.grid]
    cf = work.files
    with ThreadPoolExecutor(max_workers=16) as pool:
        indexes = list(pool.map(lambda name: read_fragment_index(cf, name).index()[:, 0], names))
    labels = np.concatenate([np.zeros(0, np.uint64)] + indexes)
    blocks = np.repeat(np.arange(len(names)), [len(index) for index in indexes])
    return labels, blocks


def group_blocks(groups: np.ndarray, blocks: np.ndarray, num_blocks: int, group_ids: np.ndarray):
    """For each group id, the packed set of blocks that hold one of its labels."""
    pairs = np.unique(np.stack([groups, blocks], axis=1), axis=0)
    starts = np.searchsorted(pairs[:, 0], group_ids)
    stops = np.searchsorted(pairs[:, 0], group_ids, side="right")
    return [pack_bits(pairs[a:b, 1], num_blocks) for a, b in zip(starts, stops)]


def check_nlod(nlod: int) -> None:
    if not 0 <= nlod < MAX_LODS:
        raise UserError(f"--nlod must be between 0 and {MAX_LODS - 1}, got {nlod}")


def create_mesh_manifest_tasks(layer_path: str, magnitude: int = 2, nlod: int = 0,
                               mesh_dir: Optional[str] = None) -> Tasks:
    """Stage 2, unsharded: up to 10**magnitude tasks with equal numbers of labels each.

    nlod 0 writes the legacy format (one fragment per label, welded across blocks); nlod N
    writes the multi-resolution format with N extra levels of detail.
    """
    if magnitude < 0:
        raise UserError("--magnitude must be at least 0")
    check_nlod(nlod)
    cv, mesh_dir, work, record = forged(layer_path, mesh_dir)
    labels, blocks = label_blocks(work, record)
    unique = np.unique(labels)
    count = max(1, min(10 ** magnitude, len(unique)))
    firsts = unique[np.linspace(0, len(unique), count, endpoint=False).astype(int)] if len(unique) else unique
    lasts = np.append(firsts[1:] - 1, np.iinfo(np.uint64).max) if len(unique) else unique
    groups = np.searchsorted(firsts, labels, side="right") - 1
    packed = group_blocks(groups, blocks, len(record.grid), np.arange(len(firsts)))
    write_format_info(work, record, nlod, sharding=None)
    record_provenance(cv, {"task": "MeshMergeTask", "mesh_dir": mesh_dir, "nlod": nlod,
                           "magnitude": magnitude})
    ranges = [(int(a), int(b)) for a, b in zip(firsts, lasts)]
    make = lambda i: partial(MeshMergeTask, layer_path=cv.cloudpath, mesh_dir=mesh_dir, blocks=packed[i],
                             label_range=list(ranges[i]), nlod=nlod)
    kind = "legacy" if nlod == 0 else f"multi-resolution ({nlod} extra levels of detail)"
    return Tasks(range(len(ranges)), make, f"merge {len(unique)} labels into {kind} meshes in {work.url}")


def create_sharded_multires_mesh_tasks(layer_path: str, nlod: int = 1, mesh_dir: Optional[str] = None,
                                       labels_per_shard: Optional[int] = None) -> Tasks:
    """Stage 2, sharded: one task per shard file, shard sizes chosen from the label count."""
    check_nlod(nlod)
    cv, mesh_dir, work, record = forged(layer_path, mesh_dir)
    labels, blocks = label_blocks(work, record)
    unique = np.unique(labels)
    min_shards = 1 if not labels_per_shard else math.ceil(len(unique) / labels_per_shard)
    spec = hashed_sharding(len(unique), min_shards)
    label_shards = shard_numbers(spec, unique)
    groups = label_shards[np.searchsorted(unique, labels)]
    shards = np.unique(label_shards)
    packed = group_blocks(groups, blocks, len(record.grid), shards)
    write_format_info(work, record, nlod, sharding=spec.to_dict())
    record_provenance(cv, {"task": "MeshShardTask", "mesh_dir": mesh_dir, "nlod": nlod})
    make = lambda i: partial(MeshShardTask, layer_path=cv.cloudpath, mesh_dir=mesh_dir, blocks=packed[i],
                             shard=int(shards[i]), nlod=nlod)
    return Tasks(range(len(shards)), make, f"merge {len(unique)} labels into {len(shards)} mesh shards "
                                        f"({nlod} extra levels of detail) in {work.url}")


def hashed_sharding(num_labels: int, min_shards: int = 1,
                    data_encoding: str = "raw") -> ShardingSpecification:
    """Shards sized for `num_labels` labels. Meshes need raw data: each fragment's data sits right
    before its manifest, found by offset."""
    shard_bits, minishard_bits, preshift_bits = compute_shard_params_for_hashed(
        num_labels=max(num_labels, 1), shard_index_bytes=2 ** 13, minishard_index_bytes=2 ** 15,
        min_shards=min_shards)
    return ShardingSpecification(
        "neuroglancer_uint64_sharded_v1", preshift_bits=preshift_bits, hash="murmurhash3_x86_128",
        minishard_bits=minishard_bits, shard_bits=shard_bits, minishard_index_encoding="gzip",
        data_encoding=data_encoding)


def format_info(info: dict, resolution: Sequence[float], nlod: int, sharding: Optional[dict]) -> dict:
    """A mesh directory's info rewritten for the legacy format (nlod 0, unsharded) or the
    multi-resolution one (in voxels of `resolution`), its other keys (spatial index, mip) kept."""
    info = {key: value for key, value in info.items()
            if key not in ("vertex_quantization_bits", "transform", "lod_scale_multiplier", "sharding")}
    if nlod == 0 and sharding is None:
        info["@type"] = "neuroglancer_legacy_mesh"
    else:
        res = resolution
        info.update({"@type": "neuroglancer_multilod_draco", "vertex_quantization_bits": QUANTIZATION_BITS,
                     "transform": [res[0], 0, 0, 0, 0, res[1], 0, 0, 0, 0, res[2], 0],
                     "lod_scale_multiplier": 1.0})
        if sharding:
            info["sharding"] = sharding
    return info


def write_format_info(work: WorkDir, record: ForgeRecord, nlod: int, sharding: Optional[dict]) -> None:
    work.save("info", format_info(work.load("info"), record.resolution, nlod, sharding))


def clean_mesh_intermediates(layer_path: str, mesh_dir: Optional[str] = None) -> int:
    """Delete stage 1's fragment files (keeping meshes, spatial index and forge record); returns count."""
    cv = open_layer(layer_path)
    return mesh_work(cv.cloudpath, mesh_dir or cv.info.get("mesh") or "mesh").clean(suffix=FRAGMENTS)
