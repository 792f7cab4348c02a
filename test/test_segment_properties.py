"""`table properties`: segment properties written from table columns, read back by a reader
written here from Neuroglancer's format description (segment_properties.md of
google/neuroglancer), which also checks the format's rules; merged into what a layer has, or
replacing it. The browser test (test_view.py) searches them by tag in Neuroglancer itself."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, write_layer

from igneous_like import tables
from igneous_like.errors import UserError
from igneous_like.segment_properties import write_table_properties

NUMBER_TYPES = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"}


def read_segment_properties(layer) -> dict:
    """{segment id: {"label": text, "tags": {tag, ...}, NUMBER: value}} from LAYER's info and the
    properties it names, asserting what the format requires."""
    info = json.loads((layer / json.loads((layer / "info").read_text())["segment_properties"] / "info")
                      .read_text())
    assert info["@type"] == "neuroglancer_segment_properties"
    ids, props = info["inline"]["ids"], info["inline"]["properties"]
    assert all(isinstance(i, str) and i.isdigit() for i in ids) and len(set(ids)) == len(ids)
    assert len({p["id"] for p in props}) == len(props)
    for once in ("label", "description", "tags"):
        assert [p["type"] for p in props].count(once) <= 1
    objects = {int(i): {} for i in ids}
    for prop in props:
        assert len(prop["values"]) == len(ids) and ("tags" in prop) == (prop["type"] == "tags")
        for segment, value in zip(objects, prop["values"]):
            objects[segment].update(read_value(prop, value))
    return objects


def read_value(prop: dict, value) -> dict:
    if prop["type"] in ("label", "description", "string"):
        assert isinstance(value, str)
        return {prop["type"] if prop["type"] != "string" else prop["id"]: value}
    if prop["type"] == "tags":
        tags = prop["tags"]
        assert len({t.lower() for t in tags}) == len(tags)
        assert not [t for t in tags if " " in t or t.startswith("#")]
        assert len(prop.get("tag_descriptions", tags)) == len(tags)
        assert value == sorted(set(value)) and all(isinstance(k, int) and 0 <= k < len(tags) for k in value)
        return {"tags": {tags[k] for k in value}}
    assert prop["type"] == "number" and prop["data_type"] in NUMBER_TYPES
    kind = np.dtype(prop["data_type"])
    if kind.kind in "iu":
        assert isinstance(value, int) and np.iinfo(kind).min <= value <= np.iinfo(kind).max
    return {prop["id"]: value}


@pytest.fixture
def cells():
    """Six objects with a name, a class (one unclassified), a size category and a cluster."""
    table = pd.DataFrame({
        "label": [3, 7, 12, 40, 41, 900],
        "name": ["cell a", "cell b", "c", "d", "e", "long axon"],
        "prediction": ["neuron", "glia", "neuron", None, "glia", "Neuron"],
        "volume": [1.5e6, 2.5e6, 9.0e6, 0.2e6, 4.0e6, 7.5e5],
        "voxels": [10, 20, 90, 2, 40, 7],
        "cluster": [0, 1, 0, -1, 1, 2]})
    return tables.threshold(table, "volume", [1e6, 3e6], ["small", "medium", "large"], "size")


def test_labels_tags_and_numbers_merge_into_a_layer(cells, tmp_path):
    seg = tmp_path / "seg"
    write_layer(f"file://{seg}", np.zeros((8, 8, 8), np.uint32), "segmentation")
    cells[["label", "volume", "voxels"]].to_csv(tmp_path / "measured.csv", index=False)
    run_cli("table", "properties", f"file://{seg}", tmp_path / "measured.csv", "--numbers", "volume,voxels")
    cells.to_parquet(tmp_path / "classes.parquet", index=False)
    run_cli("table", "properties", f"file://{seg}", tmp_path / "classes.parquet", "--label", "name",
            "--tags", "prediction,size,cluster")
    objects = read_segment_properties(seg)
    assert sorted(objects) == sorted(cells["label"])
    for row in cells.itertuples():
        found = objects[row.label]
        kind = {row.prediction.lower()} if isinstance(row.prediction, str) else set()
        tags = {row.size, f"cluster_{row.cluster}"} | kind
        assert {tag.lower() for tag in found["tags"]} == tags  # Neuroglancer matches tags ignoring case
        assert found["label"] == row.name and found["voxels"] == row.voxels
        assert found["volume"] == pytest.approx(row.volume, rel=1e-7)  # float32
    neurons = {label for label, found in objects.items() if "neuron" in {t.lower() for t in found["tags"]}}
    assert neurons == {3, 12, 900}

    more = cells.iloc[:2].assign(label=[3, 1000])
    more.to_csv(tmp_path / "more.csv", index=False)
    result = run_cli("table", "properties", f"file://{seg}", tmp_path / "more.csv", "--tags", "size",
                     check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "number 'volume' has no value for 1 objects (first: 1000)" in result.stderr
    run_cli("table", "properties", f"file://{seg}", tmp_path / "more.csv", "--tags", "size", "--replace")
    assert read_segment_properties(seg) == {3: {"tags": {"medium"}}, 1000: {"tags": {"medium"}}}


def test_label_only_objects_join_with_blank_labels(cells, tmp_path):
    """A merge over different objects is fine without numbers: the others get no label or tags."""
    seg = tmp_path / "seg"
    write_layer(f"file://{seg}", np.zeros((8, 8, 8), np.uint32), "segmentation")
    cells.iloc[:3].to_csv(tmp_path / "first.csv", index=False)
    cells.iloc[2:].to_csv(tmp_path / "second.csv", index=False)
    run_cli("table", "properties", f"file://{seg}", tmp_path / "first.csv", "--label", "name")
    run_cli("table", "properties", f"file://{seg}", tmp_path / "second.csv", "--tags", "size")
    objects = read_segment_properties(seg)
    assert objects[3] == {"label": "cell a", "tags": set()}
    assert objects[900] == {"label": "", "tags": {"small"}}


@pytest.mark.parametrize("options, message", [
    ({}, "name at least one column"),
    (dict(numbers=["prediction"]), "column prediction does not hold numbers"),
    (dict(numbers=["gap"]), "column gap has missing or infinite values"),
    (dict(tags=["kind"]), "the table has no column kind"),
    (dict(label="name", tags=["name"]), "column name is given twice"),
])
def test_mistakes_are_user_errors(cells, tmp_path, options, message):
    seg = tmp_path / "seg"
    write_layer(f"file://{seg}", np.zeros((8, 8, 8), np.uint32), "segmentation")
    cells.assign(gap=[1.0, np.nan, 2, 3, 4, 5]).to_csv(tmp_path / "cells.csv", index=False)
    with pytest.raises(UserError, match=message):
        write_table_properties(f"file://{seg}", str(tmp_path / "cells.csv"), **options)
    assert not (seg / "segment_properties").exists()


def test_tag_colours_follow_the_order_asked():
    """Objects with several tags: the first of the colours asked that they carry (tags matched
    ignoring case), else with every tag their first tag's palette colour; untagged ones none."""
    from igneous_like.segment_properties import PALETTE, table_properties, tag_colors
    table = pd.DataFrame({"label": [1, 2, 3, 4], "kind": ["Neuron", "glia", "neuron", None],
                          "region": ["cortex", "cortex", "Glia", None]})
    properties = table_properties(table, tags=["kind", "region"])
    assert tag_colors(properties, {"GLIA": "#0000ff", "neuron": "#ff0000"}) == {
        1: "#ff0000", 2: "#0000ff", 3: "#0000ff"}  # 3 is a neuron in the glia region
    assert tag_colors(properties, {"cortex": "#00ff00"}) == {1: "#00ff00", 2: "#00ff00"}
    assert tag_colors(properties, {"cortex": "#00ff00"}, every_tag=True) == {  # cortex, glia, Neuron
        1: "#00ff00", 2: "#00ff00", 3: PALETTE[1]}
    assert tag_colors(table_properties(table, label="kind"), {}, every_tag=True) == {}
