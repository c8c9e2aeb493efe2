"""Event preprocessing on obspy's real recordings, on synthetic traces, and on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime
from scipy.signal import stft
from seislens.models.contract import SPECTRUM_SHAPE
from seislens.models.event_preprocess import (
    EventInputError,
    EventPreprocessConfig,
    condition_waveform,
    cut_dataset_window,
    dataset_waveform_to_spectrum,
    stream_to_windows,
    waveform_to_spectrum,
)

OBSPY = Path(obspy.__file__).parent
CER = OBSPY / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
UH3 = OBSPY / "signal/tests/data"
T0 = UTCDateTime(2024, 1, 1, 12)


def _stream(
    data: np.ndarray,
    rate: float = 100.0,
    station: str = "TST",
    net: str = "XX",
    channels: tuple[str, ...] = ("HHZ", "HHN", "HHE"),
    start: UTCDateTime = T0,
) -> Stream:
    """A Stream from (C, N) samples."""
    traces = []
    for row, cha in zip(data, channels, strict=True):
        header = {
            "network": net,
            "station": station,
            "channel": cha,
            "sampling_rate": rate,
            "starttime": start,
        }
        traces.append(Trace(np.asarray(row, dtype=np.float64), header))
    return Stream(traces)


def _event_record(
    seconds: float = 90.0, rate: float = 100.0, p_s: float = 30.0, seed: int = 0
) -> np.ndarray:
    """(3, N) noise with a 5 Hz wave packet starting at ``p_s`` seconds."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    burst = np.where(t >= p_s, np.exp(-(t - p_s) / 4.0) * np.sin(2 * np.pi * 5 * (t - p_s)), 0)
    return rng.standard_normal((3, t.size)) * 0.05 + burst * np.array([[1.0], [0.6], [0.5]])


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not CER.exists(), reason="obspy's seisan test data not installed")
def test_cer_local_event_triggers_on_its_p():
    stream = obspy.read(str(CER))
    [window] = stream_to_windows(stream)
    assert window.station == ".CER"
    assert window.channels == (".CER.00.BHZ", ".CER.00.BHN", ".CER.00.BHE")
    assert window.input_sampling_rate_hz == 150.0
    assert window.rule == "sta_lta"
    p_time = window.start + window.p_sample / 100.0
    assert 28.0 < p_time - stream[0].stats.starttime < 32.0  # the P onset is at ~30 s
    assert window.end - window.start == 60.0
    assert window.waveform.shape == (3, 6000) and window.waveform.dtype == np.float32
    spec = waveform_to_spectrum(window.waveform)
    assert spec.shape == SPECTRUM_SHAPE and spec.dtype == np.float32
    # the frames after P carry more spectral energy than those before it
    frame = int((p_time - window.start) * 2)  # frames are 0.5 s apart
    per_frame = spec[0].sum(axis=0)
    assert per_frame[frame : frame + 10].mean() > 3 * per_frame[2 : frame - 2].mean()


@pytest.mark.skipif(not list(UH3.glob("BW.UH3*.slist.gz")), reason="obspy signal data missing")
def test_uh3_50hz_event_and_p_alignment():
    stream = obspy.read(str(UH3 / "BW.UH3*.slist.gz"))
    [auto] = stream_to_windows(stream)
    assert auto.rule == "sta_lta" and auto.input_sampling_rate_hz == 50.0
    start = max(tr.stats.starttime for tr in stream)
    assert 27.0 < auto.start + auto.p_sample / 100 - start < 33.0
    # a given P lands 5 s into the window
    pick = start + 100.0
    [aligned] = stream_to_windows(stream, p_arrival=pick)
    assert aligned.rule == "p_arrival" and aligned.p_sample == 500
    assert abs(aligned.start - (pick - 5.0)) < 0.011
    # near the end the window stays inside the data and reports where P fell
    [late] = stream_to_windows(stream, p_arrival=start + 220.0)
    assert late.p_sample > 500 and late.end <= start + 230.5


