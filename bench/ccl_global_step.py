"""Time igneous_like's CCL global step alone (calc-labels' union-find and numbering) on synthetic
face labels and random links, to show how it scales far past the real data's size.

    python bench/ccl_global_step.py [--labels 20000000]
"""
import argparse
import resource
import time

import numpy as np

from igneous_like.ccl import plan_numbering


def global_step(count: int, per_task: int = 1000) -> None:
    """calc-labels' arrays for `count` face labels (`per_task` in each 512^3 task) and `count` links."""
    rng = np.random.default_rng(0)
    tasks = count // per_task
    nodes = (np.repeat(np.arange(tasks, dtype=np.uint64), per_task) * np.uint64(512**3)
             + np.tile(np.arange(1, per_task + 1, dtype=np.uint64), tasks))
    links = nodes[rng.integers(0, nodes.size, (2, nodes.size))]
    start = time.perf_counter()
    _, _, total = plan_numbering(nodes, rng.integers(1, 5000, nodes.size).astype(np.uint64),
                                 np.repeat(np.arange(tasks), per_task), links[0], links[1],
                                 rng.integers(0, 10**5, tasks).astype(np.uint64), dust=1000)
    print(f"global step, {nodes.size:,} face labels in {tasks:,} tasks and {nodes.size:,} random links: "
          f"{time.perf_counter() - start:.1f} s, {total:,} components kept, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--labels", type=int, default=20_000_000, help="face labels (and random links)")
    global_step(cli.parse_args().labels)
