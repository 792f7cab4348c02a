"""Nothing a file or a message holds can run code, no path leaves the layer, no half-written file.

- A model that would run code when unpickled (it creates a marker file) never runs: not named
  by a queue message (the task fails into the dead-letter queue), not given to `image classify
  predict` or `table classify apply` (one line, exit 2).
- Mesh and skeleton directories (`--dir`, the info's `mesh`, `skeletons`) and scale keys that
  lead out of the layer are refused with one line, exit 2, and nothing around the layer changes
  (the whole surrounding tree is hashed before and after).
- A writer killed in the middle of a chunk (the kernel's file size limit, SIGXFSZ) leaves no
  partial file under the chunk's name; the layer still reads the chunk written before.
"""
import hashlib
import json
import pathlib
import pickle
import signal
import subprocess
import sys
from functools import partial

import numpy as np
import pandas as pd
import pytest
from cloudvolume import CloudVolume
from conftest import REPO, run_cli, write_layer

from igneous_like.errors import UserError
from igneous_like.paths import check_info, inside_layer
from igneous_like.queues import enqueue, status
from igneous_like.tasks.classify import ClassifyTask


class RunsCode:
    """Unpickling this creates `marker`: what any code in a pickle could do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def evil_model(tmp_path) -> tuple:
    marker, model = tmp_path / "marker", tmp_path / "evil.model"
    model.write_bytes(pickle.dumps(RunsCode(marker)))
    return model, marker


def small_image(tmp_path) -> str:
    return write_layer(f"file://{tmp_path}/image", np.zeros((32, 32, 16), np.uint8), "image",
                       chunk=(32, 32, 16))


def one_line_refusal(result) -> str:
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_queue_message_naming_a_pickle_model_does_not_run_it(tmp_path):
    image, (model, marker) = small_image(tmp_path), evil_model(tmp_path)
    task = partial(ClassifyTask, image_path=image, dest_path=f"file://{tmp_path}/prob",
                   model_path=f"file://{model}", model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
                   mip=0, offset=[0, 0, 0], shape=[32, 32, 16])
    queue = f"fq://{tmp_path / 'queue'}"
    enqueue([task], queue)
    result = run_cli("execute", "-x", "--max-attempts", 2, "--retry-delay", 0, queue, check=False)
    assert not marker.exists()
    assert "never loads pickles" in result.stderr and "failed 2 times" in result.stderr
    assert (status(queue)["enqueued"], status(queue)["dead"]) == (0, 1)
    assert not (tmp_path / "prob").exists()


def test_pickle_model_files_are_refused_unread(tmp_path):
    image, (model, marker) = small_image(tmp_path), evil_model(tmp_path)
    result = run_cli("image", "classify", "predict", image, f"file://{tmp_path}/prob", "--model", model,
                     check=False)
    assert "not a voxel classifier model file" in one_line_refusal(result)
    cells, out = tmp_path / "cells.csv", tmp_path / "out.csv"
    pd.DataFrame({"volume": [1.0, 2.0]}).to_csv(cells, index=False)
    result = run_cli("table", "classify", "apply", cells, model, out, check=False)
    assert "never loads pickles" in one_line_refusal(result)
    assert not marker.exists() and not (tmp_path / "prob").exists() and not out.exists()


def tree(root: pathlib.Path) -> dict:
    """Every file (by content) and directory under `root`."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in root.rglob("*")}


@pytest.fixture
def layers(tmp_path):
    """DATA/seg (a segmentation whose info we spoil), its sibling DATA/other of the same geometry,
    a file beside them, and a queue outside DATA/. `tmp_path` itself is what is hashed."""
    labels = np.arange(32 * 32 * 16, dtype=np.uint32).reshape(32, 32, 16) // 1000 + 1
    for name in ("seg", "other"):
        write_layer(f"file://{tmp_path}/data/{name}", labels, "segmentation", chunk=(16, 16, 16))
    (tmp_path / "data" / "notes.txt").write_text("keep me")
    queue_dir = tmp_path.parent / f"{tmp_path.name}-queue"
    return tmp_path, f"file://{tmp_path}/data/seg", f"fq://{queue_dir}"


def spoil_info(seg: str, **changes) -> None:
    path = pathlib.Path(seg[len("file://"):]) / "info"
    info = json.loads(path.read_text())
    key = changes.pop("key", None)
    if key:
        info["scales"][0]["key"] = key
    path.write_text(json.dumps(dict(info, **changes)))


CASES = {  # name: (changes to seg's info, the command after `igneous-like`)
    "mesh rm --dir ..": ({}, ["mesh", "rm", "SEG", "--dir", ".."]),
    "mesh forge --dir ../x": ({}, ["mesh", "forge", "SEG", "--dir", "../x", "--queue", "QUEUE"]),
    "mesh forge --dir ../../x": ({}, ["mesh", "forge", "SEG", "--dir", "../../x", "--queue", "QUEUE"]),
    "info mesh .. then mesh rm": ({"mesh": ".."}, ["mesh", "rm", "SEG"]),
    "info skeletons .. then skeleton forge": ({"skeletons": ".."}, ["skeleton", "forge", "SEG", "--queue",
                                                                     "QUEUE"]),
    "skeleton rm --dir ..": ({}, ["skeleton", "rm", "SEG", "--dir", ".."]),
    "info skeletons .. then skeleton rm": ({"skeletons": ".."}, ["skeleton", "rm", "SEG"]),
    "info mesh .. then mesh xfer": ({"mesh": ".."}, ["mesh", "xfer", "SEG", "SEG-copy"]),
    "mesh spatial-index create --dir ../x": ({}, ["mesh", "spatial-index", "create", "SEG", "--dir", "../x",
                                                  "--queue", "QUEUE"]),
    "skeleton spatial-index create --dir ..": ({}, ["skeleton", "spatial-index", "create", "SEG",
                                                    "--dir", "..", "--queue", "QUEUE"]),
    "scale key ../other/16_16_40 then image rm": ({"key": "../other/16_16_40"}, ["image", "rm", "SEG"]),
}


