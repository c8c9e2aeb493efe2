"""What a scan writes: JSON, CSV, QuakeML and the class-probability traces as miniSEED.

Each file is written aside and renamed into place (:func:`write_atomic`), so a reader
sees a whole file or none.

* ``result.json`` (:func:`result_document`) — the stations scanned and skipped, every
  detection (station level) and every event (detections grouped, one type each, located
  when StationXML was given), the settings used and the timing.
* ``detections.csv`` (:data:`CSV_COLUMNS`) — one row per detection.
* ``events.quakeml`` (:func:`catalog`) — QuakeML 1.2 via an ObsPy ``Catalog``: one event per
  grouped event with its type (:data:`QUAKEML_TYPES`, certainty "suspected": a machine's
  call), a P pick per station onset, the location as an origin (only when located:
  QuakeML requires a latitude and longitude), the magnitude with its spread as
  uncertainty, and comments with the class probabilities, the stations' agreement and
  each station's distance estimate.
* ``probabilities.mseed`` (:func:`probability_stream`) — SeisBench's ``annotate``
  convention: per station one trace per class, the class probability of each window at
  the window's centre, sampled every stride (0.1 Hz at the default 10 s). In an ObsPy
  stream (``seisbench_names=True``) the channel is ``SeisLens_<class>`` as SeisBench
  names annotations; miniSEED allows 3-character channels, so the file uses location
  code ``SL`` and the class's first three letters in capitals (``SL.EAR`` earthquake,
  ``SL.EXP`` explosion, ``SL.SUR`` surface, ``SL.NOI`` noise; ``P00``, ``P01``, … if two
  classes would share one), listed in ``result.json`` under ``probability_channels``.
  A gap in the windows (a gap in the data) starts a new trace.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from obspy import Stream, Trace, UTCDateTime
from seislens.models.contract import WINDOW_S
from seislens.models.event_scan import Detection, Estimate
from seislens.service.scan_run import ScannedEvent, ScanResult

PROBABILITY_LOCATION = "SL"
SEISBENCH_PREFIX = "SeisLens_"
QUAKEML_TYPES = {
    "earthquake": "earthquake",
    "explosion": "explosion",
    "surface": "other event",
    "noise": "not existing",
}
"""QuakeML event type of each class. QuakeML has no type for the mixed class of surface
events (rockfalls, landslides, avalanches): "other event", and a comment names it."""

FILES = {
    "result": "result.json",
    "csv": "detections.csv",
    "quakeml": "events.quakeml",
    "mseed": "probabilities.mseed",
}
"""What a finished scan folder holds, by kind."""

UNITS = {"distance": "km", "depth": "km", "magnitude": "magnitude units"}
CSV_COLUMNS = (
    "detection",
    "event",
    "station",
    "start",
    "end",
    "onset",
    "windows",
    "class_windows",
    "label",
    "p_earthquake",
    "p_explosion",
    "p_surface",
    "p_noise",
    "label_changed_from",
    "distance_km",
    "distance_spread_km",
    "depth_km",
    "depth_spread_km",
    "depth_method",
    "magnitude",
    "magnitude_spread",
    "peak_start",
    "peak_probability",
)


def iso(epoch: float | None) -> str | None:
    """ISO 8601 UTC of an epoch (s), or None."""
    return None if epoch is None else str(UTCDateTime(epoch))


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` to ``path``, atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------- JSON


def probability_channels(classes: tuple[str, ...]) -> dict[str, str]:
    """class → ``LOC.CHA`` of its probability trace in the miniSEED file."""
    codes = [c[:3].upper() for c in classes]
    if len(set(codes)) < len(codes) or any(len(c) < 3 for c in codes):
        codes = [f"P{i:02d}" for i in range(len(classes))]
    return {c: f"{PROBABILITY_LOCATION}.{code}" for c, code in zip(classes, codes, strict=True)}


def _quantity(estimate: Estimate | None, name: str) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {
        "value": round(estimate.value, 3),
        "spread": round(estimate.spread, 3),
        "unit": UNITS.get(name, ""),
        "method": estimate.method,
    }


def _event_ids(result: ScanResult) -> dict[int, str]:
    """id(detection) → its event's id."""
    return {id(m): f"E{k + 1:04d}" for k, e in enumerate(result.events) for m in e.members}


