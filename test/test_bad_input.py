"""Bad input ends with one clear line on stderr and exit code 2, and nothing written or enqueued.

Each case runs the real CLI in a subprocess against small synthetic layers in its own directory,
then checks the message and that every file and directory there is exactly as before. The cases
run side by side (a CLI start costs about a second of imports) from one module fixture; a case
still running after TIMEOUT seconds has hung, and fails.
"""
import hashlib
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import aws_env, free_port, run_cli, write_layer

SHAPE = (96, 80, 64)  # chunk 32: whole chunks in x and y at mip 0, a partial one at mip 1 in y
LAYERS = {  # placeholder: (dtype, layer type, voxel offset, chunk size)
    "seg": ("uint32", "segmentation", (0, 0, 0), (32, 32, 32)),
    "img": ("uint8", "image", (32, 0, 0), (32, 32, 32)),
    "flt": ("float32", "image", (0, 0, 0), (32, 32, 32)),
    "other": ("uint32", "segmentation", (0, 0, 0), (64, 64, 64)),  # an xfer destination that differs
}

FILES = {  # placeholder: (name, contents) of a file made in the case's directory
    "file": ("file", b"not a layer"),
    "empty_csv": ("empty.csv", b""),
    "binary_csv": ("binary.csv", bytes(range(256)) * 4),
    "text_csv": ("text.csv", b"Dear reader,\nthis is a letter, not a table\nat all, sorry, truly, yours\n"),
    "cells_csv": ("cells.csv", b"id,volume\n1,10\n2,20\n3,30\n4,40\n5,50\n6,60\n"),
    "kinds_csv": ("kinds.csv", b"label,kind\n1,axon\n2,glia\n"),
}
INFOS = {  # placeholder: an info file that no layer could have
    "noscales": {"type": "image", "data_type": "uint8", "num_channels": 1},
    "beyond": {"type": "image", "data_type": "uint8", "num_channels": 1, "scales": [
        {"key": "1_1_1", "resolution": [1, 1, 1], "size": [64, 64, 64], "voxel_offset": [2**31 - 32, 0, 0],
         "chunk_sizes": [[64, 64, 64]], "encoding": "raw"}]},
}
ENVS = {  # case: its environment (the SQS cases' are made by case_env)
    "gzip-level-99": {"IGNEOUS_LIKE_GZIP_LEVEL": "99"},
    "gzip-level-text": {"IGNEOUS_LIKE_GZIP_LEVEL": "fast"},
    "task-modules-unknown": {"IGNEOUS_LIKE_TASK_MODULES": "no_such_tasks"},
}
TIMEOUT = 60  # seconds: a hang (minutes before) fails its case instead of stalling the suite

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
    ("ds-jxl-on-float", "image downsample {flt} --encoding jxl --queue {q}", r"jxl needs uint8 data"),
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
    ("xfer-other-chunks", "image xfer {seg} {other} --chunk-size 32,32,32 --queue {q}",
     r"a layer whose chunk size differ"),  # a layer made in advance keeps its own chunks
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
    # sizes the volume cannot hold: refused before the info grows or anything runs for minutes
    ("ds-num-mips-beyond", "image downsample {seg} --num-mips 20 --queue {q}",
     r"--num-mips 20 goes beyond the volume: .*96,80,64 .* after 7 mips; use --num-mips 7 or fewer"),
    ("ds-sharded-mips-beyond", "image downsample {seg} --sharded --num-mips 9", r"--num-mips 7 or fewer"),
    ("ds-factor-huge", "image downsample {seg} --factor 1000,1000,1000", r"1000,1000,1000 is larger than"),
    ("xfer-factor-huge", "image xfer {seg} {tmp}/dest --factor 1000,1000,1000 --queue {q}", r"larger than"),
    ("ds-factor-1", "image downsample {seg} --factor 1,1,1 --queue {q}", r"1,1,1 does not downsample"),
    ("classify-scales-huge", "image classify train {img} --annotations {seg} --output {tmp}/m "
                             "--scales 1000000", r"--scales 1000000 nm is wider than the image"),
    ("watershed-sigma-huge", "agglomerate watershed {img} {tmp}/frag --sigma 100000",
     r"--sigma 100000 voxels is wider than the task boxes"),
    ("watershed-shape-0", "agglomerate watershed {img} {tmp}/frag --shape 0,4,4", r"--shape values"),
    # coordinates CloudVolume keeps in 32 bits
    ("xfer-translate-int32", "image xfer {seg} {tmp}/dest --translate 3000000000,0,0", r"beyond 32-bit"),
    ("xfer-translate-overflow", "image xfer {seg} {tmp}/dest --translate 2147483600,0,0 --queue {q}",
     r"cannot make a layer at .*beyond 32-bit"),
    ("ds-chunk-int32", "image downsample {seg} --chunk-size 3000000000,64,64", r"chunk-size.*beyond 32-bit"),
    ("info-beyond-int32", "image downsample {beyond} --queue {q}", r"scale 0 reaches beyond 32-bit"),
    # paths that are not layers, destinations that cannot be written
    ("layer-is-a-file", "image downsample {file} --queue {q}", NO_LAYER + r".*runs through a file"),
    ("layer-under-a-file", "mesh forge {file}/layer", r"runs through a file"),
    ("info-no-scales", "skeleton forge {noscales} --queue {q}", r"info file .* has no scales"),
    ("xfer-dest-is-a-file", "image xfer {seg} {file} --queue {q}", r"is a file, not a directory"),
    ("xfer-dest-read-only", "image xfer {seg} {ro}/dest", r"no permission to write in .*/ro"),
    ("ccl-auto-read-only", "image ccl auto {seg} {ro}/cc", r"no permission to write in"),
    ("fill-holes-read-only", "postprocess fill-holes {seg} {ro}/filled --max-hole-size 9", r"no permission"),
    ("table-read-only", "table threshold {cells_csv} {ro}/out.csv --column volume --thresholds 15",
     r"no permission to write in"),
    ("ccl-auto-dest-differs", "image ccl auto {seg} {img}", r"already holds a layer whose type"),
    ("fill-holes-dest-differs", "postprocess fill-holes {seg} {img} --max-hole-size 9", r"already holds"),
    ("agglo-train-no-gt", "agglomerate train {seg} --boundary {flt} --gt {tmp}/nothing --output {tmp}/m",
     NO_LAYER),
    # queues that cannot be used: refused while parsing, before the info is written
    ("queue-is-a-file", "image downsample {seg} --queue {file}", r"cannot write .*file: .* is a file"),
    ("queue-under-a-file", "image xfer {seg} {tmp}/dest --queue fq://{file}/q", r"is a file, not a dir"),
    ("queue-read-only", "image rm {seg} --queue {ro}/q", r"no permission to write in"),
    ("queue-in-a-layer-folder", "image downsample {seg} --queue {tmp}", r"holds other files and no task"),
    ("sqs-missing-queue", "image downsample {seg} --queue sqs://no-such-queue", r"no SQS queue named no-"),
    ("sqs-missing-execute", "execute -x sqs://no-such-queue", r"no SQS queue named no-such-queue"),
    ("sqs-no-server", "image downsample {seg} --queue sqs://igneous-like-test",
     r"cannot reach AWS: check the network and AWS_ENDPOINT_URL"),
    ("sqs-no-credentials", "image xfer {seg} {tmp}/dest --queue sqs://igneous-like-test",
     r"no AWS credentials: set AWS_ACCESS_KEY_ID"),
    # tables that are not tables, parameters no clustering takes
    ("table-empty", "table threshold {empty_csv} {tmp}/out.csv --column volume --thresholds 1",
     r"is not a readable CSV table"),
    ("table-binary", "table cluster {binary_csv} {tmp}/out.csv --columns volume", r"not a readable CSV"),
    ("table-text", "table classify train {text_csv} --annotation a --features b --output {tmp}/m.joblib",
     r"is not a readable CSV table"),
    ("cluster-eps-0", "table cluster {cells_csv} {tmp}/out.csv --columns volume --method dbscan --eps 0",
     r"--eps.*0.0 is not in the range x>0"),
    ("cluster-text-column", "table cluster {kinds_csv} {tmp}/out.csv --columns kind",
     r"column kind does not hold numbers"),
    # numbers that are not finite
    ("ccl-threshold-nan", "image ccl faces {flt} --threshold-gte nan --queue {q}", r"'nan' is not a finite"),
    ("ccl-auto-threshold-inf", "image ccl auto {flt} {tmp}/cc --threshold-lte inf", r"'inf' is not a finite"),
    ("table-threshold-nan", "table threshold {cells_csv} {tmp}/o.csv --column volume --thresholds 5,nan",
     r"finite numbers"),
    ("agglo-merge-nan", "agglomerate merge {seg} --threshold nan", r"'nan' is not a finite number"),
    ("skel-forge-threshold-nan", "skeleton forge {img} --threshold-gte nan", r"'nan' is not a finite"),
    ("execute-retry-inf", "execute -x {tmp}/noqueue --retry-delay inf", r"'inf' is not a finite number"),
    # found walking every verb: values the voxels, labels, seeds or the volume cannot hold
    ("ds-bg-color-negative", "image downsample {seg} --bg-color -1 --queue {q}", r"does not fit .* uint32"),
    ("mesh-labels-negative", "mesh forge {seg} --labels 5,-1 --queue {q}", r"outside 0 to 2\^64-1"),
    ("skel-cross-section-huge", "skeleton forge {seg} --cross-section 1000000000 --queue {q}",
     r"--cross-section 1000000000 is longer than any path"),
    ("mesh-merge-magnitude-huge", "mesh merge {seg} --magnitude 1000000000", r"--magnitude.*0<=x<=8"),
    ("status-interval-huge", "queue status {tmp}/noqueue --interval 1e308", r"--interval.*0<=x<=86400"),
    ("table-trees-huge", "table classify train {cells_csv} --annotation id --features volume "
                         "--trees 1000000000 --output {tmp}/m", r"--trees.*1<=x<=10000"),
    ("table-seed-negative", "table cluster {cells_csv} {tmp}/o.csv --columns volume --seed -1", r"--seed"),
    # operator settings, checked when any command starts
    ("gzip-level-99", "image downsample {seg} --queue {q}", r"IGNEOUS_LIKE_GZIP_LEVEL=99 is not a gzip"),
    ("gzip-level-text", "image rm {seg}", r"IGNEOUS_LIKE_GZIP_LEVEL=fast is not a gzip level"),
    ("task-modules-unknown", "image downsample {seg}", r"IGNEOUS_LIKE_TASK_MODULES names no_such_tasks"),
]
COMMANDS = {case: (command, pattern) for case, command, pattern in CASES}
SQS_CASES = {"sqs-missing-queue", "sqs-missing-execute", "sqs-no-server", "sqs-no-credentials"}


