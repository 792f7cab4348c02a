"""Multi-resolution meshes as Neuroglancer draws them: every level of detail closed, a coarse cell
next to finer ones meeting without cracks, the finest level enclosing the legacy mesh's volume.

An independent reader decodes what the merge wrote: manifests parsed from the format description,
Draco fragments, shards found through CloudVolume's shard reader. Vertices are welded by their
exact quantized position, in units of a finest-level quantum, so nothing is forgiven by a tolerance
except where Neuroglancer itself draws two levels side by side.
"""
import DracoPy
import numpy as np
import pytest
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from conftest import run_cli
from scipy.spatial import cKDTree

from igneous_like.multires import Mesh, multires_fragments
from igneous_like.queues import run_locally
from igneous_like.task_creation import (
    create_mesh_manifest_tasks,
    create_meshing_tasks,
    create_sharded_multires_mesh_tasks,
)

RESOLUTION = np.array([16.0, 16.0, 40.0])
NLOD = 2


def run(tasks):
    run_locally(tasks, 1, True, tasks.description)


def spheres() -> np.ndarray:
    """Four balls of 440-560 nm radius in 160x160x64 voxels of 16x16x40 nm, each crossing blocks."""
    centres = (np.array([[40, 40, 32], [120, 40, 32], [40, 120, 32], [120, 120, 32]]) + 0.5) * RESOLUTION
    grid = (np.indices((160, 160, 64)).reshape(3, -1).T + 0.5) * RESOLUTION
    labels = np.zeros(160 * 160 * 64, np.uint32)
    for label, (centre, radius) in enumerate(zip(centres, [440, 480, 520, 560]), start=1):
        labels[np.linalg.norm(grid - centre, axis=1) <= radius] = label
    return np.asfortranarray(labels.reshape(160, 160, 64))


# -- the reader ---------------------------------------------------------------------------------

def parse_manifest(binary: bytes):
    """(chunk shape, grid origin, vertex offsets, [(positions, sizes) per level]), per meshes.md."""
    floats = np.frombuffer(binary, "<f4", 6)
    num_lods = int(np.frombuffer(binary, "<u4", 1, 24)[0])
    at = 28 + 4 * num_lods  # past lod_scales
    offsets = np.frombuffer(binary, "<f4", 3 * num_lods, at).reshape(num_lods, 3)
    at += 12 * num_lods
    counts = np.frombuffer(binary, "<u4", num_lods, at).astype(int)
    at += 4 * num_lods
    levels = []
    for count in counts:
        positions = np.frombuffer(binary, "<u4", 3 * count, at).reshape(3, count).T.astype(np.int64)
        sizes = np.frombuffer(binary, "<u4", count, at + 12 * count).astype(np.int64)
        levels.append((positions, sizes))
        at += 16 * count
    assert at == len(binary)
    return floats[:3].astype(np.float64), floats[3:].astype(np.float64), offsets, levels


def decode_levels(manifest: bytes, data: bytes, bits: int):
    """Per level: [(cell position, quantized vertices (int), faces)] of its nonempty fragments."""
    _, _, offsets, levels = parse_manifest(manifest)
    assert not offsets.any()
    assert sum(int(sizes.sum()) for _, sizes in levels) == len(data)
    decoded, start = [], 0
    for positions, sizes in levels:
        fragments = []
        for position, size in zip(positions, sizes):
            if size:
                mesh = DracoPy.decode(data[start:start + size])
                points = np.asarray(mesh.points, np.float64).reshape(-1, 3)
                assert np.array_equal(points, np.round(points)) and points.min() >= 0
                assert points.max() <= 2 ** bits - 1
                fragments.append((position, points.astype(np.int64),
                                  np.asarray(mesh.faces, np.int64).reshape(-1, 3)))
            start += size
        decoded.append(fragments)
    return decoded


def read_multires(cv: CloudVolume, label: int):
    """The label's manifest and fragment data, from its own files or from its shard."""
    mesh_dir = CloudFiles(cv.cloudpath + "/" + cv.info["mesh"])
    if not cv.mesh.meta.is_sharded():
        return mesh_dir.get(f"{label}.index"), mesh_dir.get(str(label))
    shard, start, size = cv.mesh.reader.exists(label, cv.mesh.path, return_byte_range=True)
    shard = shard.split("/")[-1]
    manifest = mesh_dir.get({"path": shard, "start": start, "end": start + size})
    total = sum(int(sizes.sum()) for _, sizes in parse_manifest(manifest)[3])
    return manifest, mesh_dir.get({"path": shard, "start": start - total, "end": start})


