"""Event datasets in SeisBench's format: a folder with ``metadata.csv`` and ``waveforms.hdf5``.

The format (SeisBench's ``WaveformDataset``/``WaveformDataWriter`` conventions):

* ``metadata.csv`` — one row per trace; columns named ``CATEGORY_PARAMETER_UNIT``
  (``trace_*``, ``source_*``, ``station_*``, ``path_*``) plus ``split`` (train/dev/test).
  ``trace_name`` locates the samples in the HDF5 file.
* ``waveforms.hdf5`` — group ``data`` holding the samples and group ``data_format``
  holding scalar datasets ``component_order`` (e.g. ``"ZNE"``), ``dimension_order``
  (``"CW"``: components × samples), ``sampling_rate`` (Hz), ``measurement``, ``unit``.
* A ``trace_name`` is either a dataset name (``data/<trace_name>`` is one (C, W) array)
  or a bucketed location ``bucket3$12,:3,:6000``: dataset ``data/bucket3`` holds many
  traces stacked as (N, C, W_max) and the part after ``$`` is a NumPy index (trace 12,
  the first 3 components, the first 6000 samples; the rest is padding).
* Large SeisBench datasets may be chunked: ``metadata{chunk}.csv`` beside
  ``waveforms{chunk}.hdf5``, optionally listed in a ``chunks`` file. Both layouts load.

So a STEAD, PNW or INSTANCE folder prepared by SeisBench loads unchanged. Column names are
matched case-insensitively (INSTANCE and PNW write ``trace_P_arrival_sample``), and the
common aliases are accepted for the info fields (STEAD's ``path_p_travel_sec`` and
``source_distance_km`` for ``path_travel_time_P_s`` and ``path_ep_distance_km``).

Labels come from ``trace_category`` (ours; STEAD's ``earthquake_local`` is accepted) or,
when absent, ``source_type`` (PNW: ``earthquake``, ``explosion``, ``surface event``, ...),
mapped onto :data:`CLASSES`; anything else reads as ``"unknown"``.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import pandas as pd
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import INFO_FIELDS
from seislens.models.contract import INFO_SCALES as CONTRACT_INFO_SCALES

UNKNOWN = "unknown"
SPLITS: tuple[str, ...] = ("train", "dev", "test")


INFO_COLUMNS: dict[str, tuple[str, ...]] = {
    "p_arrival_sample": ("trace_p_arrival_sample", "p_arrival_sample"),
    "s_arrival_sample": ("trace_s_arrival_sample", "s_arrival_sample"),
    "p_weight": ("trace_p_weight", "p_weight"),
    "s_weight": ("trace_s_weight", "s_weight"),
    "p_travel_time_s": ("path_travel_time_p_s", "path_p_travel_sec", "p_travel_sec"),
    "distance_km": ("path_ep_distance_km", "source_distance_km", "path_hyp_distance_km"),
    "back_azimuth_deg": ("path_back_azimuth_deg", "back_azimuth_deg"),
    "coda_end_sample": ("trace_coda_end_sample", "coda_end_sample"),
}
"""Accepted metadata columns (lower-cased) for each info field, first match wins."""

INFO_SCALES = np.array(CONTRACT_INFO_SCALES, np.float32)
"""The info fields' divisors (see ``seislens.models.contract.INFO_SCALES``)."""

INFO_FILL = 0.0
"""Value of a missing info field (SeisCLIP's convention: NaN → 0 after scaling)."""

_SAMPLE_FIELDS = (0, 1, 7)  # info fields counted in samples
_WEIGHT_FOR_PICK = {2: 0, 3: 1}  # weight field -> its pick field

