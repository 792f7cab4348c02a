"""The benchmark's workloads: each stage's input, its command lines for each program, and the
check that both programs' outputs agree.

Inputs come from the real 512^3 segmentation (16x16x40 nm): the segmentation itself, an EM-like
image made from it (a grey level per object, dark borders), and crops of the segmentation for the
slower mesh and skeleton stages. `tile` > 1 repeats the volume tile^3 times with distinct ids.
"""
import json
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List, Tuple

import fastremap
import kimimaro
import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from common import real_segmentation

from igneous_like.label_table import read_voxel_counts
from igneous_like.task_creation.skeleton import skeleton_labels

MESH_CROP = 256  # the middle 256^3, where objects are small and many
SKELETON_CROP = (256, 256, 128)  # from the origin
TEASAR = {"scale": 4, "const": 10, "pdrf_scale": 100000, "pdrf_exponent": 4,
          "soma_detection_threshold": 1100, "soma_acceptance_threshold": 3500,
          "soma_invalidation_scale": 1.0, "soma_invalidation_const": 300}


@lru_cache(maxsize=1)
def segmentation(tile: int = 1) -> np.ndarray:
    """The real segmentation renumbered 1..N, tiled tile^3 times with each tile's ids shifted past
    the previous ones."""
    seg, _ = fastremap.renumber(real_segmentation(), in_place=True)
    if tile == 1:
        return np.asfortranarray(seg)
    count = int(seg.max()) + 1
    size = np.array(seg.shape)
    out = np.zeros(tuple(size * tile), dtype=np.uint32, order="F")
    for index, corner in enumerate(np.ndindex(tile, tile, tile)):
        low = np.array(corner) * size
        out[low[0]:low[0] + size[0], low[1]:low[1] + size[1], low[2]:low[2] + size[2]] = \
            np.where(seg > 0, seg + np.uint32(index * count), 0)
    return out


@lru_cache(maxsize=1)
def em_image(tile: int = 1) -> np.ndarray:
    """An EM-like uint8 image: a pseudo-random grey level per object, dark object borders."""
    seg = segmentation(tile)
    grey = (seg * np.uint32(2654435761)) >> np.uint32(24)  # wraps around: a hash of the id
    image = (grey % np.uint32(200) + np.uint32(40)).astype(np.uint8)
    del grey
    image[1:][seg[1:] != seg[:-1]] = 10
    image[:, 1:][seg[:, 1:] != seg[:, :-1]] = 10
    return np.asfortranarray(image)


def boundary_map(tile: int = 1) -> np.ndarray:
    """A uint8 boundary map: high on object borders (and background), low inside, with noise."""
    seg = segmentation(tile)
    rng = np.random.default_rng(0)
    out = rng.integers(0, 40, seg.shape, dtype=np.uint8)
    out[seg == 0] += 200
    for axis in range(3):  # both voxels of every touching pair of different labels
        ahead, behind = [slice(None)] * 3, [slice(None)] * 3
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        differ = seg[tuple(ahead)] != seg[tuple(behind)]
        out[tuple(ahead)][differ] = 230
        out[tuple(behind)][differ] = 230
    return np.asfortranarray(out)


def mesh_crop(tile: int = 1) -> np.ndarray:
    start = (512 - MESH_CROP) // 2
    return np.asfortranarray(segmentation()[start:start + MESH_CROP, start:start + MESH_CROP,
                                            start:start + MESH_CROP])


def skeleton_crop(tile: int = 1) -> np.ndarray:
    x, y, z = SKELETON_CROP
    return np.asfortranarray(segmentation()[:x, :y, :z])


def read(path: str, mip: int = 0) -> np.ndarray:
    cv = CloudVolume(path, mip=mip, progress=False)
    return np.asarray(cv[cv.bounds])[..., 0]


def same_mips(paths: Dict[str, str], first: int = 1) -> str:
    """Every mip from `first` that both programs made agrees voxel for voxel."""
    made = min(len(CloudVolume(path).info["scales"]) for path in paths.values())
    for mip in range(first, made):
        ours, theirs = (read(path, mip) for path in paths.values())
        if not np.array_equal(ours, theirs):
            raise SystemExit(f"outputs differ at mip {mip}")
    return f"mips {first}-{made - 1} equal"


def same_components(paths: Dict[str, str]) -> str:
    ours, theirs = (read(f"{path}_cc") for path in paths.values())
    if not np.array_equal(fastremap.renumber(ours)[0], fastremap.renumber(theirs)[0]):
        raise SystemExit("the components differ")
    return f"{int(ours.max())} components, equal"


def same_counts(paths: Dict[str, str]) -> str:
    from mapbuffer import IntMap
    ours = read_voxel_counts(paths["igneous_like"])
    data = CloudFiles(paths["Igneous"]).get("16_16_40/stats/voxel_counts.im")
    theirs = np.array(sorted(IntMap(data).items()), dtype=np.uint64).reshape(-1, 2).T
    if not (np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1])):
        raise SystemExit("voxel counts differ")
    return f"{ours[0].size} labels' counts equal"


