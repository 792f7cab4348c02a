"""create_* functions: validate input, write destination info, return lazy task iterables."""
from igneous_like.task_creation.image import (
    create_deletion_tasks,
    create_downsampling_tasks,
    create_image_shard_downsample_tasks,
    create_image_shard_transfer_tasks,
    create_transfer_tasks,
)
from igneous_like.task_creation.skeleton import (
    create_sharded_skeleton_merge_tasks,
    create_skeletonizing_tasks,
    create_unsharded_skeleton_merge_tasks,
)

__all__ = [
    "create_deletion_tasks", "create_downsampling_tasks", "create_image_shard_downsample_tasks",
    "create_image_shard_transfer_tasks", "create_transfer_tasks", "create_skeletonizing_tasks",
    "create_unsharded_skeleton_merge_tasks", "create_sharded_skeleton_merge_tasks",
]
