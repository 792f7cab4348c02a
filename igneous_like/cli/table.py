"""`igneous-like table ...`: analysis of exported measurement tables (CSV or Parquet)."""
import click

from igneous_like import tables
from igneous_like.cli.common import submit
from igneous_like.cli.params import FLOATS, OUTPUT, SEED, TREES, Finite
from igneous_like.task_creation.common import Stage


@click.group()
def table():
    """Categories, clusters and a classifier on a table from `measure export`.

    Example: igneous-like table cluster cells.parquet clustered.parquet --columns volume,sphericity --k 4
    """


@table.command("threshold")
@click.argument("table_path", metavar="TABLE")
@click.argument("output", type=OUTPUT)
@click.option("--column", required=True, help="Numeric column to cut.")
@click.option("--thresholds", type=FLOATS, required=True, help="Increasing cut points, e.g. 1e6,1e8.")
@click.option("--labels", default=None, help="Category names, one more than the thresholds.")
@click.option("--name", default="category", show_default=True, help="The new column.")
@click.pass_context
def threshold_(ctx, table_path, output, column, thresholds, labels, name):
    """Add a category column: below the first threshold, between thresholds, above the last.

    Example: igneous-like table threshold cells.csv sized.csv --column volume --thresholds 1e6,1e8
    """
    done = submit(ctx, [Stage("threshold_table", dict(
        table_path=table_path, output=output, column=column, thresholds=list(thresholds),
        labels=tables.columns_list(labels) or None, name=name), "threshold")])
    if done:
        click.echo(f"{done[0]} rows with column {name} written to {output}", err=True)


@table.command("cluster")
@click.argument("table_path", metavar="TABLE")
@click.argument("output", type=OUTPUT)
@click.option("--columns", required=True, help="Numeric columns to cluster on (standardized).")
@click.option("--method", type=click.Choice(["kmeans", "dbscan"]), default="kmeans", show_default=True)
@click.option("--k", "clusters", type=click.IntRange(min=1), default=3, show_default=True,
              help="Clusters (k-means).")
@click.option("--eps", type=Finite(min=0, min_open=True), default=0.5, show_default=True,
              help="Neighbourhood radius (DBSCAN).")
@click.option("--min-samples", type=click.IntRange(min=1), default=5, show_default=True,
              help="DBSCAN core size.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--name", default="cluster", show_default=True, help="The new column (-1: noise or missing).")
@click.pass_context
def cluster_(ctx, table_path, output, columns, method, clusters, eps, min_samples, seed, name):
    """Add a cluster column from k-means or DBSCAN on standardized columns.

    Example: igneous-like table cluster cells.parquet out.parquet --columns volume,sphericity --k 3
    """
    done = submit(ctx, [Stage("cluster_table", dict(
        table_path=table_path, output=output, columns=tables.columns_list(columns), method=method,
        clusters=clusters, eps=eps, min_samples=min_samples, seed=seed, name=name), "cluster")])
    if done:
        click.echo(f"{done[0]} clusters in column {name} written to {output}", err=True)


@table.group()
def classify():
    """Random-forest classification: train from an annotation column, then apply to all rows."""


@classify.command()
@click.argument("table_path", metavar="TABLE")
@click.option("--annotation", required=True, help="Column with the known classes (empty: unknown).")
@click.option("--features", required=True, help="Numeric feature columns.")
@click.option("--output", type=OUTPUT, required=True,
              help="Model file to write (.npz of plain arrays, never a pickle).")
@click.option("--trees", type=TREES, default=200, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.pass_context
def train(ctx, table_path, annotation, features, output, trees, seed):
    """Train a random forest on the annotated rows and save it with its feature list.

    Example: igneous-like table classify train cells.csv --annotation kind --features volume,sphericity
    --output model.npz
    """
    done = submit(ctx, [Stage("train_table_classifier", dict(
        table_path=table_path, annotation=annotation, features=tables.columns_list(features), output=output,
        trees=trees, seed=seed), "train")])
    if done:
        click.echo(f"Model of {done[0]} classes written to {output}", err=True)


@classify.command()
@click.argument("table_path", metavar="TABLE")
@click.argument("model_path", metavar="MODEL")
@click.argument("output", type=OUTPUT)
@click.option("--name", default="prediction", show_default=True, help="The new column.")
@click.pass_context
def apply(ctx, table_path, model_path, output, name):
    """Predict a class for every row (and its probability, in NAME_probability).

    Example: igneous-like table classify apply cells.csv model.npz predicted.csv
    """
    done = submit(ctx, [Stage("apply_table_classifier", dict(
        table_path=table_path, model_path=model_path, output=output, name=name), "apply")])
    if done:
        click.echo(f"{done[0]} rows classified into {output}", err=True)
