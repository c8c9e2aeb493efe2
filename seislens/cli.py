"""The ``seislens`` command line: one entry point, a sub-command per job.

Commands that need torch import it inside the command, so the serving install (no
torch) can run ``seislens serve`` and ``seislens index``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(help="SeisLens: cross-modal retrieval for seismology.", no_args_is_help=True)
data_app = typer.Typer(help="Generate and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

F = TypeVar("F", bound=Callable[..., Any])


class UsageError(Exception):
    """A problem with the user's input: reported in one line, exit code 2."""


def user_errors(func: F) -> F:
    """Turn input problems (bad values, wrong folders, invalid configs) into exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
            )
            typer.echo(f"error: invalid configuration: {problems}", err=True)
            raise typer.Exit(2) from None
        except (UsageError, ValueError, FileNotFoundError, NotADirectoryError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@data_app.command("velocity")
@user_errors
def data_velocity(
    family: Annotated[str, typer.Option(help="flatvel-a … curvefault-b")],
    count: Annotated[int, typer.Option(help="number of samples")],
    out: Annotated[Path, typer.Option(help="output folder (OpenFWI layout)")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    workers: Annotated[int, typer.Option(help="worker processes (one torch thread each)")] = 2,
    shard_size: Annotated[int, typer.Option(help="samples per data{i}.npy shard")] = 500,
) -> None:
    """Generate an OpenFWI-format velocity dataset with deepwave (resumable)."""
    from seislens.training.velocity_families import check_family
    from seislens.training.velocity_generate import VelocityGenConfig, generate_velocity_dataset

    if count <= 0:
        raise UsageError(f"--count must be positive; got {count}")
    cfg = VelocityGenConfig(
        family=check_family(family),
        count=count,
        seed=seed,
        workers=workers,
        shard_size=shard_size,
    )
    manifest = generate_velocity_dataset(out, cfg)
    run = manifest["last_run"]
    rate = run["samples"] / run["seconds"] if run["seconds"] > 0 else float("nan")
    typer.echo(
        f"{out}: {manifest['count']} {manifest['family']} samples in {manifest['shards']} "
        f"shard(s); generated {run['samples']} in {run['seconds']:.1f} s ({rate:.1f} samples/s)"
    )


@data_app.command("show")
@user_errors
def data_show(
    folder: Annotated[Path, typer.Argument(help="an OpenFWI-format folder")],
    index: Annotated[int, typer.Option(help="sample index (0-based)")] = 0,
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("sample.png"),
) -> None:
    """Draw one sample's velocity model and its five shot gathers."""
    from seislens.training.openfwi import OpenFWIDataset
    from seislens.training.plots import draw_sample

    ds = OpenFWIDataset(folder)
    if not 0 <= index < len(ds):
        raise UsageError(f"--index {index} is out of range; {folder} holds {len(ds)} samples")
    gather, model, desc = ds[index]
    draw_sample(gather, model, out, desc, title=f"{ds.family} sample {index}")
    typer.echo(f"wrote {out}")


def main() -> None:  # pragma: no cover - console entry
    """Console entry point."""
    app(prog_name="seislens")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