def detection_document(n: int, d: Detection, event: str | None) -> dict[str, Any]:
    """One detection, JSON-ready."""
    return {
        "id": f"D{n + 1:05d}",
        "event": event,
        "station": d.station,
        "start": iso(d.start),
        "end": iso(d.end),
        "onset": iso(d.onset),
        "windows": d.windows,
        "class_windows": d.class_windows,
        "label": d.label,
        "label_changed_from": d.relabelled_from,
        "probabilities": {c: round(p, 6) for c, p in d.probabilities.items()},
        "distance_km": _quantity(d.estimates.get("distance"), "distance"),
        "depth_km": _quantity(d.estimates.get("depth"), "depth"),
        "magnitude": _quantity(d.estimates.get("magnitude"), "magnitude"),
        "peak": {
            "start": iso(d.peak_start),
            "end": iso(d.peak_start + WINDOW_S),
            "event_probability": round(d.peak_probability, 6),
            "probabilities": {c: round(p, 6) for c, p in d.peak_probabilities.items()},
        },
    }


def event_document(k: int, e: ScannedEvent, ids: dict[int, str]) -> dict[str, Any]:
    """One event, JSON-ready."""
    loc = e.location
    return {
        "id": f"E{k + 1:04d}",
        "time": iso(e.time),
        "label": e.label,
        "probabilities": {c: round(p, 6) for c, p in e.probabilities.items()},
        "agreement": round(e.agreement, 4),
        "stations": [m.station for m in e.members],
        "station_labels": {m.station: m.label for m in e.members},
        "detections": [ids[id(m)] for m in e.members],
        "depth_km": _quantity(e.depth, "depth"),
        "magnitude": _quantity(e.magnitude, "magnitude"),
        "location": None
        if loc is None
        else {
            "latitude": round(loc.latitude, 5),
            "longitude": round(loc.longitude, 5),
            "depth_km": round(loc.depth_km, 3),
            "origin_time": iso(loc.origin_time),
            "rms_time_s": round(loc.rms_time_s, 3),
            "rms_distance_km": round(loc.rms_distance_km, 3),
            "misfit": round(loc.misfit, 4),
            "stations": loc.stations,
            "residuals": {
                s: {
                    "onset_s": round(a, 3),
                    "distance_km": round(b, 3),
                    "epicentral_km": round(c, 3),
                }
                for s, (a, b, c) in loc.residuals.items()
            },
        },
        "location_note": e.location_note,
    }


def result_document(result: ScanResult, **extra: Any) -> dict[str, Any]:
    """The whole result, JSON-ready (``extra`` keys are added at the top level)."""
    event_of = _event_ids(result)
    detection_ids = {id(d): f"D{n + 1:05d}" for n, d in enumerate(result.detections)}
    plan = result.plan
    return {
        **extra,
        "filename": result.filename,
        "classes": list(result.classes),
        "settings": result.config.model_dump(mode="json"),
        "association": result.association.model_dump(mode="json"),
        "located": result.located,
        "stations_in_file": plan.all_stations,
        "stations": [
            {
                "station": p.station,
                "channels": list(p.channels),
                "sampling_rate_hz": p.rate,
                "start": iso(p.start),
                "end": iso(p.end),
                "windows": len(scores),
            }
            for p, scores in result.series
        ],
        "skipped": [{"station": s, "reason": why} for s, why in plan.skipped],
        "windows": result.windows,
        "detections": [
            detection_document(n, d, event_of.get(id(d))) for n, d in enumerate(result.detections)
        ],
        "events": [event_document(k, e, detection_ids) for k, e in enumerate(result.events)],
        "probability_channels": probability_channels(result.classes),
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }


