"""Active learning of the merge policy, as gala's learn_agglomerate does it (numpy and sklearn).

Round 1 trains on every edge of the initial graph, labelled from ground truth (keep apart where
the two fragments mostly overlap different objects). Each further round agglomerates the same
graph with the model of the round before and records every merge the loop is about to make:
the edge's features as they are then (of two grown segments, which round 1 never sees) and its
label from the ground-truth overlap of those two segments. Only right merges are made (gala's
strict mode), so the loop goes on meeting the decisions a good agglomeration meets. The records
join the training set (repeated rows once) and the model is trained again on all of it.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

from igneous_like.agglomeration import Agglomerator, Policy
from igneous_like.merge_model import (
    MergeModel,
    graph_features,
    majority,
    split_labels,
    stats_features,
    train,
)
from igneous_like.region_graph import RegionGraph


class Overlaps:
    """Each current segment's voxels per ground-truth object, combined as segments merge."""

    def __init__(self, nodes: np.ndarray, seg_ids: np.ndarray, gt_ids: np.ndarray, counts: np.ndarray):
        self.rows: List[Dict[int, int]] = [{} for _ in range(nodes.size)]
        known = np.isin(seg_ids, nodes)
        where = np.searchsorted(nodes, seg_ids[known])
        for node, gt, count in zip(where.tolist(), gt_ids[known].tolist(), counts[known].tolist()):
            self.rows[node][gt] = self.rows[node].get(gt, 0) + count

    def majority(self, node: int) -> int:
        """The object the segment overlaps most; ties to the lower id, as merge_model.majority."""
        return min(self.rows[node].items(), key=lambda item: (-item[1], item[0]))[0]

    def join(self, x: int, y: int) -> None:
        """Both nodes' rows become their sum (whichever survives the merge finds it)."""
        small, large = sorted((self.rows[x], self.rows[y]), key=len)
        for gt, count in small.items():
            large[gt] = large.get(gt, 0) + count
        self.rows[x] = self.rows[y] = large


class Remembering:
    """A learned policy's priority that keeps every edge's features as last computed: the ones
    an edge has when the loop reaches it, since its priority is still the one computed then."""

    def __init__(self, model: MergeModel, num_edges: int):
        self.model, self.features = model, np.zeros((num_edges, model.num_features))

    def priority(self, stats, edges: Optional[np.ndarray]) -> np.ndarray:
        x = stats_features(stats, edges, self.model.family)
        self.features[slice(None) if edges is None else edges] = x
        return self.model.predict(x)


def met_edges(graph: RegionGraph, model: MergeModel, overlaps: Overlaps) -> Tuple[np.ndarray, np.ndarray]:
    """(features, keep-apart labels) of every merge an agglomeration with `model` considers, run to
    the end and making only the merges the ground truth allows."""
    policy = Remembering(model, graph.num_edges)
    met, labels = [], []

    def decide(run: Agglomerator, edge: int) -> bool:
        u, v = int(run.stats.u[edge]), int(run.stats.v[edge])
        apart = overlaps.majority(u) != overlaps.majority(v)
        met.append(policy.features[edge].copy())
        labels.append(int(apart))
        if not apart:
            overlaps.join(u, v)
        return not apart

    Agglomerator(graph, Policy("learned", policy.priority, histograms=True, size_dependent=True), np.inf,
                 decide).run()
    return np.array(met).reshape(-1, model.num_features), np.array(labels, np.int64)


def learn(graph: RegionGraph, seg_ids: np.ndarray, gt_ids: np.ndarray, counts: np.ndarray, rounds: int = 1,
          trees: int = 100, seed: int = 0, family: str = "basic") -> Tuple[MergeModel, List[dict]]:
    """The model (on features of `family`) after `rounds` rounds (1: trained on the initial edges
    only) from the graph and the contingency rows (fragment, ground-truth id, voxels); per round
    its training set's size."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    fragments, truth = majority(seg_ids, gt_ids, counts)
    x, y = graph_features(graph, family), split_labels(graph, fragments, truth)
    fit = lambda x, y: train(x, y, trees=trees, seed=seed, family=family, channels=graph.channels)
    model = fit(x, y)
    history = [{"edges": int(y.size), "keep_apart": int(y.sum())}]
    for _ in range(rounds - 1):
        met_x, met_y = met_edges(graph, model, Overlaps(graph.nodes, seg_ids, gt_ids, counts))
        table = np.unique(np.column_stack([np.concatenate([x, met_x]), np.concatenate([y, met_y])]), axis=0)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
        model = fit(x, y)
        history.append({"edges": int(y.size), "keep_apart": int(y.sum()), "met": int(met_y.size)})
    return model, history
