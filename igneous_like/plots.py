"""Plots of tables: two columns against each other, an embedding of several (PCA, t-SNE, UMAP),
and the VI split/merge curve of an agglomeration threshold sweep. A Plot holds the points; it
becomes a PNG (matplotlib, Agg backend: no display needed) or one self-contained HTML page
(inline SVG, a point's values shown on hover, a legend entry hides its class on click; nothing
fetched from anywhere).
"""
import io
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from cloudfiles import CloudFile

from igneous_like.errors import UserError

EMBEDDINGS = ("pca", "tsne", "umap")
FORMATS = (".png", ".html")
MAX_CLASSES = 20  # a colour column with more distinct numbers is drawn on a colour scale
MISSING = "missing"


@dataclass
class Plot:
    """Points to draw: x, y, each point's hover text, and its colour value (a class name, or a
    number on a colour scale)."""
    x: np.ndarray
    y: np.ndarray
    xlabel: str
    ylabel: str
    names: List[str]
    title: str = ""
    classes: Optional[np.ndarray] = None
    values: Optional[np.ndarray] = None
    color_label: str = ""
    line: bool = False


def check_output(path: str) -> str:
    if not path.endswith(FORMATS):
        raise UserError(f"{path}: plots are written as .png or .html; name the output so")
    return path


def column_values(table, column: str) -> np.ndarray:
    from igneous_like.tables import numeric_columns
    return numeric_columns(table, [column])[:, 0]


def coloured(plot: Plot, table, color: Optional[str], rows: np.ndarray) -> Plot:
    """The plot coloured by COLOR's values in `rows`: classes, or numbers on a scale when the
    column holds more than MAX_CLASSES distinct numbers."""
    if color is None:
        return plot
    cells = table[color].to_numpy()[rows]
    numeric = table[color].dtype.kind in "iuf"
    if numeric and np.unique(cells[np.isfinite(cells)]).size > MAX_CLASSES:
        plot.values = cells.astype(np.float64)
    else:
        from igneous_like.segment_properties import text
        plot.classes = np.array([text(cell) or MISSING for cell in cells.tolist()], dtype=object)
    plot.color_label = color
    return plot


def hover(table, rows: np.ndarray, columns: Sequence[str]) -> List[str]:
    """Each row's label (when the table has one) and the plotted columns, as hover text."""
    absent = [c for c in columns if c and c not in table.columns]
    if absent:
        raise UserError(f"no column {absent[0]}; the table has {', '.join(map(str, table.columns))}")
    shown = (["label"] if "label" in table.columns else []) + [c for c in dict.fromkeys(columns) if c]
    cells = table[shown].to_numpy()[rows]
    return [", ".join(f"{name} {value}" for name, value in zip(shown, row)) for row in cells.tolist()]


def scatter(table, x: str, y: str, color: Optional[str] = None) -> Plot:
    """Column Y against column X (rows missing either are left out)."""
    xs, ys = column_values(table, x), column_values(table, y)
    rows = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
    if rows.size == 0:
        raise UserError(f"no row has both {x} and {y}: nothing to plot")
    plot = Plot(xs[rows], ys[rows], x, y, hover(table, rows, [x, y, color]), f"{y} against {x}")
    return coloured(plot, table, color, rows)


def embedded(values: np.ndarray, method: str, seed: int = 0) -> Tuple[np.ndarray, List[str]]:
    """Rows of VALUES (standardized columns) in two dimensions, and the axes' names."""
    from sklearn.preprocessing import StandardScaler
    values = StandardScaler().fit_transform(values)
    if method == "pca":
        from sklearn.decomposition import PCA
        pca = PCA(n_components=2, random_state=seed).fit(values)
        share = pca.explained_variance_ratio_ * 100
        return pca.transform(values), [f"PC{i + 1} ({share[i]:.0f}% of variance)" for i in range(2)]
    if method == "tsne":
        from sklearn.manifold import TSNE
        tsne = TSNE(n_components=2, perplexity=min(30.0, (len(values) - 1) / 3), random_state=seed,
                    init="pca")
        return tsne.fit_transform(values), ["t-SNE 1", "t-SNE 2"]
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise UserError("--embed umap needs umap-learn: pip install umap-learn "
                            "(or use --embed pca or tsne)") from None
        return umap.UMAP(random_state=seed).fit_transform(values), ["UMAP 1", "UMAP 2"]
    raise UserError(f"unknown embedding {method!r}; use {', '.join(EMBEDDINGS)}")


