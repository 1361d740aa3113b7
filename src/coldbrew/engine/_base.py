"""The ``Engine`` protocol, the in-process engine, and the check that every row comes back once."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Protocol

import numpy as np

from coldbrew.errors import ColdbrewError

__all__ = [
    "ENGINE_NAMES",
    "ROW",
    "BatchFunction",
    "BatchJob",
    "Engine",
    "EngineError",
    "LocalEngine",
    "RowLedger",
    "check_output",
    "input_rows",
    "make_engine",
    "thread_limit",
]

#: Column the engines add to every batch: the input row's position. Jobs never see it.
ROW = "_row"


class EngineError(ColdbrewError, RuntimeError):
    """A batch job could not be run or did not return each input row exactly once."""


class BatchFunction(Protocol):
    """Maps one batch of input columns to output columns with one entry per input row."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``batch``: equal-length arrays (``m`` rows); returns arrays with ``m`` rows each."""
        ...


class BatchJob(Protocol):
    """A picklable recipe for a :class:`BatchFunction`, built once per worker.

    Building is where the expensive state is loaded (an encoder, a saved model), so that an
    engine with several workers loads it once per worker, not once per batch.
    """

    def build(self, threads: int | None) -> BatchFunction:
        """The batch function; ``threads``: CPU threads it may use (``None``: all cores)."""
        ...


class Engine(Protocol):
    """Runs a batch job over the rows of a table and gives the results back in input order.

    ``name`` is ``"local"`` or ``"ray"``; ``workers`` the number of batch functions that run
    at the same time.
    """

    name: str
    workers: int

    def map_batches(
        self, job: BatchJob, columns: Mapping[str, np.ndarray], batch_size: int
    ) -> Iterator[dict[str, np.ndarray]]:
        """Run ``job`` over ``columns`` (equal-length 1-d arrays, ``n`` rows) in batches.

        Yields output batches in input order; each carries the ``ROW`` column (int64 input
        positions) beside the job's own columns. Every input row is yielded exactly once, or
        :class:`EngineError` is raised; a ``ColdbrewError`` raised by the job is re-raised
        as it is.
        """
        ...

    def close(self) -> None:
        """Release the engine's resources (a Ray session it started)."""
        ...


def input_rows(columns: Mapping[str, np.ndarray]) -> int:
    """Number of rows of ``columns``; raises ``ValueError`` when they disagree or use ``ROW``."""
    if not columns:
        raise ValueError("map_batches needs at least one input column")
    if ROW in columns:
        raise ValueError(f"column name {ROW!r} is reserved for the engine's row index")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"input columns differ in length: {lengths}")
    return next(iter(lengths.values()))


def check_output(job: BatchJob, out: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """``out`` when it is a dict of arrays with ``rows`` entries each; else ``EngineError``."""
    if not isinstance(out, dict) or not out or ROW in out:
        raise EngineError(f"{type(job).__name__}: a batch function must return a non-empty dict of"
                          f" columns without {ROW!r}, got {type(out).__name__}")
    for name, values in out.items():
        if len(values) != rows:
            raise EngineError(f"{type(job).__name__}: output column {name!r} has {len(values)} rows"
                              f" for a batch of {rows}")
    return out


class RowLedger:
    """Checks that output batches carry the row positions ``0 .. n-1``, each once, in order.

    This is what makes a retried batch (a Ray worker that died and ran again) safe: a batch
    that came back twice, or never, is an error instead of a silently wrong output file.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.done = 0

    def check(self, rows: np.ndarray) -> None:
        """Accept the next output batch's row positions (int64 ``(m,)``)."""
        rows = np.asarray(rows, dtype=np.int64)
        expected = np.arange(self.done, self.done + len(rows))
        if not np.array_equal(rows, expected):
            seen = rows[(rows < self.done) | (rows >= self.n)]
            if len(seen) or len(np.unique(rows)) < len(rows):
                what = f"rows {_rows(seen if len(seen) else rows)} came back twice"
            else:
                missing = np.setdiff1d(expected, rows)
                what = f"rows {_rows(missing)} are missing" if len(missing) else "rows came back out of order"
            raise EngineError(f"batch output is inconsistent: {what} (of {self.n:,} input rows);"
                              " nothing was written")
        self.done += len(rows)

    def finish(self) -> None:
        """Raise ``EngineError`` unless every row has been seen."""
        if self.done != self.n:
            raise EngineError(f"batch output is incomplete: rows {self.done:,}..{self.n - 1:,} of"
                              f" {self.n:,} never came back; nothing was written")


def thread_limit(threads: int | None):
    """A factory of context managers that cap BLAS/OpenMP threads at ``threads`` (``None``: no cap)."""
    if threads is None:
        return contextlib.nullcontext
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    return lambda: controller.limit(limits=threads)


def _rows(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:5])
    return shown + (f" and {len(rows) - 5:,} more" if len(rows) > 5 else "")


