"""`igneous-like agglomerate ...` (region graph, merging, learned policy, relabel, watershed) and
`igneous-like evaluate` (variation of information, Rand scores and edit distance against ground truth)."""
import json

import click

from igneous_like.agglomeration import POLICIES
from igneous_like.cli.common import (
    VEC3,
    add_options,
    compress_option,
    encoding_option,
    planning,
    queue_option,
    submit,
)
from igneous_like.cli.params import FLOAT, FLOATS, OUTPUT, OUTPUT_FILE, TREES, Finite
from igneous_like.merge_model import FAMILIES
from igneous_like.pipeline import verbs
from igneous_like.task_creation import agglomerate as tc
from igneous_like.task_creation.common import Stage, layer_path

mip_option = click.option("--mip", type=int, default=0, show_default=True, help="Mip of the layers.")
shape_option = click.option("--shape", type=VEC3, default=tc.DEFAULT_SHAPE, show_default=True,
                            help="Task shape X,Y,Z, any size.")
fill_option = click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros.")
writing_options = [mip_option, shape_option, encoding_option, compress_option, fill_option, queue_option]


@click.group()
def agglomerate():
    """Merge over-segmented fragments into objects using a boundary map, at any volume size.

    Steps: graph (per task), merge (here), relabel (per task), clean; train makes a learned
    policy from ground truth; watershed makes fragments from a boundary map. Files live in
    FRAG/KEY/agglomeration/, the mapping in FRAG/KEY/agglomeration/mapping.ltab.

    Example: igneous-like agglomerate graph file:///data/frag --boundary file:///data/prob
    """


@agglomerate.command()
@click.argument("frag")
@click.option("--boundary", required=True, help="Boundary map: uint8 (0-255) or float (0-1), same voxels; "
              "one channel or several (e.g. membrane, mitochondria, cytoplasm), each with its statistics.")
@mip_option
@shape_option
@fill_option
@queue_option
@click.pass_context
def graph(ctx, frag, boundary, mip, shape, fill_missing, queue):
    """(1) Store each task's region graph: per edge contact count, and per boundary channel the
    sum, squares, min, max and 256-bin histogram of boundary values; per fragment its size and
    coordinate moments.

    Example: igneous-like agglomerate graph file:///data/frag --boundary file:///data/prob --queue fq:///tmp/q
    """
    submit(ctx, [Stage("create_region_graph_tasks", dict(frag_path=frag, boundary_path=boundary, mip=mip,
                                                         shape=shape, fill_missing=fill_missing), "graph")],
           queue)
    if not planning(ctx):
        click.echo(f"Then: igneous-like agglomerate merge {frag} --mip {mip} --threshold T", err=True)


policy_input_options = [
    click.option("--features", type=click.Choice(FAMILIES), default=None,
                 help="Feature family the --model must have been trained with (checked) [the model's]."),
    click.option("--channel", type=click.IntRange(0), default=None,
                 help="Boundary channel of the mean, median and quantile policies (learned reads them "
                 "all) [0]."),
]


@agglomerate.command()
@click.argument("frag")
@click.option("--policy", type=click.Choice(POLICIES), default="mean", show_default=True,
              help="Merge priority: mean or median or quantile of boundary values, or learned.")
@click.option("--threshold", type=FLOAT, default=0.5, show_default=True,
              help="Merge while the lowest priority is below this (boundary value 0-1, or probability).")
@click.option("--quantile", type=Finite(0, 1), default=0.5, show_default=True,
              help="The quantile of --policy quantile.")
@click.option("--model", default=None, help="Model file of --policy learned (from agglomerate train).")
@add_options(policy_input_options)
@mip_option
@click.pass_context
def merge(ctx, frag, policy, threshold, quantile, model, features, channel, mip):
    """(2) Merge fragments over the whole graph, here; writes the fragment -> segment mapping.

    Example: igneous-like agglomerate merge file:///data/frag --policy mean --threshold 0.4
    """
    done = submit(ctx, [Stage("agglomerate_fragments", dict(
        frag_path=frag, policy=policy, threshold=threshold, mip=mip, quantile=quantile, model=model,
        features=features, channel=channel or 0), "merge")])
    if done:
        fragments, segments = done[0]
        click.echo(f"{fragments} fragments merged into {segments} segments", err=True)
        click.echo(f"Then: igneous-like agglomerate relabel {frag} DEST --mip {mip}", err=True)


@agglomerate.command()
@click.argument("frag")
@click.option("--boundary", required=True, help="Boundary map of FRAG.")
@click.option("--gt", required=True, help="Ground-truth segmentation of the same voxels.")
@click.option("--output", type=OUTPUT_FILE, required=True, help="Model file to write (path or cloud path).")
@click.option("--trees", type=TREES, default=100, show_default=True,
              help="Random forest size.")
