"""The shared trainer, run folder, schedule and config mechanism, on a toy branch (fast:
no data, a linear network) and on the real branches' registry entries."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from pydantic import Field
from seislens.models.branches import BRANCHES
from seislens.training import runs
from seislens.training.branch_training import BRANCH_TRAINING, load_config, load_run
from seislens.training.config import (
    OptimConfig,
    TrainConfig,
    merge_overrides,
    parse_set_options,
    read_config_file,
    resolve_preset,
    with_defaults,
)
from seislens.training.runs import CHECKPOINT, RunError, RunFolder, save_atomic
from seislens.training.schedule import lr_at, stage_steps
from seislens.training.trainer import BranchTraining, Stage, run_training

Second, SECOND_DEFAULT = with_defaults(OptimConfig, epochs=2, warmup_steps=1, batch_size=4)


class ToyConfig(TrainConfig):
    STAGE_FIELDS: ClassVar[dict[str, str]] = {"first": "first", "second": "second"}

    name: str = "toy"
    model: dict[str, int] = Field(default_factory=lambda: {"width": 3})
    first: OptimConfig = OptimConfig(epochs=2, batch_size=4, warmup_steps=2)
    second: Second = SECOND_DEFAULT


class ToyNet(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(width, 1)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def build_toy(model_cfg: dict[str, int]) -> ToyNet:
    return ToyNet(model_cfg["width"])


class ToyTraining(BranchTraining[ToyConfig]):
    branch = "toy"
    config_class = ToyConfig
    network_builder = staticmethod(build_toy)
    selecting_stages = frozenset({"second"})

    def prepare(self, state: dict[str, Any] | None) -> None:
        g = torch.Generator().manual_seed(self.cfg.seed)
        self.x = torch.randn(16, 3, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]])

    @property
    def n_train(self) -> int:
        return len(self.x)

    def optimizer(self, net: torch.nn.Module, stage: Stage) -> torch.optim.Optimizer:
        return torch.optim.AdamW(net.parameters(), lr=stage.optim.lr)

    def batches(self, stage: Stage, epoch: int) -> Iterator[Any]:
        order = torch.randperm(self.n_train, generator=torch.Generator().manual_seed(epoch))
        bs = stage.optim.batch_size
        for b in range(self.n_train // bs):
            rows = order[b * bs : (b + 1) * bs]
            yield self.x[rows], self.y[rows]

    def loss(self, net: torch.nn.Module, batch: Any, stage: Stage) -> tuple[Any, dict]:
        x, y = batch
        loss = torch.nn.functional.mse_loss(net(torch.dropout(x, 0.1, True)), y)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def validate(self, net: torch.nn.Module, stage: Stage) -> dict[str, Any] | None:
        return {"score": -float(torch.nn.functional.mse_loss(net(self.x), self.y))}

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"provenance": {"toy": True}}


def toy_train(cfg: ToyConfig, run: Path) -> dict[str, Any]:
    return run_training(ToyTraining(cfg, run / "cache", progress=False), run)


def test_every_registry_branch_has_training_hooks():
    assert set(BRANCH_TRAINING) == set(BRANCHES)
    for name, training in BRANCH_TRAINING.items():
        assert training.branch == name
        assert load_config(name, "tiny").stages()


def test_toy_run_writes_one_line_an_epoch_and_keeps_best(tmp_path):
    summary = toy_train(ToyConfig(), tmp_path / "run")
    lines = RunFolder(tmp_path / "run").metrics()
    assert [(x["stage"], x["stage_epoch"], x["epoch"]) for x in lines] == [
        ("first", 1, 1),
        ("first", 2, 2),
        ("second", 1, 3),
        ("second", 2, 4),
    ]
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    assert state["branch"] == "toy" and state["done"] == 4 and state["stage"] == "second"
    assert state["best"]["stage"] == "second" and summary["best"]["epoch"] in (3, 4)
    assert state["step"] == 8 and lines[-1]["step"] == 8  # the stage's own step count
    # a finished run resumes to a no-op with the same summary
    assert toy_train(ToyConfig(), tmp_path / "run") == summary
    assert len(RunFolder(tmp_path / "run").metrics()) == 4


def test_run_folder_with_another_config_is_refused(tmp_path):
    toy_train(ToyConfig(), tmp_path / "run")
    other = ToyConfig(first={"epochs": 2, "batch_size": 4, "warmup_steps": 2, "lr": 0.5})
    with pytest.raises(RunError, match=r"another config \(differs in first\.lr\)"):
        toy_train(other, tmp_path / "run")
    with pytest.raises(RunError, match="another config"):
        toy_train(ToyConfig(seed=1), tmp_path / "run")


@pytest.mark.parametrize("cut_after", [1, 2, 3])
def test_resume_after_interruption_gives_the_finished_run(tmp_path, monkeypatch, cut_after):
    """Interrupted inside stage 1, between the stages and inside stage 2: resuming
    finishes the run with the uninterrupted run's weights and log."""
    torch.manual_seed(123)  # the trainer seeds torch itself
    toy_train(ToyConfig(), tmp_path / "full")
    calls = {"n": 0}
    real_save = runs.save_atomic

    def save_then_die(obj: dict[str, Any], path: Path) -> None:
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == cut_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        toy_train(ToyConfig(), tmp_path / "cut")
    monkeypatch.setattr(runs, "save_atomic", real_save)
    toy_train(ToyConfig(), tmp_path / "cut")
    a = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=False)
    b = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=False)
    for k in a["network"]:
        assert torch.equal(a["network"][k], b["network"][k]), k
        assert torch.equal(a["best"]["network"][k], b["best"]["network"][k]), k
    full, cut = RunFolder(tmp_path / "full").metrics(), RunFolder(tmp_path / "cut").metrics()
    assert [x["epoch"] for x in cut] == [1, 2, 3, 4]
    assert [x["loss"] for x in cut] == [x["loss"] for x in full]


