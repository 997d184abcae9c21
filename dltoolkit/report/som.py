"""Pictures of a trained self-organizing map: its U-matrix, hit map, the segment each unit
mostly holds, and one component plane per input feature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit.models.som import (
    component_planes,
    hit_map,
    label_map,
    quantization_error,
    topographic_error,
)
from dltoolkit.models.som import u_matrix as unit_distances
from dltoolkit.plots import pyplot, save_figure


def som_pictures(
    som: keras.Model, x: np.ndarray, segments: np.ndarray, folder: Path, numeric: list[str]
) -> dict[str, Any]:
    """Write u_matrix.png, hit_map.png, som_segments.png and som_components.png; return
    the map's errors."""
    plt = pyplot()
    count = int(segments.max()) + 1
    # One colour per segment and one for units no row maps to.
    segment_colours = {"cmap": plt.get_cmap("tab10", count + 1), "vmin": -1.5, "vmax": count - 0.5}
    pictures = {
        "u_matrix.png": (
            unit_distances(som),
            "U-matrix (mean distance to neighbours)",
            {"cmap": "bone_r"},
            None,
        ),
        "hit_map.png": (hit_map(som, x), "Hit map (rows per unit)", {"cmap": "viridis"}, None),
        "som_segments.png": (
            label_map(som, x, segments, empty=-1).astype(float),
            "Segment most rows of each unit belong to (-1: no rows)",
            segment_colours,
            list(range(-1, count)),
        ),
    }
    for filename, (values, title, colours, ticks) in pictures.items():
        figure, axes = plt.subplots(figsize=(5, 4.2))
        image = axes.imshow(values, **colours)
        figure.colorbar(image, ax=axes, ticks=ticks)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("map column")
        axes.set_ylabel("map row")
        save_figure(figure, folder / filename)
    component_planes_picture(som, numeric, folder)
    return {
        "map_shape": list(hit_map(som, x).shape),
        "quantization_error": quantization_error(som, x),
        "topographic_error": topographic_error(som, x),
        "images": sorted(pictures),
    }


def component_planes_picture(som: keras.Model, numeric: list[str], folder: Path) -> None:
    """``som_components.png``: one small map per input feature (at most 12), named after
    the table's numeric columns where the encoding holds one value per column."""
    every = component_planes(som)
    planes = every[:12]
    # The FeatureSpace concatenates its features in name order, one value per numeric one.
    names = sorted(numeric) if len(numeric) == len(every) else []
    plt = pyplot()
    columns = min(4, len(planes))
    rows = -(-len(planes) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.9 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(planes):
            axis.set_visible(False)
            continue
        image = axis.imshow(planes[index], cmap="coolwarm")
        figure.colorbar(image, ax=axis, shrink=0.8)
        axis.set_title(names[index] if names else f"encoded feature {index}", fontsize=9)
        axis.set_axis_off()
    save_figure(figure, folder / "som_components.png")