class Level:
    """One level of detail of one label: vertices in finest-level quanta (exact integers) and nm."""

    def __init__(self, lod: int, fragments, chunk_shape, grid_origin, bits):
        self.lod, self.fragments, self.quantum = lod, fragments, 2 ** bits - 1
        self.stored = np.concatenate([points for _, points, _ in fragments])
        self.units = np.concatenate([(pos * self.quantum + points) << lod for pos, points, _ in fragments])
        starts = np.cumsum([0] + [len(points) for _, points, _ in fragments])
        self.faces = np.concatenate([faces + s for (_, _, faces), s in zip(fragments, starts)])
        self.cells = np.concatenate([np.repeat(pos[None], len(faces), axis=0) for pos, _, faces in fragments])
        self.nm = (grid_origin + chunk_shape * self.units / self.quantum) * RESOLUTION

    def welded_faces(self) -> np.ndarray:
        _, inverse = np.unique(self.units, axis=0, return_inverse=True)
        return inverse.reshape(-1)[self.faces]


def octants(level: Level) -> np.ndarray:
    """Neuroglancer's 2x2x2 partition of level-k fragments: per triangle and axis, 0 if every
    corner is at most the half point (2**(bits-1)), else 1 if every corner is at least it, else -1
    (the triangle fits no octant)."""
    half = level.quantum // 2 + 1
    corners = level.stored[level.faces]
    return np.where((corners <= half).all(axis=1), 0, np.where((corners >= half).all(axis=1), 1, -1))


