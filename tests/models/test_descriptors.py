import numpy as np
import pytest
from seislens.data.velocity_families import FAMILIES, draw_model, sample_rng
from seislens.models.descriptors import (
    DESCRIPTOR_NAMES,
    compute_descriptors,
    descriptors_as_dict,
    relative_errors,
)


def two_layer(v1=2000.0, v2=3000.0, depth_cells=30):
    m = np.full((70, 70), v1, np.float32)
    m[depth_cells:] = v2
    return m


def test_two_layer_values_by_hand():
    d = descriptors_as_dict(compute_descriptors(two_layer()[None])[0])
    assert d["mean_velocity"] == pytest.approx((30 * 2000 + 40 * 3000) / 70, rel=1e-5)
    assert d["min_velocity"] == 2000 and d["max_velocity"] == 3000
    assert d["horizontal_gradient"] == 0
    assert d["n_interfaces"] == 1
    assert d["first_interface_depth"] == pytest.approx(300.0)
    assert d["fault_throw"] == 0
    # least-squares slope of a step profile: positive, in 1/s
    depth = np.arange(70) * 10.0
    prof = np.where(np.arange(70) >= 30, 3000.0, 2000.0)
    assert d["vertical_gradient"] == pytest.approx(np.polyfit(depth, prof, 1)[0], rel=1e-4)
    assert d["std_velocity"] == pytest.approx(np.std(prof), rel=1e-4)


def test_homogeneous_model_has_no_interface():
    d = descriptors_as_dict(compute_descriptors(np.full((1, 70, 70), 2500.0))[0])
    assert d["n_interfaces"] == 0
    assert d["first_interface_depth"] == 700.0
    assert d["vertical_gradient"] == pytest.approx(0.0, abs=1e-9)


def test_vertical_fault_throw_measured():
    m = two_layer(depth_cells=30)
    m[:, 35:] = two_layer(depth_cells=42)[:, 35:]  # right block dropped by 12 cells
    assert compute_descriptors(m[None])[0, -1] == pytest.approx(120.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_families_throw_against_truth(family):
    models, throws = [], []
    for i in range(40):
        m, p = draw_model(family, sample_rng(family, 1, i))
        models.append(m)
        throws.append(p["throw_m"])
    d = compute_descriptors(np.stack(models))
    throws = np.array(throws)
    if "fault" in family:
        # a visible offset is measured to within two cells for most models
        assert np.mean(np.abs(d[:, -1] - throws) <= 20.0) >= 0.75
    else:
        assert (d[:, -1] == 0).all()
    assert d.shape == (40, len(DESCRIPTOR_NAMES)) and d.dtype == np.float32


def test_accepts_openfwi_channel_axis_and_rejects_bad_input():
    m = two_layer()[None, None]
    assert compute_descriptors(m).shape == (1, 9)
    with pytest.raises(ValueError, match="shape"):
        compute_descriptors(np.zeros((2, 3, 4, 5, 6)))
    bad = two_layer()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compute_descriptors(bad[None])


def test_relative_error_uses_floors_for_zero_truth():
    t = compute_descriptors(two_layer()[None])
    p = t.copy()
    p[0, -1] = 25.0  # 25 m of throw predicted where there is none; floor 50 m
    err = relative_errors(p, t)
    assert err[0, -1] == pytest.approx(0.5)
    assert np.allclose(err[0, :-1], 0)


@pytest.mark.parametrize(
    ("depths", "move"),
    [
        ([30, 30, 30, 30], 0),  # flat
        ([30, 31, 31, 32, 32, 33], 0),  # lone one-cell steps: a gently curved interface
        ([30, 31, 32, 33, 33], 3),  # a ramp of one-cell steps: a dipping fault
        ([30, 30, 34, 34], 4),  # one jump of four cells: a steep fault
        ([30, 33, 31, 31], 3),  # down three, then up two: the larger move counts
        ([30, 29, 28, 30, 35], 7),  # up two, then down seven in two steps
    ],
)
def test_interface_moves_by_hand(depths, move):
    from seislens.models.descriptors import _largest_move

    z = np.asarray(depths)
    assert _largest_move(np.arange(z.size), z) == move
