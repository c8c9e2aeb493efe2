"""The ``seislens`` command line: one entry point, a sub-command per job.

Commands that need torch import it inside the command, so the serving install (no
torch) can run ``seislens serve`` and ``seislens index``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from seislens.index.retention import DEFAULT_KEEP
from seislens.models.branches import BRANCH_NAMES, get_branch

BranchName = Enum("BranchName", {name: name for name in BRANCH_NAMES}, type=str)
"""The ``--branch`` choices: every branch of the registry (seislens.models.branches)."""

app = typer.Typer(help="SeisLens: cross-modal retrieval for seismology.", no_args_is_help=True)
data_app = typer.Typer(help="Generate and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Train encoders.", no_args_is_help=True)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(help="Evaluate a bundle on a dataset.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
index_app = typer.Typer(help="Build library indexes inside a bundle.", no_args_is_help=True)
app.add_typer(index_app, name="index")
calibrate_app = typer.Typer(
    help="Calibrate a bundle's familiarity score and spreads.", no_args_is_help=True
)
app.add_typer(calibrate_app, name="calibrate")
bundle_app = typer.Typer(help="Build whole bundles.", no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")
events_app = typer.Typer(help="Scan recordings with a bundle's event branch.", no_args_is_help=True)
app.add_typer(events_app, name="events")

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


TRAIN_EXTRA_INSTALL = 'pip install -e ".[train]"'
"""How to install what the training commands need (the ``train`` extra)."""


def _missing_modules(modules: tuple[str, ...]) -> list[str]:
    """The ``modules`` that cannot be found (not installed, or blocked)."""
    import importlib.util

    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def needs_train_extra(*modules: str) -> Callable[[F], F]:
    """A command that needs the ``train`` extra's ``modules`` (torch, deepwave, onnx):
    when one is missing it says so in one line and exits 2 before doing anything, so
    a serve-only install leaves no output folder behind."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            missing = _missing_modules(modules)
            if missing:
                typer.echo(
                    f"error: this command needs the train extra ({', '.join(missing)} not "
                    f"installed); install it with: {TRAIN_EXTRA_INSTALL}",
                    err=True,
                )
                raise typer.Exit(2)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@data_app.command("velocity")
