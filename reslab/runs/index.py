"""The SQLite run index: one row per config hash, safe for many writing processes.

WAL mode lets readers and one writer proceed together; a busy timeout makes concurrent
writers wait their turn instead of failing. Each thread of each process has its own
connection (opened on first use, again after a fork). ``dir`` is relative to the store's
root for runs inside it (so a copied or moved store works where it lands) and absolute
for runs kept elsewhere. The index only caches what the run directories hold: it can
always be rebuilt from them (``reslab runs reindex``).

SQLite errors a user can cause (a damaged file, a full disk, a read-only folder) become
one ``StoreError`` line saying what to do; anything else is a bug and stays a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError

COLUMNS = (
    "hash",
    "id",
    "dir",
    "model",
    "data",
    "seed",
    "status",
    "created",
    "updated",
    "config",
    "result",
    "train_error",
    "val_error",
    "test_error",
    "steps",
    "wall_time_s",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    dir TEXT NOT NULL,
    model TEXT, data TEXT, seed INTEGER,
    status TEXT NOT NULL,
    created REAL, updated REAL,
    config TEXT, result TEXT,
    train_error REAL, val_error REAL, test_error REAL, steps INTEGER, wall_time_s REAL
);
CREATE INDEX IF NOT EXISTS runs_id ON runs(id);
"""
BUSY_TIMEOUT_S = 120.0


class DamagedIndexError(StoreError):
    """index.sqlite is not a readable SQLite database (or its tables are broken)."""


class RunIndex:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        with self._errors():
            db = self._connect()
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite errors a user can cause, as one line naming the index and what to do."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
            fix = {
                sqlite3.SQLITE_CORRUPT: None,
                sqlite3.SQLITE_NOTADB: None,
                sqlite3.SQLITE_FULL: "free some space on its device",
                sqlite3.SQLITE_READONLY: "make the store writable, or use another one (--store or RESLAB_HOME)",
                sqlite3.SQLITE_CANTOPEN: "check that the store folder exists and is writable (--store or RESLAB_HOME)",
                sqlite3.SQLITE_PERM: "check the store's permissions (--store or RESLAB_HOME)",
                sqlite3.SQLITE_IOERR: "check the device and its free space",
                sqlite3.SQLITE_BUSY: f"another process held it for over {BUSY_TIMEOUT_S:.0f} s; try again",
            }
            if code not in fix:
                raise
            if fix[code] is None:
                raise DamagedIndexError(
                    f"the run index {self.path} is damaged ({exc}); rebuild it from the run directories with "
                    f"`reslab runs reindex --store {self.path.parent}`"
                ) from None
            raise StoreError(f"cannot use the run index {self.path} ({exc}); {fix[code]}") from None

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: connections must not cross processes)."""
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            return db
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        # WAL + NORMAL: a crash never corrupts the index; a power cut may lose the last commits
        db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = sqlite3.Row
        self._local.db, self._local.pid = db, os.getpid()
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
        self._local.db = None

    def upsert(self, hash: str, **fields: Any) -> None:
        """Insert the row for ``hash`` or update the given fields of the existing one."""
        fields = {**fields, "updated": time.time()}
        for key in ("config", "result"):
            if key in fields and not isinstance(fields[key], str | type(None)):
                fields[key] = json.dumps(fields[key])
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown index columns {sorted(unknown)}")
        with self._transaction() as db:
            sets = ", ".join(f"{c} = ?" for c in fields)
            cur = db.execute(f"UPDATE runs SET {sets} WHERE hash = ?", [*fields.values(), hash])
            if cur.rowcount == 0:
                cols = ["hash", "created", *fields]
                db.execute(
                    f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [hash, fields.get("created", fields["updated"]), *fields.values()],
                )

    def replace_all(self, rows: list[dict[str, Any]]) -> None:
        """Make ``rows`` the whole index, in one transaction (readers see the old or the new one)."""
        with self._transaction() as db:
            db.execute("DELETE FROM runs")
            for row in rows:
                row = {k: json.dumps(v) if k in ("config", "result") and v is not None else v for k, v in row.items()}
                db.execute(
                    f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
                )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")  # one writer at a time; others wait up to the busy timeout
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (a full disk does)
                    db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._errors():
            return self._connect().execute(sql, args).fetchall()

    def get(self, hash: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM runs WHERE hash = ?", (hash,))
        return _row(rows[0]) if rows else None

    def all(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self._query("SELECT * FROM runs ORDER BY created, id")]

    def delete(self, hash: str) -> None:
        with self._errors():
            self._connect().execute("DELETE FROM runs WHERE hash = ?", (hash,))

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM runs")[0][0])


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in ("config", "result"):
        if out.get(key):
            out[key] = json.loads(out[key])
    return out