def test_default_example_is_30_s_refused_or_padded():
    stream = obspy.read()
    with pytest.raises(EventInputError, match=r"30.00 s .* needs 60 s"):
        stream_to_windows(stream)
    [window] = stream_to_windows(stream, EventPreprocessConfig(max_pad_s=30.0))
    assert window.padded_s == pytest.approx(30.0)
    assert np.all(window.waveform[:, 3000:] == 0) and np.any(window.waveform[:, :3000] != 0)
    assert waveform_to_spectrum(window.waveform).shape == SPECTRUM_SHAPE
    assert window.describe()["station"] == "BW.RJOB"


# --------------------------------------------------------------------------- synthetic


def test_synthetic_event_window_rules():
    stream = _stream(_event_record(p_s=30.0))
    [auto] = stream_to_windows(stream)
    assert auto.rule == "sta_lta"
    assert abs((auto.start + auto.p_sample / 100) - (T0 + 30.0)) < 0.5
    quiet = _stream(np.random.default_rng(1).standard_normal((3, 9000)))
    [first] = stream_to_windows(quiet)
    assert first.rule == "start" and first.start == T0 and first.p_sample is None


def test_z12_components_and_station_selection():
    data = _event_record(seed=2)
    stream = _stream(data, channels=("EHZ", "EH1", "EH2"), station="AAA")
    stream += _stream(_event_record(seed=3), station="BBB", net="YY")
    windows = stream_to_windows(stream)
    assert [w.station for w in windows] == ["XX.AAA", "YY.BBB"]
    assert windows[0].channels == ("XX.AAA..EHZ", "XX.AAA..EH1", "XX.AAA..EH2")
    assert [w.station for w in stream_to_windows(stream, station="bbb")] == ["YY.BBB"]
    assert [w.station for w in stream_to_windows(stream, station="XX.AAA")] == ["XX.AAA"]
    with pytest.raises(EventInputError, match=r"'CCC' is not in the file.*XX.AAA.*YY.BBB"):
        stream_to_windows(stream, station="CCC")


def test_short_gap_is_filled_and_resampling_keeps_frequency():
    rate = 200.0
    t = np.arange(int(80 * rate)) / rate
    data = np.stack([np.sin(2 * np.pi * 7.0 * t + k) for k in range(3)])
    stream = _stream(data, rate=rate)
    for tr in list(stream):  # cut out 0.5 s
        first, second = tr.copy(), tr.copy()
        first.trim(endtime=T0 + 40.0)
        second.trim(starttime=T0 + 40.5)
        stream.remove(tr)
        stream += Stream([first, second])
    [window] = stream_to_windows(stream)
    assert window.input_sampling_rate_hz == 200.0
    spectrum = np.abs(np.fft.rfft(window.waveform[0]))
    assert np.fft.rfftfreq(6000, 0.01)[np.argmax(spectrum)] == pytest.approx(7.0, abs=0.05)


def test_bandpass_removes_microseism():
    t = np.arange(9000) / 100.0
    micro = 50 * np.sin(2 * np.pi * 0.2 * t)
    local = np.sin(2 * np.pi * 10.0 * t)
    out = condition_waveform(np.stack([micro + local] * 3), 100.0)
    middle = out[0, 2000:7000]
    assert np.std(middle) == pytest.approx(np.std(local), rel=0.05)


def test_dataset_path_matches_serving_path():
    """A dataset trace with a catalogued P gives the same spectrum as the same samples
    served through stream_to_windows with that P time."""
    data = _event_record(p_s=25.0, seed=4)
    [served] = stream_to_windows(_stream(data), p_arrival=T0 + 25.0)
    window = cut_dataset_window(data, 100.0, p_sample=2500.0)
    assert window.rule == "p_arrival" and window.start_s == pytest.approx(20.0)
    np.testing.assert_array_equal(window.waveform, served.waveform)
    np.testing.assert_array_equal(
        dataset_waveform_to_spectrum(data, 100.0, 2500.0), waveform_to_spectrum(served.waveform)
    )
    # without a pick the dataset path uses the serving fallback (STA/LTA)
    assert cut_dataset_window(data, 100.0, p_sample=float("nan")).rule == "sta_lta"


