"""Bad input ends with one clear line on stderr and exit code 2, and nothing written or enqueued.

Each case runs the real CLI in a subprocess against small synthetic layers in its own directory,
then checks the message and that every file and directory there is exactly as before. The cases
run side by side (a CLI start costs about a second of imports) from one module fixture.
"""
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import run_cli, write_layer

SHAPE = (96, 80, 64)  # chunk 32: whole chunks in x and y at mip 0, a partial one at mip 1 in y
LAYERS = {  # placeholder: (dtype, layer type, voxel offset, chunk size)
    "seg": ("uint32", "segmentation", (0, 0, 0), (32, 32, 32)),
    "img": ("uint8", "image", (32, 0, 0), (32, 32, 32)),
    "flt": ("float32", "image", (0, 0, 0), (32, 32, 32)),
    "other": ("uint32", "segmentation", (0, 0, 0), (64, 64, 64)),  # an xfer destination that differs
}

NO_LAYER = r"no Neuroglancer Precomputed layer at file://"
BAD_QUEUE = r"unsupported queue foo://x"
NO_QUEUE = r"no task queue at fq://"
CASES = [  # (id, command line, what the message must say); {seg} {img} {flt} {other} are layers,
    # {tmp} this case's directory, {q} a file queue in it
    ("ds-missing-url", "image downsample file://{tmp}/nothing --queue {q}", NO_LAYER),
    ("ds-missing-plain", "image downsample {tmp}/nothing", NO_LAYER),
    ("ds-not-a-layer", "image downsample {tmp} --queue {q}", NO_LAYER),
    ("ds-garbled-info", "image downsample {tmp}/garbled --queue {q}", r"info file .* is not valid JSON"),
    ("ds-protocol", "image downsample foo://bar --queue {q}", r"unsupported protocol foo://"),
    ("xfer-missing-url", "image xfer file://{tmp}/nothing {tmp}/dest --queue {q}", NO_LAYER),
    ("xfer-missing-plain", "image xfer {tmp}/nothing {tmp}/dest", NO_LAYER),
    ("xfer-dest-protocol", "image xfer {seg} foo://bar --queue {q}", r"unsupported protocol foo://"),
    ("rm-missing-url", "image rm file://{tmp}/nothing --queue {q}", NO_LAYER),
    ("rm-missing-plain", "image rm {tmp}/nothing", NO_LAYER),
    ("rm-protocol", "image rm foo://bar", r"unsupported protocol foo://"),
    ("ds-mip", "image downsample {seg} --mip 3 --queue {q}", r"mip 3 does not exist .* mips 0 to 0"),
    ("ds-num-mips-0", "image downsample {seg} --num-mips 0 --queue {q}", r"--num-mips"),
    ("xfer-mip", "image xfer {seg} {tmp}/dest --mip 1 --queue {q}", r"mip 1 does not exist"),
    ("rm-mip", "image rm {seg} --mip -1 --queue {q}", r"mip -1 does not exist"),
    ("ds-jpeg-on-seg", "image downsample {seg} --encoding jpeg --queue {q}", r"jpeg .*corrupt labels"),
    ("ds-cseg-on-img", "image downsample {img} --encoding compressed_segmentation", r"for segmentation"),
    ("ds-png-on-float", "image downsample {flt} --encoding png --queue {q}", r"png needs uint8 or uint16"),
    ("xfer-png-on-seg", "image xfer {seg} {tmp}/dest --encoding png --queue {q}", r"png .*corrupt labels"),
    ("xfer-compresso-on-img", "image xfer {img} {tmp}/dest --encoding compresso", r"for segmentation"),
    ("xfer-crackle-on-img", "image xfer {img} {tmp}/dest --encoding crackle --queue {q}", r"segmentation"),
    ("ds-xrange-below", "image downsample {img} --xrange 0,64 --queue {q}", r"0,64 .*outside.* 32,128"),
    ("ds-zrange-beyond", "image downsample {seg} --zrange 32,96", r"--zrange 32,96 .*outside"),
    ("ds-yrange-empty", "image downsample {seg} --yrange 32,32 --queue {q}", r"--yrange 32,32 is empty"),
    ("ds-xrange-reversed", "image downsample {seg} --xrange 64,32 --queue {q}", r"--xrange 64,32 is empty"),
    ("xfer-bounds-outside", "image xfer {seg} {tmp}/dest --bounds 200,0,0,232,32,32 --queue {q}",
     r"200,0,0-232,32,32 lie outside"),
    ("xfer-bounds-reversed", "image xfer {seg} {tmp}/dest --bounds 64,0,0,32,32,32", r"is empty"),
    ("ds-factor-2", "image downsample {seg} --factor 2,2 --queue {q}", r"--factor.*expected 3"),
    ("ds-factor-0", "image downsample {seg} --factor 2,0,1", r"--factor values must be at least 1"),
    ("ds-chunk-letters", "image downsample {seg} --chunk-size a,b,c --queue {q}", r"--chunk-size.*integers"),
    ("xfer-bounds-3", "image xfer {seg} {tmp}/dest --bounds 1,2,3 --queue {q}", r"--bounds.*expected 6"),
    ("ds-factor-volumetric", "image downsample {seg} --factor 2,2,2 --volumetric --queue {q}",
     r"either --factor or --volumetric"),
    ("xfer-translate-offset", "image xfer {seg} {tmp}/dest --translate 1,0,0 --dest-voxel-offset 5,5,5 "
                              "--queue {q}", r"either --translate or --dest-voxel-offset"),
    ("ds-memory-tiny", "image downsample {seg} --memory 1000 --queue {q}", r"--memory 1000 is too small"),
    ("xfer-into-itself", "image xfer {seg} {seg} --queue {q}", r"destination is the source"),
    ("xfer-into-itself-plain", "image xfer {seg} {tmp}/seg/", r"destination is the source"),
    ("xfer-other-geometry", "image xfer {seg} {other} --queue {q}", r"a layer whose chunk_sizes"),
    ("xfer-into-image", "image xfer {seg} {img}", r"already holds a layer whose data_type"),
    ("ds-shape", "image downsample {seg} --shape 32,32,32 --num-mips 1 --queue {q}",
     r"--shape 32,32,32 must be a multiple of 64,64,32"),
    ("xfer-shape", "image xfer {seg} {tmp}/dest --chunk-size 64,64,64 --shape 32,32,32 --queue {q}",
     r"--shape 32,32,32 must be a multiple of 64,64,64"),
    ("rm-shape", "image rm {seg} --shape 48,32,32 --queue {q}", r"--shape 48,32,32 must be a multiple of 32"),
    ("ds-mode-float", "image downsample {flt} --method mode --queue {q}", r"mode needs integer labels"),
    ("xfer-mode-float", "image xfer {flt} {tmp}/dest --method mode", r"mode needs integer labels"),
    ("ds-sparse-max", "image downsample {img} --method max --sparse --queue {q}", r"--sparse .* not max"),
    ("ds-br-sharded", "image downsample {seg} --compress br --sharded --queue {q}", r"gzip or not at all"),
    ("xfer-br-sharded", "image xfer {seg} {tmp}/dest --compress br --sharded", r"gzip or not at all"),
    ("ds-queue-protocol", "image downsample {seg} --queue foo://x", BAD_QUEUE),
    ("xfer-queue-protocol", "image xfer {seg} {tmp}/dest --queue foo://x", BAD_QUEUE),
    ("rm-queue-protocol", "image rm {seg} --queue foo://x", BAD_QUEUE),
    ("execute-protocol", "execute -x foo://x", BAD_QUEUE),
    ("execute-missing", "execute -x fq://{tmp}/noqueue", NO_QUEUE),
    ("execute-missing-plain", "execute -x {tmp}/noqueue", NO_QUEUE),
    ("status-protocol", "queue status foo://x --interval 0", BAD_QUEUE),
    ("status-missing", "queue status {tmp}/noqueue --interval 0", NO_QUEUE),
    ("purge-missing", "queue purge fq://{tmp}/noqueue --yes", NO_QUEUE),
    ("skel-forge-missing", "skeleton forge {tmp}/nothing --queue {q}", NO_LAYER),
    ("skel-forge-image", "skeleton forge {img} --queue {q}", r"holds image data .* --threshold-gte"),
    ("skel-forge-mip", "skeleton forge {seg} --mip 2", r"mip 2 does not exist"),
    ("skel-forge-thresholds", "skeleton forge {img} --threshold-gte 9 --threshold-lte 3",
     r"above --threshold-lte"),
    ("skel-forge-labels-threshold", "skeleton forge {img} --threshold-gte 3 --labels 1,2 --queue {q}",
     r"either --labels or"),
    ("skel-forge-labels-letters", "skeleton forge {seg} --labels a,b", r"--labels.*integers"),
    ("skel-forge-fill-holes", "skeleton forge {seg} --fill-holes 2 --queue {q}", r"--fill-holes"),
    ("skel-forge-shape", "skeleton forge {seg} --shape 0,64,64", r"--shape values must be at least 1"),
    ("skel-merge-no-forge", "skeleton merge {seg} --queue {q}", r"no skeleton fragments"),
    ("skel-merge-sharded-no-forge", "skeleton merge-sharded {seg}", r"no skeleton fragments"),
    ("skel-clean-no-forge", "skeleton clean {seg}", r"no skeleton fragments"),
    ("skel-convert-none", "skeleton convert {seg} {tmp}/swc", r"has no skeletons"),
]
COMMANDS = {case: (command, pattern) for case, command, pattern in CASES}


