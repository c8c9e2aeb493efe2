"""SeisBench-format event folders: reading fixtures written the way SeisBench writes them
(plain h5py + pandas, bucketed names, data_format group), and our atomic writer."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from seislens.data.event_dataset import (
    INFO_FILL,
    INFO_SCALES,
    EventDataset,
    EventDatasetError,
    EventWriter,
    normalize_label,
    parse_trace_name,
    to_zne,
)
from seislens.models.contract import EVENT_CLASSES as CLASSES
from seislens.models.contract import INFO_FIELDS


def _trace(seed: int, n: int) -> np.ndarray:
    """(3, n) float32 with a per-component offset so component order is checkable."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, n)) + np.array([[100.0], [200.0], [300.0]])).astype(np.float32)


def _write_seisbench_folder(
    folder: Path,
    traces: list[np.ndarray],
    rows: list[dict],
    order: str = "ZNE",
    bucket: int = 2,
    suffix: str = "",
    data_format: bool = True,
) -> None:
    """Imitate SeisBench's WaveformDataWriter: stack `bucket` traces per dataset (padded
    to the longest), name rows `bucket<k>$<j>,:C,:W`, write the data_format group."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    with h5py.File(folder / f"waveforms{suffix}.hdf5", "w") as h5:
        group = h5.create_group("data")
        for k in range(0, len(traces), bucket):
            chunk = traces[k : k + bucket]
            width = max(t.shape[1] for t in chunk)
            block = np.zeros((len(chunk), 3, width), np.float32)
            for j, t in enumerate(chunk):
                block[j, :, : t.shape[1]] = t
                names.append(f"bucket{k // bucket}${j},:{t.shape[0]},:{t.shape[1]}")
            group.create_dataset(f"bucket{k // bucket}", data=block)
        if data_format:
            fmt = h5.create_group("data_format")
            fmt.create_dataset("component_order", data=order)
            fmt.create_dataset("dimension_order", data="CW")
            fmt.create_dataset("sampling_rate", data=100.0)
            fmt.create_dataset("measurement", data="velocity")
            fmt.create_dataset("unit", data="counts")
    frame = pd.DataFrame(rows)
    frame.insert(0, "trace_name", names)
    frame.to_csv(folder / f"metadata{suffix}.csv", index=False)


@pytest.fixture
def seisbench_folder(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    traces = [_trace(i, n) for i, n in enumerate([6000, 5000, 6000, 4000, 3000])]
    rows = [
        {
            "trace_category": "earthquake",
            "trace_p_arrival_sample": 500.0,
            "trace_s_arrival_sample": 1500.0,
            "trace_p_weight": 0.8,
            "trace_s_weight": 0.6,
            "path_travel_time_P_s": 12.5,
            "path_ep_distance_km": 80.0,
            "path_back_azimuth_deg": 45.0,
            "trace_coda_end_sample": 4000.0,
            "source_magnitude": 3.1,
            "source_depth_km": 9.0,
            "split": "train",
        },
        {
            "trace_category": "explosion",
            "trace_p_arrival_sample": 700.0,
            "trace_s_arrival_sample": np.nan,
            "trace_p_weight": np.nan,
            "trace_s_weight": np.nan,
            "path_travel_time_P_s": 5.0,
            "path_ep_distance_km": 30.0,
            "path_back_azimuth_deg": 200.0,
            "trace_coda_end_sample": np.nan,
            "source_magnitude": 1.9,
            "source_depth_km": 0.5,
            "split": "train",
        },
        {
            "trace_category": "noise",
            "trace_p_arrival_sample": np.nan,
            "trace_s_arrival_sample": np.nan,
            "trace_p_weight": np.nan,
            "trace_s_weight": np.nan,
            "path_travel_time_P_s": np.nan,
            "path_ep_distance_km": np.nan,
            "path_back_azimuth_deg": np.nan,
            "trace_coda_end_sample": np.nan,
            "source_magnitude": np.nan,
            "source_depth_km": np.nan,
            "split": "dev",
        },
        {
            "trace_category": "surface",
            "trace_p_arrival_sample": 1000.0,
            "trace_s_arrival_sample": 2000.0,
            "trace_p_weight": 0.1,
            "trace_s_weight": 0.1,
            "path_travel_time_P_s": 20.0,
            "path_ep_distance_km": 120.0,
            "path_back_azimuth_deg": 10.0,
            "trace_coda_end_sample": 3900.0,
            "source_magnitude": 2.0,
            "source_depth_km": 0.0,
            "split": "test",
        },
        {
            "trace_category": "thunder",
            "trace_p_arrival_sample": np.nan,
            "trace_s_arrival_sample": np.nan,
            "trace_p_weight": np.nan,
            "trace_s_weight": np.nan,
            "path_travel_time_P_s": np.nan,
            "path_ep_distance_km": np.nan,
            "path_back_azimuth_deg": np.nan,
            "trace_coda_end_sample": np.nan,
            "source_magnitude": np.nan,
            "source_depth_km": np.nan,
            "split": "test",
        },
    ]
    for row in rows:
        row["trace_sampling_rate_hz"] = 100.0
    folder = tmp_path / "sb"
    _write_seisbench_folder(folder, traces, rows)
    return folder, traces


def test_bucketed_seisbench_folder_loads_unchanged(seisbench_folder):
    folder, traces = seisbench_folder
    ds = EventDataset(folder)
    assert len(ds) == 5
    assert ds.metadata["trace_name"][1] == "bucket0$1,:3,:5000"
    for i, expected in enumerate(traces):
        wave = ds.waveform(i)
        assert wave.dtype == np.float32
        assert wave.shape == expected.shape  # padding of the bucket is cut away
        np.testing.assert_array_equal(wave, expected)
    assert list(ds.labels) == ["earthquake", "explosion", "noise", "surface", "unknown"]
    assert list(ds.label_ids) == [0, 1, 3, 2, -1]
    assert ds.sampling_rate(0) == 100.0
    ds.close()


def test_info_vector_fields_units_and_fills(seisbench_folder):
    folder, _ = seisbench_folder
    ds = EventDataset(folder)
    np.testing.assert_allclose(
        ds.info_vector(0), [500, 1500, 0.8, 0.6, 12.5, 80, 45, 4000], rtol=1e-6
    )
    # a pick without a weight counts in full; a missing pick keeps weight 0
    explosion = ds.info_vector(1)
    assert explosion[INFO_FIELDS.index("p_weight")] == 1.0
    assert explosion[INFO_FIELDS.index("s_weight")] == 0.0
    assert explosion[INFO_FIELDS.index("s_arrival_sample")] == INFO_FILL
    noise = ds.info_vector(2)
    assert noise.dtype == np.float32 and noise.shape == (8,)
    assert np.all(noise == INFO_FILL)
    # re-expressed in a window starting 3 s into the trace, 100 Hz samples
    shifted = ds.info_vector(0, window_start_s=3.0)
    np.testing.assert_allclose(shifted[[0, 1, 7]], [200, 1200, 3700])
    assert ds.info_matrix().shape == (5, 8)
    assert INFO_SCALES.shape == (8,)


def test_split_selection_and_errors(seisbench_folder):
    folder, traces = seisbench_folder
    test = EventDataset(folder, split="test")
    assert len(test) == 2
    np.testing.assert_array_equal(test.waveform(0), traces[3])
    assert len(EventDataset(folder, split="dev")) == 1
    with pytest.raises(EventDatasetError, match="not one of"):
        EventDataset(folder, split="validation")
    with pytest.raises(IndexError, match="out of range"):
        test.waveform(5)


def test_pnw_style_columns_component_order_and_labels(tmp_path):
    """PNW as SeisBench ships it: ENZ order, upper-case P/S columns, source_type labels."""
    traces = [_trace(10 + i, 3000) for i in range(3)]
    enz = [t[[2, 1, 0]] for t in traces]  # stored as E, N, Z
    rows = [
        {"source_type": "earthquake", "trace_P_arrival_sample": 300, "trace_S_arrival_sample": 900},
        {
            "source_type": "surface event",
            "trace_P_arrival_sample": 400,
            "trace_S_arrival_sample": np.nan,
        },
        {"source_type": "explosion", "trace_P_arrival_sample": 350, "trace_S_arrival_sample": 800},
    ]
    _write_seisbench_folder(tmp_path / "pnw", enz, rows, order="ENZ", bucket=3)
    ds = EventDataset(tmp_path / "pnw")
    np.testing.assert_array_equal(ds.waveform(1), traces[1])  # back to Z, N, E
    assert list(ds.labels) == ["earthquake", "surface", "explosion"]
    assert ds.sampling_rate(0) == 100.0  # from data_format: no rate column
    assert ds.info_vector(1)[0] == 400 and ds.info_vector(1)[2] == 1.0
    with pytest.raises(EventDatasetError, match="no 'split' column"):
        EventDataset(tmp_path / "pnw", split="train")


def test_stead_style_plain_names_and_aliases(tmp_path):
    """STEAD in SeisBench: one dataset per trace, path_p_travel_sec, source_distance_km,
    coda_end_sample strings like '[[3999.]]', trace_category 'earthquake_local'."""
    folder = tmp_path / "stead"
    folder.mkdir()
    trace = _trace(3, 6000)
    with h5py.File(folder / "waveforms.hdf5", "w") as h5:
        h5.create_dataset("data/109C.TA_20060723155859_EV", data=trace.T)  # (W, C)
        fmt = h5.create_group("data_format")
        fmt.create_dataset("component_order", data="ZNE")
        fmt.create_dataset("dimension_order", data="WC")
    pd.DataFrame(
        [
            {
                "trace_name": "109C.TA_20060723155859_EV",
                "trace_category": "earthquake_local",
                "trace_sampling_rate_hz": 100,
                "trace_p_arrival_sample": 800,
                "trace_s_arrival_sample": 1500,
                "trace_p_weight": 0.56,
                "trace_s_weight": 0.79,
                "path_p_travel_sec": 7.19,
                "source_distance_km": 41.2,
                "path_back_azimuth_deg": 305.1,
                "trace_coda_end_sample": "[[3999.]]",
                "split": "train",
            }
        ]
    ).to_csv(folder / "metadata.csv", index=False)
    ds = EventDataset(folder, split="train")
    np.testing.assert_array_equal(ds.waveform(0), trace)
    np.testing.assert_allclose(
        ds.info_vector(0), [800, 1500, 0.56, 0.79, 7.19, 41.2, 305.1, 3999], rtol=1e-5
    )
    assert ds.labels[0] == "earthquake"


def test_chunked_folder(tmp_path):
    folder = tmp_path / "chunked"
    a, b = [_trace(20, 2000)], [_trace(21, 2500)]
    _write_seisbench_folder(folder, a, [{"trace_category": "noise"}], suffix="_a")
    _write_seisbench_folder(folder, b, [{"trace_category": "earthquake"}], suffix="_b")
    (folder / "chunks").write_text("_a\n_b\n")
    ds = EventDataset(folder)
    assert len(ds) == 2 and list(ds.metadata["trace_chunk"]) == ["_a", "_b"]
    np.testing.assert_array_equal(ds.waveform(1), b[0])


def test_missing_files_and_bad_names(tmp_path):
    with pytest.raises(EventDatasetError, match="does not exist"):
        EventDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(EventDatasetError, match=r"expected metadata.csv.*notes.txt"):
        EventDataset(tmp_path / "empty")
    assert parse_trace_name("bucket3$12,:3,:6000") == (
        "bucket3",
        (12, slice(None, 3), slice(None, 6000)),
    )
    assert parse_trace_name("ABC") == ("ABC", ())
    with pytest.raises(EventDatasetError, match="cannot read location"):
        parse_trace_name("bucket1$x,:3")


def test_label_normalisation_and_component_mapping():
    assert normalize_label("Surface Event") == "surface"
    assert normalize_label("earthquake_local") == "earthquake"
    assert normalize_label("quarry blast") == "explosion"
    assert normalize_label(float("nan")) == "unknown"
    assert normalize_label("sonic boom") == "unknown"
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    z12 = to_zne(data, "Z12", "CW")
    np.testing.assert_array_equal(z12, data)
    only_z = to_zne(data[:1], "Z", "CW")
    assert np.all(only_z[1:] == 0) and np.all(only_z[0] == data[0])
    with pytest.raises(EventDatasetError, match="dimension_order"):
        to_zne(data, "ZNE", "CHW")
    assert set(CLASSES) == {"earthquake", "explosion", "surface", "noise"}


def test_writer_round_trip_and_seisbench_layout(tmp_path):
    folder = tmp_path / "ours"
    traces = [_trace(30 + i, 1000 + 100 * (i % 2)) for i in range(7)]
    with EventWriter(folder, bucket_size=3, unit="nm/s") as writer:
        for i, t in enumerate(traces):
            writer.add_trace(
                {
                    "trace_name": f"t{i}",
                    "trace_category": CLASSES[i % 4],
                    "trace_p_arrival_sample": 100.0 + i,
                    "split": "train" if i < 5 else "test",
                },
                t,
            )
        writer.add_file("notes.json", "{}")
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.csv",
        "notes.json",
        "waveforms.hdf5",
    ]
    assert not list(tmp_path.glob(".ours*"))  # no temporary left behind
    meta = pd.read_csv(folder / "metadata.csv")
    assert all("$" in name for name in meta["trace_name"])
    assert list(meta["trace_name_original"]) == [f"t{i}" for i in range(7)]
    with h5py.File(folder / "waveforms.hdf5", "r") as h5:
        assert h5["data_format/component_order"][()].decode() == "ZNE"
        assert h5["data_format/dimension_order"][()].decode() == "CW"
        assert h5["data_format/unit"][()].decode() == "nm/s"
        assert all(h5["data"][k].ndim == 3 for k in h5["data"])
    ds = EventDataset(folder)
    for i, t in enumerate(traces):
        np.testing.assert_array_equal(ds.waveform(i), t)
        assert ds.info_vector(i)[0] == 100.0 + i
    assert len(EventDataset(folder, split="test")) == 2


def test_writer_is_atomic_and_refuses_existing(tmp_path):
    folder = tmp_path / "atomic"
    with pytest.raises(RuntimeError, match="boom"), EventWriter(folder) as writer:
        writer.add_trace({"split": "train"}, _trace(1, 500))
        raise RuntimeError("boom")
    assert not folder.exists() and not list(tmp_path.iterdir())
    with EventWriter(folder) as writer:
        writer.add_trace({"trace_category": "noise"}, _trace(2, 500))
    with pytest.raises(FileExistsError, match="not empty"), EventWriter(folder):
        pass
    with EventWriter(folder, overwrite=True) as writer:
        writer.add_trace({"trace_category": "earthquake"}, _trace(3, 600))
        writer.add_trace({"trace_category": "earthquake"}, _trace(4, 600))
    assert len(EventDataset(folder)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic"]
    with pytest.raises(ValueError, match="expected"), EventWriter(tmp_path / "bad") as writer:
        writer.add_trace({}, np.zeros((2, 10)))
