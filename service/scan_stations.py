"""Station coordinates for a scan, from an uploaded StationXML file.

:func:`read_station_positions` reads the file with ObsPy (``read_inventory``, format
STATIONXML: an XML parser, no C reader of untrusted records) and takes, for each station
to scan, the epoch of the station that covers the recording (its first window start to
its last sample). A station the file does not have, or has only for other times, is a
refusal naming it (:class:`StationsNotCoveredError`, 422): a location computed without
it would be quietly worse.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from obspy import UTCDateTime
from seislens.models.event_association import StationPosition
from seislens.service.errors import InvalidParameterError
from seislens.service.scan_reader import StationPlan

FIELD = ("body", "stationxml")


class BadStationXMLError(InvalidParameterError):
    """The StationXML upload cannot be read (422)."""

    upload = True

    def __init__(self, filename: str, why: str) -> None:
        super().__init__(
            FIELD,
            f"{filename!r} is not a readable StationXML file ({why}); expected FDSN "
            "StationXML with the latitude and longitude of every station scanned",
            "bad_stationxml",
        )


class StationsNotCoveredError(InvalidParameterError):
    """The StationXML upload lacks stations of the recording (422)."""

    upload = True

    def __init__(self, filename: str, missing: list[str], have: list[str]) -> None:
        listed = ", ".join(have[:20]) + (", …" if len(have) > 20 else "")
        super().__init__(
            FIELD,
            f"{filename!r} does not cover station(s) {', '.join(missing)} of the recording "
            f"(at the recording's time); it describes {listed or 'no station'}: send a "
            "StationXML with every station scanned, or none (the events are then not located)",
            "stationxml_coverage",
        )
        self.missing = missing


def read_station_positions(
    path: Path, filename: str, stations: list[StationPlan]
) -> dict[str, StationPosition]:
    """``NET.STA`` → position for every station to scan.

    Raises:
        BadStationXMLError: the file cannot be read as StationXML.
        StationsNotCoveredError: stations it does not describe at the recording's time.
    """
    from obspy import read_inventory

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inventory = read_inventory(str(path), format="STATIONXML")
    except Exception as exc:  # lxml and ObsPy raise many types for bad files
        raise BadStationXMLError(filename, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    epochs: dict[str, list[tuple[UTCDateTime | None, UTCDateTime | None, StationPosition]]] = {}
    for net in inventory:
        for sta in net:
            epochs.setdefault(f"{net.code}.{sta.code}", []).append(
                (
                    sta.start_date,
                    sta.end_date,
                    StationPosition(
                        float(sta.latitude), float(sta.longitude), float(sta.elevation or 0.0)
                    ),
                )
            )
    found: dict[str, StationPosition] = {}
    missing = []
    for plan in stations:
        start, end = UTCDateTime(plan.start), UTCDateTime(plan.end)
        covering = [
            pos
            for first, last, pos in epochs.get(plan.station, [])
            if (first is None or first <= start) and (last is None or last >= end)
        ]
        if covering:
            found[plan.station] = covering[0]
        else:
            missing.append(plan.station)
    if missing:
        raise StationsNotCoveredError(filename, missing, sorted(epochs))
    return found
