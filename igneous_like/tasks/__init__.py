"""Task functions, one module per area; `igneous_like.tasks.registry` imports them all.

Importing this package installs the registry (as `import igneous.tasks` provides Igneous's task
definitions to a consumer script), and it offers Igneous's task classes by name
(igneous_like.tasks.compat: DeleteTask, DownsampleTask, TransferTask, CountVoxelsTask, ...).
"""
import importlib
from typing import Any

from igneous_like.tasks import registry  # noqa: F401  (workers' lazy registry)

IGNEOUS_TASKS = (
    "BlackoutTask", "ContrastNormalizationTask", "CountVoxelsTask", "DeleteTask", "DownsampleTask",
    "HyperSquareConsensusTask", "MeshManifestFilesystemTask", "MeshManifestPrefixTask", "MeshTask",
    "QuantizeTask", "TransferTask",
)


def __getattr__(name: str) -> Any:
    if name not in IGNEOUS_TASKS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.compat"), name)
