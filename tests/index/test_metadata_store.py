"""MetadataStore: create/open, writes in a transaction, ordered lookups, families."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from seislens.index.metadata import ItemRecord, MetadataStore

FAMILIES = ["FlatVel-A", "CurveFault-B", "FlatFault-A"]


def _records(n: int = 30, start: int = 100) -> list[ItemRecord]:
    """Velocity-model records with ids start, start+2, ... in rotating families."""
    return [
        ItemRecord(
            id=start + 2 * i,
            kind="velocity",
            family=FAMILIES[i % 3],
            row=i,
            source=f"data/{FAMILIES[i % 3].lower()}/model0.npy[{i}]",
            descriptors={"mean_velocity_m_s": 2000.0 + i, "n_interfaces": np.int64(i % 4)},
            metadata={"split": "test"},
        )
        for i in range(n)
    ]


@pytest.fixture()
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "metadata.sqlite"
    with MetadataStore.create(path) as store:
        assert store.add_many(_records()) == 30
        store.add_many(
            [
                {
                    "id": 5,
                    "kind": "event",
                    "family": "earthquake",
                    "row": 0,
                    "source": "pnw/metadata.csv:17",
                }
            ]
        )
    return path


def test_round_trip_and_ordered_lookup(store_path: Path) -> None:
    with MetadataStore.open(store_path) as store:
        assert store.readonly
        item = store.get(102)
        assert item == ItemRecord(
            102,
            "velocity",
            "CurveFault-B",
            1,
            "data/curvefault-b/model0.npy[1]",
            {"mean_velocity_m_s": 2001.0, "n_interfaces": 1},
            {"split": "test"},
        )
        assert item.to_dict()["descriptors"]["n_interfaces"] == 1
        assert store.get(101) is None
        got = store.get_many(np.array([158, 5, 999, 100, 158]))
        assert [r.id if r else None for r in got] == [158, 5, None, 100, 158]
        assert got[1].kind == "event" and got[1].descriptors == {}
        many = store.get_many(list(range(100, 160, 2))[::-1] * 40)  # over the IN-chunk size
        assert [r.id for r in many] == list(range(100, 160, 2))[::-1] * 40


def test_families_counts_and_ids(store_path: Path) -> None:
    with MetadataStore.open(store_path) as store:
        assert store.count() == 31
        assert store.count("velocity") == 30 and store.count("event") == 1
        assert store.families() == sorted([*FAMILIES, "earthquake"])
        assert store.families("velocity") == sorted(FAMILIES)
        assert store.family_counts("velocity") == dict.fromkeys(sorted(FAMILIES), 10)
        ids = store.ids_for_family("FlatVel-A")
        assert ids.dtype == np.int64
        np.testing.assert_array_equal(ids, np.arange(100, 160, 6))
        assert store.ids_for_family("FlatVel-A") is ids  # cached
        assert store.ids_for_family("earthquake", kind="velocity").size == 0
        assert store.ids_for_family("NoSuchFamily").size == 0


def test_writes_are_transactional(store_path: Path) -> None:
    with MetadataStore.open(store_path, readonly=False) as store:
        before = store.ids_for_family("FlatVel-A")
        clash = [*_records(2, start=1000), _records(1, start=100)[0]]
        with pytest.raises(ValueError, match="none added: UNIQUE constraint failed"):
            store.add_many(clash)
        assert store.count() == 31 and store.get(1000) is None
        store.add_many(_records(3, start=2000))
        assert store.count() == 34
        after = store.ids_for_family("FlatVel-A")  # the cache was refreshed
        assert after.size == before.size + 1 and 2000 in after


def test_invalid_records_refused(tmp_path: Path) -> None:
    store = MetadataStore.create(tmp_path / "m.sqlite")
    base = {"id": 1, "kind": "velocity", "family": "FlatVel-A", "row": 0, "source": "x"}
    cases = [
        ({**base, "kind": "model"}, "kind 'model'; expected one of"),
        ({**base, "row": -1}, "row -1; expected a row >= 0"),
        ({**base, "id": -3}, "out of range"),
        ({**base, "family": ""}, "expected a name"),
        ({**base, "colour": "red"}, r"unknown fields \['colour'\]"),
        ({"id": 1, "kind": "velocity"}, "missing fields"),
        ({**base, "metadata": {"f": object()}}, "not JSON"),
    ]
    for record, message in cases:
        with pytest.raises(ValueError, match=message):
            store.add_many([record])
    assert store.count() == 0
    store.close()


def test_create_and_open_errors(store_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        MetadataStore.create(store_path)
    with pytest.raises(FileNotFoundError, match="no metadata store"):
        MetadataStore.open(tmp_path / "absent.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a SeisLens metadata store"):
        MetadataStore.open(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(ValueError, match="not a SeisLens metadata store"):
        MetadataStore.open(other)


def test_readonly_refuses_writes(store_path: Path) -> None:
    with MetadataStore.open(store_path) as store, pytest.raises(PermissionError):
        store.add_many(_records(1, start=5000))


def test_concurrent_readers(store_path: Path) -> None:
    store = MetadataStore.open(store_path)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(50):
                assert [r.id for r in store.get_many([104, 100])] == [104, 100]
                assert store.ids_for_family("FlatFault-A").size == 10
                assert store.count() == 31
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert not errors
