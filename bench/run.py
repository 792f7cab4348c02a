"""Run the benchmark stages through igneous_like and through Igneous, side by side.

Each stage writes its input layer afresh for each program (not timed), runs the same commands
through both CLIs with the same -p, taking turns `--repeats` times, checks that the outputs
agree, and prints per program the best wall time, its CPU time (every process of the tree), the
peak summed RSS of the tree and the peak RSS of its largest process; then the ratios
Igneous / igneous_like (above 1: igneous_like is faster or leaner).

    python bench/run.py --igneous /tmp/igvenv/bin/igneous [--stages ccl,mesh] [-p 2] [--repeats 2]
    python bench/run.py --programs igneous_like --tile 2 --stages downsample-seg,ccl,voxels  # 1024^3
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import Usage, alternate, measure_all
from stages import STAGES

from igneous_like.layers import write_array

PROGRAMS = ("igneous_like", "Igneous")


def arguments() -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--igneous", default="igneous", help="the Igneous CLI executable")
    cli.add_argument("-p", "--parallel", type=int, default=2)
    cli.add_argument("--stages", default=",".join(stage.name for stage in STAGES),
                     help="comma-separated, of: " + ", ".join(stage.name for stage in STAGES))
    cli.add_argument("--programs", default=",".join(PROGRAMS), help="igneous_like, Igneous or both")
    cli.add_argument("--repeats", type=int, default=2, help="runs of each program, taking turns; best time")
    cli.add_argument("--tile", type=int, default=1, help="tile the 512^3 volume tile^3 times (distinct ids)")
    args = cli.parse_args()
    known = {stage.name: stage for stage in STAGES}
    unknown = [name for name in args.stages.split(",") if name not in known]
    if unknown or set(args.programs.split(",")) - set(PROGRAMS):
        cli.error(f"unknown stage or program: {unknown or args.programs}")
    args.stages = [known[name] for name in args.stages.split(",")]
    args.programs = args.programs.split(",")
    return args


def prefix(program: str, args) -> list:
    if program == "igneous_like":
        return [sys.executable, "-m", "igneous_like", "--quiet", "-p", str(args.parallel)]
    return [args.igneous, "-p", str(args.parallel)]


def run_stage(stage, args, work: Path) -> tuple:
    """({program: Usage}, what agreed) for one stage."""
    data = stage.volume(args.tile)
    programs = args.programs if stage.shared else ["igneous_like"]
    paths = {}

    def run_once(program: str) -> Usage:
        for old in work.glob(f"{program}*"):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        paths[program] = write_array(f"file://{work / program}", data, stage.layer_type)
        for suffix, volume, layer_type in stage.extra:
            write_array(f"{paths[program]}{suffix}", volume(args.tile), layer_type)
        queue = f"fq://{work / (program + '_queue')}"
        return measure_all([prefix(program, args) + command
                            for command in stage.commands(program, paths[program], queue)])

    results = alternate(run_once, programs, args.repeats)
    agreed = stage.agree(paths) if len(programs) == 2 or not stage.shared else "igneous_like only"
    return results, f"{np.prod(data.shape) / 1e6:,.0f} Mvoxels; {agreed}"


def mib(count: int) -> str:
    return f"{count / 2**20:,.0f}"


def table(rows: list) -> None:
    """One line per stage and program, then the ratios when both ran."""
    print(f"\n{'stage':18s} {'program':13s} {'wall s':>8s} {'cpu s':>8s} {'peak MiB':>9s} "
          f"{'1-proc MiB':>10s}")
    for stage, results, _ in rows:
        for program, usage in results.items():
            print(f"{stage.name:18s} {program:13s} {usage.seconds:8.2f} {usage.cpu:8.2f} "
                  f"{mib(usage.peak):>9s} {mib(usage.process_peak):>10s}")
        if len(results) == 2:
            ours, theirs = results["igneous_like"], results["Igneous"]
            print(f"{stage.name:18s} {'Igneous/ours':13s} {theirs.seconds / ours.seconds:7.2f}x "
                  f"{theirs.cpu / ours.cpu:7.2f}x {theirs.peak / ours.peak:8.2f}x "
                  f"{theirs.process_peak / ours.process_peak:9.2f}x")
    print()
    for stage, _, agreed in rows:
        print(f"{stage.name}: {stage.title}; {agreed}")


def main() -> None:
    args = arguments()
    work = Path(tempfile.mkdtemp(prefix="igneous_like_bench_"))
    rows = []
    try:
        for stage in args.stages:
            results, agreed = run_stage(stage, args, work)
            rows.append((stage, results, agreed))
            print(f"{stage.name}: " + ", ".join(f"{p} {u.seconds:.1f} s" for p, u in results.items()),
                  file=sys.stderr, flush=True)
    finally:  # the stages that ran are reported even when a later one fails
        shutil.rmtree(work, ignore_errors=True)
        print(f"-p {args.parallel}, best of {args.repeats} alternating runs, volume tiled {args.tile}^3")
        table(rows)


if __name__ == "__main__":
    main()
