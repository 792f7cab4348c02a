"""Mesh tasks: forge the pieces of one block, then merge each label's pieces into its mesh.

Stage 1 (`MeshTask`) writes one intermediate file per block, `BLOCK.frags`: a MapBuffer from
label to (voxel count in the block, mesh piece), plus the block's spatial index file. The
`.frags` file is written last, so its presence means the block is done. Stage 2
(`MeshMergeTask`) reads, with ranged reads, only its own labels from the blocks that hold them,
welds the seams, drops dust by the label's whole-volume voxel count (with dust_global; otherwise
the forge dropped labels with few voxels in its block), and writes the legacy,
multi-resolution or sharded format. `forge.json` in the mesh directory records stage 1's
grid and options so stage 2 can find and check every block.
"""
import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import fastremap
import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, synthesize_shard_files
from cloudvolume.datasource.precomputed.spatial_index import SpatialIndex
from cloudvolume.lib import Bbox, Vec
from mapbuffer import MapBuffer
from taskqueue import queueable

from igneous_like import meshes
from igneous_like.grid import Grid, TaskBox
from igneous_like.multires import multires_fragments
from igneous_like.paths import inside_layer
from igneous_like.stage import Record, WorkDir

FORGE_RECORD = "forge.json"
FRAGMENTS = ".frags"
LABELS_PER_BATCH = 1000  # labels whose pieces a merge task holds at once


@dataclass(frozen=True)
class MeshOptions(Record):
    """How blocks are meshed and which labels are kept; stored in forge.json for the merge."""
    max_error: float = 40.0
    reduction_factor: int = 100  # 0: no simplification
    dust_threshold: int = 0  # voxels in one block, or with dust_global in the whole volume
    labels: Optional[Tuple[int, ...]] = None
    exclude_labels: Tuple[int, ...] = ()
    fill_missing: bool = False
    encoding: str = "precomputed"
    spatial_index: bool = True
    dust_global: bool = True  # forge records written before this option meant the whole volume
    closed_edges: bool = True  # close meshes where objects meet the volume's edge
    fill_holes: int = 0  # meshes.fill_holes level


@dataclass(frozen=True)
class ForgeRecord(Record):
    """Stage 1's grid (at `mip`) and options: what stage 2 needs to find and read every block."""
    mip: int
    resolution: Tuple[float, float, float]
    bounds: Tuple[int, ...]  # x0,y0,z0,x1,y1,z1 voxels
    anchor: Tuple[int, int, int]
    shape: Tuple[int, int, int]
    options: dict

    @property
    def grid(self) -> Grid:
        bounds = Bbox(self.bounds[:3], self.bounds[3:])
        return Grid(bounds, Vec(*self.shape), Vec(*self.anchor), bounds)

    @property
    def mesh_options(self) -> MeshOptions:
        return MeshOptions(**self.options)

    def seam_planes(self) -> List[np.ndarray]:
        return meshes.seam_planes(self.bounds[:3], self.bounds[3:], self.shape, self.anchor, self.resolution)

    def draco_grid(self):
        if self.mesh_options.encoding != "draco":
            return None
        return meshes.draco_grid(self.bounds[:3], self.bounds[3:], self.resolution)


def fragment_name(box: Bbox) -> str:
    return box.to_filename() + FRAGMENTS


def mesh_work(layer_path: str, mesh_dir: str) -> WorkDir:
    """A layer's mesh directory (`--dir` or the info's `mesh`), never outside the layer: stage 1's
    record and parts live beside the meshes."""
    return WorkDir(layer_path.rstrip("/") + "/" + inside_layer(mesh_dir, "the mesh directory"))


def read_block(cv: CloudVolume, box: Bbox, mip: int, options: MeshOptions, low: int = 0,
               high: int = 1) -> Tuple[np.ndarray, Bbox]:
    """The block's chosen labels plus `low` and `high` voxels (one on its high faces: where
    the neighbour's piece meets it) where the volume goes on."""
    read = TaskBox.at(box.minpt, box.size3(), cv.meta.bounds(mip), low=low, high=high).read
    labels = np.asarray(cv.image.download(read, mip=mip))[..., 0]
    if options.labels is not None:
        labels = fastremap.mask_except(labels, list(options.labels), in_place=True)
    elif options.exclude_labels:
        labels = fastremap.mask(labels, list(options.exclude_labels), in_place=True)
    return np.asfortranarray(labels), read


def pad_edges(labels: np.ndarray, read: Bbox, bounds: Bbox) -> Tuple[np.ndarray, Bbox]:
    """Zero-pad the faces where the read meets the volume's edge, so surfaces close there."""
    pad_low = (read.minpt == bounds.minpt).astype(int)
    pad_high = (read.maxpt == bounds.maxpt).astype(int)
    padded = np.pad(labels, list(zip(pad_low, pad_high)))
    return np.asfortranarray(padded), Bbox(read.minpt - pad_low, read.maxpt + pad_high)


