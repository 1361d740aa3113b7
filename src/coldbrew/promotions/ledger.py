"""Impressions and spend per promotion: what frequency caps and budgets are checked against.

Two ledgers: :class:`InMemoryLedger` (one process; saved as JSON by the CLI) and
:class:`SQLiteLedger` (a file that survives restarts, used by the service).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Protocol

from coldbrew.errors import DataError

__all__ = ["ImpressionLedger", "InMemoryLedger", "SQLiteLedger"]

DAY = 86_400


class ImpressionLedger(Protocol):
    """Where shown promotions are counted."""

    def impressions(self, promotion_id: str, user_id: str, since: int | None = None) -> int:
        """Impressions of a promotion to a user at or after ``since`` (all when ``None``)."""
        ...

    def spent(self, promotion_id: str) -> float:
        """Total charged to a promotion so far."""
        ...

    def record(self, promotion_id: str, user_id: str, timestamp: int, cost: float) -> None:
        """Count one impression and charge its cost."""
        ...


class InMemoryLedger:
    """A thread-safe in-process ledger; ``save``/``load`` keep it as JSON between runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shown: dict[tuple[str, str], list[int]] = {}
        self._spent: dict[str, float] = {}

    def impressions(self, promotion_id: str, user_id: str, since: int | None = None) -> int:
        with self._lock:
            times = self._shown.get((promotion_id, user_id), [])
            return len(times) if since is None else sum(1 for t in times if t >= since)

    def spent(self, promotion_id: str) -> float:
        with self._lock:
            return self._spent.get(promotion_id, 0.0)

    def record(self, promotion_id: str, user_id: str, timestamp: int, cost: float) -> None:
        with self._lock:
            self._shown.setdefault((promotion_id, user_id), []).append(int(timestamp))
            self._spent[promotion_id] = self._spent.get(promotion_id, 0.0) + float(cost)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "impressions": [{"promotion_id": p, "user_id": u, "timestamps": t}
                                for (p, u), t in self._shown.items()],
                "spent": dict(self._spent),
            }

    @classmethod
    def from_dict(cls, data: Any, where: str = "ledger") -> InMemoryLedger:
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object with 'impressions' and 'spent'")
        ledger = cls()
        for i, row in enumerate(data.get("impressions", [])):
            try:
                key = (str(row["promotion_id"]), str(row["user_id"]))
                ledger._shown[key] = [int(t) for t in row["timestamps"]]
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}: impressions[{i}]: expected promotion_id, user_id and timestamps") from None
        spent = data.get("spent", {})
        if not isinstance(spent, dict):
            raise DataError(f"{where}: field 'spent' must be an object of promotion_id -> amount")
        ledger._spent = {str(k): float(v) for k, v in spent.items()}
        return ledger

    def save(self, path: str | Path) -> None:
        """Write the ledger as JSON (atomically)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | Path) -> InMemoryLedger:
        """Read a ledger written by :meth:`save`; a missing file is an empty ledger."""
        p = Path(path)
        if not p.exists():
            return cls()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}: line {exc.lineno}: malformed JSON ({exc.msg})") from None
        return cls.from_dict(data, str(p))


class SQLiteLedger:
    """A durable ledger in one SQLite file; each ``record`` is committed before it returns.

    Thread-safe within a process; several processes on one machine may share the file
    (SQLite locks it), replicas on different machines may not.
    """

    def __init__(self, path: str | Path) -> None:
        import sqlite3

        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            with self._db:
                self._db.execute("CREATE TABLE IF NOT EXISTS impressions (promotion_id TEXT NOT NULL,"
                                 " user_id TEXT NOT NULL, ts INTEGER NOT NULL, cost REAL NOT NULL)")
                self._db.execute("CREATE INDEX IF NOT EXISTS impressions_key ON impressions (promotion_id, user_id, ts)")
        except sqlite3.Error as exc:
            raise DataError(f"{self.path}: cannot open the promotion ledger ({exc})") from None

    def impressions(self, promotion_id: str, user_id: str, since: int | None = None) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM impressions WHERE promotion_id = ? AND user_id = ? AND ts >= ?",
                (promotion_id, user_id, -(2**62) if since is None else int(since)),
            ).fetchone()
        return int(row[0])

    def spent(self, promotion_id: str) -> float:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(cost), 0) FROM impressions WHERE promotion_id = ?",
                                   (promotion_id,)).fetchone()
        return float(row[0])

    def record(self, promotion_id: str, user_id: str, timestamp: int, cost: float) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO impressions VALUES (?, ?, ?, ?)",
                             (promotion_id, user_id, int(timestamp), float(cost)))

    def close(self) -> None:
        with self._lock:
            self._db.close()
