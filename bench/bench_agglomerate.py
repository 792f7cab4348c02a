"""`agglomerate merge` on a synthetic graph of about 10^7 edges: time and peak memory.

The graph is a 3D grid of N^3 fragments (N = 150: 3,375,000 nodes and 10,057,500 edges), each
edge with random statistics (1-200 contacts, a random mean boundary level, its histogram as one
bin), stored as the graph step would store it: a fragments layer's info and 8 graph parts
under LAYER/KEY/agglomeration/. Then the real CLI runs, as a subprocess whose whole process
tree is sampled for peak RSS:

    python bench/bench_agglomerate.py [--size 150] [--policy mean] [--threshold 0.3]

With --active it instead prints the quality of active learning on the real data (needs
../shared/data): the plain learned policy (1 round) and active learning (3 rounds) trained on
one crop, merged at 0.5 on a held-apart crop, VI split and merge of each (the test's figures),
for the edge feature family --features (basic, extended, or both).

Igneous has no agglomeration, so there is no side-by-side run; the figures go to BENCHMARKS.md.
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from cloudfiles import CloudFiles
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox
from common import measure

from igneous_like.region_graph import BIN_WIDTH, LEVELS, MOMENTS, RegionGraph
from igneous_like.stage import WorkDir
from igneous_like.tasks.agglomerate import PARAMS_FILE, graph_name

PARTS = 8


def grid_graph(size: int, low: int, high: int, seed: int = 0) -> RegionGraph:
    """Fragments 1..size^3 of the ids low..high-1 (z slabs) and their grid edges to higher ids."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, size**3 + 1, dtype=np.uint64).reshape(size, size, size)  # (z, y, x)
    pairs = [(ids[:, :, :-1], ids[:, :, 1:]), (ids[:, :-1, :], ids[:, 1:, :]), (ids[:-1], ids[1:])]
    a = np.concatenate([p[0].ravel() for p in pairs])
    b = np.concatenate([p[1].ravel() for p in pairs])
    mine = (a >= low) & (a < high)
    a, b = a[mine], b[mine]
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    count = rng.integers(1, 200, a.size)
    level = rng.integers(0, 256, a.size) * BIN_WIDTH
    nodes = np.arange(low, min(high, size**3 + 1), dtype=np.uint64)
    column = lambda values, dtype=np.int64: values.astype(dtype)[:, None]  # one boundary channel
    return RegionGraph(a=a, b=b, count=count, total=column(count * level),
                       squares=column(count * level * level), low=column(level, np.uint16),
                       high=column(np.minimum(level + 500, LEVELS), np.uint16),
                       hist_edge=np.arange(a.size, dtype=np.int64), hist_channel=np.zeros(a.size, np.uint8),
                       hist_bin=(level // BIN_WIDTH).astype(np.uint8),
                       hist_count=count, nodes=nodes, sizes=rng.integers(100, 10000, nodes.size),
                       moments=np.zeros((nodes.size, len(MOMENTS)), np.int64))


def write_graph(path: str, size: int) -> int:
    """A fragments layer's info and the graph parts of PARTS z slabs; returns the edge count."""
    info = CloudVolume.create_new_info(1, "segmentation", "uint32", "raw", [16, 16, 40], [0, 0, 0],
                                       [size, size, size], chunk_size=[64, 64, 64])
    cv = CloudVolume(path, info=info, progress=False)
    cv.commit_info()
    work = CloudFiles(cv.meta.join(cv.cloudpath, cv.meta.key(0), "agglomeration"))
    slab = -(-size // PARTS)
    work.put_json(PARAMS_FILE, {"fragments": path, "boundary": path, "mip": 0, "offset": [0, 0, 0],
                                "size": [size] * 3, "shape": [size, size, slab]})
    edges = 0
    for part in range(PARTS):
        z0, z1 = part * slab, min((part + 1) * slab, size)
        graph = grid_graph(size, z0 * size * size + 1, z1 * size * size + 1)
        WorkDir(work.cloudpath).put_arrays(graph_name(Bbox((0, 0, z0), (size, size, z1))), **graph.arrays())
        edges += graph.num_edges
    return edges


def active_learning_figures(families) -> None:
    """The comparison of test_agglomerate's active learning test, printed per feature family."""
    import crackle
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
    from conftest import DATA
    from test_agglomerate import active_learning_scores
    seg = np.asfortranarray(crackle.load(str(DATA)))
    for family in families:
        scores = active_learning_scores(seg, family)
        for name in ("plain", "active"):
            found = scores[name]
            print(f"{name:6s} learned policy, {family} features: VI split {found['vi_split']:.4f} merge "
                  f"{found['vi_merge']:.4f} sum {found['vi_split'] + found['vi_merge']:.4f} bits (held-apart "
                  "crop, threshold 0.5)", flush=True)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--size", type=int, default=150, help="grid edge: size^3 fragments")
    cli.add_argument("--policy", default="mean", choices=["mean", "median", "quantile"])
    cli.add_argument("--threshold", type=float, default=0.3)
    cli.add_argument("--active", action="store_true", help="active learning against the plain learned policy")
    cli.add_argument("--features", default="basic", choices=["basic", "extended", "both"],
                     help="the edge feature family of --active")
    args = cli.parse_args()
    if args.active:
        return active_learning_figures(["basic", "extended"] if args.features == "both" else [args.features])
    work = Path(tempfile.mkdtemp(prefix="bench_agglomerate_"))
    try:
        path = f"file://{work}/frag"
        edges = write_graph(path, args.size)
        usage = measure([sys.executable, "-m", "igneous_like", "--quiet", "agglomerate", "merge", path,
                         "--policy", args.policy, "--threshold", str(args.threshold)])
        merged = CloudFiles(f"{path}/16_16_40/agglomeration").get_json("merge.json")
        print(f"agglomerate merge --policy {args.policy} --threshold {args.threshold}: {args.size**3:,} "
              f"fragments, {edges:,} edges -> {merged['segments']:,} segments")
        print(f"  {usage.seconds:7.1f} s   cpu {usage.cpu:7.1f} s   peak {usage.peak / 2**30:6.2f} GiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
