"""Pipelines: a job of many steps run by workers alone, through killed workers, a purged queue and
a second `pipeline run`, with outputs equal to the same job run here; on SQS and S3 with no driver;
and the next stage started exactly once however the last tasks of a stage finish."""
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import read_mip, run_cli, write_layer
from fleet import JOB, Fleet, finish, job_file, purge_and_run, run_with_kills, task_runs, tree

from igneous_like import pipeline
from igneous_like.pipeline.flow import Flow
from igneous_like.pipeline.status import queued_tasks
from igneous_like.queues import status


@pytest.fixture
def crop(real_seg):
    return np.asfortranarray(real_seg[64:192, 64:192, :64])


def test_a_job_survives_killed_workers_and_a_purged_queue_and_equals_the_run_here(tmp_path, crop):
    """Nine steps with branches on a crop of the real data: run here as the reference; then through a
    file queue whose three workers are SIGKILLed at random and replaced, the queue purged half way
    and `pipeline run` called again: the same bytes, and no task runs again once recorded done."""
    here, here_data = job_file(tmp_path, "here", None)
    write_layer(f"file://{here_data}/seg", crop, "segmentation", chunk=(32, 32, 32))
    run_cli("-p", "2", "pipeline", "run", here)

    queue = f"fq://{tmp_path}/q"
    job, data = job_file(tmp_path, "fleet", queue)
    write_layer(f"file://{data}/seg", crop, "segmentation", chunk=(32, 32, 32))
    run_cli("pipeline", "run", job)
    flow, fleet = Flow(f"file://{tmp_path}/fleet.state"), Fleet(queue, tmp_path / "logs")
    kills = run_with_kills(fleet, lambda: flow.state.exists("measure-forge/done"),  # half way
                           np.random.default_rng(5), most=200)
    again = purge_and_run(queue, job)
    assert "started on" in again.stderr
    waiting = queued_tasks(queue, flow.state.url)
    assert waiting and not [task for task in waiting if flow.is_done(*task)]  # only what is not done
    report = finish(fleet, job, workers=2, rounds=1, timeout=600)
    assert report.count(" done ") == 9 and "failed" not in report, report
    assert kills >= 3
    runs = task_runs(fleet.log_files(), tmp_path / "fleet.state")
    assert runs["run after recorded done"] == 0 and runs["runs"] >= runs["recorded done"] > 50, runs
    assert tree(data) == tree(here_data)
    assert read_mip(f"file://{data}/cc", 0).max() == read_mip(f"file://{here_data}/cc", 0).max() > 10


def snapshot(root: Path) -> dict:
    """Every file's bytes and time of change, and every folder, under `root`."""
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else "folder"
            for p in sorted(root.rglob("*"))}


def test_a_dry_run_writes_nothing_and_counts_what_run_then_enqueues(tmp_path, crop):
    """`pipeline run --dry-run` prints each stage's tasks and voxels where they can be known now, and
    what the others are made after; it writes nothing (no byte, no time of change, no folder, not
    even the info or provenance that task creators commit); `pipeline run` then enqueues as many
    tasks for each step that starts at once as the dry run said."""
    job, data = job_file(tmp_path, "fleet", f"fq://{tmp_path}/q")
    write_layer(f"file://{data}/seg", crop, "segmentation", chunk=(32, 32, 32))
    before = snapshot(tmp_path)
    shown = run_cli("pipeline", "run", job, "--dry-run").stdout
    assert snapshot(tmp_path) == before
    steps = dict(re.findall(r"^(\S+?)(?: \(after .*\))?: .*\n  1\. (.*)$", shown, re.M))
    assert steps["mesh-forge"] == "forge: made after step cc"
    assert steps["table"] == "export: 1 task, in one process"
    size = crop.size  # 128 x 128 x 64 voxels, in boxes of 64^3
    assert steps["pyramid"] == \
        f"downsample: 4 tasks, reading {size:,} voxels of mip 0, writing {size // 4:,} voxels of mip 1"
    assert steps["cc"] == f"faces: 4 tasks, reading {size:,} voxels of mip 0"
    assert "  2. links: made after stage 1\n  3. calc-labels: 1 task, in one process" in shown
    run_cli("pipeline", "run", job)
    enqueued = Counter(step for step, _, _ in queued_tasks(f"fq://{tmp_path}/q", f"file://{tmp_path}/fleet.state"))
    assert enqueued == {"pyramid": 4, "cc": 4}


def two_steps(path: str):
    from igneous_like.task_creation.common import Stage
    count = Stage("create_voxel_counting_tasks", {"cloudpath": path, "shape": [32, 64, 32]})
    return [pipeline.Step("a", (count,)),
            pipeline.Step("b", (Stage("create_downsampling_tasks", {"layer_path": path, "num_mips": 1}),),
                          after=("a",))]


@pytest.fixture
def small_layer(make_layer):
    return make_layer("img", np.arange(64 * 64 * 32, dtype=np.uint8).reshape(64, 64, 32), "image",
                      chunk=(32, 32, 32))


