"""The data a matplotlib figure draws, in data coordinates, as plain JSON: what the report's
figures show, written beside them (figures/data.json) so that a figure can be re-plotted, and
two reports compared, without reading pixels.

Hand-written: matplotlib has no export of a figure's data; this walks its artists (lines,
collections, patches, texts) and reads the public getters of each."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _plain(values: Any) -> Any:
    """Nested lists of floats (NaN, inf and masked values as None)."""
    arr = np.ma.filled(np.ma.masked_invalid(np.ma.asarray(values, dtype=float)), np.nan)
    return [_plain_item(v) for v in arr.tolist()] if arr.ndim else _plain_item(arr.item())


def _plain_item(v: Any) -> Any:
    if isinstance(v, list):
        return [_plain_item(x) for x in v]
    return None if not math.isfinite(v) else v


def _collection(c) -> dict[str, Any]:
    """A collection: scatter offsets and sizes, fill or bar polygons, mesh values."""
    from matplotlib.collections import LineCollection, QuadMesh
    out: dict[str, Any] = {"type": type(c).__name__, "label": c.get_label()}
    if isinstance(c, QuadMesh):
        out["coordinates"] = _plain(c.get_coordinates())
    elif isinstance(c, LineCollection):
        out["segments"] = [_plain(s) for s in c.get_segments()]
    else:
        out["paths"] = [_plain(p.vertices) for p in c.get_paths()]
    offsets = np.asarray(c.get_offsets())
    if offsets.size and not np.allclose(offsets, 0):
        out["offsets"] = _plain(offsets)
    if hasattr(c, "get_sizes") and len(c.get_sizes()):
        out["sizes"] = _plain(c.get_sizes())
    if c.get_array() is not None:
        out["values"] = _plain(c.get_array())
    return out


def _text(t) -> dict[str, Any]:
    out: dict[str, Any] = {"text": t.get_text(), "position": _plain(t.get_position())}
    if hasattr(t, "xy"):  # an annotation (arrow): where it points
        out["xy"] = _plain(t.xy)
    return out


def _axes(ax) -> dict[str, Any]:
    legend = ax.get_legend()
    return {
        "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
        "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
        "xlim": _plain(ax.get_xlim()), "ylim": _plain(ax.get_ylim()),
        "lines": [{"label": ln.get_label(), "xy": _plain(ln.get_xydata())}
                  for ln in ax.get_lines()],
        "collections": [_collection(c) for c in ax.collections],
        # patches (bars, spans) in data coordinates: the patch transform maps the path there
        "patches": [{"type": type(p).__name__, "label": p.get_label(),
                     "outline": _plain(p.get_patch_transform().transform(
                         p.get_path().vertices))} for p in ax.patches],
        "texts": [_text(t) for t in ax.texts],
        "legend": [t.get_text() for t in legend.get_texts()] if legend else []}


def figure_data(fig) -> dict[str, Any]:
    """Every axes of `fig` with the data it draws (see the module docstring)."""
    return {"axes": [_axes(ax) for ax in fig.axes]}
