"""The CLI, the stages it names and the task registry, tied together: every verb a pipeline step can
run is read into stages whose functions exist and take the arguments given (a misspelt keyword
would otherwise fail only when a worker reaches that step), and every task module is registered
(a forgotten one would send every message of it to the dead-letter queue)."""
import importlib
import inspect
import pkgutil

import click
import numpy as np
import pytest
from conftest import write_layer
from taskqueue import queueablefns

import igneous_like.tasks
from igneous_like.cli import cli
from igneous_like.cli.pipeline import STEP_AREAS, step_stages
from igneous_like.errors import UserError
from igneous_like.pipeline import stages
from igneous_like.pipeline.verbs import ccl
from igneous_like.tasks import registry

L, M = "file:///data/seg", "file:///data/em"
SAMPLES = {  # one command line for every verb a step can run, with most of its options
    "agglomerate clean": f"agglomerate clean {L}",
    "agglomerate graph": f"agglomerate graph {L} --boundary {M} --shape 64,64,64 --fill-missing",
    "agglomerate merge": f"agglomerate merge {L} --policy quantile --quantile 0.3 --threshold 0.4",
    "agglomerate relabel": f"agglomerate relabel {L} file:///tmp/out --shape 64,64,64 --compress none",
    "agglomerate train": f"agglomerate train {L} --boundary {M} --gt {L} --output /tmp/m.npz --trees 5 "
                         "--rounds 2",
    "agglomerate watershed": f"agglomerate watershed {M} file:///tmp/out --seed-threshold 0.1 --sigma 2",
    "annotate boxes": f"annotate boxes {L} file:///tmp/boxes --relate {L} --properties volume --limit 50",
    "annotate ellipsoids": "annotate ellipsoids /tmp/t.csv file:///tmp/ellipsoids --center a,b,label "
                           "--radii b,a,a --resolution 16,16,40 --sharded",
    "annotate lines": "annotate lines /tmp/t.csv file:///tmp/pairs --a a,b,label --b b,a,label "
                      "--resolution 16,16,40 --properties a --id label --limit 100",
    "annotate points": f"annotate points {L} file:///tmp/points --relate {L} --sharded --properties volume",
    "evaluate": f"evaluate {L} {L} --shape 64,64,64 --json --ignore-gt-zero --table /tmp/e.csv "
                "--ceiling file:///tmp/out",
    "image ccl auto": f"image ccl auto {M} file:///tmp/out --threshold-gte 3 --dust 5 --connectivity 26",
    "image ccl calc-labels": f"image ccl calc-labels {L} --dust 3",
    "image ccl clean": f"image ccl clean {L} --mip 1",
    "image ccl faces": f"image ccl faces {L} --shape 64,64,64 --connectivity 18",
    "image ccl links": f"image ccl links {L}",
    "image ccl relabel": f"image ccl relabel {L} file:///tmp/out --chunk-size 32,32,32",
    "image classify predict": f"image classify predict {M} file:///tmp/out --model /tmp/m.npz "
                              f"--dtype float32 --pool {L}",
    "image classify train": f"image classify train {M} --annotations {L} --output /tmp/m.npz "
                            "--scales 16,32",
    "image contrast clahe": f"image contrast clahe {M} file:///tmp/out --depth 8 --kernel-size 16",
    "image contrast equalize": f"image contrast equalize {M} file:///tmp/out --clip-fraction 0.02",
    "image contrast histogram": f"image contrast histogram {M} --shape 64,64,16",
    "image blackout": f"image blackout {M} 0,0,0,10,10,10 --value 3",
    "image quantize": "image quantize file:///data/prob file:///tmp/out",
    "image reorder": f"image reorder {M} file:///tmp/out '{{\"0\": 1, \"1\": 0}}'",
    "image roi": f"image roi {M} --suppress-faint 3",
    "image create": "image create /tmp/stack.npy file:///tmp/ingested --resolution 4,4,40 --offset 1,2,3 "
                    "--seg --chunk-size 32,32,16 --shape 64,64,16 --axes xyz --encoding raw --compress none",
    "image downsample": f"image downsample {M} --num-mips 2 --xrange 0,64 --method avg --sharded",
    "image rm": f"image rm {M} --mip 1 --num-mips 2",
    "image voxels count": f"image voxels count {L} --shape 64,64,64",
    "image voxels sum": f"image voxels sum {L} --clean",
    "image xfer": f"image xfer {M} file:///tmp/out --bounds 0,0,0,64,64,64 --chunk-size 32,32,32 "
                  "--max-mips 2",
    "measure clean": f"measure clean {L}",
    "measure batch": f"measure batch file:///tmp/tables --layer a={L} --layer b={M} --format tsv "
                     "--shape 64,64,64",
    "measure export": f"measure export {L} /tmp/cells.csv --no-segment-properties",
    "measure forge": f"measure forge {L} --image {M} --shape 64,64,64",
    "measure merge": f"measure merge {L} --tasks 3",
    "measure ring": f"measure ring {L} file:///tmp/ring --width 100",
    "mesh clean": f"mesh clean {L}",
    "mesh forge": f"mesh forge {L} --shape 64,64,64 --labels 1,2 --xrange 0,64 --encoding draco",
    "mesh merge": f"mesh merge {L} --nlod 2 --magnitude 1",
    "mesh merge-sharded": f"mesh merge-sharded {L} --nlod 1 --labels-per-shard 10",
    "mesh rm": f"mesh rm {L}",
    "mesh spatial-index create": f"mesh spatial-index create {L} --shape 64,64,32 --mip 0",
    "mesh spatial-index db": f"mesh spatial-index db {L} /tmp/index.db --allow-missing",
    "mesh xfer": f"mesh xfer {L} file:///tmp/out --sharded --nlod 1 --magnitude 1",
    "postprocess dust": f"postprocess dust {L} file:///tmp/out --min-size 10",
    "postprocess fill-holes": f"postprocess fill-holes {L} file:///tmp/out --max-hole-size 100 --no-clean",
    "skeleton clean": f"skeleton clean {L}",
    "skeleton convert": f"skeleton convert {L} /tmp/swc --labels 1,2",
    "skeleton forge": f"skeleton forge {L} --shape 64,64,64 --cross-section 3 --context 0",
    "skeleton merge": f"skeleton merge {L} --tick-threshold 100",
    "skeleton merge-sharded": f"skeleton merge-sharded {L} --min-shards 2",
    "skeleton rm": f"skeleton rm {L} --magnitude 1",
    "skeleton spatial-index create": f"skeleton spatial-index create {L} --shape 64,64,64",
    "skeleton spatial-index db": f"skeleton spatial-index db {L} sqlite:///tmp/index.db",
    "skeleton xfer": f"skeleton xfer {L} file:///tmp/out --dir skel --magnitude 3",
    "table classify apply": "table classify apply /tmp/t.csv /tmp/m.npz /tmp/p.csv",
    "table classify train": "table classify train /tmp/t.csv /tmp/t.csv --annotation kind --features a,b "
                            "--output /tmp/m.npz",
    "table cluster": "table cluster /tmp/t.csv /tmp/c.csv --columns a,b --method dbscan --eps 0.3",
    "table merge": "table merge /tmp/t.csv /tmp/t.csv /tmp/m.tsv --how outer",
    "table paint": f"table paint {L} /tmp/t.csv kind file:///tmp/painted",
    "table plot": "table plot /tmp/t.csv /tmp/p.png --x a --y b --color kind",
    "table properties": f"table properties {L} /tmp/t.csv --label kind --numbers a,b",
    "table threshold": "table threshold /tmp/t.csv /tmp/c.csv --column a --percentiles 50",
}


