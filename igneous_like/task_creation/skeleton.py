"""Create skeleton tasks: forge fragments on a task grid, then merge them per label (unsharded
or sharded); clean the fragments away; export skeletons as SWC.

Forge writes the skeleton info and the run's grid; merge creation reads every task's index,
joins components across seams (igneous_like.skeletons.join_pieces), drops whole-volume
components of dust_threshold voxels or fewer, names each object (its segment label, or 1..N
in grid order for a thresholded image), and writes one manifest per merge task.
"""
import json
import posixpath
import re
from collections import defaultdict
from dataclasses import fields, replace
from functools import partial
from typing import Iterable, List, Optional, Sequence

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import (
    ShardingSpecification,
    compute_shard_params_for_hashed,
)
from cloudvolume.lib import Bbox, Vec

from igneous_like.errors import UserError
from igneous_like.skeletons import join_pieces, to_swc, vertex_attributes
from igneous_like.stage import WorkDir
from igneous_like.task_creation.common import (
    Grid,
    Tasks,
    check_vec,
    csv,
    graphene_only,
    ints,
    layer_path,
    open_layer,
    record_provenance,
)
from igneous_like.tasks.skeleton import (
    DEFAULT_CONTEXT,
    FORGE_FILE,
    FRAGMENTS,
    ForgeOptions,
    ForgeRun,
    SkeletonMergeTask,
    SkeletonTask,
    skeleton_dir,
)

DEFAULT_TEASAR = {  # Igneous's CLI defaults
    "scale": 4, "const": 10, "pdrf_scale": 100000, "pdrf_exponent": 4,
    "soma_detection_threshold": 1100, "soma_acceptance_threshold": 3500,
    "soma_invalidation_scale": 1.0, "soma_invalidation_const": 300, "max_paths": None,
}
SHARD_ENCODINGS = ("gzip", "raw")


def check_teasar(params: dict) -> dict:
    unknown = set(params) - set(DEFAULT_TEASAR)
    if unknown:
        raise UserError(f"unknown TEASAR parameters {', '.join(sorted(unknown))}; "
                        f"use {', '.join(DEFAULT_TEASAR)}")
    params = {**DEFAULT_TEASAR, **params}
    for name, value in params.items():
        if name == "max_paths":
            if value is not None and (int(value) != value or value < 1):
                raise UserError(f"max_paths must be a whole number of at least 1, got {value}")
        elif not np.isfinite(value) or value < 0:
            raise UserError(f"TEASAR parameter {name} must be a number >= 0, got {value}")
    if params["pdrf_exponent"] < 1 or int(params["pdrf_exponent"]) != params["pdrf_exponent"]:
        raise UserError(f"pdrf_exponent must be a whole number of at least 1, got {params['pdrf_exponent']}")
    return {k: (None if v is None else (int(v) if k in ("max_paths", "pdrf_exponent") else float(v)))
            for k, v in params.items()}


def check_forge_layer(cv: CloudVolume, options: ForgeOptions) -> None:
    if cv.num_channels != 1:
        raise UserError(f"{cv.cloudpath} has {cv.num_channels} channels; skeletons need one")
    if options.thresholded:
        if options.object_ids is not None:
            raise UserError("--labels picks segment ids, and a thresholded image has none; "
                            "give either --labels or --threshold-gte/--threshold-lte")
        low, high = options.threshold_gte, options.threshold_lte
        if low is not None and high is not None and low > high:
            raise UserError(f"--threshold-gte {low} is above --threshold-lte {high}: "
                            "nothing would be foreground")
        return
    if cv.layer_type != "segmentation" or np.dtype(cv.dtype).kind not in "iu":
        raise UserError(f"{cv.cloudpath} holds {cv.layer_type} data of type {cv.dtype}; skeletonize a "
                        "segmentation, or binarize this image with --threshold-gte/--threshold-lte")


def within_volume(cv: CloudVolume, mip: int, context: float, window: int) -> float:
    """The context cut to the volume's extent (reading more reads nothing more, and 10^308 nm
    overflowed every coordinate), after refusing a cross-section smoothing window longer than any
    path in the volume (10^9 vertices allocated 22 GB)."""
    size = cv.meta.volume_size(mip)
    if window > max(size):
        raise UserError(f"--cross-section {window} is longer than any path in the volume ({csv(size)} "
                        f"voxels at mip {mip}); use a window of at most {max(size)} vertices")
    return min(context, float(max(size * cv.meta.resolution(mip))))


