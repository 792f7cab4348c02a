"""Pipelines: a whole job as steps that the workers chain themselves, resumable after any crash.

A step is a list of stages (`Stage`: a task creator's name and arguments, as data), run after
the steps it names in `after`. `run` writes the pipeline's record in storage and starts what is
ready; from then on the worker that finishes a stage's last task starts the next stage, or the
steps that waited for this one (see flow.py): no process but the workers has to stay alive.
`run` again (or `resume`) enqueues only what is not done, after a crash, a purged queue or a
reboot of every worker. Without a queue, `run` works through the steps in this process.

Multi-pass verbs are pipelines too: `submit` runs a verb's stages here, or enqueues them, and
when they need more than one stage it makes a one-step pipeline (its state in the layer the
verb writes, under pipelines/) so that workers run it to the end.
"""
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from igneous_like.errors import UserError
from igneous_like.pipeline import flow as flows
from igneous_like.pipeline import stages
from igneous_like.pipeline.state import check_state_url
from igneous_like.task_creation.common import Stage, Tasks

log = logging.getLogger(__name__)

DRIVER = "driver"  # the owner name of claims made by `run` itself


@dataclass(frozen=True)
class Step:
    """A named list of stages, run once the steps named in `after` are done."""
    name: str
    stages: Tuple[Stage, ...]
    after: Tuple[str, ...] = ()
    run: str = ""  # the command line it came from, for people

    def to_json(self) -> dict:
        return {"name": self.name, "run": self.run, "after": list(self.after),
                "stages": stages.as_json(self.stages)}


def check_steps(steps: Sequence[Step]) -> None:
    """Names unique and safe as folder names, `after` naming earlier or later steps, no cycles."""
    names = [step.name for step in steps]
    for step in steps:
        if not step.name or not all(c.isalnum() or c in "-_." for c in step.name) or step.name[0] == ".":
            raise UserError(f"step name {step.name!r}: use letters, digits, '-', '_' and '.'")
        if not step.stages:
            raise UserError(f"step {step.name} has nothing to run")
        unknown = [name for name in step.after if name not in names]
        if unknown:
            raise UserError(f"step {step.name} runs after {', '.join(unknown)}, which no step is called")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"two steps are called {', '.join(duplicates)}; give each step its own name")
    order(steps)


def order(steps: Sequence[Step]) -> List[Step]:
    """The steps with each after those it waits for (file order among equals); a UserError on a cycle."""
    placed, result, pending = set(), [], list(steps)
    while pending:
        ready = [step for step in pending if set(step.after) <= placed]
        if not ready:
            raise UserError("the steps wait for each other in a circle: "
                            + ", ".join(step.name for step in pending))
        result.append(ready[0])
        placed.add(ready[0].name)
        pending.remove(ready[0])
    return result


def run(state: str, steps: Sequence[Step], queue: Optional[str] = None, parallel: int = 1,
        quiet: bool = False) -> flows.Flow:
    """Start (or resume) the pipeline of `steps` with its progress at `state`: through `queue`, whose
    workers then run it to the end, or without one in this process (with `parallel` processes)."""
    check_steps(steps)
    flow = flows.new(check_state_url(state), [step.to_json() for step in steps], queue)
    advance(flow, parallel, quiet)
    return flow


def resume(state: str, parallel: int = 1, quiet: bool = False) -> flows.Flow:
    """Go on with the pipeline whose progress is at `state`."""
    flow = flows.Flow(check_state_url(state))
    if flow.state.get_json(flows.RECORD) is None:
        raise UserError(f"no pipeline at {flow.state.url}; check the path")
    advance(flow, parallel, quiet)
    return flow


def advance(flow: flows.Flow, parallel: int = 1, quiet: bool = False) -> None:
    """Start every stage that is ready and put back what is not done: on the queue, or run here
    until the pipeline is done."""
    while True:
        acted = False
        for step in flow.record["steps"]:
            if not flow.state.exists(f"{step['name']}/done") and flow.ready(step):
                acted |= advance_step(flow, step, parallel, quiet)
        if flow.queue is not None or not acted:
            return


def advance_step(flow: flows.Flow, step: dict, parallel: int, quiet: bool) -> bool:
    """Move one step along from where it is; whether anything was done."""
    name, previous = step["name"], None
    for index, record in flow.stages_of(step):
        base = f"{name}/{index}"
        if record is None:
            if previous is not None and not previous["rest"]:  # its last stage finished unrecorded
                flow.complete(name, index - 1, DRIVER)
                return True
            chain = step["stages"] if previous is None else previous["rest"]
            return flow.start(name, index, Stage.from_json(chain[0]), chain[1:], DRIVER, take_over=True)
        previous = record
        if flow.state.exists(f"{base}/complete"):
            continue
        missing = flow.missing(name, index, record["total"])
        if not missing:
            flow.complete(name, index, DRIVER)
        elif flow.queue is None:
            from igneous_like import queues
            queues.run_locally(list(flow.wrapped(name, index, missing)), parallel, quiet,
                               f"{name}: {record['description']}")
        else:
            log.info("step %s: %d tasks of stage %d are not done; enqueueing them", name, len(missing), index)
            waiting = queued(flow)
            flow.enqueue(name, index, [i for i in missing if (name, index, i) not in waiting])
            flow.state.mark(f"{base}/enqueued")
        return True
    return False


def queued(flow: flows.Flow) -> set:
    """(step, stage, index) of this pipeline's tasks waiting in a file queue (SQS cannot be read
    without taking its messages: there, tasks not done are enqueued again, and a copy of a task
    that ran meanwhile is skipped)."""
    if not flow.queue.startswith("fq://"):
        return set()
    from igneous_like.pipeline.status import queued_tasks
    return queued_tasks(flow.queue, flow.state.url)


def run_here(chain: Sequence[Stage], parallel: int = 1, quiet: bool = False) -> List[Any]:
    """Run stages in this process, each after the one before, following each stage's `then`;
    returns what each one-process stage returned."""
    from igneous_like import queues
    results, pending = [], list(chain)
    while pending:
        stage = pending.pop(0)
        if stage.call in stages.ONE_PROCESS:
            results.append(stages.call_here(stage))
            continue
        tasks = stages.create(stage)
        queues.run_locally(tasks, parallel, quiet, tasks.description)
        log.info("Ran %d tasks: %s", len(tasks), tasks.description)
        pending[:0] = list(tasks.then)
    return results


def enqueue(chain: Sequence[Stage], queue: str, home: str, name: str = "job") -> Dict[str, Any]:
    """Put a job's stages on the queue: its tasks alone when it is one stage, else a one-step
    pipeline with its state in HOME/pipelines/ whose workers run every stage. Returns what was done:
    the task count, the first stage's description and the state's URL (None without a pipeline)."""
    from igneous_like import queues
    first, *rest = chain
    tasks = stages.create(first)
    if not rest and not tasks.then:
        return {"tasks": queues.enqueue(tasks, queue), "description": tasks.description, "state": None}
    state = f"{home.rstrip('/')}/pipelines/{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    flow = flows.new(state, [Step(name, tuple(chain)).to_json()], queue)
    flow.start(name, 0, first, stages.as_json(rest), DRIVER, tasks=tasks)
    return {"tasks": len(tasks), "description": tasks.description, "state": flow.state.url}


__all__ = ["Stage", "Step", "Tasks", "advance", "enqueue", "order", "resume", "run", "run_here"]
