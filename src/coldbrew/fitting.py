"""Fitting the parts once per set of training events, in parallel where they are independent.

A default fit fits the same parts (ALS, LightGCN, co-occurrence, the bridge) several times:
on the events before each of the ranker's hold-out periods, on tuning's hold-out (which is
the last period), on that hold-out with a random share of its items hidden, and on all the
events. None of these depends on another: what tuning learns (blend weights) and what the
ranker learns are read *from* fitted parts, never fed back into them. So the fit lists them
up front (:class:`PartsJob`), fits each distinct one once, with ``[compute] workers``
processes at a time, and the later steps take the fitted parts from a :class:`PartsStore`
instead of fitting again. The result is the same model as fitting each in turn.

Workers are fresh Python processes (``python -m coldbrew.fitting``, see :func:`_in_worker`
for why not :mod:`multiprocessing`). A worker receives its events and the item text vectors
and returns the fitted recommender's state (the encoder is never sent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from coldbrew.config import BlendConfig, ComputeConfig, FitConfig, RankerConfig
from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events

if TYPE_CHECKING:
    from coldbrew.scoring import FitHost, Scorer

__all__ = ["PartsJob", "PartsStore", "parts_key", "events_digest", "fit_jobs", "prefit"]


def events_digest(train: Events) -> str:
    """A digest of the events (timestamps, item and user IDs)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(train.timestamps).tobytes())
    digest.update("\x1f".join(map(str, train.item_ids.tolist())).encode("utf-8", "surrogatepass"))
    digest.update("\x1f".join(map(str, train.user_ids.tolist())).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def parts_key(config: FitConfig, train: Events, digest: str | None = None) -> tuple:
    """What fitted parts depend on: the training events (a digest) and every config section
    but the blend, the ranker and ``[compute]`` (which only read fitted parts, or say how to fit)."""
    neutral = replace(config, blend=BlendConfig(), ranker=RankerConfig(), compute=ComputeConfig())
    return (len(train), digest or events_digest(train), neutral)


@dataclass(frozen=True)
class PartsJob:
    """One set of parts to fit: ``config``'s part settings on ``train`` (``name`` for the timer)."""

    name: str
    config: FitConfig
    train: Events


class PartsStore:
    """Fitted models by :func:`parts_key`; :meth:`get` hands one out re-configured."""

    def __init__(self) -> None:
        self._fitted: list[tuple[tuple, Scorer]] = []
        # id(events) -> (events, digest): a fit asks about the same few event sets many
        # times; the events are kept so that their id cannot be reused
        self._digests: dict[int, tuple[Events, str]] = {}

    def __len__(self) -> int:
        return len(self._fitted)

    def key(self, config: FitConfig, train: Events) -> tuple:
        """:func:`parts_key`, each event set's digest computed once."""
        cached = self._digests.get(id(train))
        if cached is None or cached[0] is not train:
            cached = self._digests[id(train)] = (train, events_digest(train))
        return parts_key(config, train, cached[1])

    def put(self, config: FitConfig, train: Events, model: Scorer) -> None:
        self._fitted.append((self.key(config, train), model))

    def get(self, config: FitConfig, train: Events) -> Scorer | None:
        """The recommender fitted on ``train`` with ``config``'s part settings, its config set
        to ``config`` (blend and ranker settings do not change fitted parts); ``None`` if none."""
        key = self.key(config, train)
        for seen, model in self._fitted:
            if seen == key:
                model.config = config
                return model
        return None


def _fit_one(kind: str, config: FitConfig, catalog: Catalog, train: Events, text_vectors: np.ndarray) -> dict[str, Any]:
    """Worker: fit the parts with a fresh model of class ``kind`` (``"module:Class"``) and
    return its state (run in a worker process)."""
    import importlib
    import time

    module, name = kind.split(":")
    started = time.perf_counter()
    model = getattr(importlib.import_module(module), name)(config)
    model._progress = False
    model._fit_parts(catalog, train, text_vectors)
    state = {k: v for k, v in model.__dict__.items() if k not in ("_encoder", "_cache")}
    state["_seconds"] = time.perf_counter() - started
    return state


def fit_jobs(owner: FitHost, jobs: Sequence[PartsJob], catalog: Catalog, text_vectors: np.ndarray,
              store: PartsStore) -> None:
    """Fit each distinct job once into ``store``, ``owner.config.compute.workers`` at a time.

    Jobs whose parts are already in ``store`` are skipped. Below ``parallel_min_events``
    events, or with one worker or one job, they are fitted in this process
    (``owner.fitted_on``); otherwise in worker processes, each with a fresh model of
    ``owner``'s class, whose fitted state is then moved into one here.
    """
    from coldbrew.timing import stage_of

    todo: list[tuple[tuple, PartsJob]] = []
    for job in jobs:
        key = store.key(job.config, job.train)
        if store.get(job.config, job.train) is None and all(key != k for k, _ in todo):
            todo.append((key, job))
    if not todo:
        return
    compute = owner.config.compute
    workers = min(compute.resolved_workers(), len(todo))
    largest = max(len(job.train) for _, job in todo)
    if workers <= 1 or largest < compute.parallel_min_events:
        for _, job in todo:
            owner.fitted_on(job.config, catalog, job.train, text_vectors, name=f"{job.name} parts")
        return
    kind = f"{type(owner).__module__}:{type(owner).__qualname__}"

    def adopt(key: tuple, job: PartsJob, state: dict[str, Any]) -> None:
        model = type(owner)(job.config, encoder=owner.encoder)
        model._cache = owner._cache
        seconds = state.pop("_seconds", None)
        model.__dict__.update(state)
        model._progress = False
        timer = getattr(owner, "_timer", None)
        if seconds is not None and timer is not None:
            timer.seconds[f"parts in workers/{job.name}"] = round(seconds, 2)
        store.put(job.config, job.train, model)

    from concurrent.futures import ThreadPoolExecutor

    with stage_of(owner, f"parts ({len(todo)} fits, {workers} workers)"):
        # The largest fits first: the last to start is a short one.
        order = sorted(todo, key=lambda kj: -len(kj[1].train))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [(key, job, pool.submit(_in_worker, kind, job.config, catalog, job.train, text_vectors))
                       for key, job in order]
            for key, job, future in futures:
                adopt(key, job, future.result())


def prefit(model: FitHost, catalog: Catalog, events: Events, text_vectors: np.ndarray, store: PartsStore) -> None:
    """Fit the parts of every hold-out fit tuning and the ranker will make, and of the
    final fit, up front and in parallel (see the module docstring) into ``store``.

    Skipped with the text adapter on (hold-out fits then reuse the adapter tuning trains)
    and when the hold-outs' part settings are only known after tuning.
    """
    from coldbrew.models.tuning import holdout_jobs, parts_config
    from coldbrew.ranking.stage import period_jobs

    if model.config.adapter.enabled:
        return
    config = parts_config(model.config, events) if model.config.blend.tune else model.config
    if config is None:
        return
    planned: list[tuple[str, FitConfig, Events]] = []
    if model.config.blend.tune:
        planned += holdout_jobs(model.config, events)
    if model.config.ranker.kind != "none":
        planned += period_jobs(model.config.ranker, model.config.blend.validation_share, config, events)
    jobs = [PartsJob(*job) for job in planned]
    if not jobs:
        return  # nothing to fit on hold-outs: the final fit runs as usual
    jobs.append(PartsJob("final", config, events))
    fit_jobs(model, jobs, catalog, text_vectors, store)


def _in_worker(kind: str, config: FitConfig, catalog: Catalog, train: Events, text_vectors: np.ndarray) -> dict[str, Any]:
    """:func:`_fit_one` in a fresh Python process (``python -m coldbrew.fitting``).

    A plain subprocess, not :mod:`multiprocessing`: a spawned pool re-imports the caller's
    ``__main__``, which breaks every script without an ``if __name__ == "__main__"`` guard,
    and a forked one is unsafe once ALS's OpenMP threads exist. The job and the fitted state
    travel pickled over the child's stdin and stdout: in memory, between two processes of
    this fit, never through a file.
    """
    import pickle
    import subprocess
    import sys

    payload = pickle.dumps((kind, config, catalog, train, text_vectors), protocol=pickle.HIGHEST_PROTOCOL)
    done = subprocess.run([sys.executable, "-m", "coldbrew.fitting"], input=payload, capture_output=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        raise RuntimeError(f"a parts fit in a worker process failed: {lines[-1] if lines else done.returncode}")
    return pickle.loads(done.stdout)


def _worker_main() -> None:
    import pickle
    import sys

    kind, config, catalog, train, text_vectors = pickle.loads(sys.stdin.buffer.read())
    state = _fit_one(kind, config, catalog, train, text_vectors)
    sys.stdout.buffer.write(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _worker_main()