def create_skeletonizing_tasks(
    cloudpath: str, mip: int = 0, shape: Sequence[int] = (512, 512, 512),
    teasar_params: Optional[dict] = None, info: Optional[dict] = None,
    object_ids: Optional[Sequence[int]] = None, mask_ids: Optional[Sequence[int]] = None,
    fix_branching: bool = True, fix_borders: bool = False, fix_avocados: bool = False,
    fill_holes: int = 0, dust_threshold: int = 1000, progress: bool = False, parallel: int = 1,
    fill_missing: bool = False, sharded: bool = False, frag_path: Optional[str] = None,
    spatial_index: bool = True, synapses=None, num_synapses: Optional[int] = None,
    dust_global: bool = False, fix_autapses: bool = False, cross_sectional_area: bool = False,
    cross_sectional_area_smoothing_window: int = 5, timestamp: Optional[int] = None,
    root_ids_cloudpath: Optional[str] = None, cross_sectional_area_repair_sec_per_label: int = 0,
    threshold_gte: Optional[float] = None, threshold_lte: Optional[float] = None,
    context: float = DEFAULT_CONTEXT,
) -> Tasks:
    """Tasks that skeletonize a segmentation (or a thresholded image) box by box with kimimaro.

    Igneous's keywords; those for features igneous_like lacks (info, mask_ids, frag_path, synapses,
    fix_autapses, graphene's timestamp and root ids) are refused when used. progress, parallel and the
    cross-section repair time change nothing here; dust is always whole-volume (Igneous's
    dust_global=True). Neighbouring tasks share one voxel plane; each reads `context` nm more around it so
    skeletons near the seams match an unchunked run (0: Igneous's plain one-voxel overlap). fix_borders is
    off by default: it sends TEASAR to the middle of each contact of an object with the faces of the box a
    task reads, and those contacts depend on the box (on real EM, 64x64x32 tasks agree with one task
    within 5% for 89% of the objects with it, 100% without). dust_threshold (voxels) applies to whole-
    volume connected components. spatial_index: each task also writes the voxel boxes of the labels in its
    box (CloudVolume's `cv.skeleton.spatial_index`); not for a thresholded image, whose objects get their
    numbers only when merged. `sharded` only says which merge the fragments are meant for: they are the
    same either way. Unsharded, a task that covers the whole volume also writes each label's skeleton,
    as Igneous's does, so they read without a merge (a merge rewrites them postprocessed).
    """
    unsupported = {"info": info, "mask_ids": mask_ids, "frag_path": frag_path, "synapses": synapses,
                   "num_synapses": num_synapses, "fix_autapses": fix_autapses or None,
                   "root_ids_cloudpath": root_ids_cloudpath}
    given = [name for name, value in unsupported.items() if value is not None]
    if given:
        raise UserError(f"{', '.join(given)}: not supported by igneous_like's skeletonizer; leave them unset")
    graphene_only(False, timestamp)
    cv = open_layer(cloudpath, mip)
    if fill_holes not in (0, 1, False, True):
        raise UserError(f"--fill-holes {fill_holes}: 0 (off) and 1 (kimimaro's hole filling) are supported")
    if dust_threshold < 0 or context < 0 or cross_sectional_area_smoothing_window < 1:
        raise UserError("dust threshold and context must be >= 0 and the cross-section smoothing window >= 1")
    window = cross_sectional_area_smoothing_window if cross_sectional_area else 1
    context = within_volume(cv, mip, context, window)
    options = ForgeOptions(
        teasar_params=check_teasar(teasar_params or {}), dust_threshold=int(dust_threshold),
        fix_branching=bool(fix_branching), fix_borders=bool(fix_borders), fix_avocados=bool(fix_avocados),
        fill_holes=bool(fill_holes), object_ids=None if object_ids is None else tuple(object_ids),
        cross_section=int(cross_sectional_area_smoothing_window) if cross_sectional_area else 0,
        threshold_gte=threshold_gte, threshold_lte=threshold_lte, fill_missing=bool(fill_missing),
        context=float(context))
    check_forge_layer(cv, options)
    shape = check_vec("--shape", shape)
    if spatial_index and not options.thresholded:
        options = replace(options, index_chunk=tuple(ints(shape)))
    attributes = vertex_attributes(bool(options.cross_section))
    teasar = options.teasar_params
    volume = cv.meta.bounds(mip)
    run = ForgeRun(mip=mip, shape=tuple(ints(shape)), anchor=tuple(ints(cv.meta.voxel_offset(mip))),
                   bounds=(tuple(ints(volume.minpt)), tuple(ints(volume.maxpt))),
                   thresholded=options.thresholded, dust_threshold=options.dust_threshold,
                   scale=teasar["scale"], const=teasar["const"],
                   soma_accept=teasar["soma_acceptance_threshold"],
                   soma_scale=teasar["soma_invalidation_scale"], soma_const=teasar["soma_invalidation_const"])
    grid = forge_grid(run)
    if len(grid) == 1 and not sharded and not options.thresholded:
        options = replace(options, whole_volume=True)
    write_forge_info(cv, mip, attributes, run, options.index_chunk)
    record_provenance(cv, {"task": "SkeletonTask", "mip": mip, "shape": ints(shape), "sharded": bool(sharded),
                           **options.to_json()})
    make = lambda box: partial(SkeletonTask, layer_path=cv.cloudpath, mip=mip, offset=ints(box.minpt),
                               shape=ints(box.size3()), options=options.to_json(), attributes=attributes)
    return Tasks(grid, make, f"skeletonize {cv.cloudpath} mip {mip}")


