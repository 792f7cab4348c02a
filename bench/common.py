"""What the benchmarks share: options, the real data, running a command while sampling its
memory, taking turns, and the report."""
import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import psutil

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "connectomics.npy.ckl.gz"


def parser(description: str, kinds: bool = False) -> argparse.ArgumentParser:
    """The options every benchmark takes: the Igneous executable and -p (and, with `kinds`,
    whether to run on the segmentation or on an image made from it)."""
    out = argparse.ArgumentParser(description=description,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--igneous", default="igneous", help="the Igneous CLI executable")
    out.add_argument("-p", "--parallel", type=int, default=2)
    if kinds:
        out.add_argument("--kind", choices=["segmentation", "image"], default="segmentation")
    return out


def programs(args) -> dict:
    """The command prefix of each program, with the same parallelism."""
    return {"igneous_like": [sys.executable, "-m", "igneous_like", "--quiet", "-p", str(args.parallel)],
            "Igneous": [args.igneous, "-p", str(args.parallel)]}


def real_segmentation() -> np.ndarray:
    """The real 512^3 uint32 segmentation (Fortran order), or exit saying where it should be."""
    if not DATA.exists():
        raise SystemExit(f"real data not found at {DATA}")
    import crackle
    return np.asfortranarray(crackle.load(str(DATA)))


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


def measure_all(commands: list) -> tuple:
    """Run commands one after another: (total seconds, the largest peak of any of them)."""
    results = [measure(command) for command in commands]
    return sum(seconds for seconds, _ in results), max(peak for _, peak in results)


def alternate(run_once: Callable[[str], tuple], names: Sequence[str], repeats: int) -> dict:
    """Run each tool `repeats` times, taking turns so that a busy moment hits both alike;
    per tool: (the fastest time, the largest peak memory)."""
    runs = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(run_once(name))
    return {name: (min(s for s, _ in got), max(b for _, b in got)) for name, got in runs.items()}


def report(title: str, results: dict) -> None:
    """Print each tool's time and peak memory and the ratios igneous_like / Igneous."""
    print(title)
    for name, (seconds, peak) in results.items():
        print(f"  {name:13s} {seconds:7.2f} s   peak {peak / 2**20:8.1f} MiB")
    (ours_s, ours_b), (theirs_s, theirs_b) = results["igneous_like"], results["Igneous"]
    print(f"  ratio (igneous_like / Igneous): time {ours_s / theirs_s:.2f}, memory {ours_b / theirs_b:.2f}")
