"""Skeletonize a crop of the real 512^3 segmentation with igneous_like and with Igneous.

Both run `skeleton forge` then `skeleton merge` as CLI subprocesses on identical copies of the
layer with the same parallelism and TEASAR settings. The script reports time and peak memory
(summed RSS of the process tree, sampled every 20 ms) per stage and in total, and compares
both outputs with kimimaro run on the whole crop in one call (share of labels whose cable
length is within 5%).

    python bench/bench_skeleton.py --igneous /path/to/venv/bin/igneous [-p 2] [--context 1200]
"""
import shutil
import tempfile
from pathlib import Path

import kimimaro
import numpy as np
from cloudvolume import CloudVolume
from common import measure, parser, programs, real_segmentation

from igneous_like.layers import write_array
from igneous_like.task_creation.skeleton import skeleton_labels

TEASAR = ["--scale", "4", "--const", "10"]


def cable_agreement(path: str, reference: dict) -> tuple:
    """(labels of the reference with a non-empty skeleton here, share of them within 5% cable)."""
    cv = CloudVolume(path, mip=0, progress=False)
    labels = [label for label in reference if label in set(skeleton_labels(cv))]
    cable = {s.id: s.cable_length() for s in cv.skeleton.get(labels) if not s.empty()}
    ratios = np.array([cable[label] / reference[label].cable_length() for label in cable])
    return len(cable), float(np.mean(np.abs(ratios - 1) <= 0.05)) if len(ratios) else 0.0


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--crop", default="256,256,128", help="X,Y,Z of the crop (from the origin)")
    cli.add_argument("--shape", default="128,128,64", help="task shape")
    cli.add_argument("--context", default=None, help="igneous_like --context (nm); default: its own")
    args = cli.parse_args()
    x, y, z = (int(v) for v in args.crop.split(","))
    crop = np.asfortranarray(real_segmentation()[:x, :y, :z])
    work = Path(tempfile.mkdtemp(prefix="bench_skeleton_"))
    context = [] if args.context is None else ["--context", args.context]
    prefixes = programs(args)
    runs = {
        "igneous_like": (prefixes["igneous_like"], context, ["--dust-threshold", "1000"]),
        "Igneous": (prefixes["Igneous"], [], ["--min-cable-length", "1000"]),
    }
    try:
        results = {}
        for name, (prefix, forge_extra, merge_extra) in runs.items():
            path = write_array(f"file://{work / name}", crop, "segmentation")
            forge = measure(prefix + ["skeleton", "forge", path, "--shape", args.shape, *TEASAR,
                                      *forge_extra])
            merge = measure(prefix + ["skeleton", "merge", path, *merge_extra])
            results[name] = (path, forge, merge)
        teasar = {"scale": 4, "const": 10, "pdrf_scale": 100000, "pdrf_exponent": 4,
                  "soma_detection_threshold": 1100, "soma_acceptance_threshold": 3500,
                  "soma_invalidation_scale": 1.0, "soma_invalidation_const": 300}
        reference = kimimaro.skeletonize(crop, teasar, anisotropy=(16, 16, 40), dust_threshold=1000,
                                         progress=False)
        print(f"skeletonize segmentation crop {args.crop} (16x16x40 nm), tasks {args.shape}, "
              f"-p {args.parallel}, igneous_like context {args.context or 'default'}")
        for name, (path, forge, merge) in results.items():
            count, within = cable_agreement(path, reference)
            total = forge + merge
            print(f"  {name:13s} forge {forge.seconds:7.1f} s peak {forge.peak / 2**20:7.1f} MiB | merge "
                  f"{merge.seconds:6.1f} s peak {merge.peak / 2**20:7.1f} MiB | total {total.seconds:7.1f} s"
                  f" cpu {total.cpu:7.1f} s | {count} non-empty skeletons, "
                  f"{within:.1%} within 5% of one-call kimimaro's cable length")
        ours, theirs = (results[name][1] + results[name][2] for name in ("igneous_like", "Igneous"))
        print(f"  ratio (igneous_like / Igneous): time {ours.seconds / theirs.seconds:.2f}, "
              f"cpu {ours.cpu / theirs.cpu:.2f}, peak memory {ours.peak / theirs.peak:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