LABEL_COLUMNS: tuple[str, ...] = ("trace_category", "source_type")
_LABEL_ALIASES: dict[str, str] = {
    "earthquake": "earthquake",
    "earthquake_local": "earthquake",
    "local_earthquake": "earthquake",
    "earthquake_regional": "earthquake",
    "regional_earthquake": "earthquake",
    "eq": "earthquake",
    "le": "earthquake",
    "explosion": "explosion",
    "blast": "explosion",
    "quarry_blast": "explosion",
    "mining_explosion": "explosion",
    "chemical_explosion": "explosion",
    "nuclear_explosion": "explosion",
    "px": "explosion",
    "ex": "explosion",
    "surface": "surface",
    "surface_event": "surface",
    "su": "surface",
    "landslide": "surface",
    "rockfall": "surface",
    "rock_fall": "surface",
    "avalanche": "surface",
    "snow_avalanche": "surface",
    "debris_flow": "surface",
    "noise": "noise",
}

METADATA_COLUMNS: tuple[str, ...] = (
    "trace_name",
    "trace_sampling_rate_hz",
    "trace_start_time",
    "trace_npts",
    "trace_p_arrival_sample",
    "trace_s_arrival_sample",
    "trace_p_weight",
    "trace_s_weight",
    "trace_coda_end_sample",
    "trace_snr_db",
    "trace_category",
    "source_magnitude",
    "source_magnitude_type",
    "source_depth_km",
    "source_origin_time",
    "source_latitude_deg",
    "source_longitude_deg",
    "station_network_code",
    "station_code",
    "station_latitude_deg",
    "station_longitude_deg",
    "path_ep_distance_km",
    "path_back_azimuth_deg",
    "path_travel_time_P_s",
    "split",
)
"""Columns :class:`EventWriter` puts first, in this order (any others follow)."""

_CODA_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


class EventDatasetError(ValueError):
    """An event dataset folder is missing, malformed, or not what the caller expects."""


# --------------------------------------------------------------------------- labels