def meshed_boxes(path: str, labels: List[int]) -> Dict[int, np.ndarray]:
    """Each label's mesh bounding box (level of detail 0 of multi-resolution meshes), for the labels
    that have a mesh: a multi-resolution mesh is left out where an object's surface encloses nothing
    (zmesh leaves a few such objects of a handful of voxels; each program skips some)."""
    source = CloudVolume(path, progress=False).mesh
    if source.meta.info.get("@type") == "neuroglancer_multilod_draco":
        files = CloudFiles(f"{path}/{source.path}")
        labels = [label for label in labels if files.exists(f"{label}.index")]
        found = source.get(labels, lod=0)
    else:
        found = source.get(labels, fuse=False)
    return {label: np.r_[mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)]
            for label, mesh in found.items()}


def same_meshes(paths: Dict[str, str], max_error: float = 40) -> str:
    """Both meshed every label (legacy) or nearly every one (multi-resolution), and each mesh's
    bounding box agrees within a voxel plus the error."""
    labels = [int(label) for label in np.unique(mesh_crop()) if label]
    boxes = {name: meshed_boxes(path, labels) for name, path in paths.items()}
    ours, theirs = boxes["igneous_like"], boxes["Igneous"]
    if len(ours) < len(labels) - 5 or len(theirs) < len(labels) - 5:
        raise SystemExit(f"meshed {len(ours)} (igneous_like) and {len(theirs)} (Igneous) of {len(labels)} "
                         "labels")
    common = sorted(set(ours) & set(theirs))
    tolerance = np.tile([16, 16, 40], 2) + max_error
    apart = np.abs(np.array([ours[label] - theirs[label] for label in common])) > tolerance
    differ = int(apart.any(axis=1).sum())
    if differ > len(labels) // 100:  # a flat piece of a few voxels may be in one program's mesh only
        raise SystemExit(f"mesh bounding boxes differ for {differ} labels")
    return (f"{len(ours)} and {len(theirs)} of {len(labels)} labels meshed; bounding boxes agree "
            f"but for {differ}")


def same_skeletons(paths: Dict[str, str]) -> str:
    """Share of labels whose cable length is within 5% of kimimaro run on the whole crop at once,
    with fix_borders off (igneous_like's default) and on (Igneous's)."""
    found = []
    for fix_borders in (False, True):
        reference = kimimaro.skeletonize(skeleton_crop(), TEASAR, anisotropy=(16, 16, 40),
                                         dust_threshold=1000, fix_borders=fix_borders, progress=False)
        shares = []
        for path in paths.values():
            cv = CloudVolume(path, progress=False)
            labels = sorted(set(reference) & set(skeleton_labels(cv)))
            cable = {s.id: s.cable_length() for s in cv.skeleton.get(labels) if not s.empty()}
            ratios = np.array([cable[label] / reference[label].cable_length() for label in cable])
            shares.append(f"{len(cable)} skeletons, {np.mean(np.abs(ratios - 1) <= 0.05):.0%} within 5%")
        found.append(f"fix_borders {'on' if fix_borders else 'off'}: " + " | ".join(shares))
    return "cable vs one kimimaro call, " + "; ".join(found)


def agglomerate_commands(program: str, src: str, queue: str) -> List[List[str]]:
    """Fragments by watershed of the boundary map, region graph, mean merging, relabel."""
    frag = f"{src}_fragments"
    return [["agglomerate", "watershed", src, frag, "--seed-threshold", "0.2"],
            ["agglomerate", "graph", frag, "--boundary", src],
            ["agglomerate", "merge", frag, "--policy", "mean", "--threshold", "0.5"],
            ["agglomerate", "relabel", frag, f"{src}_segments"]]


def agglomeration_quality(paths: Dict[str, str]) -> str:
    """`evaluate` of the fragments and of the agglomerated segments against the real segmentation."""
    src, found = paths["igneous_like"], []
    for name in ("fragments", "segments"):
        result = subprocess.run([sys.executable, "-m", "igneous_like", "--quiet", "evaluate", f"{src}_{name}",
                                 f"{src}_truth", "--json"], capture_output=True, text=True, check=True)
        score = json.loads(result.stdout)
        found.append(f"{name} VI split {score['vi_split']:.3f} + merge {score['vi_merge']:.3f} bits, "
                     f"ARI {score['ari']:.3f}")
    return "; ".join(found)


def measure_commands(program: str, src: str, queue: str) -> List[List[str]]:
    return [["measure", "forge", src, "--image", f"{src}_image", "--shape", "256,256,256"],
            ["measure", "merge", src], ["measure", "export", src, f"{src[len('file://'):]}.csv"]]


