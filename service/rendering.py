"""Velocity models as downloads: ``.npy`` bytes and PNG images (matplotlib, Agg)."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from fastapi import Response

ModelFormat = Literal["json", "npy", "png"]

SPACING_M = 10.0
"""Grid spacing dx = dz of the velocity models (OpenFWI's)."""

BINARY_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The model: JSON (format=json), a float32 .npy array (format=npy) "
        "or a PNG image (format=png)",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
"""The non-JSON 200 answers of the model routes, for the OpenAPI document."""


def as_rows(velocity: np.ndarray) -> list[list[float]]:
    """A (nz, nx) model as nested lists rounded to 0.1 m/s (JSON-friendly)."""
    return np.round(np.asarray(velocity, dtype=np.float64), 1).tolist()


def npy_response(velocity: np.ndarray, filename: str) -> Response:
    """The model as a float32 .npy file (np.load reads it; no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(velocity, dtype=np.float32), allow_pickle=False)
    return Response(
        buffer.getvalue(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def png_response(velocity: np.ndarray, title: str) -> Response:
    """The model as a PNG image: depth down, distance across, colour bar in m/s."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v = np.asarray(velocity, dtype=np.float32)
    nz, nx = v.shape
    fig = Figure(figsize=(5.0, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(
        v, cmap="viridis", aspect="equal", extent=(0, nx * SPACING_M, nz * SPACING_M, 0)
    )
    ax.set_xlabel("distance (m)")
    ax.set_ylabel("depth (m)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="velocity (m/s)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return Response(buffer.getvalue(), media_type="image/png")
