"""What chaining steps through a pipeline costs, against running the same steps by hand.

The same job on the real 512^3 segmentation, through a file queue with two worker processes:
a pyramid of 2 mips, connected components (faces, links, calc-labels, relabel, clean) and voxel
counts (count, sum) of the components. By hand: each step's command, then `execute -x` until the
queue is empty, then the next command, as a person would type them. As a pipeline: `pipeline run`
once, then one `execute -x`; the workers record each task done and start each next stage.
Both take turns (--repeats), each on a fresh copy of the input; the outputs must agree.

    python bench/pipeline_overhead.py [--repeats 2] [-p 2]
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

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


def by_hand(seg: str, queue: str, parallel: int) -> list:
    commands = []
    for name, line in STEPS:
        command = line.format(seg=seg).split()
        if name in ONE_PROCESS:
            commands.append(command)
        else:
            commands += [command + ["--queue", queue], ["-p", str(parallel), "execute", "-x", queue]]
    return commands


def as_pipeline(seg: str, queue: str, parallel: int, work: Path) -> list:
    job = work / "job.yaml"
    lines = [f"queue: {queue}", f"state: file://{work}/job.state", "steps:"]
    for name, line in STEPS:
        lines += [f"  - name: {name}", f"    run: {line.format(seg=seg)}"]
    job.write_text("\n".join(lines) + "\n")
    return [["pipeline", "run", str(job)], ["-p", str(parallel), "execute", "-x", queue]]


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("-p", "--parallel", type=int, default=2)
    cli.add_argument("--repeats", type=int, default=2)
    args = cli.parse_args()
    data, root = segmentation(), Path(tempfile.mkdtemp(prefix="igneous_like_pipeline_"))
    paths = {}

    def run_once(way: str) -> Usage:
        work = root / way
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        seg = paths[way] = write_array(f"file://{work}/seg", data, "segmentation", chunk=(64, 64, 64))
        queue = f"fq://{work}/queue"
        commands = by_hand(seg, queue, args.parallel) if way == "by hand" else \
            as_pipeline(seg, queue, args.parallel, work)
        program = [sys.executable, "-m", "igneous_like", "--quiet"]
        return measure_all([program + command for command in commands])

    try:
        results = alternate(run_once, ["by hand", "pipeline"], args.repeats)
        hand, chained = (read(f"{paths[way]}_cc") for way in ("by hand", "pipeline"))
        counts = [read_voxel_counts(f"{paths[way]}_cc") for way in ("by hand", "pipeline")]
        if not (np.array_equal(hand, chained) and all(np.array_equal(a, b) for a, b in zip(*counts))):
            raise SystemExit("the two runs' outputs differ")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"-p {args.parallel}, best of {args.repeats} alternating runs, 512^3 real segmentation; "
          f"outputs equal ({int(hand.max())} components)")
    print(f"{'way':10s} {'wall s':>8s} {'cpu s':>8s}")
    for way, usage in results.items():
        print(f"{way:10s} {usage.seconds:8.2f} {usage.cpu:8.2f}")
    overhead = results["pipeline"].seconds / results["by hand"].seconds - 1
    print(f"pipeline against by hand: {overhead:+.1%} wall time, "
          f"{results['pipeline'].cpu / results['by hand'].cpu - 1:+.1%} CPU time")


if __name__ == "__main__":
    main()
