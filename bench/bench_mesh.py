"""Forge and merge meshes of the real segmentation with igneous_like and with Igneous, side by side.

Both run the same commands through a file queue (forge, execute, merge, execute) on identical
copies of a crop of the real 512^3 segmentation, with the same task shape and parallelism. The
script checks that both meshed the same labels and that each mesh's bounding box agrees within
one voxel plus the simplification error, then prints time (all four commands; the best of
--repeats runs, taken in turns) and peak memory (the largest of them) and their ratios.

    python bench/bench_mesh.py --igneous /path/to/venv/bin/igneous [-p 2] [--size 256] [--nlod 0]
"""
import shutil
import tempfile
from pathlib import Path

import numpy as np
from cloudvolume import CloudVolume
from common import alternate, measure_all, parser, programs, real_segmentation, report

from igneous_like.layers import write_array

MAX_ERROR = 40


def commands(prefix: list, path: str, queue: str, shape: str, nlod: int) -> list:
    execute = prefix + ["execute", "-x", queue]
    forge = prefix + ["mesh", "forge", path, "--shape", shape, "--queue", queue]
    merge = prefix + ["mesh", "merge", path, "--nlod", str(nlod), "--magnitude", "1", "--queue", queue]
    return [forge, execute, merge, execute]


def check_agreement(paths: dict, labels: list, resolution: np.ndarray, nlod: int) -> None:
    boxes = {}
    for name, path in paths.items():
        cv = CloudVolume(path, progress=False)
        found = cv.mesh.get(labels, fuse=False) if nlod == 0 else cv.mesh.get(labels, lod=0)
        if set(found) != set(labels):
            raise SystemExit(f"{name} meshed {len(found)} of {len(labels)} labels")
        boxes[name] = {label: (m.vertices.min(axis=0), m.vertices.max(axis=0)) for label, m in found.items()}
    tolerance = resolution + MAX_ERROR
    for label in labels:
        (low_a, high_a), (low_b, high_b) = boxes["igneous_like"][label], boxes["Igneous"][label]
        if np.any(np.abs(low_a - low_b) > tolerance) or np.any(np.abs(high_a - high_b) > tolerance):
            raise SystemExit(f"label {label}: bounding boxes differ: {low_a, high_a} vs {low_b, high_b}")


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--size", type=int, default=256, help="crop edge in voxels (at most 512)")
    cli.add_argument("--shape", default="128,128,128", help="task shape")
    cli.add_argument("--nlod", type=int, default=0, help="0: legacy meshes; N: multi-resolution")
    cli.add_argument("--repeats", type=int, default=2, help="runs of each tool, taking turns; best time")
    args = cli.parse_args()
    start = (512 - args.size) // 2  # the middle of the volume, where objects are small and many
    seg = real_segmentation()[start:start + args.size, start:start + args.size, start:start + args.size]
    labels = [int(label) for label in np.unique(seg) if label]
    work = Path(tempfile.mkdtemp(prefix="bench_mesh_"))
    try:
        prefixes = programs(args)
        paths = {}

        def run_once(name: str) -> tuple:
            shutil.rmtree(work / name, ignore_errors=True)
            paths[name] = write_array(f"file://{work / name}", np.asfortranarray(seg), "segmentation")
            queue = f"fq://{work / (name + '_queue')}"
            return measure_all(commands(prefixes[name], paths[name], queue, args.shape, args.nlod))

        results = alternate(run_once, list(prefixes), args.repeats)
        check_agreement(paths, labels, np.array([16.0, 16.0, 40.0]), args.nlod)
        report(f"mesh forge + merge (--nlod {args.nlod}) of the real segmentation's middle {args.size}^3 "
               f"({len(labels)} labels), --shape {args.shape}, -p {args.parallel}; every label meshed by "
               "both, bounding boxes agree", results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
