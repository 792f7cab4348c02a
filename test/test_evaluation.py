"""Evaluation scores, per-object errors and the ceiling, summed from contingency tasks whose boxes
cut objects, checked against whole-array references (scikit-learn, scikit-image, pandas).

The volume: a crop of the real segmentation as ground truth (about 1% of it 0), and a
segmentation made from it with merges (pairs of objects share a label), splits (every third object
cut by a plane), boundary noise (shifted one voxel), large uint64 labels, and one segment that
lies only where the ground truth is 0.
"""
import json

import fastremap
import numpy as np
import pandas as pd
import pytest
from conftest import read_mip, run_cli, write_layer
from skimage.metrics import adapted_rand_error, variation_of_information
from sklearn.metrics import adjusted_rand_score, fowlkes_mallows_score, rand_score

from igneous_like.queues import run_locally
from igneous_like.task_creation import create_contingency_tasks, evaluation_scores

CROP = (slice(256, 384), slice(192, 320), slice(256, 320))
ONLY_ON_ZERO = 2**40 + 7  # the segment where the ground truth is 0
TASKS = (48, 40, 24)  # boxes that cut objects (and the 64^3 chunks)


def perturbed(gt: np.ndarray) -> np.ndarray:
    """Merges, splits, boundary noise and large labels, made with plain numpy."""
    ids, index = np.unique(gt, return_inverse=True)
    index = index.reshape(gt.shape).astype(np.uint64)
    seg = index // 2 * 3  # objects 2k and 2k+1 merged
    x = np.arange(gt.shape[0]).reshape(-1, 1, 1)
    seg = np.where((index % 3 == 0) & (x >= 70), seg + 1, seg)  # every third object split
    seg = np.roll(seg * np.uint64(2654435761) % np.uint64(2**40) + np.uint64(1), 1, axis=0)
    return np.asfortranarray(np.where(gt == 0, np.uint64(ONLY_ON_ZERO), seg))


@pytest.fixture(scope="module")
def volume(real_seg, tmp_path_factory):
    """Arrays and file:// layers (64^3 chunks), with the contingency tasks run on them."""
    root = tmp_path_factory.mktemp("evaluation")
    gt = np.asfortranarray(real_seg[CROP])
    seg = perturbed(gt)
    layers = {"gt": write_layer(f"file://{root}/gt", gt, "segmentation"),
              "seg": write_layer(f"file://{root}/seg", seg, "segmentation")}
    run_locally(create_contingency_tasks(layers["seg"], layers["gt"], shape=TASKS), quiet=True)
    return {"gt": gt, "seg": seg, "layers": layers, "root": root}


def reference_scores(seg: np.ndarray, gt: np.ndarray, ignore_gt_zero: bool) -> dict:
    """scikit-image on whole arrays (its ignore_labels leaves out GT 0), scikit-learn on the voxels
    counted, the edit distance from numpy's distinct (seg, gt) pairs."""
    gt = fastremap.renumber(gt.ravel(), preserve_zero=True)[0].astype(np.int64)  # small labels: scikit-image
    seg = fastremap.renumber(seg.ravel())[0].astype(np.int64)                    # indexes a matrix by them
    ignore = (0,) if ignore_gt_zero else ()
    split, merge = variation_of_information(gt, seg, ignore_labels=ignore)  # bits, H(seg|gt) first
    error = adapted_rand_error(gt, seg, ignore_labels=ignore)[0]
    if ignore_gt_zero:
        seg, gt = seg[gt != 0], gt[gt != 0]
    pairs = np.unique(np.stack([seg, gt]), axis=1)
    edits = {"splits_needed": pairs.shape[1] - np.unique(seg).size,
             "merges_needed": pairs.shape[1] - np.unique(gt).size}
    return {"vi_split": split, "vi_merge": merge, "rand": rand_score(gt, seg),
            "ari": adjusted_rand_score(gt, seg), "fowlkes_mallows": fowlkes_mallows_score(gt, seg),
            "adapted_rand_error": error,
            **edits, "edit_distance": sum(edits.values())}


def assert_equal_scores(got: dict, want: dict) -> None:
    for key, value in want.items():
        if isinstance(value, (int, np.integer)):
            assert got[key] == value, (key, got[key], value)
        else:
            assert abs(got[key] - value) <= 1e-9, (key, got[key], value)


def ceiling_array(seg: np.ndarray, gt: np.ndarray, ignore_gt_zero: bool) -> np.ndarray:
    """Each segment replaced by the ground-truth label it overlaps most (ties to the lower), by pandas;
    segments only on ignored voxels become 0."""
    frame = pd.DataFrame({"seg": seg.ravel(), "truth": gt.ravel()})
    overlaps = frame[frame["truth"] != 0] if ignore_gt_zero else frame
    sizes = overlaps.groupby(["seg", "truth"]).size().reset_index(name="n")
    best = sizes.sort_values(["seg", "n", "truth"], ascending=[True, False, True]).drop_duplicates("seg")
    mapped = frame.seg.map(best.set_index("seg")["truth"]).fillna(0).to_numpy()
    return mapped.astype(gt.dtype).reshape(gt.shape)


