"""`igneous-like image classify ...`: train a voxel classifier from sparse annotations, predict."""
import click
from click.core import ParameterSource

from igneous_like.classifier import METHODS
from igneous_like.cli.common import INT_LIST, VEC3, compress_option, planning, queue_option, submit
from igneous_like.cli.params import OUTPUT, OUTPUT_FILE, SEED, TREES
from igneous_like.features import FAMILIES
from igneous_like.task_creation.classify import DEFAULT_SCALES, OUTPUT_DTYPES, read_training_settings
from igneous_like.task_creation.common import Stage, csv


def names(value):
    """a,b -> ["a", "b"] (--pool-features, --features); None stays None (all features)."""
    if value is None or isinstance(value, (tuple, list)):
        return value
    return [name.strip() for name in value.split(",") if name.strip()]


def families(value):
    """--features basic,oriented -> ("basic", "oriented")."""
    if isinstance(value, (tuple, list)):
        return tuple(value)
    given = tuple(names(value))
    unknown = [name for name in given if name not in FAMILIES]
    if unknown or not given:
        raise click.BadParameter(f"{value!r}: give some of {', '.join(FAMILIES)}, comma-separated")
    return given


@click.group()
def classify():
    """Voxel classification, e.g. synaptic clefts: train on a few annotations, predict everywhere.

    Annotations are an integer layer at the image's resolution: 255 positive, 0 negative, any
    other value ignored. Then threshold the probabilities into objects with `image ccl auto`.
    """


@classify.command()
@click.argument("image_path", metavar="IMG")
@click.option("--annotations", required=True, help="Layer of 255 (positive) / 0 (negative) voxels.")
@click.option("--output", type=OUTPUT_FILE, required=True, help="Model file to write (path or cloud URL).")
@click.option("--mip", type=int, default=0, show_default=True, help="Image mip to train on.")
@click.option("--method", type=click.Choice(METHODS), default="adaboost", show_default=True,
              help="adaboost: boosted depth-1 stumps; random-forest.")
@click.option("--n-estimators", type=TREES, default=100, show_default=True,
              help="Stumps (adaboost) or trees (random-forest).")
@click.option("--scales", type=INT_LIST, default=",".join(map(str, DEFAULT_SCALES)), show_default=True,
              help="Feature scales in nm, e.g. 40,80,160.")
@click.option("--features", "feature_families", default="basic", show_default=True, callback=lambda c, p, v:
              families(v), help="Feature families: basic (filter bank), oriented (aligned to the local "
              "orientation: eigenvectors, samples along and across it), or both: basic,oriented.")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False), default=None,
              help="YAML or JSON file of training settings (scales, features, method, n_estimators, erode, "
              "dilate, max_samples, seed, mip); options given on the command line override it.")
@click.option("--erode", type=click.IntRange(min=0), default=0, show_default=True,
              help="Shrink the positives by this many voxels first (what it removes is ignored).")
@click.option("--dilate", type=click.IntRange(min=0), default=0, show_default=True,
              help="Grow the positives by this many voxels.")
@click.option("--max-samples", type=click.IntRange(min=0), default=500_000, show_default=True,
              help="Train on at most this many labeled voxels, drawn with --seed (0: all).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of sampling and fitting.")
@click.option("--pool", "pool", default=None, metavar="SEG",
              help="Supervoxel layer on the image's voxel grid: each voxel also gets the mean and standard "
              "deviation of --pool-features over its supervoxel (two passes over the whole image first).")
@click.option("--pool-features", default=None, callback=lambda c, p, v: names(v),
              help="Features to pool, comma-separated names as the model lists them (default: all).")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros.")
