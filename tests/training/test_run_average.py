"""Weight averages of runs (seislens.training.run_average): the mean of the best weights,
provenance naming the runs, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from seislens.training.run_average import average_runs
from seislens.training.runs import RunError, RunFolder, read_checkpoint
from typer.testing import CliRunner

from seislens.cli import app


def make_run(folder: Path, scale: float, branch: str = "events", extra: bool = False) -> Path:
    """A run folder whose best weights are ``scale`` × ones (and an int step buffer)."""
    best = {"w": torch.full((2, 3), scale), "steps": torch.tensor(int(scale))}
    if extra:
        best["other"] = torch.zeros(1)
    run = RunFolder(folder)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"name": folder.name}))
    run.save_checkpoint(
        {
            "branch": branch,
            "network": {k: v * 0 for k, v in best.items()},  # last weights differ from best
            "optimizer": {"state": {}},
            "stage": "finetune",
            "done": 6,
            "step": 100,
            "best": {"stage": "finetune", "epoch": 5, "score": scale / 10, "network": best},
            "config": {"name": folder.name},
            "metrics": {"epoch": 6},
            "provenance": {"folder": f"data/{folder.name}"},
        }
    )
    return folder


def test_average_is_the_mean_of_the_best_weights(tmp_path):
    runs = [make_run(tmp_path / f"r{i}", float(i)) for i in (1, 2, 6)]
    path = average_runs(runs, tmp_path / "soup")
    state = read_checkpoint(path.parent)
    assert torch.allclose(state["network"]["w"], torch.full((2, 3), 3.0))
    assert state["best"]["network"]["w"].dtype == torch.float32
    assert int(state["network"]["steps"]) == 6  # integer buffers: the last run's
    sources = state["provenance"]["average_of"]
    assert [s["run"] for s in sources] == [str(r) for r in runs]
    assert [s["best"]["score"] for s in sources] == [0.1, 0.2, 0.6]
    assert state["best"]["score"] is None and state["branch"] == "events"
    assert json.loads((path.parent / "config.json").read_text()) == {"name": "r6"}


def test_refusals(tmp_path):
    a, b = make_run(tmp_path / "a", 1.0), make_run(tmp_path / "b", 2.0)
    with pytest.raises(RunError, match="at least two"):
        average_runs([a], tmp_path / "soup")
    with pytest.raises(RunError, match="different branches"):
        average_runs([a, make_run(tmp_path / "v", 1.0, branch="velocity")], tmp_path / "s1")
    with pytest.raises(RunError, match="other weights"):
        average_runs([a, make_run(tmp_path / "x", 1.0, extra=True)], tmp_path / "s2")
    with pytest.raises(RunError, match="already holds a run"):
        average_runs([a, b], b)
    with pytest.raises(RunError, match=r"has no checkpoint\.pt"):
        average_runs([a, tmp_path / "missing"], tmp_path / "s3")


def test_cli_writes_the_average(tmp_path):
    a, b = make_run(tmp_path / "a", 1.0), make_run(tmp_path / "b", 3.0)
    result = CliRunner().invoke(
        app, ["train", "average", str(a), str(b), "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    assert torch.allclose(read_checkpoint(tmp_path / "s")["network"]["w"], torch.full((2, 3), 2.0))
    again = CliRunner().invoke(
        app, ["train", "average", str(a), str(b), "--out", str(tmp_path / "s")]
    )
    assert again.exit_code != 0 and "already holds a run" in again.output
