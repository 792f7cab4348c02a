"""Agglomeration and evaluation, checked against independent whole-array computations.

The must-show volume: crops of the real segmentation as ground truth, a boundary map made of
its label edges (each object's membrane with its own strength, dark blobs inside objects,
blur and noise; uint8), and fragments that over-segment every object (each object cut by a
coarse Voronoi partition), so fragments never cross a true boundary.
"""
import json

import cc3d
import fastremap
import numpy as np
import pytest
from conftest import read_mip, run_cli, write_layer
from scipy import ndimage
from skimage.segmentation import watershed
from sklearn.metrics import adjusted_rand_score

from igneous_like import active_learning, agglomeration, evaluation, label_table, merge_model, region_graph
from igneous_like.queues import run_locally
from igneous_like.task_creation import (
    agglomerate_fragments,
    create_agglomeration_relabel_tasks,
    create_contingency_tasks,
    create_region_graph_tasks,
    create_watershed_tasks,
    evaluation_scores,
    load_region_graph,
    train_merge_model,
)

CROP_A = (slice(0, 256), slice(0, 256), slice(0, 96))  # 128^3 tasks: 4 (2x2x1); 256^3: 1
CROP_B = (slice(256, 448), slice(256, 448), slice(256, 352))  # held apart: training only
THRESHOLDS = np.round(np.arange(0.2, 0.75, 0.05), 2)
ACTIVE_TRAIN = (slice(256, 384), slice(256, 384), slice(256, 320))  # active learning: train here,
ACTIVE_APPLY = (slice(0, 128), slice(0, 128), slice(256, 320))  # merge here (seeds 2 and 1)


def label_edges(gt: np.ndarray) -> np.ndarray:
    """Voxels with a 6-neighbour of another label."""
    edges = np.zeros(gt.shape, bool)
    for axis in range(3):
        low = tuple(slice(0, -1) if i == axis else slice(None) for i in range(3))
        high = tuple(slice(1, None) if i == axis else slice(None) for i in range(3))
        differ = gt[low] != gt[high]
        edges[low] |= differ
        edges[high] |= differ
    return edges


def upsample(coarse: np.ndarray, factor: int, shape) -> np.ndarray:
    out = coarse.repeat(factor, 0).repeat(factor, 1).repeat(factor, 2)
    return out[:shape[0], :shape[1], :shape[2]]


