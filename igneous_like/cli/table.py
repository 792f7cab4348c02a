"""`igneous-like table ...`: analysis of exported measurement tables (CSV, TSV, Parquet, XLSX)."""
import click

from igneous_like import tables
from igneous_like.cli.agglomerate import writing_options
from igneous_like.cli.common import add_options, submit
from igneous_like.cli.params import FLOATS, OUTPUT, OUTPUT_FILE, SEED, TREES, Finite
from igneous_like.plots import EMBEDDINGS
from igneous_like.task_creation.common import Stage


@click.group()
def table():
    """Categories, clusters, classifiers and joins on tables from `measure export`, and a
    segmentation painted by a column. Tables are .csv, .tsv, .parquet or .xlsx files.

    Example: igneous-like table cluster cells.parquet clustered.parquet --columns volume,sphericity --k 4
    """


@table.command("threshold")
@click.argument("table_path", metavar="TABLE")
@click.argument("output", type=OUTPUT_FILE)
@click.option("--column", required=True, help="Numeric column to cut.")
@click.option("--thresholds", type=FLOATS, default=None, help="Increasing cut points, e.g. 1e6,1e8.")
@click.option("--method", type=click.Choice(tables.THRESHOLD_METHODS), default=None,
              help="Find one threshold by Otsu's or Li's method instead.")
@click.option("--percentiles", type=FLOATS, default=None, help="Cut at these percentiles, e.g. 25,75.")
@click.option("--labels", default=None, help="Category names, one more than the thresholds.")
@click.option("--name", default="category", show_default=True, help="The new column.")
@click.pass_context
def threshold_(ctx, table_path, output, column, thresholds, method, percentiles, labels, name):
    """Add a category column: below the first threshold, between thresholds, above the last.
    Give the thresholds, or --method or --percentiles to find them in the column.

    Example: igneous-like table threshold cells.csv sized.csv --column volume --method otsu
    """
    if sum(given is not None for given in (thresholds, method, percentiles)) != 1:
        raise click.UsageError("give one of --thresholds, --method or --percentiles")
    done = submit(ctx, [Stage("threshold_table", dict(
        table_path=table_path, output=output, column=column,
        thresholds=None if thresholds is None else list(thresholds),
        labels=tables.columns_list(labels) or None, name=name, method=method,
        percentiles=None if percentiles is None else list(percentiles)),
        "threshold")])
    if done:
        cuts = ", ".join(f"{t:g}" for t in done[0]["thresholds"])
        click.echo(f"{done[0]['rows']} rows with column {name} (cut at {cuts}) written to {output}", err=True)


@table.command("cluster")
@click.argument("table_path", metavar="TABLE")
@click.argument("output", type=OUTPUT_FILE)
@click.option("--columns", required=True, help="Numeric columns to cluster on (standardized).")
@click.option("--method", type=click.Choice(tables.CLUSTER_METHODS), default="kmeans", show_default=True)
@click.option("--k", "clusters", type=click.IntRange(min=1), default=3, show_default=True,
              help="Clusters (k-means).")
@click.option("--eps", type=Finite(min=0, min_open=True), default=0.5, show_default=True,
              help="Neighbourhood radius (DBSCAN).")
@click.option("--min-samples", type=click.IntRange(min=1), default=5, show_default=True,
              help="Core size (DBSCAN, HDBSCAN).")
@click.option("--min-cluster-size", type=click.IntRange(min=2), default=5, show_default=True,
              help="Smallest cluster (HDBSCAN).")
@click.option("--bandwidth", type=Finite(min=0, min_open=True), default=None,
              help="Kernel width in standard deviations (mean shift; estimated when absent).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--name", default="cluster", show_default=True, help="The new column (-1: noise or missing).")
@click.pass_context
def cluster_(ctx, table_path, output, columns, method, clusters, eps, min_samples, min_cluster_size,
             bandwidth, seed, name):
    """Add a cluster column from k-means, DBSCAN, HDBSCAN or mean shift on standardized columns.

    Example: igneous-like table cluster cells.parquet out.parquet --columns volume,sphericity --k 3
    """
    done = submit(ctx, [Stage("cluster_table", dict(
        table_path=table_path, output=output, columns=tables.columns_list(columns), method=method,
        clusters=clusters, eps=eps, min_samples=min_samples, seed=seed, name=name,
        min_cluster_size=min_cluster_size, bandwidth=bandwidth), "cluster")])
    if done:
        click.echo(f"{done[0]} clusters in column {name} written to {output}", err=True)


@table.group()
def classify():
    """Classification (random forest or logistic regression): train from an annotation column,
    then apply to all rows."""


@classify.command()
@click.argument("table_paths", metavar="TABLE...", nargs=-1, required=True)
@click.option("--annotation", required=True, help="Column with the known classes (empty: unknown).")
@click.option("--features", required=True, help="Numeric feature columns.")
@click.option("--output", type=OUTPUT_FILE, required=True,
              help="Model file to write (.npz of plain arrays, never a pickle).")
@click.option("--classifier", "kind", type=click.Choice(tuple(tables.CLASSIFIERS)), default="forest",
              show_default=True, help="A random forest, or a logistic regression on standardized features.")
