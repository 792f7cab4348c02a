"""Downsample the real 512^3 data with igneous_like and with Igneous, side by side.

Both run as CLI subprocesses on identical copies of the layer with the same parallelism; the
script checks that every mip agrees voxel for voxel, then prints time and peak memory (the
largest summed RSS of the process tree, sampled every 20 ms) and their ratios.

    python bench/bench_downsample.py --igneous /path/to/venv/bin/igneous [-p 2] [--num-mips 3]
"""
import shutil
import tempfile
from pathlib import Path

import numpy as np
from cloudvolume import CloudVolume
from common import measure, parser, programs, real_segmentation, report

from igneous_like.layers import write_array


def volumes(kind: str) -> tuple:
    seg = real_segmentation()
    if kind == "segmentation":
        return seg, "segmentation"
    return np.asfortranarray((seg % 251).astype(np.uint8)), "image"


def main() -> None:
    cli = parser(__doc__, kinds=True)
    cli.add_argument("--num-mips", type=int, default=3)
    args = cli.parse_args()
    data, layer_type = volumes(args.kind)
    work = Path(tempfile.mkdtemp(prefix="bench_downsample_"))
    try:
        runs = programs(args)
        results = {}
        for name, prefix in runs.items():
            path = write_array(f"file://{work / name}", data, layer_type)
            command = prefix + ["image", "downsample", path, "--num-mips", str(args.num_mips)]
            results[name] = measure(command)
        made = {name: len(CloudVolume(f"file://{work / name}").info["scales"]) - 1 for name in runs}
        for mip in range(1, min(made.values()) + 1):
            ours, theirs = (CloudVolume(f"file://{work / name}", mip=mip, progress=False) for name in runs)
            if not np.array_equal(ours[ours.bounds], theirs[theirs.bounds]):
                raise SystemExit(f"outputs differ at mip {mip}")
        report(f"downsample {args.kind} 512^3, --num-mips {args.num_mips} 2x2x1, -p {args.parallel}; "
               f"mips made {made}; the common mips agree voxel for voxel", results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
