"""Pictures a person can check by eye (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from seislens.models.descriptors import DESCRIPTOR_NAMES, DESCRIPTOR_UNITS


def draw_sample(
    gather: np.ndarray,
    model: np.ndarray,
    out: Path,
    descriptors: np.ndarray | None = None,
    title: str = "",
    dx: float = 10.0,
    dt: float = 0.001,
) -> Path:
    """Draw a velocity model beside its shot gathers and save a PNG.

    Args:
        gather: (shots, time, receivers) amplitudes.
        model: (nz, nx) velocities in m/s.
        out: the PNG path to write.
        descriptors: optional (9,) descriptor vector printed under the model.
        title: figure title.
        dx: grid spacing (m); dt: sample interval (s).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = gather.shape[0]
    fig, axes = plt.subplots(1, shots + 1, figsize=(3.2 * (shots + 1), 5.2))
    nz, nx = model.shape
    im = axes[0].imshow(model, cmap="jet", extent=(0, nx * dx, nz * dx, 0), vmin=1500, vmax=4500)
    axes[0].set(title="velocity model", xlabel="x (m)", ylabel="depth (m)")
    fig.colorbar(im, ax=axes[0], fraction=0.046, label="m/s")
    if descriptors is not None:
        lines = [
            f"{n}: {v:.3g} {DESCRIPTOR_UNITS[n]}"
            for n, v in zip(DESCRIPTOR_NAMES, descriptors, strict=True)
        ]
        half = (len(lines) + 1) // 2
        text = "   ".join(lines[:half]) + "\n" + "   ".join(lines[half:])
        fig.text(0.01, 0.01, text, fontsize=8, va="bottom", family="monospace")
    clip = float(np.percentile(np.abs(gather), 99)) or 1.0
    nt, nr = gather.shape[1], gather.shape[2]
    for k in range(shots):
        ax = axes[k + 1]
        ax.imshow(
            gather[k],
            cmap="gray",
            aspect="auto",
            vmin=-clip,
            vmax=clip,
            extent=(0, nr * dx, nt * dt, 0),
        )
        ax.set(title=f"shot {k + 1}", xlabel="receiver x (m)")
        if k == 0:
            ax.set_ylabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1 if descriptors is not None else 0, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
