"""Every option given on the command line reaches the task JSON that workers run."""
import json

import numpy as np
from conftest import run_cli
from taskqueue import TaskQueue


def enqueued_kwargs(queue: str) -> list:
    """The keyword arguments of every task in a file queue, as a worker will decode them."""
    return [task.kwargs for task in TaskQueue(queue).tasks()]


def test_downsample_options_reach_tasks(make_layer, tmp_path):
    path = make_layer("layer", np.ones((64, 64, 64), np.uint16), "image", offset=(4, 0, 0))
    queue = f"fq://{tmp_path}/q"
    run_cli("image", "downsample", path, "--mip", 0, "--num-mips", 2, "--volumetric", "--method", "max",
            "--fill-missing", "--delete-bg", "--bg-color", 7, "--compress", "br", "--queue", queue)
    (kwargs,) = enqueued_kwargs(queue)
    assert kwargs["mip"] == 0 and kwargs["num_mips"] == 2
    assert kwargs["offset"] == [4, 0, 0] and kwargs["shape"] == [64, 64, 64]
    assert kwargs["options"] == {"factor": [2, 2, 2], "method": "max", "sparse": False,
                                 "fill_missing": True, "delete_black_uploads": True,
                                 "background_color": 7, "compress": "br"}
    json.dumps(kwargs)  # JSON-native all the way down


def test_transfer_options_reach_tasks(make_layer, tmp_path):
    path = make_layer("src", np.ones((64, 64, 64), np.uint8), "image", offset=(4, 0, 0))
    queue = f"fq://{tmp_path}/q"
    run_cli("image", "xfer", path, f"file://{tmp_path}/dest", "--translate", "1,2,3", "--max-mips", 0,
            "--method", "avg", "--sparse", "--compress", "none", "--factor", "2,2,1", "--queue", queue)
    (kwargs,) = enqueued_kwargs(queue)
    assert kwargs["translate"] == [1, 2, 3] and kwargs["offset"] == [5, 2, 3]
    assert kwargs["num_mips"] == 0 and kwargs["src_path"] == path
    options = kwargs["options"]
    assert options["method"] == "avg" and options["sparse"] is True and options["compress"] is False


def test_sparse_and_sharded_options_reach_tasks(make_layer, tmp_path):
    path = make_layer("layer", np.ones((64, 64, 64), np.uint32), "segmentation")
    queue = f"fq://{tmp_path}/q"
    run_cli("image", "downsample", path, "--num-mips", 1, "--sparse", "--sharded", "--queue", queue)
    (kwargs,) = enqueued_kwargs(queue)
    assert kwargs["options"]["sparse"] is True and kwargs["options"]["method"] == "mode"
    assert kwargs["options"]["compress"] is False  # shard files stay plain; chunks are gzipped inside
