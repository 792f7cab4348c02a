"""`igneous-like pipeline ...`: a whole job as one file of the CLI's own command lines, which the
workers chain themselves (igneous_like.pipeline), and what it has done so far.

A pipeline file (YAML):

    queue: fq:///data/q          # or sqs://NAME; absent: everything runs here, with -p
    state: file:///data/job      # where progress is kept (default: FILE's folder, NAME.state)
    vars: {DATA: file:///data}   # ${DATA} in the steps; --var DATA=... overrides
    steps:
      - name: pyramid
        run: image downsample ${DATA}/seg --num-mips 3
      - name: cc
        run: image ccl auto ${DATA}/seg ${DATA}/seg_cc --shape 256,256,256
        after: [pyramid]         # default: the step before it ([] for none)
"""
import json
import shlex
import string
import time
from pathlib import Path
from typing import List, Optional, Tuple

import click

from igneous_like import pipeline as api
from igneous_like.errors import UserError
from igneous_like.pipeline.flow import Flow
from igneous_like.progress import format_seconds
from igneous_like.task_creation.common import read_yaml

STEP_AREAS = ("image", "mesh", "skeleton", "measure", "annotate", "postprocess", "table", "agglomerate",
              "evaluate")
KEYS = {"queue", "state", "vars", "steps"}
STEP_KEYS = {"name", "run", "after"}


def read_file(path: str, overrides: Tuple[str, ...]) -> dict:
    """The pipeline file as a dict, its keys checked and ${VARS} substituted in every `run`."""
    spec = read_yaml(path, "pipeline file")
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list) or not spec["steps"]:
        raise UserError(f"{path} needs a list of steps (steps: - name: ... run: ...)")
    unknown = set(spec) - KEYS
    if unknown:
        raise UserError(f"{path}: unknown key {', '.join(sorted(unknown))}; a pipeline file has "
                        f"{', '.join(sorted(KEYS))}")
    values = {str(k): str(v) for k, v in (spec.get("vars") or {}).items()}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--var {item}: give NAME=VALUE")
        values[name] = value
    for index, step in enumerate(spec["steps"]):
        if not isinstance(step, dict) or not {"name", "run"} <= set(step) or set(step) - STEP_KEYS:
            raise UserError(f"{path}: step {index + 1} needs name: and run: (and may have after:)")
        try:
            step["run"] = string.Template(str(step["run"])).substitute(values)
        except KeyError as err:
            raise UserError(f"step {step['name']} uses ${{{err.args[0]}}}, which vars: does not "
                            "define") from None
        except ValueError as err:
            raise UserError(f"step {step['name']}: {err} (write $$ for a $)") from None
    return spec


def step_stages(name: str, command: str) -> list:
    """The stages of one step's command line, read by the CLI itself without running anything."""
    from igneous_like.cli import cli
    argv = shlex.split(command)
    if not argv or argv[0] not in STEP_AREAS:
        raise UserError(f"step {name}: {command!r} is not a command a step can run; use one of the verbs "
                        f"of {', '.join(STEP_AREAS)}")
    plan: list = []
    try:
        cli.main(args=argv, prog_name="igneous-like", standalone_mode=False, obj={"plan": plan})
    except click.ClickException as err:
        raise UserError(f"step {name}: {err.format_message()}") from None
    except UserError as err:
        raise UserError(f"step {name}: {err}") from None
    if not plan:
        raise UserError(f"step {name}: {command!r} has no work a pipeline can run")
    return plan


def steps_of(spec: dict) -> List[api.Step]:
    steps, previous = [], None
    for entry in spec["steps"]:
        after = entry.get("after", [previous] if previous else [])
        after = [after] if isinstance(after, str) else list(after or [])
        name = str(entry["name"])
        stages = tuple(step_stages(name, entry["run"]))
        steps.append(api.Step(name, stages, tuple(map(str, after)), entry["run"]))
        previous = name
    return steps


def state_url(spec: dict, path: str, given: Optional[str]) -> str:
    """Where the pipeline's progress lives: --state, the file's state:, or beside the file."""
    if given or spec.get("state"):
        return given or spec["state"]
    if str(spec.get("queue") or "").startswith("sqs://"):
        raise UserError("a pipeline on sqs:// needs a state: location every worker can reach (s3://...)")
    file = Path(path).resolve()
    return f"file://{file.parent / (file.stem + '.state')}"


@click.group()
def pipeline():
    """Run a whole job from one file; workers go from each step to the next themselves.

    Example: igneous-like pipeline run job.yaml && igneous-like -p 4 execute fq:///data/q
    """


