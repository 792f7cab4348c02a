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
LAYERS = ("image", "segmentation", "image_rechunked", "cells")
PARTS = LAYERS + ("queue", "demo.yaml", "demo.state", "cells.csv")
PIPELINE = """\
# The demo's job: every step is an igneous-like command line; workers go from step to step.
queue: fq://{out}/queue
state: file://{out}/demo.state
vars: {{D: "file://{out}"}}
steps:
  - name: image-pyramid
    run: image downsample ${{D}}/image --num-mips {mips} --compress none
  - name: segmentation-pyramid
    run: image downsample ${{D}}/segmentation --num-mips {mips} --compress none
    after: []
  - name: rechunk
    run: image xfer ${{D}}/image ${{D}}/image_rechunked --chunk-size 128,128,32 --dest-voxel-offset 0,0,0
         --max-mips 2 --compress none
    after: []
  - name: components
    run: image ccl auto ${{D}}/segmentation ${{D}}/cells --shape 128,128,64 --dust 200 --compress none
    after: []
  - name: mesh-forge
    run: mesh forge ${{D}}/cells --shape 128,128,64
  - name: meshes
    run: mesh merge ${{D}}/cells --nlod 2
  - name: skeleton-forge
    run: skeleton forge ${{D}}/cells --shape 128,128,64 --dust-threshold 200
    after: [components]
  - name: skeletons
    run: skeleton merge ${{D}}/cells --dust-threshold 0
  - name: measure-forge
    run: measure forge ${{D}}/cells --image ${{D}}/image --shape 128,128,64
    after: [components]
  - name: measure-merge
    run: measure merge ${{D}}/cells
  - name: table
    run: measure export ${{D}}/cells {out}/cells.csv
"""


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
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


@click.command()
@click.argument("output_dir", default="./demo_output", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace a demo already in OUTPUT_DIR.")
@click.pass_context
def demo(ctx, output_dir, overwrite):
    """Make a synthetic EM image and segmentation, then run a whole pipeline on them through a file
    queue with -p workers: pyramids, a rechunked copy, connected components, multi-resolution
    meshes, skeletons and a table of per-cell measurements.

    Example: igneous-like -p 2 demo ./demo_output
    """
    from igneous_like import pipeline
    from igneous_like.cli.pipeline import read_file, show_status, steps_of
    settings = ctx.find_root().obj
    out = Path(output_dir).resolve()
    prepare(out, overwrite)
    start = time.monotonic()
    image, seg = make_volumes()
    for name, data in (("image", image), ("segmentation", seg)):
        write_array(f"file://{out / name}", data, name, RESOLUTION, OFFSET, CHUNK)
    (out / "demo.yaml").write_text(PIPELINE.format(out=out, mips=NUM_MIPS))
    spec = read_file(str(out / "demo.yaml"), ())
    flow = pipeline.run(spec["state"], steps_of(spec), spec["queue"])
    click.echo(f"Pipeline {out / 'demo.yaml'} started; running it with {settings['parallel']} workers",
               err=True)
    queues.execute(spec["queue"], parallel=settings["parallel"], exit_on_empty=True, quiet=settings["quiet"])
    show_status(flow)
    click.echo(f"Demo finished in {time.monotonic() - start:.1f}s. Layers (paste into CloudVolume, "
               "TensorStore, or Neuroglancer once served over http):")
    for name in LAYERS:
        path = f"file://{out / name}"
        click.echo(f"  {path}\n      {name}: {summary(path)}")
    click.echo(f"  {out / 'cells.csv'}\n      one row of measurements per cell")
    click.echo(f"Look at them in Neuroglancer (served from here until Ctrl-C):\n  {view_command(out)}")


def view_command(out: Path) -> str:
    """The `view` command for the image and the cells, the three largest cells selected."""
    import pandas
    largest = pandas.read_csv(out / "cells.csv").nlargest(3, "voxel_count")["label"]
    return (f"igneous-like view file://{out / 'image'} file://{out / 'cells'} "
            f"--segments {','.join(map(str, largest))}")