class LocalEngine:
    """Runs batch jobs in this process, one batch after the other (the single-machine path).

    Parameters
    ----------
    threads: threads the job may use: its encoder's, and BLAS/OpenMP's while it runs
        (``None``: no limit, all cores, as the library itself runs). Results can differ from
        one thread count to another in the last float32 digits (BLAS sums in another order):
        with the thread count of the Ray engine's workers they are bit for bit the same.
    progress: show a tqdm bar over rows; ``None`` shows it only when stderr is a terminal
        and there are more than two batches.
    """

    name = "local"
    workers = 1

    def __init__(self, threads: int | None = None, progress: bool | None = None) -> None:
        self.threads = threads
        self.progress = progress

    def __repr__(self) -> str:
        return f"LocalEngine(threads={self.threads})"

    def map_batches(
        self, job: BatchJob, columns: Mapping[str, np.ndarray], batch_size: int
    ) -> Iterator[dict[str, np.ndarray]]:
        """See :meth:`Engine.map_batches`."""
        n = input_rows(columns)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        limit = thread_limit(self.threads)
        with limit():
            fn = job.build(self.threads)
        show = self.progress
        if show is None:
            show = n > 2 * batch_size and sys.stderr.isatty()
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=n, desc=type(job).__name__, unit="row", file=sys.stderr)
        ledger = RowLedger(n)
        try:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                with limit():
                    out = dict(check_output(job, fn({k: v[start:stop] for k, v in columns.items()}), stop - start))
                out[ROW] = np.arange(start, stop, dtype=np.int64)
                ledger.check(out[ROW])
                if bar is not None:
                    bar.update(stop - start)
                yield out
        finally:
            if bar is not None:
                bar.close()
        ledger.finish()

    def close(self) -> None:
        """Nothing to release."""


#: Values accepted by :func:`make_engine` (and ``--engine``).
ENGINE_NAMES: tuple[str, ...] = ("local", "ray")


def make_engine(name: str = "local", address: str | None = None, num_cpus: int | None = None,
                workers: int | None = None) -> Engine:
    """The engine called ``name``: ``"local"`` (this process) or ``"ray"`` (see ``RayEngine``).

    ``address``, ``num_cpus`` and ``workers`` apply to Ray only. Raises ``ConfigError`` for
    an unknown name, an option that does not apply, or a missing Ray (naming the extra).
    """
    from coldbrew.errors import ConfigError

    if name == "local":
        if address is not None:
            raise ConfigError("--ray-address: only with --engine ray")
        if num_cpus is not None or workers is not None:
            raise ConfigError("num_cpus and workers: only with the ray engine")
        return LocalEngine()
    if name == "ray":
        from coldbrew.engine._ray import RayEngine

        return RayEngine(address=address, num_cpus=num_cpus, workers=workers)
    raise ConfigError(f"--engine: unknown engine {name!r}; expected one of: {', '.join(ENGINE_NAMES)}")
