"""The one ONNX export: every branch's encoders with a dynamic batch axis, checked
against torch eager, returned as a typed section and staged files (no bundle written)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from export_helpers import UNTRAINED
from seislens.models.branches import BRANCH_NAMES, get_branch
from seislens.models.contract import ONNX_OPSET
from seislens.models.embedders import sha256_file
from seislens.models.manifest import EncoderEntry
from seislens.training.onnx_export import (
    BRANCH_EXPORTS,
    ExportError,
    check_parity,
    export_network,
)

torch.set_num_threads(1)


def test_every_branch_has_export_parts():
    assert set(BRANCH_EXPORTS) == set(BRANCH_NAMES)


@pytest.mark.parametrize("name", BRANCH_NAMES)
def test_export_parity_and_typed_section(name, tmp_path):
    branch = get_branch(name)
    network, checkpoint = UNTRAINED[name](0)
    staged = export_network(name, network, checkpoint, tmp_path)
    assert isinstance(staged.section, branch.section) and staged.branch is branch
    assert tuple(staged.section.encoders) == branch.encoders == tuple(staged.files)
    for encoder, entry in staged.section.encoders.items():
        path = staged.files[encoder]
        assert path.parent == tmp_path and isinstance(entry, EncoderEntry)
        assert entry.sha256 == sha256_file(path) and entry.bytes == path.stat().st_size
        assert entry.file == branch.encoder_file(encoder, entry.sha256)
        assert entry.input_shape[0] == "batch"
        graph = onnx.load(str(path))
        assert graph.opset_import[0].version == ONNX_OPSET
        dims = graph.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and graph.graph.input[0].name == entry.input
        assert [o.name for o in graph.graph.output] == entry.outputs
        parity = staged.section.parity[encoder]
        assert parity["checked"] < 1e-4 and parity["batch"] == 5
        assert set(parity["per_output"]) == set(entry.outputs)
    assert staged.section.versions["onnx_opset"] == ONNX_OPSET


def test_parity_failure_raises_and_leaves_nothing_staged(tmp_path):
    network, checkpoint = UNTRAINED["events"](0)
    with pytest.raises(ExportError, match="differs from torch") as info:
        export_network("events", network, checkpoint, tmp_path, tolerance=0.0)
    assert "per output" in str(info.value) and "bundle not changed" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_check_parity_reports_per_output_and_scales(tmp_path):
    class Two(torch.nn.Module):
        def forward(self, x):
            return x * 2, x.sum(dim=1)

    from seislens.training.onnx_export import export_onnx

    x = torch.rand(3, 4)
    path = tmp_path / "two.onnx"
    export_onnx(Two(), x[:2], path, "x", ("double", "total"))
    parity = check_parity(Two(), path, x, ("double", "total"), 1e-5, {"total": 10.0})
    assert set(parity["per_output"]) == {"double", "total"}
    assert parity["checked"] <= parity["max_abs_diff"] + 1e-12
    assert np.isfinite(parity["max_abs_diff"])