def read_labels(cv: CloudVolume, box: Bbox, mip: int, options: MeshOptions) -> Tuple[np.ndarray, Bbox]:
    """The block plus one voxel on its high faces, zero-padded where the volume ends."""
    return pad_edges(*read_block(cv, box, mip, options), cv.meta.bounds(mip))


@queueable
def MeshTask(layer_path: str, mesh_dir: str, mip: int, offset: Sequence[int], shape: Sequence[int],
             options: dict) -> None:
    """Mesh every label of one block; pieces from neighbouring blocks meet exactly on the seam."""
    opts = MeshOptions(**options)
    cv = CloudVolume(layer_path, mip=mip, fill_missing=opts.fill_missing, progress=False)
    box = TaskBox.at(offset, shape).write
    labels, read = read_block(cv, box, mip, opts)
    counts = meshes.voxel_counts(labels[(box - read.minpt).to_slices()])  # own voxels only, no overlap
    if opts.dust_threshold and not opts.dust_global:
        # Igneous's default: dust judged in each block, so labels only in the overlap go too (a label
        # kept here but dust in a neighbouring block stays open on that seam, as in Igneous)
        counts = {label: count for label, count in counts.items() if count >= opts.dust_threshold}
        labels = fastremap.mask_except(labels, list(counts), in_place=True)
    layers = meshes.fill_holes(labels, opts.fill_holes) if opts.fill_holes else [labels]
    origin = read.minpt
    if opts.closed_edges:
        padded = [pad_edges(layer, read, cv.meta.bounds(mip)) for layer in layers]
        layers, origin = [layer for layer, _ in padded], padded[0][1].minpt
    work = mesh_work(layer_path, mesh_dir)
    record = work.load(FORGE_RECORD, ForgeRecord)
    resolution = Vec(*record.resolution)
    draco = record.draco_grid()
    found: Dict[int, list] = {}
    for layer in layers:  # an enclosed label is meshed from its own layer, apart from its host
        for label, mesh in meshes.mesh_block(layer, resolution, origin, opts.max_error,
                                             opts.reduction_factor):
            found.setdefault(label, []).append(mesh)
    pieces, extents = {}, {}
    for label, parts in found.items():
        mesh = meshes.concatenate(parts)
        pieces[label] = meshes.encode_fragment(mesh, counts.pop(label, 0), draco)
        if len(mesh.vertices):
            extents[str(label)] = [float(v) for v in (*mesh.vertices.min(axis=0), *mesh.vertices.max(axis=0))]
    for label, count in counts.items():  # voxels but no surface here: the count still matters for dust
        pieces[label] = meshes.encode_fragment(meshes.concatenate([]), count)
    if opts.spatial_index:
        work.files.put_json(index_file_name(cv, mip, shape, box), extents)
    work.put_part(fragment_name(box), MapBuffer(pieces).tobytes())


@queueable
def MeshFragmentTask(layer_path: str, mesh_dir: str, mip: int, offset: Sequence[int], shape: Sequence[int],
                     options: dict, remap_table: Optional[Dict[str, str]] = None, low_padding: int = 0,
                     high_padding: int = 1, compress="gzip") -> None:
    """Igneous's unsharded MeshTask: each label's surface in one block (read with the paddings,
    labels renamed by `remap_table`) written as a legacy precomputed fragment `LABEL:0:BLOCK` in the
    mesh directory, unwelded; manifests (MeshManifestTask) make them a legacy mesh layer."""
    opts = MeshOptions(**options)
    cv = CloudVolume(layer_path, mip=mip, fill_missing=opts.fill_missing, progress=False)
    box = TaskBox.at(offset, shape).write
    labels, read = read_block(cv, box, mip, opts, low_padding, high_padding)
    if remap_table:
        table = {int(key): int(value) for key, value in remap_table.items()}
        labels = fastremap.remap(labels, table, preserve_missing_labels=True, in_place=True)
    if opts.dust_threshold:
        kept = [label for label, count in meshes.voxel_counts(labels).items() if count >= opts.dust_threshold]
        labels = fastremap.mask_except(labels, kept, in_place=True)
    if opts.closed_edges:
        labels, read = pad_edges(labels, read, cv.meta.bounds(mip))
    found = meshes.mesh_block(labels, cv.meta.resolution(mip), read.minpt, opts.max_error,
                              opts.reduction_factor)
    fragments = [(f"{label}:0:{box.to_filename()}", mesh.to_precomputed()) for label, mesh in found
                 if len(mesh.faces)]
    mesh_work(layer_path, mesh_dir).files.puts(fragments, compress=compress)