def make_layers(root, command: str) -> None:
    for name, (dtype, layer_type, offset, chunk) in LAYERS.items():
        if "{" + name + "}" in command:
            data = np.arange(np.prod(SHAPE), dtype=dtype).reshape(SHAPE) % 7
            write_layer(f"file://{root / name}", data, layer_type, offset=offset, chunk=chunk)
    if "garbled" in command:
        (root / "garbled").mkdir()
        (root / "garbled" / "info").write_text("{not json")
    for name, (filename, content) in FILES.items():
        if "{" + name + "}" in command:
            (root / filename).write_bytes(content)
    for name, info in INFOS.items():
        if "{" + name + "}" in command:
            (root / name).mkdir()
            (root / name / "info").write_text(json.dumps(info))
    if "{ro}" in command:
        (root / "ro").mkdir()
        if not read_only(root / "ro", True):
            pytest.skip("cannot make a folder read-only here (root without chattr)")


def read_only(folder, on: bool) -> bool:
    """Make `folder` refuse (or again take) new files: chmod, or for root, whom modes do not stop,
    the immutable attribute. Whether it worked."""
    if os.geteuid() != 0:
        folder.chmod(0o555 if on else 0o755)
        return True
    return subprocess.run(["chattr", "+i" if on else "-i", str(folder)], capture_output=True).returncode == 0


