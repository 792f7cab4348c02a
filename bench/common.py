"""What the benchmarks share: options, the real data, running a command while sampling its
memory, taking turns, and the report."""
import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Usage:
    """What running something cost: wall seconds, CPU seconds of every process, peak bytes."""
    seconds: float
    cpu: float
    peak: int

    def __add__(self, other: "Usage") -> "Usage":
        """One command after another: times add up, the peak is the larger one."""
        return Usage(self.seconds + other.seconds, self.cpu + other.cpu, max(self.peak, other.peak))


def measure(command: list) -> Usage:
    """Run `command`; its wall time, and, sampled every 20 ms over the whole process tree, the
    CPU time of every process (each counted by its own pid, so workers that a fork server
    starts count too) and the peak summed RSS."""
    start = time.perf_counter()
    proc = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, cpu = 0, {}
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
        except psutil.Error:
            procs = []
        rss = 0
        for p in procs:
            try:
                with p.oneshot():
                    times, rss = p.cpu_times(), rss + p.memory_info().rss
                cpu[p.pid] = times.user + times.system
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr.read().decode()}")
    return Usage(seconds, sum(cpu.values()), peak)


def measure_all(commands: list) -> Usage:
    """Run commands one after another."""
    return sum((measure(command) for command in commands), Usage(0.0, 0.0, 0))


def alternate(run_once: Callable[[str], Usage], names: Sequence[str], repeats: int) -> dict:
    """Run each tool `repeats` times, taking turns so that a busy moment hits both alike;
    per tool, the run with the least wall time (and the largest peak of all its runs)."""
    runs = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(run_once(name))
    best = {name: min(got, key=lambda usage: usage.seconds) for name, got in runs.items()}
    return {name: Usage(best[name].seconds, best[name].cpu, max(u.peak for u in runs[name]))
            for name in names}


def report(title: str, results: dict) -> None:
    """Print each tool's wall time, CPU time and peak memory, and the ratios igneous_like / Igneous."""
    print(title)
    for name, usage in results.items():
        print(f"  {name:13s} {usage.seconds:7.2f} s   cpu {usage.cpu:7.2f} s   "
              f"peak {usage.peak / 2**20:8.1f} MiB")
    ours, theirs = results["igneous_like"], results["Igneous"]
    print(f"  ratio (igneous_like / Igneous): time {ours.seconds / theirs.seconds:.2f}, "
          f"cpu {ours.cpu / theirs.cpu:.2f}, memory {ours.peak / theirs.peak:.2f}")
