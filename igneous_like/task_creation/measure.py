"""Measurement of every object of a segmentation: forge (partials per block), merge (per label
range), export (one table, plus Neuroglancer segment properties). See igneous_like.measure for
the statistics and igneous_like.tasks.measure for the files under SEG/KEY/measure/."""
import math
import re
from functools import partial
from typing import Optional, Sequence

import numpy as np
from cloudvolume import CloudVolume

from igneous_like import measure
from igneous_like.errors import UserError
from igneous_like.segment_properties import info as properties_info
from igneous_like.segment_properties import number_property, write_properties
from igneous_like.stage import WorkDir, from_npz, id_ranges
from igneous_like.tables import check_format, read_table, write_table
from igneous_like.task_creation.common import (
    Tasks,
    check_vec,
    ints,
    open_layer,
    read_yaml,
    record_provenance,
)
from igneous_like.tasks.measure import (
    MERGE_RECORD,
    RECORD,
    MeasureMergeTask,
    MeasureRecord,
    MeasureTask,
    RingTask,
    part_name,
    read_headers,
    result_name,
)

DEFAULT_SHAPE = (256, 256, 256)
ROWS_PER_MERGE_TASK = 200_000  # part rows (a label counts once per block it touches) per merge task
VIEWER_COLUMNS = ("voxel_count", "volume", "surface_area", "sphericity", "area", "perimeter", "circularity",
                  "eccentricity", "solidity", "equivalent_diameter", "axis_major_length", "axis_minor_length",
                  "intensity_mean", "intensity_median", "nuclei_count", "cell_nucleus_volume_ratio")


def work_dir(cv: CloudVolume, mip: int) -> WorkDir:
    """SEG/KEY/measure: where the parts, ranges and results of a measurement live."""
    return WorkDir.of(cv, mip, "measure")


def check_segmentation(cv: CloudVolume) -> None:
    if cv.num_channels != 1 or np.dtype(cv.dtype).kind != "u":
        raise UserError(f"measurement needs one channel of unsigned integer labels; {cv.cloudpath} has "
                        f"{cv.num_channels} channel(s) of {cv.dtype}")


def check_companion(cv: CloudVolume, path: Optional[str], mip: int, what: str) -> Optional[CloudVolume]:
    """An image or nuclei layer that lies exactly on the segmentation's voxels."""
    if path is None:
        return None
    other = open_layer(path, mip)
    if other.num_channels != 1:
        raise UserError(f"{what} {other.cloudpath} has {other.num_channels} channels; measure one channel")
    if other.meta.bounds(mip) != cv.meta.bounds(mip) or list(other.meta.resolution(mip)) != list(
            cv.meta.resolution(mip)):
        raise UserError(f"{what} {other.cloudpath} mip {mip} has bounds {other.meta.bounds(mip)} at "
                        f"{list(other.meta.resolution(mip))} nm, but the segmentation has "
                        f"{cv.meta.bounds(mip)} at {list(cv.meta.resolution(mip))} nm; they must match")
    if what == "nuclei" and np.dtype(other.dtype).kind != "u":
        raise UserError(f"nuclei {other.cloudpath} must hold unsigned integer labels, not {other.dtype}")
    return other


def create_measure_tasks(cloudpath: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                         image: Optional[str] = None, nuclei: Optional[str] = None,
                         fill_missing: bool = False, float_bins: Optional[int] = None,
                         float_range: Optional[Sequence[float]] = None) -> Tasks:
    """Stage 1: tasks that write each block's partial statistics (any block shape; exact).

    A float `image` is counted value by value (exact statistics; as many histogram entries per
    object as it has distinct values) unless `float_bins` equal bins over `float_range` (low,
    high) bound that: then its statistics are those of the bin centres. A new forge deletes the
    files of an earlier measurement of this mip first.
    """
    cv = open_layer(cloudpath, mip)
    check_segmentation(cv)
    image_cv = check_companion(cv, image, mip, "image")
    nuclei_cv = check_companion(cv, nuclei, mip, "nuclei")
    bounds = cv.meta.bounds(mip)
    shape = np.minimum(check_vec("--shape", shape), bounds.size3())
    if int(np.prod(shape)) * int(shape.max()) ** 2 >= measure.MAX_BLOCK_MOMENT:
        raise UserError(f"--shape {','.join(map(str, ints(shape)))} is too large for exact moment sums; "
                        "use blocks of fewer than about 1,500 voxels per side")
    if int(bounds.size3().max()) > measure.MAX_HULL_EXTENT:
        raise UserError(f"{cv.cloudpath} mip {mip} is {list(ints(bounds.size3()))} voxels; measurement "
                        f"handles at most {measure.MAX_HULL_EXTENT} voxels per side: measure a higher mip")
    integer = image_cv is not None and np.dtype(image_cv.dtype).kind in "iub"
    bins = check_bins(image_cv, float_bins, float_range)
    planar = int(bounds.size3()[2]) == 1
    record = MeasureRecord(
        mip=mip, bounds=tuple(ints(bounds.minpt) + ints(bounds.maxpt)), shape=tuple(ints(shape)),
        resolution=tuple(float(r) for r in cv.meta.resolution(mip)),
        columns=tuple(measure.column_names(image_cv is not None, nuclei_cv is not None, planar)),
        image=None if image_cv is None else image_cv.cloudpath,
        nuclei=None if nuclei_cv is None else nuclei_cv.cloudpath, integer_image=integer,
        fill_missing=bool(fill_missing), planar=planar, float_bins=bins)
    work = work_dir(cv, mip)
    work.clean()
    work.save(RECORD, record)
    record_provenance(cv, {"task": "MeasureTask", "mip": mip, "shape": list(record.shape),
                           "image": record.image, "nuclei": record.nuclei})
    make = lambda box: partial(MeasureTask, layer_path=cv.cloudpath, work=work.url, offset=ints(box.minpt),
                               shape=ints(box.size3()))
    return Tasks(record.grid, make, f"measure {cv.cloudpath} mip {mip}")