def test_metrics_logged_after_the_last_checkpoint_are_dropped_on_resume(tmp_path):
    toy_train(ToyConfig(), tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    # as if the run had died after logging epoch 3 but before its checkpoint
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    state["done"] = 2
    save_atomic(state, tmp_path / "run" / CHECKPOINT)
    (tmp_path / "run" / "metrics.jsonl").write_text("\n".join(lines[:3]) + '\n{"epo')
    assert folder.open(ToyConfig())["done"] == 2
    assert [x["epoch"] for x in folder.metrics()] == [1, 2]


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    save_atomic({"v": 1}, path)

    def partial_then_fail(obj: Any, fh: Any) -> None:
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", partial_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"v": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # no temp file left


def test_lr_schedule_values():
    o = OptimConfig(lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_at(s, 14, o) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 14, o) == pytest.approx(1.0)  # the peak, where the cosine starts
    assert lr_at(9, 14, o) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert lr_at(14, 14, o) == pytest.approx(0.1) and lr_at(99, 14, o) == pytest.approx(0.1)
    no_warmup = OptimConfig(lr=2.0, warmup_steps=0, min_lr_ratio=0.0)
    assert lr_at(0, 10, no_warmup) == 2.0 and lr_at(10, 10, no_warmup) == pytest.approx(0.0)
    assert stage_steps(20, OptimConfig(batch_size=8, epochs=3)) == (2, 6)
    assert stage_steps(20, OptimConfig(batch_size=8, epochs=3, max_steps=5)) == (2, 5)


def test_too_few_samples_for_a_batch_refused(tmp_path):
    cfg = ToyConfig(first={"epochs": 1, "batch_size": 32})
    with pytest.raises(RunError, match="16 usable training samples is fewer than one first batch"):
        toy_train(cfg, tmp_path / "run")


def test_load_run_refuses_another_branch_and_an_old_format(tmp_path, tiny_run):
    trained = load_run(tiny_run, "last", branch="velocity")
    assert trained.branch == "velocity" and trained.weights == "last"
    assert trained.config.optim.epochs == 30 and not trained.network.training
    assert load_run(tiny_run).weights == "last"  # the velocity branch keeps no best
    with pytest.raises(RunError, match="velocity branch, not of events"):
        load_run(tiny_run, branch="events")
    with pytest.raises(ValueError, match="expected 'best' or 'last'"):
        load_run(tiny_run, "middle")
    old = tmp_path / "old"
    old.mkdir()
    torch.save({"model": {}}, old / CHECKPOINT)
    with pytest.raises(RunError, match="older SeisLens"):
        load_run(old)


def test_one_config_mechanism(tmp_path):
    assert resolve_preset("velocity", "tiny").name == "velocity_tiny.toml"
    assert resolve_preset("bundle", "default").name == "bundle_default.toml"
    with pytest.raises(FileNotFoundError, match=r"nor a velocity preset \(default, tiny\)"):
        resolve_preset("velocity", "nope")
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "f": [1]}
    merged = merge_overrides(base, {"a": {"c": {"d": 9}}, "f": [2]})
    assert merged == {"a": {"b": 1, "c": {"d": 9, "e": 3}}, "f": [2]}
    assert base["a"]["c"]["d"] == 2  # not mutated
    sets = parse_set_options(["optim.lr=2e-3", "data.train=[a, b]", "name=x", "seed=3"])
    assert sets == {"optim": {"lr": 2e-3}, "data": {"train": ["a", "b"]}, "name": "x", "seed": 3}
    with pytest.raises(ValueError, match=r"KEY\.PATH=VALUE"):
        parse_set_options(["optim.lr"])
    yml = tmp_path / "c.yaml"
    yml.write_text("data:\n  folder: d\nclip:\n  epochs: 1\n")
    cfg = load_config("events", yml, {"finetune": {"epochs": 0}})
    # unset stage keys take the event branch's defaults, not OptimConfig's
    assert cfg.clip.warmup_steps == 50 and cfg.finetune.min_lr_ratio == 0.05
    assert read_config_file(yml)["clip"] == {"epochs": 1}
    velocity = load_config("velocity", "tiny", {"optim": {"max_steps": 3}})
    assert velocity.optim.warmup_steps == 5 and velocity.optim.max_steps == 3
    with pytest.raises(ValueError, match=r"optim\.epochs is 0: nothing to train"):
        load_config("velocity", "tiny", {"optim": {"epochs": 0}})


