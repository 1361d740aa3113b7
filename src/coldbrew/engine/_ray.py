"""The Ray engine: batch jobs as Ray Data ``map_batches`` over a pool of actors.

Ray is imported inside :class:`RayEngine` (the ``[ray]`` extra), never at import time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping

import numpy as np

from coldbrew import errors
from coldbrew.config import default_threads
from coldbrew.engine._base import (
    ROW,
    BatchJob,
    EngineError,
    RowLedger,
    check_output,
    input_rows,
    thread_limit,
)
from coldbrew.errors import ColdbrewError, ConfigError

__all__ = ["RayEngine", "check_ray_address"]

_MISSING = "needs Ray, which is not installed: pip install 'coldbrew[ray]'"
# A ColdbrewError raised in a worker reaches the driver only as the text of Ray's traceback
# (Ray Data re-raises it as a UserCodeException); this marker carries its class and message.
_MARKER = "coldbrew-job-error"
_MARKED = re.compile(_MARKER + r"\[(\w+)\]: (.*)")
_ERRORS = {name: getattr(errors, name) for name in errors.__all__} | {"EngineError": EngineError}


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] part of the extra)
    except ImportError:
        raise ConfigError(f"--engine ray {_MISSING}") from None
    return ray


def check_ray_address(address: str | None) -> str | None:
    """``address`` when it names a Ray cluster: ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``.

    ``None`` means: start a local Ray in this process. Raises ``ConfigError`` otherwise.
    """
    if address is None or address == "auto" or re.fullmatch(r"(ray://)?[\w.\-]+:\d+", address):
        return address
    raise ConfigError(f"--ray-address: expected 'auto', 'ray://HOST:PORT' or 'HOST:PORT', got {address!r}")


class _JobFailed(Exception):
    """A ``ColdbrewError`` of a worker, in the form that survives Ray's error handling."""


class _RayWorker:
    """The Ray Data actor: builds the job once, then runs it on each batch (minus ``ROW``)."""

    def __init__(self, job: BatchJob, threads: int) -> None:
        self.job = job
        self.limit = thread_limit(threads)  # as LocalEngine(threads=threads): the same numbers
        try:
            with self.limit():
                self.fn = job.build(threads)
        except ColdbrewError as exc:
            raise _JobFailed(f"{_MARKER}[{type(exc).__name__}]: {exc}") from None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = batch.pop(ROW)
        try:
            with self.limit():
                out = dict(check_output(self.job, self.fn(batch), len(rows)))
        except ColdbrewError as exc:
            raise _JobFailed(f"{_MARKER}[{type(exc).__name__}]: {exc}") from None
        out[ROW] = rows
        return out


class RayEngine:
    """Runs batch jobs on Ray: a local Ray started in this process, or a cluster.

    Each job runs as ``ray.data.Dataset.map_batches`` over an actor pool: every actor builds
    the job once (loads the encoder or the model) and processes batches; Ray restarts an
    actor that dies and retries its batches, and the driver checks that every input row
    came back exactly once, in order.

    Parameters
    ----------
    address: ``None`` starts a local Ray in this process with ``num_cpus`` CPUs (default:
        the cores of this machine); ``"auto"``, ``"ray://HOST:PORT"`` or ``"HOST:PORT"``
        connect to a running cluster (coldbrew must be installed, at the same version, on
        its nodes, and files such as a model directory readable at the same path).
        When this process is already connected to Ray, that session is used as it is.
    num_cpus: CPUs of the local Ray (only with ``address=None``).
    cpus_per_worker: CPUs each actor reserves; its encoder and BLAS use that many threads.
    workers: actors per job (default: the cluster's CPUs / ``cpus_per_worker``).

    Raises
    ------
    ConfigError: Ray is not installed (the message names ``pip install 'coldbrew[ray]'``),
        or an option is invalid.
    EngineError: the cluster cannot be reached.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_worker: int = 1,
        workers: int | None = None,
    ) -> None:
        address = check_ray_address(address)
        if num_cpus is not None and (address is not None or num_cpus < 1):
            raise ConfigError("num_cpus: a positive number of CPUs, only for a local Ray (no address)")
        if cpus_per_worker < 1 or (workers is not None and workers < 1):
            raise ConfigError("cpus_per_worker and workers must be at least 1")
        ray = _import_ray()
        self._owns = not ray.is_initialized()
        if self._owns:
            options = dict(include_dashboard=False, logging_level=logging.WARNING, configure_logging=False)
            try:
                if address is None:
                    ray.init(num_cpus=num_cpus or default_threads(), **options)
                else:
                    ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = "start a local Ray" if address is None else f"connect to the Ray cluster at {address}"
                raise EngineError(f"cannot {where}: {str(exc).splitlines()[0]}") from None
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, cpus // cpus_per_worker)

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address!r}, workers={self.workers}, cpus_per_worker={self.cpus_per_worker})"

    def map_batches(
        self, job: BatchJob, columns: Mapping[str, np.ndarray], batch_size: int
    ) -> Iterator[dict[str, np.ndarray]]:
        """See :meth:`coldbrew.engine.Engine.map_batches`."""
        import pyarrow as pa
        import ray.data

        n = input_rows(columns)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        ledger = RowLedger(n)
        if n == 0:
            return
        rows = np.arange(n, dtype=np.int64)
        # One input block per batch: the unit Ray schedules (and retries after a failure).
        blocks = [
            pa.table({ROW: rows[s : s + batch_size],
                      **{k: pa.array(list(v[s : s + batch_size]) if v.dtype == object else v[s : s + batch_size])
                         for k, v in columns.items()}})
            for s in range(0, n, batch_size)
        ]
        dataset = ray.data.from_arrow(blocks).map_batches(
            _RayWorker,
            fn_constructor_args=(job, self.cpus_per_worker),
            batch_size=batch_size,
            batch_format="numpy",
            zero_copy_batch=False,
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(blocks))),
            num_cpus=self.cpus_per_worker,
        )
        dataset.context.execution_options.preserve_order = True  # this dataset's copy only
        try:
            for out in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                ledger.check(out[ROW])
                yield out
        except ray.exceptions.RayError as exc:
            raise _driver_error(job, exc) from None
        ledger.finish()

    def close(self) -> None:
        """Shut down the Ray session if this engine started it."""
        if self._owns:
            import ray

            ray.shutdown()
            self._owns = False


def _driver_error(job: BatchJob, exc: Exception) -> ColdbrewError:
    """The error to raise in the driver for a failed Ray job: the worker's own when it was one."""
    text = str(exc)
    marked = _MARKED.search(text)
    if marked:
        return _ERRORS.get(marked.group(1), ColdbrewError)(marked.group(2))
    lines = [line for line in text.splitlines() if line.strip()]
    cause = next((lines[i - 1] for i, line in enumerate(lines)
                  if line.startswith("The above exception was the direct cause") and i), lines[-1] if lines else "")
    return EngineError(f"{type(job).__name__} failed on a Ray worker: {cause.strip()}")
