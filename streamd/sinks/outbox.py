"""The durable outbox of an at_least_once sink: SQLite in WAL mode, one file per sink.

A message counts as accepted once its row is committed; it is deleted only when
the peer acknowledged it. Rows are sent in id order, which keeps each camera's
order. Bounds (count, size, age) drop the oldest rows, and the caller counts and
logs them. A writer and a sender thread share one Outbox; a lock serialises
their (short) database calls.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamd.config import OutboxConfig
from streamd.files import private_file

__all__ = ["Outbox", "Row"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    created REAL NOT NULL,
    payload BLOB NOT NULL,
    kind TEXT NOT NULL DEFAULT 'frame',
    key TEXT NOT NULL DEFAULT ''
)
"""
# Outboxes written before events existed hold frames only: the new columns' defaults say so.
_MIGRATIONS = {
    "kind": "ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'frame'",
    "key": "ALTER TABLE outbox ADD COLUMN key TEXT NOT NULL DEFAULT ''",
}


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    camera: str
    payload: bytes
    created: float  # time.time() it was committed
    kind: str = "frame"  # frame, event or state
    key: str = ""  # a state's line or zone


class Outbox:
    """Rows waiting for delivery, oldest first."""

    def __init__(self, path: Path, bounds: OutboxConfig) -> None:
        private_file(path)  # 0600 in a 0700 folder; SQLite gives its -wal and -shm files the same mode
        self.path = path
        self._bounds = bounds
        self._lock = threading.Lock()
        self._age_checked = float("-inf")
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a killed process; FULL also a power loss, at an fsync per commit.
        self._db.execute(f"PRAGMA synchronous={'FULL' if bounds.fsync else 'NORMAL'}")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        for column, statement in _MIGRATIONS.items():
            if column not in columns:
                self._db.execute(statement)
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created)")
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()
        self.count: int = count
        self.bytes: int = size

    def add(
        self, items: Sequence[tuple[str, bytes] | tuple[str, bytes, str, str]], now: float | None = None
    ) -> int:
        """Commit ``(camera, payload[, kind, key])`` messages; how many old ones the bounds dropped."""
        if not items:
            return 0
        now = time.time() if now is None else now
        rows = [(item[0], now, item[1], *(item[2:] or ("frame", ""))) for item in items]
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO outbox (camera, created, payload, kind, key) VALUES (?, ?, ?, ?, ?)", rows
            )
            self.count += len(items)
            self.bytes += sum(len(row[2]) for row in rows)
            return self._enforce_bounds(now)

    def _enforce_bounds(self, now: float) -> int:
        dropped = 0
        if now - self._age_checked >= 1.0:  # rows are in age order: a check a second is plenty
            self._age_checked = now
            cur = self._db.execute(
                "DELETE FROM outbox WHERE created < ? RETURNING LENGTH(payload)",
                (now - self._bounds.max_age_s,),
            ).fetchall()
            dropped += self._forget(cur)
        max_bytes = int(self._bounds.max_mb * 1024 * 1024)
        while self.count > self._bounds.max_messages or self.bytes > max_bytes:
            excess = max(self.count - self._bounds.max_messages, 1)
            cur = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)"
                " RETURNING LENGTH(payload)",
                (excess,),
            ).fetchall()
            if not cur:
                break
            dropped += self._forget(cur)
        return dropped

    def _forget(self, deleted: list[tuple[int]]) -> int:
        self.count -= len(deleted)
        self.bytes -= sum(n for (n,) in deleted)
        return len(deleted)

    def peek(self, after_id: int, limit: int) -> list[Row]:
        """The oldest rows with an id above ``after_id``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, camera, payload, created, kind, key FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Row(i, c, bytes(p), t, kind, key) for i, c, p, t, kind, key in rows]

    def remove(self, ids: Sequence[int]) -> None:
        """Delete acknowledged rows."""
        if not ids:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN")
            cur = self._db.execute(
                f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))}) RETURNING LENGTH(payload)",  # noqa: S608 - placeholders only
                list(ids),
            ).fetchall()
            self._forget(cur)

    def close(self) -> None:
        with self._lock:
            self._db.close()