def synthetic(seg: np.ndarray, seed: int):
    """(ground truth, uint8 boundary map, fragments) from a crop of the real segmentation."""
    rng = np.random.default_rng(seed)
    gt = fastremap.renumber(np.asfortranarray(seg))[0].astype(np.uint32)
    membrane = label_edges(gt) * rng.uniform(0.25, 1.0, int(gt.max()) + 1)[gt]
    blobs = np.zeros(tuple(-(-d // 2) for d in gt.shape), bool)
    blobs.flat[rng.integers(0, blobs.size, gt.size // 4000)] = True
    blobs = upsample(ndimage.distance_transform_edt(~blobs) <= 1.3, 2, gt.shape)
    raw = np.maximum(membrane, 0.8 * blobs).astype(np.float32)
    prob = ndimage.gaussian_filter(raw, 0.8) * 1.6 + rng.normal(0, 0.08, gt.shape)
    prob = np.clip(prob * 255, 0, 255).astype(np.uint8)
    coarse = tuple(-(-d // 4) for d in gt.shape)
    seeds = np.zeros(coarse, bool)
    seeds.flat[rng.integers(0, seeds.size, gt.size // 20**3)] = True
    nearest = ndimage.distance_transform_edt(~seeds, return_indices=True)[1]
    cell = upsample(np.ravel_multi_index(tuple(nearest), coarse), 4, gt.shape).astype(np.uint64)
    key = np.where(gt == 0, 0, gt.astype(np.uint64) * np.uint64(gt.size) + cell)
    frag = fastremap.renumber(cc3d.connected_components(key, connectivity=6, out_dtype=np.uint64))[0]
    return (np.asfortranarray(gt), np.asfortranarray(prob), np.asfortranarray(frag.astype(np.uint32)))


@pytest.fixture(scope="module")
def crops(real_seg, tmp_path_factory):
    """name -> dict of arrays and file:// layers (gt, prob, frag) for crops A and B."""
    root = tmp_path_factory.mktemp("agglomerate")
    out = {}
    for name, crop, seed in (("A", CROP_A, 1), ("B", CROP_B, 2)):
        arrays = dict(zip(("gt", "prob", "frag"), synthetic(real_seg[crop], seed)))
        layers = {kind: write_layer(f"file://{root}/{name}_{kind}", data, "image" if kind == "prob" else
                                    "segmentation", chunk=(64, 64, 64)) for kind, data in arrays.items()}
        out[name] = {"arrays": arrays, "layers": layers, "root": root}
    return out


def reference_scores(seg: np.ndarray, gt: np.ndarray) -> dict:
    """VI from a direct entropy computation (bits) and sklearn's ARI, every voxel counted."""
    seg, gt = seg.ravel().astype(np.uint64), gt.ravel().astype(np.uint64)
    assert int(seg.max() + 1) * int(gt.max() + 1) < 2**63
    joint = np.unique(seg * (gt.max() + np.uint64(1)) + gt, return_counts=True)[1]
    entropy = lambda counts: -np.sum(counts / seg.size * np.log2(counts / seg.size))
    h_joint = entropy(joint)
    h_seg = entropy(np.unique(seg, return_counts=True)[1])
    h_gt = entropy(np.unique(gt, return_counts=True)[1])
    return {"vi_split": h_joint - h_gt, "vi_merge": h_joint - h_seg, "ari": adjusted_rand_score(gt, seg)}


def assert_scores_close(got: dict, want: dict) -> None:
    for key in ("vi_split", "vi_merge", "ari"):
        assert abs(got[key] - want[key]) <= 1e-9, (key, got[key], want[key])


def mapped_scores(table, fragments, segments) -> dict:
    """Scores of the fragments relabeled by a mapping, from the fragments' contingency table."""
    frag_ids, gt_ids, counts = table
    position = np.minimum(np.searchsorted(fragments, frag_ids), fragments.size - 1)
    seg_ids = np.where(fragments[position] == frag_ids, segments[position], frag_ids)
    return evaluation.scores(*evaluation.merge_tables(seg_ids, gt_ids, counts))


def total_vi(scores: dict) -> float:
    return scores["vi_split"] + scores["vi_merge"]


def graph_contacts(labels: np.ndarray, boundary: np.ndarray):
    """Every contact (a < b, level), listed axis by axis with plain numpy: the reference."""
    levels = boundary.astype(np.int64) * 257 if boundary.dtype == np.uint8 else \
        np.rint(boundary.astype(np.float64) * 65535).astype(np.int64)
    rows = []
    for axis in range(3):
        x, y = np.moveaxis(labels, axis, 0), np.moveaxis(levels, axis, 0)
        a, b, qa, qb = x[:-1].ravel(), x[1:].ravel(), y[:-1].ravel(), y[1:].ravel()
        keep = (a != b) & (a != 0) & (b != 0)
        rows.append(np.stack([np.minimum(a, b)[keep], np.maximum(a, b)[keep], np.maximum(qa, qb)[keep]]))
    return np.concatenate(rows, axis=1).astype(np.int64)


@pytest.mark.parametrize("kind", ["uint8", "float32"])
def test_graph_statistics_equal_reference_and_do_not_depend_on_tasks(real_seg, kind):
    rng = np.random.default_rng(5)
    labels = np.asfortranarray(real_seg[100:200, 150:240, 30:100])
    boundary = rng.integers(0, 256, labels.shape).astype(np.uint8) if kind == "uint8" else \
        rng.random(labels.shape, dtype=np.float32)
    whole = region_graph.block_graph(labels, boundary, labels.shape)
    parts = []
    for x in range(0, 100, 64):
        for y in range(0, 90, 64):
            for z in range(0, 70, 64):
                own = (min(64, 100 - x), min(64, 90 - y), min(64, 70 - z))
                read = (slice(x, x + own[0] + 1), slice(y, y + own[1] + 1), slice(z, z + own[2] + 1))
                parts.append(region_graph.block_graph(labels[read], boundary[read], own, (x, y, z)))
    assert region_graph.merge_graphs(parts[::-1]).equals(whole)
    a, b, q = graph_contacts(labels, boundary)
    keys, inverse, counts = np.unique(np.stack([a, b]), axis=1, return_inverse=True, return_counts=True)
    assert np.array_equal(whole.a, keys[0]) and np.array_equal(whole.b, keys[1])
    assert np.array_equal(whole.count, counts)
    assert np.array_equal(whole.total[:, 0], np.bincount(inverse, q))
    assert np.array_equal(whole.squares[:, 0], np.bincount(inverse, q.astype(float) ** 2))
    low, high = np.full(counts.size, 65535), np.zeros(counts.size, np.int64)
    np.minimum.at(low, inverse, q)
    np.maximum.at(high, inverse, q)
    assert np.array_equal(whole.low[:, 0], low) and np.array_equal(whole.high[:, 0], high)
    dense = np.zeros((keys.shape[1], 256), np.int64)
    np.add.at(dense, (inverse, q // 257), 1)
    assert np.array_equal(dense[whole.hist_edge, whole.hist_bin], whole.hist_count)
    assert dense.sum() == whole.hist_count.sum()
    nodes, sizes = np.unique(labels[labels != 0], return_counts=True)
    assert np.array_equal(whole.nodes, nodes) and np.array_equal(whole.sizes, sizes)


def naive_agglomeration(contacts: np.ndarray, nodes: np.ndarray, threshold: float, policy: str) -> dict:
    """Merge the pair of regions whose contacts' mean (or median bin) is lowest, recomputed from
    the raw contacts every time, until none is below the threshold: fragment -> segment."""
    region = {int(n): int(n) for n in nodes}
    while True:
        a = np.array([region[int(v)] for v in contacts[0]])
        b = np.array([region[int(v)] for v in contacts[1]])
        keep = a != b
        pairs = {}
        for x, y, q in zip(np.minimum(a, b)[keep], np.maximum(a, b)[keep], contacts[2][keep]):
            pairs.setdefault((x, y), []).append(q)
        if not pairs:
            break
        value = {pair: (np.mean(qs) / 65535 if policy == "mean" else
                        np.sort(np.array(qs) // 257)[int(np.ceil(0.5 * len(qs))) - 1] / 255)
                 for pair, qs in pairs.items()}
        (x, y), best = min(value.items(), key=lambda item: (item[1], item[0]))
        if best >= threshold:
            break
        for fragment, current in region.items():
            if current in (x, y):
                region[fragment] = min(x, y)
    return region


@pytest.mark.parametrize("policy", ["mean", "median"])
def test_merging_equals_naive_recomputation(policy):
    rng = np.random.default_rng(1)
    labels = np.asfortranarray(upsample(rng.integers(1, 60, (6, 6, 3)), 4, (24, 24, 12)))
    boundary = rng.integers(0, 256, labels.shape).astype(np.uint8)
    graph = region_graph.block_graph(labels, boundary, labels.shape)
    assert 20 < graph.nodes.size and graph.num_edges > 30
    for threshold in (0.55, 0.7):
        fragments, segments = agglomeration.agglomerate(graph, agglomeration.make_policy(policy), threshold)
        naive = naive_agglomeration(graph_contacts(labels, boundary), graph.nodes, threshold, policy)
        assert dict(zip(fragments.tolist(), segments.tolist())) == naive
        assert np.unique(segments).size < fragments.size


def test_model_file_predicts_as_the_forest():
    from sklearn.ensemble import RandomForestClassifier
    rng = np.random.default_rng(0)
    x = rng.random((400, len(merge_model.FEATURES)))
    y = (x[:, 0] + 0.3 * rng.random(400) > 0.6).astype(int)
    forest = RandomForestClassifier(n_estimators=7, random_state=0).fit(x, y)
    model = merge_model.MergeModel.from_bytes(merge_model.MergeModel.from_forest(forest).to_bytes())
    assert np.array_equal(model.predict(x), forest.predict_proba(x)[:, 1])
    with pytest.raises(ValueError, match="merge model"):
        merge_model.MergeModel.from_bytes(b"not a model")
    old = {"features": list(merge_model.FEATURES), "quantiles": list(merge_model.QUANTILES)}
    pack = lambda manifest: model.forest.to_bytes(merge_model.FORMAT, merge_model.VERSION, manifest)
    before = merge_model.MergeModel.from_bytes(pack(old))
    assert (before.family, before.channels) == ("basic", 1)  # a file from before the families
    for claim in ({"family": "extended"}, {"channels": 3}):
        with pytest.raises(ValueError, match="other features"):
            merge_model.MergeModel.from_bytes(pack(dict(old, **claim)))


def run_graph(frag: str, prob: str, shape) -> region_graph.RegionGraph:
    run_locally(create_region_graph_tasks(frag, prob, shape=shape), quiet=True)
    return load_region_graph(frag)


@pytest.fixture(scope="module")
def mean_result(crops):
    """Crop A: graphs from 256^3 and then 128^3 tasks (which stay on disk), and the mean
    policy's sweep of thresholds."""
    layers, arrays = crops["A"]["layers"], crops["A"]["arrays"]
    graphs = {size: run_graph(layers["frag"], layers["prob"], (size,) * 3) for size in (256, 128)}
    table = evaluation.contingency(arrays["frag"], arrays["gt"])
    sweep = {float(t): mapped_scores(table, *agglomeration.agglomerate(
        graphs[256], agglomeration.make_policy("mean"), t)) for t in THRESHOLDS}
    best = min(sweep, key=lambda t: total_vi(sweep[t]))
    return {"graphs": graphs, "table": table, "sweep": sweep, "best": best}


def test_mean_policy_halves_vi_and_task_shapes_agree(crops, mean_result):
    layers, arrays = crops["A"]["layers"], crops["A"]["arrays"]
    graphs, best = mean_result["graphs"], mean_result["best"]
    assert graphs[128].equals(graphs[256])
    mean = agglomeration.make_policy("mean")
    mappings = [agglomeration.agglomerate(graphs[size], mean, best) for size in (128, 256)]
    assert all(np.array_equal(x, y) for x, y in zip(*mappings))
    fragments_vi = total_vi(evaluation.scores(*mean_result["table"]))
    assert total_vi(mean_result["sweep"][best]) <= fragments_vi / 2, (fragments_vi, mean_result["sweep"])
    agglomerate_fragments(layers["frag"], "mean", best)
    outputs = {}
    for size in (128, 256):
        dest = f"{layers['frag']}_seg_{size}"
        run_locally(create_agglomeration_relabel_tasks(layers["frag"], dest, shape=(size,) * 3), quiet=True)
        outputs[size] = read_mip(dest, 0)
    assert np.array_equal(outputs[128], outputs[256])
    whole = reference_scores(outputs[128], arrays["gt"])
    assert_scores_close(whole, mean_result["sweep"][best])
    run_locally(create_contingency_tasks(f"{layers['frag']}_seg_128", layers["gt"], shape=(64, 64, 64)),
                quiet=True)
    assert_scores_close(evaluation_scores(f"{layers['frag']}_seg_128", layers["gt"]), whole)


def test_learned_policy_beats_best_mean_on_held_apart_crop(crops, mean_result, tmp_path):
    train_layers = crops["B"]["layers"]
    run_locally(create_region_graph_tasks(train_layers["frag"], train_layers["prob"], shape=(96, 96, 96)),
                quiet=True)
    run_locally(create_contingency_tasks(train_layers["frag"], train_layers["gt"], shape=(96, 96, 96)),
                quiet=True)
    model = f"file://{tmp_path}/model.npz"
    counts = train_merge_model(train_layers["frag"], train_layers["gt"], model, trees=30)
    assert 0 < counts["keep_apart"] < counts["edges"]
    layers = crops["A"]["layers"]  # its graph is on disk (mean_result)
    agglomerate_fragments(layers["frag"], "learned", 0.5, model=model)
    dest = f"{layers['frag']}_learned"
    run_locally(create_agglomeration_relabel_tasks(layers["frag"], dest), quiet=True)
    learned = reference_scores(read_mip(dest, 0), crops["A"]["arrays"]["gt"])
    best_mean = mean_result["sweep"][mean_result["best"]]
    assert total_vi(learned) < total_vi(best_mean), (learned, best_mean)


def test_evaluate_through_cli_and_queue_equals_whole_array(crops, tmp_path):
    """graph, merge, relabel and evaluate as real subprocesses through an fq:// queue."""
    layers, arrays = crops["A"]["layers"], crops["A"]["arrays"]
    queue = f"fq://{tmp_path}/queue"
    dest = f"{layers['frag']}_cli"
    run_cli("agglomerate", "graph", layers["frag"], "--boundary", layers["prob"], "--shape", "128,128,128",
            "--queue", queue)
    run_cli("execute", "-x", queue)
    run_cli("agglomerate", "merge", layers["frag"], "--policy", "quantile", "--quantile", "0.4",
            "--threshold", "0.3")
    run_cli("agglomerate", "relabel", layers["frag"], dest, "--shape", "128,128,128", "--queue", queue)
    run_cli("execute", "-x", queue)
    result = run_cli("evaluate", dest, layers["gt"], "--json", "--shape", "128,128,64",
                     "--queue", queue)  # the scores become the workers' last stage of a pipeline
    state = result.stderr.split("igneous-like pipeline status ")[1].split()[0]
    run_cli("execute", "-x", queue)
    report = run_cli("pipeline", "status", state).stdout
    got = json.loads(report.split("scores: ")[1].splitlines()[0])
    assert_scores_close(got, reference_scores(read_mip(dest, 0), arrays["gt"]))
    assert total_vi(got) < total_vi(reference_scores(arrays["frag"], arrays["gt"])) / 2
    assert "Deleted" in run_cli("agglomerate", "clean", layers["frag"]).stderr


def test_watershed_ids_are_unique_per_task(crops):
    prob = np.asfortranarray(crops["A"]["arrays"]["prob"][:96, :96, :64])
    root = crops["A"]["root"]
    src = write_layer(f"file://{root}/ws_prob", prob, "image", chunk=(32, 32, 32))
    dest = f"file://{root}/ws_frag"
    run_locally(create_watershed_tasks(src, dest, shape=(48, 48, 32), seed_threshold=0.05, sigma=0.5),
                quiet=True)
    out = read_mip(dest, 0)  # task boxes: 48 rounded up to whole 32-voxel chunks, 64,64,32
    owners = {}
    for x in range(0, 96, 64):
        for y in range(0, 96, 64):
            for z in range(0, 64, 32):
                box = out[x:x + 64, y:y + 64, z:z + 32]
                ids = np.unique(box)
                assert not set(ids.tolist()) & set(owners), "an id appears in two tasks"
                owners.update(dict.fromkeys(ids.tolist(), (x, y, z)))
                smooth = ndimage.gaussian_filter(prob[x:x + 64, y:y + 64, z:z + 32] / np.float32(255), 0.5)
                reference = watershed(smooth, cc3d.connected_components(smooth < 0.05, connectivity=6))
                assert 0 not in ids
                assert np.array_equal(fastremap.renumber(box)[0], fastremap.renumber(reference)[0])
    assert len(owners) > 8


def test_options_reach_tasks_and_mistakes_are_user_errors(make_layer, tmp_path):
    from taskqueue import TaskQueue

    from igneous_like.errors import UserError
    labels = make_layer("frag", np.arange(1, 33, dtype=np.uint32).reshape(2, 4, 4).repeat(16, 0).repeat(
        8, 1).repeat(8, 2), "segmentation")
    prob = make_layer("prob", np.zeros((32, 32, 32), np.float32), "image", chunk=(16, 16, 16))
    queue = f"fq://{tmp_path}/q"
    run_cli("agglomerate", "watershed", prob, f"file://{tmp_path}/ws", "--seed-threshold", "0.1", "--sigma",
            "0.7", "--fill-missing", "--compress", "none", "--shape", "16,32,32", "--queue", queue)
    kwargs = [task.kwargs for task in TaskQueue(queue).tasks()]
    assert sorted(k["index"] for k in kwargs) == [0, 1] and all(k["stride"] == 16 * 32 * 32 for k in kwargs)
    assert all(k["seed_threshold"] == 0.1 and k["sigma"] == 0.7 and k["fill_missing"] and
               k["compress"] is False for k in kwargs)
    wrong = make_layer("small", np.zeros((16, 32, 32), np.uint8), "image")
    with pytest.raises(UserError, match="same voxels"):
        create_region_graph_tasks(labels, wrong)
    with pytest.raises(UserError, match="boundary map must be"):
        create_region_graph_tasks(labels, labels)
    with pytest.raises(UserError, match="no region graph"):
        agglomerate_fragments(labels)
    run_locally(create_region_graph_tasks(labels, prob, shape=(16, 16, 16)), quiet=True)
    assert load_region_graph(labels).num_edges == 1 * 4 * 4 + 2 * 3 * 4 + 2 * 4 * 3  # a 2x4x4 grid
    with pytest.raises(UserError, match="needs --model"):
        agglomerate_fragments(labels, "learned")
    with pytest.raises(UserError, match="no merge mapping"):
        create_agglomeration_relabel_tasks(labels, f"file://{tmp_path}/seg")
    result = run_cli("agglomerate", "merge", labels, "--policy", "learned", "--model",
                     f"{tmp_path}/none.npz", check=False)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "no merge model" in result.stderr


def active_learning_scores(real_seg, family: str = "basic") -> dict:
    """Plain (1 round) and active (3 rounds) learned policies on `family` features trained on
    ACTIVE_TRAIN, merged at 0.5 on ACTIVE_APPLY: VI split and merge of each, from whole-array
    graphs and overlaps."""
    made = {}
    for name, crop, seed in (("train", ACTIVE_TRAIN, 2), ("apply", ACTIVE_APPLY, 1)):
        gt, prob, frag = synthetic(real_seg[crop], seed)
        made[name] = region_graph.block_graph(frag, prob, frag.shape), evaluation.contingency(frag, gt)
    graph, table = made["apply"]
    out = {}
    for name, rounds in (("plain", 1), ("active", 3)):
        train_graph, train_table = made["train"]
        model = active_learning.learn(train_graph, *train_table, rounds=rounds, trees=30, family=family)[0]
        out[name] = mapped_scores(table, *agglomeration.agglomerate(
            graph, agglomeration.make_policy("learned", model=model), 0.5))
        out[name]["model"] = model
    out["features"] = merge_model.graph_features(made["train"][0], family)
    return out


def test_active_learning_beats_plain_learned_policy_on_held_apart_crop(real_seg, tmp_path):
    """Through tasks that cut objects, `train --rounds 3` writes the model that whole-array active
    learning makes, and it merges the held-apart crop with less VI split + merge than 1 round."""
    scores = active_learning_scores(real_seg)
    gt, prob, frag = synthetic(real_seg[ACTIVE_TRAIN], 2)
    arrays = {"gt": gt, "prob": prob, "frag": frag}
    layers = {kind: write_layer(f"file://{tmp_path}/{kind}", data, "image" if kind == "prob" else
                                "segmentation", chunk=(32, 32, 32)) for kind, data in arrays.items()}
    run_locally(create_region_graph_tasks(layers["frag"], layers["prob"], shape=(96, 64, 48)), quiet=True)
    run_locally(create_contingency_tasks(layers["frag"], layers["gt"], shape=(64, 96, 32)), quiet=True)
    model = f"file://{tmp_path}/active.npz"
    counts = train_merge_model(layers["frag"], layers["gt"], model, trees=30, rounds=3)
    assert counts["rounds"] == 3 and counts["met"] > 0
    written = merge_model.MergeModel.from_bytes((tmp_path / "active.npz").read_bytes())
    x = scores["features"]
    assert np.array_equal(written.predict(x), scores["active"]["model"].predict(x))
    plain, active = scores["plain"], scores["active"]
    print(f"held-apart crop at 0.5: plain VI split {plain['vi_split']:.4f} merge {plain['vi_merge']:.4f}; "
          f"active (3 rounds) VI split {active['vi_split']:.4f} merge {active['vi_merge']:.4f}")
    assert total_vi(active) < total_vi(plain), (active, plain)


def test_custom_priority_callable_equals_named_policy(crops, mean_result):
    """A Python priority computing the mean boundary value merges exactly as --policy mean."""
    layers = crops["A"]["layers"]
    graph = run_graph(layers["frag"], layers["prob"], (128, 128, 128))  # a test before cleaned it away
    assert graph.equals(mean_result["graphs"][256])
    mean = lambda edges: edges["total"] / (edges["count"] * 65535.0)
    custom = agglomeration.agglomerate(graph, agglomeration.custom_policy(mean), 0.45)
    named = agglomeration.agglomerate(graph, agglomeration.make_policy("mean"), 0.45)
    assert np.array_equal(custom[1], named[1]) and np.unique(named[1]).size < named[1].size
    assert agglomerate_fragments(layers["frag"], threshold=0.45, priority=mean)[1] == np.unique(named[1]).size
    with pytest.raises(ValueError, match="one number per edge"):
        agglomeration.agglomerate(graph, agglomeration.custom_policy(lambda edges: 0.0), 0.45)


def three_channels(prob: np.ndarray, seed: int) -> np.ndarray:
    """(x, y, z, 3) uint8: the membrane map, a 'mitochondria' map of smooth noise, its 'cytoplasm' inverse."""
    rng = np.random.default_rng(seed)
    mito = ndimage.gaussian_filter(rng.random(prob.shape, dtype=np.float32), 2.0)
    mito = np.clip((mito - mito.mean()) * 2000 + 60, 0, 255).astype(np.uint8)
    return np.asfortranarray(np.stack([prob, mito, 255 - prob], axis=3))


def reference_regions(labels: np.ndarray) -> dict:
    """id -> (voxels, coordinate sums in MOMENTS order, centroid, principal extents) with numpy."""
    out = {}
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        coords = np.argwhere(labels[box] == index + 1) + [s.start for s in box]
        x, y, z = coords.T.astype(np.int64)
        sums = tuple(int(v.sum()) for v in (x, y, z, x * x, y * y, z * z, x * y, x * z, y * z))
        spread = np.linalg.eigvalsh(np.cov(coords.T, bias=True))[::-1] if len(coords) > 1 else np.zeros(3)
        out[index + 1] = (len(coords), sums, coords.mean(axis=0), np.sqrt(np.maximum(spread, 0)))
    return out


def reference_features(labels: np.ndarray, boundary: np.ndarray) -> dict:
    """(a, b) -> the extended features (merge_model's column order) from the raw contacts of each
    channel and the voxels of each region, with plain numpy."""
    channels = [graph_contacts(labels, boundary[..., c]) for c in range(boundary.shape[3])]
    keys, inverse = np.unique(channels[0][:2], axis=1, return_inverse=True)
    order = np.argsort(inverse.ravel(), kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(inverse.ravel()))[:-1])
    regions = reference_regions(labels)
    out = {}
    for (a, b), members in zip(keys.T.tolist(), groups):
        stats, ranges = [], []
        for contacts in channels:
            q = contacts[2][members]
            n = q.size
            stats += [q.mean() / 65535, q.std() / 65535, q.min() / 65535, q.max() / 65535]
            stats += [np.sort(q // 257)[max(int(np.ceil(p * n)), 1) - 1] / 255 for p in merge_model.QUANTILES]
            ranges += list(np.bincount(q // 257 * 8 // 256, minlength=8) / n)
        small, large = sorted([regions[a], regions[b]], key=lambda region: region[:2])
        out[(a, b)] = stats + ranges + [np.log1p(n), np.log1p(small[0]), np.log1p(large[0]), n / small[0],
                                        n / large[0], n / small[0] ** (2 / 3), *small[3], *large[3],
                                        np.linalg.norm(small[2] - large[2])]
    return out


def assert_features_match(ids: np.ndarray, got: np.ndarray, want: dict) -> None:
    assert sorted(map(tuple, ids.tolist())) == sorted(want)
    expected = np.array([want[key] for key in map(tuple, ids.tolist())])
    assert got.shape == expected.shape
    assert np.allclose(got, expected, rtol=1e-6, atol=1e-6), np.abs(got - expected).max(axis=0)


@pytest.fixture(scope="module")
def multichannel(real_seg, tmp_path_factory):
    """A 128x128x64 crop: ground truth, fragments and a 3-channel boundary map, as arrays and layers."""
    root = tmp_path_factory.mktemp("multichannel")
    gt, prob, frag = synthetic(real_seg[ACTIVE_TRAIN], 2)
    arrays = {"gt": gt, "prob": three_channels(prob, 3), "frag": frag}
    layers = {kind: write_layer(f"file://{root}/{kind}", data, "image" if kind == "prob" else "segmentation",
                                chunk=(32, 32, 32)) for kind, data in arrays.items()}
    return {"arrays": arrays, "layers": layers, "root": root}


def test_extended_features_of_task_split_multichannel_graph_equal_reference(multichannel):
    """Tasks that cut objects sum to the whole-array graph of all 3 channels, region moments
    included, and its extended features equal a numpy computation from contacts and voxels."""
    arrays, layers = multichannel["arrays"], multichannel["layers"]
    graph = run_graph(layers["frag"], layers["prob"], (48, 56, 40))
    whole = region_graph.block_graph(arrays["frag"], arrays["prob"], arrays["frag"].shape)
    assert graph.channels == 3 and graph.equals(whole)
    regions = reference_regions(arrays["frag"])
    assert np.array_equal(graph.sizes, [regions[n][0] for n in graph.nodes.tolist()])
    assert np.array_equal(graph.moments, [regions[n][1] for n in graph.nodes.tolist()])
    x = merge_model.graph_features(graph, "extended")
    assert x.shape[1] == len(merge_model.feature_names("extended", 3))
    want = reference_features(arrays["frag"], arrays["prob"])
    assert_features_match(np.stack([graph.a, graph.b], 1), x, want)
    basic = merge_model.graph_features(graph)
    assert np.array_equal(basic, x[:, [merge_model.feature_names("extended", 3).index(name)
                                       for name in merge_model.feature_names("basic", 3)]])


def test_features_after_merges_equal_reference_on_merged_labels(multichannel):
    """After hundreds of merges, the working statistics give every remaining edge the features
    its two segments have when recomputed from the merged labels."""
    arrays = multichannel["arrays"]
    graph = region_graph.block_graph(arrays["frag"], arrays["prob"], arrays["frag"].shape)
    run = agglomeration.Agglomerator(graph, agglomeration.make_policy("median", channel=2), 0.93)
    roots = run.run()
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    segment = graph.nodes[first][inverse.ravel()]
    assert run.merges > 100
    merged = fastremap.remap(arrays["frag"], dict(zip(graph.nodes.tolist(), segment.tolist())),
                             preserve_missing_labels=True)
    alive = np.flatnonzero(run.alive)
    pairs = np.sort(np.stack([segment[run.stats.u[alive]], segment[run.stats.v[alive]]], 1), axis=1)
    got = merge_model.stats_features(run.stats, alive, "extended")
    assert_features_match(pairs, got, reference_features(merged, arrays["prob"]))


def test_multichannel_extended_train_and_merge_and_mismatches_refused(multichannel, make_layer, tmp_path):
    """`train --features extended` on a 3-channel map writes a model that says so; merging with
    it improves on the fragments; another family or channel count is refused in one line, exit 2,
    with nothing written."""
    arrays, layers = multichannel["arrays"], multichannel["layers"]
    model = tmp_path / "extended.npz"
    result = run_cli("agglomerate", "train", layers["frag"], "--boundary", layers["prob"], "--gt",
                     layers["gt"], "--output", model, "--trees", "10", "--features",
                     "extended", "--shape", "64,48,40")
    assert "extended features of 3 channel(s)" in result.stderr
    loaded = merge_model.MergeModel.from_bytes(model.read_bytes())
    assert (loaded.family, loaded.channels) == ("extended", 3)
    graph = load_region_graph(layers["frag"])
    fragments_scores = reference_scores(arrays["frag"], arrays["gt"])
    mapping = multichannel["root"] / "frag" / "16_16_40" / "agglomeration" / "mapping.ltab"
    single = make_layer("frag1", arrays["frag"], "segmentation", chunk=(64, 64, 64))
    run_locally(create_region_graph_tasks(single, make_layer("prob1", arrays["prob"][..., 0], "image")),
                quiet=True)
    learned = ["--policy", "learned", "--model", model, "--threshold", "0.5"]
    refusals = [([layers["frag"], *learned, "--features", "basic"], "trained with --features extended"),
                ([single, *learned], "trained on a boundary map of 3 channel(s) but this graph's has 1"),
                ([layers["frag"], "--policy", "mean", "--channel", "3"], "channel 3 is not among")]
    for args, message in refusals:
        result = run_cli("agglomerate", "merge", *args, check=False)
        assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
        assert message in result.stderr and not mapping.exists()
    run_cli("agglomerate", "merge", layers["frag"], *learned, "--features", "extended")
    fragments, segments = label_table.Table(f"file://{mapping}").read()
    want = agglomeration.agglomerate(graph, agglomeration.make_policy("learned", model=loaded), 0.5)
    assert np.array_equal(fragments, want[0]) and np.array_equal(segments, want[1])
    learned = mapped_scores(evaluation.contingency(arrays["frag"], arrays["gt"]), fragments, segments)
    assert total_vi(learned) < total_vi(fragments_scores) / 2, (learned, fragments_scores)