# --------------------------------------------------------------------------- CSV


def detections_csv(document: dict[str, Any]) -> str:
    """One row per detection of a :func:`result_document` (:data:`CSV_COLUMNS`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    classes = document["classes"]
    columns = [c for c in CSV_COLUMNS if not c.startswith("p_")]
    header = columns[:9] + [f"p_{c}" for c in classes] + columns[9:]
    writer.writerow(header)
    for d in document["detections"]:

        def part(name: str, key: str, det: dict[str, Any] = d) -> Any:
            q = det[name]
            return "" if q is None else q[key]

        writer.writerow(
            [
                d["id"],
                d["event"] or "",
                d["station"],
                d["start"],
                d["end"],
                d["onset"] or "",
                d["windows"],
                d["class_windows"],
                d["label"],
                *[d["probabilities"][c] for c in classes],
                d.get("label_changed_from") or "",
                part("distance_km", "value"),
                part("distance_km", "spread"),
                part("depth_km", "value"),
                part("depth_km", "spread"),
                part("depth_km", "method"),
                part("magnitude", "value"),
                part("magnitude", "spread"),
                d["peak"]["start"],
                d["peak"]["event_probability"],
            ]
        )
    return out.getvalue()


# --------------------------------------------------------------------------- QuakeML


def catalog(result: ScanResult, prefix: str = "smi:seislens/scan") -> Any:
    """The events as an ObsPy ``Catalog`` (see the module docstring)."""
    from obspy.core.event import (
        Catalog,
        Comment,
        CreationInfo,
        Event,
        Magnitude,
        Origin,
        OriginQuality,
        Pick,
        QuantityError,
        ResourceIdentifier,
        WaveformStreamID,
    )

    info = CreationInfo(agency_id="SeisLens", creation_time=UTCDateTime())
    channels = {p.station: p.channels[0] for p, _ in result.series}
    cat = Catalog(resource_id=ResourceIdentifier(f"{prefix}/catalog"), creation_info=info)
    for k, e in enumerate(result.events):
        eid = f"{prefix}/event/{k + 1}"
        event = Event(
            resource_id=ResourceIdentifier(eid),
            event_type=QUAKEML_TYPES.get(e.label, "other event"),
            event_type_certainty="suspected",
            creation_info=info,
        )
        probs = ", ".join(f"{c} {p:.3f}" for c, p in e.probabilities.items())
        event.comments.append(
            Comment(
                text=f"SeisLens class {e.label} (combined probabilities: {probs}); "
                f"{len(e.members)} station(s), agreement {e.agreement:.2f}"
            )
        )
        for m in e.members:
            dist = m.estimates.get("distance")
            event.comments.append(
                Comment(
                    text=f"{m.station}: {m.label}"
                    + (
                        f" (the probabilities' {m.relabelled_from}: the S − P time puts the "
                        "source too deep for one)"
                        if m.relabelled_from
                        else ""
                    )
                    + (f", distance {dist.value:.1f} ± {dist.spread:.1f} km" if dist else "")
                    + f", windows {iso(m.start)} – {iso(m.end)}"
                )
            )
            if m.onset is not None:
                net, sta, loc, cha = channels[m.station].split(".")
                event.picks.append(
                    Pick(
                        resource_id=ResourceIdentifier(f"{eid}/pick/{m.station}"),
                        time=UTCDateTime(m.onset),
                        waveform_id=WaveformStreamID(net, sta, loc, cha),
                        phase_hint="P",
                        evaluation_mode="automatic",
                        method_id=ResourceIdentifier("smi:seislens/sta-lta"),
                    )
                )
        origin = None
        if e.location is not None:
            loc_ = e.location
            if e.location_note:
                event.comments.append(Comment(text=e.location_note))
            origin = Origin(
                resource_id=ResourceIdentifier(f"{eid}/origin"),
                time=UTCDateTime(loc_.origin_time),
                latitude=loc_.latitude,
                longitude=loc_.longitude,
                depth=loc_.depth_km * 1000.0,
                depth_type="operator assigned",
                method_id=ResourceIdentifier("smi:seislens/grid-search-iasp91"),
                earth_model_id=ResourceIdentifier("smi:seislens/iasp91"),
                evaluation_mode="automatic",
                quality=OriginQuality(
                    used_station_count=len(loc_.stations), standard_error=loc_.rms_time_s
                ),
                comments=[
                    Comment(
                        text=f"misfit {loc_.misfit:.3f}; RMS onset residual "
                        f"{loc_.rms_time_s:.2f} s, RMS distance residual "
                        f"{loc_.rms_distance_km:.1f} km; depth fixed at the event's estimate"
                        f" ({e.depth.method if e.depth else 'heads'})"
                    )
                ],
            )
            event.origins.append(origin)
            event.preferred_origin_id = origin.resource_id
        elif e.location_note:
            event.comments.append(Comment(text=e.location_note))
        if e.magnitude is not None:
            mag = Magnitude(
                resource_id=ResourceIdentifier(f"{eid}/magnitude"),
                mag=round(e.magnitude.value, 3),
                mag_errors=QuantityError(uncertainty=round(e.magnitude.spread, 3)),
                magnitude_type="M",
                method_id=ResourceIdentifier("smi:seislens/event-heads"),
                station_count=len(e.members),
                evaluation_mode="automatic",
                origin_id=origin.resource_id if origin is not None else None,
            )
            event.magnitudes.append(mag)
            event.preferred_magnitude_id = mag.resource_id
        cat.events.append(event)
    return cat


# --------------------------------------------------------------------------- miniSEED


def probability_stream(result: ScanResult, seisbench_names: bool = False) -> Stream:
    """The class-probability traces (see the module docstring)."""
    codes = probability_channels(result.classes)
    stride = result.config.stride_s
    traces = []
    for plan, scores in result.series:
        if not len(scores):
            continue
        net, sta = plan.station.split(".")
        breaks = np.flatnonzero(np.abs(np.diff(scores.starts) - stride) > 1e-3) + 1
        for part in np.split(np.arange(len(scores)), breaks):
            for k, cls in enumerate(result.classes):
                loc, cha = codes[cls].split(".")
                if seisbench_names:
                    loc, cha = "", SEISBENCH_PREFIX + cls
                header = {
                    "network": net,
                    "station": sta,
                    "location": loc,
                    "channel": cha,
                    "sampling_rate": 1.0 / stride,
                    "starttime": UTCDateTime(float(scores.starts[part[0]]) + WINDOW_S / 2),
                }
                data = np.ascontiguousarray(scores.probabilities[part, k], dtype=np.float32)
                traces.append(Trace(data, header))
    return Stream(traces)


# --------------------------------------------------------------------------- all files


def write_outputs(result: ScanResult, folder: Path, **extra: Any) -> dict[str, Any]:
    """Write every output file of a scan into ``folder`` (each atomically); the JSON
    document, ``result.json`` last."""
    folder = Path(folder)
    document = result_document(result, **extra)
    write_text_atomic(folder / FILES["csv"], detections_csv(document))
    prefix = f"smi:seislens/scan/{extra.get('id', 'local')}"
    write_atomic(
        folder / FILES["quakeml"], lambda p: catalog(result, prefix).write(str(p), "QUAKEML")
    )
    stream = probability_stream(result)

    def mseed(path: Path) -> None:
        if len(stream):
            stream.write(str(path), format="MSEED", encoding="FLOAT32", reclen=512)
        else:
            path.write_bytes(b"")

    write_atomic(folder / FILES["mseed"], mseed)
    write_text_atomic(folder / FILES["result"], json.dumps(document, indent=1))
    return document