@queueable
def MeshManifestTask(layer_path: str, mesh_dir: str, prefix: str = "", lod: int = 0) -> None:
    """Legacy manifests `LABEL:LOD` ({"fragments": [...]}) for every label whose fragments
    `LABEL:LOD:NAME` (names beginning with `prefix`) lie in the mesh directory."""
    cf = mesh_work(layer_path, mesh_dir).files
    fragments: Dict[str, List[str]] = {}
    for name in cf.list(prefix=prefix, flat=True):
        parts = name.split(":")
        if len(parts) >= 3 and parts[1] == str(lod) and parts[0].isdigit():
            fragments.setdefault(parts[0], []).append(name)
    cf.put_jsons(((f"{label}:{lod}", {"fragments": sorted(names)}) for label, names in fragments.items()),
                 compress=None)


def index_file_name(cv: CloudVolume, mip: int, shape: Sequence[int], box: Bbox) -> str:
    """The spatial index file of a block `box` (voxels at `mip`) on a grid of `shape` blocks."""
    resolution = cv.meta.resolution(mip)
    index = SpatialIndex(cv.cloudpath, cv.meta.bounds(mip), Vec(*shape) * resolution, config=cv.config,
                         resolution=resolution.tolist())
    return next(iter(index.index_file_paths_for_bbox(Bbox(box.minpt * resolution, box.maxpt * resolution))))


class RangedFile:
    """A stored file read in byte ranges on demand; MapBuffer reads its index and values through it.

    `prefetch` fetches the ranges that will be asked for in one go, so reading many values costs
    one request per contiguous run rather than one per value.
    """

    def __init__(self, cf: CloudFiles, path: str):
        self.cf, self.path, self.blocks, self.size = cf, path, [], None

    def fetch(self, start: int, end: Optional[int]) -> bytes:
        if end is None:
            end = len(self)
        for block_start, data in self.blocks:
            if block_start <= start and end <= block_start + len(data):
                return data[start - block_start:end - block_start]
        return self.cf.get({"path": self.path, "start": start, "end": end})

    def prefetch(self, ranges: Sequence[Tuple[int, Optional[int]]]) -> None:
        self.blocks = [(start, self.fetch(start, end)) for start, end in ranges]

    def __len__(self) -> int:
        if self.size is None:
            self.size = self.cf.size(self.path)
        return self.size

    def __getitem__(self, span: slice) -> bytes:
        return self.fetch(span.start or 0, span.stop)


