"""`table paint`: a segmentation whose objects carry a table column's class or cluster, so that
results of the table verbs are seen in the volume.

Each distinct value of the column becomes a segment id (1, 2, ... in sorted order), named in the
destination's segment properties; objects the table lacks, or whose value is missing, become 0.
The label -> id table is stored in DEST/paint/ and read by the relabel tasks box by box.
"""
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from igneous_like import label_table
from igneous_like.errors import UserError
from igneous_like.tables import read_table
from igneous_like.task_creation.agglomerate import DEFAULT_SHAPE, mapping_relabel_tasks
from igneous_like.task_creation.common import Tasks, new_layer_path, open_layer

PAINT_TABLE = "paint/labels.ltab"


def paint_ids(table, column: str):
    """(labels, ids, names): each row's object and the id of its value (rows without one left out),
    and the value each id stands for."""
    for name in ("label", column):
        if name not in table.columns:
            raise UserError(f"the table has no column {name}; it has {', '.join(map(str, table.columns))}")
    rows = table[~pd.isna(table[column])]
    labels = rows["label"].to_numpy()
    if labels.dtype.kind not in "iu" or (labels < 0).any():
        raise UserError("the table's label column must hold the segmentation's object ids "
                        "(whole numbers >= 0)")
    names, ids = np.unique(rows[column].to_numpy() if rows[column].dtype.kind in "iuf"
                           else rows[column].astype(str).to_numpy(), return_inverse=True)
    if names.size == 0:
        raise UserError(f"column {column} has no values to paint")
    return labels.astype(np.uint64), ids.astype(np.uint64) + 1, [f"{name}" for name in names.tolist()]


def properties_info(names: Sequence[str], counts: np.ndarray) -> dict:
    """Neuroglancer segment properties: each id's value as its label, and how many objects it has."""
    return {"@type": "neuroglancer_segment_properties",
            "inline": {"ids": [str(i) for i in range(1, len(names) + 1)],
                       "properties": [{"id": "label", "type": "label", "values": list(names)},
                                      {"id": "objects", "type": "number", "data_type": "uint32",
                                       "values": [int(c) for c in counts]}]}}


def create_paint_tasks(seg_path: str, table_path: str, column: str, dest: str, mip: int = 0,
                       shape: Sequence[int] = DEFAULT_SHAPE, encoding: Optional[str] = None,
                       compress: Optional[str] = "gzip", fill_missing: bool = False) -> Tasks:
    """Tasks that write DEST: each object of SEG as the id of its value in COLUMN of TABLE."""
    seg = open_layer(seg_path, mip)
    if seg.layer_type != "segmentation":
        raise UserError(f"{seg.cloudpath} is an {seg.layer_type} layer; paint a segmentation's objects")
    labels, ids, names = paint_ids(read_table(table_path), column)
    order = np.argsort(labels, kind="stable")
    if np.any(np.diff(labels[order]) == 0):
        raise UserError(f"a label appears more than once in {table_path}; give one row per object")
    dtype = next(t for t in ("uint8", "uint16", "uint32") if len(names) < np.iinfo(t).max)
    path = new_layer_path(seg.cloudpath, dest)
    counts = np.bincount(ids, minlength=len(names) + 1)[1:]
    tasks = mapping_relabel_tasks(seg, f"{path}/{PAINT_TABLE}", dest, dtype, {
        "task": "PaintTask", "segmentation": seg.cloudpath, "table": table_path, "column": column, "mip": mip,
        "values": len(names)}, mip, shape, encoding, compress, fill_missing,
        f"objects of {seg.cloudpath} painted by {column}", keep_unmapped=False,
        properties=properties_info(names, counts))
    label_table.write(f"{path}/{PAINT_TABLE}", labels[order], ids[order])  # DEST checked: now write
    return tasks
