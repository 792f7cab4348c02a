"""Connected components and voxel counts of the real 512^3 data: igneous_like against Igneous.

Both run as CLI subprocesses on identical copies of the layer with the same parallelism
(`image ccl auto`, 6-connected as Igneous is; or `image voxels count` then `sum`). The script
checks that the outputs agree (the same components, up to their ids; the same counts), then
prints time and peak memory (the largest summed RSS of the process tree) and their ratios.

    python bench/bench_ccl.py --igneous /path/to/venv/bin/igneous [-p 2] [--shape 256]
        [--kind segmentation|image] [--work ccl|voxels]

`--work global` times igneous_like's global step alone (calc-labels' union-find and numbering)
on synthetic face labels and random links, `--labels` of each, to show how it scales.
"""
import resource
import shutil
import tempfile
import time
from pathlib import Path

import fastremap
import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from common import measure_all, parser, programs, real_segmentation, report

from igneous_like.ccl import plan_numbering
from igneous_like.label_table import read_voxel_counts
from igneous_like.layers import write_array

THRESHOLD = 140


def volume(kind: str) -> tuple:
    """The segmentation, or an EM-like image made from it (a grey level per object, dark borders)."""
    seg = real_segmentation()
    if kind == "segmentation":
        return seg, "segmentation"
    grey = ((seg.astype(np.uint64) * np.uint64(2654435761)) >> np.uint64(24)) % np.uint64(200)
    image = (grey + 40).astype(np.uint8)
    borders = np.zeros(seg.shape, dtype=bool)
    borders[1:] |= seg[1:] != seg[:-1]
    borders[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    image[borders] = 10
    return np.asfortranarray(image), "image"


def commands(args, src: str, dest: str) -> list:
    """The command lines of one run, after the program prefix."""
    if args.work == "voxels":  # Igneous counts in fixed 512^3 tasks, igneous_like's default too
        return [["image", "voxels", "count", src], ["image", "voxels", "sum", src]]
    threshold = ["--threshold-gte", str(THRESHOLD)] if args.kind == "image" else []
    return [["image", "ccl", "auto", src, dest, "--shape", f"{args.shape},{args.shape},{args.shape}",
             "--encoding", "raw", *threshold]]


def read(path: str) -> np.ndarray:
    cv = CloudVolume(path, progress=False)
    return np.asarray(cv[cv.bounds])[..., 0]


def igneous_counts(path: str) -> tuple:
    from mapbuffer import IntMap
    data = CloudFiles(path).get("16_16_40/stats/voxel_counts.im")
    items = sorted(IntMap(data).items())
    return (np.array([k for k, _ in items], np.uint64), np.array([v for _, v in items], np.uint64))


def agree(work: Path, args) -> str:
    if args.work == "voxels":
        ours = read_voxel_counts(f"file://{work / 'igneous_like'}")
        theirs = igneous_counts(f"file://{work / 'Igneous'}")
        if not all(np.array_equal(a, b) for a, b in zip(ours, theirs)):
            raise SystemExit("voxel counts differ")
        return f"{ours[0].size} labels, counts equal"
    ours, theirs = (read(f"file://{work / name}_cc") for name in ("igneous_like", "Igneous"))
    if not np.array_equal(fastremap.renumber(ours)[0], fastremap.renumber(theirs)[0]):
        raise SystemExit("the components differ")
    return f"{int(ours.max())} components, the same in both"


def global_step(count: int, per_task: int = 1000) -> None:
    """calc-labels' arrays for `count` face labels (`per_task` in each 512^3 task) and `count` links."""
    rng = np.random.default_rng(0)
    tasks = count // per_task
    nodes = (np.repeat(np.arange(tasks, dtype=np.uint64), per_task) * np.uint64(512**3)
             + np.tile(np.arange(1, per_task + 1, dtype=np.uint64), tasks))
    links = nodes[rng.integers(0, nodes.size, (2, nodes.size))]
    start = time.perf_counter()
    _, _, total = plan_numbering(nodes, rng.integers(1, 5000, nodes.size).astype(np.uint64),
                                 np.repeat(np.arange(tasks), per_task), links[0], links[1],
                                 rng.integers(0, 10**5, tasks).astype(np.uint64), dust=1000)
    print(f"global step, {nodes.size:,} face labels in {tasks:,} tasks and {nodes.size:,} random links: "
          f"{time.perf_counter() - start:.1f} s, {total:,} components kept, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


def main() -> None:
    cli = parser(__doc__, kinds=True)
    cli.add_argument("--shape", type=int, default=256, help="ccl task edge in voxels")
    cli.add_argument("--work", choices=["ccl", "voxels", "global"], default="ccl")
    cli.add_argument("--labels", type=int, default=20_000_000, help="face labels for --work global")
    args = cli.parse_args()
    if args.work == "global":
        return global_step(args.labels)
    data, layer_type = volume(args.kind)
    work = Path(tempfile.mkdtemp(prefix="bench_ccl_"))
    try:
        runs = programs(args)
        results = {}
        for name, prefix in runs.items():
            src = write_array(f"file://{work / name}", data, layer_type)
            results[name] = measure_all([prefix + command for command in commands(args, src, f"{src}_cc")])
        what = f"{args.kind} >= {THRESHOLD}" if args.kind == "image" and args.work == "ccl" else args.kind
        verb = "ccl auto (6-connected)" if args.work == "ccl" else "voxels count + sum"
        edge = args.shape if args.work == "ccl" else 512
        report(f"{verb} of the 512^3 {what}, tasks {edge}^3, -p {args.parallel}: {agree(work, args)}",
               results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