@click.pass_context
def train(ctx, image_path, annotations, output, mip, method, n_estimators, scales, feature_families,
          settings_file, erode, dilate, max_samples, seed, pool, pool_features, fill_missing):
    """Fit a classifier to the annotated voxels of IMG and write the model file.

    Example: igneous-like image classify train file:///data/em --annotations file:///data/clefts_annot
    --output file:///data/clefts.model --scales 40,80,160 --features basic,oriented --n-estimators 200
    """
    given = dict(mip=mip, method=method, n_estimators=n_estimators, scales=scales, features=feature_families,
                 erode=erode, dilate=dilate, max_samples=max_samples, seed=seed)
    if settings_file:
        names = {"features": "feature_families"}
        from_file = read_training_settings(settings_file)
        given.update({key: value for key, value in from_file.items()
                      if ctx.get_parameter_source(names.get(key, key)) != ParameterSource.COMMANDLINE})
    method = given["method"]
    chain = [Stage("train_classifier", dict(
        image_path=image_path, annotations_path=annotations, output=output, mip=given["mip"], method=method,
        n_estimators=given["n_estimators"], scales=list(given["scales"]), features=list(given["features"]),
        erode=given["erode"], dilate=given["dilate"], max_samples=given["max_samples"] or None,
        seed=given["seed"], fill_missing=fill_missing, pool=pool, pool_features=pool_features), "train")]
    if pool is not None:
        chain.insert(0, Stage("create_pool_sum_tasks", dict(
            image_path=image_path, pool_path=pool, mip=given["mip"], scales=list(given["scales"]),
            features=list(given["features"]), pool_features=pool_features, fill_missing=fill_missing,
            annotations_path=annotations), "pool"))
    done = submit(ctx, chain)
    if not done:
        return
    summary = done[-1]
    box = summary["box"]
    click.echo(f"Trained {method} on {summary['positive']} positive and {summary['negative']} negative "
               f"voxels in {csv(box.minpt)} to {csv(box.maxpt)} ({summary['features']} features): "
               f"{summary['model']}", err=True)
    pooled = f" --pool {pool}" if pool is not None else ""
    click.echo(f"Then: igneous-like image classify predict {image_path} DEST --model {summary['model']}"
               f"{pooled}", err=True)


@classify.command()
@click.argument("image_path", metavar="IMG")
@click.argument("dest", type=OUTPUT)
@click.option("--model", "model_path", required=True, help="Model file written by `classify train`.")
@click.option("--mip", type=int, default=0, show_default=True, help="Image mip to classify.")
@click.option("--shape", type=VEC3, default=None,
              help="Task shape, a multiple of the chunk size (default about 256,256,64).")
@click.option("--dtype", type=click.Choice(OUTPUT_DTYPES), default="uint8", show_default=True,
              help="Probabilities as 0-255 or as float32 0-1.")
@click.option("--pool", "pool", default=None, metavar="SEG",
              help="Supervoxel layer on the image's voxel grid, for a model trained with --pool (its pooled "
              "sums over the whole image are computed first).")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as zeros.")
@compress_option
@queue_option
@click.pass_context
def predict(ctx, image_path, dest, model_path, mip, shape, dtype, pool, fill_missing, compress, queue):
    """Write the positive-class probability of every voxel of IMG into the new image layer DEST.

    Example: igneous-like image classify predict file:///data/em file:///data/cleft_prob
    --model file:///data/clefts.model --queue fq:///tmp/q
    """
    chain = [Stage("create_classification_tasks", dict(
        image_path=image_path, dest_path=dest, model_path=model_path, mip=mip, shape=shape, dtype=dtype,
        compress=compress, fill_missing=fill_missing, pool=pool), "predict")]
    if pool is not None:
        chain.insert(0, Stage("create_pool_sum_tasks", dict(
            image_path=image_path, pool_path=pool, mip=mip, model_path=model_path, shape=shape,
            fill_missing=fill_missing, dest_path=dest, dtype=dtype), "pool"))
    submit(ctx, chain, queue)
    if planning(ctx):
        return
    threshold = 128 if dtype == "uint8" else 0.5
    click.echo(f"Then, for objects: igneous-like image ccl auto {dest} OBJECTS --threshold-gte {threshold} "
               "--dust 100", err=True)