def test_init_from_starts_a_fresh_run_from_another_runs_weights(tmp_path):
    toy_train(ToyConfig(), tmp_path / "base")
    base = torch.load(tmp_path / "base" / CHECKPOINT, weights_only=False)["network"]
    # zero epochs of training but one stage: the weights are the base run's, moved on
    tuned_cfg = ToyConfig(init_from=tmp_path / "base", first={"epochs": 0}, seed=1)
    # a step of lr 0 keeps the loaded weights exactly
    tuned_cfg.second.lr = 1e-12
    toy_train(tuned_cfg, tmp_path / "tuned")
    tuned = torch.load(tmp_path / "tuned" / CHECKPOINT, weights_only=False)["network"]
    assert torch.allclose(tuned["linear.weight"], base["linear.weight"], atol=1e-6)
    fresh = ToyConfig(first={"epochs": 0}, seed=1)
    fresh.second.lr = 1e-12
    toy_train(fresh, tmp_path / "fresh")
    scratch = torch.load(tmp_path / "fresh" / CHECKPOINT, weights_only=False)["network"]
    assert not torch.allclose(scratch["linear.weight"], base["linear.weight"], atol=1e-3)


def test_init_from_refuses_a_missing_run_and_another_architecture(tmp_path):
    with pytest.raises(RunError, match=r"has no checkpoint\.pt"):
        toy_train(ToyConfig(init_from=tmp_path / "nothing"), tmp_path / "a")
    toy_train(ToyConfig(), tmp_path / "base")
    with pytest.raises(RunError, match="another architecture"):
        toy_train(ToyConfig(init_from=tmp_path / "base", model={"width": 5}), tmp_path / "b")