def embedding(table, columns: Sequence[str], method: str, color: Optional[str] = None, seed: int = 0) -> Plot:
    """The rows with every column, embedded in two dimensions by METHOD."""
    from igneous_like.tables import numeric_columns
    values = numeric_columns(table, columns)
    rows = np.flatnonzero(np.isfinite(values).all(axis=1))
    if rows.size < 4 or len(columns) < 2:
        raise UserError(f"an embedding needs at least 2 columns and 4 rows with all of them; got "
                        f"{len(columns)} columns and {rows.size} rows")
    points, axes = embedded(values[rows], method, seed)
    plot = Plot(points[:, 0], points[:, 1], axes[0], axes[1], hover(table, rows, list(columns) + [color]),
                f"{method.upper() if method == 'pca' else axes[0][:-2]} of {', '.join(columns)}")
    return coloured(plot, table, color, rows)


def sweep(results: Sequence[dict]) -> Plot:
    """VI split against VI merge, one point per threshold, joined in threshold order."""
    results = sorted(results, key=lambda r: r["threshold"])
    return Plot(np.array([r["vi_merge"] for r in results]), np.array([r["vi_split"] for r in results]),
                "VI merge (bits)", "VI split (bits)",
                [f"threshold {r['threshold']:g}: split {r['vi_split']:.4f}, merge {r['vi_merge']:.4f}"
                 for r in results], "Agglomeration threshold sweep", line=True)


def point_colors(plot: Plot) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Each point's colour (#rrggbb) and the legend (class, colour): classes in tab10/tab20,
    numbers on viridis, missing ones grey."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize, to_hex
    if plot.classes is not None:
        names = sorted(set(plot.classes.tolist()) - {MISSING})
        names += [MISSING] if MISSING in plot.classes else []
        palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
        legend = [(name, "#999999" if name == MISSING else to_hex(palette(i % palette.N)))
                  for i, name in enumerate(names)]
        return [dict(legend)[name] for name in plot.classes], legend
    if plot.values is not None:
        known = plot.values[np.isfinite(plot.values)]
        scale = Normalize(known.min(), known.max()) if known.size else Normalize(0, 1)
        return [to_hex(colormaps["viridis"](scale(v))) if np.isfinite(v) else "#999999"
                for v in plot.values], []
    return ["#1f77b4"] * len(plot.x), []


def figure(plot: Plot):
    """The plot as a matplotlib Figure (no pyplot: no global state, no display)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 5.5), dpi=100)
    ax = fig.add_subplot()
    colors, legend = point_colors(plot)
    if plot.line:
        ax.plot(plot.x, plot.y, color="#bbbbbb", zorder=1)
        for x, y, name in zip(plot.x, plot.y, plot.names):
            ax.annotate(name.split(":")[0].replace("threshold ", ""), (x, y), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    if legend:
        for name, color in legend:
            chosen = plot.classes == name
            ax.scatter(plot.x[chosen], plot.y[chosen], s=12, c=color, label=name, zorder=2)
        ax.legend(title=plot.color_label, fontsize=8, markerscale=1.5)
    else:
        drawn = ax.scatter(plot.x, plot.y, s=12, c=colors, zorder=2)
        if plot.values is not None:
            drawn.set_array(plot.values)
            drawn.set_cmap("viridis")
            fig.colorbar(drawn, ax=ax, label=plot.color_label)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.set_title(plot.title)
    fig.tight_layout()
    return fig


def png(plot: Plot) -> bytes:
    out = io.BytesIO()
    figure(plot).savefig(out, format="png")
    return out.getvalue()


def write(plot: Plot, path: str) -> None:
    """The plot as PNG or HTML, by PATH's extension (a local path or any URL CloudFiles writes)."""
    from igneous_like.plot_html import page
    data = png(plot) if check_output(path).endswith(".png") else page(plot).encode()
    CloudFile(path).put(data, content_type="image/png" if path.endswith(".png") else "text/html")


def plot_table(table_path: str, output: str, x: Optional[str] = None, y: Optional[str] = None,
               color: Optional[str] = None, embed: Optional[str] = None, columns: Sequence[str] = (),
               seed: int = 0) -> int:
    """A plot of TABLE written to OUTPUT: Y against X, or the embedding of COLUMNS; returns the
    number of points."""
    from igneous_like.tables import read_table
    check_output(output)
    if (embed is None) == (x is None or y is None) or (embed is None and columns):
        raise UserError("give --x and --y, or --embed METHOD with --columns A,B,...")
    table = read_table(table_path)
    plot = scatter(table, x, y, color) if embed is None else embedding(table, columns, embed, color, seed)
    write(plot, output)
    return len(plot.x)
