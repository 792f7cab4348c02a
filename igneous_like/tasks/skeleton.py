"""Skeleton tasks: forge the fragments of one task box; merge one batch (or one shard) of labels.

Everything lives under the layer's skeleton directory (the info's `skeletons` key):

  info                       skeleton info: vertex attributes, mip, sharding
  fragments/forge.json       the forge run: its grid and what merging needs of its settings
  fragments/BOX.frags        one forge task's fragments, a MapBuffer (component id -> Precomputed
                             skeleton bytes of the whole skeleton the task traced, an `in_crop`
                             vertex attribute marking its crop; a checked format, never pickle)
  fragments/BOX.index        JSON: each component's label, the voxels of it the task owns and
                             its seam representatives (see igneous_like.skeletons)
  fragments/merge/NAME.json  one merge task's labels and, for each, the fragments to fuse
  LABEL  or  N.shard         the finished skeletons (unsharded or neuroglancer_uint64_sharded_v1)
  BOX_NM.spatial             the spatial index: each label's voxel box in a forge task's box (nm)

BOX is the task's owned box in voxels of the forge mip (Bbox.to_filename()); `skeleton clean`
deletes fragments/. Every file is written whole, so a task run twice leaves the same output.
"""
import posixpath
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import fastremap
import kimimaro
import numpy as np
from cloudfiles import CloudFile, CloudFiles
from cloudvolume import CloudVolume, Skeleton
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, synthesize_shard_files
from cloudvolume.lib import Bbox, Vec
from mapbuffer import MapBuffer
from taskqueue import queueable

from igneous_like.ccl import foreground
from igneous_like.layers import in_threads
from igneous_like.paths import inside_layer
from igneous_like.skeletons import (
    IN_CROP,
    Cutout,
    components,
    decode,
    encode,
    fuse,
    make_skeleton,
    pieces_to_keep,
    postprocess,
    seam_representatives,
    stitch,
    to_global,
    unique_counts,
)
from igneous_like.stage import Record
from igneous_like.tasks.objects import write_index_file

FRAGMENTS = "fragments"
FORGE_FILE = f"{FRAGMENTS}/forge.json"
# nm each forge task reads around its box: the reach of TEASAR's invalidation (scale 4 x radius +
# const) for neurites up to about 300 nm in radius, so that tasks trace near their seams as one
# unchunked run would. Less only lowers the agreement (merging restores context cable no owner
# covers); on real EM at 32x32x40 nm, 64x64x16 tasks (fix_borders off): 11% of objects within
# 5% of one task's cable at 0 nm, 89% at 600, 97% at 1200.
DEFAULT_CONTEXT = 1200.0


@dataclass(frozen=True)
class ForgeOptions:
    """How a forge task reads and skeletonizes its cutout; travels as a JSON dict."""
    teasar_params: dict = field(default_factory=dict)
    dust_threshold: int = 1000
    fix_branching: bool = True
    fix_borders: bool = False  # see create_skeletonizing_tasks
    fix_avocados: bool = False
    fill_holes: bool = False
    object_ids: Optional[Tuple[int, ...]] = None
    cross_section: int = 0  # smoothing window of the cross-sectional area; 0: not computed
    threshold_gte: Optional[float] = None
    threshold_lte: Optional[float] = None
    fill_missing: bool = False
    context: float = DEFAULT_CONTEXT  # nm read around each crop
    index_chunk: Optional[Tuple[int, ...]] = None  # the task grid's shape when writing the spatial index
    whole_volume: bool = False  # the only task of its grid: it also writes the skeletons (unsharded)

    def __post_init__(self):
        if self.object_ids is not None:
            object.__setattr__(self, "object_ids", tuple(int(i) for i in self.object_ids))
        if self.index_chunk is not None:
            object.__setattr__(self, "index_chunk", tuple(int(i) for i in self.index_chunk))

    @property
    def thresholded(self) -> bool:
        return self.threshold_gte is not None or self.threshold_lte is not None

    def to_json(self) -> dict:
        out = asdict(self)
        out["object_ids"] = None if self.object_ids is None else list(self.object_ids)
        return out