@user_errors
@needs_train_extra("torch", "deepwave")
def data_velocity(
    family: Annotated[str, typer.Option(help="flatvel-a … curvefault-b")],
    count: Annotated[int, typer.Option(help="number of samples")],
    out: Annotated[Path, typer.Option(help="output folder (OpenFWI layout)")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    workers: Annotated[int, typer.Option(help="worker processes (one torch thread each)")] = 2,
    shard_size: Annotated[int, typer.Option(help="samples per data{i}.npy shard")] = 500,
    physics: Annotated[
        str | None,
        typer.Option(
            help="randomised physics: a preset name (default, openfwi) or a TOML file of "
            "PhysicsRanges; omitted: OpenFWI's fixed setting"
        ),
    ] = None,
) -> None:
    """Generate an OpenFWI-format velocity dataset with deepwave (resumable)."""
    from seislens.data.velocity_families import check_family
    from seislens.data.velocity_generate import VelocityGenConfig, generate_velocity_dataset
    from seislens.data.velocity_physics import PhysicsRanges
    from seislens.training.config import load_config_file

    if count <= 0:
        raise UsageError(f"--count must be positive; got {count}")
    cfg = VelocityGenConfig(
        family=check_family(family),
        count=count,
        seed=seed,
        workers=workers,
        shard_size=shard_size,
        physics=load_config_file(PhysicsRanges, "physics", physics) if physics else None,
    )
    manifest = generate_velocity_dataset(out, cfg)
    run = manifest["last_run"]
    rate = run["samples"] / run["seconds"] if run["seconds"] > 0 else float("nan")
    typer.echo(
        f"{out}: {manifest['count']} {manifest['family']} samples in {manifest['shards']} "
        f"shard(s); generated {run['samples']} in {run['seconds']:.1f} s ({rate:.1f} samples/s)"
    )


@data_app.command("events")
@user_errors
def data_events(
    count: Annotated[int, typer.Option(help="number of traces")],
    out: Annotated[Path, typer.Option(help="output folder (SeisBench format)")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    config: Annotated[
        Path | None,
        typer.Option(help="TOML of generator settings (EventSynthConfig fields; ranges etc.)"),
    ] = None,
) -> None:
    """Generate a synthetic SeisBench-format event dataset (metadata.csv + waveforms.hdf5)."""
    import tomllib

    from pydantic import ValidationError

    from seislens.data.event_synth import EventSynthConfig, generate_events

    if count <= 0:
        raise UsageError(f"--count must be positive; got {count}")
    try:
        fields = tomllib.loads(config.read_text()) if config is not None else {}
        settings = EventSynthConfig(**{**fields, "count": count, "seed": seed})
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise UsageError(f"--config {config}: {exc}") from None
    try:
        generate_events(out, settings)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    typer.echo(f"wrote {count} traces to {out}")


@data_app.command("show")
@user_errors
def data_show(
    folder: Annotated[Path, typer.Argument(help="an OpenFWI-format folder")],
    index: Annotated[int, typer.Option(help="sample index (0-based)")] = 0,
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("sample.png"),
) -> None:
    """Draw one sample's velocity model and its five shot gathers."""
    from seislens.data.openfwi import OpenFWIDataset
    from seislens.training.plots import draw_sample

    ds = OpenFWIDataset(folder)
    if not 0 <= index < len(ds):
        raise UsageError(f"--index {index} is out of range; {folder} holds {len(ds)} samples")
    gather, model, desc = ds[index]
    draw_sample(gather, model, out, desc, title=f"{ds.family} sample {index}")
    typer.echo(f"wrote {out}")


SET_HELP = "override one config value, e.g. optim.lr=2e-3 (repeat the option)"


@train_app.command("velocity")
@user_errors
@needs_train_extra("torch")
def train_velocity_cmd(
    config: Annotated[str, typer.Option(help="TOML/YAML file, or a preset: tiny, default")],
    run: Annotated[Path, typer.Option(help="run folder (checkpoints, metrics)")] = Path(
        "runs/velocity"
    ),
    data: Annotated[
        list[Path] | None, typer.Option(help="training folders (override the config's)")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="override optim.epochs")] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many steps")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
) -> None:
    """Train the velocity-branch encoders (resumes an interrupted run)."""
    overrides: dict[str, Any] = {}
    if data:
        overrides["data"] = {"train": [str(d) for d in data]}
    optim = {k: v for k, v in {"epochs": epochs, "max_steps": max_steps}.items() if v}
    if optim:
        overrides["optim"] = optim
    _train("velocity", config, run, overrides, set_)


@train_app.command("average")
@user_errors
@needs_train_extra("torch")
def train_average_cmd(
    runs: Annotated[list[Path], typer.Argument(help="run folders of one branch (two or more)")],
    out: Annotated[Path, typer.Option(help="the new run folder of the average")],
) -> None:
    """Average the best weights of runs fine-tuned from each other (a model soup)."""
    from seislens.training.run_average import average_runs

    typer.echo(f"wrote {average_runs(runs, out)}")


def _train(
    branch: str, config: str, run: Path, overrides: dict[str, Any], sets: list[str] | None
) -> None:
    """Load ``branch``'s config with the options' overrides (``--set`` last), train."""
    from seislens.training.branch_training import load_config, train
    from seislens.training.config import merge_overrides, parse_set_options

    overrides = merge_overrides(overrides, parse_set_options(sets or []))
    last = train(load_config(branch, config, overrides), run)
    typer.echo(f"run {run}: {last}")


@app.command("export")
@user_errors
@needs_train_extra("torch", "onnx")
def export_cmd(
    run: Annotated[Path, typer.Option(help="a training run folder")],
    bundle: Annotated[Path, typer.Option(help="the bundle folder to write (created if absent)")],
    branch: Annotated[
        BranchName,
        typer.Option(help="the branch whose section and encoders are replaced (only that one)"),
    ] = BranchName("velocity"),
    tolerance: Annotated[float, typer.Option(help="max |onnx - torch| allowed")] = 1e-4,
    which: Annotated[str, typer.Option(help="best (validation-selected) or last weights")] = (
        "best"
    ),
) -> None:
    """Export a run's encoders to ONNX (checked against torch) into a bundle."""
    from seislens.pipeline import export_to_bundle

    name = branch.value
    section = export_to_bundle(name, run, bundle, tolerance, which).section(name)
    parity = {k: _parity_line(v) for k, v in section.parity.items()}
    typer.echo(
        f"wrote {name} encoders to {bundle}; onnxruntime vs torch (tolerance {tolerance:g} "
        f"on the checked difference): {parity}"
    )


def _parity_line(parity: dict[str, Any]) -> str:
    """One encoder's parity: the worst raw difference (in its outputs' units), and the
    checked one when an output is compared in its own scale."""
    raw = f"{parity['max_abs_diff']:.1e}"
    checked = parity.get("checked")
    if checked is not None and abs(checked - parity["max_abs_diff"]) > 1e-12:
        raw += f" (checked {checked:.1e})"
    return f"{raw} on {parity.get('provider', '?')}"


class Engine(StrEnum):
    """Where ``index build`` and ``serve`` run."""

    local = "local"
    ray = "ray"


def _cluster_import(module: str) -> Any:
    """A module of the cluster extra; a usage error naming the extra when ray is absent."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = "" if "cluster extra" in str(exc) else "; install it: pip install -e '.[cluster]'"
        raise UsageError(f"{exc}{hint}") from None


@index_app.command("build")
@user_errors
def index_build_cmd(
    bundle: Annotated[Path, typer.Option(help="the bundle folder")],
    library: Annotated[
        list[str],
        typer.Option(
            help="library folders (repeat the option); --engine ray: or filesystem URLs "
            "pyarrow resolves (file:///abs/path, s3://bucket/lib, ...)"
        ),
    ],
    branch: Annotated[
        BranchName,
        typer.Option(
            help="velocity (OpenFWI or model .npy folders) or events (SeisBench-format folders)"
        ),
    ] = BranchName("velocity"),
    add: Annotated[bool, typer.Option(help="append to the existing index")] = False,
    kind: Annotated[str, typer.Option(help="flat (exact), hnsw or ivfpq")] = "flat",
    max_per_folder: Annotated[int | None, typer.Option(help="cap items per folder")] = None,
    keep: Annotated[
        int,
        typer.Option(
            min=1,
            help="index folders of the branch kept, the new one included; folders a "
            "running service holds (its lease) are kept besides",
        ),
    ] = DEFAULT_KEEP,
    engine: Annotated[
        Engine, typer.Option(help="local (this process) or ray (Ray Data; the cluster extra)")
    ] = Engine.local,
    address: Annotated[
        str | None, typer.Option(help="--engine ray: the Ray cluster (default: start a local one)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="--engine ray: embedding actors")] = 2,
    shards: Annotated[
        int, typer.Option(min=1, help="also write the index as this many shards")
    ] = 1,
    threads: Annotated[
        int,
        typer.Option(
            min=0, help="--engine local: ONNX Runtime threads (0: one a core); ray: per actor"
        ),
    ] = 0,
) -> None:
    """Embed a library into the bundle's index; the new index is swapped in atomically."""
    from seislens.index.builder import BuildConfig, build
    from seislens.index.vector_index import VectorIndexConfig

    cfg = BuildConfig(
        index=VectorIndexConfig(kind=kind),
        add=add,
        max_per_folder=max_per_folder,
        keep=keep,
        shards=shards,
        threads=threads,
    )
    if engine is Engine.ray:
        ray_build = _cluster_import("seislens.index.ray_build")
        run = ray_build.RayEngine(address=address, workers=workers, cpus_per_worker=threads or 1)
        entry = ray_build.ray_build(bundle, get_branch(branch.value), library, cfg, run)
    elif urls := [s for s in library if "://" in s]:
        raise UsageError(f"library URLs ({', '.join(urls)}) need --engine ray")
    else:
        entry = build(bundle, get_branch(branch.value), [Path(s) for s in library], cfg)
    typer.echo(f"{bundle}: {branch.value} index {entry.path} with {entry.count} items")


@calibrate_app.command("velocity")
@user_errors
def calibrate_velocity_cmd(
    bundle: Annotated[Path, typer.Option(help="the bundle folder (its manifest is updated)")],
    data: Annotated[
        list[Path],
        typer.Option(help="held-out OpenFWI folder(s): velocity models not in the library"),
    ],
    k: Annotated[int, typer.Option(help="neighbours per query (the service's default k)")] = 10,
    warn_below: Annotated[
        float, typer.Option(help="familiarity under which answers carry a warning")
    ] = 0.05,
    density_data: Annotated[
        list[Path] | None,
        typer.Option(
            help="OpenFWI folder(s) of the library's kind, not calibration folders (e.g. "
            "the training data): fit the gather-embedding density of a joint familiarity"
        ),
    ] = None,
    density_max_per_folder: Annotated[int, typer.Option(help="gathers per density folder")] = 500,
    density_shrinkage: Annotated[
        float | None, typer.Option(help="covariance shrinkage in [0, 1] (default 0.05)")
    ] = None,
) -> None:
    """Calibrate the familiarity score and descriptor spreads of the velocity index."""
    from seislens.pipeline import calibrate_velocity_bundle

    cal = calibrate_velocity_bundle(
        bundle,
        data,
        k,
        warn_below,
        density_data=density_data,
        density_max_per_folder=density_max_per_folder,
        density_shrinkage=density_shrinkage,
    )
    scales = ", ".join(f"{n} ×{v:.2f}" for n, v in cal.std_scale.items())
    typer.echo(
        f"{bundle}: calibrated on {cal.queries} queries (k={cal.k}); best-score median "
        f"{cal.top1_scores[len(cal.top1_scores) // 2]:.3f}; spread factors: {scales}"
    )


@eval_app.command("velocity")
@user_errors
def eval_velocity_cmd(
    bundle: Annotated[Path, typer.Option(help="the bundle folder")],
    data: Annotated[list[Path], typer.Option(help="OpenFWI folder(s) to evaluate on")],
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Closed- and open-set metrics of a bundle on OpenFWI-format data."""
    import json

    from seislens.pipeline import evaluate

    result = evaluate("velocity", bundle, data, progress=not json_out)
    if json_out:
        typer.echo(json.dumps(result))
        return
    typer.echo(json.dumps(result, indent=2))


@bundle_app.command("build")
@user_errors
@needs_train_extra("torch", "deepwave", "onnx")
def bundle_build_cmd(
    preset: Annotated[str, typer.Option(help="a preset name (default) or a TOML file")],
) -> None:
    """Generate data, train, export, index and evaluate a whole bundle (resumable)."""
    import json

    from seislens.pipeline import build_bundle, load_preset

    result = build_bundle(load_preset(preset))
    typer.echo(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "gallery_size",
                    "seismic_to_velocity",
                    "velocity_to_descriptor",
                    "descriptor_mre",
                )
            }
        )
    )


@app.command("serve")
@user_errors
def serve_cmd(
    bundle: Annotated[Path, typer.Option(help="the bundle folder to serve")] = Path(
        "artifacts/default"
    ),
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    engine: Annotated[
        Engine, typer.Option(help="local (uvicorn) or ray (Ray Serve replicas; the cluster extra)")
    ] = Engine.local,
    replicas: Annotated[int, typer.Option(min=1, help="--engine ray: replicas at start")] = 2,
    address: Annotated[
        str | None, typer.Option(help="--engine ray: the Ray cluster (default: start a local one)")
    ] = None,
) -> None:
    """Start the HTTP service (uvicorn, or Ray Serve with --engine ray) on a bundle."""
    from seislens.service.server import serve

    if not (bundle / "manifest.json").exists():
        raise UsageError(f"{bundle} is not a bundle (no manifest.json); build or export one")
    if engine is Engine.ray:
        ray_serve = _cluster_import("seislens.service.ray_serve")
        ray_serve.serve_on_ray(bundle, host, port, replicas, address)
        return
    serve(bundle, host, port, log_level)


@train_app.command("events")
@user_errors
@needs_train_extra("torch")
def train_events_cmd(
    config: Annotated[str, typer.Option(help="TOML/YAML file, or a preset: tiny, default")],
    run: Annotated[Path, typer.Option(help="run folder (checkpoints, metrics)")] = Path(
        "runs/events"
    ),
    data: Annotated[Path | None, typer.Option(help="SeisBench-format folder (overrides)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
) -> None:
    """Train the event-branch encoders and heads (resumes an interrupted run)."""
    overrides: dict[str, Any] = {"data": {"folder": str(data)}} if data else {}
    _train("events", config, run, overrides, set_)


@eval_app.command("events")
@user_errors
def eval_events_cmd(
    bundle: Annotated[Path, typer.Option(help="the bundle folder")],
    data: Annotated[Path, typer.Option(help="SeisBench-format folder to evaluate on")],
    split: Annotated[str, typer.Option(help="split to score; 'all' for every trace")] = "test",
    window: Annotated[
        str,
        typer.Option(
            help="catalog: windows on the catalogued P picks; auto: as an upload without a "
            "pick gets them (STA/LTA, else the start)"
        ),
    ] = "catalog",
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Event-type accuracy, macro-F1, k-NN vote and source-parameter errors of a bundle."""
    import json

    from seislens.pipeline import evaluate

    result = evaluate(
        "events", bundle, data, split=None if split == "all" else split, window=window
    )
    typer.echo(json.dumps(result) if json_out else json.dumps(result, indent=2))


@events_app.command("scan")
@user_errors
def events_scan_cmd(
    files: Annotated[list[Path], typer.Argument(help="miniSEED recordings (hours, days)")],
    bundle: Annotated[Path, typer.Option(help="the bundle folder")] = Path("artifacts/default"),
    stride: Annotated[
        float | None,
        typer.Option(help="window step (s) (unset: the scan's default, ScanConfig.stride_s)"),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="event probability (1 - P(noise)) a window must pass (unset: the scan's "
            "default, ScanConfig.threshold)"
        ),
    ] = None,
    peak_threshold: Annotated[
        float | None,
        typer.Option(
            help="event probability a detection's best window must reach (unset: the "
            "scan's default, ScanConfig.peak_threshold)"
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="output folder (one sub-folder per file)")] = Path(
        "scans"
    ),
    stationxml: Annotated[
        Path | None, typer.Option(help="StationXML of the stations: locate the events")
    ] = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads")] = 1,
) -> None:
    """Scan long recordings: sliding 60 s windows, detections, events; writes
    result.json, detections.csv, events.quakeml and probabilities.mseed per file."""
    from seislens.service.scan_cli import scan_files

    if not (bundle / "manifest.json").exists():
        raise UsageError(f"{bundle} is not a bundle (no manifest.json)")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    lines = scan_files(files, bundle, stride, threshold, out, stationxml, threads, peak_threshold)
    for line in lines:
        typer.echo(line)


def main() -> None:  # pragma: no cover - console entry
    """Console entry point."""
    app(prog_name="seislens")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
