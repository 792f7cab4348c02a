"""Agglomeration of fragments over a region adjacency graph, in steps that workers share.

1. graph (create_region_graph_tasks): each task stores its box's region graph with exactly
   mergeable boundary statistics (igneous_like.region_graph).
2. merge (agglomerate_fragments, run here): the parts are summed exactly and regions merge in
   priority order (igneous_like.agglomeration); writes FRAG/KEY/agglomeration/mapping.ltab.
   train (train_merge_model) fits the learned policy from the same graph and ground truth.
3. relabel (create_agglomeration_relabel_tasks): each task writes a box of the segmentation.

create_watershed_tasks makes fragments from a boundary map for those who have none.
"""
import logging
from dataclasses import fields
from functools import partial
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.lib import Vec

from igneous_like import label_table
from igneous_like.active_learning import learn
from igneous_like.agglomeration import Policy, agglomerate, custom_policy, make_policy
from igneous_like.errors import UserError
from igneous_like.merge_model import FAMILIES, MergeModel
from igneous_like.region_graph import RegionGraph, merge_graphs
from igneous_like.segment_properties import write_properties
from igneous_like.stage import WorkDir, merged_as_they_come
from igneous_like.task_creation.ccl import default_encoding, segmentation_info
from igneous_like.task_creation.common import (
    Grid,
    Tasks,
    check_encoding,
    check_vec,
    chunk_grid,
    compression,
    csv,
    ints,
    layer_path,
    new_layer_path,
    open_layer,
    record_provenance,
)
from igneous_like.task_creation.image import open_destination
from igneous_like.tasks.agglomerate import (
    MAPPING_TABLE,
    MERGE_FILE,
    PARAMS_FILE,
    AgglomerationRelabelTask,
    RegionGraphTask,
    WatershedTask,
    graph_name,
)

log = logging.getLogger(__name__)

DEFAULT_SHAPE = (256, 256, 256)
MAX_CHANNELS = 255  # region_graph keeps a histogram row's channel as uint8


def work_dir(cv: CloudVolume, mip: int) -> WorkDir:
    """Where the graph and mapping of a fragments layer's mip live."""
    return WorkDir.of(cv, mip, "agglomeration")


def check_labels(cv: CloudVolume, what: str) -> None:
    if cv.num_channels != 1 or np.dtype(cv.dtype).kind not in "ui":
        raise UserError(f"{what} must be one channel of integer labels; {cv.cloudpath} has "
                        f"{cv.num_channels} channel(s) of {cv.dtype}")


def check_same_bounds(cv: CloudVolume, other: CloudVolume, mip: int) -> None:
    if cv.meta.bounds(mip) != other.meta.bounds(mip):
        raise UserError(f"{other.cloudpath} covers {other.meta.bounds(mip)} at mip {mip} but "
                        f"{cv.cloudpath} covers {cv.meta.bounds(mip)}; they must cover the same voxels")


def task_grid(cv: CloudVolume, mip: int, shape: Sequence[int]) -> Grid:
    """The grid of boxes of `shape` (cut to the volume) laid from the volume's offset."""
    bounds = cv.meta.bounds(mip)
    shape = Vec(*np.minimum(check_vec("--shape", shape), bounds.size3()))
    return Grid.over(bounds, shape)


def open_boundary(path: str, frag: CloudVolume, mip: int, channels: int = 1) -> CloudVolume:
    """The boundary map: uint8 or float, of 1 to `channels` channels, over the fragments' voxels."""
    cv = open_layer(path, mip)
    if not 1 <= cv.num_channels <= channels or np.dtype(cv.dtype) not in (np.uint8, np.float32, np.float64):
        count = "one channel" if channels == 1 else f"1 to {channels} channels"
        raise UserError(f"the boundary map must be {count} of uint8 (0-255) or float (0-1); "
                        f"{cv.cloudpath} has {cv.num_channels} channel(s) of {cv.dtype}")
    check_same_bounds(frag, cv, mip)
    return cv


