"""Importing this module lets workers run every @queueable task function of igneous_like.

A task's module is imported when a worker first meets one of its tasks, not up front: each area
pulls in heavy libraries (kimimaro, scikit-learn, scipy.ndimage) that most commands never use,
and importing them all cost every command and worker about 0.3 s. Only the modules listed here,
and those an operator names in IGNEOUS_LIKE_TASK_MODULES (comma-separated, importable by the
workers, imported at once), can be imported this way, and only their functions run
(`is_allowed`): a queue message cannot name arbitrary code, nor another library's tasks.
"""
import importlib
from typing import Tuple

from taskqueue import queueablefns

from igneous_like import settings

TASK_MODULES = frozenset([f"igneous_like.tasks.{area}" for area in (
    "agglomerate", "annotate", "ccl", "classify", "contrast", "edit", "evaluation", "image", "ingest",
    "measure", "mesh", "objects", "postprocess", "skeleton", "voxels")] + ["igneous_like.pipeline.tasks"])
OPERATOR_MODULES = frozenset(settings.task_modules())


class LazyRegistry(dict):
    """python-task-queue's (module, function) -> function table, filling itself from TASK_MODULES."""

    def get(self, key, default=None):
        if key not in self and key and key[0] in TASK_MODULES:
            importlib.import_module(key[0])  # its @queueable decorators add its functions
        return super().get(key, default)


def is_allowed(key: Tuple[str, str]) -> bool:
    """Whether a worker may run the task function `key` = (module, name)."""
    return len(key) == 2 and (key[0] in TASK_MODULES or key[0] in OPERATOR_MODULES)


if not isinstance(queueablefns.REGISTRY, LazyRegistry):
    queueablefns.REGISTRY = LazyRegistry(queueablefns.REGISTRY)

for _name in sorted(OPERATOR_MODULES):
    importlib.import_module(_name)
