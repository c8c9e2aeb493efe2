"""Any 2-D line acquisition mapped onto the model's frame: shots onto source slots,
receivers onto the 10 m grid, sample intervals and record lengths onto 1 ms × 1 s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import segyio
from seislens.data.gather_files import UploadError, read_gather, write_segy
from seislens.data.gather_geometry import FRAME_X_M, SOURCE_SLOTS_M
from seislens.models.contract import GATHER_SHAPE

_V_M_S = 2000.0
_REFLECTORS = ((0.12, 1.0), (0.35, -0.6), (0.6, 0.4))  # (zero-offset time s, amplitude)


def _line(source_x: np.ndarray, receiver_x: np.ndarray, nt: int = 1000, dt_ms: float = 1.0):
    """Analytic gather (n_shots, nt, n_rec): a direct wave and three hyperbolic
    reflections (15 Hz Ricker) for sources (n_shots,) and receivers (n_rec,) in metres."""
    t = (np.arange(nt) * dt_ms / 1000.0)[None, :, None]
    offset = np.abs(np.asarray(receiver_x)[None, None, :] - np.asarray(source_x)[:, None, None])
    arrivals = [(offset / _V_M_S + 0.03, 0.8)]
    arrivals += [(np.sqrt(t0**2 + (offset / _V_M_S) ** 2) + 0.03, a) for t0, a in _REFLECTORS]
    out = np.zeros((len(source_x), nt, len(receiver_x)))
    for arrival, amplitude in arrivals:
        a = (np.pi * 15.0 * (t - arrival)) ** 2
        out += amplitude * (1 - 2 * a) * np.exp(-a)
    return out.astype(np.float32)


def _frame() -> np.ndarray:
    """The analytic gather in the model's frame (5, 1000, 70)."""
    return _line(SOURCE_SLOTS_M, FRAME_X_M)


def _write(path: Path, source_x, receiver_x, nt: int = 1000, dt_ms: float = 1.0) -> Path:
    """An analytic SEG-Y file of the given geometry (metres)."""
    source_x = np.asarray(source_x, dtype=np.float64)
    gather = _line(source_x, receiver_x, nt, dt_ms)
    write_segy(path, gather, dt_ms=dt_ms, source_x_m=source_x, receiver_x_m=receiver_x)
    return path


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _refused(path: Path, reason: str, *found: str) -> str:
    with pytest.raises(UploadError) as err:
        read_gather(path)
    assert err.value.reason == reason
    message = str(err.value)
    for text in found:
        assert text in message, message
    return message


# --------------------------------------------------------------------------- shots


def test_one_shot(tmp_path: Path) -> None:
    up = read_gather(_write(tmp_path / "one.sgy", [0.0], FRAME_X_M))
    assert up.data.shape == GATHER_SHAPE and up.n_traces == 70
    assert up.shot_mask.tolist() == [True, False, False, False, False]
    assert up.receiver_mask[0].all() and not up.receiver_mask[1:].any()
    np.testing.assert_array_equal(up.data[0], _frame()[0])
    assert not up.data[1:].any()
    assert "1 shot mapped to source slot 1 of 5 (x = 0 m); slots 2-5 empty, zero-filled" in (
        up.notes
    )


def test_three_shots(tmp_path: Path) -> None:
    up = read_gather(_write(tmp_path / "three.sgy", [172.5, 345.0, 517.5], FRAME_X_M))
    assert up.shot_mask.tolist() == [False, True, True, True, False]
    reference = _line(np.array([172.5, 345.0, 517.5]), FRAME_X_M)
    np.testing.assert_array_equal(up.data[1:4], reference)
    assert any(n.startswith("3 shots mapped to source slots 2-4 of 5") for n in up.notes)


