"""Igneous's forge options: hole filling, open or closed meshes at the volume's edge, dust judged
per block or per object, and its Python keywords.

References are independent whole-crop computations: scipy's binary_fill_holes per label, and
voxel counts per block and per object with numpy.
"""
import numpy as np
import pytest
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from conftest import run_cli
from scipy import ndimage

from igneous_like.queues import run_locally
from igneous_like.task_creation import create_mesh_manifest_tasks, create_meshing_tasks

RESOLUTION = np.array([16.0, 16.0, 40.0])
OFFSET = (100, 50, 7)
BLOCK = (64, 64, 32)  # 8 blocks over a 128x128x64 crop
ENCLOSED = 4_000_000_000  # a label put into a real cavity: an object inside another


@pytest.fixture(scope="module")
def crop(real_seg) -> np.ndarray:
    """A 128x128x64 crop whose objects have small enclosed cavities; one cavity gets its own label."""
    crop = np.array(real_seg[100:228, 300:428, 300:364], order="F")
    cavity = cavities(crop, 28336523)
    assert cavity.sum() == 3
    crop[cavity] = ENCLOSED
    return crop


def cavities(crop: np.ndarray, label: int) -> np.ndarray:
    mask = crop == label
    return ndimage.binary_fill_holes(mask) & ~mask


def forge_and_merge(path: str, **options) -> dict:
    """label -> legacy mesh, every label of the layer that got one."""
    run_locally(create_meshing_tasks(path, shape=BLOCK, **options), 1, True, "forge")
    run_locally(create_mesh_manifest_tasks(path, magnitude=0), 1, True, "merge")
    cv = CloudVolume(path, progress=False)
    names = CloudFiles(cv.cloudpath + "/" + cv.info["mesh"]).list()
    labels = sorted(int(name[:-2]) for name in names if name.endswith(":0"))
    return cv.mesh.get(labels, fuse=False) if labels else {}


def voxel_units(mesh) -> np.ndarray:
    """Vertices in crop voxel units: voxel i spans [i, i+1)."""
    return mesh.vertices / RESOLUTION - OFFSET


