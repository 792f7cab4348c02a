"""How a pipeline moves: stages are made, their tasks enqueued and recorded done, and the worker
that finishes a stage's last task starts what comes next, exactly once.

Exactly once: starting a stage begins with a claim (state.State.claim) that one process wins,
however many finish at the same instant. The winner makes the stage's tasks, stores them
(so that a resume never calls a creator twice: creators may clear what their stage wrote) and
enqueues them. A winner that dies half way leaves its own task on the queue, undeleted; when that
task runs again it comes from the same message (worker.ORIGIN), the claim's owner, so it finishes
the start; a copy of the task from another message cannot. `pipeline run` again takes over
whatever is left.
"""
import logging
import time
from functools import partial
from typing import Dict, Iterator, List, Optional, Tuple

import orjson
from taskqueue.queueables import totask

from igneous_like.pipeline import stages
from igneous_like.pipeline.state import BLOCK, State, done_marker, stage_path
from igneous_like.task_creation.common import Stage, Tasks

log = logging.getLogger(__name__)

RECORD = "pipeline.json"


class Flow:
    """One pipeline's steps and progress, read from and written to its state."""

    def __init__(self, url: str):
        self.state = State(url)
        self._record = None

    @property
    def record(self) -> dict:
        if self._record is None:
            self._record = self.state.get_json(RECORD)
            if self._record is None:
                raise FileNotFoundError(f"no pipeline at {self.state.url} ({RECORD} is missing)")
        return self._record

    @property
    def queue(self) -> Optional[str]:
        return self.record.get("queue")

    def step(self, name: str) -> dict:
        return next(step for step in self.record["steps"] if step["name"] == name)

    # tasks
    def is_done(self, step: str, stage: int, index: int) -> bool:
        return self.state.exists(done_marker(step, stage, index))

    def mark_done(self, step: str, stage: int, index: int) -> None:
        self.state.mark(done_marker(step, stage, index))

    def finish(self, step: str, stage: int, index: int, total: int, owner: str) -> None:
        """After task `index` is done: if its block is now complete, and with it the stage, go on
        (starting what follows in the name of `owner`)."""
        base, block = stage_path(step, stage), index // BLOCK
        if len(self.state.names(f"{base}/done/{block}")) < min(BLOCK, total - block * BLOCK):
            return
        self.state.mark(f"{base}/blocks/{block}")
        if len(self.state.names(f"{base}/blocks")) < -(-total // BLOCK):
            return
        self.complete(step, stage, owner)

    def complete(self, step: str, stage: int, owner: str) -> None:
        """Stage `stage` of `step` is done: start its next stage, or the steps that waited for it."""
        self.state.mark(f"{stage_path(step, stage)}/complete")
        rest = self.stage_record(step, stage)["rest"]
        if rest:
            self.start(step, stage + 1, Stage.from_json(rest[0]), rest[1:], owner)
            return
        self.state.mark(f"{step}/done")
        log.info("pipeline step %s is done", step)
        for waiting in self.record["steps"]:
            if step in waiting["after"] and self.ready(waiting):
                first, *later = waiting["stages"]
                self.start(waiting["name"], 0, Stage.from_json(first), later, owner)

    def ready(self, step: dict) -> bool:
        return all(self.state.exists(f"{name}/done") for name in step["after"])

    # stages
    def stage_record(self, step: str, stage: int) -> Optional[dict]:
        return self.state.get_json(f"{stage_path(step, stage)}/stage.json")

    def start(self, step: str, stage: int, what: Stage, rest: List[dict], owner: str,
              take_over: bool = False, tasks: Optional[Tasks] = None) -> bool:
        """Make stage `stage` of `step` (from `tasks` if they were made already), store its tasks and
        enqueue them, if `owner` wins (or holds) the claim; `take_over` takes a claim whose owner
        died (pipeline run again). Returns whether this call made or finished making it."""
        base = stage_path(step, stage)
        if take_over:
            self.state.put_json(f"{base}/claim", owner)
        elif not self.state.claim(f"{base}/claim", owner):
            return False
        if self.state.exists(f"{base}/enqueued"):
            return False
        record = self.stage_record(step, stage)
        if record is None:  # made once only: a creator may clear what its stage writes
            record = self.make(step, stage, what, rest, tasks)
        if self.queue is not None:
            self.enqueue(step, stage, self.missing(step, stage, record["total"]))
        self.state.mark(f"{base}/enqueued")
        if record["total"] == 0:
            self.complete(step, stage, owner)
        return True

    def make(self, step: str, stage: int, what: Stage, rest: List[dict],
             tasks: Optional[Tasks] = None) -> dict:
        """Create a stage's tasks (unless given) and store them with the stage's record."""
        base = stage_path(step, stage)
        tasks = stages.create(what) if tasks is None else tasks
        payloads = [list(totask(task).payload())[:3] for task in tasks]
        for block in range(0, len(payloads), BLOCK):
            self.state.put_json(f"{base}/tasks/{block // BLOCK}.json", payloads[block:block + BLOCK])
        record = {"stage": what.to_json(), "total": len(payloads), "started": time.time(),
                  "rest": stages.as_json(tasks.then) + list(rest), "description": tasks.description}
        self.state.put_json(f"{base}/stage.json", record)
        log.info("pipeline step %s: stage %d (%s) has %d tasks", step, stage, tasks.description,
                 len(payloads))
        return record

    def wrapped(self, step: str, stage: int, indices) -> Iterator[partial]:
        """The stage's stored tasks `indices`, each wrapped with its place in the pipeline."""
        from igneous_like.pipeline.tasks import PipelineTask
        total = self.stage_record(step, stage)["total"]
        payloads = self.stored_payloads(step, stage, total)
        for index in indices:
            yield partial(PipelineTask, state=self.state.url, step=step, stage=stage, index=index,
                          total=total, task=payloads[index])

    def enqueue(self, step: str, stage: int, indices: List[int]) -> int:
        from igneous_like import queues
        return queues.enqueue(list(self.wrapped(step, stage, indices)), self.queue) if indices else 0

    def stored_payloads(self, step: str, stage: int, total: int) -> List[list]:
        base = stage_path(step, stage)
        return [payload for block in range(-(-total // BLOCK))
                for payload in self.state.get_json(f"{base}/tasks/{block}.json")]

    def missing(self, step: str, stage: int, total: int) -> List[int]:
        """Indices of the stage's tasks not recorded done."""
        base, done = stage_path(step, stage), set()
        for block in self.state.names(f"{base}/done"):
            done.update(int(name) for name in self.state.names(f"{base}/done/{block}"))
        return [index for index in range(total) if index not in done]

    def stages_of(self, step: dict) -> Iterator[Tuple[int, Optional[dict]]]:
        """(index, record) of each stage of a step made so far, then (next index, None)."""
        stage = 0
        while True:
            record = self.stage_record(step["name"], stage)
            yield stage, record
            if record is None:
                return
            stage += 1


def new(url: str, steps: List[dict], queue: Optional[str]) -> Flow:
    """Write a pipeline's record at `url` (its steps, each with its first stages as data)."""
    flow = Flow(url)
    existing = flow.state.get_json(RECORD)
    record = {"version": 1, "queue": queue, "steps": steps}
    if existing is not None and canonical(existing) != canonical(record):
        from igneous_like.errors import UserError
        raise UserError(f"{url} holds another pipeline's progress; give this one its own state location "
                        "(or delete that one's)")
    if existing is None:
        flow.state.put_json(RECORD, record)
    flow._record = record
    return flow


def canonical(record: dict) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def describe(flow: Flow) -> List[Dict]:
    """Per step: its state (waiting, running, done, failed is added by the caller), tasks done of
    those made so far, and when its current stage started."""
    rows = []
    for step in flow.record["steps"]:
        row = {"name": step["name"], "run": step.get("run", ""), "after": step["after"], "done": 0,
               "total": 0, "stage": None, "started": None}
        if flow.state.exists(f"{step['name']}/done"):
            row["status"] = "done"
        for index, record in flow.stages_of(step):
            if record is None:
                break
            missing = len(flow.missing(step["name"], index, record["total"]))
            row["done"] += record["total"] - missing
            row["total"] += record["total"]
            row["stage"], row["started"] = record.get("description"), record.get("started")
        row.setdefault("status", "running" if row["stage"] is not None else "waiting")
        rows.append(row)
    return rows
