"""Time one contrastive training step at several time decimations (the speed-up measured).

    python bench/train_step.py --batch 64 --threads 1 --repeats 3

Uses the default preset's architecture; the seismic encoder's input length follows
1000 // decimate. Prints a markdown table of seconds a step and samples/s.
"""

import argparse
import time

import torch
from seislens.models.velocity_encoders import build_velocity_clip
from seislens.training.branch_training import load_config
from seislens.training.losses import trimodal_loss


def step_time(decimate: int, batch: int, repeats: int) -> float:
    cfg = load_config("velocity", "default", {"data": {"train": ["unused"]}})
    model_cfg = cfg.model.model_copy(deep=True)
    model_cfg.seismic.time_samples = 1000 // decimate
    model = build_velocity_clip(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.randn(batch, 5, 1000 // decimate, 70)
    v = torch.rand(batch, 1, 70, 70) * 2 - 1
    d = torch.randn(batch, 9)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        loss, _ = trimodal_loss(model(g, v, d), 1.0, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decimate", type=int, nargs="+", default=[1, 2, 4, 8])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, {args.threads} torch thread(s), best of {args.repeats}\n")
    print("| decimate | T' | s/step | samples/s |")
    print("|---|---|---|---|")
    for dec in args.decimate:
        t = step_time(dec, args.batch, args.repeats)
        print(f"| {dec} | {1000 // dec} | {t:.2f} | {args.batch / t:.0f} |")


if __name__ == "__main__":
    main()