def create_region_graph_tasks(frag_path: str, boundary_path: str, mip: int = 0,
                              shape: Sequence[int] = DEFAULT_SHAPE, fill_missing: bool = False,
                              reuse: bool = False) -> Tasks:
    """Step 1: tasks that store their boxes' region graphs. Any earlier graph, mapping or merge
    record of this layer and mip is deleted first (they would no longer match); with `reuse`, a
    graph made from the same boundary map is kept and there are no tasks. Every channel of the
    boundary map (up to MAX_CHANNELS) gets its statistics."""
    frag = open_layer(frag_path, mip)
    check_labels(frag, "the fragments")
    boundary = open_boundary(boundary_path, frag, mip, MAX_CHANNELS)
    grid = task_grid(frag, mip, shape)
    work = work_dir(frag, mip)
    description = f"region graph of {frag.cloudpath} mip {mip}"
    if reuse and (work.load(PARAMS_FILE) or {}).get("boundary") == boundary.cloudpath:
        return Tasks([], None, description + " (made already)")
    work.clean()
    work.save(PARAMS_FILE, {"fragments": frag.cloudpath, "boundary": boundary.cloudpath, "mip": mip,
                            **grid.to_json()})
    make = lambda box: partial(RegionGraphTask, frag_path=frag.cloudpath, boundary_path=boundary.cloudpath,
                               mip=mip, offset=ints(box.minpt), shape=ints(box.size3()), work=work.url,
                               fill_missing=fill_missing)
    return Tasks(grid, make, description)


def recorded_graph(frag_path: str, mip: int) -> Tuple[CloudVolume, WorkDir, dict]:
    frag = open_layer(frag_path, mip)
    work = work_dir(frag, mip)
    params = work.require(PARAMS_FILE, f"no region graph for {frag.cloudpath} mip {mip}: run `igneous-like "
                                       f"agglomerate graph {frag.cloudpath} --boundary PROB --mip {mip}` "
                                       "first")
    return frag, work, params


def load_region_graph(frag_path: str, mip: int = 0) -> RegionGraph:
    """The whole graph: every task's part, summed exactly as the parts arrive."""
    _, work, params = recorded_graph(frag_path, mip)
    names = [graph_name(box) for box in Grid.from_json(params)]
    parts = (graph_part(arrays, frag_path) for arrays in work.gather_arrays(names, "region graph tasks"))
    return merged_as_they_come(parts, merge_graphs, lambda graph: graph.num_edges)


def graph_part(arrays: dict, frag_path: str) -> RegionGraph:
    """One task's stored graph; one from before the boundary channels and moments is refused."""
    if set(arrays) != {f.name for f in fields(RegionGraph)}:
        raise UserError(f"the region graph of {frag_path} was made by another version: run `igneous-like "
                        "agglomerate graph` again")
    return RegionGraph(**arrays)


def read_model(path: str) -> MergeModel:
    directory, name = label_table.split_url(layer_path(path))
    data = CloudFiles(directory).get(name)
    if data is None:
        raise UserError(f"no merge model at {path}: train one with `igneous-like agglomerate train`")
    try:
        return MergeModel.from_bytes(data)
    except ValueError as err:
        raise UserError(f"{path}: {err}") from None


def merge_policy(policy: str, quantile: float = 0.5, model: Optional[str] = None,
                 features: Optional[str] = None, channel: int = 0):
    """The merge policy named on the command line (the learned one reads its model file, whose
    feature family must be `features` when that is given; the others read boundary `channel`)."""
    if policy == "learned" and model is None:
        raise UserError("--policy learned needs --model FILE (made by `igneous-like agglomerate train`)")
    if model is not None and policy != "learned":
        raise UserError(f"--model is for --policy learned, not {policy}")
    if features is not None and policy != "learned":
        raise UserError(f"--features is for --policy learned, not {policy}")
    if channel and policy == "learned":
        raise UserError("--channel is for the mean, median and quantile policies; the learned one reads "
                        "every channel")
    learned = read_model(model) if model else None
    if learned is not None and features not in (None, learned.family):
        raise UserError(f"{model} was trained with --features {learned.family}, not {features}: give "
                        f"--features {learned.family} or train a model with --features {features}")
    try:
        return make_policy(policy, quantile, learned, channel)
    except ValueError as err:
        raise UserError(str(err)) from None


def policy_graph(chosen: Policy, frag_path: str, mip: int) -> RegionGraph:
    """The whole graph of FRAG, once it has the boundary channels the policy reads."""
    graph = load_region_graph(frag_path, mip)
    try:
        chosen.check(graph)
    except ValueError as err:
        raise UserError(f"{frag_path}: {err}") from None
    return graph