def open_boundary(units: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The edges (pairs of points) of the faces, welded by position, that only one face has."""
    vertices, inverse = np.unique(units, axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    edges, counts = np.unique(edges[:, 0] * len(vertices) + edges[:, 1], return_counts=True)
    edges = edges[counts == 1]
    return vertices[np.stack([edges // len(vertices), edges % len(vertices)], axis=1)].astype(np.float64)


def stray_points(points: np.ndarray, segments: np.ndarray, tolerance: float) -> int:
    """How many of `points` lie farther than `tolerance` from every segment (pair of points)."""
    if len(segments) == 0:
        return len(points)
    points = points[cKDTree(segments.reshape(-1, 3)).query(points)[0] > tolerance]  # not at a corner
    start, step = segments[:, 0], segments[:, 1] - segments[:, 0]
    stray = 0
    for chunk in np.array_split(points, len(points) // 256 + 1):
        offset = chunk[:, None] - start[None]
        t = np.clip((offset * step[None]).sum(axis=2) / (step ** 2).sum(axis=1), 0, 1)
        distances = np.linalg.norm(offset - t[..., None] * step[None], axis=2).min(axis=1)
        stray += int((distances > tolerance).sum())
    return stray


def open_edges(faces: np.ndarray) -> int:
    """Edges not shared by exactly two triangles (and triangles with a repeated corner count too)."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges[:, 0] * (int(faces.max()) + 1) + edges[:, 1], return_counts=True)
    return int((counts != 2).sum()) + int((edges[:, 0] == edges[:, 1]).sum())


def volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed enclosed volume by the divergence theorem (nm^3)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def read_legacy(mesh_dir: CloudFiles, label: int):
    """The label's legacy mesh (its fragments per the format: vertex count, xyz float32, faces),
    vertices welded by position."""
    vertices, faces = [], []
    for name in mesh_dir.get_json(f"{label}:0")["fragments"]:
        binary = mesh_dir.get(name)
        count = int(np.frombuffer(binary, "<u4", 1)[0])
        offset = sum(map(len, vertices))
        faces.append(np.frombuffer(binary, "<u4", offset=4 + 12 * count).reshape(-1, 3) + offset)
        vertices.append(np.frombuffer(binary, "<f4", 3 * count, 4).reshape(-1, 3))
    welded, inverse = np.unique(np.concatenate(vertices).astype(np.float64), axis=0, return_inverse=True)
    return welded, inverse.reshape(-1)[np.concatenate(faces).astype(np.int64)]


# -- what the merge wrote -----------------------------------------------------------------------

def merged_three_ways(path: str, labels, shape):
    """Forge once, then merge legacy, multi-resolution and sharded; each read right after writing."""
    run(create_meshing_tasks(path, shape=shape, object_ids=labels))
    mesh_dir = CloudFiles(path + "/" + CloudVolume(path).info["mesh"])
    run(create_mesh_manifest_tasks(path, magnitude=0, nlod=0))
    found = {"path": path, "legacy": {label: read_legacy(mesh_dir, label) for label in labels}}
    merges = {"multires": lambda: create_mesh_manifest_tasks(path, magnitude=0, nlod=NLOD),
              "sharded": lambda: create_sharded_multires_mesh_tasks(path, nlod=NLOD, labels_per_shard=2)}
    for kind, tasks in merges.items():
        run(tasks())
        cv = CloudVolume(path, progress=False)
        assert cv.mesh.meta.is_multires() and cv.mesh.meta.is_sharded() == (kind == "sharded")
        bits = cv.mesh.meta.info["vertex_quantization_bits"]
        found[kind] = {}
        for label in labels:
            manifest, data = read_multires(cv, label)
            chunk_shape, grid_origin, _, _ = parse_manifest(manifest)
            levels = decode_levels(manifest, data, bits)
            found[kind][label] = (parse_manifest(manifest),
                                  [Level(k, f, chunk_shape, grid_origin, bits) for k, f in enumerate(levels)])
    return found


@pytest.fixture(scope="module")
def sphere_meshes(tmp_path_factory):
    from igneous_like.layers import write_array
    path = write_array(f"file://{tmp_path_factory.mktemp('spheres')}/seg", spheres(), "segmentation",
                       chunk=(64, 64, 32))
    return merged_three_ways(path, [1, 2, 3, 4], (64, 64, 32))


@pytest.fixture(scope="module")
def real_meshes(real_seg, tmp_path_factory):
    """The objects of a 128x128x64 real crop above 3000 voxels, forged in 32x32x16 blocks."""
    from igneous_like.layers import write_array
    crop = np.asfortranarray(real_seg[200:328, 200:328, 200:264])
    uniq, counts = np.unique(crop, return_counts=True)
    labels = [int(u) for u, c in zip(uniq, counts) if u and c >= 3000]
    for label in labels:  # every kept object crosses several blocks
        blocks = np.argwhere(crop == label) // [32, 32, 16]
        assert len(np.unique(blocks @ [1, 4, 16])) >= 3, label
    path = write_array(f"file://{tmp_path_factory.mktemp('real')}/seg", crop, "segmentation",
                       chunk=(32, 32, 16))
    return merged_three_ways(path, labels, (32, 32, 16))


MESHES = ["sphere_meshes", "real_meshes"]


@pytest.mark.parametrize("dataset", MESHES)
def test_legacy_meshes_are_closed(dataset, request):
    for label, (vertices, faces) in request.getfixturevalue(dataset)["legacy"].items():
        assert open_edges(faces) == 0, label
        assert volume(vertices, faces) > 0, label


@pytest.mark.parametrize("kind", ["multires", "sharded"])
@pytest.mark.parametrize("dataset", MESHES)
def test_every_level_of_detail_is_closed(dataset, kind, request):
    found = request.getfixturevalue(dataset)
    failures = {}
    for label, (_, levels) in found[kind].items():
        assert len(levels) == NLOD + 1, label
        opened = [open_edges(level.welded_faces()) for level in levels]
        if any(opened):
            failures[label] = opened
    assert not failures  # label -> open edges per level


@pytest.mark.parametrize("kind", ["multires", "sharded"])
@pytest.mark.parametrize("dataset", MESHES)
def test_finest_level_encloses_the_legacy_volume(dataset, kind, request):
    found = request.getfixturevalue(dataset)
    for label, (_, levels) in found[kind].items():
        legacy = volume(*found["legacy"][label])
        assert volume(levels[0].nm, levels[0].faces) == pytest.approx(legacy, rel=0.01), label
        for level in levels[1:]:  # coarser levels still enclose about as much
            assert volume(level.nm, level.faces) == pytest.approx(legacy, rel=0.05), (label, level.lod)


@pytest.mark.parametrize("kind", ["multires", "sharded"])
@pytest.mark.parametrize("dataset", MESHES)
def test_levels_side_by_side_meet_without_cracks(dataset, kind, request):
    """Neuroglancer draws a level-k fragment by octants, next to level k-1 fragments where it has
    them. Drawn as a checkerboard of level-(k-1) cells, alternately from each level, the rims of
    the two parts coincide: no point of one lies farther from the other than two level-k quanta
    (the two levels store the same wall vertices on different grids)."""
    gaps, rims = {}, 0
    for label, (_, levels) in request.getfixturevalue(dataset)[kind].items():
        for fine, coarse in zip(levels, levels[1:]):
            bits = octants(coarse)
            assert (bits >= 0).all(), (label, coarse.lod)  # no triangle crosses its octant's walls
            odd = (2 * coarse.cells + bits).sum(axis=1) % 2 == 1
            fine_rim = open_boundary(fine.units, fine.faces[fine.cells.sum(axis=1) % 2 == 0])
            coarse_rim = open_boundary(coarse.units, coarse.faces[odd])
            rims += len(fine_rim)
            tolerance = 2 ** (coarse.lod + 1)
            stray = (stray_points(fine_rim.reshape(-1, 3), coarse_rim, tolerance)
                     + stray_points(coarse_rim.reshape(-1, 3), fine_rim, tolerance))
            if stray:
                gaps[(label, coarse.lod)] = stray
    assert rims > 1000 and not gaps  # (label, coarse level) -> rim points with no counterpart


@pytest.mark.parametrize("kind", ["multires", "sharded"])
@pytest.mark.parametrize("dataset", MESHES)
def test_octree_is_complete_and_in_morton_order(dataset, kind, request):
    """Fragments in Z-order, every fragment's parent present, coarser levels with fewer triangles."""
    for label, (manifest, levels) in request.getfixturevalue(dataset)[kind].items():
        positions = [keys for keys, _ in manifest[3]]
        for lod, keys in enumerate(positions):
            codes = sum(((keys[:, axis] >> bit) & 1) << (3 * bit + axis)
                        for bit in range(16) for axis in range(3))
            assert (np.diff(codes) > 0).all(), (label, lod)
            if lod + 1 < len(positions):
                parents = {tuple(p) for p in positions[lod + 1].tolist()}
                assert {tuple(p) for p in (keys >> 1).tolist()} <= parents, (label, lod)
        assert len(positions[-1]) == 1, label  # one root
        triangles = [len(level.faces) for level in levels]
        assert all(a > b for a, b in zip(triangles, triangles[1:])), (label, triangles)


def test_shards_read_the_same_in_tensorstore(real_meshes):
    """TensorStore's own sharded-format reader finds each label's manifest where ours did."""
    ts = pytest.importorskip("tensorstore")
    cv = CloudVolume(real_meshes["path"], progress=False)
    mesh_path = cv.cloudpath + "/" + cv.info["mesh"] + "/"
    store = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "base": mesh_path,
                             "metadata": cv.mesh.meta.info["sharding"]}).result()
    assert len([name for name in CloudFiles(mesh_path).list() if name.endswith(".shard")]) > 1
    for label in real_meshes["sharded"]:
        stored = store.read(int(label).to_bytes(8, "big")).result().value
        assert bytes(stored) == read_multires(cv, label)[0], label


def test_nlod_beyond_the_octree_limit_is_refused(make_layer):
    path = make_layer("seg", np.ones((8, 8, 8), np.uint32), "segmentation")
    for verb in ("merge", "merge-sharded"):
        result = run_cli("mesh", verb, path, "--nlod", "8", check=False)
        assert result.returncode == 2 and "--nlod must be between 0 and 7" in result.stderr, verb


def test_a_mesh_of_nothing_but_flaps_gets_no_multires_mesh():
    """zmesh's simplifier turns some objects of a few voxels into two triangles back to back: with
    nothing enclosed, such an object gets no multi-resolution mesh rather than a broken one."""
    vertices = np.array([[1656, 320, 2580], [1664, 312, 2580], [1653.3, 309.3, 2573.3]], np.float32)
    flap = Mesh(vertices, np.array([[1, 2, 0], [2, 1, 0]], np.uint32), None)
    assert multires_fragments(flap, 3, RESOLUTION, 7) is None