def test_spectrum_matches_seisclip_stft_and_ignores_scale():
    rng = np.random.default_rng(5)
    wave = rng.standard_normal((3, 6000))
    spec = waveform_to_spectrum(wave)
    z = (wave - wave.mean(axis=1, keepdims=True)) / wave.std(axis=1, keepdims=True)
    _, _, ref = stft(z, fs=100, window="hann", nperseg=100, noverlap=50, nfft=100, boundary="zeros")
    np.testing.assert_allclose(spec, np.abs(ref)[:, 1:, 1:], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(waveform_to_spectrum(-3e4 * wave + 7.0), spec, rtol=1e-4, atol=1e-6)
    batch = waveform_to_spectrum(np.stack([wave, 2 * wave]))
    assert batch.shape == (2, *SPECTRUM_SHAPE)
    logged = waveform_to_spectrum(wave, EventPreprocessConfig(log_spectrum=True))
    np.testing.assert_allclose(np.exp(logged) - 1e-6, spec, rtol=1e-3, atol=1e-6)
    # a 20 Hz tone lands in frequency row 20 - 1 (the DC row is dropped)
    tone = np.tile(np.sin(2 * np.pi * 20.0 * np.arange(6000) / 100.0), (3, 1))
    assert np.argmax(waveform_to_spectrum(tone)[0, :, 60]) == 19
    with pytest.raises(EventInputError, match=r"\(3, 6000\)"):
        waveform_to_spectrum(np.zeros((3, 5999)))
    with pytest.raises(EventInputError, match="NaN"):
        waveform_to_spectrum(np.full((3, 6000), np.nan))


def test_module_does_not_import_torch():
    code = (
        "import sys, seislens.models.event_preprocess as m; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- bad input


def test_single_component_is_refused():
    stream = _stream(_event_record()[:1], channels=("HHZ",))
    with pytest.raises(EventInputError, match=r"components \['Z'\]\); 3 components are needed"):
        stream_to_windows(stream)


def test_missing_horizontal_is_refused():
    stream = _stream(_event_record()[:2], channels=("HHZ", "HHN"))
    with pytest.raises(EventInputError, match="Z plus N and E"):
        stream_to_windows(stream)


def test_short_record_is_refused():
    with pytest.raises(EventInputError, match=r"45.00 s of 3-component data"):
        stream_to_windows(_stream(_event_record(seconds=45.0, p_s=20.0)))


def test_mismatched_sampling_rates_are_refused():
    stream = _stream(_event_record())
    stream[2].stats.sampling_rate = 50.0
    with pytest.raises(EventInputError, match="different sampling rates"):
        stream_to_windows(stream)
    # header rounding within the tolerance is accepted
    stream[2].stats.sampling_rate = 100.0 * (1 + 5e-5)
    assert len(stream_to_windows(stream)) == 1


def test_long_gap_is_refused():
    stream = _stream(_event_record(seconds=120.0))
    z = stream.select(channel="HHZ")[0]
    first, second = z.copy(), z.copy()
    first.trim(endtime=T0 + 50.0)
    second.trim(starttime=T0 + 53.0)
    stream.remove(z)
    stream += Stream([first, second])
    with pytest.raises(EventInputError, match=r"gap of 2.990 s.*longer than 1.0 s"):
        stream_to_windows(stream)
    assert len(stream_to_windows(stream, EventPreprocessConfig(max_gap_s=5.0))) == 1
    # the same gap as a masked array (a stream merged without a fill value)
    masked = stream.copy().merge()
    assert np.ma.is_masked(masked.select(channel="HHZ")[0].data)
    with pytest.raises(EventInputError, match=r"gap of 2\.990 s"):
        stream_to_windows(masked)


def test_p_arrival_outside_the_data_is_refused():
    stream = _stream(_event_record())
    with pytest.raises(EventInputError, match="outside the data"):
        stream_to_windows(stream, p_arrival=T0 - 10.0)
    with pytest.raises(EventInputError, match="outside the data"):
        stream_to_windows(stream, p_arrival=T0 + 200.0)


def test_all_zero_nan_and_constant_data_are_refused():
    data = _event_record()
    zero = data.copy()
    zero[1] = 0.0
    with pytest.raises(EventInputError, match=r"XX.TST..HHN is all zeros"):
        stream_to_windows(_stream(zero))
    nan = data.copy()
    nan[0, 100] = np.nan
    with pytest.raises(EventInputError, match="NaN"):
        stream_to_windows(_stream(nan))
    flat = data.copy()
    flat[2] = 42.0
    with pytest.raises(EventInputError, match="constant"):
        stream_to_windows(_stream(flat))


def test_empty_input_and_config_validation():
    with pytest.raises(EventInputError, match="no traces"):
        stream_to_windows(Stream())
    with pytest.raises(ValueError, match="freqmin_hz"):
        EventPreprocessConfig(freqmin_hz=10.0, freqmax_hz=5.0)
    with pytest.raises(ValueError):
        EventPreprocessConfig(freqmax_hz=60.0)


# --------------------------------------------------------------------------- long low-rate records


def _long_low_rate(seconds: float = 600.0, rate: float = 20.0, p_s: float = 300.0) -> Stream:
    """A 3 Hz packet at ``p_s`` in noise, at ``rate`` (the band-pass caps at 9 Hz)."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * rate)) / rate
    decay = np.exp(-np.clip(t - p_s, 0.0, None) / 4.0)
    burst = np.where(t > p_s, decay, 0.0) * np.sin(2 * np.pi * 3 * t)
    return _stream(rng.standard_normal((3, t.size)) + 30 * burst, rate=rate)


@pytest.mark.parametrize("p_arrival", [None, T0 + 300.0])
def test_long_low_rate_record_is_windowed_before_resampling(p_arrival):
    """Forced onto the window-first path, a 10 min 20 Hz record gives the window the
    whole-record path gives: the same rule and P position, a start within one input
    sample, the same samples (given P) and the same spectrum (STA/LTA at 20 Hz)."""
    from seislens.models import event_preprocess as ep

    traces = list(_long_low_rate())
    config = EventPreprocessConfig()
    whole = ep._station_window("XX.TST", traces, config, p_arrival, whole_max_samples=10**9)
    first = ep._station_window("XX.TST", traces, config, p_arrival, whole_max_samples=0)
    assert first.rule == whole.rule == ("p_arrival" if p_arrival else "sta_lta")
    assert abs(first.start - whole.start) <= 1 / 20.0 and first.p_sample == whole.p_sample
    assert first.waveform.shape == whole.waveform.shape == (3, 6000)
    a, b = waveform_to_spectrum(whole.waveform), waveform_to_spectrum(first.waveform)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    if p_arrival is not None:
        peak = np.abs(whole.waveform).max()
        assert np.abs(first.waveform - whole.waveform).max() < 1e-3 * peak


def test_resampling_path_depends_on_length_at_100_hz():
    from seislens.models.event_preprocess import (
        RESAMPLE_WHOLE_MAX_SAMPLES,
        resample_whole,
        resampled_samples,
    )

    assert resample_whole(10**8, 100.0) and resample_whole(10**8, 200.0)
    assert resample_whole(RESAMPLE_WHOLE_MAX_SAMPLES // 5, 20.0)
    assert not resample_whole(RESAMPLE_WHOLE_MAX_SAMPLES // 5 + 1, 20.0)
    assert resampled_samples(1_000_000, 2.5) == 40_000_000  # the 1.8 MB file
    assert resampled_samples(3000, 200.0) == 3000 and resampled_samples(7, 0.0) == 7


def test_six_hours_at_20_hz_cost_their_own_samples():
    """A 6 h 20 Hz record (432,000 samples, 2,160,000 at 100 Hz) is windowed in less
    memory than two copies of it at 100 Hz (52 MB each; resampled whole it peaks at
    155 MB, windowed first at 69 MB, mostly the input's own copies)."""
    import tracemalloc

    stream = _long_low_rate(seconds=6 * 3600.0, p_s=3 * 3600.0)
    tracemalloc.start()
    [window] = stream_to_windows(stream, p_arrival=T0 + 3 * 3600.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert window.rule == "p_arrival" and window.p_sample == 500
    assert window.input_sampling_rate_hz == 20.0 and window.padded_s == 0
    assert peak < 2 * (3 * 2_160_000 * 8)