def test_the_next_stage_starts_exactly_once_when_the_last_tasks_finish_together(tmp_path, small_layer):
    """The last two tasks of a stage finish at the same instant in 16 threads: the step after it is
    made and enqueued exactly once."""
    queue = f"fq://{tmp_path}/q"
    flow = pipeline.run(f"file://{tmp_path}/state", two_steps(small_layer), queue)
    assert status(queue)["enqueued"] == 2  # a's two tasks
    for index in range(2):
        flow.mark_done("a", 0, index)
    barrier = threading.Barrier(16)

    def finish(index):  # each a worker with its own message (copies of the two tasks among them)
        barrier.wait()
        Flow(flow.state.url).finish("a", 0, index % 2, 2, owner=f"message-{index}")
    threads = [threading.Thread(target=finish, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert status(queue)["enqueued"] == 2 + 1  # b's one task, once
    assert flow.state.exists("a/done") and flow.state.exists("b/0/enqueued")


def test_a_starter_that_died_after_its_claim_is_finished_by_its_own_retry(tmp_path, small_layer):
    """The worker that won the claim to start b died before enqueueing it: another finisher of a's
    tasks leaves b alone; the dead worker's task, run again, starts b; then it is never started twice."""
    queue = f"fq://{tmp_path}/q"
    flow = pipeline.run(f"file://{tmp_path}/state", two_steps(small_layer), queue)
    for index in range(2):
        flow.mark_done("a", 0, index)
    assert flow.state.claim("b/0/claim", "message-1")  # the winner, then it died
    Flow(flow.state.url).finish("a", 0, 0, 2, owner="message-0")
    Flow(flow.state.url).finish("a", 0, 1, 2, owner="a-copy-of-message-1")
    assert status(queue)["enqueued"] == 2 and not flow.state.exists("b/0/enqueued")
    Flow(flow.state.url).finish("a", 0, 1, 2, owner="message-1")  # its message comes back, runs again
    assert status(queue)["enqueued"] == 3 and flow.state.exists("b/0/enqueued")
    Flow(flow.state.url).finish("a", 0, 1, 2, owner="message-1")
    assert status(queue)["enqueued"] == 3


def test_a_job_on_sqs_and_s3_runs_with_two_workers_and_no_driver(tmp_path, sqs_env, crop):
    """The nine-step job on s3:// with its state there and sqs:// as the queue: `pipeline run` only
    starts it and exits; two workers alone run every step; every output file (pyramid, components,
    sharded meshes, skeletons, measurements, table) equals a run here on file://."""
    import boto3
    from cloudfiles import CloudFiles
    seg = np.asfortranarray(crop[:, :, :32])
    here, here_data = job_file(tmp_path, "here", None)
    write_layer(f"file://{here_data}/seg", seg, "segmentation", chunk=(32, 32, 32))
    run_cli("pipeline", "run", here)

    boto3.client("s3", endpoint_url=sqs_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="lab")
    cloud = tmp_path / "cloud.yaml"
    cloud.write_text(JOB.format(queue="queue: sqs://igneous-like-test", state="s3://lab/job", data="s3://lab",
                                table=tmp_path / "cloud.csv", box=64, half=32))
    np.save(tmp_path / "seg.npy", seg)
    write = ("import sys, numpy; from igneous_like.layers import write_array; "
             "write_array('s3://lab/seg', numpy.load(sys.argv[1]), 'segmentation', chunk=(32, 32, 32))")
    env = {**os.environ, **sqs_env}
    subprocess.run([sys.executable, "-c", write, str(tmp_path / "seg.npy")], check=True, env=env)
    started = run_cli("pipeline", "run", cloud, env=sqs_env)
    assert "started on sqs://igneous-like-test" in started.stderr
    command = [sys.executable, "-m", "igneous_like", "execute", "-x", "sqs://igneous-like-test"]
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    errors = [worker.communicate(timeout=600)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], errors
    assert run_cli("pipeline", "status", cloud, env=sqs_env).stdout.count(" done ") == 9
    assert (tmp_path / "cloud.csv").read_bytes() == (here_data / "cells.csv").read_bytes()
    local = CloudFiles(f"file://{here_data}")  # finds NAME.gz for NAME, as S3 keeps no suffix
    with pytest.MonkeyPatch.context() as patch:
        for key, value in sqs_env.items():
            patch.setenv(key, value)
        remote = CloudFiles("s3://lab")
        names = [name for name in remote.list() if not name.startswith(("job/", "pipelines/"))
                 and not name.endswith("provenance") and name != "seg.npy"]
        theirs = remote.get(names, return_dict=True)
    outputs = [name for name in tree(here_data) if name != "cells.csv"]
    assert len(names) == len(outputs) > 80 and {name.split("/")[0] for name in names} == {"seg", "cc"}
    assert theirs == local.get(names, return_dict=True)
