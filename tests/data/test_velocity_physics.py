"""Randomised physics draws: reproducible per sample, within their ranges, valid."""

import numpy as np
import pytest
from pydantic import ValidationError
from seislens.data.velocity_forward import ForwardConfig, model_gathers
from seislens.data.velocity_physics import PhysicsRanges, physics_rng, sample_forward

BASE = ForwardConfig()


def test_a_sample_gets_the_same_physics_every_time():
    r = PhysicsRanges()
    a = [sample_forward("flatvel-a", 4, i, r, BASE) for i in range(20)]
    b = [sample_forward("flatvel-a", 4, i, r, BASE) for i in range(20)]
    assert a == b
    assert len({c.model_dump_json() for c in a}) > 10  # and samples differ


def test_draws_stay_in_their_ranges():
    r = PhysicsRanges(openfwi_fraction=0.0)
    for i in range(200):
        c = sample_forward("curvefault-b", 0, i, r, BASE)
        assert 6.0 <= c.freq <= 30.0 and -90 <= c.phase_deg <= 90
        assert c.wavelet in r.wavelets and c.accuracy in r.accuracy
        assert 10 <= c.pml_width <= 30
        if c.free_surface:  # pressure is zero on a free surface: nothing sits on it
            assert c.source_depth >= 1 and c.receiver_depth >= 1


def test_openfwi_fraction_one_keeps_the_preset_and_none_means_openfwi():
    r = PhysicsRanges(openfwi_fraction=1.0)
    assert all(sample_forward("flatvel-b", 1, i, r, BASE) == BASE for i in range(10))
    assert sample_forward("flatvel-b", 1, 0, None, BASE) == BASE


def test_physics_stream_differs_from_the_model_stream():
    from seislens.data.velocity_families import sample_rng

    assert physics_rng("flatvel-a", 0, 0).random() != sample_rng("flatvel-a", 0, 0).random()


@pytest.mark.parametrize(
    "bad",
    [{"peak_hz": (30.0, 6.0)}, {"accuracy": (3,)}, {"pml_width_cells": (0, 5)}, {"wavelets": ()}],
)
def test_bad_ranges_are_refused(bad):
    with pytest.raises(ValidationError):
        PhysicsRanges(**bad)


def test_a_free_surface_adds_a_ghost_of_the_direct_wave():
    pytest.importorskip("deepwave")
    v = np.full((70, 70), 2000.0, np.float32)
    absorbing = model_gathers(v, BASE.model_copy(update={"source_depth": 3, "receiver_depth": 3}))
    free = model_gathers(
        v, BASE.model_copy(update={"source_depth": 3, "receiver_depth": 3, "free_surface": True})
    )
    assert absorbing.shape == free.shape == (5, 1000, 70)
    # in a homogeneous model an absorbing top gives no reflection; a free surface does
    assert np.abs(free - absorbing).max() > 0.2 * np.abs(absorbing).max()
