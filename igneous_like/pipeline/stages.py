"""Stages as data: which functions a stored stage may name, and how a stage becomes tasks.

A stage names a function of igneous_like's Python API with JSON keyword arguments. Task creators
(the create_* functions of igneous_like.task_creation) give tasks; the functions that do their
work in one process (summing voxel counts, numbering components, exporting a table, ...) become
one task each, `CallTask`, so that a worker runs them inside a pipeline. A stage can name no
other function: a pipeline's state and its queue messages cannot choose what code runs.
"""
import importlib
import logging
from functools import partial
from typing import Any, Callable, Iterable, Sequence

from igneous_like import task_creation
from igneous_like.errors import UserError
from igneous_like.task_creation.common import Stage, Tasks

log = logging.getLogger(__name__)

ONE_PROCESS = {  # name -> module: functions that do a step's work in one process
    "accumulate_voxel_counts": "igneous_like.task_creation.voxels",
    "create_relabeling": "igneous_like.task_creation.ccl",
    "clean_ccl_files": "igneous_like.task_creation.ccl",
    "plan_hole_filling": "igneous_like.task_creation.postprocess",
    "clean_fill_holes_files": "igneous_like.task_creation.postprocess",
    "export_measurements": "igneous_like.task_creation.measure",
    "clean_measure_files": "igneous_like.task_creation.measure",
    "check_layer_group": "igneous_like.task_creation.measure",
    "combine_measurement_tables": "igneous_like.task_creation.measure",
    "clean_annotation_files": "igneous_like.task_creation.annotate",
    "agglomerate_fragments": "igneous_like.task_creation.agglomerate",
    "train_merge_model": "igneous_like.task_creation.agglomerate",
    "clean_agglomeration_files": "igneous_like.task_creation.agglomerate",
    "evaluation_scores": "igneous_like.task_creation.evaluation",
    "clean_evaluation_files": "igneous_like.task_creation.evaluation",
    "threshold_sweep": "igneous_like.task_creation.evaluation",
    "train_classifier": "igneous_like.task_creation.classify",
    "clean_mesh_intermediates": "igneous_like.task_creation.mesh",
    "delete_skeleton_fragments": "igneous_like.task_creation.skeleton",
    "export_swc": "igneous_like.task_creation.skeleton",
    "spatial_index_db": "igneous_like.task_creation.objects",
    "threshold_table": "igneous_like.tables",
    "cluster_table": "igneous_like.tables",
    "train_table_classifier": "igneous_like.tables",
    "apply_table_classifier": "igneous_like.tables",
    "merge_tables": "igneous_like.tables",
    "find_roi": "igneous_like.task_creation.edit",
    "write_table_properties": "igneous_like.segment_properties",
    "plot_table": "igneous_like.plots",
}


def function(call: str) -> Callable:
    """The API function a stage names; a UserError for any other name."""
    if call in ONE_PROCESS:
        return getattr(importlib.import_module(ONE_PROCESS[call]), call)
    if call.startswith("create_") and call in task_creation.__all__:
        return getattr(task_creation, call)
    raise UserError(f"a stage names {call!r}, which is not a task creator or one-process step of "
                    "igneous_like; only those can run")


def create(stage: Stage) -> Tasks:
    """The tasks of a stage (made now: they may depend on what earlier stages wrote)."""
    fn = function(stage.call)
    if stage.call in ONE_PROCESS:
        return Tasks([stage], one_task, stage.name or stage.call.replace("_", " "))
    tasks = fn(**stage.kwargs)
    if not isinstance(tasks, Tasks):
        raise TypeError(f"{stage.call} gave {type(tasks).__name__}, not Tasks")
    return tasks


def call_here(stage: Stage) -> Any:
    """Run a one-process stage in this process and return what its function returns."""
    return function(stage.call)(**stage.kwargs)


def one_task(stage: Stage) -> partial:
    from igneous_like.pipeline.tasks import CallTask
    return partial(CallTask, call=stage.call, kwargs=stage.kwargs)


def as_json(stages: Iterable[Stage]) -> list:
    return [stage.to_json() for stage in stages]


def from_json(data: Sequence[dict]) -> list:
    return [Stage.from_json(item) for item in data]
