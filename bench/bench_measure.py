"""Measurement of the real 512^3 segmentation with an image: `measure forge --image`, `merge`,
`export`, timed stage by stage (Igneous has no such stage, so igneous_like runs alone).

The script checks the table against numpy on the whole array (one row per object, voxel counts
equal fastremap's), then prints each stage's wall time, CPU time and peak memory.

    python bench/bench_measure.py [-p 2] [--shape 256]
"""
import shutil
import tempfile
from pathlib import Path

import fastremap
import numpy as np
import pandas as pd
from bench_ccl import volume
from common import Usage, measure, parser, programs

from igneous_like.layers import write_array


def main() -> None:
    options = parser("Time measure forge + merge + export on the real 512^3 volume.")
    options.add_argument("--shape", type=int, default=256, help="task side, voxels")
    args = options.parse_args()
    seg, _ = volume("segmentation")
    image, _ = volume("image")
    work = Path(tempfile.mkdtemp(prefix="bench_measure_"))
    try:
        path = write_array(f"file://{work / 'seg'}", seg, "segmentation", chunk=(128, 128, 128))
        image_path = write_array(f"file://{work / 'image'}", image, "image", chunk=(128, 128, 128))
        prefix = programs(args)["igneous_like"]
        shape = f"{args.shape},{args.shape},{args.shape}"
        stages = {"forge": ["measure", "forge", path, "--image", image_path, "--shape", shape],
                  "merge": ["measure", "merge", path],
                  "export": ["measure", "export", path, str(work / "cells.parquet")]}
        usage = {name: measure(prefix + command) for name, command in stages.items()}
        table = pd.read_parquet(work / "cells.parquet")
        labels, counts = fastremap.unique(seg, return_counts=True)
        if not (np.array_equal(table["label"], labels[labels != 0])
                and np.array_equal(table["voxel_count"], counts[labels != 0])):
            raise SystemExit("the table disagrees with fastremap's voxel counts")
        print(f"measure 512^3 with --image, -p {args.parallel}, task {shape}: {len(table)} objects, "
              f"{len(table.columns)} columns; voxel counts equal fastremap's")
        usage["total"] = sum(usage.values(), Usage(0.0, 0.0, 0))
        for name, stage in usage.items():
            print(f"  {name:7s} {stage.seconds:7.2f} s   cpu {stage.cpu:7.2f} s   "
                  f"peak {stage.peak / 2**20:8.1f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