def forge_grid(run: ForgeRun) -> Grid:
    volume = Bbox(run.bounds[0], run.bounds[1])
    anchor = check_vec("anchor", run.anchor, minimum=-2**62)
    return Grid(volume, check_vec("shape", run.shape), anchor, volume)


def write_forge_info(cv: CloudVolume, mip: int, attributes: List[dict], run: ForgeRun,
                     index_chunk: Optional[Sequence[int]]) -> None:
    """Point the layer at its skeleton directory and describe the skeletons, their spatial index
    (blocks of `index_chunk` voxels, if any) and this run there."""
    if not cv.info.get("skeletons"):
        cv.info["skeletons"] = f"skeletons_mip_{mip}"
        cv.commit_info()
    work = WorkDir(skeleton_dir(cv))
    info = {
        "@type": "neuroglancer_skeletons",
        "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
        "vertex_attributes": attributes,
        "mip": int(mip),
    }
    if index_chunk is not None:
        resolution = cv.meta.resolution(mip)
        info["spatial_index"] = {"resolution": resolution.tolist(),
                                 "chunk_size": (Vec(*index_chunk) * resolution).tolist()}
    work.save("info", info)
    work.save(FORGE_FILE, run)


def read_forge(layer_path: str):
    """The layer, its skeleton directory and the forge run recorded there."""
    cv = open_layer(layer_path)
    work = WorkDir(skeleton_dir(cv)) if cv.info.get("skeletons") else None
    forge = None if work is None else work.load(FORGE_FILE)
    if forge is None:
        raise UserError(f"no skeleton fragments in {cv.cloudpath}: run igneous-like skeleton forge first "
                        "(or they were removed by skeleton clean)")
    if set(forge) != {f.name for f in fields(ForgeRun)}:
        raise UserError(f"the skeleton fragments in {cv.cloudpath} were forged by another version of "
                        "igneous-like; run igneous-like skeleton forge again")
    return cv, work, ForgeRun.from_json(forge)


def gather_objects(work: WorkDir, run: ForgeRun) -> dict:
    """{label: [[box, key, component], ...]}: every object above the dust threshold and its
    fragments, with the whole-volume connected component each belongs to."""
    names = [f"{FRAGMENTS}/{box.to_filename()}.index" for box in forge_grid(run)]
    indexes = map(json.loads, work.gather(names, "forge tasks", "run the forge queue until it is empty, "
                                                                "then merge"))
    pieces = [(index["box"], *piece) for index in indexes for piece in index["pieces"]]
    groups = join_pieces([piece[4] for piece in pieces])
    sizes = np.bincount(groups, weights=[piece[3] for piece in pieces]) if pieces else np.zeros(0)
    alive = [g for g in dict.fromkeys(groups.tolist()) if sizes[g] > run.dust_threshold]  # grid order
    names_of = {g: n + 1 for n, g in enumerate(alive)}
    objects = defaultdict(list)
    for (box, key, label, _, _, has_fragment), group in zip(pieces, groups.tolist()):
        if has_fragment and group in names_of:
            objects[names_of[group] if run.thresholded else label].append([box, key, group])
    return dict(sorted(objects.items()))


