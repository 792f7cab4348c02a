"""A pipeline of nine steps with branches on the real segmentation (its corner of --size^3), run by
a fleet of workers that are SIGKILLed at random, against the same file run here, and against the
same steps typed by hand.

The job (test/fleet.py): a pyramid, connected components (ccl auto), then three branches: mesh
forge and merge-sharded, skeleton forge and merge, measure forge, merge and export.

1. Here: the pipeline file with no queue, in this process (-p), as the reference.
2. Fleet: through a file queue, three `execute -x` workers SIGKILLed at random intervals and
   replaced until --purge-after's step is done; then the queue purged (leased tasks too) and
   `pipeline run` called again; workers started again until `pipeline status` says done. Every
   output file must equal the reference's byte for byte; the workers' logs (-v) and the done
   markers say how many runs began after their task was recorded done.
3. Chaining: the same pipeline through a queue with one `-p W execute -x` and no kills, against
   the same steps by hand (each command with --queue, then `-p W execute -x`, then the next; measure
   export in one process); the difference as a share of the by-hand wall time.

    python bench/pipeline_fleet.py [--size 512] [--workers 3] [--seed 5]
"""
import argparse
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from common import measure, measure_all, real_segmentation
from pipeline_overhead import bookkeeping_per_task

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
import fleet  # noqa: E402

from igneous_like.layers import write_array  # noqa: E402
from igneous_like.pipeline.flow import Flow  # noqa: E402

PROGRAM = [sys.executable, "-m", "igneous_like", "--quiet"]


