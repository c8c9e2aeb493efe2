import numpy as np
import pytest
from seislens.models.familiarity import conformal_scale, familiarity
from seislens.models.manifest import VelocityCalibration


def _calibration(scores) -> VelocityCalibration:
    return VelocityCalibration(
        index_path="index/velocity-x",
        encoder_sha256="0" * 64,
        k=10,
        queries=len(scores),
        top1_scores=sorted(scores),
    )


def test_familiarity_is_the_empirical_cdf_and_monotone():
    cal = _calibration([0.5, 0.6, 0.7, 0.8])
    assert familiarity(0.1, cal) == 0.0
    assert familiarity(0.65, cal) == 0.5
    assert familiarity(0.99, cal) == 1.0
    grid = np.linspace(-1, 1, 101)
    values = familiarity(grid, cal)
    assert np.all(np.diff(values) >= 0) and values.min() >= 0 and values.max() <= 1


def test_familiarity_refuses_an_unsorted_reference():
    cal = _calibration([0.5, 0.6]).model_copy(update={"top1_scores": [0.6, 0.5]})
    with pytest.raises(ValueError, match="ascending"):
        familiarity(0.5, cal)


def test_conformal_scale_gives_the_asked_coverage():
    rng = np.random.default_rng(0)
    spreads = rng.uniform(0.5, 2.0, 4000)
    errors = np.abs(rng.normal(0, 3.0 * spreads))  # true spread is 3x the reported one
    c = conformal_scale(errors[:2000], spreads[:2000], floor=1.0, coverage=0.6827)
    held_out = np.mean(errors[2000:] <= c * spreads[2000:])
    assert 2.5 < c < 3.5 and abs(held_out - 0.6827) < 0.03


def test_conformal_scale_checks_its_arguments():
    with pytest.raises(ValueError, match="want"):
        conformal_scale(np.ones(3), np.ones(4), 1.0, 0.68)
    with pytest.raises(ValueError, match="coverage"):
        conformal_scale(np.ones(3), np.ones(3), 1.0, 1.0)


def test_bin_scales_widen_for_unfamiliar_queries_and_cover_per_bin():
    from seislens.models.familiarity import monotone_bin_scales

    rng = np.random.default_rng(0)
    fam = rng.random(3000)
    spreads = np.ones(3000)
    errors = np.abs(rng.standard_normal(3000)) * (3.0 - 2.0 * fam)  # worse when unfamiliar
    bins = [1 / 3, 2 / 3, 1.0]
    scales = monotone_bin_scales(errors, spreads, fam, bins, floor=1.0, coverage=0.6827)
    assert scales[0] > scales[1] > scales[2]
    for b, (lo, hi) in enumerate(((0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.0))):
        rows = (fam > lo) & (fam <= hi)
        assert abs(np.mean(errors[rows] <= scales[b]) - 0.6827) < 0.05


def test_spread_scale_uses_the_query_bin_or_the_single_factor():
    from seislens.models.familiarity import spread_scale

    cal = VelocityCalibration(
        index_path="index/v1",
        encoder_sha256="0" * 64,
        k=10,
        queries=30,
        top1_scores=[0.5] * 30,
        std_scale={"vmean": 1.5},
        familiarity_bins=[0.5, 1.0],
        std_scale_by_bin=[{"vmean": 3.0}, {"vmean": 1.0}],
        head_std_scale_by_bin=[{"vmean": 2.0}, {"vmean": 0.8}],
    )
    assert spread_scale(cal, "vmean", 0.1) == 3.0
    assert spread_scale(cal, "vmean", 0.9) == 1.0
    assert spread_scale(cal, "vmean", 0.1, head=True) == 2.0
    assert spread_scale(cal, "vmean", None) == 1.5  # no familiarity: the pooled factor
    plain = cal.model_copy(update={"familiarity_bins": [], "std_scale_by_bin": []})
    assert spread_scale(plain, "vmean", 0.1) == 1.5


