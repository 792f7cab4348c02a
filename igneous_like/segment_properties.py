"""Neuroglancer segment properties (the `neuroglancer_segment_properties` info of a segmentation)
from table columns: a label shown beside each id, tags to search and colour objects by (a
category, class or cluster: `#neuron` in the segment list), and numbers.

Tags come from column values: a text value is its own tag (spaces become _), a number is
COLUMN_VALUE (`cluster_2`); Neuroglancer matches tags ignoring case, so tags differing only in
case are one. Numbers have no missing value in the format, so a number column must be complete.
"""
import json
from typing import Iterable, List, Optional, Sequence

import numpy as np
import pandas as pd
from cloudfiles import CloudFiles

from igneous_like.errors import UserError

PROPERTIES_DIR = "segment_properties"
INFO_TYPE = "neuroglancer_segment_properties"
ONE_PER_LAYER = ("label", "description", "tags")  # property types Neuroglancer allows once
BLANK = {"label": "", "description": "", "string": "", "tags": []}  # values of ids a property lacks
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")  # matplotlib's tab10: tags in a list's order, wrapping around


def number_property(name: str, values) -> dict:
    """A number property in uint32 or int32 when whole numbers fit, else float32."""
    values = np.asarray(values)
    data_type = "float32"
    if values.dtype.kind in "iu":
        low, high = (values.min(), values.max()) if values.size else (0, 0)
        if 0 <= low and high < 2**32:
            data_type = "uint32"
        elif -2**31 <= low and high < 2**31:
            data_type = "int32"
    cast = float if data_type == "float32" else int
    return {"id": name, "type": "number", "data_type": data_type,
            "values": [cast(v) for v in values.astype(np.float32 if cast is float else np.int64)]}


def info(ids: Iterable, properties: List[dict]) -> dict:
    return {"@type": INFO_TYPE, "inline": {"ids": [str(i) for i in ids], "properties": properties}}


def text(value) -> str:
    """A cell as text: missing is empty, whole numbers lose their .0."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def tag_of(column: str, value) -> Optional[str]:
    """The tag a cell gives its object: text as is (no spaces), a number as COLUMN_VALUE."""
    word = text(value)
    if not word:
        return None
    return "_".join(word.split()) if isinstance(value, str) else f"{column}_{word}"


def check_columns(table, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"the table has no column {', '.join(missing)}; it has "
                        f"{', '.join(map(str, table.columns))}")
    repeated = sorted({c for c in columns if list(columns).count(c) > 1})
    if repeated:
        raise UserError(f"column {', '.join(repeated)} is given twice; give each column once")


def object_ids(table) -> np.ndarray:
    """The `label` column: each row's segment id, whole numbers >= 0, each once."""
    check_columns(table, ["label"])
    labels = table["label"].to_numpy()
    if labels.dtype.kind not in "iu" or (labels < 0).any():
        raise UserError("the table's label column must hold the segmentation's object ids "
                        "(whole numbers >= 0)")
    repeated = labels[pd.Series(labels).duplicated().to_numpy()]
    if repeated.size:
        raise UserError(f"label {repeated[0]} appears more than once in the table; give one row per object")
    return labels


def tags_property(table, columns: Sequence[str]) -> dict:
    """One tags property: each object's tags (from every column) as sorted indices into the tag list."""
    cells = [[tag_of(column, value) for value in table[column].tolist()] for column in columns]
    spelling, described = {}, {}
    for column, tags in zip(columns, cells):
        for tag, value in zip(tags, table[column].tolist()):
            if tag is not None and tag.lower() not in spelling:
                spelling[tag.lower()], described[tag.lower()] = tag, f"{column}: {text(value)}"
    order = sorted(spelling)
    index = {key: i for i, key in enumerate(order)}
    values = [sorted({index[tag.lower()] for tag in row if tag is not None}) for row in zip(*cells)]
    return {"id": "tags", "type": "tags", "tags": [spelling[key] for key in order],
            "tag_descriptions": [described[key] for key in order], "values": values}