@dataclass(frozen=True)
class ForgeRun(Record):
    """A forge run: its task grid and what merging needs to know of its settings; stored as
    fragments/forge.json."""
    mip: int
    shape: Tuple[int, int, int]
    anchor: Tuple[int, int, int]  # grid origin (the mip's voxel offset)
    bounds: Tuple[Tuple[int, ...], Tuple[int, ...]]  # the volume at the mip: min, max corners
    thresholded: bool
    dust_threshold: int
    scale: float  # TEASAR's invalidation: scale * radius + const (nm) ...
    const: float
    soma_accept: float  # ... or, at a soma's root (radius above this), soma_scale * radius + soma_const
    soma_scale: float
    soma_const: float

    def reach(self, radius: np.ndarray) -> np.ndarray:
        """TEASAR's invalidation radius (nm) around vertices of these radii (nm)."""
        radius = np.asarray(radius, dtype=np.float64)
        return np.where(radius > self.soma_accept, self.soma_scale * radius + self.soma_const,
                        self.scale * radius + self.const)


def skeleton_dir(cv: CloudVolume) -> str:
    return cv.meta.join(cv.cloudpath, inside_layer(cv.info["skeletons"], "the skeleton directory"))


def physical_shift(cv: CloudVolume, mip: int) -> np.ndarray:
    """nm = (voxel + 0.5) * resolution + shift: voxel centres, placed from mip 0's origin (as Igneous)."""
    return (cv.meta.voxel_offset(0) * cv.meta.resolution(0)
            - cv.meta.voxel_offset(mip) * cv.meta.resolution(mip)).astype(np.float64)


def context_margin(context_nm: float, resolution: Sequence[float]) -> List[int]:
    return [int(np.ceil(context_nm / r)) for r in resolution]


def read_labels(cv: CloudVolume, cut: Cutout, mip: int, opts: ForgeOptions) -> np.ndarray:
    """The cutout as labels: the segmentation (only --labels if given) or the thresholded image."""
    data = np.asarray(cv.image.download(cut.read, mip))[..., 0]
    if opts.thresholded:
        return np.asfortranarray(foreground(data, opts.threshold_gte, opts.threshold_lte).astype(np.uint8))
    if opts.object_ids is not None:
        data = fastremap.mask_except(data, list(opts.object_ids), in_place=True)
    return np.asfortranarray(data)


def skeletonize(cc: np.ndarray, keep: np.ndarray, resolution, opts: ForgeOptions) -> dict:
    """kimimaro on the kept components (their own ids), with the cross-sectional area if asked."""
    labels = fastremap.mask_except(cc, keep.tolist())
    skeletons = kimimaro.skeletonize(
        labels, dict(opts.teasar_params), anisotropy=resolution, dust_threshold=0, progress=False,
        fix_branching=opts.fix_branching, fix_borders=opts.fix_borders, fix_avocados=opts.fix_avocados,
        fill_holes=opts.fill_holes, parallel=1)
    if opts.cross_section and skeletons:
        skeletons = kimimaro.cross_sectional_area(labels, skeletons, anisotropy=resolution,
                                                  smoothing_window=opts.cross_section, in_place=True)
    return skeletons