def check_bins(image, bins: Optional[int], value_range: Optional[Sequence[float]]):
    """(low, high, count) of the bins a float image is counted in, or None: refused unless both
    are given, for a float image, with low < high finite and at least one bin."""
    if bins is None and value_range is None:
        return None
    if image is None or np.dtype(image.dtype).kind != "f":
        raise UserError("--float-bins and --float-range are for a float --image (integer images are counted "
                        "value by value)")
    if bins is None or value_range is None:
        raise UserError("give --float-bins N and --float-range LOW,HIGH together")
    low, high = (float(v) for v in value_range) if len(value_range) == 2 else (math.nan, math.nan)
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or int(bins) < 1:
        raise UserError(f"--float-range must be two finite numbers, the first below the second, and "
                        f"--float-bins at least 1; got {','.join(map(str, value_range))} and {bins}")
    return low, high, int(bins)


def load_record(cloudpath: str, mip: int):
    cv = open_layer(cloudpath, mip)
    work = work_dir(cv, mip)
    advice = (f"no measurement of {cv.cloudpath} mip {mip}: run "
              f"`igneous-like measure forge {cv.cloudpath} --mip {mip}` first")
    record = work.require(RECORD, advice, MeasureRecord)
    return cv, work, record


def create_measure_merge_tasks(cloudpath: str, mip: int = 0, num_tasks: Optional[int] = None) -> Tasks:
    """Stage 2: merge tasks, each owning a range of labels; needs every forge task done.

    Ranges come from label samples in the part headers, so each task gets about as many part
    rows; `num_tasks` defaults to one per ROWS_PER_MERGE_TASK part rows.
    """
    cv, work, record = load_record(cloudpath, mip)
    names = [part_name(box) for box in record.grid]
    work.check_complete(names, "measure forge tasks", prefix="parts/")
    if num_tasks is not None and num_tasks < 1:
        raise UserError(f"--tasks must be at least 1, got {num_tasks}")
    headers = read_headers(work.files, names)
    rows = sum(h.rows for h in headers)
    num_tasks = num_tasks or max(1, math.ceil(rows / ROWS_PER_MERGE_TASK))
    edges = id_ranges([(h.rows, h.samples) for h in headers], num_tasks)
    work.save(MERGE_RECORD, {"edges": [int(e) for e in edges]})
    work.clean("results/")
    make = lambda span: partial(MeasureMergeTask, work=work.url, low=int(span[0]), high=int(span[1]))
    return Tasks(list(zip(edges[:-1], edges[1:])), make, f"measure merge {cv.cloudpath} mip {mip}")


def merged_results(cloudpath: str, mip: int = 0):
    """(layer, its measurement's work directory, names of the merge results in label order), all
    present."""
    cv, work, _ = load_record(cloudpath, mip)
    advice = (f"no merged measurement of {cv.cloudpath} mip {mip}: run "
              f"`igneous-like measure merge {cv.cloudpath} --mip {mip}` first")
    edges = work.require(MERGE_RECORD, advice)["edges"]
    names = [result_name(low, high) for low, high in zip(edges[:-1], edges[1:])]
    work.check_complete(names, "measure merge tasks")
    return cv, work, names


def read_results(cloudpath: str, mip: int = 0):
    """Every merge result in label order, as one pandas DataFrame (label first)."""
    import pandas as pd
    cv, work, names = merged_results(cloudpath, mip)
    frames = [pd.DataFrame(from_npz(data)) for data in work.gather(names, "measure merge tasks")]
    return cv, pd.concat(frames, ignore_index=True)


