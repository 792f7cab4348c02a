"""A Plot (igneous_like.plots) as one self-contained HTML page: inline SVG drawn here, each
point's values in its hover text, a legend whose entries hide or show their class on click. It
loads nothing: no script, style or font from elsewhere."""
from html import escape
from typing import List, Tuple

import numpy as np

WIDTH, HEIGHT = 720, 540
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 40, 60
TOGGLE = ("function toggle(k){document.querySelectorAll('.c'+k).forEach("
          "function(e){e.style.display=e.style.display?'':'none';});}")


def span(values: np.ndarray) -> Tuple[float, float]:
    """The axis range: the values' with 5% to spare (a width of 1 around a single value)."""
    low, high = float(np.min(values)), float(np.max(values))
    pad = (high - low) * 0.05 if high > low else max(abs(low) * 0.5, 0.5)
    return low - pad, high + pad


def ticks(low: float, high: float) -> List[float]:
    from matplotlib.ticker import MaxNLocator
    return [t for t in MaxNLocator(6).tick_values(low, high) if low <= t <= high]


def axes(plot, sx, sy, xr, yr) -> List[str]:
    """The frame, tick marks with their numbers, and the axis titles."""
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{right - LEFT}" height="{bottom - TOP}" fill="none" '
             'stroke="#444"/>']
    for t in ticks(*xr):
        parts.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{bottom}" y2="{bottom + 5}" '
                     f'stroke="#444"/><text x="{sx(t):.1f}" y="{bottom + 18}" text-anchor="middle">'
                     f'{t:.4g}</text>')
    for t in ticks(*yr):
        parts.append(f'<line x1="{LEFT - 5}" x2="{LEFT}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#444"/>'
                     f'<text x="{LEFT - 8}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.4g}</text>')
    parts.append(f'<text class="xlabel" x="{(LEFT + right) / 2}" y="{HEIGHT - 15}" text-anchor="middle">'
                 f'{escape(plot.xlabel)}</text>')
    parts.append(f'<text class="ylabel" transform="translate(18 {(TOP + bottom) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(plot.ylabel)}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-weight="bold">'
                 f'{escape(plot.title)}</text>')
    return parts


def points(plot, sx, sy, colors: List[str], legend) -> List[str]:
    """One circle per point, carrying its exact values (data-x, data-y) and its hover text."""
    group = {name: k for k, (name, _) in enumerate(legend)}
    parts = []
    if plot.line:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(plot.x, plot.y))
        parts.append(f'<polyline points="{path}" fill="none" stroke="#bbbbbb"/>')
    for i, (x, y, name) in enumerate(zip(plot.x.tolist(), plot.y.tolist(), plot.names)):
        k = group.get(plot.classes[i]) if plot.classes is not None else None
        parts.append(f'<circle class="point{"" if k is None else f" c{k}"}" cx="{sx(x):.2f}" '
                     f'cy="{sy(y):.2f}" r="3.5" fill="{colors[i]}" data-x="{x!r}" data-y="{y!r}">'
                     f'<title>{escape(name)}</title></circle>')
        if plot.line:
            parts.append(f'<text x="{sx(x) + 5:.1f}" y="{sy(y) - 5:.1f}" font-size="10">'
                         f'{escape(name.split(":")[0])}</text>')
    return parts


def key(plot, legend) -> str:
    """The legend: clickable classes, or the colour scale of a numeric column."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    if legend:
        items = "".join(f'<li onclick="toggle({k})"><span style="background:{color}"></span>'
                        f'{escape(name)}</li>' for k, (name, color) in enumerate(legend))
        return f"<p>{escape(plot.color_label)} (click to hide or show)</p><ul>{items}</ul>"
    if plot.values is None:
        return ""
    known = plot.values[np.isfinite(plot.values)]
    stops = ", ".join(to_hex(colormaps["viridis"](f)) for f in np.linspace(0, 1, 9))
    low, high = (known.min(), known.max()) if known.size else (0, 0)
    return (f'<p>{escape(plot.color_label)}: {low:.4g} <span class="scale" style="background:'
            f'linear-gradient(to right, {stops})"></span> {high:.4g}</p>')


def page(plot) -> str:
    """The whole HTML document."""
    from igneous_like.plots import point_colors
    colors, legend = point_colors(plot)
    xr, yr = span(plot.x), span(plot.y)
    sx = lambda v: LEFT + (v - xr[0]) / (xr[1] - xr[0]) * (WIDTH - RIGHT - LEFT)  # noqa: E731
    sy = lambda v: HEIGHT - BOTTOM - (v - yr[0]) / (yr[1] - yr[0]) * (HEIGHT - BOTTOM - TOP)  # noqa: E731
    svg = "\n".join([f'<svg width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
                     *axes(plot, sx, sy, xr, yr), *points(plot, sx, sy, colors, legend), "</svg>"])
    style = ("body{font-family:sans-serif;display:flex;gap:16px}ul{list-style:none;padding:0}"
             "li{cursor:pointer}li span{display:inline-block;width:12px;height:12px;margin-right:6px}"
             ".scale{display:inline-block;width:120px;height:12px}circle:hover{stroke:#000}")
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(plot.title)}</title>'
            f"<style>{style}</style><script>{TOGGLE}</script></head>\n<body>{svg}\n"
            f"<div>{key(plot, legend)}<p>{len(plot.x)} points</p></div></body></html>\n")