def prepare(root: Path, name: str, queue, seg: np.ndarray, args) -> tuple:
    """A job file and its input layer; the task box is half the volume (8 tasks a stage)."""
    job, data = fleet.job_file(root, name, queue, box=args.size // 2)
    write_array(f"file://{data}/seg", seg, "segmentation", chunk=(min(64, args.size // 4),) * 3)
    return job, data


def fleet_run(root: Path, seg: np.ndarray, args) -> dict:
    """Step 2: the job through killed workers, a purge and a second `pipeline run`."""
    queue = f"fq://{root}/fleet.q"
    job, data = prepare(root, "fleet", queue, seg, args)
    start = time.perf_counter()
    fleet.cli("pipeline", "run", job)
    flow, workers = Flow(f"file://{root}/fleet.state"), fleet.Fleet(queue, root / "logs", args.lease)
    kills = fleet.run_with_kills(workers, lambda: flow.state.exists(f"{args.purge_after}/done"),
                           np.random.default_rng(args.seed), args.pause, args.workers)
    fleet.purge_and_run(queue, job)
    restarts = workers.started
    report = fleet.finish(workers, job, args.workers)
    return {"data": data, "seconds": time.perf_counter() - start, "kills": kills, "report": report,
            "workers": workers.started, "after purge": workers.started - restarts,
            "runs": fleet.task_runs(workers.log_files(), root / "fleet.state")}


def compare(name: str, ours: Path, reference: Path) -> bool:
    """Print, per layer folder (each mip, mesh, skeletons, ...), how many files and whether all are
    equal byte for byte to the reference's; whether everything is."""
    print(f"{name} against here:")
    mine, theirs = fleet.tree(ours), fleet.tree(reference)
    groups = defaultdict(lambda: [0, 0])
    for name in sorted(set(mine) | set(theirs)):
        group = groups[str(Path(name).parent)]
        group[0] += 1
        group[1] += mine.get(name) != theirs.get(name)
    for group, (files, differ) in sorted(groups.items()):
        print(f"  {group:28s} {files:6d} files  {'equal' if not differ else f'{differ} DIFFER'}")
    return not any(differ for _, differ in groups.values())


def by_hand(job: Path, queue: str, workers: int) -> list:
    """The job's steps as a person types them: each command with --queue, then `execute -x`."""
    from igneous_like.cli.pipeline import read_file
    commands = []
    for step in read_file(str(job), ())["steps"]:
        command = step["run"].split()
        if command[:2] == ["measure", "export"]:
            commands.append(command)
        else:
            commands += [command + ["--queue", queue], ["-p", str(workers), "execute", "-x", queue]]
    return commands


def chaining(root: Path, seg: np.ndarray, args) -> tuple:
    """Step 3: (by hand, pipeline) usage, each on a fresh copy of the input."""
    hand_job, _ = prepare(root, "hand", f"fq://{root}/hand.q", seg, args)
    hand = measure_all([PROGRAM + command for command in by_hand(hand_job, f"fq://{root}/hand.q",
                                                                args.workers)])
    job, data = prepare(root, "chained", f"fq://{root}/chained.q", seg, args)
    chained = measure_all([PROGRAM + ["pipeline", "run", str(job)],
                           PROGRAM + ["-p", str(args.workers), "execute", "-x", f"fq://{root}/chained.q"]])
    return hand, chained, root / "hand", data


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="edge of the corner cube of the volume")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--lease", type=int, default=10, help="lease seconds of the fleet's workers")
    parser.add_argument("--pause", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="seconds between kills (default: 1.5-4.5 s times (size/128)^2)")
    parser.add_argument("--purge-after", default="measure-forge", help="purge once this step is done")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    args.pause = args.pause or [1.5 * (args.size / 128) ** 2, 4.5 * (args.size / 128) ** 2]
    return args


def show_fleet(args, chaos: dict, here_data: Path) -> None:
    print(f"fleet: {chaos['seconds']:.1f} s; {chaos['kills']} workers SIGKILLed at random "
          f"(every {args.pause[0]:.1f}-{args.pause[1]:.1f} s), queue purged after {args.purge_after}, "
          f"{chaos['workers']} workers started in all ({chaos['after purge']} after the purge)")
    print(chaos["report"].rstrip())
    equal = compare("fleet", chaos["data"], here_data)
    print(f"every output equal byte for byte: {'yes' if equal else 'NO'}")
    runs = chaos["runs"]
    print(f"tasks recorded done {runs['recorded done']}; runs begun {runs['runs']}, ended recorded done "
          f"{runs['is recorded done']}; tasks begun more than once (killed half way, or two copies at once) "
          f"{runs['run more than once']}, recorded done more than once (two copies at once) "
          f"{runs['recorded done more than once']}; copies skipped as done {runs['is done already']}; "
          f"runs begun after their task was recorded done: {runs['run after recorded done']}", flush=True)


def show_chaining(hand, chained, tasks: int, per_task: float) -> None:
    print(f"by hand: {hand.seconds:.1f} s wall, {hand.cpu:.1f} s CPU; pipeline: {chained.seconds:.1f} s "
          f"wall, {chained.cpu:.1f} s CPU")
    print(f"chaining overhead: {chained.seconds / hand.seconds - 1:+.1%} wall, "
          f"{chained.cpu / hand.cpu - 1:+.1%} CPU of the by-hand stage time; the pipeline's own "
          f"records, {per_task * 1e3:.2f} ms a task x {tasks} tasks, are "
          f"{per_task * tasks / hand.seconds:.2%} of it")


def main() -> None:
    args = options()
    seg = np.asfortranarray(real_segmentation()[:args.size, :args.size, :args.size])
    root = Path(tempfile.mkdtemp(prefix="igneous_like_fleet_"))
    try:
        here_job, here_data = prepare(root, "here", None, seg, args)
        here = measure(PROGRAM + ["-p", str(args.workers), "pipeline", "run", str(here_job)])
        print(f"{args.size}^3 corner of the real segmentation, {fleet.STEPS} steps, task box "
              f"{args.size // 2}^3, {args.workers} workers; here (-p {args.workers}, no queue): "
              f"{here.seconds:.1f} s", flush=True)
        chaos = fleet_run(root, seg, args)
        show_fleet(args, chaos, here_data)
        hand, chained, hand_data, chained_data = chaining(root, seg, args)
        equal = compare("by hand", hand_data, here_data) & compare("pipeline", chained_data, here_data)
        print(f"every output equal byte for byte: {'yes' if equal else 'NO'}")
        show_chaining(hand, chained, chaos["runs"]["recorded done"], bookkeeping_per_task(root))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