@queueable
def SkeletonTask(layer_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                 options: dict, attributes: List[dict]) -> None:
    """Skeletonize one task box and write its fragments and index."""
    opts = ForgeOptions(**options)
    cv = CloudVolume(layer_path, mip=mip, fill_missing=opts.fill_missing, progress=False)
    resolution = cv.meta.resolution(mip).astype(np.float32)
    owned = Bbox(offset, Vec(*offset) + Vec(*shape))
    cut = Cutout.around(owned, cv.meta.bounds(mip), context_margin(opts.context, resolution))
    labels = read_labels(cv, cut, mip, opts)
    cc = components(labels)
    keep = pieces_to_keep(cc, cut, opts.dust_threshold)
    owner = {} if opts.thresholded else fastremap.component_map(cc, labels)
    if opts.index_chunk is not None:
        write_index_file(cv, skeleton_dir(cv), mip, opts.index_chunk, owned, labels[cut.local(owned)])
    del labels
    owned_voxels = unique_counts(cc[cut.local(cut.owned)])
    kept = set(int(k) for k in keep)
    reps = seam_representatives(cc, cut, kept)
    shift = physical_shift(cv, mip)
    fragments, finished = {}, defaultdict(list)
    for key, skel in skeletonize(cc, keep, resolution, opts).items():
        vertices, in_crop = to_global(skel, cut, resolution)
        values = {a["id"]: getattr(skel, a["id"]) for a in attributes}
        nm = (vertices + 0.5) * resolution.astype(np.float64) + shift
        fragments[int(key)] = encode(make_skeleton(nm, skel.edges, {**values, IN_CROP["id"]: in_crop},
                                                   attributes + [IN_CROP], int(key)))
        if opts.whole_volume:
            label = int(owner[key])
            finished[label].append(make_skeleton(nm, skel.edges, values, attributes, label))
    pieces = [[key, None if opts.thresholded else int(owner[key]), owned_voxels.get(key, 0),
               reps.get(key, []), key in fragments] for key in sorted(kept)]
    name = owned.to_filename()
    cf = CloudFiles(skeleton_dir(cv))
    cf.put(f"{FRAGMENTS}/{name}.frags", MapBuffer(fragments, compress="br").tobytes(), compress=None,
           content_type="application/x-mapbuffer", cache_control="no-cache")
    cf.put_json(f"{FRAGMENTS}/{name}.index", {"box": name, "pieces": pieces}, compress="gzip",
                cache_control="no-cache")
    # as Igneous's single task: each label's skeleton ready to read, before (and without) a merge
    put_skeleton_files(cf, {str(label): encode(fuse(skels)) for label, skels in finished.items()}, "gzip")


def read_fragments(skel_path: str, sources: Dict[str, List[int]],
                   attributes: List[dict]) -> Dict[Tuple, Tuple[Skeleton, np.ndarray]]:
    """{(box, key): (Skeleton, which vertices lie in the task's crop)} for the wanted keys of each
    box's fragment file (ranged reads)."""
    out = {}
    for box, keys in sources.items():
        path = posixpath.join(skel_path, FRAGMENTS, f"{box}.frags")
        buffer = MapBuffer(CloudFile(path))
        for key in keys:
            skel = decode(buffer[key], attributes + [IN_CROP], key)
            values = {a["id"]: getattr(skel, a["id"]) for a in attributes}
            out[(box, key)] = (make_skeleton(skel.vertices, skel.edges, values, attributes, key),
                               skel.in_crop > 0)
    return out


@queueable
def SkeletonMergeTask(layer_path: str, manifest: str, dust_threshold: float, tick_threshold: float,
                      max_cable_length: Optional[float], sharded: bool) -> None:
    """Fuse, clean and write the skeletons of the labels one merge manifest lists."""
    cv = CloudVolume(layer_path, progress=False)
    skel_path = skeleton_dir(cv)
    cf = CloudFiles(skel_path)
    plan = cf.get_json(f"{FRAGMENTS}/merge/{manifest}")
    run = ForgeRun.from_json(cf.get_json(FORGE_FILE))
    info = cf.get_json("info")
    attributes = info["vertex_attributes"]
    sources = defaultdict(list)
    for parts in plan["fragments"]:
        for box, key, _ in parts:
            sources[box].append(key)
    fragments = read_fragments(skel_path, sources, attributes)
    finished = {}
    for label, parts in zip(plan["labels"], plan["fragments"]):
        groups = defaultdict(list)
        for box, key, group in parts:
            groups[group].append(fragments[(box, key)])
        skel = fuse([stitch(group, run.reach) for group in groups.values()])
        skel.id = label
        skel = postprocess(skel, dust_threshold, tick_threshold, max_cable_length)
        if not skel.empty():
            finished[int(label)] = encode(skel)
    if sharded:
        spec = ShardingSpecification.from_dict(info["sharding"])
        files = synthesize_shard_files(spec, finished) if finished else {}
        if len(files) > 1:
            raise ValueError(f"manifest {manifest} spans {len(files)} shards; it must fill exactly one")
        compress = False
    else:
        files, compress = {str(label): data for label, data in finished.items()}, "gzip"
    put_skeleton_files(cf, files, compress)


def put_skeleton_files(cf: CloudFiles, files: Dict[str, bytes], compress) -> None:
    """Write finished skeleton (or shard) files, uncached: a rerun's rewrite must be seen at once."""
    in_threads(lambda item: cf.put(*item, compress=compress, content_type="application/octet-stream",
                                   cache_control="no-cache"), files.items())