@click.option("--rounds", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Rounds of active learning: each further one agglomerates with the model, adds the merges "
              "it met (labelled from GT) to the training set and trains again.")
@click.option("--features", type=click.Choice(FAMILIES), default="basic", show_default=True,
              help="Edge features: basic (boundary statistics and sizes) or extended (also coarse boundary "
              "histograms, contact per region size, region extents and centroid distance); every channel.")
@mip_option
@shape_option
@fill_option
@queue_option
@click.pass_context
def train(ctx, frag, boundary, gt, output, trees, rounds, features, mip, shape, fill_missing, queue):
    """Train the learned policy: features of FRAG's edges, labels from GT (an edge whose fragments
    mostly overlap one ground-truth object should merge). Runs the graph step unless done. With
    --rounds N, active learning as gala does it: N-1 times agglomerate with the model (only the
    merges GT allows), label every merge it considered from the GT overlap of the two segments,
    add them and train again.

    Example: igneous-like agglomerate train file:///data/frag --boundary file:///data/prob
    --gt file:///data/gt --output model.npz
    """
    if not planning(ctx):
        tc.check_training(frag, boundary, gt, mip, shape, features)
    stages = verbs.agglomerate_training(frag, boundary, gt, output, trees=trees, mip=mip, shape=shape,
                                        fill_missing=fill_missing, rounds=rounds, features=features)
    done = submit(ctx, stages, queue, home=frag)
    if done:
        counts = done[-1]
        click.echo(f"Trained on {counts['edges']} edges ({counts['keep_apart']} to keep apart), "
                   f"{counts['features']} features of {counts['channels']} channel(s), in "
                   f"{counts['rounds']} round(s): "
                   f"{layer_path(output)}", err=True)


@agglomerate.command()
@click.argument("frag")
@click.argument("dest", type=OUTPUT)
@add_options(writing_options)
@click.pass_context
def relabel(ctx, frag, dest, mip, shape, encoding, compress, fill_missing, queue):
    """(3) Write the agglomerated segmentation into DEST.

    Example: igneous-like agglomerate relabel file:///data/frag file:///data/seg --queue fq:///tmp/q
    """
    submit(ctx, [Stage("create_agglomeration_relabel_tasks", dict(
        frag_path=frag, dest=dest, mip=mip, shape=shape, encoding=encoding, compress=compress,
        fill_missing=fill_missing), "relabel")], queue)


@agglomerate.command()
@click.argument("prob")
@click.argument("dest", type=OUTPUT)
@click.option("--seed-threshold", type=FLOAT, default=0.2, show_default=True,
              help="Seeds: connected regions where the smoothed boundary map lies below this (0-1).")
@click.option("--sigma", type=Finite(min=0), default=1.0, show_default=True,
              help="Gaussian smoothing, voxels.")
@add_options(writing_options)
@click.pass_context
def watershed(ctx, prob, dest, seed_threshold, sigma, mip, shape, encoding, compress, fill_missing, queue):
    """Cut a boundary map into fragments (uint64 ids, unique over the volume) by seeded watershed
    per task; fragments end at task faces and merge again in the agglomeration.

    Example: igneous-like agglomerate watershed file:///data/prob file:///data/frag --queue fq:///tmp/q
    """
    submit(ctx, [Stage("create_watershed_tasks", dict(
        prob_path=prob, dest=dest, mip=mip, shape=shape, seed_threshold=seed_threshold, sigma=sigma,
        encoding=encoding, compress=compress, fill_missing=fill_missing), "watershed")], queue)


@agglomerate.command()
@click.argument("frag")
@mip_option
@click.pass_context
def clean(ctx, frag, mip):
    """(last) Delete FRAG/KEY/agglomeration/ (graph parts and mapping).

    Example: igneous-like agglomerate clean file:///data/frag
    """
    done = submit(ctx, [Stage("clean_agglomeration_files", dict(frag_path=frag, mip=mip), "clean")])
    if done:
        click.echo(f"Deleted {done[0]} files", err=True)


sweep_options = [
    click.option("--thresholds", type=FLOATS, default=None,
                 help="SEG is fragments: score their agglomeration at each threshold, e.g. 0.2,0.3,0.4."),
    click.option("--policy", type=click.Choice(POLICIES), default=None,
                 help="Merge policy of the sweep [mean]."),
    click.option("--quantile", type=Finite(0, 1), default=None,
                 help="The quantile of --policy quantile [0.5]."),
    click.option("--model", default=None, help="Model file of --policy learned."),
    click.option("--boundary", default=None,
                 help="Boundary map to make SEG's region graph from (else it must exist)."),
    *policy_input_options,
    click.option("--plot", type=OUTPUT_FILE, default=None,
                 help="Write the sweep's VI split against merge here (.png, .html)."),
]


