"""The two tasks a pipeline adds: each of its tasks wrapped with its place in the pipeline, and
one-process steps run as a task."""
import json
import logging
import uuid
from typing import Sequence

from taskqueue import queueable

from igneous_like.pipeline import flow, stages
from igneous_like.task_creation.common import Stage
from igneous_like.worker import ORIGIN, execute_task, runnable

log = logging.getLogger(__name__)


@queueable
def PipelineTask(state: str, step: str, stage: int, index: int, total: int, task: Sequence) -> None:
    """Run task `index` of `stage` of `step` unless it is recorded done (then it ran already: a copy
    of a message, or a queue refilled after a crash), record it done, and start what follows once
    the whole stage is done. Starting it is claimed in the name of this task's message of origin
    (worker.ORIGIN), so that only this message, should it come back, may finish a start it began."""
    record = flow.Flow(state)
    if record.is_done(step, stage, index):
        log.info("pipeline task %s/%d/%d is done already; not run again", step, stage, index)
    else:  # each run and its record logged (-v), so that runs of a task recorded done can be counted
        log.debug("pipeline task %s/%d/%d runs", step, stage, index)
        result = execute_task(runnable({"payload": [*task[:3], None]}))
        if result is not None:  # a one-process step's answer (a count, scores): kept for status
            answer = json.loads(json.dumps(result, default=str))
            record.state.put_json(f"{step}/{stage}/results/{index}.json", answer)
        record.mark_done(step, stage, index)
        log.debug("pipeline task %s/%d/%d is recorded done", step, stage, index)
    record.finish(step, stage, index, total, owner=ORIGIN.get() or uuid.uuid4().hex)


@queueable
def CallTask(call: str, kwargs: dict):
    """A step that does its work in one process (numbering components, summing counts, ...);
    returns what it returned."""
    result = stages.call_here(Stage(call, kwargs))
    log.info("%s: %s", call, result)
    return result