def table_properties(table, label: Optional[str] = None, tags: Sequence[str] = (),
                     numbers: Sequence[str] = ()) -> dict:
    """The segment properties info of the table's objects (its `label` column): COLUMN `label` as
    each object's label, the `tags` columns as tags, the `numbers` columns as numbers."""
    if label is None and not tags and not numbers:
        raise UserError("name at least one column: --label, --tags or --numbers")
    check_columns(table, [c for c in [label] if c] + list(tags) + list(numbers))
    ids = object_ids(table)
    properties = []
    if label:
        properties.append({"id": label, "type": "label", "values": [text(v) for v in table[label].tolist()]})
    if tags:
        properties.append(tags_property(table, tags))
    for column in numbers:
        values = table[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise UserError(f"column {column} does not hold numbers; give it as --label or --tags")
        if not np.isfinite(values.to_numpy(np.float64)).all():
            raise UserError(f"column {column} has missing or infinite values, which segment properties "
                            "cannot hold; fill them, or give the column as --tags")
        properties.append(number_property(column, values.to_numpy()))
    return info(ids, properties)


def merged(old: dict, new: dict) -> dict:
    """OLD's properties and NEW's over both their ids (OLD's order, then NEW's additions). A new
    property replaces an old one of its id or, for the kinds allowed once, of its type. Ids a
    property lacks get no label or tags; a number needs a value for every id."""
    old_inline, new_inline = old.get("inline") or {"ids": [], "properties": []}, new["inline"]
    ids = list(old_inline["ids"]) + [i for i in new_inline["ids"] if i not in set(old_inline["ids"])]
    names = {p["id"] for p in new_inline["properties"]}
    kinds = {p["type"] for p in new_inline["properties"]} & set(ONE_PER_LAYER)
    kept = [p for p in old_inline["properties"] if p["id"] not in names and p["type"] not in kinds]
    properties = [reindexed(p, old_inline["ids"], ids) for p in kept]
    properties += [reindexed(p, new_inline["ids"], ids) for p in new_inline["properties"]]
    return info(ids, properties)


def reindexed(prop: dict, ids: Sequence[str], every: Sequence[str]) -> dict:
    """PROP's values over the ids `every` (its own ids are `ids`)."""
    place = dict(zip(ids, range(len(ids))))
    lacking = [i for i in every if i not in place]
    if lacking and prop["type"] not in BLANK:
        raise UserError(f"number {prop['id']!r} has no value for {len(lacking)} objects (first: "
                        f"{lacking[0]}), as the table and the layer's segment properties list different "
                        "objects; give a table with every object, or --replace")
    blank = BLANK.get(prop["type"])
    return {**prop, "values": [prop["values"][place[i]] if i in place else blank for i in every]}


def read_properties(layer: str, layer_info: dict) -> Optional[dict]:
    """The segment properties the layer's info names, if any."""
    directory = layer_info.get("segment_properties")
    if not directory:
        return None
    return CloudFiles(layer.rstrip("/")).get_json(f"{directory}/info")


def write_properties(cv, properties: dict) -> None:
    """SEG/segment_properties/info, named in the layer's info so the viewer shows the properties."""
    CloudFiles(cv.cloudpath).put(f"{PROPERTIES_DIR}/info", json.dumps(properties, allow_nan=False),
                                 content_type="application/json", compress=None, cache_control="no-cache")
    cv.info["segment_properties"] = PROPERTIES_DIR
    cv.commit_info()


def write_table_properties(seg_path: str, table_path: str, label: Optional[str] = None,
                           tags: Sequence[str] = (), numbers: Sequence[str] = (),
                           replace: bool = False) -> dict:
    """SEG's segment properties from TABLE's columns, merged with those SEG has (or replacing
    them); returns the object and property counts."""
    from igneous_like.tables import read_table
    from igneous_like.task_creation.common import open_layer
    cv = open_layer(seg_path, 0)
    if cv.layer_type != "segmentation":
        raise UserError(f"{cv.cloudpath} is an {cv.layer_type} layer; segment properties belong to a "
                        "segmentation")
    properties = table_properties(read_table(table_path), label, tags, numbers)
    old = None if replace else read_properties(cv.cloudpath, cv.info)
    if old is not None:
        properties = merged(old, properties)
    write_properties(cv, properties)
    inline = properties["inline"]
    return {"objects": len(inline["ids"]), "properties": [p["id"] for p in inline["properties"]]}


def layer_tags(properties: Optional[dict]) -> List[str]:
    """The tags of a segment properties info (none without a tags property)."""
    found = [p for p in ((properties or {}).get("inline") or {}).get("properties", []) if p["type"] == "tags"]
    return list(found[0]["tags"]) if found else []


def tag_colors(properties: Optional[dict], colors: dict, every_tag: bool = False) -> dict:
    """{segment id: colour} of the objects carrying a tag that has a colour: those of `colors`
    (tag -> colour, tags matched ignoring case, as Neuroglancer does) and, with `every_tag`, the
    rest from PALETTE by the tag's place in the layer's list. An object with several coloured tags
    takes the first of `colors` it carries, else its first in the list."""
    tags = layer_tags(properties)
    if not tags:
        return {}
    chosen = {tag.lower(): color for tag, color in colors.items()}
    colour_of = {k: chosen[tag.lower()] for k, tag in enumerate(tags) if tag.lower() in chosen}
    if every_tag:
        colour_of.update({k: PALETTE[k % len(PALETTE)] for k in range(len(tags)) if k not in colour_of})
    order = {tag: rank for rank, tag in enumerate(chosen)}
    rank = lambda k: (order.get(tags[k].lower(), len(order)), k)  # noqa: E731
    inline = properties["inline"]
    values = next(p["values"] for p in inline["properties"] if p["type"] == "tags")
    return {int(segment): colour_of[min(carried, key=rank)]
            for segment, carried in zip(inline["ids"], ([k for k in v if k in colour_of] for v in values))
            if carried}
