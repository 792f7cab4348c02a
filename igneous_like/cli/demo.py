"""`igneous-like demo`: make a small synthetic volume and process it through a real file queue."""
import shutil
import time
from pathlib import Path

import click
import numpy as np

from igneous_like import queues
from igneous_like.errors import UserError
from igneous_like.layers import write_array

SHAPE, OFFSET, CHUNK, RESOLUTION = (256, 256, 64), (64, 32, 0), (64, 64, 16), (16, 16, 40)
NUM_MIPS, NUM_CELLS, SEED = 3, 60, 2024
PARTS = ("image", "segmentation", "image_rechunked", "queue")


def make_volumes(shape=SHAPE, num_cells=NUM_CELLS, seed=SEED):
    """An EM-like uint8 image and its uint32 segmentation: Voronoi cells with dark membranes."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 1, (num_cells, 3)) * shape
    ids = rng.choice(np.arange(1, 2**20, dtype=np.uint32), num_cells, replace=False)
    x, y, z = np.ogrid[:shape[0], :shape[1], :shape[2]]
    anisotropy = RESOLUTION[2] / RESOLUTION[0]
    best = np.full(shape, np.inf, dtype=np.float32)
    owner = np.zeros(shape, dtype=np.int32)
    for cell, (cx, cy, cz) in enumerate(centers):
        dist = ((x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * anisotropy) ** 2).astype(np.float32)
        closer = dist < best
        best[closer], owner[closer] = dist[closer], cell
    seg = ids[owner]
    membrane = np.zeros(shape, dtype=bool)
    membrane[1:] |= seg[1:] != seg[:-1]
    membrane[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    image = rng.integers(90, 210, num_cells)[owner] + rng.normal(0, 12, shape)
    image[membrane] = 30 + rng.normal(0, 8, int(membrane.sum()))
    return np.asfortranarray(np.clip(image, 0, 255).astype(np.uint8)), np.asfortranarray(seg)


def summary(path: str) -> str:
    from cloudvolume import CloudVolume
    cv = CloudVolume(path, progress=False)
    sizes = ", ".join("x".join(map(str, cv.meta.volume_size(m))) for m in range(len(cv.info["scales"])))
    chunk = "x".join(map(str, cv.meta.chunk_size(0)))
    return f"{cv.layer_type} {cv.dtype}, {len(cv.info['scales'])} mips ({sizes}), chunks {chunk}"


def prepare(out: Path, overwrite: bool) -> None:
    existing = [out / part for part in PARTS if (out / part).exists()]
    if existing and not overwrite:
        raise UserError(f"{out} already holds a demo ({', '.join(p.name for p in existing)}); "
                        "pass --overwrite to replace it, or give another OUTPUT_DIR")
    for path in existing:
        shutil.rmtree(path)
    out.mkdir(parents=True, exist_ok=True)


@click.command()
@click.argument("output_dir", default="./demo_output", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace a demo already in OUTPUT_DIR.")
@click.pass_context
def demo(ctx, output_dir, overwrite):
    """Make a synthetic EM image and segmentation, then downsample and rechunk them via a file queue.

    Example: igneous-like -p 2 demo ./demo_output
    """
    from igneous_like.task_creation import create_downsampling_tasks, create_transfer_tasks
    settings = ctx.find_root().obj
    out = Path(output_dir).resolve()
    prepare(out, overwrite)
    start = time.monotonic()
    image, seg = make_volumes()
    paths = {name: f"file://{out / name}" for name in PARTS[:3]}
    for name, data in (("image", image), ("segmentation", seg)):
        write_array(paths[name], data, name, RESOLUTION, OFFSET, CHUNK)
    queue = f"fq://{out / 'queue'}"
    count = queues.enqueue(create_transfer_tasks(
        paths["image"], paths["image_rechunked"], chunk_size=(128, 128, 32), dest_voxel_offset=(0, 0, 0),
        compress="none", max_mips=2), queue)
    pending = {paths["image"]: (0, NUM_MIPS), paths["segmentation"]: (0, NUM_MIPS)}
    while pending:  # one pass makes as many mips as fit in memory; later passes read its output
        for path, (mip, num_mips) in list(pending.items()):
            tasks = create_downsampling_tasks(path, mip=mip, num_mips=num_mips, compress="none")
            count += queues.enqueue(tasks, queue)
            made = len(tasks.mips)
            pending[path] = (mip + made, num_mips - made)
            if num_mips == made:
                del pending[path]
        click.echo(f"Enqueued {count} tasks into {queue}; executing with -p {settings['parallel']}",
                   err=True)
        queues.execute(queue, parallel=settings["parallel"], exit_on_empty=True, quiet=settings["quiet"])
        count = 0
    click.echo(f"Demo finished in {time.monotonic() - start:.1f}s. Layers (paste into CloudVolume, "
               "TensorStore, or Neuroglancer once served over http):")
    for name, path in paths.items():
        click.echo(f"  {path}\n      {name}: {summary(path)}")