def reference_objects(seg: np.ndarray, gt: np.ndarray, ignore_gt_zero: bool) -> pd.DataFrame:
    """Per object and segment: voxels, pieces and share of VI (bits), by pandas groupby."""
    frame = pd.DataFrame({"seg": seg.ravel(), "truth": gt.ravel()})
    frame = frame[frame["truth"] != 0] if ignore_gt_zero else frame
    joint = frame.groupby(["seg", "truth"]).size().rename("n").reset_index()
    rows = []
    for kind, side in (("ground truth", "truth"), ("segment", "seg")):
        size = joint.groupby(side).n.transform("sum")
        joint["share"] = -joint.n * np.log2(joint.n / size) / len(frame)
        grouped = joint.groupby(side).agg(voxels=("n", "sum"), pieces=("n", "size"), vi=("share", "sum"))
        rows.append(grouped.reset_index().rename(columns={side: "label"}).assign(kind=kind))
    return pd.concat(rows).set_index(["kind", "label"]).sort_index()


@pytest.mark.parametrize("ignore_gt_zero", [False, True])
def test_scores_table_and_ceiling_equal_whole_array_references(volume, ignore_gt_zero, tmp_path):
    seg, gt, layers = volume["seg"], volume["gt"], volume["layers"]
    table = f"{tmp_path}/errors.csv"
    got = evaluation_scores(layers["seg"], layers["gt"], clean=False, ignore_gt_zero=ignore_gt_zero,
                            table=table)
    want = reference_scores(seg, gt, ignore_gt_zero)
    assert want["splits_needed"] > 50 and want["merges_needed"] > 50 and want["ari"] < 0.9
    assert_equal_scores(got, want)
    ceiling = ceiling_array(seg, gt, ignore_gt_zero)
    assert_equal_scores(got["ceiling"], reference_scores(ceiling, gt, ignore_gt_zero))
    assert got["ceiling"]["vi_split"] < got["vi_split"] and got["ceiling"]["vi_merge"] >= got["vi_merge"]
    written = pd.read_csv(table)
    assert written.vi.is_monotonic_decreasing and written.vi.iloc[0] > 0.01
    written = written.set_index(["kind", "label"]).sort_index()
    reference = reference_objects(seg, gt, ignore_gt_zero)
    assert written.index.equals(reference.index)
    assert (written.voxels == reference.voxels).all() and (written.pieces == reference.pieces).all()
    assert np.allclose(written.vi, reference.vi, rtol=0, atol=1e-12)
    assert (0 in written.loc["ground truth"].index) == (not ignore_gt_zero)


def test_cli_writes_scores_table_and_ceiling_layer_and_cleans(volume):
    """Another task split through the CLI, GT 0 ignored: the same references, the ceiling as a layer
    (the segment only on GT 0 becomes 0), and no evaluation files left."""
    crop = (slice(16, 112), slice(0, 96), slice(8, 56))
    seg, gt, root = volume["seg"][crop], volume["gt"][crop], volume["root"]
    layers = [write_layer(f"file://{root}/cli_{name}", np.asfortranarray(data), "segmentation",
                          chunk=(32, 32, 32)) for name, data in (("seg", seg), ("gt", gt))]
    dest, table = f"file://{root}/cli_ceiling", root / "cli_errors.parquet"
    result = run_cli("evaluate", *layers, "--json", "--ignore-gt-zero", "--shape", "40,56,20",
                     "--table", table, "--ceiling", dest)
    got = json.loads(result.stdout)
    assert_equal_scores(got, reference_scores(seg, gt, True))
    ceiling = ceiling_array(seg, gt, True)
    assert np.array_equal(read_mip(dest, 0), ceiling) and (ceiling[gt == 0] == 0).all()
    assert_equal_scores(got["ceiling"], reference_scores(ceiling, gt, True))
    written = pd.read_parquet(table).set_index(["kind", "label"]).sort_index()
    assert (written.pieces == reference_objects(seg, gt, True).pieces).all()
    assert not list((root / "cli_seg").rglob("evaluation/*/*"))


def test_mistakes_are_one_line_exit_2(make_layer, tmp_path):
    labels = np.arange(8, dtype=np.uint32).reshape(2, 2, 2).repeat(8, 0).repeat(8, 1).repeat(8, 2)
    seg = make_layer("seg", labels, "segmentation", chunk=(16, 16, 16))
    zero = make_layer("zero", np.zeros_like(labels), "segmentation", chunk=(16, 16, 16))
    for args, message in (
        (("--table", tmp_path / "errors.txt"), "must end with .csv, .tsv, .parquet or .xlsx"),
        (("--ceiling", seg), "the destination is the segmentation; give --ceiling a new path"),
        (("--ceiling", zero), "the destination is the ground truth"),
        (("--ignore-gt-zero",), f"the ground truth {zero} is 0 everywhere"),
    ):
        result = run_cli("--quiet", "evaluate", seg, zero, *args, check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr
    assert not list((tmp_path / "seg").rglob("evaluation/*/*")) and not (tmp_path / "errors.txt").exists()