def make_layers(root, command: str) -> None:
    for name, (dtype, layer_type, offset, chunk) in LAYERS.items():
        if "{" + name + "}" in command:
            data = np.arange(np.prod(SHAPE), dtype=dtype).reshape(SHAPE) % 7
            write_layer(f"file://{root / name}", data, layer_type, offset=offset, chunk=chunk)
    if "garbled" in command:
        (root / "garbled").mkdir()
        (root / "garbled" / "info").write_text("{not json")


def snapshot(root) -> dict:
    """Every directory and file under root, with each file's bytes and modification time."""
    state = {}
    for folder, _, files in os.walk(root):
        state[os.path.relpath(folder, root)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                state[os.path.relpath(path, root)] = (hashlib.sha1(f.read()).hexdigest(),
                                                      os.stat(path).st_mtime_ns)
    return state


def command_line(root, command: str) -> list:
    places = {name: f"file://{root / name}" for name in LAYERS}
    return command.format(tmp=root, q=f"fq://{root / 'q'}", **places).split()


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict:
    """Run every selected case at once (each in its own directory): one CLI start costs ~1 s."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.module.__name__ == __name__ and item.originalname == MATRIX]
    setups = {}
    for case in selected:
        root = tmp_path_factory.mktemp(case)
        make_layers(root, COMMANDS[case][0])
        setups[case] = (root, snapshot(root))
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        results = pool.map(lambda case: run_cli(*command_line(setups[case][0], COMMANDS[case][0]),
                                                check=False), selected)
        results = dict(zip(selected, results))
    return {case: (*setups[case], results[case]) for case in selected}


MATRIX = "test_bad_input_is_one_line_exit_2_and_writes_nothing"


@pytest.mark.parametrize("case", list(COMMANDS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(outcomes, case):
    root, before, result = outcomes[case]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("igneous-like: error: "), result.stderr
    assert re.search(COMMANDS[case][1], lines[0]), lines[0]
    assert snapshot(root) == before
    assert not (root / "q").exists() or not any((root / "q" / "queue").iterdir())
