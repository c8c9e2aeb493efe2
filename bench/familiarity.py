"""How often the familiarity warning fires on in-family gathers the bundle never saw.

    OMP_NUM_THREADS=1 python bench/familiarity.py --bundle artifacts/default \
        --data data/test --data data/calib800

Each ``--data`` is a folder of OpenFWI-format family folders (velocity models not in the
bundle's library, none of them the calibration's own): every gather is scored as the
service scores an upload (its best library score's empirical CDF among the calibration
queries, joint with its embedding's distance when the calibration has a density,
capped by the signal factor of its lateral SNR: ``robustness.familiarity_of``)
and the table gives, per folder and per family, the queries, the share warned (familiarity
below the calibration's ``warn_below``; goal ≤ 5 %) and the median familiarity. A
bigger sample than ``bench/robustness.py``'s 200 queries a row pins the rate down: its
binomial standard error at 5 % is 1.5 points on 200 queries, 0.7 on 1,000. Synthetic.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import print_table
from robustness import bundle_density, familiarity_of, warned_rate
from seislens.data.openfwi import OpenFWIDataset
from seislens.index.bundle import read_manifest
from seislens.index.library import LoadedLibrary
from seislens.models.branches import VELOCITY
from seislens.models.embedders import VelocityEmbedder


def score_folder(
    embedder: VelocityEmbedder,
    library: LoadedLibrary,
    folder: Path,
    cal: object,
    density: object = None,
) -> list[tuple[str, np.ndarray]]:
    """(family, familiarity (N,)) for each family folder under ``folder``."""
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        ds = OpenFWIDataset(sub)
        gathers = np.concatenate([block for _, block in ds.iter_gathers(batch=64)])
        seismic = np.concatenate(
            [embedder.embed_gathers(gathers[i : i + 64]) for i in range(0, len(gathers), 64)]
        )
        out.append((ds.family, familiarity_of(library, seismic, cal, gathers, density)))
    return out


def main(argv: list[str] | None = None) -> list[list[str]]:
    """Print the table; returns its rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("artifacts/default"))
    ap.add_argument("--data", type=Path, action="append", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    manifest = read_manifest(args.bundle)
    cal = manifest.velocity.calibration
    if cal is None:
        ap.error(f"{args.bundle} has no velocity calibration (seislens calibrate velocity)")
    embedder = VelocityEmbedder(args.bundle, manifest.velocity, None, args.threads)
    library = LoadedLibrary.open(args.bundle, manifest, VELOCITY)
    density = bundle_density(args.bundle, cal)
    rows: list[list[str]] = []
    try:
        for folder in args.data:
            per_family = score_folder(embedder, library, folder, cal, density)
            every = np.concatenate([f for _, f in per_family])
            for name, fam in [*per_family, ("all", every)]:
                rows.append(
                    [
                        f"{folder} {name}",
                        str(len(fam)),
                        f"{warned_rate(fam, cal):.3f}",
                        f"{float(np.median(fam)):.3f}",
                    ]
                )
    finally:
        library.close()
    print(
        f"## Familiarity warning on in-family held-out gathers (synthetic), bundle "
        f"{args.bundle}, warn below {cal.warn_below}, calibrated on {cal.queries} "
        f"queries, {'joint with the embedding density' if density else 'best score only'}\n"
    )
    print_table(["queries", "count", "warned", "median familiarity"], rows)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return rows


if __name__ == "__main__":
    main()
