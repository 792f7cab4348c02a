"""create_* functions: validate input, write destination info, return lazy task iterables."""
from igneous_like.task_creation.agglomerate import (
    agglomerate_fragments,
    clean_agglomeration_files,
    create_agglomeration_relabel_tasks,
    create_region_graph_tasks,
    create_watershed_tasks,
    load_region_graph,
    train_merge_model,
)
from igneous_like.task_creation.ccl import (
    clean_ccl_files,
    create_ccl_equivalence_tasks,
    create_ccl_face_tasks,
    create_ccl_relabel_tasks,
    create_relabeling,
)
from igneous_like.task_creation.classify import create_classification_tasks, train_classifier
from igneous_like.task_creation.evaluation import (
    accumulate_contingency,
    create_contingency_tasks,
    evaluation_scores,
)
from igneous_like.task_creation.image import (
    create_deletion_tasks,
    create_downsampling_tasks,
    create_image_shard_downsample_tasks,
    create_image_shard_transfer_tasks,
    create_transfer_tasks,
)
from igneous_like.task_creation.measure import (
    clean_measure_files,
    create_measure_merge_tasks,
    create_measure_tasks,
    export_measurements,
)
from igneous_like.task_creation.mesh import (
    create_mesh_manifest_tasks,
    create_meshing_tasks,
    create_sharded_multires_mesh_tasks,
)
from igneous_like.task_creation.postprocess import (
    clean_fill_holes_files,
    create_dust_tasks,
    create_fill_holes_tasks,
    create_hole_survey_tasks,
    plan_hole_filling,
)
from igneous_like.task_creation.skeleton import (
    create_sharded_skeleton_merge_tasks,
    create_skeletonizing_tasks,
    create_unsharded_skeleton_merge_tasks,
)
from igneous_like.task_creation.voxels import accumulate_voxel_counts, create_voxel_counting_tasks

__all__ = [
    "accumulate_contingency", "agglomerate_fragments", "clean_agglomeration_files",
    "create_agglomeration_relabel_tasks", "create_contingency_tasks", "create_region_graph_tasks",
    "create_watershed_tasks", "evaluation_scores", "load_region_graph", "train_merge_model",
    "accumulate_voxel_counts", "clean_ccl_files", "create_ccl_equivalence_tasks", "create_ccl_face_tasks",
    "create_classification_tasks", "train_classifier",
    "create_ccl_relabel_tasks", "create_deletion_tasks", "create_downsampling_tasks",
    "create_image_shard_downsample_tasks", "create_image_shard_transfer_tasks", "create_mesh_manifest_tasks",
    "create_meshing_tasks", "create_relabeling", "create_sharded_multires_mesh_tasks",
    "create_sharded_skeleton_merge_tasks", "create_skeletonizing_tasks", "create_transfer_tasks",
    "create_unsharded_skeleton_merge_tasks", "create_voxel_counting_tasks",
    "clean_measure_files", "create_measure_merge_tasks", "create_measure_tasks", "export_measurements",
    "clean_fill_holes_files", "create_dust_tasks", "create_fill_holes_tasks", "create_hole_survey_tasks",
    "plan_hole_filling",
]