def write_manifests(work: WorkDir, batches: dict) -> None:
    work.files.put_jsons(((f"{FRAGMENTS}/merge/{name}", {"labels": [int(label) for label in objects],
                                                  "fragments": list(objects.values())})
                  for name, objects in batches.items()), compress="gzip", cache_control="no-cache")


def check_merge_thresholds(dust_threshold: float, tick_threshold: float, max_cable_length: Optional[float]):
    if dust_threshold < 0 or tick_threshold < 0 or (max_cable_length is not None and max_cable_length < 0):
        raise UserError("dust, tick and cable length thresholds are nm and must be >= 0")


def merge_tasks(cv: CloudVolume, names: Iterable[str], sharded: bool, description: str,
                **thresholds) -> Tasks:
    names = list(names)
    record_provenance(cv, {"task": "SkeletonMergeTask", "sharded": sharded, **thresholds})
    make = lambda name: partial(SkeletonMergeTask, layer_path=cv.cloudpath, manifest=name, sharded=sharded,
                                **thresholds)
    return Tasks(names, make, description)


def update_skeleton_info(work: WorkDir, sharding: Optional[dict]) -> None:
    info = work.load("info")
    info.pop("sharding", None)
    if sharding is not None:
        info["sharding"] = sharding
    work.save("info", info)


def create_unsharded_skeleton_merge_tasks(
    layer_path: str, crop: int = 0, magnitude: int = 3, dust_threshold: float = 4000,
    max_cable_length: Optional[float] = None, tick_threshold: float = 6000, delete_fragments: bool = False,
) -> Tasks:
    """Tasks that fuse each object's fragments and write one file per label; up to 10**magnitude
    tasks. dust_threshold and tick_threshold are nm of cable (see skeletons.postprocess).
    Igneous's keywords: fragments here are already cut where tasks meet, so only crop=0 is
    accepted, and they are deleted by `skeleton clean` once every merge task is done (a fragment
    file holds pieces that several merge tasks read), not by delete_fragments."""
    if crop != 0 or delete_fragments:
        raise UserError("crop and delete_fragments are not supported: fragments are cut where tasks meet, "
                        "and `igneous-like skeleton clean` deletes them after the merge")
    check_merge_thresholds(dust_threshold, tick_threshold, max_cable_length)
    if magnitude < 0:
        raise UserError(f"--magnitude must be at least 0, got {magnitude}")
    cv, work, run = read_forge(layer_path)
    objects = gather_objects(work, run)
    labels = list(objects)
    batches = {}
    parts = np.array_split(np.array(labels, dtype=np.uint64), max(min(10 ** magnitude, len(labels)), 1))
    for n, part in enumerate(p for p in parts if len(p)):
        batches[f"unsharded-{n}.json"] = {int(label): objects[int(label)] for label in part}
    write_manifests(work, batches)
    update_skeleton_info(work, None)
    return merge_tasks(cv, batches, False, f"merge {len(labels)} skeletons of {cv.cloudpath}",
                       dust_threshold=float(dust_threshold), tick_threshold=float(tick_threshold),
                       max_cable_length=None if max_cable_length is None else float(max_cable_length))


