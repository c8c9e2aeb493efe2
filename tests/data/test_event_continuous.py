"""Continuous synthetic recordings (data/event_continuous.py): the truth they report is
what the file holds."""

from __future__ import annotations

import numpy as np
from obspy import read
from seislens.data.event_continuous import (
    ContinuousConfig,
    band_rms,
    peak_rms,
    station_positions,
    write_continuous,
)
from seislens.models.event_association import epicentral_km


def test_recording_holds_its_events_at_their_snr(tmp_path):
    config = ContinuousConfig(duration_s=900.0, stations=2, events=1, snr_db=(12.0, 12.0), seed=4)
    rec = write_continuous(tmp_path / "rec.mseed", config)
    stream = read(str(rec.path))
    assert sorted({t.id for t in stream}) == [
        f"SY.{s}..HH{c}" for s in ("S000", "S001") for c in "ENZ"
    ]
    (event,) = rec.events
    for name, truth in event.stations.items():
        lat, lon = rec.stations[name]
        assert truth.distance_km == float(epicentral_km(lat, lon, event.latitude, event.longitude))
        st = stream.select(station=name.split(".")[1])
        x = np.stack([st.select(component=c)[0].data for c in "ZNE"]).astype(np.float64)
        p = round((truth.p_time - rec.start) * 100.0)
        noise = float(np.sqrt(np.mean(band_rms(x[:, 1000 : p - 500], 100.0) ** 2)))
        assert abs(noise - config.noise_rms) < 0.15 * config.noise_rms
        snr = 20 * np.log10(peak_rms(x[:, p - 200 : p + 9000], 100.0) / noise)
        assert abs(snr - 12.0) < 1.5  # signal + noise over noise: within a dB or so
        assert peak_rms(x[:, p - 1200 : p - 200], 100.0) < 2 * noise  # nothing before P


def test_stations_sit_on_a_ring_with_the_spacing_asked():
    pos = station_positions(ContinuousConfig(stations=3, station_spacing_km=30.0))
    (a, b, c) = pos.values()
    for p, q in ((a, b), (b, c), (c, a)):
        assert abs(float(epicentral_km(*p, *q)) - 30.0) < 0.5
