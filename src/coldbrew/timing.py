"""Where a fit's time goes: named stages, their seconds, and a step line per stage.

``Recommender.fit`` runs its stages inside :meth:`StageTimer.stage`; the seconds land in
``fit_report_["seconds"]`` (and the model manifest) and, when progress is shown, each stage
prints one line to stderr as it ends (``fit: ranker hold-out fits  31.2 s``). Stages may
nest (``ranker/period 1``); a parent's seconds include its children's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StageTimer", "stage_of"]


class StageTimer:
    """Accumulates wall-clock seconds per named stage.

    Parameters
    ----------
    show: print a line per finished stage to stderr (``None``: only on a terminal).
    prefix: what the lines start with.
    """

    def __init__(self, show: bool | None = None, prefix: str = "fit") -> None:
        self.show = sys.stderr.isatty() if show is None else bool(show)
        self.prefix = prefix
        self.seconds: dict[str, float] = {}
        self._path: list[str] = []
        self._started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as ``name`` (under the enclosing stage, joined by ``/``)."""
        if not name or "/" in name:
            raise ValueError(f"stage name must be non-empty and without '/', got {name!r}")
        self._path.append(name)
        key = "/".join(self._path)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self._path.pop()
            self.seconds[key] = self.seconds.get(key, 0.0) + elapsed
            if self.show:
                indent = "  " * len(self._path)
                print(f"{self.prefix}: {indent}{name:<{max(32 - len(indent), 1)}} {elapsed:7.1f} s",
                      file=sys.stderr, flush=True)

    def total(self) -> float:
        """Seconds since the timer was made."""
        return time.perf_counter() - self._started

    def report(self) -> dict[str, float]:
        """``{stage: seconds}`` rounded to 0.01 s, plus ``"total"``."""
        out = {key: round(value, 2) for key, value in self.seconds.items()}
        out["total"] = round(self.total(), 2)
        return out

    def summary(self) -> str:
        """A few lines: the top-level stages by time, each with its share of the total."""
        total = max(self.total(), 1e-9)
        top = sorted(((k, v) for k, v in self.seconds.items() if "/" not in k), key=lambda kv: -kv[1])
        lines = [f"{self.prefix}: {total:.1f} s in all; where the time went:"]
        for key, value in top:
            lines.append(f"  {key:<30} {value:7.1f} s  {100 * value / total:4.0f} %")
        return "\n".join(lines)


def stage_of(owner: object, name: str):
    """``owner._timer.stage(name)`` when ``owner`` is inside a timed fit, else a no-op context."""
    from contextlib import nullcontext

    timer = getattr(owner, "_timer", None)
    return timer.stage(name) if isinstance(timer, StageTimer) else nullcontext()