def create_sharded_skeleton_merge_tasks(
    layer_path: str, dust_threshold: float = 1000, tick_threshold: float = 0,
    shard_index_bytes: int = 2 ** 13, minishard_index_bytes: int = 2 ** 15, min_shards: int = 1,
    minishard_index_encoding: str = "gzip", data_encoding: str = "gzip",
    max_cable_length: Optional[float] = None, frag_path: Optional[str] = None, cache: Optional[bool] = False,
    spatial_index_db: Optional[str] = None, max_labels_per_shard: Optional[int] = None,
) -> Tasks:
    """Tasks that fuse each object's fragments into neuroglancer_uint64_sharded_v1 shards, one
    task per shard file. Igneous's keywords; frag_path and spatial_index_db (fragments or their
    index elsewhere) are refused, `cache` changes nothing here."""
    if frag_path is not None or spatial_index_db is not None:
        raise UserError("frag_path and spatial_index_db are not supported: fragments are read from the layer")
    check_merge_thresholds(dust_threshold, tick_threshold, max_cable_length)
    for name, encoding in (("--minishard-index-encoding", minishard_index_encoding),
                           ("--data-encoding", data_encoding)):
        if encoding not in SHARD_ENCODINGS:
            raise UserError(f"{name} {encoding!r}: choose {' or '.join(SHARD_ENCODINGS)}")
    if min(shard_index_bytes, minishard_index_bytes, min_shards) < 1 or (max_labels_per_shard or 1) < 1:
        raise UserError("index sizes, --min-shards and --max-labels-per-shard must be at least 1")
    cv, work, run = read_forge(layer_path)
    objects = gather_objects(work, run)
    if max_labels_per_shard is not None:
        min_shards = max(min_shards, int(np.ceil(len(objects) / max_labels_per_shard)))
    shard_bits, minishard_bits, preshift_bits = compute_shard_params_for_hashed(
        len(objects), shard_index_bytes=int(shard_index_bytes),
        minishard_index_bytes=int(minishard_index_bytes), min_shards=int(min_shards))
    spec = ShardingSpecification(
        type="neuroglancer_uint64_sharded_v1", preshift_bits=preshift_bits, hash="murmurhash3_x86_128",
        minishard_bits=minishard_bits, shard_bits=shard_bits,
        minishard_index_encoding=minishard_index_encoding, data_encoding=data_encoding)
    batches = defaultdict(dict)
    for label, parts in objects.items():
        batches[f"shard-{spec.compute_shard_location(label).shard_number}.json"][label] = parts
    write_manifests(work, batches)
    update_skeleton_info(work, spec.to_dict())
    return merge_tasks(cv, batches, True, f"merge {len(objects)} skeletons of {cv.cloudpath} into "
                       f"{len(batches)} shards", dust_threshold=float(dust_threshold),
                       tick_threshold=float(tick_threshold),
                       max_cable_length=None if max_cable_length is None else float(max_cable_length))


def delete_skeleton_fragments(layer_path: str) -> int:
    """Delete the forge fragments, indexes and merge manifests; returns how many files went."""
    _, work, _ = read_forge(layer_path)
    return work.clean(f"{FRAGMENTS}/")


LABEL_FILE = re.compile(r"^(\d+)(?:\.gz|\.br|\.zstd)?$")


def skeleton_labels(cv: CloudVolume) -> List[int]:
    """Every label with a finished skeleton, from the files themselves."""
    cf = CloudFiles(skeleton_dir(cv))
    if cv.skeleton.meta.info.get("sharding"):
        labels = set()
        for name in cf.list():
            if name.endswith(".shard") and "/" not in name:
                shard = posixpath.join(cv.info["skeletons"], name)
                labels.update(int(x) for x in cv.skeleton.reader.list_labels(shard))
        return sorted(labels)
    return sorted(int(m.group(1)) for m in map(LABEL_FILE.match, cf.list()) if m)


def export_swc(path: str, outdir: str, labels: Optional[Sequence[int]] = None, batch: int = 500) -> int:
    """Write LABEL.swc (coordinates in nm) for each skeleton, or for `labels`; returns the count."""
    cv = open_layer(path)
    if not cv.info.get("skeletons"):
        raise UserError(f"{cv.cloudpath} has no skeletons; run skeleton forge and merge first")
    available = skeleton_labels(cv)
    wanted = available if labels is None else sorted(set(int(label) for label in labels))
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise UserError(f"no skeleton for label{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(str, missing[:10]))} in {cv.cloudpath}")
    out = CloudFiles(layer_path(outdir))
    for start in range(0, len(wanted), batch):
        skeletons = cv.skeleton.get(wanted[start:start + batch])
        out.puts(((f"{skel.id}.swc", to_swc(skel, skel.id).encode()) for skel in skeletons),
                 compress=None, content_type="text/plain")
    return len(wanted)
