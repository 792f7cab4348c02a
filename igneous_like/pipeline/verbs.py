"""The multi-step verbs as data: each returns its stages, in order. The CLI only displays them;
`run_here`, `enqueue` or a pipeline step runs them (each stage is made once the one before is
done, since it reads what that one wrote)."""
from typing import List, Optional, Sequence

from igneous_like.task_creation.common import Stage

CCL_SHAPE = (512, 512, 512)


def ccl(src: str, dest: str, mip: int = 0, shape: Optional[Sequence[int]] = None, threshold_gte=None,
        threshold_lte=None, connectivity: Optional[int] = None, dust: Optional[int] = None,
        fill_missing: Optional[bool] = None, chunk_size: Optional[Sequence[int]] = None,
        encoding: Optional[str] = None, compress: Optional[str] = "gzip", clean: bool = True) -> List[Stage]:
    """Connected components of SRC written to DEST: faces, links, calc-labels, relabel (and clean)."""
    labeling = dict(mip=mip, shape=list(shape or CCL_SHAPE), threshold_gte=threshold_gte,
                    threshold_lte=threshold_lte, connectivity=connectivity or 6,
                    fill_missing=bool(fill_missing))
    stages = [
        Stage("create_ccl_face_tasks", dict(labeling, cloudpath=src, dust_threshold=dust or 0), "faces"),
        Stage("create_ccl_equivalence_tasks", dict(labeling, cloudpath=src), "links"),
        Stage("create_relabeling", dict(labeling, cloudpath=src, dust_threshold=dust), "calc-labels"),
        Stage("create_ccl_relabel_tasks", dict(labeling, src_path=src, dest_path=dest, chunk_size=chunk_size,
                                                encoding=encoding, compress=compress), "relabel"),
    ]
    return stages + ([Stage("clean_ccl_files", dict(cloudpath=src, mip=mip), "clean")] if clean else [])


def annotate(source: str, dest: str, **options) -> List[Stage]:
    """A Neuroglancer annotation layer at DEST from SOURCE's objects or rows (options: those of
    create_annotation_tasks): gather the parts, index them, delete the parts."""
    return [Stage("create_annotation_tasks", dict(source=source, dest=dest, **options), "gather"),
            Stage("create_annotation_index_tasks", dict(dest=dest), "index"),
            Stage("clean_annotation_files", dict(dest=dest), "clean")]


def fill_holes(src: str, dest: str, max_hole_size: int, mip: int = 0, shape: Sequence[int] = (512, 512, 512),
               compress: Optional[str] = "gzip", clean: bool = True) -> List[Stage]:
    """SRC with every small cavity enclosed by one object filled, into DEST: label the background
    (the ccl steps, voxels <= 0, 6-connected), survey each block, plan the holes here, write DEST."""
    labeling = dict(cloudpath=src, mip=mip, shape=list(shape), threshold_lte=0, connectivity=6,
                    fill_missing=False)
    return [
        Stage("create_ccl_face_tasks", dict(labeling, dust_threshold=0), "background faces"),
        Stage("create_ccl_equivalence_tasks", labeling, "background links"),
        Stage("create_relabeling", dict(labeling, dust_threshold=0), "background labels"),
        Stage("create_background_relabel_tasks", dict(src=src, mip=mip, shape=list(shape)), "background"),
        Stage("clean_ccl_files", dict(cloudpath=src, mip=mip), "clean background labeling"),
        Stage("create_hole_survey_tasks", dict(src=src, mip=mip, shape=list(shape)), "survey"),
        Stage("plan_hole_filling", dict(src=src, max_hole_size=max_hole_size, mip=mip), "plan"),
        Stage("create_fill_holes_tasks", dict(src=src, dest=dest, mip=mip, shape=list(shape),
                                              compress=compress), "fill"),
    ] + ([Stage("clean_fill_holes_files", dict(src=src, mip=mip), "clean")] if clean else [])


def evaluate(seg: str, gt: str, mip: int = 0, shape: Sequence[int] = (512, 512, 512),
             fill_missing: bool = False, ignore_gt_zero: bool = False, table: Optional[str] = None,
             ceiling: Optional[str] = None) -> List[Stage]:
    """Overlap counts per task, then the scores (and the per-object TABLE); with CEILING, the best
    segmentation reachable from SEG's pieces written there, and the evaluation's files deleted."""
    from igneous_like.tables import check_format
    from igneous_like.task_creation.common import new_layer_path
    if table is not None:
        check_format(table)
    for layer, what in ((seg, "the segmentation"), (gt, "the ground truth")) if ceiling is not None else ():
        new_layer_path(layer, ceiling, "give --ceiling a new path", what)
    scores = dict(seg_path=seg, gt_path=gt, mip=mip, ignore_gt_zero=ignore_gt_zero, table=table,
                  mapping=ceiling is not None)
    stages = [
        Stage("create_contingency_tasks", dict(seg_path=seg, gt_path=gt, mip=mip, shape=list(shape),
                                               fill_missing=fill_missing), "overlaps"),
        Stage("evaluation_scores", scores, "scores"),
    ]
    if ceiling is None:
        return stages
    return stages + [
        Stage("create_ceiling_tasks", dict(seg_path=seg, gt_path=gt, dest=ceiling, mip=mip, shape=list(shape),
                                           fill_missing=fill_missing), "ceiling"),
        Stage("clean_evaluation_files", dict(seg_path=seg, gt_path=gt, mip=mip), "clean"),
    ]