@pipeline.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--state", default=None, help="Where progress is kept (overrides the file's state:).")
@click.option("--var", "overrides", multiple=True, metavar="NAME=VALUE", help="Set a ${NAME} of the file.")
@click.option("--dry-run", is_flag=True,
              help="Print the plan: steps, order, stages, tasks and voxels; run or write nothing.")
@click.pass_context
def run(ctx, file, state, overrides, dry_run):
    """Start the pipeline in FILE, or go on with it (after a crash, a purged queue, a reboot): only
    what is not done is enqueued. With a queue, workers (`execute`) run it to the end; without one,
    it runs here.

    Example: igneous-like pipeline run job.yaml
    """
    spec = read_file(file, overrides)
    steps = steps_of(spec)
    api.check_steps(steps)
    if dry_run:
        show_plan(steps)
        return
    settings = ctx.find_root().obj
    queue = spec.get("queue")
    if queue is not None:
        from igneous_like import queues
        queue = queues.check_queue(str(queue), create=True)
    flow = api.run(state_url(spec, file, state), steps, queue, settings["parallel"], settings["quiet"])
    if queue is None:
        click.echo(f"Pipeline done: {flow.state.url}", err=True)
        show_status(flow)
        return
    click.echo(f"Pipeline {flow.state.url} started on {queue}; workers run every step from here:\n"
               f"  igneous-like -p {settings['parallel']} execute -x {queue}\n"
               f"  igneous-like pipeline status {file}", err=True)


@pipeline.command()
@click.argument("where")
@click.option("--state", default=None, help="Where progress is kept (overrides the file's state:).")
def status(where, state):
    """Show each step of the pipeline in WHERE (its file, or its state location): waiting, running,
    done or failed, tasks done of those made, rate and ETA, and the failed tasks with why.

    Example: igneous-like pipeline status job.yaml
    """
    if Path(where).is_file():
        spec = read_file(where, ())
        where = state_url(spec, where, state)
    flow = Flow(api.check_state_url(where))
    if flow.state.get_json("pipeline.json") is None:
        raise UserError(f"no pipeline has started at {flow.state.url}: run `igneous-like pipeline run FILE` "
                        "first")
    show_status(flow)


def show_status(flow: Flow) -> None:
    from igneous_like.pipeline.status import report, results
    click.echo(f"pipeline {flow.state.url}" + (f" on {flow.queue}" if flow.queue else ""))
    rows = report(flow)
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        line = f"  {row['name']:<{width}}  {row['status']:<8} {row['done']:>7}/{row['total']:<7}"
        if row["status"] != "done" and row["stage"]:
            line += f" {row['stage']}"
        if row["rate"]:
            line += f"  {row['rate']:.2f} tasks/s"
        if row["eta"] is not None:
            line += f", ETA {format_seconds(row['eta'])}"
        click.echo(line)
        for stage, index, error in row["failed"][:3]:
            click.echo(f"      task {index} of stage {stage} is in the dead-letter queue: {error[:300]}")
        for name, answer in results(flow, row["name"]):
            click.echo(f"      {name}: {json.dumps(answer)}")


def show_plan(steps: List[api.Step]) -> None:
    """Each step's stages with their tasks and voxels, where they can be made before anything runs."""
    from igneous_like.pipeline.dry import plan
    ordered = api.order(steps)
    rows = plan(ordered)
    for step in ordered:
        after = f" (after {', '.join(step.after)})" if step.after else ""
        click.echo(f"{step.name}{after}: {step.run}")
        for row in (row for row in rows if row.step == step.name):
            click.echo(f"  {row.index + 1}. {row.stage.name or row.stage.call}: {stage_plan(row)}")
    known = [row.estimate for row in rows if row.estimate is not None]
    read = sum(estimate.read[0] for estimate in known if estimate.read)
    written = sum(sum(estimate.written.values()) for estimate in known)
    click.echo(f"{len(steps)} steps; {sum(e.tasks for e in known):,} tasks in the {len(known)} stages that "
               f"can be made now ({read:,} voxels read, {written:,} written); {len(rows) - len(known)} "
               f"stages are made after the ones before them; at {time.strftime('%H:%M')} nothing was run "
               "or written", err=True)


def stage_plan(row) -> str:
    """One stage of the plan: its tasks and voxels, or what it waits for."""
    estimate = row.estimate
    if estimate is None:
        return row.waits
    if estimate.one_process:
        return "1 task, in one process"
    text = f"{estimate.tasks:,} tasks"
    if estimate.read:
        text += f", reading {estimate.read[0]:,} voxels of mip {estimate.read[1]}"
    if estimate.written:
        mips = sorted(estimate.written)
        text += f", writing {sum(estimate.written.values()):,} voxels of mip" + \
            (f" {mips[0]}" if len(mips) == 1 else f"s {mips[0]}-{mips[-1]}")
    if estimate.then:
        later = ", ".join(stage.name or stage.call for stage in estimate.then)
        text += f"; then {later}, each made after the one before"
    return text