def normalize_label(value: Any) -> str:
    """Map a label as written by SeisBench datasets onto :data:`CLASSES` (else ``"unknown"``).

    Case, spaces and hyphens are ignored: ``"Surface Event"`` → ``"surface"``,
    STEAD's ``"earthquake_local"`` → ``"earthquake"``, PNW's ``"explosion"`` → ``"explosion"``.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return UNKNOWN
    key = re.sub(r"[\s\-]+", "_", str(value).strip().lower())
    return _LABEL_ALIASES.get(key, UNKNOWN)


def label_index(label: str) -> int:
    """Index of ``label`` in :data:`CLASSES`, or -1 for ``"unknown"`` and anything else."""
    return CLASSES.index(label) if label in CLASSES else -1


# --------------------------------------------------------------------------- hdf5 helpers


def parse_trace_name(trace_name: str) -> tuple[str, tuple[int | slice, ...]]:
    """Split a SeisBench trace name into its HDF5 dataset and the NumPy index inside it.

    ``"bucket3$12,:3,:6000"`` → ``("bucket3", (12, slice(None, 3), slice(None, 6000)))``;
    a plain name ``"ABC_123"`` → ``("ABC_123", ())`` (the whole dataset).
    """
    name = str(trace_name)
    if "$" not in name:
        return name, ()
    block, location = name.split("$", 1)
    index: list[int | slice] = []
    for part in location.replace(" ", "").split(","):
        bounds = part.split(":")
        try:
            values = [int(b) if b else None for b in bounds]
        except ValueError as exc:
            raise EventDatasetError(
                f"trace name {trace_name!r}: cannot read location {location!r}; expected "
                "comma-separated integers or start:stop[:step] slices like '12,:3,:6000'"
            ) from exc
        if len(values) == 1:
            if values[0] is None:
                raise EventDatasetError(f"trace name {trace_name!r}: empty index in {location!r}")
            index.append(values[0])
        elif len(values) in (2, 3):
            index.append(slice(*values))
        else:
            raise EventDatasetError(f"trace name {trace_name!r}: bad slice {part!r}")
    return block, tuple(index)


def _decode(value: Any) -> Any:
    """HDF5 scalars as Python values (bytes → str, 0-d arrays → scalars)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _decode(value.item())
        return tuple(_decode(v) for v in value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_data_format(h5: h5py.File) -> dict[str, Any]:
    """The ``data_format`` group as a dict; SeisBench's defaults when keys are missing.

    Defaults: ``dimension_order`` "CW" (SeisBench's own fallback) and ``component_order``
    "ZNE" (SeisBench's configured default).
    """
    fmt: dict[str, Any] = {}
    if "data_format" in h5:
        group = h5["data_format"]
        fmt = {key: _decode(group[key][()]) for key in group}
    for key in ("component_order", "dimension_order"):
        if isinstance(fmt.get(key), tuple):
            fmt[key] = "".join(fmt[key])
    fmt.setdefault("dimension_order", "CW")
    fmt.setdefault("component_order", "ZNE")
    return fmt


def _component_rows(order: str) -> list[int | None]:
    """For Z, N, E: the row in a trace with component ``order`` (1/2 stand in for N/E)."""
    order = str(order).upper()
    rows: list[int | None] = []
    for wanted, alias in (("Z", "Z"), ("N", "1"), ("E", "2")):
        if wanted in order:
            rows.append(order.index(wanted))
        elif alias in order:
            rows.append(order.index(alias))
        else:
            rows.append(None)
    return rows


def to_zne(array: np.ndarray, component_order: str, dimension_order: str) -> np.ndarray:
    """Reorder one trace to (3, W) float32 in Z, N, E order.

    Args:
        array: one trace, 2-D, laid out as ``dimension_order`` ("CW" or "WC").
        component_order: the components along C, e.g. "ZNE", "ENZ", "Z12".
        dimension_order: "CW" or "WC" (a leading "N" is ignored: the trace is already picked).

    A component the trace does not have is returned as zeros (SeisBench's convention).
    """
    dims = str(dimension_order).upper().replace("N", "")
    if array.ndim != 2 or sorted(dims) != ["C", "W"]:
        raise EventDatasetError(
            f"trace has shape {array.shape} with dimension_order {dimension_order!r}; "
            "expected a 2-D array laid out as 'CW' or 'WC'"
        )
    data = array if dims == "CW" else array.T
    out = np.zeros((3, data.shape[1]), dtype=np.float32)
    for row, src in enumerate(_component_rows(component_order)):
        if src is not None and src < data.shape[0]:
            out[row] = data[src]
    return out


# --------------------------------------------------------------------------- metadata


def dataset_chunks(folder: Path) -> list[str]:
    """Chunk suffixes of a SeisBench folder: ``[""]`` when unchunked."""
    listed = folder / "chunks"
    if listed.is_file():
        names = [x.strip() for x in listed.read_text().splitlines() if x.strip()]
        if names:
            return names
    if (folder / "waveforms.hdf5").is_file():
        return [""]
    metas = {p.name[8:-4] for p in folder.glob("metadata*.csv")}
    waves = {p.name[9:-5] for p in folder.glob("waveforms*.hdf5")}
    return sorted(metas & waves)


def _read_metadata(folder: Path) -> pd.DataFrame:
    """All chunks' metadata concatenated, with a ``trace_chunk`` column added."""
    if not folder.is_dir():
        raise EventDatasetError(f"event dataset folder {folder} does not exist")
    chunks = dataset_chunks(folder)
    if not chunks:
        found = sorted(p.name for p in folder.iterdir())
        raise EventDatasetError(
            f"{folder} is not a SeisBench-format folder: expected metadata.csv and "
            f"waveforms.hdf5 (or metadata<chunk>.csv/waveforms<chunk>.hdf5); found {found}"
        )
    frames = []
    for chunk in chunks:
        meta, wave = folder / f"metadata{chunk}.csv", folder / f"waveforms{chunk}.hdf5"
        for path in (meta, wave):
            if not path.is_file():
                raise EventDatasetError(f"{folder}: chunk {chunk!r} lacks {path.name}")
        frame = pd.read_csv(meta, low_memory=False)
        frame["trace_chunk"] = chunk
        frames.append(frame)
    metadata = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if "trace_name" not in metadata.columns:
        raise EventDatasetError(
            f"{folder}: metadata has no 'trace_name' column; found {list(metadata.columns)}"
        )
    return metadata


def find_column(metadata: pd.DataFrame, aliases: tuple[str, ...]) -> str | None:
    """The first metadata column matching one of ``aliases`` (case-insensitive)."""
    lower = {c.lower(): c for c in metadata.columns}
    for alias in aliases:
        if alias.lower() in lower:
            return lower[alias.lower()]
    return None


def _as_float(values: pd.Series) -> np.ndarray:
    """Numbers from a column; STEAD's ``"[[3999.]]"`` strings read as 3999.0, junk as NaN."""
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    bad = np.isnan(numeric) & values.notna().to_numpy()
    for i in np.flatnonzero(bad):
        match = _CODA_NUMBER.search(str(values.iloc[i]))
        if match:
            numeric[i] = float(match.group())
    return numeric


def _info_matrix(metadata: pd.DataFrame) -> np.ndarray:
    """(N, 8) float64 raw info fields, NaN where missing (samples at the trace's own rate)."""
    out = np.full((len(metadata), len(INFO_FIELDS)), np.nan)
    for j, field in enumerate(INFO_FIELDS):
        column = find_column(metadata, INFO_COLUMNS[field])
        if column is not None:
            out[:, j] = _as_float(metadata[column])
    return out


def _labels(metadata: pd.DataFrame) -> np.ndarray:
    """(N,) str labels in :data:`CLASSES` or ``"unknown"``."""
    column = find_column(metadata, LABEL_COLUMNS)
    if column is None:
        return np.full(len(metadata), UNKNOWN, dtype=object)
    return np.array([normalize_label(v) for v in metadata[column]], dtype=object)


# --------------------------------------------------------------------------- reader


class EventDataset:
    """Read a SeisBench-format event folder (ours, or STEAD/PNW/INSTANCE as SeisBench writes).

    Args:
        folder: the dataset folder.
        split: keep only rows whose ``split`` is this ("train", "dev" or "test"); None: all.

    The HDF5 files open lazily and reopen after a fork (safe in DataLoader workers).
    """

    def __init__(self, folder: Path | str, split: str | None = None) -> None:
        self.folder = Path(folder)
        metadata = _read_metadata(self.folder)
        if split is not None:
            metadata = _select_split(metadata, split, self.folder)
        self.split = split
        self._metadata = metadata.reset_index(drop=True)
        self._files: dict[str, h5py.File] = {}
        self._formats: dict[str, dict[str, Any]] = {}
        self._pid = os.getpid()
        self._info = _info_matrix(self._metadata)
        self._labels = _labels(self._metadata)
        self._rates = self._sampling_rates()

    # -- basic access
    def __len__(self) -> int:
        return len(self._metadata)

    def __enter__(self) -> EventDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventDataset({str(self.folder)!r}, split={self.split!r}, traces={len(self)})"

    @property
    def metadata(self) -> pd.DataFrame:
        """The metadata rows (one per trace, index 0..N-1)."""
        return self._metadata

    @property
    def labels(self) -> np.ndarray:
        """(N,) labels: one of :data:`CLASSES` or ``"unknown"`` per trace."""
        return self._labels

    @property
    def label_ids(self) -> np.ndarray:
        """(N,) int64 indices into :data:`CLASSES`; -1 for ``"unknown"``."""
        return np.array([label_index(x) for x in self._labels], dtype=np.int64)

    def close(self) -> None:
        """Close the open HDF5 files (they reopen on the next read)."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def sampling_rate(self, i: int) -> float:
        """Sampling rate of trace ``i`` in Hz."""
        return float(self._rates[self._check_index(i)])

    def p_arrival_sample(self, i: int) -> float | None:
        """P arrival of trace ``i`` in samples from the trace start (own rate), None if absent."""
        value = self._info[self._check_index(i), 0]
        return None if np.isnan(value) else float(value)

    # -- waveforms
    def waveform(self, i: int) -> np.ndarray:
        """Samples of trace ``i`` as (3, W) float32 in Z, N, E order (missing components: 0)."""
        row = self._metadata.iloc[self._check_index(i)]
        chunk = str(row["trace_chunk"])
        handle = self._handle(chunk)
        block, index = parse_trace_name(row["trace_name"])
        if "data" not in handle or block not in handle["data"]:
            raise EventDatasetError(
                f"trace {row['trace_name']!r}: dataset data/{block} is not in "
                f"{self._wave_path(chunk).name}"
            )
        array = np.asarray(handle["data"][block][index] if index else handle["data"][block][()])
        fmt = self._formats[chunk]
        order = fmt["component_order"]
        if "trace_component_order" in row.index and isinstance(row["trace_component_order"], str):
            order = row["trace_component_order"]
        return to_zne(array, order, fmt["dimension_order"])

    # -- info fields
    def info_vector(
        self,
        i: int,
        window_start_s: float | None = None,
        target_rate_hz: float = 100.0,
    ) -> np.ndarray:
        """SeisCLIP's 8 info fields of trace ``i`` as (8,) float32, order :data:`INFO_FIELDS`.

        Units: P/S arrival and coda end in samples, weights in [0, 1], P travel time in s,
        epicentral distance in km, back-azimuth in degrees. Unscaled: divide by
        :data:`INFO_SCALES` for SeisCLIP's normalisation.

        Args:
            i: trace index.
            window_start_s: when given, the sample fields are re-expressed as samples at
                ``target_rate_hz`` counted from a window starting this many seconds after
                the trace start (as SeisCLIP saw them: samples in its 60 s, 100 Hz window).
                When None they stay in samples of the stored trace at its own rate.
            target_rate_hz: rate of the re-expressed sample fields (Hz).

        Missing values: a weight that is missing while its pick exists is 1.0 (a catalogued
        pick without a stated weight counts in full); every other missing field, including
        all picks of noise traces, is :data:`INFO_FILL` (0.0, SeisCLIP's fill) — so a
        weight of 0 marks "no pick".
        """
        i = self._check_index(i)
        raw = self._info[i].copy()
        for weight, pick in _WEIGHT_FOR_PICK.items():
            if np.isnan(raw[weight]) and not np.isnan(raw[pick]):
                raw[weight] = 1.0
        if window_start_s is not None:
            rate = self._rates[i]
            for j in _SAMPLE_FIELDS:
                raw[j] = (raw[j] / rate - window_start_s) * target_rate_hz
        return np.where(np.isnan(raw), INFO_FILL, raw).astype(np.float32)

    def info_matrix(self) -> np.ndarray:
        """(N, 8) float32: :meth:`info_vector` of every trace (own-rate samples)."""
        if len(self) == 0:
            return np.zeros((0, len(INFO_FIELDS)), np.float32)
        return np.stack([self.info_vector(i) for i in range(len(self))])

    # -- internals
    def _check_index(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"trace index {i} out of range for {len(self)} traces")
        return int(i) % len(self)

    def _wave_path(self, chunk: str) -> Path:
        return self.folder / f"waveforms{chunk}.hdf5"

    def _handle(self, chunk: str) -> h5py.File:
        if self._pid != os.getpid():  # forked: never share HDF5 handles across processes
            self._files.clear()
            self._pid = os.getpid()
        if chunk not in self._files:
            self._files[chunk] = h5py.File(self._wave_path(chunk), "r")
            self._formats[chunk] = read_data_format(self._files[chunk])
        return self._files[chunk]

    def _sampling_rates(self) -> np.ndarray:
        """(N,) Hz from ``trace_sampling_rate_hz``, else each chunk's data_format."""
        rates = np.full(len(self._metadata), np.nan)
        column = find_column(self._metadata, ("trace_sampling_rate_hz",))
        if column is not None:
            rates = _as_float(self._metadata[column])
        missing = np.isnan(rates)
        for chunk in self._metadata.loc[missing, "trace_chunk"].unique():
            with h5py.File(self._wave_path(str(chunk)), "r") as handle:
                fmt = read_data_format(handle)
            if "sampling_rate" not in fmt:
                raise EventDatasetError(
                    f"{self.folder}: no trace_sampling_rate_hz column and no "
                    f"data_format/sampling_rate in chunk {chunk!r}; one of them is required"
                )
            rows = missing & (self._metadata["trace_chunk"] == chunk).to_numpy()
            rates[rows] = float(fmt["sampling_rate"])
        return rates


def _select_split(metadata: pd.DataFrame, split: str, folder: Path) -> pd.DataFrame:
    """Rows of one split; errors name the splits that are there."""
    if split not in SPLITS:
        raise EventDatasetError(f"split {split!r} is not one of {list(SPLITS)}")
    if "split" not in metadata.columns:
        raise EventDatasetError(
            f"{folder}: metadata has no 'split' column; cannot select {split!r}"
        )
    values = metadata["split"].astype(str).str.strip().str.lower()
    chosen = metadata[values == split]
    if chosen.empty:
        raise EventDatasetError(
            f"{folder}: no trace in split {split!r}; splits present: {sorted(values.unique())}"
        )
    return chosen


# --------------------------------------------------------------------------- writer


class EventWriter:
    """Write a SeisBench-format folder atomically (context manager).

    Traces are packed like SeisBench's ``WaveformDataWriter``: grouped by split and shape
    into buckets of up to ``bucket_size`` traces stored as one (n, C, W) dataset
    ``data/bucket<k>``, each row's ``trace_name`` becoming ``bucket<k>$<j>,:C,:W`` (a
    ``trace_name`` the caller gave is kept as ``trace_name_original``).

    Everything is written into a hidden temporary sibling folder which is renamed onto
    ``folder`` only when the ``with`` block ends without an error (an error removes it), so
    ``folder`` never holds a half-written dataset. An existing non-empty ``folder`` is
    refused unless ``overwrite`` is set; then it is swapped out and removed.

    Args:
        folder: the dataset folder to create.
        sampling_rate_hz: written to ``data_format/sampling_rate`` (and each row lacking
            ``trace_sampling_rate_hz``).
        bucket_size: most traces per HDF5 dataset.
        overwrite: replace an existing dataset folder.
        measurement, unit: written to ``data_format`` (e.g. "velocity", "nm/s").
    """

    def __init__(
        self,
        folder: Path | str,
        sampling_rate_hz: float = 100.0,
        bucket_size: int = 256,
        overwrite: bool = False,
        measurement: str = "velocity",
        unit: str = "counts",
    ) -> None:
        if bucket_size < 1:
            raise ValueError(f"bucket_size must be >= 1, got {bucket_size}")
        self.folder = Path(folder)
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.bucket_size = int(bucket_size)
        self.overwrite = overwrite
        self.data_format = {
            "component_order": "ZNE",
            "dimension_order": "CW",
            "sampling_rate": self.sampling_rate_hz,
            "measurement": measurement,
            "unit": unit,
            "instrument_response": "not restituted",
        }
        self._tmp: Path | None = None
        self._h5: h5py.File | None = None
        self._rows: list[dict[str, Any]] = []
        self._buckets: dict[tuple[Any, ...], list[tuple[dict[str, Any], np.ndarray]]] = {}
        self._bucket_count = 0
        self._files: dict[str, str] = {}

    def __enter__(self) -> EventWriter:
        if self.folder.exists() and any(self.folder.iterdir()) and not self.overwrite:
            found = sorted(p.name for p in self.folder.iterdir())[:10]
            raise FileExistsError(
                f"{self.folder} already exists and is not empty (holds {found}); "
                "choose another folder or pass overwrite=True"
            )
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.folder.parent / f".{self.folder.name}.tmp-{uuid.uuid4().hex[:12]}"
        self._tmp.mkdir()
        self._h5 = h5py.File(self._tmp / "waveforms.hdf5", "w", track_order=False)
        self._h5.create_group("data")
        return self

    def add_trace(self, metadata: Mapping[str, Any], waveform: np.ndarray) -> None:
        """Queue one trace: ``waveform`` (3, W) float32 in Z, N, E order, its metadata row."""
        if self._h5 is None:
            raise RuntimeError("EventWriter.add_trace called outside its 'with' block")
        wave = np.asarray(waveform, dtype=np.float32)
        if wave.ndim != 2 or wave.shape[0] != 3:
            raise ValueError(f"waveform has shape {wave.shape}; expected (3, n_samples) in ZNE")
        row = dict(metadata)
        row.setdefault("trace_sampling_rate_hz", self.sampling_rate_hz)
        self._rows.append(row)
        key = (str(row.get("split", "")), wave.shape)
        bucket = self._buckets.setdefault(key, [])
        bucket.append((row, wave))
        if len(bucket) >= self.bucket_size:
            self._flush(key)

    def add_file(self, name: str, text: str) -> None:
        """Write an extra text file (e.g. a generator manifest) into the dataset folder."""
        if Path(name).name != name or name in ("metadata.csv", "waveforms.hdf5"):
            raise ValueError(f"extra file name {name!r} must be a plain, non-reserved file name")
        self._files[name] = text

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tmp is not None and self._h5 is not None
        try:
            if exc_type is None:
                self._finish()
        finally:
            if self._h5 is not None:
                self._h5.close()
                self._h5 = None
            if self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)

    # -- internals
    def _flush(self, key: tuple[Any, ...]) -> None:
        bucket = self._buckets.pop(key, [])
        if not bucket:
            return
        assert self._h5 is not None
        name = f"bucket{self._bucket_count}"
        self._bucket_count += 1
        stack = np.stack([wave for _, wave in bucket])
        self._h5["data"].create_dataset(name, data=stack, track_times=False)
        for j, (row, wave) in enumerate(bucket):
            if "trace_name" in row:
                row["trace_name_original"] = row["trace_name"]
            row["trace_name"] = f"{name}${j},:{wave.shape[0]},:{wave.shape[1]}"

    def _finish(self) -> None:
        assert self._tmp is not None and self._h5 is not None
        for key in list(self._buckets):
            self._flush(key)
        group = self._h5.create_group("data_format")
        for key, value in self.data_format.items():
            group.create_dataset(key, data=value, track_times=False)
        self._h5.close()
        self._h5 = None
        frame = pd.DataFrame(self._rows)
        first = [c for c in METADATA_COLUMNS if c in frame.columns]
        frame = frame[first + [c for c in frame.columns if c not in first]]
        frame.to_csv(self._tmp / "metadata.csv", index=False)
        for name, text in self._files.items():
            (self._tmp / name).write_text(text)
        self._move_into_place()

    def _move_into_place(self) -> None:
        assert self._tmp is not None
        old: Path | None = None
        if self.folder.exists():
            if any(self.folder.iterdir()):
                old = self.folder.parent / f".{self.folder.name}.old-{uuid.uuid4().hex[:12]}"
                os.rename(self.folder, old)
            else:
                self.folder.rmdir()
        os.rename(self._tmp, self.folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
