"""In a serve-only install (torch, deepwave and onnx unimportable:
tests/no_training/sitecustomize.py), the CLI commands that need the ``train`` extra say
so in one line — what to install — and exit 2, leaving nothing behind; the real CLI in
a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from seislens.cli import TRAIN_EXTRA_INSTALL, needs_train_extra

BLOCKER = Path(__file__).resolve().parent / "no_training"

COMMANDS = {
    "data velocity": (
        ["data", "velocity", "--family", "flatvel-a", "--count", "2", "--out", "out"],
        "deepwave",
    ),
    "train velocity": (["train", "velocity", "--config", "tiny", "--run", "run"], "torch"),
    "train events": (["train", "events", "--config", "tiny", "--run", "run"], "torch"),
    "export": (["export", "--run", "run", "--bundle", "bundle"], "torch"),
    "bundle build": (["bundle", "build", "--preset", "default"], "torch"),
}
"""Command → (its arguments, writing only under the working folder; a module it names)."""


def _cli(args: list[str], cwd: Path, serve_only: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if serve_only:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(BLOCKER), os.environ.get("PYTHONPATH")) if p
        )
    return subprocess.run(
        [sys.executable, "-m", "seislens.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", list(COMMANDS))
def test_training_command_in_a_serve_only_install_says_what_to_install(name, tmp_path):
    args, module = COMMANDS[name]
    proc = _cli(args, tmp_path, serve_only=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, no traceback
    assert lines[0].startswith("error: this command needs the train extra")
    assert module in lines[0] and TRAIN_EXTRA_INSTALL in lines[0]
    assert list(tmp_path.iterdir()) == [], "the command left files behind"


def test_the_guard_passes_when_the_modules_are_found_and_stops_when_one_is_not(capsys):
    assert needs_train_extra("json", "numpy")(lambda: 42)() == 42
    with pytest.raises(typer.Exit) as stopped:
        needs_train_extra("json", "seislens_no_such_module")(lambda: 42)()
    assert stopped.value.exit_code == 2
    assert "(seislens_no_such_module not installed)" in capsys.readouterr().err