@click.command()
@click.argument("seg")
@click.argument("gt")
@click.option("--json", "as_json", is_flag=True, help="Print every score as one JSON object.")
@click.option("--ignore-gt-zero", is_flag=True,
              help="Leave out the voxels where GT is 0 (unlabeled), as connectomics challenges score.")
@click.option("--table", type=OUTPUT_FILE, default=None,
              help="Write each ground-truth object's and segment's errors here (.csv, .tsv, .parquet, "
              ".xlsx), worst first.")
@click.option("--ceiling", metavar="LAYER", default=None,
              help="Also write the best segmentation reachable from SEG's pieces (each given to its majority "
              "GT object) as a new layer here.")
@add_options(sweep_options)
@mip_option
@click.option("--shape", type=VEC3, default=(512, 512, 512), show_default=True, help="Task shape X,Y,Z.")
@fill_option
@queue_option
@click.pass_context
def evaluate(ctx, seg, gt, as_json, ignore_gt_zero, table, ceiling, mip, shape, fill_missing, queue, **sweep):
    """Score SEG against ground truth GT: variation of information split = H(SEG|GT) and merge =
    H(GT|SEG) in bits, Rand index, adjusted Rand index, Fowlkes-Mallows, adapted Rand error, and the
    split/merge edit distance (the splits and merges a proofreader needs); every voxel counts,
    label 0 included, unless --ignore-gt-zero. The same scores of the ceiling (each piece of SEG
    given to the GT object it overlaps most) bound what any agglomeration of SEG can reach.

    Tasks count the overlaps (here, or through --queue, whose workers then compute the scores:
    `igneous-like pipeline status` shows them); the sum is exact.

    With --thresholds, SEG is fragments and each threshold's agglomeration (as `agglomerate merge`
    makes it) is scored exactly, from one region graph and one count of overlaps.

    Example: igneous-like evaluate file:///data/frag file:///data/gt --ignore-gt-zero --table errors.csv

    Example: igneous-like evaluate file:///data/frag file:///data/gt --thresholds 0.2,0.3,0.4,0.5
    --boundary file:///data/prob --plot sweep.png
    """
    blocks = dict(mip=mip, shape=shape, fill_missing=fill_missing, ignore_gt_zero=ignore_gt_zero)
    if sweep["thresholds"] is None:
        if any(given is not None for given in sweep.values()):
            raise click.UsageError("--policy, --quantile, --model, --features, --channel, --boundary and "
                                   "--plot need --thresholds")
        stages = verbs.evaluate(seg, gt, table=table, ceiling=ceiling, **blocks)
    elif table is not None or ceiling is not None:
        raise click.UsageError("--table and --ceiling score one segmentation: leave them out of a sweep")
    else:
        stages = sweep_stages(ctx, seg, gt, blocks, **sweep)
    done = submit(ctx, stages, queue, home=seg)
    if done and as_json:
        click.echo(json.dumps(done[0]))
    elif done:
        result = done[0]  # the scores; a --ceiling run ends with the clean-up count
        for found in result.get("sweep", [result]) + [dict(result["ceiling"], name="ceiling ")]:
            show_scores(found)
        if sweep["plot"]:
            click.echo(f"Plot: {sweep['plot']}", err=True)


def show_scores(found: dict) -> None:
    name = found.get("name", f"threshold {found['threshold']:g} ({found['segments']} segments) "
                     if "threshold" in found else "")
    click.echo(f"{name}VI split {found['vi_split']:.6f} bits, merge {found['vi_merge']:.6f} bits, "
               f"Rand {found['rand']:.6f}, ARI {found['ari']:.6f}, Fowlkes-Mallows "
               f"{found['fowlkes_mallows']:.6f}, adapted Rand error {found['adapted_rand_error']:.6f}, "
               f"{found['splits_needed']} splits and {found['merges_needed']} merges needed")


def sweep_stages(ctx, seg, gt, blocks, thresholds, policy, quantile, model, boundary, features, channel,
                 plot):
    """The stages of `evaluate --thresholds`, once what can be checked before they run is."""
    if not thresholds:
        raise click.UsageError("--thresholds needs at least one number")
    policy, quantile, channel = policy or "mean", 0.5 if quantile is None else quantile, channel or 0
    if not planning(ctx):
        tc.merge_policy(policy, quantile, model, features, channel)
        if boundary is None:
            tc.recorded_graph(seg, blocks["mip"])
    return verbs.threshold_sweep(seg, gt, thresholds, policy, quantile, model, boundary, plot=plot,
                                 features=features, channel=channel, **blocks)