def runs(indices: np.ndarray) -> List[Tuple[int, int]]:
    """Consecutive runs [first, last] of sorted integers."""
    if len(indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    ends = np.concatenate([indices[breaks], [indices[-1]]])
    return list(zip(starts.tolist(), ends.tolist()))


def read_fragment_index(cf: CloudFiles, name: str) -> MapBuffer:
    """The MapBuffer of one block, with its header and label index read (two small reads)."""
    buffer = MapBuffer(RangedFile(cf, name))
    buffer.index()
    return buffer


def read_selected(buffer: MapBuffer, labels: np.ndarray) -> Iterator[Tuple[int, int, meshes.Mesh]]:
    """(label, voxel count, piece) for those of `labels` that this block holds: one ranged read
    per run of consecutive entries."""
    index = buffer.index()
    chosen = np.flatnonzero(np.isin(index[:, 0], labels))
    ranges = []
    for first, last in runs(chosen):
        stop = int(index[last + 1, 1]) if last + 1 < len(index) else None
        ranges.append((int(index[first, 1]), stop))
    buffer.buffer.prefetch(ranges)
    for i in chosen:
        count, mesh = meshes.decode_fragment(buffer.getindex(int(i)))
        yield int(index[i, 0]), count, mesh
    buffer.buffer.prefetch([])


def pack_bits(indices: np.ndarray, length: int) -> str:
    bits = np.zeros(length, dtype=bool)
    bits[indices] = True
    return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def unpack_bits(packed: str, length: int) -> np.ndarray:
    return np.flatnonzero(np.unpackbits(np.frombuffer(base64.b64decode(packed), np.uint8), count=length))


def gather(cf: CloudFiles, record: ForgeRecord, blocks: str, wanted) -> Iterator[Tuple[int, int, list]]:
    """(label, whole-volume voxel count, pieces) for the selected labels, from the listed blocks.

    Labels are read a batch at a time, so a task holds the pieces of at most LABELS_PER_BATCH
    labels however many it merges; between batches it keeps only the blocks' label indexes.
    """
    grid = record.grid
    chosen = set(unpack_bits(blocks, len(grid)).tolist())
    names = [fragment_name(box) for i, box in enumerate(grid) if i in chosen]
    with ThreadPoolExecutor(max_workers=8) as pool:
        buffers = list(pool.map(lambda name: read_fragment_index(cf, name), names))
        present = np.unique(np.concatenate([np.zeros(0, np.uint64)] + [b.index()[:, 0] for b in buffers]))
        selected = present[wanted(present)]
        for start in range(0, len(selected), LABELS_PER_BATCH):
            batch = selected[start:start + LABELS_PER_BATCH]
            found: Dict[int, Tuple[int, list]] = {}
            for block in pool.map(lambda buffer, labels=batch: list(read_selected(buffer, labels)), buffers):
                for label, count, mesh in block:
                    total, pieces = found.get(label, (0, []))
                    pieces.append(mesh)
                    found[label] = (total + count, pieces)
            for label in sorted(found):
                yield (label, *found.pop(label))


def merged_meshes(cf: CloudFiles, record: ForgeRecord, blocks: str,
                  wanted) -> Iterator[Tuple[int, meshes.Mesh]]:
    """Each selected label's pieces welded into one mesh, global dust (by whole-volume count)
    dropped; local dust was dropped by the forge."""
    options = record.mesh_options
    dust = options.dust_threshold if options.dust_global else 0
    planes = record.seam_planes()
    for label, count, pieces in gather(cf, record, blocks, wanted):
        mesh = meshes.concatenate(pieces)
        if count >= dust and len(mesh.faces):
            yield label, meshes.weld_seams(mesh, planes, record.resolution)


def multires_meshes(cf: CloudFiles, record: ForgeRecord, blocks: str, wanted,
                    nlod: int) -> Iterator[Tuple[int, bytes, bytes]]:
    """(label, manifest, fragment data) of each selected label's multi-resolution mesh; a label
    whose mesh is nothing but zero-volume flaps (zmesh leaves some for objects of a few voxels)
    gets none."""
    for label, mesh in merged_meshes(cf, record, blocks, wanted):
        written = multires_fragments(mesh, nlod + 1, record.resolution, label)
        if written is not None:
            yield (label, *written)


def forged(layer_path: str, mesh_dir: str) -> Tuple[CloudFiles, ForgeRecord]:
    """The mesh directory's files and stage 1's record, for a merge task."""
    work = mesh_work(layer_path, mesh_dir)
    return work.files, work.load(FORGE_RECORD, ForgeRecord)


@queueable
def MeshMergeTask(layer_path: str, mesh_dir: str, blocks: str, label_range: Sequence[int], nlod: int) -> None:
    """Write the meshes of labels in [first, last]: legacy files (nlod 0) or multi-resolution ones."""
    cf, record = forged(layer_path, mesh_dir)
    first, last = label_range
    wanted = lambda labels: (labels >= first) & (labels <= last)
    if nlod == 0:
        for label, mesh in merged_meshes(cf, record, blocks, wanted):
            cf.put(f"{label}:0:1", mesh.to_precomputed(), compress="gzip")
            cf.put_json(f"{label}:0", {"fragments": [f"{label}:0:1"]})
        return
    for label, manifest, data in multires_meshes(cf, record, blocks, wanted, nlod):
        cf.put(str(label), data, compress=None)
        cf.put(f"{label}.index", manifest, compress=None)


@queueable
def MeshShardTask(layer_path: str, mesh_dir: str, blocks: str, shard: int, nlod: int) -> None:
    """Write one whole shard file of multi-resolution meshes: the labels that hash to `shard`."""
    cf, record = forged(layer_path, mesh_dir)
    spec = ShardingSpecification.from_dict(cf.get_json("info")["sharding"])
    wanted = lambda labels: shard_numbers(spec, labels) == shard
    write_mesh_shard(cf, spec, multires_meshes(cf, record, blocks, wanted, nlod))


def write_mesh_shard(cf: CloudFiles, spec: ShardingSpecification,
                     meshes_of_shard: Iterable[Tuple[int, bytes, bytes]]) -> None:
    """Write the one shard file of (label, manifest, fragment data) items that all hash to it."""
    stored, manifest_sizes = {}, {}
    for label, manifest, data in meshes_of_shard:
        stored[label], manifest_sizes[label] = data + manifest, len(manifest)
    if stored:
        (name, binary), = synthesize_shard_files(spec, stored, manifest_sizes).items()
        cf.put(name, binary, compress=None)


def shard_numbers(spec: ShardingSpecification, labels: np.ndarray) -> np.ndarray:
    return np.array([int(spec.compute_shard_location(int(label)).shard_number, 16) for label in labels],
                    dtype=np.int64)