def agglomerate_fragments(frag_path: str, policy: str = "mean", threshold: float = 0.5, mip: int = 0,
                          quantile: float = 0.5, model: Optional[str] = None,
                          priority: Optional[Callable[[dict], np.ndarray]] = None,
                          features: Optional[str] = None, channel: int = 0) -> Tuple[int, int]:
    """Step 2, run here: merge the whole graph and write the fragment -> segment mapping beside
    the layer. Returns (fragments, segments). `priority`, a Python callable, replaces the named
    policy: given agglomeration.edge_arrays (a dict of per-edge statistics arrays) it returns one
    score per edge; the lowest merges first while below `threshold`. `features`: the learned
    model's feature family, checked; `channel`: the boundary channel the other policies read."""
    if priority is not None:
        policy, chosen = "custom", custom_policy(priority)
    else:
        chosen = merge_policy(policy, quantile, model, features, channel)
    frag, work, _ = recorded_graph(frag_path, mip)
    fragments, segments = agglomerate(policy_graph(chosen, frag_path, mip), chosen, threshold)
    label_table.write(f"{work.url}/{MAPPING_TABLE}", fragments, segments)
    count = int(np.unique(segments).size)
    work.save(MERGE_FILE, {"policy": policy, "threshold": threshold, "quantile": quantile, "model": model,
                           "channel": channel, "fragments": int(fragments.size), "segments": count})
    return int(fragments.size), count


def check_features(features: str) -> None:
    if features not in FAMILIES:
        raise UserError(f"unknown --features {features!r}; choose one of {', '.join(FAMILIES)}")


def check_training(frag_path: str, boundary_path: str, gt_path: str, mip: int, shape: Sequence[int],
                   features: str = "basic") -> None:
    """Every layer `agglomerate train` reads, checked before its graph and contingency steps write."""
    check_features(features)
    frag = open_layer(frag_path, mip)
    check_labels(frag, "the fragments")
    open_boundary(boundary_path, frag, mip, MAX_CHANNELS)
    gt = open_layer(gt_path, mip)
    check_labels(gt, "the ground truth")
    check_same_bounds(frag, gt, mip)
    task_grid(frag, mip, shape)


def train_merge_model(frag_path: str, gt_path: str, output: str, mip: int = 0, trees: int = 100,
                      rounds: int = 1, features: str = "basic") -> dict:
    """Fit the learned policy on the graph of FRAG (graph step done) and its overlap with GT
    (the evaluation's contingency step done), in `rounds` rounds of active learning (1: the
    initial edges only), on the edge features of family `features` (merge_model) of every
    boundary channel; writes the model file. Returns the last round's edge counts."""
    from igneous_like.task_creation.evaluation import accumulate_contingency
    if rounds < 1:
        raise UserError(f"--rounds must be at least 1, got {rounds}")
    check_features(features)
    graph = load_region_graph(frag_path, mip)
    try:
        model, history = learn(graph, *accumulate_contingency(frag_path, gt_path, mip), rounds=rounds,
                               trees=trees, family=features)
    except ValueError as err:
        raise UserError(f"cannot train on {frag_path}: {err}") from None
    directory, name = label_table.split_url(layer_path(output))
    CloudFiles(directory).put(name, model.to_bytes(), compress=None, content_type="application/octet-stream")
    return {**history[-1], "rounds": rounds, "features": features, "channels": graph.channels}


def new_destination(src: CloudVolume, dest: str, mip: int, dtype: str,
                    encoding: Optional[str]) -> CloudVolume:
    """DEST, a segmentation with the source's geometry, checked but not yet written (see commit)."""
    path = new_layer_path(src.cloudpath, dest)
    encoding = encoding or default_encoding(src, mip)
    check_encoding(encoding, "segmentation", dtype)
    info = segmentation_info(src, mip, src.meta.bounds(mip), None, encoding, dtype)
    return open_destination(path, info, mip)


def commit(out: CloudVolume, method: dict) -> None:
    """Write DEST's info and record the job, once every input is checked."""
    out.commit_info()
    record_provenance(out, method)


