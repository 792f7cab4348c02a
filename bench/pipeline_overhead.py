"""What chaining steps through a pipeline costs, against running the same steps by hand.

The same job on the real 512^3 segmentation, through a file queue with two worker processes:
a pyramid of 2 mips, connected components (faces, links, calc-labels, relabel, clean) and voxel
counts (count, sum) of the components. By hand: each step's command, then `execute -x` until the
queue is empty, then the next command, as a person would type them. As a pipeline: `pipeline run`
once, then one `execute -x`; the workers record each task done and start each next stage.
The same two without a queue ("here": each command with -p, or `pipeline run` without a queue)
isolate the pipeline's own bookkeeping from the start-ups that typing commands costs.
All take turns (--repeats), each on a fresh copy of the input; the outputs must agree.

    python bench/pipeline_overhead.py [--repeats 2] [-p 2]
"""
import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
from common import Usage, alternate, measure_all
from stages import read, segmentation

from igneous_like.label_table import read_voxel_counts
from igneous_like.layers import write_array

SHAPE = "256,256,256"
STEPS = [  # (pipeline step name, its command line); a command without --queue runs in one process
    ("pyramid", "image downsample {seg} --num-mips 2 --compress none"),
    ("faces", f"image ccl faces {{seg}} --shape {SHAPE}"),
    ("links", "image ccl links {seg}"),
    ("calc-labels", "image ccl calc-labels {seg}"),
    ("relabel", "image ccl relabel {seg} {seg}_cc --compress none"),
    ("clean", "image ccl clean {seg}"),
    ("count", f"image voxels count {{seg}}_cc --shape {SHAPE}"),
    ("sum", "image voxels sum {seg}_cc"),
]
ONE_PROCESS = {"calc-labels", "clean", "sum"}
WAYS = ["by hand", "pipeline", "by hand, here", "pipeline, here"]  # through the queue, or in one process


def by_hand(seg: str, queue: Optional[str], parallel: int) -> list:
    """Each step's command (then, through a queue, `execute -x`), as a person would type them."""
    commands = []
    for name, line in STEPS:
        command = line.format(seg=seg).split()
        if name in ONE_PROCESS:
            commands.append(command)
        elif queue is None:
            commands.append(["-p", str(parallel)] + command)
        else:
            commands += [command + ["--queue", queue], ["-p", str(parallel), "execute", "-x", queue]]
    return commands


def as_pipeline(seg: str, queue: Optional[str], parallel: int, work: Path) -> list:
    """One pipeline file of the same steps: started once, then (through a queue) one `execute -x`."""
    job = work / "job.yaml"
    lines = ([f"queue: {queue}"] if queue else []) + [f"state: file://{work}/job.state", "steps:"]
    for name, line in STEPS:
        lines += [f"  - name: {name}", f"    run: {line.format(seg=seg)}"]
    job.write_text("\n".join(lines) + "\n")
    if queue is None:
        return [["-p", str(parallel), "pipeline", "run", str(job)]]
    return [["pipeline", "run", str(job)], ["-p", str(parallel), "execute", "-x", queue]]


def bookkeeping_per_task(root: Path, count: int = 2000) -> float:
    """Seconds a pipeline task spends on its own records on file://: is it done, mark it done, is
    its block (and stage) complete; the stage's last task also completes it."""
    from igneous_like.pipeline import Step, flow
    from igneous_like.task_creation.common import Stage
    step = Step("s", (Stage("accumulate_voxel_counts", {"cloudpath": "file:///nowhere"}),))
    record = flow.new(f"file://{root}/bookkeeping", [step.to_json()], None)
    record.state.put_json("s/0/stage.json", {"stage": step.stages[0].to_json(), "total": count, "rest": []})
    start = time.perf_counter()
    for index in range(count):
        if not record.is_done("s", 0, index):
            record.mark_done("s", 0, index)
        record.finish("s", 0, index, count, owner="bench")
    assert record.state.exists("s/done")
    return (time.perf_counter() - start) / count


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("-p", "--parallel", type=int, default=2)
    cli.add_argument("--repeats", type=int, default=2)
    args = cli.parse_args()
    data, root = segmentation(), Path(tempfile.mkdtemp(prefix="igneous_like_pipeline_"))
    paths = {}

    def run_once(way: str) -> Usage:
        work = root / way.replace(" ", "_")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        seg = paths[way] = write_array(f"file://{work}/seg", data, "segmentation", chunk=(64, 64, 64))
        queue = None if way.endswith("here") else f"fq://{work}/queue"
        commands = by_hand(seg, queue, args.parallel) if way.startswith("by hand") else \
            as_pipeline(seg, queue, args.parallel, work)
        program = [sys.executable, "-m", "igneous_like", "--quiet"]
        return measure_all([program + command for command in commands])

    try:
        results = alternate(run_once, WAYS, args.repeats)
        hand = read(f"{paths['by hand']}_cc")
        counts = read_voxel_counts(f"{paths['by hand']}_cc")
        for way in WAYS[1:]:
            if not (np.array_equal(hand, read(f"{paths[way]}_cc")) and
                    all(np.array_equal(a, b) for a, b in zip(counts, read_voxel_counts(f"{paths[way]}_cc")))):
                raise SystemExit(f"the outputs of {way} differ from by hand's")
        per_task = bookkeeping_per_task(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"-p {args.parallel}, best of {args.repeats} alternating runs, 512^3 real segmentation; "
          f"outputs equal ({int(hand.max())} components)")
    print(f"{'way':16s} {'wall s':>8s} {'cpu s':>8s}")
    for way, usage in results.items():
        print(f"{way:16s} {usage.seconds:8.2f} {usage.cpu:8.2f}")
    for hand, chained in (("by hand", "pipeline"), ("by hand, here", "pipeline, here")):
        wall = results[chained].seconds / results[hand].seconds - 1
        cpu = results[chained].cpu / results[hand].cpu - 1
        print(f"{chained} against {hand}: {wall:+.1%} wall time, {cpu:+.1%} CPU time")
    print(f"a pipeline task's own records on file:// cost {per_task * 1e3:.2f} ms each")


if __name__ == "__main__":
    main()