def test_the_signal_factor_caps_familiarity_of_noisy_gathers():
    from seislens.models.familiarity import capped_familiarity, signal_factor

    cal = _calibration([0.5, 0.6, 0.7, 0.8]).model_copy(
        update={"snr_db_full": 5.0, "snr_db_zero": -10.0}
    )
    assert signal_factor(20.0, cal) == 1.0 and signal_factor(-12.0, cal) == 0.0
    assert signal_factor(-2.5, cal) == pytest.approx(0.5)
    assert signal_factor(None, cal) == 1.0  # no estimate: no cap
    assert signal_factor(-12.0, _calibration([0.5])) == 1.0  # no floor: no cap
    assert capped_familiarity(0.99, 20.0, cal) == 1.0
    assert capped_familiarity(0.99, -2.5, cal) == pytest.approx(0.5)
    assert capped_familiarity(0.55, -2.5, cal) == pytest.approx(0.25)
    ladder = [capped_familiarity(0.99, snr, cal) for snr in (20, 5, 0, -5, -10, -15)]
    assert ladder == sorted(ladder, reverse=True)


@pytest.mark.parametrize(
    ("full", "zero", "match"),
    [(5.0, None, "together"), (-10.0, 5.0, "must exceed")],
)
def test_the_signal_floor_is_checked(full, zero, match):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=match):
        _calibration([0.5]).model_validate(
            {**_calibration([0.5]).model_dump(), "snr_db_full": full, "snr_db_zero": zero}
        )


def test_density_distance_is_the_shrunk_mahalanobis_and_round_trips(tmp_path):
    from seislens.models.familiarity import fit_density, load_density
    from seislens.models.manifest import VelocityDensity

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) * np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0])
    density = fit_density(x, shrinkage=0.1)
    cov = np.cov(x - x.mean(0), rowvar=False)
    cov = 0.9 * cov + 0.1 * np.trace(cov) / 6 * np.eye(6)
    q = rng.normal(size=(5, 6))
    z = q - x.mean(0)
    want = np.einsum("ij,jk,ik->i", z, np.linalg.inv(cov), z)
    assert np.allclose(density.distance(q), want)
    assert density.distance(x.mean(0))[0] == pytest.approx(0.0, abs=1e-12)
    sha = density.save(tmp_path / "d.npz")
    assert not list(tmp_path.glob("*.part"))
    spec = VelocityDensity(
        file="d.npz", sha256=sha, shrinkage=0.1, fit_count=400, reference=[1.0], combined=[1.0]
    )
    assert np.allclose(load_density(tmp_path, spec).distance(q), want)
    bad = spec.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ValueError, match="sha256"):
        load_density(tmp_path, bad)
    with pytest.raises(ValueError, match="dim"):
        density.distance(np.zeros((1, 5)))
    with pytest.raises(ValueError):
        fit_density(x[:1])


def test_joint_familiarity_falls_with_distance_and_keeps_the_in_family_rate():
    from seislens.models.familiarity import joint_familiarity, joint_statistic
    from seislens.models.manifest import VelocityDensity

    rng = np.random.default_rng(1)
    best = rng.uniform(0.5, 0.9, 1000)
    dist = rng.chisquare(8, 1000)
    cal = _calibration(best)
    spec = VelocityDensity(
        file="x.npz",
        sha256="0" * 64,
        shrinkage=0.05,
        fit_count=10,
        reference=sorted(dist),
        combined=[0.0],
    )
    partial = cal.model_copy(update={"density": spec})
    stat = joint_statistic(best, dist, partial)
    cal = cal.model_copy(update={"density": spec.model_copy(update={"combined": sorted(stat)})})
    fam = joint_familiarity(best, dist, cal)
    # by construction about warn_below of the calibration queries fall below it
    assert np.mean(fam < 0.05) == pytest.approx(0.05, abs=0.01)
    # no density or no distance: the best score's CDF alone
    assert joint_familiarity(0.7, None, cal) == familiarity(0.7, cal)
    # a query far from every calibration embedding is unfamiliar however well it matches
    assert joint_familiarity(0.99, 1e6, cal) == 0.0
    # monotone: never up when the distance grows or the best score falls
    near, far = joint_familiarity(0.8, 3.0, cal), joint_familiarity(0.8, 20.0, cal)
    assert far <= near
    assert joint_familiarity(0.6, 3.0, cal) <= near