def test_shot_off_slot_placed_and_two_on_one_slot_keep_nearest(tmp_path: Path) -> None:
    up = read_gather(_write(tmp_path / "two.sgy", [0.0, 200.0, 160.0, 100.0], FRAME_X_M))
    assert up.shot_mask.tolist() == [True, True, False, False, False]
    np.testing.assert_array_equal(up.data[1], _line(np.array([160.0]), FRAME_X_M)[0])
    notes = " | ".join(up.notes)
    assert "2 shots on source slot 2 (x = 170 m): kept the nearest at x = 160 m" in notes
    assert "shot at x = 100 m is 70 m from the nearest source slot; dropped" in notes


def test_offsets_only_headers(tmp_path: Path) -> None:
    path = tmp_path / "offsets.sgy"
    write_segy(path, _frame())
    _set_words(path, SourceX=0, GroupX=0)
    up = read_gather(path)
    np.testing.assert_array_equal(up.data, _frame())  # split spreads placed by offset
    assert up.shot_mask.all() and up.receiver_mask.all()
    assert any(n.startswith("no receiver coordinates: positions from offsets") for n in up.notes)


def test_offsets_only_one_shot_at_x0(tmp_path: Path) -> None:
    path = _write(tmp_path / "end_on.sgy", [0.0], FRAME_X_M)
    _set_words(path, SourceX=0, GroupX=0, FieldRecord=0)
    up = read_gather(path)
    assert up.shot_mask.tolist() == [True, False, False, False, False]
    np.testing.assert_array_equal(up.data[0], _frame()[0])


def _set_words(path: Path, **words: int) -> None:
    """Set the given trace header words (TraceField names) to one value in every trace."""
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        headers = [dict(h) for h in f.header]
        for h in headers:
            h.update({getattr(segyio.TraceField, w): v for w, v in words.items()})
        f.header = headers


# --------------------------------------------------------------------------- receivers


def test_35_receivers_at_20_m(tmp_path: Path) -> None:
    up = read_gather(_write(tmp_path / "coarse.sgy", SOURCE_SLOTS_M, np.arange(35) * 20.0))
    assert up.receiver_mask.sum(axis=1).tolist() == [69] * 5  # 690 m lies past the last one
    assert _corr(up.data[:, :, :69], _frame()[:, :, :69]) > 0.98
    assert "35 receivers at 20 m resampled onto the 10 m grid (linear in x)" in up.notes


def test_140_receivers_at_5_m(tmp_path: Path) -> None:
    up = read_gather(_write(tmp_path / "fine.sgy", SOURCE_SLOTS_M, np.arange(140) * 5.0))
    assert up.receiver_mask.all()
    np.testing.assert_allclose(up.data, _frame(), atol=1e-6)
    assert "140 receivers at 5 m resampled onto the 10 m grid (linear in x)" in up.notes


def test_round_trip_through_5_m_receivers(tmp_path: Path) -> None:
    frame = _frame()
    x = 2.5 + np.arange(138) * 5.0  # between the grid points: every value interpolated
    fine = np.stack([[np.interp(x, FRAME_X_M, tr) for tr in shot] for shot in frame])
    path = tmp_path / "round_trip.sgy"
    write_segy(path, fine.astype(np.float32), source_x_m=SOURCE_SLOTS_M, receiver_x_m=x)
    up = read_gather(path)
    assert up.receiver_mask.sum(axis=1).tolist() == [68] * 5  # 0 and 690 m: not extrapolated
    assert _corr(up.data[:, :, 1:69], frame[:, :, 1:69]) > 0.98


def test_partial_spread_of_40_receivers(tmp_path: Path) -> None:
    up = read_gather(_write(tmp_path / "partial.sgy", [0.0], np.arange(40) * 10.0))
    assert up.receiver_mask[0].sum() == 40 and not up.data[0, :, 40:].any()
    assert any(n.startswith("40 of 70 grid receivers covered per shot") for n in up.notes)