def measure_table(paths: Dict[str, str]) -> str:
    """The exported table has one row per label, with the whole volume's voxel counts."""
    import pandas
    table = pandas.read_csv(f"{paths['igneous_like'][len('file://'):]}.csv")
    labels, counts = fastremap.unique(read(paths["igneous_like"]), return_counts=True)
    if not (np.array_equal(table["label"], labels[1:]) and np.array_equal(table["voxel_count"], counts[1:])):
        raise SystemExit("the measurement table's labels or voxel counts are wrong")
    return f"{len(table)} rows x {len(table.columns)} columns, voxel counts equal fastremap's"


def mesh_commands(nlod: int) -> Callable[[str, str, str], List[List[str]]]:
    """Forge, then merge into legacy (nlod 0) or multi-resolution meshes, through the file queue."""
    def commands(program: str, src: str, queue: str) -> List[List[str]]:
        execute = ["execute", "-x", queue]
        return [["mesh", "forge", src, "--shape", "128,128,128", "--queue", queue], execute,
                ["mesh", "merge", src, "--nlod", str(nlod), "--magnitude", "1", "--queue", queue], execute]
    return commands


def skeleton_commands(context: List[str]) -> Callable[[str, str, str], List[List[str]]]:
    """Forge then merge; `context` are igneous_like's extra forge options."""
    def commands(program: str, src: str, queue: str) -> List[List[str]]:
        forge = ["skeleton", "forge", src, "--shape", "128,128,64", "--scale", "4", "--const", "10"]
        if program == "igneous_like":
            return [forge + context, ["skeleton", "merge", src, "--dust-threshold", "1000"]]
        return [forge, ["skeleton", "merge", src, "--min-cable-length", "1000"]]
    return commands


@dataclass(frozen=True)
class Stage:
    """One workload: its input, each program's commands (after `PROGRAM -p N`), the agreement check."""
    name: str
    title: str
    volume: Callable[[int], np.ndarray]
    layer_type: str
    commands: Callable[[str, str, str], List[List[str]]]  # (program, source path, fq queue)
    agree: Callable[[Dict[str, str]], str]  # {program: source path} -> what agreed
    extra: Tuple[Tuple[str, Callable[[int], np.ndarray], str], ...] = ()  # (suffix, volume, layer type)
    shared: bool = True  # False: igneous_like only (Igneous has no such stage)


STAGES = [
    Stage("downsample-image", "image downsample, 3 mips 2x2x1", em_image, "image",
          lambda program, src, queue: [["image", "downsample", src, "--num-mips", "3"]], same_mips),
    Stage("downsample-seg", "segmentation downsample, 3 mips 2x2x1", segmentation, "segmentation",
          lambda program, src, queue: [["image", "downsample", src, "--num-mips", "3"]], same_mips),
    Stage("transfer", "image xfer to 128x128x64 chunks + 2 mips, tasks 512x512x64", em_image, "image",
          lambda program, src, queue: [["image", "xfer", src, f"{src}_xfer", "--chunk-size", "128,128,64",
                                        "--shape", "512,512,64", "--max-mips", "2"]],
          lambda paths: same_mips({name: f"{path}_xfer" for name, path in paths.items()}, first=0)),
    Stage("ccl", "segmentation ccl auto, 6-connected, tasks 256^3", segmentation, "segmentation",
          lambda program, src, queue: [["image", "ccl", "auto", src, f"{src}_cc", "--shape", "256,256,256",
                                        "--encoding", "raw"]], same_components),
    Stage("voxels", "voxel counts (count + sum), tasks 512^3", segmentation, "segmentation",
          lambda program, src, queue: [["image", "voxels", "count", src], ["image", "voxels", "sum", src]],
          same_counts),
    Stage("mesh", f"mesh forge + merge of the middle {MESH_CROP}^3, tasks 128^3, through fq", mesh_crop,
          "segmentation", mesh_commands(0), same_meshes),
    Stage("mesh-multires", "as mesh, merged into multi-resolution meshes with 2 extra levels of detail",
          mesh_crop, "segmentation", mesh_commands(2), same_meshes),
    Stage("skeleton", f"skeleton forge + merge of crop {SKELETON_CROP}, tasks 128x128x64, each program's "
          "defaults (igneous_like reads 1200 nm of context around each task)", skeleton_crop,
          "segmentation", skeleton_commands([]), same_skeletons),
    Stage("skeleton-same-reads", "as skeleton, igneous_like with --context 0 (one-voxel overlaps)",
          skeleton_crop, "segmentation", skeleton_commands(["--context", "0"]), same_skeletons),
    Stage("agglomerate", "watershed fragments of a noisy boundary map, region graph, mean merging at 0.5, "
          "relabel, evaluate against the real segmentation; tasks 256^3", boundary_map, "image",
          agglomerate_commands, agglomeration_quality, extra=(("_truth", segmentation, "segmentation"),),
          shared=False),
    Stage("measure", "measure forge (with the EM-like image) + merge + export to CSV, tasks 256^3",
          segmentation, "segmentation", measure_commands, measure_table,
          extra=(("_image", em_image, "image"),), shared=False),
]
