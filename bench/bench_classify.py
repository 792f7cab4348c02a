"""Synapse detection cost: `image classify train` and `image classify predict` per megavoxel.

igneous_like only (Igneous has no such stage). The workload is the tests' synthetic EM-like
volume (8x8x40 nm, planted clefts with vesicle clouds), scaled to --size: the annotations of
the x < size/2 half train the model, then the whole volume is predicted in tasks of --shape
with -p workers. Each command runs as a subprocess; the script prints wall time, CPU time
(all processes), peak memory, seconds per megavoxel, and the average precision on the
predicted half (and the object F1 of its thresholded components) as a sanity check. `--hard`
makes the volume whose membranes are nearly as dark as its clefts, where `--features
basic,oriented` shows what the oriented features add over `--features basic`. `--pool` adds
supervoxel-pooled features (all features' means and deviations over a watershed
oversegmentation of the image, test/synthetic_em.supervoxels), their two passes included.

    python bench/bench_classify.py [-p 2] [--size 256,256,128] [--scales 16,32] [--n-estimators 50]
        [--shape 128,128,64] [--features basic,oriented] [--hard] [--pool]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from cloudvolume import CloudVolume
from common import measure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from synthetic_em import RESOLUTION, annotate, make_volume, object_f1, supervoxels  # noqa: E402

from igneous_like.layers import write_array  # noqa: E402


def arguments():
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("-p", "--parallel", type=int, default=2)
    out.add_argument("--size", default="256,256,128", help="volume X,Y,Z in voxels")
    out.add_argument("--scales", default="16,32", help="feature scales in nm")
    out.add_argument("--n-estimators", type=int, default=50)
    out.add_argument("--method", default="adaboost", choices=["adaboost", "random-forest"])
    out.add_argument("--shape", default="128,128,64", help="prediction task shape")
    out.add_argument("--features", default="basic", help="feature families, e.g. basic,oriented")
    out.add_argument("--hard", action="store_true", help="membranes nearly as dark as clefts")
    out.add_argument("--pool", action="store_true", help="supervoxel-pooled features too")
    return out.parse_args()


def line(name: str, usage, megavoxels: float) -> str:
    return (f"  {name:8s} {megavoxels:6.2f} Mvx  {usage.seconds:7.2f} s  cpu {usage.cpu:7.2f} s  "
            f"peak {usage.peak / 2**20:7.1f} MiB  -> {usage.seconds / megavoxels:6.2f} s/Mvx wall, "
            f"{usage.cpu / megavoxels:6.2f} s/Mvx cpu")


def main() -> None:
    args = arguments()
    size = tuple(int(v) for v in args.size.split(","))
    extent = np.prod(np.multiply(size, RESOLUTION)) / np.prod(np.multiply((160, 128, 80), RESOLUTION))
    volume = make_volume(shape=size, count=max(4, int(16 * extent)), seed=0, hard=args.hard)
    half = size[0] // 2
    command = [sys.executable, "-m", "igneous_like", "--quiet", "-p", str(args.parallel), "image", "classify"]
    with tempfile.TemporaryDirectory() as tmp:
        image = write_array(f"file://{tmp}/image", volume.image, "image", resolution=RESOLUTION,
                            chunk=(64, 64, 32))
        marks = annotate(volume, (slice(0, half), slice(None), slice(None)))
        annotations = write_array(f"file://{tmp}/annot", marks, "image", resolution=RESOLUTION,
                                  chunk=(64, 64, 32))
        model, dest = f"file://{tmp}/model", f"file://{tmp}/prob"
        pool = []
        if args.pool:
            pool = ["--pool", write_array(f"file://{tmp}/supervoxels", supervoxels(volume.image),
                                          "segmentation", resolution=RESOLUTION, chunk=(64, 64, 32))]
        train = measure(command + ["train", image, "--annotations", annotations, "--output", model,
                                   "--scales", args.scales, "--n-estimators", str(args.n_estimators),
                                   "--method", args.method, "--features", args.features] + pool)
        predict = measure(command + ["predict", image, dest, "--model", model, "--shape", args.shape] + pool)
        prob = np.asarray(CloudVolume(dest, progress=False)[:, :, :])[..., 0]
    import cc3d
    from sklearn.metrics import average_precision_score
    precision = average_precision_score((volume.clefts[half:] > 0).ravel(), prob[half:].ravel())
    found = cc3d.dust(cc3d.connected_components(prob[half:] >= 128, connectivity=26), 20, connectivity=26)
    f1 = object_f1(found, volume.clefts[half:])
    print(f"classify {size} voxels{' (hard)' if args.hard else ''}, scales {args.scales} nm, features "
          f"{args.features}{' + pooled' if args.pool else ''}, {args.method} x{args.n_estimators}, "
          f"tasks {args.shape}, -p {args.parallel}; "
          f"{len(volume.synapses)} synapses")
    print(line("train", train, marks.size / 1e6) + f"  ({int((marks == 255).sum())} positive, "
          f"{int((marks == 0).sum())} negative voxels)")
    print(line("predict", predict, volume.image.size / 1e6)
          + f"  (average precision {precision:.3f}, object F1 {f1:.3f})")


if __name__ == "__main__":
    main()
