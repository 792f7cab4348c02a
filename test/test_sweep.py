"""`evaluate --thresholds`: a sweep of agglomeration thresholds reads the region graph once and
gives, at each threshold, exactly the scores of a separate merge, relabel and evaluate; its
plot shows every threshold's VI split against VI merge."""
import json

import numpy as np
import pytest
from conftest import run_cli, write_layer
from PIL import Image
from test_agglomerate import synthetic

from igneous_like import plots
from igneous_like.pipeline import run_here, verbs
from igneous_like.queues import run_locally
from igneous_like.task_creation import agglomerate as agglomeration_steps
from igneous_like.task_creation import (
    agglomerate_fragments,
    create_agglomeration_relabel_tasks,
    create_contingency_tasks,
    evaluation_scores,
    threshold_sweep,
)

THRESHOLDS = [0.2, 0.35, 0.5, 0.65]
SHAPE = (64, 64, 48)


@pytest.fixture(scope="module")
def layers(real_seg, tmp_path_factory):
    """Ground truth, boundary map and fragments of a 128 x 128 x 48 crop of the real data."""
    root = tmp_path_factory.mktemp("sweep")
    arrays = dict(zip(("gt", "prob", "frag"), synthetic(real_seg[:128, :128, :48], 4)))
    return {kind: write_layer(f"file://{root}/{kind}", data, "image" if kind == "prob" else "segmentation",
                              chunk=(32, 32, 16)) for kind, data in arrays.items()}


def test_sweep_equals_separate_evaluations(layers, monkeypatch, tmp_path):
    frag, gt = layers["frag"], layers["gt"]
    loads, load = [], agglomeration_steps.load_region_graph
    monkeypatch.setattr(agglomeration_steps, "load_region_graph", lambda *a: loads.append(a) or load(*a))
    stages = verbs.threshold_sweep(frag, gt, THRESHOLDS, boundary=layers["prob"], shape=SHAPE,
                                   plot=str(tmp_path / "sweep.png"))
    result = run_here(stages, quiet=True)[-1]
    assert len(loads) == 1 and [row["threshold"] for row in result["sweep"]] == THRESHOLDS
    for row in result["sweep"]:
        agglomerate_fragments(frag, "mean", row["threshold"])
        dest = f"{frag}_{row['threshold']}"
        run_locally(create_agglomeration_relabel_tasks(frag, dest, shape=SHAPE), quiet=True)
        run_locally(create_contingency_tasks(dest, gt, shape=SHAPE), quiet=True)
        separate = evaluation_scores(dest, gt)
        assert {key: row[key] for key in separate if key != "ceiling"} == \
            {key: value for key, value in separate.items() if key != "ceiling"}, row["threshold"]
    splits, merges = [[row[key] for row in result["sweep"]] for key in ("vi_split", "vi_merge")]
    segments = [row["segments"] for row in result["sweep"]]
    assert splits == sorted(splits, reverse=True) and merges == sorted(merges) and splits[0] > splits[-1]
    assert segments == sorted(segments, reverse=True) and segments[0] > segments[-1]

    picture = np.asarray(Image.open(tmp_path / "sweep.png").convert("L"))
    assert picture.shape == (550, 700) and (picture < 128).mean() > 0.005
    ax = plots.figure(plots.sweep(result["sweep"])).axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(THRESHOLDS)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("VI merge (bits)", "VI split (bits)")
    assert [text.get_text() for text in ax.texts] == [f"{t:g}" for t in THRESHOLDS]
    assert ax.lines[0].get_xydata().tolist() == [[m, s] for m, s in zip(merges, splits)]


def test_cli_sweep_json_and_html_plot(layers, tmp_path):
    """Through the command (the graph of the test above reused): the same numbers as the API."""
    frag, gt = layers["frag"], layers["gt"]
    out = run_cli("evaluate", frag, gt, "--thresholds", "0.5,0.2", "--shape", "64,64,48", "--json",
                  "--plot", tmp_path / "sweep.html", "--boundary", layers["prob"]).stdout
    got = json.loads(out)
    run_locally(create_contingency_tasks(frag, gt, shape=SHAPE), quiet=True)
    assert got == threshold_sweep(frag, gt, [0.2, 0.5])
    page = (tmp_path / "sweep.html").read_text()
    assert "http" not in page and page.count("<circle") == 2 and "<polyline" in page
    for row in got["sweep"]:
        assert f'data-x="{row["vi_merge"]!r}" data-y="{row["vi_split"]!r}"' in page


def test_sweep_of_one_channel_of_a_multichannel_map(layers, real_seg, tmp_path):
    """--channel N sweeps what `agglomerate merge --channel N` makes: over a two-channel map whose
    channel 1 is the boundary map of the tests above, the scores equal their one-channel sweep;
    channel 0 (uniform grey) gives others."""
    frag_array, prob = synthetic(real_seg[:128, :128, :48], 4)[2:0:-1]
    frag = write_layer(f"file://{tmp_path}/frag", frag_array, "segmentation", chunk=(32, 32, 16))
    two = write_layer(f"file://{tmp_path}/two", np.stack([np.full_like(prob, 128), prob], axis=-1), "image",
                      chunk=(32, 32, 16))
    out = run_cli("evaluate", frag, layers["gt"], "--thresholds", "0.35,0.5", "--boundary", two,
                  "--channel", 1, "--shape", "64,64,48", "--json").stdout
    one = run_here(verbs.threshold_sweep(layers["frag"], layers["gt"], [0.35, 0.5], boundary=layers["prob"],
                                         shape=SHAPE), quiet=True)[-1]
    assert json.loads(out) == one
    run_locally(create_contingency_tasks(frag, layers["gt"], shape=SHAPE), quiet=True)
    assert threshold_sweep(frag, layers["gt"], [0.35, 0.5], channel=0)["sweep"] != one["sweep"]


@pytest.mark.parametrize("options, message", [
    (["--plot", "{tmp}/p.png"], "need --thresholds"),
    (["--thresholds", "0.3", "--table", "{tmp}/t.csv"], "leave them out of a sweep"),
    (["--thresholds", "0.3"], "no region graph"),
    (["--thresholds", "0.3", "--boundary", "{prob}", "--plot", "{tmp}/p.svg"], "written as .png or .html"),
    (["--thresholds", "0.3", "--policy", "learned", "--boundary", "{prob}"], "learned needs --model"),
    (["--thresholds", "0.3", "--features", "basic", "--boundary", "{prob}"], "--features is for --policy"),
    (["--channel", "1"], "need --thresholds"),
])
def test_mistakes_are_one_line_exit_2(make_layer, tmp_path, options, message):
    labels = np.arange(16 * 16 * 8, dtype=np.uint32).reshape(16, 16, 8)
    seg, gt = make_layer("seg", labels, "segmentation"), make_layer("gt", labels // 64, "segmentation")
    prob = make_layer("prob", np.zeros(labels.shape, np.uint8), "image")
    result = run_cli("evaluate", seg, gt, *[o.format(tmp=tmp_path, prob=prob) for o in options], check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("p.*")) and not list(tmp_path.glob("seg/*/agglomeration"))
