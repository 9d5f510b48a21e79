"""The SQLite run index: one row per config hash, safe for many writing processes.

WAL mode lets readers and one writer proceed together; a busy timeout makes concurrent
writers wait their turn instead of failing. Each thread of each process has its own
connection (opened on first use, again after a fork).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ReslabError

COLUMNS = (
    "hash", "id", "dir", "model", "data", "seed", "status", "created", "updated",
    "config", "result", "train_error", "val_error", "test_error", "steps", "wall_time_s",
)  # fmt: skip
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


class RunIndex:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        db = self._connect()
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: connections must not cross processes)."""
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            return db
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            # WAL + NORMAL: a crash never corrupts the index; a power cut may lose the last commits
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise ReslabError(f"cannot open the run index {self.path}: {exc}") from None
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
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")  # one writer at a time; others wait up to the busy timeout
        try:
            sets = ", ".join(f"{c} = ?" for c in fields)
            cur = db.execute(f"UPDATE runs SET {sets} WHERE hash = ?", [*fields.values(), hash])
            if cur.rowcount == 0:
                cols = ["hash", "created", *fields]
                db.execute(
                    f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [hash, fields["updated"], *fields.values()],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def get(self, hash: str) -> dict[str, Any] | None:
        row = self._connect().execute("SELECT * FROM runs WHERE hash = ?", (hash,)).fetchone()
        return _row(row) if row else None

    def all(self) -> list[dict[str, Any]]:
        rows = self._connect().execute("SELECT * FROM runs ORDER BY created, id").fetchall()
        return [_row(r) for r in rows]

    def delete(self, hash: str) -> None:
        self._connect().execute("DELETE FROM runs WHERE hash = ?", (hash,))

    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in ("config", "result"):
        if out.get(key):
            out[key] = json.loads(out[key])
    return out
