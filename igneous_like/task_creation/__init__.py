"""create_* functions: validate input, write destination info, return lazy task iterables."""
from igneous_like.task_creation.image import (
    create_deletion_tasks,
    create_downsampling_tasks,
    create_image_shard_downsample_tasks,
    create_image_shard_transfer_tasks,
    create_transfer_tasks,
)
from igneous_like.task_creation.mesh import (
    create_mesh_manifest_tasks,
    create_meshing_tasks,
    create_sharded_multires_mesh_tasks,
)

__all__ = [
    "create_deletion_tasks", "create_downsampling_tasks", "create_image_shard_downsample_tasks",
    "create_image_shard_transfer_tasks", "create_transfer_tasks",
    "create_meshing_tasks", "create_mesh_manifest_tasks", "create_sharded_multires_mesh_tasks",
]
