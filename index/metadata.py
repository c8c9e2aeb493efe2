"""SQLite metadata of the items a vector index holds (velocity models, events).

One table, ``items``: the index id, the kind of item, its family (velocity models:
FlatVel-A, CurveFault-B, ...; events: their label, e.g. earthquake), its row in the
bundle's memory-mapped array, its provenance, and its descriptors and other metadata
as JSON. The id is the one given to :class:`seislens.index.vector_index.VectorIndex`.

Readers open the file read-only; each thread gets its own connection (sqlite3
connections are not shared across threads here), so a threaded server can read
concurrently. Writes run in one transaction per call.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

ItemKind = Literal["velocity", "event"]
ITEM_KINDS: tuple[str, ...] = ("velocity", "event")
SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE items (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ({", ".join(repr(k) for k in ITEM_KINDS)})),
    family      TEXT    NOT NULL,
    row         INTEGER NOT NULL CHECK (row >= 0),
    source      TEXT    NOT NULL,
    descriptors TEXT    NOT NULL DEFAULT '{{}}',
    metadata    TEXT    NOT NULL DEFAULT '{{}}'
);
CREATE INDEX items_family ON items (family, id);
CREATE INDEX items_kind ON items (kind);
CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO store_info VALUES ('schema_version', '{SCHEMA_VERSION}');
"""
_COLUMNS = "id, kind, family, row, source, descriptors, metadata"
_INSERT = f"INSERT INTO items ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_CHUNK = 500  # ids per IN (...) query, under SQLite's variable limit