def threshold_sweep(frag: str, gt: str, thresholds: Sequence[float], policy: str = "mean",
                    quantile: float = 0.5, model: Optional[str] = None, boundary: Optional[str] = None,
                    mip: int = 0, shape: Sequence[int] = (512, 512, 512), fill_missing: bool = False,
                    ignore_gt_zero: bool = False, plot: Optional[str] = None, features: Optional[str] = None,
                    channel: int = 0) -> List[Stage]:
    """The region graph (with BOUNDARY, unless made from it already), the overlaps with GT, and
    the scores at every threshold from them (and the plot)."""
    from igneous_like.plots import check_output
    if plot is not None:
        check_output(plot)
    blocks = dict(mip=mip, shape=list(shape), fill_missing=fill_missing)
    graph = [Stage("create_region_graph_tasks", dict(frag_path=frag, boundary_path=boundary, reuse=True,
                                                     **blocks), "graph")] if boundary is not None else []
    return graph + [
        Stage("create_contingency_tasks", dict(seg_path=frag, gt_path=gt, **blocks), "overlaps"),
        Stage("threshold_sweep", dict(seg_path=frag, gt_path=gt, thresholds=list(thresholds), policy=policy,
                                      quantile=quantile, model=model, mip=mip, ignore_gt_zero=ignore_gt_zero,
                                      plot=plot, features=features, channel=channel), "sweep"),
    ]


def agglomerate_training(frag: str, boundary: str, gt: str, output: str, trees: int = 100, mip: int = 0,
                         shape: Sequence[int] = (512, 512, 512), fill_missing: bool = False,
                         rounds: int = 1, features: str = "basic") -> List[Stage]:
    """The region graph (unless made from this boundary map already), the overlaps with GT, and a
    learned merge policy trained on them (`rounds` rounds of active learning, `features` family)."""
    return [
        Stage("create_region_graph_tasks", dict(frag_path=frag, boundary_path=boundary, mip=mip,
                                                shape=list(shape), fill_missing=fill_missing, reuse=True),
              "graph"),
        Stage("create_contingency_tasks", dict(seg_path=frag, gt_path=gt, mip=mip, shape=list(shape),
                                               fill_missing=fill_missing), "overlaps"),
        Stage("train_merge_model", dict(frag_path=frag, gt_path=gt, output=output, mip=mip, trees=trees,
                                            rounds=rounds, features=features),
              "train"),
    ]


def measure_batch(group: dict, output_dir: str, table_format: str = "csv", mip: int = 0,
                  shape: Sequence[int] = (256, 256, 256), fill_missing: bool = False,
                  segment_properties: bool = True) -> List[Stage]:
    """Measure every layer of a group (NAME -> {seg, image, nuclei, float_bins, float_range}): check
    them all first, then per layer forge, merge, export to OUTPUT_DIR/NAME.FORMAT and clean; last
    the combined table OUTPUT_DIR/combined.FORMAT with a `layer` column."""
    out = output_dir.rstrip("/")
    tables = {name: f"{out}/{name}.{table_format}" for name in group}
    check = dict(group=group, output_dir=out, table_format=table_format, mip=mip)
    stages = [Stage("check_layer_group", check, "check")]
    for name, entry in group.items():
        seg = entry["seg"]
        stages += [
            Stage("create_measure_tasks", dict(cloudpath=seg, mip=mip, shape=list(shape),
                                               image=entry["image"], nuclei=entry["nuclei"],
                                               fill_missing=fill_missing, float_bins=entry.get("float_bins"),
                                               float_range=entry.get("float_range")),
                  f"{name}: forge"),
            Stage("create_measure_merge_tasks", dict(cloudpath=seg, mip=mip), f"{name}: merge"),
            Stage("export_measurements", dict(cloudpath=seg, output=tables[name], mip=mip,
                                              segment_properties=segment_properties), f"{name}: export"),
            Stage("clean_measure_files", dict(cloudpath=seg, mip=mip), f"{name}: clean"),
        ]
    combined = f"{out}/combined.{table_format}"
    return stages + [Stage("combine_measurement_tables", dict(tables=tables, output=combined), "combine")]
