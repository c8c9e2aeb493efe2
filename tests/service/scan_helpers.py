"""Small recordings for the scan tests, written by ObsPy (plain functions)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime

START = UTCDateTime(2024, 3, 1)
DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "artifacts" / "default"


def station_traces(
    station: str,
    seconds: float,
    rate: float = 100.0,
    components: str = "ZNE",
    start: UTCDateTime = START,
    seed: int = 0,
    network: str = "XX",
    band: str = "HH",
) -> list[Trace]:
    """Coloured noise (int32 counts) on ``components`` of one station."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    traces = []
    for comp in components:
        x = np.cumsum(rng.standard_normal(n)) * 0.05 + rng.standard_normal(n) * 50.0
        traces.append(
            Trace(
                np.round(x).astype(np.int32),
                {
                    "network": network,
                    "station": station,
                    "channel": band + comp,
                    "sampling_rate": rate,
                    "starttime": start,
                },
            )
        )
    return traces


def mseed_bytes(stream: Stream, reclen: int = 4096) -> bytes:
    """``stream`` as Steim-2 miniSEED."""
    buffer = io.BytesIO()
    stream.write(buffer, format="MSEED", encoding="STEIM2", reclen=reclen)
    return buffer.getvalue()


def write_mseed(path: Path, stream: Stream, reclen: int = 4096) -> Path:
    """``stream`` written to ``path`` as miniSEED."""
    path.write_bytes(mseed_bytes(stream, reclen))
    return path


def station_xml(path: Path, stations: dict[str, tuple[float, float]]) -> Path:
    """A StationXML file with ``NET.STA`` → (latitude, longitude)."""
    from obspy.core.inventory import Inventory, Network, Station

    networks: dict[str, list[Station]] = {}
    for key, (lat, lon) in stations.items():
        net, sta = key.split(".")
        networks.setdefault(net, []).append(
            Station(
                sta, latitude=lat, longitude=lon, elevation=0.0, start_date=UTCDateTime(2000, 1, 1)
            )
        )
    inventory = Inventory(
        [Network(code, stations=s) for code, s in networks.items()], source="test"
    )
    inventory.write(str(path), format="STATIONXML")
    return path
