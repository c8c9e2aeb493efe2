"""Reading a long miniSEED recording chunk by chunk, so memory follows the chunk and not
the file.

The file is memory-mapped, never read whole. In order:

1. **Headers** — :func:`~seislens.service.mseed_records.scan_records` checks every
   record header (nothing reaches libmseed that it could read past) and
   :func:`~seislens.service.recordings.check_budgets` the scan budgets on what they
   declare (:class:`ScanBudgets`).
2. **Record table** (:func:`index_records`) — per record its byte offset, length,
   channel, first-sample time, end time and rate: a few arrays, 40 bytes a record.
3. **Station plan** (:func:`plan_stations`) — per station (``NET.STA``) the instrument
   used, chosen as the single-window path chooses it (location code and band with Z plus
   N/E, or Z plus 1/2; the highest rate first, then by name), and the span the three
   components cover. A station without three components, with components at different
   rates, a rate too low for the band-pass or less than 60 s of data is **skipped with its
   reason**; the scan goes on with the others.
4. **Chunks** (:func:`read_segments`) — the records of the plan's channels overlapping
   a time range are copied out and decoded by ObsPy (under
   :data:`~seislens.service.recordings.MSEED_LOCK`), laid on one sample grid per chunk,
   gaps of up to ``max_gap_s`` filled by linear interpolation; longer gaps (or missing
   components) split the chunk into gap-free **segments**.
"""

from __future__ import annotations

import contextlib
import io
import math
import mmap
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from seislens.models.contract import COMPONENTS, WINDOW_S
from seislens.models.event_preprocess import EventInputError, EventPreprocessConfig
from seislens.service.mseed_records import RecordError, RecordScan, scan_records, seed_rate
from seislens.service.recordings import MSEED_LOCK, RecordingBudgets, check_budgets

_FIXED = {order: struct.Struct(order + "6scc5s2s3s2sHHBBBBHHhhBBBBiHH") for order in "<>"}
_HEAD = {order: struct.Struct(order + "HH") for order in "<>"}
_FLOAT = {order: struct.Struct(order + "f") for order in "<>"}
_ALIASES = {"Z": ("Z",), "N": ("N", "1"), "E": ("E", "2")}
_EXPECTED = "expected miniSEED with 3-component (Z, N, E or Z, 1, 2) traces"


@dataclass(frozen=True)
class ScanBudgets:
    """What a recording sent for scanning may declare (checked on its headers).

    Attributes:
        max_stations: stations in the file.
        max_traces: traces (runs of contiguous records of one channel).
        max_channel_samples: samples of one channel, counted at 100 Hz.
    """

    max_stations: int
    max_traces: int
    max_channel_samples: int

    def recording_budgets(self) -> RecordingBudgets:
        """The same limits as :func:`check_budgets` takes them (no total beyond the
        channels': a scan holds one chunk at a time)."""
        return RecordingBudgets(
            max_stations=self.max_stations,
            max_traces=self.max_traces,
            max_channel_samples=self.max_channel_samples,
            max_total_samples=2**62,  # no total: a scan holds one chunk at a time
        )


# --------------------------------------------------------------------------- records


@dataclass
class RecordTable:
    """The data records of a file, in file order.

    Attributes:
        offset, length: byte offset and length of each record.
        channel: index into ``channels`` (``NET.STA.LOC.CHA``).
        start, end: epoch (s) of its first sample and of the instant after its last.
        rate: sampling rate (Hz).
    """

    offset: np.ndarray
    length: np.ndarray
    channel: np.ndarray
    start: np.ndarray
    end: np.ndarray
    rate: np.ndarray
    channels: list[str]

    def of_channel(self, channel: str) -> np.ndarray:
        """Record indices of one channel (with samples), in time order."""
        k = self.channels.index(channel)
        rows = np.flatnonzero((self.channel == k) & (self.rate > 0) & (self.end > self.start))
        return rows[np.argsort(self.start[rows], kind="stable")]