@click.option("--trees", type=TREES, default=200, show_default=True, help="Trees of a forest.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.pass_context
def train(ctx, table_paths, annotation, features, output, kind, trees, seed):
    """Train a classifier on the annotated rows of one table or several and save it with its
    feature list.

    Example: igneous-like table classify train a.csv b.csv --annotation kind --features volume,sphericity
    --output model.npz
    """
    done = submit(ctx, [Stage("train_table_classifier", dict(
        table_paths=list(table_paths), annotation=annotation, features=tables.columns_list(features),
        output=output, trees=trees, seed=seed, kind=kind), "train")])
    if done:
        click.echo(f"Model of {done[0]} classes written to {output}", err=True)


@classify.command()
@click.argument("table_path", metavar="TABLE")
@click.argument("model_path", metavar="MODEL")
@click.argument("output", type=OUTPUT_FILE)
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


@table.command("merge")
@click.argument("table_paths", metavar="TABLE TABLE...", nargs=-1, required=True)
@click.argument("output", type=OUTPUT_FILE)
@click.option("--on", default="label", show_default=True, help="The column that names each row.")
@click.option("--how", type=click.Choice(["inner", "left", "outer"]), default="inner", show_default=True,
              help="Keep rows in every table, in the first, or in any.")
@click.pass_context
def merge_(ctx, table_paths, output, on, how):
    """Join tables side by side on their labels (e.g. measurements of two images of one
    segmentation). A column an earlier table has gets the suffix _2, _3, ... of its table.

    Example: igneous-like table merge shape.csv intensity.parquet cells.xlsx
    """
    if len(table_paths) < 2:
        raise click.UsageError("give at least two tables to merge, then the output")
    stage = Stage("merge_tables", dict(table_paths=list(table_paths), output=output, on=on, how=how), "merge")
    done = submit(ctx, [stage])
    if done:
        click.echo(f"{done[0]} rows written to {output}", err=True)


@table.command()
@click.argument("seg")
@click.argument("table_path", metavar="TABLE")
@click.argument("column")
@click.argument("dest", type=OUTPUT)
@add_options(writing_options)
@click.pass_context
def paint(ctx, seg, table_path, column, dest, mip, shape, encoding, compress, fill_missing, queue):
    """Write DEST, a segmentation whose objects carry COLUMN's value: each distinct value is one
    id (1, 2, ... in sorted order, named in DEST's segment properties); objects without a value
    become 0. TABLE's `label` column names SEG's objects.

    Example: igneous-like table paint file:///data/seg predicted.csv prediction file:///data/classes
    """
    submit(ctx, [Stage("create_paint_tasks", dict(
        seg_path=seg, table_path=table_path, column=column, dest=dest, mip=mip, shape=shape,
        encoding=encoding, compress=compress, fill_missing=fill_missing), "paint")], queue)


@table.command()
@click.argument("seg")
@click.argument("table_path", metavar="TABLE")
@click.option("--label", default=None, help="Column shown beside each id (a name, a class).")
@click.option("--tags", default=None,
              help="Columns whose values tag the objects (categories, classes, clusters), e.g. "
              "prediction,cluster.")
@click.option("--numbers", default=None, help="Numeric columns, e.g. volume,sphericity.")
@click.option("--replace", is_flag=True, help="Replace SEG's segment properties, not merge into them.")
@click.pass_context
def properties(ctx, seg, table_path, label, tags, numbers, replace):
    """Write SEG's Neuroglancer segment properties from TABLE's columns (its `label` column names
    SEG's objects): a label, tags to search and colour by (type #neuron in the segment list) and
    numbers. They merge into the properties SEG has (a property of the same name, or the label or
    tags, is replaced), unless --replace.

    Example: igneous-like table properties file:///data/seg predicted.csv --tags prediction,category
    """
    done = submit(ctx, [Stage("write_table_properties", dict(
        seg_path=seg, table_path=table_path, label=label, tags=tables.columns_list(tags),
        numbers=tables.columns_list(numbers), replace=replace), "properties")])
    if done:
        click.echo(f"Segment properties of {done[0]['objects']} objects ({', '.join(done[0]['properties'])}) "
                   f"written to {seg}", err=True)


@table.command()
@click.argument("table_path", metavar="TABLE")
@click.argument("output", metavar="OUT.png|OUT.html", type=OUTPUT_FILE)
@click.option("--x", "x", default=None, help="Column on the horizontal axis.")
@click.option("--y", "y", default=None, help="Column on the vertical axis.")
@click.option("--color", default=None, help="Column that colours the points (a class, cluster or number).")
@click.option("--embed", type=click.Choice(EMBEDDINGS), default=None,
              help="Plot the rows embedded in two dimensions instead.")
@click.option("--columns", default=None, help="Numeric columns to embed (standardized), e.g. a,b,c.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of t-SNE and UMAP.")
@click.pass_context
def plot(ctx, table_path, output, x, y, color, embed, columns, seed):
    """Plot --y against --x, or an embedding of --columns (PCA, t-SNE, UMAP), coloured by --color:
    a PNG, or one self-contained HTML page (hover a point for its row, click a class to hide it).

    Example: igneous-like table plot clustered.csv map.html --embed pca --columns volume,sphericity,
    surface_area --color cluster
    """
    done = submit(ctx, [Stage("plot_table", dict(
        table_path=table_path, output=output, x=x, y=y, color=color, embed=embed,
        columns=tables.columns_list(columns), seed=seed), "plot")])
    if done:
        click.echo(f"{done[0]} points plotted in {output}", err=True)
