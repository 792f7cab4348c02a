"""create_* functions: validate input, write destination info, return lazy task iterables.

Each name loads its module on first use, so a command imports only the libraries of its own area.
"""
import importlib
from typing import Any

_MODULES = {
    "agglomerate": (
        "agglomerate_fragments", "clean_agglomeration_files", "create_agglomeration_relabel_tasks",
        "create_region_graph_tasks", "create_watershed_tasks", "load_region_graph", "train_merge_model",
    ),
    "annotate": ("clean_annotation_files", "create_annotation_index_tasks", "create_annotation_tasks"),
    "ccl": (
        "clean_ccl_files", "create_ccl_equivalence_tasks", "create_ccl_face_tasks",
        "create_ccl_relabel_tasks", "create_relabeling",
    ),
    "classify": (
        "create_classification_tasks", "create_pool_merge_tasks", "create_pool_sum_tasks", "train_classifier",
    ),
    "contrast": (
        "create_clahe_tasks", "create_contrast_normalization_tasks", "create_histogram_tasks",
        "create_levels_tasks", "create_luminance_levels_tasks",
    ),
    "edit": (
        "compute_rois", "create_blackout_tasks", "create_quantize_tasks", "create_quantized_affinity_info",
        "create_reorder_tasks", "find_roi",
    ),
    "evaluation": (
        "accumulate_contingency", "clean_evaluation_files", "create_ceiling_tasks",
        "create_contingency_tasks", "evaluation_scores", "threshold_sweep",
    ),
    "image": (
        "create_deletion_tasks", "create_downsampling_tasks", "create_image_shard_downsample_tasks",
        "create_image_shard_transfer_tasks", "create_pyramid_tasks", "create_sharded_image_info",
        "create_touch_tasks", "create_transfer_tasks", "num_mips_from_memory_target",
    ),
    "ingest": ("create_ingest_tasks",),
    "measure": (
        "check_layer_group", "clean_measure_files", "combine_measurement_tables",
        "create_measure_merge_tasks", "create_measure_tasks", "create_ring_tasks", "export_measurements",
    ),
    "mesh": ("create_mesh_manifest_tasks", "create_meshing_tasks", "create_sharded_multires_mesh_tasks"),
    "objects": (
        "create_mesh_deletion_tasks", "create_skeleton_deletion_tasks", "create_spatial_index_mesh_tasks",
        "create_spatial_index_skeleton_tasks", "create_xfer_meshes_tasks", "create_xfer_skeleton_tasks",
        "spatial_index_db",
    ),
    "postprocess": (
        "clean_fill_holes_files", "create_background_relabel_tasks", "create_dust_tasks",
        "create_fill_holes_tasks", "create_hole_survey_tasks", "plan_hole_filling",
    ),
    "skeleton": (
        "create_sharded_skeleton_merge_tasks", "create_skeletonizing_tasks",
        "create_unsharded_skeleton_merge_tasks",
    ),
    "tables": ("create_paint_tasks",),
    "voxels": ("accumulate_voxel_counts", "create_voxel_counting_tasks"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