def index_records(view: memoryview) -> RecordTable:
    """The record table of a file whose headers :func:`scan_records` has checked.

    Args:
        view: the whole file (e.g. a memory map).
    """
    offsets, lengths, chans, starts, samples, rates = [], [], [], [], [], []
    names: dict[str, int] = {}
    at = 0
    size = len(view)
    while at + 48 <= size:
        order = ">" if _plausible(view, at, ">") else "<"
        f = _FIXED[order].unpack_from(view, at)
        length, rate, micro = _blockettes(view, at, f[23], order)
        if length <= 0:
            break
        rate = rate if rate is not None else seed_rate(f[15], f[16])
        start = _epoch(f[7], f[8], f[9], f[10], f[11], f[13]) + micro * 1e-6
        if not f[17] & 0x02:  # time correction not applied yet
            start += f[21] * 1e-4
        name = ".".join(
            x.decode("latin-1").strip() for x in (f[6], f[3], f[4], f[5])
        )  # NET.STA.LOC.CHA
        offsets.append(at)
        lengths.append(length)
        chans.append(names.setdefault(name, len(names)))
        starts.append(start)
        samples.append(f[14])
        rates.append(rate)
        at += length
    start_a = np.asarray(starts, dtype=np.float64)
    rate_a = np.asarray(rates, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        end_a = np.where(rate_a > 0, start_a + np.asarray(samples) / rate_a, start_a)
    return RecordTable(
        offset=np.asarray(offsets, dtype=np.int64),
        length=np.asarray(lengths, dtype=np.int64),
        channel=np.asarray(chans, dtype=np.int32),
        start=start_a,
        end=end_a,
        rate=rate_a,
        channels=list(names),
    )


def _plausible(view: memoryview, at: int, order: str) -> bool:
    year, day = struct.unpack_from(order + "HH", view, at + 20)
    return 1900 <= year <= 2100 and 1 <= day <= 366


def _blockettes(view: memoryview, at: int, first: int, order: str) -> tuple[int, float | None, int]:
    """(record length, blockette-100 rate or None, blockette-1001 microseconds)."""
    length, rate, micro = 0, None, 0
    b = first
    for _ in range(64):
        if not b:
            break
        kind, following = _HEAD[order].unpack_from(view, at + b)
        if kind == 1000:
            length = 1 << view[at + b + 6]
        elif kind == 100:
            rate = _FLOAT[order].unpack_from(view, at + b + 4)[0]
        elif kind == 1001:
            micro = struct.unpack_from("b", view, at + b + 5)[0]
        if following and following <= b:
            break
        b = following
    return length, rate, micro


_EPOCH_DAYS: dict[int, float] = {}


def _epoch(year: int, day: int, hour: int, minute: int, second: int, fract: int) -> float:
    """Seconds since 1970 of a SEED BTIME (``fract`` in 0.1 ms)."""
    base = _EPOCH_DAYS.get(year)
    if base is None:
        base = _EPOCH_DAYS[year] = float(
            (np.datetime64(f"{year:04d}-01-01") - np.datetime64("1970-01-01")).astype(int)
        )
    return (base + day - 1) * 86400.0 + hour * 3600 + minute * 60 + second + fract * 1e-4


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class StationPlan:
    """One station to scan: its Z, N, E channels, their rate and common span.

    Attributes:
        station: ``NET.STA``.
        channels: ``NET.STA.LOC.CHA`` of Z, N, E.
        rate: their sampling rate (Hz).
        start, end: epochs (s) from the latest first sample to the earliest end.
    """

    station: str
    channels: tuple[str, str, str]
    rate: float
    start: float
    end: float


@dataclass
class UploadPlan:
    """What a recording holds for a scan.

    Attributes:
        stations: the stations scanned, sorted.
        skipped: (station, reason) of those that cannot be.
        all_stations: every ``NET.STA`` in the file.
        records, traces: as the headers declare.
    """

    stations: list[StationPlan]
    skipped: list[tuple[str, str]]
    all_stations: list[str]
    records: int
    traces: int
    notes: list[str] = field(default_factory=list)

    @property
    def start(self) -> float:
        """The earliest start of a scanned station (epoch s): the window grid's origin."""
        return min(s.start for s in self.stations)


def plan_stations(
    table: RecordTable, pre: EventPreprocessConfig
) -> tuple[list[StationPlan], list[tuple[str, str]]]:
    """The stations to scan and those skipped, with why (see the module docstring)."""
    by_station: dict[str, list[str]] = {}
    for name in table.channels:
        net, sta, _loc, _cha = name.split(".")
        by_station.setdefault(f"{net}.{sta}", []).append(name)
    plans, skipped = [], []
    for station in sorted(by_station):
        try:
            plans.append(_plan(station, by_station[station], table, pre))
        except EventInputError as exc:
            skipped.append((station, str(exc)))
    return plans, skipped


def _plan(
    station: str, channels: list[str], table: RecordTable, pre: EventPreprocessConfig
) -> StationPlan:
    instruments: dict[tuple[str, str], dict[str, str]] = {}
    for name in channels:
        _net, _sta, loc, cha = name.split(".")
        instruments.setdefault((loc, cha[:-1].upper()), {})[cha[-1:].upper()] = name
    complete = []
    for (loc, band), comps in instruments.items():
        chosen = {}
        for comp, aliases in _ALIASES.items():
            found = [comps[a] for a in aliases if a in comps]
            if found:
                chosen[comp] = found[0]
        if len(chosen) == 3:
            rows = table.of_channel(chosen["Z"])
            rate = float(table.rate[rows].max()) if rows.size else 0.0
            complete.append((-rate, loc, band, chosen))
    if not complete:
        comps = sorted({c.rsplit(".", 1)[1][-1:].upper() for c in channels})
        raise EventInputError(
            f"station {station} has channels {sorted(channels)} (components {comps}); 3 "
            "components are needed: Z plus N and E (or 1 and 2)",
            reason="components",
        )
    chosen = min(complete, key=lambda c: c[:3])[3]
    rows = {c: table.of_channel(chosen[c]) for c in COMPONENTS}
    if any(r.size == 0 for r in rows.values()):
        empty = [chosen[c] for c in COMPONENTS if rows[c].size == 0]
        raise EventInputError(f"station {station}: {empty} hold no samples", reason="components")
    rates = {c: float(np.median(table.rate[rows[c]])) for c in COMPONENTS}
    rate = rates["Z"]
    if max(rates.values()) > min(rates.values()) * (1 + pre.rate_tolerance):
        detail = ", ".join(f"{chosen[c]}: {r:g} Hz" for c, r in rates.items())
        raise EventInputError(
            f"station {station}: components have different sampling rates ({detail})",
            reason="sampling_rate",
        )
    if min(pre.freqmax_hz, 0.9 * rate / 2.0) <= pre.freqmin_hz:
        raise EventInputError(
            f"station {station}: {rate:g} Hz is too low for the {pre.freqmin_hz}-"
            f"{pre.freqmax_hz} Hz band-pass",
            reason="low_sampling_rate",
        )
    start = max(float(table.start[r].min()) for r in rows.values())
    end = min(float(table.end[r].max()) for r in rows.values())
    if end - start < WINDOW_S:
        raise EventInputError(
            f"station {station}: its 3 components overlap for {max(0.0, end - start):.1f} s; "
            f"a scan needs at least one {WINDOW_S:.0f} s window",
            reason="too_short",
        )
    channel_ids = (chosen["Z"], chosen["N"], chosen["E"])
    return StationPlan(station, channel_ids, rate, start, end)


# --------------------------------------------------------------------------- the file


class MappedRecording:
    """A miniSEED file memory-mapped, its headers checked, its records indexed.

    Args:
        path: the file.
        filename: the client's name for it (the only name messages use).
        budgets: what the file may declare.
    Raises:
        EventInputError: empty, not miniSEED, a bad record, over a budget, no traces.
    """

    def __init__(self, path: Path, filename: str, budgets: ScanBudgets) -> None:
        self.filename = filename
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        try:
            size = Path(path).stat().st_size
            if size == 0:
                raise EventInputError(
                    f"{filename!r} is empty (0 bytes); expected a miniSEED file", reason="empty"
                )
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.view = memoryview(self._map)
            self.scan = _checked_scan(self.view, filename)
            check_budgets(self.scan, budgets.recording_budgets(), filename)
            if self.scan.records == 0:
                raise EventInputError(f"{filename!r} holds no miniSEED records", reason="no_traces")
            self.table = index_records(self.view)
            self.release()
        except BaseException:
            self.close()
            raise

    def plan(self, pre: EventPreprocessConfig) -> UploadPlan:
        """The stations to scan and those skipped.

        Raises:
            EventInputError: no station can be scanned (every reason listed).
        """
        stations, skipped = plan_stations(self.table, pre)
        if not stations:
            reasons = "; ".join(f"{k}: {why}" for k, why in skipped)
            raise EventInputError(
                f"no station of {self.filename!r} can be scanned — {reasons}",
                reason="no_usable_station",
            )
        return UploadPlan(
            stations=stations,
            skipped=skipped,
            all_stations=sorted(self.scan.stations),
            records=self.scan.records,
            traces=self.scan.traces,
        )

    def release(self) -> None:
        """Drop the mapped pages read so far from this process's memory (the kernel's
        page cache keeps them): what bounds the resident size on a long file."""
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._map.madvise(mmap.MADV_DONTNEED)

    def records_bytes(self, rows: np.ndarray) -> bytes:
        """The bytes of the records ``rows``, concatenated in the given order."""
        return b"".join(
            self.view[int(o) : int(o) + int(n)]
            for o, n in zip(self.table.offset[rows], self.table.length[rows], strict=True)
        )

    def close(self) -> None:
        """Unmap and close the file."""
        view, mapped = getattr(self, "view", None), getattr(self, "_map", None)
        self.view = self._map = None  # type: ignore[assignment]
        # arrays still viewing the map (a refusal's traceback) keep it open until
        # they go: then the garbage collector unmaps it
        with contextlib.suppress(BufferError):
            if view is not None:
                view.release()
            if mapped is not None:
                mapped.close()
        self._file.close()

    def __enter__(self) -> MappedRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checked_scan(view: memoryview, filename: str) -> RecordScan:
    try:
        return scan_records(view)
    except RecordError as exc:
        if exc.foreign:
            raise EventInputError(
                f"{filename!r} is not a readable miniSEED file ({exc}); {_EXPECTED}",
                reason="unknown_format",
            ) from exc
        raise EventInputError(
            f"{filename!r} is not a readable miniSEED file: {exc}; every part of the file "
            "must be a miniSEED record whose samples fit in it",
            reason="bad_record",
        ) from exc


# --------------------------------------------------------------------------- chunks


@dataclass(frozen=True)
class Segment:
    """Gap-free 3-component samples: (3, n) Z, N, E at ``rate`` Hz from ``start`` (epoch s)."""

    start: float
    rate: float
    data: np.ndarray

    @property
    def end(self) -> float:
        """The instant after the last sample (epoch s)."""
        return self.start + self.data.shape[1] / self.rate


def read_segments(
    recording: MappedRecording, plan: StationPlan, t0: float, t1: float, max_gap_s: float
) -> list[Segment]:
    """The gap-free segments of a station between ``t0`` and ``t1`` (epoch s).

    Args:
        recording: the mapped file.
        plan: the station (its Z, N, E channels and rate).
        t0, t1: the time range read.
        max_gap_s: gaps up to this long (s of missing data) are filled linearly.
    Raises:
        EventInputError: ObsPy cannot decode the records.
    """
    rate = plan.rate
    n = math.floor((t1 - t0) * rate + 1e-6)
    if n <= 0:
        return []
    grid = np.full((3, n), np.nan)
    table = recording.table
    for row, channel in enumerate(plan.channels):
        rows = table.of_channel(channel)
        rows = rows[(table.start[rows] < t1) & (table.end[rows] > t0)]
        if rows.size:
            for trace in _decode(recording, rows):
                _place(grid[row], trace, t0, rate)
    for row in grid:
        _fill_short_gaps(row, round(max_gap_s * rate))
    return _split(grid, t0, rate)


def read_ranges(
    recording: MappedRecording,
    plan: StationPlan,
    ranges: list[tuple[float, float]],
    max_gap_s: float,
) -> list[list[Segment]]:
    """:func:`read_segments` of several short time ranges of one station at once: each
    channel's records of all the ranges are decoded in one ObsPy read (what a scan's
    detections read back; one read per range costs more than the decoding).

    Args:
        recording, plan, max_gap_s: as :func:`read_segments`.
        ranges: (t0, t1) epoch pairs.
    Returns:
        the gap-free segments of each range, in the order of ``ranges``.
    """
    rate = plan.rate
    grids = [np.full((3, max(0, math.floor((t1 - t0) * rate + 1e-6))), np.nan) for t0, t1 in ranges]
    table = recording.table
    for row, channel in enumerate(plan.channels):
        rows = table.of_channel(channel)
        hit = np.zeros(rows.size, bool)
        for t0, t1 in ranges:
            hit |= (table.start[rows] < t1) & (table.end[rows] > t0)
        if not hit.any():
            continue
        traces = list(_decode(recording, rows[hit]))
        for grid, (t0, t1) in zip(grids, ranges, strict=True):
            for trace in traces:
                if trace[0] < t1 and trace[0] + trace[1].size / rate > t0:
                    _place(grid[row], trace, t0, rate)
    out = []
    for grid, (t0, _) in zip(grids, ranges, strict=True):
        for row in grid:
            _fill_short_gaps(row, round(max_gap_s * rate))
        out.append(_split(grid, t0, rate) if grid.shape[1] else [])
    return out


def _decode(recording: MappedRecording, rows: np.ndarray) -> Iterator[tuple[float, np.ndarray]]:
    """(start epoch, samples) of each trace ObsPy reads from the records ``rows``."""
    from obspy import read

    data = recording.records_bytes(rows)
    try:
        with warnings.catch_warnings(), MSEED_LOCK:
            warnings.simplefilter("ignore")
            stream = read(io.BytesIO(data), format="MSEED")
    except Exception as exc:  # libmseed and ObsPy raise many types for bad bytes
        raise EventInputError(
            f"{recording.filename!r}: records could not be decoded ({type(exc).__name__}: "
            f"{str(exc)[:200]}); {_EXPECTED}",
            reason="unknown_format",
        ) from exc
    for trace in stream:
        yield float(trace.stats.starttime.timestamp), np.asarray(trace.data, dtype=np.float64)


def _place(row: np.ndarray, trace: tuple[float, np.ndarray], t0: float, rate: float) -> None:
    start, samples = trace
    first = round((start - t0) * rate)
    lo, hi = max(0, first), min(row.size, first + samples.size)
    if hi > lo:
        row[lo:hi] = samples[lo - first : hi - first]


def _fill_short_gaps(row: np.ndarray, longest: int) -> None:
    """Interpolate runs of NaN of at most ``longest`` samples between finite samples."""
    missing = ~np.isfinite(row)
    if not missing.any() or longest <= 0:
        return
    edges = np.diff(np.concatenate([[0], missing.view(np.int8), [0]]))
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if a > 0 and b < row.size and b - a <= longest:
            row[a:b] = np.interp(np.arange(a, b), [a - 1, b], [row[a - 1], row[b]])


def _split(grid: np.ndarray, t0: float, rate: float) -> list[Segment]:
    """Runs where all three components are finite, each at least one window long."""
    valid = np.isfinite(grid).all(axis=0)
    edges = np.diff(np.concatenate([[0], valid.view(np.int8), [0]]))
    out = []
    shortest = math.ceil(WINDOW_S * rate)
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if b - a >= shortest:
            out.append(Segment(t0 + a / rate, rate, np.ascontiguousarray(grid[:, a:b])))
    return out