def leaves(group: click.Group, prefix=()):
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from leaves(command, prefix + (name,))
        else:
            yield " ".join(prefix + (name,))


def test_every_verb_a_step_can_run_has_a_sample():
    verbs = {verb for verb in leaves(cli) if verb.split()[0] in STEP_AREAS}
    assert verbs == set(SAMPLES)


def check_binds(stage) -> None:
    function = stages.function(stage.call)
    inspect.signature(function).bind(**stage.kwargs)


@pytest.mark.parametrize("verb", sorted(SAMPLES))
def test_a_step_reads_into_stages_whose_functions_take_their_arguments(verb):
    chain = step_stages("s", SAMPLES[verb])
    assert chain
    for stage in chain:
        check_binds(stage)


def test_later_stages_made_at_run_time_bind_too():
    for stage in ccl("file:///a", "file:///b", shape=(8, 8, 8), clean=True):
        check_binds(stage)
    from igneous_like.task_creation.image import create_pyramid_tasks, create_transfer_tasks
    assert "ranges" in inspect.signature(create_pyramid_tasks).parameters
    source = inspect.getsource(create_transfer_tasks) + inspect.getsource(create_pyramid_tasks)
    assert source.count('Stage("create_pyramid_tasks"') == 2  # the passes both name the pass creator