@dataclass(frozen=True)
class ItemRecord:
    """One indexed item.

    Attributes:
        id: the vector index id (int64, >= 0).
        kind: 'velocity' (a velocity model) or 'event' (a seismic event).
        family: velocity-model family (e.g. 'FlatVel-A') or event label.
        row: the item's row in the bundle's memory-mapped array.
        source: provenance, e.g. 'data/flatvel-a/model3.npy[17]'.
        descriptors: physical descriptors, name to value (units in the names' docs).
        metadata: anything else (JSON-serialisable).
    """

    id: int
    kind: ItemKind
    family: str
    row: int
    source: str
    descriptors: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (for JSON answers)."""
        return asdict(self)


class MetadataStore:
    """Item metadata in one SQLite file. Make one with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, readonly: bool) -> None:
        self._path = Path(path)
        self._readonly = readonly
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._family_cache: dict[tuple[str, str | None], np.ndarray] = {}
        self._connection()  # fail now, not at the first query, if the file is unusable

    # ----------------------------------------------------------------- opening

    @classmethod
    def create(cls, path: Path | str) -> MetadataStore:
        """Create a new, empty store at ``path`` (which must not exist), writable."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} already exists; expected a new file")
        conn = sqlite3.connect(path)
        try:
            with conn:
                conn.executescript(_SCHEMA)
        finally:
            conn.close()
        return cls(path, readonly=False)

    @classmethod
    def open(cls, path: Path | str, readonly: bool = True) -> MetadataStore:
        """Open an existing store; read-only by default (safe for many reader threads)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no metadata store at {path}")
        try:
            store = cls(path, readonly=readonly)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{path} is not a SeisLens metadata store: {exc}") from exc
        store._check_schema()
        return store

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._readonly:
            uri = "file:" + urllib.parse.quote(str(self._path.resolve())) + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(self._path, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON" if self._readonly else "PRAGMA foreign_keys = ON")
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def _check_schema(self) -> None:
        """Refuse a file that is not a store of this schema version."""
        try:
            row = (
                self._connection()
                .execute("SELECT value FROM store_info WHERE key = 'schema_version'")
                .fetchone()
            )
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ValueError(f"{self._path} is not a SeisLens metadata store: {exc}") from exc
        if row is None or row[0] != str(SCHEMA_VERSION):
            self.close()
            found = "none" if row is None else row[0]
            raise ValueError(
                f"{self._path} has metadata schema version {found}; expected {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    @property
    def readonly(self) -> bool:
        """Whether writes are refused."""
        return self._readonly

    # ----------------------------------------------------------------- writing

    def add_many(self, records: Iterable[ItemRecord | Mapping[str, Any]]) -> int:
        """Insert records (ItemRecord or dicts with its fields) in one transaction.

        Returns:
            the number of records inserted.

        Raises:
            PermissionError: the store was opened read-only.
            ValueError: a record is invalid or its id is already stored (nothing is
                inserted then).
        """
        if self._readonly:
            raise PermissionError(f"{self._path} is open read-only; open it with readonly=False")
        rows = [_to_row(_as_record(r)) for r in records]
        conn = self._connection()
        try:
            with conn:
                conn.executemany(
                    f"INSERT INTO items ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"could not add {len(rows)} records, none added: {exc}") from exc
        self._family_cache.clear()
        return len(rows)

    # ----------------------------------------------------------------- reading

    def get(self, item_id: int) -> ItemRecord | None:
        """The record with this id, or None."""
        row = (
            self._connection()
            .execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (int(item_id),))
            .fetchone()
        )
        return _from_row(row) if row is not None else None

    def get_many(self, ids: Sequence[int] | np.ndarray) -> list[ItemRecord | None]:
        """Records for ``ids``, in the same order; None where an id is not stored."""
        wanted = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
        found: dict[int, ItemRecord] = {}
        conn = self._connection()
        distinct = list(dict.fromkeys(wanted))
        for start in range(0, len(distinct), _CHUNK):
            chunk = distinct[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM items WHERE id IN ({marks})"
            for row in conn.execute(query, chunk):
                found[row[0]] = _from_row(row)
        return [found.get(i) for i in wanted]

    def ids_for_family(self, family: str, kind: ItemKind | None = None) -> np.ndarray:
        """Sorted int64 ids (n,) of the items of one family (cached until the next
        write); an empty array for an unknown family."""
        key = (family, kind)
        cached = self._family_cache.get(key)
        if cached is not None:
            return cached
        query, args = "SELECT id FROM items WHERE family = ?", [family]
        if kind is not None:
            query, args = query + " AND kind = ?", [*args, kind]
        rows = self._connection().execute(query + " ORDER BY id", args).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        ids.setflags(write=False)
        self._family_cache[key] = ids
        return ids

    def count(self, kind: ItemKind | None = None) -> int:
        """Number of items, of one kind or all."""
        if kind is None:
            row = self._connection().execute("SELECT COUNT(*) FROM items").fetchone()
        else:
            row = (
                self._connection()
                .execute("SELECT COUNT(*) FROM items WHERE kind = ?", (kind,))
                .fetchone()
            )
        return int(row[0])

    def families(self, kind: ItemKind | None = None) -> list[str]:
        """Distinct families (labels), sorted, of one kind or all."""
        query, args = "SELECT DISTINCT family FROM items", ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        return [r[0] for r in self._connection().execute(query + " ORDER BY family", args)]

    def family_counts(self, kind: ItemKind | None = None) -> dict[str, int]:
        """Items per family, of one kind or all."""
        query, args = "SELECT family, COUNT(*) FROM items", ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        rows = self._connection().execute(query + " GROUP BY family ORDER BY family", args)
        return {family: int(n) for family, n in rows}


# --------------------------------------------------------------------------- conversion


def _as_record(record: ItemRecord | Mapping[str, Any]) -> ItemRecord:
    """Validate a record (or a dict of its fields)."""
    if not isinstance(record, ItemRecord):
        unknown = set(record) - set(ItemRecord.__dataclass_fields__)
        if unknown:
            raise ValueError(f"record has unknown fields {sorted(unknown)}")
        try:
            record = ItemRecord(**record)
        except TypeError as exc:
            raise ValueError(f"record is missing fields: {exc}") from exc
    if record.kind not in ITEM_KINDS:
        raise ValueError(
            f"record {record.id} has kind {record.kind!r}; expected one of {ITEM_KINDS}"
        )
    if not 0 <= int(record.id) < 2**63:
        raise ValueError(f"record id {record.id} is out of range; expected 0 <= id < 2**63")
    if int(record.row) < 0:
        raise ValueError(f"record {record.id} has row {record.row}; expected a row >= 0")
    if not isinstance(record.family, str) or not record.family:
        raise ValueError(f"record {record.id} has family {record.family!r}; expected a name")
    return record


def _to_row(record: ItemRecord) -> tuple[Any, ...]:
    """An ItemRecord as the values of one ``items`` row."""
    try:
        descriptors = json.dumps(record.descriptors, sort_keys=True, default=_json_default)
        metadata = json.dumps(record.metadata, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"record {record.id} has data that is not JSON: {exc}") from exc
    return (
        int(record.id),
        record.kind,
        record.family,
        int(record.row),
        str(record.source),
        descriptors,
        metadata,
    )


def _from_row(row: tuple[Any, ...]) -> ItemRecord:
    """One ``items`` row as an ItemRecord."""
    item_id, kind, family, row_no, source, descriptors, metadata = row
    return ItemRecord(
        item_id, kind, family, row_no, source, json.loads(descriptors), json.loads(metadata)
    )


def _json_default(value: Any) -> Any:
    """JSON for NumPy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