def test_gap_in_the_spread_is_zero_not_interpolated(tmp_path: Path) -> None:
    x = np.concatenate([np.arange(0, 300, 10.0), np.arange(400, 700, 10.0)])
    up = read_gather(_write(tmp_path / "gap.sgy", [0.0], x))
    covered = up.receiver_mask[0]
    assert covered.sum() == 60 and not covered[30:40].any()
    assert not up.data[0, :, 30:40].any()


# --------------------------------------------------------------------------- time axis


@pytest.mark.parametrize("dt_ms", [2.0, 4.0])
def test_coarser_sampling(tmp_path: Path, dt_ms: float) -> None:
    path = _write(tmp_path / "coarse_dt.sgy", SOURCE_SLOTS_M, FRAME_X_M, round(1000 / dt_ms), dt_ms)
    up = read_gather(path)
    assert up.source_dt_ms == dt_ms and f"resampled from {dt_ms:g} ms to 1 ms" in up.notes
    assert _corr(up.data[:, :950], _frame()[:, :950]) > 0.99


def test_2_s_record_cut(tmp_path: Path) -> None:
    up = read_gather(_write(tmp_path / "long.sgy", [0.0], FRAME_X_M, 2000))
    np.testing.assert_array_equal(up.data[0], _frame()[0])
    assert "cut from 2.000 s to the first 1 s" in up.notes


def test_0_7_s_record_padded(tmp_path: Path) -> None:
    up = read_gather(_write(tmp_path / "short.sgy", SOURCE_SLOTS_M, FRAME_X_M, 700))
    np.testing.assert_array_equal(up.data[:, :700], _frame()[:, :700])
    assert not up.data[:, 700:].any()
    assert "record ends at 0.700 s; zero-padded to 1 s" in up.notes


# --------------------------------------------------------------------------- refusals


def test_refuses_0_5_s_record(tmp_path: Path) -> None:
    path = _write(tmp_path / "half.sgy", [0.0], FRAME_X_M, 500)
    _refused(path, "too_short", "records up to 0.500 s", "at least 0.6 s")


def test_refuses_20_receivers(tmp_path: Path) -> None:
    path = _write(tmp_path / "few.sgy", [0.0], np.arange(20) * 10.0)
    _refused(path, "geometry", "20 receivers at x = 0-190 m covering 20 of the 70", "at least 35")


def test_refuses_shot_at_5_km(tmp_path: Path) -> None:
    path = _write(tmp_path / "far.sgy", [0.0, 5000.0], FRAME_X_M)
    _refused(path, "geometry", "shots at x = 5000 m, outside the model's 0-690 m line")


def test_refuses_11_shots(tmp_path: Path) -> None:
    path = _write(tmp_path / "many.sgy", np.linspace(0, 690, 11), FRAME_X_M)
    _refused(path, "geometry", "holds 11 shots (at x = 0, 69, 138", "1-10 shots")


def test_refuses_receivers_too_close(tmp_path: Path) -> None:
    path = _write(tmp_path / "dense.sgy", [0.0], np.arange(280) * 2.5)
    _refused(path, "geometry", "280 receivers 2.5 m apart", "receivers 5-25 m apart")


def test_refuses_10_ms_sampling(tmp_path: Path) -> None:
    path = _write(tmp_path / "slow.sgy", [0.0], FRAME_X_M, 100, 10.0)
    _refused(path, "sample_interval", "sampled every 10 ms", "accepted 0.25-8 ms")


def test_npy_stays_strict(tmp_path: Path) -> None:
    path = tmp_path / "one_shot.npy"
    np.save(path, _frame()[:1])
    _refused(path, "shape", "(1, 1000, 70)", "carries no geometry", "SEG-Y or SU")


def test_source_x_from_group_x_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "no_source_x.sgy"
    write_segy(path, _frame())
    _set_words(path, SourceX=0)
    up = read_gather(path)
    np.testing.assert_array_equal(up.data, _frame())
    assert "SourceX absent: source x taken as GroupX - offset" in up.notes
