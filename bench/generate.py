"""Generator speed against bare deepwave calls on the same models and settings.

    python bench/generate.py --count 200 --workers 2

Prints samples/s for (a) `generate_velocity_dataset` (models, deepwave, descriptors,
atomic shard writes, manifest) and (b) bare `deepwave.scalar` calls on the same models in
the same number of one-thread worker processes, and the generator's overhead. Both are
timed from the creation of their worker pool (the generator's manifest records its run
that way), so the workers' start-up counts on both sides; the bare calls' time after
start-up is printed beside it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
from seislens.data.velocity_families import velocity_models
from seislens.data.velocity_forward import ForwardConfig, source_columns
from seislens.data.velocity_generate import VelocityGenConfig, generate_velocity_dataset
from seislens.data.wavelets import ricker


def _init() -> None:
    import torch

    torch.set_num_threads(1)


def _bare(v: np.ndarray) -> float:
    """One bare deepwave call with the generator's settings; returns a checksum."""
    import deepwave
    import torch

    cfg = ForwardConfig()
    src = torch.zeros(5, 1, 2, dtype=torch.long)
    src[:, 0, 0] = 1
    src[:, 0, 1] = torch.from_numpy(source_columns(5, 70))
    rec = torch.zeros(5, 70, 2, dtype=torch.long)
    rec[:, :, 0] = 1
    rec[:, :, 1] = torch.arange(70)
    amp = torch.from_numpy(ricker(cfg.freq, cfg.nt, cfg.dt)).reshape(1, 1, -1).repeat(5, 1, 1)
    out = deepwave.scalar(
        torch.from_numpy(v),
        cfg.dx,
        cfg.dt,
        source_amplitudes=amp,
        source_locations=src,
        receiver_locations=rec,
        pml_width=cfg.pml_width,
        pml_freq=cfg.freq,
        max_vel=cfg.max_vel,
        courant_number=cfg.courant_number,
    )
    return float(out.receiver_amplitudes.abs().sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--family", default="curvefault-b")
    args = parser.parse_args()

    models = velocity_models(args.family, 0, 0, args.count)
    # Timed like the generator's own run (its manifest's last_run): from the pool's
    # creation, so the workers' start-up (spawn, torch and deepwave imports) counts on
    # both sides; the warm-up call below is where the bare workers pay it.
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers, _init) as pool:
        pool.map(_bare, models[: args.workers])
        t1 = time.perf_counter()
        pool.map(_bare, models[args.workers :], chunksize=10)
        bare = time.perf_counter() - t0
        bare_after = time.perf_counter() - t1

    with tempfile.TemporaryDirectory() as tmp:
        cfg = VelocityGenConfig(family=args.family, count=args.count, seed=0, workers=args.workers)
        t0 = time.perf_counter()
        manifest = generate_velocity_dataset(Path(tmp) / "ds", cfg, progress=False)
        total = time.perf_counter() - t0
        loop = manifest["last_run"]["seconds"]

    print("| what | samples | workers | seconds | samples/s |")
    print("|---|---|---|---|---|")
    rest = args.count - args.workers
    rows = [
        ("bare deepwave.scalar, from the pool's start", args.count, bare),
        ("bare deepwave.scalar, after start-up", rest, bare_after),
        ("generator, from the pool's start (manifest last_run)", args.count, loop),
        ("generator, whole call (folder, manifest)", args.count, total),
    ]
    for name, n, sec in rows:
        print(f"| {name} | {n} | {args.workers} | {sec:.1f} | {n / sec:.1f} |")
    overhead = 100 * (loop / bare - 1)
    print(f"\ngenerator overhead over bare deepwave, both from the pool's start: {overhead:.1f} %")


if __name__ == "__main__":
    main()