def open_edges(mesh) -> np.ndarray:
    """Edges used by one triangle only, after joining vertices at the same position; as pairs of
    positions (voxel units)."""
    vertices, inverse = np.unique(voxel_units(mesh).round(4), axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[mesh.faces]
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    return vertices[unique[counts == 1]]


def cavity_face_vertices(mesh, cavity: np.ndarray) -> int:
    """How many mesh vertices sit on a face of a cavity voxel: an inner surface around it."""
    centres = np.argwhere(cavity) + 0.5
    faces = np.concatenate([centres + step * np.eye(3)[axis] for axis in range(3) for step in (-0.5, 0.5)])
    face_keys = {tuple(k) for k in np.round(faces * 2).astype(int)}
    return sum(tuple(k) in face_keys for k in np.round(voxel_units(mesh) * 2).astype(int))


def test_fill_holes_removes_inner_surfaces(make_layer, crop):
    """Level 1: every object whose cavities scipy finds (all inside one block here, while blocks cut
    the objects) has no surface around them, and the enclosed object keeps its own closed mesh;
    without filling the same meshes have those inner surfaces."""
    hosts = {int(label): cavities(crop, label) for label in np.unique(crop) if label}
    hosts = {label: cavity for label, cavity in hosts.items() if cavity.any()}
    assert len(hosts) >= 4 and ENCLOSED not in hosts
    for label, cavity in hosts.items():
        where = np.argwhere(cavity)
        assert (where // BLOCK == where[0] // BLOCK).all(), "test premise: each cavity lies in one block"
        assert len(np.unique(np.argwhere(crop == label) // BLOCK, axis=0)) > 1, "test premise: cut objects"
    for fill, inner in [(0, True), (1, False)]:
        path = make_layer(f"fill{fill}", crop, "segmentation", offset=OFFSET, chunk=(32, 32, 32))
        found = forge_and_merge(path, simplification=False, fill_holes=fill)
        for label, cavity in hosts.items():
            assert (cavity_face_vertices(found[label], cavity) > 0) == inner, (fill, label)
            assert len(open_edges(found[label])) == 0, (fill, label)
        assert len(open_edges(found[ENCLOSED])) == 0
        assert cavity_face_vertices(found[ENCLOSED], crop == ENCLOSED) > 0


@pytest.mark.parametrize("edge,more", [("--closed-edge", []), ("--open-edge", ["--skip-simplify",
                                                                          "--skip-spatial-index"])])
def test_meshes_closed_or_open_at_the_volume_edge(make_layer, crop, edge, more):
    """Closed: every mesh is closed. Open: a mesh is open exactly where its object touches the
    volume's faces, and its open edges lie in the planes through the outermost voxel centres.
    (Igneous's --skip-* spellings work too.)"""
    path = make_layer("seg", crop, "segmentation", offset=OFFSET, chunk=(32, 32, 32))
    run_cli("mesh", "forge", path, "--shape", ",".join(map(str, BLOCK)), edge, *more)
    run_cli("mesh", "merge", path)
    names = CloudFiles(path + "/" + CloudVolume(path).info["mesh"]).list()
    assert any(name.endswith(".spatial") for name in names) == ("--skip-spatial-index" not in more)
    labels = [int(label) for label in np.unique(crop) if label]
    found = CloudVolume(path, progress=False).mesh.get(labels, fuse=False)
    assert set(found) == set(labels)
    edge_voxels = np.zeros(crop.shape, bool)
    edge_voxels[[0, -1]] = edge_voxels[:, [0, -1]] = edge_voxels[:, :, [0, -1]] = True
    touching = {int(label) for label in np.unique(crop[edge_voxels]) if label}
    assert 0 < len(touching) < len(labels)
    planes = np.array([[0.5] * 3, np.array(crop.shape) - 0.5])
    for label, mesh in found.items():
        rims = open_edges(mesh)
        if edge == "--closed-edge" or label not in touching:
            assert len(rims) == 0, label
        else:
            assert len(rims), label
            on_plane = np.isclose(rims[..., None, :], planes[None, None], atol=1e-3).any(axis=2)
            assert on_plane.any(axis=-1).all(), label  # both ends of each rim edge on a boundary plane


def test_dust_per_block_or_per_object(make_layer, crop):
    """--dust-local (Igneous's default) keeps a label where some block holds at least the threshold
    of its voxels; --dust-global where the whole object does."""
    threshold = 5000
    per_object = dict(zip(*np.unique(crop, return_counts=True)))
    per_block = {}
    for x in range(0, 128, BLOCK[0]):
        for y in range(0, 128, BLOCK[1]):
            for z in range(0, 64, BLOCK[2]):
                block = crop[x:x + BLOCK[0], y:y + BLOCK[1], z:z + BLOCK[2]]
                for label, count in zip(*np.unique(block, return_counts=True)):
                    per_block[label] = max(per_block.get(label, 0), count)
    local = {int(label) for label, count in per_block.items() if label and count >= threshold}
    whole = {int(label) for label, count in per_object.items() if label and count >= threshold}
    assert local < whole
    for name, dust_global, expected in [("local", False, local), ("global", True, whole)]:
        path = make_layer(name, crop, "segmentation", offset=OFFSET, chunk=(32, 32, 32))
        assert set(forge_and_merge(path, dust_threshold=threshold, dust_global=dust_global)) == expected, name


def test_igneous_keywords(make_layer, crop):
    """Igneous's spelling: object_ids, max_simplification_error and the mesh directory named
    after it; an unsupported frag_path is refused before anything is written."""
    path = make_layer("seg", crop, "segmentation", offset=OFFSET, chunk=(32, 32, 32))
    chosen = [int(label) for label in np.unique(crop)[1:4]]
    found = forge_and_merge(path, object_ids=chosen, max_simplification_error=10, progress=True,
                            cdn_cache=True, compress="gzip", sharded=False, dry_run=False)
    assert set(found) == set(chosen)
    assert CloudVolume(path).info["mesh"] == "mesh_mip_0_err_10"
    other = make_layer("other", crop, "segmentation", offset=OFFSET, chunk=(32, 32, 32))
    with pytest.raises(Exception, match="frag_path is not supported"):
        create_meshing_tasks(other, 0, BLOCK, frag_path="file:///elsewhere")
    assert "mesh" not in CloudVolume(other).info