@pytest.mark.parametrize("case", CASES)
def test_paths_out_of_the_layer_change_nothing(layers, case):
    root, seg, queue = layers
    changes, command = CASES[case]
    spoil_info(seg, **changes)
    before = tree(root)
    args = [arg.replace("SEG", seg).replace("QUEUE", queue) for arg in command]
    result = run_cli(*args, check=False)
    assert "is not a path inside the layer" in one_line_refusal(result)
    assert tree(root) == before


@pytest.mark.parametrize("name", ["..", "../other", "a/../../b", ".", "./", "/abs/mesh", "~/mesh",
                                  "file:///tmp/x", "s3://bucket/x", "", "a\\..\\..\\b", None, ["mesh"]])
def test_the_rule_refuses_every_way_out(name):
    with pytest.raises(UserError, match="is not a path inside the layer"):
        inside_layer(name, "the mesh directory")
    with pytest.raises(UserError, match="info of L names skeletons"):
        check_info({"skeletons": name, "scales": [{"key": "8_8_40"}]}, "L")
    with pytest.raises(UserError, match="gives mip 1 the key"):
        check_info({"mesh": "mesh", "scales": [{"key": "8_8_40"}, {"key": name}]}, "L")


def test_the_rule_keeps_names_inside():
    for name in ("mesh", "mesh_mip_0_err_40", "skeletons/v1", "16_16_40", "segment_properties/"):
        assert inside_layer(name, "a name") == name
    check_info({"mesh": "mesh", "skeletons": "sk", "scales": [{"key": "8_8_40"}, {"key": "a/16_16_40"}]}, "L")


KILLED_WRITER = """
import resource, signal, sys
import numpy as np
import igneous_like  # every igneous_like process: its import makes file:// writes atomic
from cloudvolume import CloudVolume
path, compress, kill = sys.argv[1], sys.argv[2] == "gzip" and "gzip", sys.argv[3] == "kill"
if kill:  # Python ignores SIGXFSZ (the write then fails with EFBIG); this makes the kernel kill us
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
cv = CloudVolume(path, compress=compress, progress=False)
data = np.random.default_rng(2).integers(0, 2**32, (64, 64, 64), dtype=np.uint32)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))  # the chunk needs more
cv[0:64, 0:64, 0:64] = data
"""


@pytest.mark.parametrize("compress", ["gzip", "none"])
@pytest.mark.parametrize("how", ["kill", "error"])
def test_a_writer_stopped_mid_chunk_leaves_no_partial_chunk(tmp_path, compress, how):
    """CloudVolume's own upload of a compressed_segmentation chunk (.gz or not) over a complete
    one, stopped after 64 KiB: by SIGXFSZ (a kill: nothing runs after it) or by the EFBIG error.
    The old chunk stays, and no file is left beside it."""
    first = np.random.default_rng(1).integers(0, 2**32, (64, 64, 64), dtype=np.uint32)
    path = write_layer(f"file://{tmp_path}/seg", first, "segmentation", chunk=(64, 64, 64),
                       encoding="compressed_segmentation", compress=compress == "gzip" and "gzip")
    chunk = tmp_path / "seg" / "16_16_40" / ("0-64_0-64_0-64" + (".gz" if compress == "gzip" else ""))
    complete = chunk.read_bytes()
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, path, compress, how], cwd=REPO,
                            capture_output=True, text=True)
    if how == "kill":
        assert result.returncode == -signal.SIGXFSZ, result.stderr
    else:
        assert result.returncode == 1 and "File too large" in result.stderr, result.stderr
    assert chunk.read_bytes() == complete  # the complete chunk, not the first 64 KiB of the new one
    assert np.array_equal(np.asarray(CloudVolume(path, progress=False)[:, :, :])[..., 0], first)
    assert [p.name for p in chunk.parent.iterdir()] == [chunk.name]  # nothing beside it: bytes were unnamed


def test_writes_without_unnamed_files_go_through_a_hidden_name(tmp_path, monkeypatch):
    """Where the filesystem has no O_TMPFILE, the bytes go to a hidden name renamed over the file;
    a failed write removes it."""
    import os

    from igneous_like import atomic
    monkeypatch.setattr(atomic, "UNNAMED", 0)
    renamed = []
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: renamed.append(a) or os.rename(a, b))
    atomic.write_whole(str(tmp_path / "d" / "chunk"), b"whole")
    assert (tmp_path / "d" / "chunk").read_bytes() == b"whole" and os.listdir(tmp_path / "d") == ["chunk"]
    assert os.path.basename(renamed[0]).startswith(".chunk.") and renamed[0].endswith(atomic.TEMPORARY)

    class Broken:
        def read(self, size=-1):
            raise OSError("disk gone")
    with pytest.raises(OSError, match="disk gone"):
        atomic.write_whole(str(tmp_path / "d" / "chunk"), Broken())
    assert os.listdir(tmp_path / "d") == ["chunk"] and (tmp_path / "d" / "chunk").read_bytes() == b"whole"
