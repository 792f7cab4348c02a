"""Importing this module registers every @queueable task function with python-task-queue."""
import igneous_like.tasks.image  # noqa: F401
import igneous_like.tasks.mesh  # noqa: F401
