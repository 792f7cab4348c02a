"""`table plot`: a PNG that opens and shows every point (counted in the figure that makes it),
its axes and classes; an HTML page that loads nothing from elsewhere and holds every point at
its exact values; a PCA embedding equal to numpy's SVD of the standardized columns."""
import io
import re

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from PIL import Image

from igneous_like import plots
from igneous_like.errors import UserError


@pytest.fixture
def cells(tmp_path):
    """60 objects in three classes; one without a volume."""
    rng = np.random.default_rng(3)
    kind = np.repeat(["axon", "glia", "neuron"], 20)
    table = pd.DataFrame({"label": np.arange(1, 61), "volume": rng.normal(5, 1, 60) + (kind == "glia") * 4,
                          "sphericity": rng.uniform(0.2, 0.9, 60), "area": rng.normal(3, 1, 60),
                          "prediction": kind})
    table.loc[7, "volume"] = np.nan
    table.to_csv(tmp_path / "cells.csv", index=False)
    return table


def drawn_points(figure) -> int:
    return sum(len(collection.get_offsets()) for collection in figure.axes[0].collections)


def svg_points(page: str) -> list:
    found = re.findall(r'<circle [^>]*data-x="([^"]+)" data-y="([^"]+)"', page)
    return [(float(x), float(y)) for x, y in found]


def self_contained(page: str) -> bool:
    return not re.search(r"https?:|//[a-z]|\bsrc=|<link|@import", page, re.IGNORECASE)


def test_scatter_png_and_html_show_every_point(cells, tmp_path):
    axes = ["--x", "volume", "--y", "sphericity", "--color", "prediction"]
    run_cli("table", "plot", tmp_path / "cells.csv", tmp_path / "plot.png", *axes)
    picture = np.asarray(Image.open(tmp_path / "plot.png").convert("RGB")).astype(int)
    assert picture.shape == (550, 700, 3) and (picture.min(axis=2) < 250).mean() > 0.01  # not blank
    for colour in ((31, 119, 180), (255, 127, 14), (44, 160, 44)):  # tab10's first three: the classes
        assert (np.abs(picture - colour).sum(axis=2) < 30).sum() > 100, colour
    shown = cells.dropna(subset=["volume"])
    figure = plots.figure(plots.scatter(cells, "volume", "sphericity", "prediction"))
    ax = figure.axes[0]
    assert drawn_points(figure) == len(shown) == 59
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("volume", "sphericity")
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["axon", "glia", "neuron"]
    points = sorted(tuple(p) for c in ax.collections for p in c.get_offsets().tolist())
    assert points == sorted(zip(shown.volume, shown.sphericity))

    run_cli("table", "plot", tmp_path / "cells.csv", tmp_path / "plot.html", *axes)
    page = (tmp_path / "plot.html").read_text()
    assert self_contained(page)
    assert sorted(svg_points(page)) == sorted(zip(shown.volume, shown.sphericity))  # exact values
    assert page.count('class="point c1"') == 20 and "<li onclick=\"toggle(2)\">" in page
    assert ">volume</text>" in page and ">sphericity</text>" in page


def test_pca_embedding_equals_numpy_svd(cells, tmp_path):
    """Rows with every column, standardized, projected on their two main axes (signs free)."""
    columns = ["volume", "sphericity", "area"]
    run_cli("table", "plot", tmp_path / "cells.csv", tmp_path / "pca.html", "--embed", "pca", "--columns",
            ",".join(columns), "--color", "area")
    values = cells.dropna()[columns].to_numpy()
    standard = (values - values.mean(axis=0)) / values.std(axis=0)
    _, singular, axes = np.linalg.svd(standard, full_matrices=False)
    expected = standard @ axes[:2].T
    page = (tmp_path / "pca.html").read_text()
    got = np.array(svg_points(page))
    signs = np.sign((got * expected).sum(axis=0))
    assert self_contained(page) and got.shape == expected.shape
    assert np.allclose(got * signs, expected, atol=1e-9)
    share = singular ** 2 / (singular ** 2).sum() * 100
    assert f"PC1 ({share[0]:.0f}% of variance)" in page
    assert "linear-gradient" in page  # area's 60 values on a colour scale
    figure = plots.figure(plots.embedding(cells, columns, "pca", "area"))
    assert drawn_points(figure) == 59 and len(figure.axes) == 2  # the points and the colour bar


def test_tsne_and_umap(cells, monkeypatch):
    """t-SNE places every row; UMAP keeps three well-apart groups apart (each point's nearest
    neighbours in the plot are of its group) and, without umap-learn, says how to install it."""
    plot = plots.embedding(cells.iloc[:30], ["volume", "sphericity", "area"], "tsne", "prediction")
    assert len(plot.x) == 29 and np.isfinite(plot.x).all() and plot.xlabel == "t-SNE 1"
    from sklearn.neighbors import KNeighborsClassifier
    rng = np.random.default_rng(4)
    group = np.repeat([0, 1, 2], 40)
    blobs = pd.DataFrame(rng.normal(0, 1, (120, 4)) + group[:, None] * 8, columns=list("abcd"))
    blobs["group"] = group.astype(str)
    plot = plots.embedding(blobs, list("abcd"), "umap", "group")
    placed = np.stack([plot.x, plot.y], axis=1)
    assert placed.shape == (120, 2) and plot.xlabel == "UMAP 1"
    nearest = KNeighborsClassifier(5).fit(placed, group)
    assert (nearest.predict(placed) == group).mean() == 1.0
    monkeypatch.setitem(__import__("sys").modules, "umap", None)
    with pytest.raises(UserError, match="pip install umap-learn"):
        plots.embedding(cells, ["volume", "area"], "umap")


def test_one_point_and_a_png_from_bytes():
    plot = plots.scatter(pd.DataFrame({"a": [1.0], "b": [2.0]}), "a", "b")
    assert Image.open(io.BytesIO(plots.png(plot))).size == (700, 550)


@pytest.mark.parametrize("options, message", [
    (dict(output="out.png", x="volume"), "give --x and --y, or --embed"),
    (dict(output="out.png", x="volume", y="area", embed="pca"), "give --x and --y, or --embed"),
    (dict(output="out.png", x="volume", y="size"), "no column size"),
    (dict(output="out.png", x="volume", y="prediction"), "column prediction does not hold numbers"),
    (dict(output="out.png", embed="pca", columns=["volume"]), "at least 2 columns"),
    (dict(output="out.png", x="volume", y="area", color="size"), "no column size"),
])
def test_mistakes_are_user_errors(cells, tmp_path, options, message):
    options["output"] = str(tmp_path / options["output"])
    with pytest.raises(UserError, match=message):
        plots.plot_table(str(tmp_path / "cells.csv"), **options)
    assert not list(tmp_path.glob("out.*"))


def test_mistake_on_the_command_line_is_one_line_exit_2(cells, tmp_path):
    result = run_cli("table", "plot", tmp_path / "cells.csv", tmp_path / "out.svg", "--x", "volume",
                     "--y", "area", check=False)
    assert result.returncode == 2 and "plots are written as .png or .html" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not list(tmp_path.glob("out.*"))
