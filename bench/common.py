"""What the benchmarks share: the real data, running commands while sampling their CPU time and
memory, and taking turns."""
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import psutil

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "connectomics.npy.ckl.gz"


def real_segmentation() -> np.ndarray:
    """The real 512^3 uint32 segmentation (Fortran order), or exit saying where it should be."""
    if not DATA.exists():
        raise SystemExit(f"real data not found at {DATA}")
    import crackle
    return np.asfortranarray(crackle.load(str(DATA)))


@dataclass(frozen=True)
class Usage:
    """What running something cost: wall seconds, CPU seconds of every process, peak bytes of the
    whole process tree and of its largest single process."""
    seconds: float
    cpu: float
    peak: int
    process_peak: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        """One command after another: times add up, the peaks are the larger ones."""
        return Usage(self.seconds + other.seconds, self.cpu + other.cpu, max(self.peak, other.peak),
                     max(self.process_peak, other.process_peak))


def measure(command: list) -> Usage:
    """Run `command`; its wall time, and, sampled every 20 ms over the whole process tree, the
    CPU time of every process (each counted by its own pid, so workers that a fork server
    starts count too), the peak summed RSS and the peak RSS of any one process."""
    start = time.perf_counter()
    proc = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, process_peak, cpu = 0, 0, {}
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
        except psutil.Error:
            procs = []
        rss = 0
        for p in procs:
            try:
                with p.oneshot():
                    times, own = p.cpu_times(), p.memory_info().rss
                cpu[p.pid] = times.user + times.system
                rss, process_peak = rss + own, max(process_peak, own)
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr.read().decode()}")
    return Usage(seconds, sum(cpu.values()), peak, process_peak)


def measure_all(commands: list) -> Usage:
    """Run commands one after another."""
    return sum((measure(command) for command in commands), Usage(0.0, 0.0, 0, 0))


def alternate(run_once: Callable[[str], Usage], names: Sequence[str], repeats: int) -> dict:
    """Run each tool `repeats` times, taking turns so that a busy moment hits both alike;
    per tool, the run with the least wall time (and the largest peak of all its runs)."""
    runs = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(run_once(name))
    best = {name: min(got, key=lambda usage: usage.seconds) for name, got in runs.items()}
    return {name: Usage(best[name].seconds, best[name].cpu, max(u.peak for u in runs[name]),
                        max(u.process_peak for u in runs[name])) for name in names}
