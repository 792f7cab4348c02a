"""`table paint`: a segmentation whose objects carry a table column's class or cluster, so that
results of the table verbs are seen in the volume.

Each distinct value of the column becomes a segment id (1, 2, ... in sorted order), named in the
destination's segment properties; objects the table lacks, or whose value is missing, become 0.
The label -> id table is stored in DEST/paint/ and read by the relabel tasks box by box.
"""
import json
from functools import partial
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from cloudfiles import CloudFiles

from igneous_like import label_table
from igneous_like.errors import UserError
from igneous_like.tables import read_table
from igneous_like.task_creation.agglomerate import DEFAULT_SHAPE, chunk_grid, commit, new_destination
from igneous_like.task_creation.common import Tasks, compression, ints, open_layer
from igneous_like.tasks.agglomerate import AgglomerationRelabelTask

PAINT_TABLE, PROPERTIES_DIR = "paint/labels.ltab", "segment_properties"


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
    dtype = next(t for t in ("uint8", "uint16", "uint32") if len(names) < np.iinfo(t).max)
    out = new_destination(seg, dest, mip, dtype, encoding)
    grid = chunk_grid(out, mip, shape)
    order = np.argsort(labels, kind="stable")
    if np.any(np.diff(labels[order]) == 0):
        raise UserError(f"a label appears more than once in {table_path}; give one row per object")
    label_table.write(f"{out.cloudpath}/{PAINT_TABLE}", labels[order], ids[order])
    counts = np.bincount(ids, minlength=len(names) + 1)[1:]
    CloudFiles(out.cloudpath).put(f"{PROPERTIES_DIR}/info", json.dumps(properties_info(names, counts)),
                                  content_type="application/json", compress=None, cache_control="no-cache")
    out.info["segment_properties"] = PROPERTIES_DIR
    commit(out, {"task": "PaintTask", "segmentation": seg.cloudpath, "table": table_path, "column": column,
                 "mip": mip, "values": len(names)})
    make = lambda box: partial(AgglomerationRelabelTask, frag_path=seg.cloudpath, dest_path=out.cloudpath,
                               mip=mip, offset=ints(box.minpt), shape=ints(box.size3()),
                               mapping=f"{out.cloudpath}/{PAINT_TABLE}", fill_missing=fill_missing,
                               compress=compression(compress), keep_unmapped=False)
    return Tasks(grid, make, f"objects of {seg.cloudpath} painted by {column} into {out.cloudpath}",
                 mips=range(mip, mip + 1))
