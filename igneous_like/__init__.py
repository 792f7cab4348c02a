"""igneous_like: chunked, queue-driven processing of Neuroglancer Precomputed volumes.

Heavy modules (CloudVolume, task queues) are imported by the submodules that need them,
so `import igneous_like` stays cheap for the CLI and for workers. It does make every file://
write atomic (igneous_like.atomic), from whenever cloudfiles is imported.
"""
from igneous_like import atomic as _atomic

__version__ = "0.1.0"
_atomic.install()


def execute(queue: str, parallel: int = 1, **kwargs):
    """Run workers on a queue from Python; see igneous_like.queues.execute."""
    from igneous_like.queues import execute as run_workers
    return run_workers(queue, parallel=parallel, **kwargs)


def __getattr__(name: str):
    """`import igneous_like as igneous; igneous.task_creation...` and `from igneous_like import
    DeleteTask` as Igneous's scripts write them, imported on first use."""
    import importlib
    if name in ("task_creation", "tasks"):
        return importlib.import_module(f"{__name__}.{name}")
    if name.endswith("Task") and name in importlib.import_module(f"{__name__}.tasks").IGNEOUS_TASKS:
        return getattr(importlib.import_module(f"{__name__}.tasks"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