def case_env(case: str, aws_endpoint: str, home) -> dict:
    """The environment a case runs in: an operator setting, or AWS clients that reach the session's
    server (or a port where none listens, or no credentials at all)."""
    if case not in SQS_CASES:
        return ENVS.get(case, {})
    env = aws_env(aws_endpoint, home)
    if case == "sqs-no-server":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    if case == "sqs-no-credentials":
        env.update(AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="", AWS_SESSION_TOKEN="",
                   AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=str(home / "none"),
                   AWS_CONFIG_FILE=str(home / "none"))
    return env


def run_case(command: list, env: dict) -> subprocess.CompletedProcess:
    try:
        return run_cli(*command, check=False, env=env, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, None, "", f"still running after {TIMEOUT} s: hung")


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
    places = {name: f"file://{root / name}" for name in [*LAYERS, *INFOS]}
    places.update({name: str(root / filename) for name, (filename, _) in FILES.items()}, ro=str(root / "ro"))
    return command.format(tmp=root, q=f"fq://{root / 'q'}", **places).split()


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict:
    """Run every selected case at once (each in its own directory): one CLI start costs ~1 s."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.module.__name__ == __name__ and item.originalname == MATRIX]
    endpoint = request.getfixturevalue("aws_endpoint") if SQS_CASES & set(selected) else None
    setups, envs = {}, {}
    for case in selected:
        root = tmp_path_factory.mktemp(case)
        try:
            make_layers(root, COMMANDS[case][0])
        except pytest.skip.Exception as skipped:
            setups[case] = skipped
            continue
        envs[case] = case_env(case, endpoint, tmp_path_factory.mktemp(f"{case}-home"))
        setups[case] = (root, snapshot(root))
    runnable = [case for case in selected if case in envs]
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        results = pool.map(lambda case: run_case(command_line(setups[case][0], COMMANDS[case][0]),
                                                 envs[case]), runnable)
        results = dict(zip(runnable, results))
    yield {case: setups[case] if case not in results else (*setups[case], results[case]) for case in selected}
    for case in runnable:
        if (setups[case][0] / "ro").exists():
            read_only(setups[case][0] / "ro", False)  # so pytest can delete it


MATRIX = "test_bad_input_is_one_line_exit_2_and_writes_nothing"


@pytest.mark.parametrize("case", list(COMMANDS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(outcomes, case):
    if isinstance(outcomes[case], pytest.skip.Exception):
        pytest.skip(str(outcomes[case]))
    root, before, result = outcomes[case]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("igneous-like: error: "), result.stderr
    assert re.search(COMMANDS[case][1], lines[0]), lines[0]
    assert snapshot(root) == before
    assert not (root / "q").exists() or not any((root / "q" / "queue").iterdir())


def test_a_context_beyond_the_volume_reads_the_volume(tmp_path):
    """--context 1e308 nm (it overflowed every task's coordinates) is cut to the volume's extent."""
    from igneous_like.task_creation import create_skeletonizing_tasks
    path = write_layer(f"file://{tmp_path / 'seg'}", np.ones((32, 24, 8), np.uint32), "segmentation",
                       resolution=(16, 16, 40), chunk=(32, 32, 8))
    task = next(iter(create_skeletonizing_tasks(path, context=1e308, dust_threshold=0)))
    assert task.keywords["options"]["context"] == 32 * 16
