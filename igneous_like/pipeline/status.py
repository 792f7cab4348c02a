"""What a person wants to know of a running pipeline: each step's state, tasks done of total,
rate and ETA, and the tasks that ended in the dead-letter queue, with why."""
import json
import os
import time
from typing import Dict, Iterator, List, Tuple

from igneous_like.pipeline.flow import Flow, describe

TASK = ["igneous_like.pipeline.tasks", "PipelineTask"]


def report(flow: Flow) -> List[Dict]:
    """describe() per step, plus rate and ETA of its current stage and its dead tasks."""
    failures = {}
    if flow.queue is not None:
        for kwargs, error in dead_letters(flow.queue):
            if kwargs.get("state") == flow.state.url:
                failures.setdefault(kwargs["step"], []).append((kwargs["stage"], kwargs["index"], error))
    rows = describe(flow)
    for row in rows:
        row["failed"] = failures.get(row["name"], [])
        if row["failed"] and row["status"] != "done":
            row["status"] = "failed"
        row["rate"] = row["eta"] = None
        if row["status"] in ("running", "failed") and row["started"]:
            elapsed = max(time.time() - row["started"], 1e-3)
            stage_done, stage_total = current_stage(flow, row["name"])
            row["rate"] = stage_done / elapsed
            if row["rate"] > 0:
                row["eta"] = (stage_total - stage_done) / row["rate"]
    return rows


def current_stage(flow: Flow, step: str) -> Tuple[int, int]:
    """(tasks done, tasks) of the step's latest stage."""
    latest = None
    for index, record in flow.stages_of(flow.step(step)):
        if record is None:
            break
        latest = (index, record["total"])
    if latest is None:
        return 0, 0
    index, total = latest
    return total - len(flow.missing(step, index, total)), total


def messages(directory: str) -> Iterator[dict]:
    """The JSON bodies of a file queue's messages (unreadable ones skipped)."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            with open(entry.path) as file:
                yield json.load(file)
        except (OSError, ValueError):
            continue


def pipeline_kwargs(message: dict):
    payload = message.get("payload")
    if isinstance(payload, list) and len(payload) >= 3 and list(payload[0]) == TASK:
        return payload[2]
    return None


def queued_tasks(queue: str, state: str) -> set:
    """(step, stage, index) of the pipeline at `state` waiting in the file queue (leased or not)."""
    found = set()
    for message in messages(os.path.join(queue[len("fq://"):], "queue")):
        kwargs = pipeline_kwargs(message)
        if kwargs and kwargs.get("state") == state:
            found.add((kwargs["step"], kwargs["stage"], kwargs["index"]))
    return found


def dead_letters(queue: str) -> Iterator[Tuple[dict, str]]:
    """(task keywords, error) of each pipeline task in the queue's dead-letter queue."""
    for message in dead_messages(queue):
        kwargs = pipeline_kwargs(message)
        if kwargs:
            yield kwargs, message.get("error", "")


def dead_messages(queue: str) -> Iterator[dict]:
    if queue.startswith("fq://"):
        yield from messages(os.path.join(queue[len("fq://"):], "dead", "queue"))
        return
    from taskqueue import TaskQueue
    try:  # SQS: a look at up to 10 dead letters, handed straight back
        dead = TaskQueue(queue + "-dead", progress=False)
        reply = dead.api.sqs.receive_message(QueueUrl=dead.api.qurl, MaxNumberOfMessages=10,
                                             VisibilityTimeout=0, WaitTimeSeconds=0)
    except Exception:  # no dead-letter queue yet
        return
    for raw in reply.get("Messages", []):
        try:
            yield json.loads(raw["Body"])
        except ValueError:
            continue


def results(flow: Flow, step: str) -> List[Tuple[str, object]]:
    """(stage name, answer) of the step's one-process stages that have answered (counts, scores)."""
    found = []
    for index, record in flow.stages_of(flow.step(step)):
        if record is None:
            break
        for name in sorted(flow.state.names(f"{step}/{index}/results")):
            found.append((record["stage"].get("name") or record["stage"]["call"],
                          flow.state.get_json(f"{step}/{index}/results/{name}")))
    return found
