"""Importing this module registers every @queueable task function with python-task-queue.

Workers run registered tasks only. Operators may add their own task modules by naming them in
IGNEOUS_LIKE_TASK_MODULES (comma-separated module names, importable by the workers).
"""
import importlib
import os

import igneous_like.tasks.agglomerate  # noqa: F401
import igneous_like.tasks.ccl  # noqa: F401
import igneous_like.tasks.classify  # noqa: F401
import igneous_like.tasks.evaluation  # noqa: F401
import igneous_like.tasks.image  # noqa: F401
import igneous_like.tasks.measure  # noqa: F401
import igneous_like.tasks.mesh  # noqa: F401
import igneous_like.tasks.postprocess  # noqa: F401
import igneous_like.tasks.skeleton  # noqa: F401
import igneous_like.tasks.voxels  # noqa: F401

for _name in filter(None, os.environ.get("IGNEOUS_LIKE_TASK_MODULES", "").split(",")):
    importlib.import_module(_name.strip())