def export_measurements(cloudpath: str, output: str, mip: int = 0, segment_properties: bool = True) -> int:
    """Stage 3: write the table (.csv, .tsv, .parquet or .xlsx, one row per label, `label` first) and the
    Neuroglancer segment properties of the layer; returns the number of rows."""
    check_format(output)
    cv, table = read_results(cloudpath, mip)
    write_table(table, output)
    if segment_properties:
        write_properties(cv, segment_properties_info(table))
    return len(table)


def segment_properties_info(table) -> dict:
    """The info file of Neuroglancer's segment properties: ids as strings, the viewer's numeric
    columns (those without missing values) as numbers."""
    shown = [name for name in VIEWER_COLUMNS
             if name in table and np.isfinite(table[name].to_numpy(np.float64)).all()]
    return properties_info(table["label"], [number_property(name, table[name].to_numpy()) for name in shown])


MAX_RING_OFFSETS = 20_000  # voxels in the ball of a ring's width: the cost per voxel of a ring task


def create_ring_tasks(src: str, dest: str, width: float, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                      compress: Optional[str] = "gzip") -> Tasks:
    """Tasks that write DEST: a band of `width` nm outside each object of SRC, with the object's id
    (see measure.ring_labels); measure it with --image for the intensity next to each object."""
    from igneous_like.task_creation.common import compression
    from igneous_like.task_creation.postprocess import box_tasks, destination, source
    cv, grid = source(src, mip, shape)
    resolution = np.asarray(cv.meta.resolution(mip), np.float64)
    if not width > 0:
        raise UserError(f"--width must be a positive number of nm, got {width}")
    if np.prod(2 * measure.ring_reach(resolution, width) + 1) > MAX_RING_OFFSETS:
        raise UserError(f"--width {width} nm spans more than {MAX_RING_OFFSETS} voxels at "
                        f"{list(resolution)} nm; use a narrower ring or a higher mip")
    compress = compression(compress)
    out = destination(cv, dest, mip, {"task": "RingTask", "width": float(width)})
    return box_tasks(grid, RingTask, f"rings of {width} nm around {cv.cloudpath} into {out.cloudpath}",
                     src_path=cv.cloudpath, dest_path=out.cloudpath, mip=mip, width=float(width),
                     compress=compress)


def clean_measure_files(cloudpath: str, mip: int = 0) -> int:
    """Delete SEG/KEY/measure/ (parts, ranges, results); returns how many files there were."""
    return work_dir(open_layer(cloudpath, mip), mip).clean()



GROUP_KEYS = ("seg", "image", "nuclei", "float_bins", "float_range")
COMBINED = "combined"  # the combined table's name in a batch's output folder


def read_layer_group(path: str) -> dict:
    """A group file (YAML or JSON): NAME: SEG, or NAME: {seg: SEG, image: IMG, nuclei: NUC,
    float_bins: N, float_range: [LOW, HIGH]}, per layer. Returns NAME -> those keys (None where
    absent); names become file names, so they are plain words."""
    data = read_yaml(path, "group file")
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path} must map each layer's name to its segmentation (NAME: SEG or "
                        "NAME: {seg: SEG, image: IMG, nuclei: NUC})")
    group = {}
    for name, entry in data.items():
        entry = {"seg": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or "seg" not in entry or set(entry) - set(GROUP_KEYS):
            raise UserError(f"{path}: layer {name} needs seg: (and may have image:, nuclei:, float_bins:, "
                            f"float_range:), not {entry!r}")
        group[str(name)] = {key: entry.get(key) for key in GROUP_KEYS}
    return group


def check_layer_group(group: dict, output_dir: str, table_format: str, mip: int = 0) -> int:
    """Before a batch writes anything: plain distinct names, every layer measurable. Returns the count."""
    for name in group:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name == COMBINED:
            raise UserError(f"layer name {name!r} must be a plain word (letters, digits, _ . -), not "
                            f"{COMBINED!r}: it names the layer's table in {output_dir}")
    check_format(f"{COMBINED}.{table_format}")
    for name, entry in group.items():
        try:
            cv = open_layer(entry["seg"], mip)
            check_segmentation(cv)
            image = check_companion(cv, entry.get("image"), mip, "image")
            check_companion(cv, entry.get("nuclei"), mip, "nuclei")
            check_bins(image, entry.get("float_bins"), entry.get("float_range"))
        except UserError as err:
            raise UserError(f"layer {name}: {err}") from None
    return len(group)


def combine_measurement_tables(tables: dict, output: str) -> int:
    """One table of every layer's rows, `layer` (the group name) first, in group order; columns a
    layer lacks (no image, no nuclei) are empty. Returns the row count."""
    import pandas as pd
    frames = [read_table(path).assign(layer=name) for name, path in tables.items()]
    combined = pd.concat(frames, ignore_index=True)
    combined = combined[["layer"] + [c for c in combined.columns if c != "layer"]]
    write_table(combined, output)
    return len(combined)
