"""Downsample the real 512^3 data with igneous_like and with Igneous, side by side.

Both run as CLI subprocesses on identical copies of the layer with the same parallelism; the
script checks that every mip agrees voxel for voxel, then prints time and peak memory (the
largest summed RSS of the process tree, sampled every 20 ms) and their ratios.

    python bench/bench_downsample.py --igneous /path/to/venv/bin/igneous [-p 2] [--num-mips 3]
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from cloudvolume import CloudVolume

from igneous_like.layers import write_array

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "connectomics.npy.ckl.gz"


def measure(command: list) -> tuple:
    """Run `command`; return (seconds, peak bytes of the process and its children together)."""
    start = time.perf_counter()
    proc = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr.read().decode()}")
    return seconds, peak


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: the Igneous executable, -p, and the kind of data."""
    out = argparse.ArgumentParser(description=description,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--igneous", default="igneous", help="the Igneous CLI executable")
    out.add_argument("-p", "--parallel", type=int, default=2)
    out.add_argument("--kind", choices=["segmentation", "image"], default="segmentation")
    return out


def programs(args) -> dict:
    """The command prefix of each program, with the same parallelism."""
    return {"igneous_like": [sys.executable, "-m", "igneous_like", "--quiet", "-p", str(args.parallel)],
            "Igneous": [args.igneous, "-p", str(args.parallel)]}


def report(results: dict) -> None:
    """Time and peak memory of each program (seconds, bytes), and their ratios."""
    for name, (seconds, peak) in results.items():
        print(f"  {name:13s} {seconds:7.2f} s   peak {peak / 2**20:8.1f} MiB")
    (ours_s, ours_b), (theirs_s, theirs_b) = results["igneous_like"], results["Igneous"]
    print(f"  ratio (igneous_like / Igneous): time {ours_s / theirs_s:.2f}, memory {ours_b / theirs_b:.2f}")


def volumes(kind: str) -> tuple:
    import crackle
    seg = np.asfortranarray(crackle.load(str(DATA)))
    if kind == "segmentation":
        return seg, "segmentation"
    return np.asfortranarray((seg % 251).astype(np.uint8)), "image"


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--num-mips", type=int, default=3)
    args = cli.parse_args()
    if not DATA.exists():
        raise SystemExit(f"real data not found at {DATA}")
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
        print(f"downsample {args.kind} 512^3, --num-mips {args.num_mips} 2x2x1, -p {args.parallel}; "
              f"mips made {made}; the common mips agree voxel for voxel")
        report(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