def create_agglomeration_relabel_tasks(frag_path: str, dest: str, mip: int = 0,
                                       shape: Sequence[int] = DEFAULT_SHAPE, encoding: Optional[str] = None,
                                       compress: Optional[str] = "gzip", fill_missing: bool = False) -> Tasks:
    """Step 3: tasks that write the segmentation (each fragment's segment id) into DEST."""
    frag, work, _ = recorded_graph(frag_path, mip)
    merge = work.require(MERGE_FILE, f"no merge mapping for {frag.cloudpath} mip {mip}: run `igneous-like "
                                     f"agglomerate merge {frag.cloudpath} --threshold T` first")
    return mapping_relabel_tasks(frag, f"{work.url}/{MAPPING_TABLE}", dest, np.dtype(frag.dtype).name,
                                 {"task": "AgglomerationRelabelTask", "fragments": frag.cloudpath, "mip": mip,
                                  **merge}, mip, shape, encoding, compress, fill_missing,
                                 f"agglomerated segmentation of {frag.cloudpath}")


def mapping_relabel_tasks(frag: CloudVolume, mapping: str, dest: str, dtype: str, method: dict, mip: int,
                          shape: Sequence[int], encoding: Optional[str], compress: Optional[str],
                          fill_missing: bool, description: str, keep_unmapped: bool = True,
                          properties: Optional[dict] = None) -> Tasks:
    """Tasks that write each fragment's value in the label table `mapping` into DEST, a new
    segmentation of `dtype` (its info, `method` and segment `properties` recorded now); fragments
    the table lacks keep their ids, or become 0 without keep_unmapped."""
    out = new_destination(frag, dest, mip, dtype, encoding)
    grid = chunk_grid(out, mip, shape)
    commit(out, method)
    if properties is not None:
        write_properties(out, properties)
    compress = compression(compress)
    make = lambda box: partial(AgglomerationRelabelTask, frag_path=frag.cloudpath, dest_path=out.cloudpath,
                               mip=mip, offset=ints(box.minpt), shape=ints(box.size3()), mapping=mapping,
                               fill_missing=fill_missing, compress=compress, keep_unmapped=keep_unmapped)
    return Tasks(grid, make, f"{description} into {out.cloudpath}", mips=range(mip, mip + 1))


def create_watershed_tasks(prob_path: str, dest: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                           seed_threshold: float = 0.2, sigma: float = 1.0, encoding: Optional[str] = None,
                           compress: Optional[str] = "gzip", fill_missing: bool = False) -> Tasks:
    """Tasks that cut a boundary map into fragments by seeded watershed, box by box; ids are
    unique over the volume (uint64). The task shape is rounded up to whole DEST chunks."""
    prob = open_layer(prob_path, mip)
    open_boundary(prob_path, prob, mip)
    if not 0 < seed_threshold <= 1 or sigma < 0:
        raise UserError(f"--seed-threshold must lie in (0, 1] and --sigma be at least 0, got "
                        f"{seed_threshold} and {sigma}")
    out = new_destination(prob, dest, mip, "uint64", encoding)
    grid = chunk_grid(out, mip, shape)
    if sigma > max(grid.shape):
        raise UserError(f"--sigma {sigma:g} voxels is wider than the task boxes ({csv(grid.shape)} voxels): "
                        "it would blur each box flat, slowly; use a sigma of a few voxels")
    stride = int(np.prod(grid.shape))
    if len(grid) * stride >= 2**64:
        raise UserError(f"{len(grid)} tasks of {csv(grid.shape)} voxels overflow 64-bit ids; "
                        "use a larger --shape")
    commit(out, {"task": "WatershedTask", "boundary": prob.cloudpath, "mip": mip,
                 "seed_threshold": seed_threshold, "sigma": sigma})
    index = lambda box: int(np.ravel_multi_index(tuple((box.minpt - grid.anchor) // grid.shape),
                                                 tuple(-(-grid.region.size3() // grid.shape)), order="F"))
    compress = compression(compress)
    make = lambda box: partial(WatershedTask, prob_path=prob.cloudpath, dest_path=out.cloudpath, mip=mip,
                               offset=ints(box.minpt), shape=ints(box.size3()), index=index(box),
                               stride=stride,
                               seed_threshold=float(seed_threshold), sigma=float(sigma),
                               fill_missing=fill_missing, compress=compress)
    return Tasks(grid, make, f"watershed of {prob.cloudpath} into {out.cloudpath}", mips=range(mip, mip + 1))


def clean_agglomeration_files(frag_path: str, mip: int = 0) -> int:
    """Delete FRAG/KEY/agglomeration/ (graph parts, mapping); returns how many files there were."""
    return work_dir(open_layer(frag_path, mip), mip).clean()
