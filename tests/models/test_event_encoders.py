"""Event encoders: shapes, normalisation, overlapping patches, heads, config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from seislens.data.event_dataset import INFO_SCALES
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import EVENT_TARGETS as TARGETS
from seislens.models.contract import INFO_FIELDS, SPECTRUM_SHAPE
from seislens.models.event_encoders import (
    EventClipConfig,
    EventHeadsExport,
    NormalizedInfo,
    NormalizedSpectrum,
    SpectrumEncoderConfig,
    build_event_clip,
    count_parameters,
)

torch.set_num_threads(1)

SMALL = {"spectrum": {"width": 32, "depth": 1, "heads": 2}, "info": {"hidden": [32]}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_event_clip(SMALL).eval()


def _spectra(n: int) -> torch.Tensor:
    return torch.rand((n, *SPECTRUM_SHAPE), generator=torch.Generator().manual_seed(n)) ** 3


def test_default_patches_overlap_and_count():
    cfg = SpectrumEncoderConfig()
    assert (cfg.patch, cfg.patch_stride) == (16, 8) and cfg.patch_stride < cfg.patch
    # (50 - 16) // 8 + 1 = 5 rows, (120 - 16) // 8 + 1 = 14 columns of 16×16 patches
    assert cfg.grid == (5, 14) and cfg.n_patches == 70
    m = build_event_clip(EventClipConfig())
    conv = m.spectrum.patch_embed
    assert conv.kernel_size == (16, 16) and conv.stride == (8, 8)
    assert m.spectrum.pos_embed.shape == (1, 71, cfg.width)  # CLS + 70 patches
    assert m.spectrum.tokens(_spectra(2)).shape == (2, 70, cfg.width)
    assert count_parameters(m.spectrum) < 1_000_000  # small enough for CPU training


def test_shapes_and_normalisation(model):
    x, info = _spectra(3), torch.rand(3, len(INFO_FIELDS)) * torch.from_numpy(INFO_SCALES)
    with torch.no_grad():
        out = model(x, info)
        logits, reg = model.predict(x)
    assert out["spectrum"].shape == (3, 256) and out["info"].shape == (3, 256)
    for key in ("spectrum", "info"):
        assert torch.allclose(out[key].norm(dim=1), torch.ones(3), atol=1e-5)
    assert out["logits"].shape == (3, len(CLASSES)) and out["regression"].shape == (3, 3)
    assert torch.equal(logits, out["logits"]) and reg.shape == (3, len(TARGETS))
    assert 0 < float(out["logit_scale"]) <= 100
    unnormalised = model.encode_spectrum(x, normalize=False)
    assert not torch.allclose(unnormalised.norm(dim=1), torch.ones(3))


def test_batch_independence(model):
    x = _spectra(4)
    with torch.no_grad():
        whole = model.encode_spectrum(x)
        single = torch.cat([model.encode_spectrum(x[i : i + 1]) for i in range(4)])
    assert torch.allclose(whole, single, atol=1e-5)


def test_info_scales_match_the_dataset_and_are_applied(model):
    assert np.allclose(model.info.scales.numpy(), INFO_SCALES)
    raw = torch.rand(2, 8) * torch.from_numpy(INFO_SCALES)
    with torch.no_grad():
        direct = model.info.net(raw / model.info.scales)
        assert torch.allclose(model.info(raw), direct)


def test_export_wrappers(model):
    model.set_target_stats(torch.tensor([150.0, 10.0, 2.5]), torch.tensor([80.0, 8.0, 1.0]))
    x = _spectra(2)
    with torch.no_grad():
        _, probs, distance, depth, magnitude = EventHeadsExport(model)(x)
        _, reg = model.predict(x)
        emb = NormalizedSpectrum(model)(x)
        inf = NormalizedInfo(model)(torch.rand(2, 8))
    assert torch.allclose(probs.sum(dim=1), torch.ones(2), atol=1e-6)
    assert torch.allclose(distance, reg[:, 0] * 80.0 + 150.0, atol=1e-4)
    assert torch.allclose(depth, reg[:, 1] * 8.0 + 10.0, atol=1e-5)
    assert torch.allclose(magnitude, reg[:, 2] + 2.5, atol=1e-6)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    assert inf.shape == (2, 256)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"spectrum": {"width": 30, "heads": 4}}, "must divide width"),
        ({"spectrum": {"patch_stride": 20}}, "exceeds patch"),
        ({"spectrum": {"patch": 64}}, "larger than"),
        ({"info": {"scales": [1.0, 2.0]}}, "info.scales has 2 values"),
        ({"spectrum": {"depth": 0}}, "greater than 0"),
        ({"bogus": 1}, "Extra inputs"),
    ],
)
def test_bad_configs_refused(section, message):
    with pytest.raises(ValidationError, match=message):
        build_event_clip(section)