def test_a_stage_can_name_no_other_function():
    for name in ("os_system", "load_region_graph", "check_output", "__import__"):
        with pytest.raises(UserError, match="only those can run"):
            stages.function(name)


def test_a_step_takes_no_queue_of_its_own():
    with pytest.raises(UserError, match="takes no --queue"):
        step_stages("s", f"image downsample {M} --queue fq:///tmp/q-of-a-step")


def test_every_task_module_is_registered():
    names = [f"igneous_like.tasks.{info.name}" for info in pkgutil.iter_modules(igneous_like.tasks.__path__)]
    for name in names + ["igneous_like.pipeline.tasks"]:
        importlib.import_module(name)
    ours = [key for key in queueablefns.REGISTRY if key[0].startswith("igneous_like.")]
    assert len(ours) > 20
    assert [key for key in ours if not registry.is_allowed(key)] == []


def test_every_task_creator_is_reachable_from_the_package():
    """`igneous_like.task_creation.NAME` loads NAME's module on first use from a table of names: every
    create_*/accumulate_* function defined in a module must be in it, and every name in it must exist."""
    import igneous_like.task_creation as tc
    package = [info.name for info in pkgutil.iter_modules(tc.__path__)]
    defined = {name for module in package
               for name, value in vars(importlib.import_module(f"{tc.__name__}.{module}")).items()
               if inspect.isfunction(value) and value.__module__ == f"{tc.__name__}.{module}"
               and name.startswith(("create_", "accumulate_"))}
    assert defined - set(tc.__all__) == set()
    assert [name for name in tc.__all__ if not callable(getattr(tc, name))] == []


def test_the_first_stage_of_every_verb_made_for_a_dry_run_writes_nothing(tmp_path, real_seg):
    """A dry run calls task creators, which commit info files and provenance, record their options
    and clear what earlier runs left: with every verb's first stage made on real layers, no byte,
    time of change or folder under the data changes, and the stages over a grid count its voxels."""
    from test_pipeline import snapshot

    from igneous_like.pipeline import Step
    from igneous_like.pipeline.dry import plan
    crop = np.asfortranarray(real_seg[:64, :64, :32])
    write_layer(f"file://{tmp_path}/data/seg", crop, "segmentation", chunk=(32, 32, 32))
    write_layer(f"file://{tmp_path}/data/em", (crop % 200).astype(np.uint8), "image", chunk=(32, 32, 32))
    prob = (crop % 7 / 7).astype(np.float32)
    write_layer(f"file://{tmp_path}/data/prob", prob, "image", chunk=(32, 32, 32))
    (tmp_path / "t.csv").write_text("label,a,b,kind\n1,1,2,x\n2,3,4,y\n")
    np.save(tmp_path / "stack.npy", crop)
    before, counted = snapshot(tmp_path), {}
    for verb, line in SAMPLES.items():
        for placeholder, place in (("file:///data/", "file://HERE/data/"), ("file:///tmp/", "file://HERE/"),
                                   (" /tmp/", " HERE/"), ("HERE", str(tmp_path))):
            line = line.replace(placeholder, place)
        try:
            row = plan([Step("s", tuple(step_stages("s", line)))])[0]
        except UserError as err:  # its input is made by another verb
            assert "igneous-like" in str(err) or "mip 1 does not exist" in str(err), (verb, err)
            continue
        counted[verb] = row.estimate.read
    assert snapshot(tmp_path) == before
    assert counted["mesh forge"] == counted["image downsample"] == (crop.size, 0)
    assert sum(read is not None for read in counted.values()) >= 10
