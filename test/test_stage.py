"""The stage kernel on a real file:// directory: records read back equal, a missing part is named
in one line, parts gather in order across batches, clean deletes what it says; and a task's
write and read boxes."""
import json
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import pytest
from cloudvolume.lib import Bbox

from igneous_like import stage
from igneous_like.errors import UserError
from igneous_like.grid import TaskBox
from igneous_like.stage import Record, WorkDir


@dataclass(frozen=True)
class Example(Record):
    shape: Tuple[int, int, int]
    bounds: Tuple[Tuple[int, ...], Tuple[int, ...]]
    options: dict
    image: Optional[str] = None


@pytest.fixture
def work(tmp_path):
    return WorkDir(f"file://{tmp_path}/layer/8_8_40/stage")


def test_record_reads_back_equal(work):
    record = Example((64, 64, 32), ((0, 0, 0), (100, 90, 80)), {"labels": [1, 2]}, "file:///x")
    work.save("record.json", record)
    assert json.loads((work.files.get("record.json")))["shape"] == [64, 64, 32]
    assert work.load("record.json", Example) == record
    assert work.load("absent.json", Example) is None
    with pytest.raises(UserError, match="^run the first step$"):
        work.require("absent.json", "run the first step", Example)


def test_missing_parts_are_named(work):
    names = [f"parts/{name}" for name in "abcde"]
    for name in names[:3]:
        work.put_part(name, b"x")
    work.put_part("parts-not/d", b"x")
    for prefix in (None, "parts/"):
        assert work.missing(names, prefix) == ["parts/d", "parts/e"]
        with pytest.raises(UserError) as err:
            work.check_complete(names, "widget tasks", prefix=prefix)
        assert str(err.value) == (f"2 of 5 widget tasks have not finished (the first: {work.url}/parts/d); "
                                  "run them (execute the queue) first")
    work.check_complete(names[:3], "widget tasks", prefix="parts/")


def test_gather_in_order_across_batches(work, monkeypatch):
    monkeypatch.setattr(stage, "BATCH", 2)
    names = [f"p/{k}.npz" for k in range(5)]
    for k, name in enumerate(reversed(names)):
        work.put_arrays(name, value=np.arange(4 - k))
    gathered = list(work.gather_arrays(names, "widget tasks"))
    assert [part["value"].tolist() for part in gathered] == [list(range(k)) for k in range(5)]
    work.files.delete(["p/3.npz", "p/1.npz"])
    with pytest.raises(UserError, match=r"^2 of 5 widget tasks have not finished \(the first: .*/p/1.npz\)"):
        list(work.gather(names, "widget tasks"))


def test_clean(work):
    for name in ("a.frags", "b.frags", "a.spatial", "sub/c.frags", "record.json"):
        work.put_part(name, b"x")
    assert work.clean(suffix=".frags") == 3
    assert sorted(work.files.list()) == ["a.spatial", "record.json"]
    assert work.clean() == 2 and list(work.files.list()) == []


def test_task_box():
    volume = Bbox((0, 0, 0), (100, 100, 50))
    inner = TaskBox.at((10, 20, 0), (30, 30, 30), volume, low=1, high=1)
    assert inner.write == Bbox((10, 20, 0), (40, 50, 30))
    assert inner.read == Bbox((9, 19, 0), (41, 51, 31))
    assert inner.padding == [(0, 0), (0, 0), (1, 0)]
    assert np.arange(32 * 32 * 31).reshape(32, 32, 31)[inner.own].shape == (30, 30, 30)
    assert inner.own == (slice(1, 31), slice(1, 31), slice(0, 30))
    edge = TaskBox.at((70, 70, 30), (30, 30, 20), volume, high=1)
    assert edge.read == edge.write and edge.padding == [(0, 1)] * 3
    assert TaskBox.at((5, 5, 5), (2, 2, 2)).read == Bbox((5, 5, 5), (7, 7, 7))
