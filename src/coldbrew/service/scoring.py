"""A scoring process: the model's batched ``recommend`` on a second core.

One Python process runs its Python code on one core at a time (the GIL). The service's own
work per request (HTTP parsing, validation, the history read, JSON) and the model call each
take about half of a request's CPU, so with both in one process the second core of a small
server idles while requests queue. ``coldbrew serve`` therefore starts one child process
(``multiprocessing``, spawn) that holds a replica of the active model and does nothing but
score the batches the :class:`~coldbrew.service.batching.RecommendBatcher` sends it.

The parent stays the single owner of the truth; the child only follows it, in order, over
one pipe:

* ``score``: a batch of :class:`~coldbrew.requests.Request` -> :class:`Recommendation` s;
* ``apply``: item records (added, changed, deleted products) applied with the same code as
  the parent's model (:meth:`ServiceState.apply_items`), sent under the parent's write lock
  (so every batch sent after it is scored with it) and acknowledged before the parent's
  ``POST /v1/items`` answers, but awaited after the write lock is released: the server's
  readers do not wait for the replica's own ``add_items``;
* ``stage`` (a retrained version is loaded beside the active one, on a thread of the child,
  while it keeps scoring) then ``commit`` (swapped in under the parent's write lock, at the
  same moment as the parent's own swap).

Blocked (deleted, out-of-stock) items and filters arrive inside each request (``exclude``,
``candidates``), so the replica needs no overlay of its own. If the child dies, the parent
logs it and scores in-process again (no request fails for it).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ScoringProcess", "ScorerGone"]

log = logging.getLogger("coldbrew.service")

_START_TIMEOUT_S = 600.0


class ScorerGone(RuntimeError):
    """The scoring process is not running (it died, or was closed)."""


class ScoringProcess:
    """Parent-side handle of the scoring child. Thread-safe; calls are answered in order.

    Parameters
    ----------
    settings: the service's :class:`~coldbrew.service.settings.ServiceSettings`.
    model_dir: the directory of the model version to load (the active one).
    records: item records to apply on top of it (the store's catalog overlay).
    """

    def __init__(self, settings: Any, model_dir: Path, records: Sequence[Any]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_child_main, args=(child, settings, str(model_dir), list(records)),
            name="coldbrew-scorer", daemon=True,
        )
        self._process.start()
        child.close()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, list] = {}  # id -> [event, ok, payload]
        self._waiting_lock = threading.Lock()
        self._alive = True
        self.batches = 0  # batches scored by the replica
        if not self._conn.poll(_START_TIMEOUT_S):
            self.close()
            raise ScorerGone(f"the scoring process did not start within {_START_TIMEOUT_S:.0f} s")
        try:
            ready = self._conn.recv()
        except (EOFError, OSError) as exc:
            self.close()
            raise ScorerGone(f"the scoring process exited while starting: {exc}") from exc
        if ready[0] != "ready":
            self.close()
            raise ScorerGone(f"the scoring process failed to start: {ready[1]}")
        self.pid = self._process.pid
        self._reader = threading.Thread(target=self._read, name="coldbrew-scorer-reader", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        """False once the child is known to be gone (its pipe closed, or a send failed).

        No system call: the reader thread sees the pipe close as soon as the child dies.
        """
        return self._alive

    # ------------------------------------------------------------------ calls
    def score(self, requests: Sequence[Any], k: int) -> list[Any]:
        """``model.recommend(requests, k)`` on the replica."""
        return self.wait(self.send_score(requests, k))

    def send_score(self, requests: Sequence[Any], k: int) -> list:
        """Send a batch to score and return at once; :meth:`wait` on the result for its answer."""
        slot = self._send("score", (list(requests), k))
        self.batches += 1
        return slot

    def apply(self, records: Sequence[Any]) -> dict[str, int]:
        """Apply item records to the replica's active model (as ``ServiceState.apply_items``)."""
        return self._call("apply", list(records))

    def send_apply(self, records: Sequence[Any]) -> list:
        """:meth:`apply` sent without waiting: :meth:`wait` on the slot for its answer. Every
        batch sent afterwards is scored with the records applied."""
        return self._send("apply", list(records))

    def stage(self, model_dir: Path, records: Sequence[Any]) -> None:
        """Load a model version beside the active one (the child keeps scoring meanwhile)."""
        self._call("stage", (str(model_dir), list(records)))

    def commit(self, records: Sequence[Any] = ()) -> None:
        """Swap the staged model in, after applying ``records`` written since :meth:`stage`."""
        self._call("commit", list(records))

    def close(self) -> None:
        """Stop the child (it finishes the call in hand first)."""
        if self._alive:
            self._alive = False
            try:
                with self._send_lock:
                    self._conn.send((0, "stop", None))
            except (OSError, ValueError):
                pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()
        self._fail_waiting(ScorerGone("the scoring process was closed"))

    # ------------------------------------------------------------------ plumbing
    def _call(self, kind: str, payload: Any) -> Any:
        return self.wait(self._send(kind, payload))

    @staticmethod
    def wait(slot: list) -> Any:
        """The answer of a call sent with :meth:`send_score` (raises what the child raised,
        or :class:`ScorerGone`)."""
        slot[0].wait()
        if not slot[1]:
            raise slot[2]
        return slot[2]

    def _send(self, kind: str, payload: Any) -> list:
        """Send one call; returns its slot ``[done event, ok, answer]`` (calls are answered in order)."""
        if not self._alive:
            raise ScorerGone("the scoring process is not running")
        slot: list = [threading.Event(), False, None]
        call_id = next(self._ids)
        with self._waiting_lock:
            self._waiting[call_id] = slot
        try:
            with self._send_lock:
                self._conn.send((call_id, kind, payload))
        except (OSError, ValueError) as exc:
            with self._waiting_lock:
                self._waiting.pop(call_id, None)
            self._gone(f"could not send to the scoring process: {exc}")
            raise ScorerGone(str(exc)) from exc
        except BaseException:  # nothing was written (the payload is pickled before the write)
            with self._waiting_lock:
                self._waiting.pop(call_id, None)
            raise
        return slot

    def _read(self) -> None:
        while True:
            try:
                call_id, ok, payload = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._gone(f"the scoring process exited ({type(exc).__name__})")
                return
            with self._waiting_lock:
                slot = self._waiting.pop(call_id, None)
            if slot is not None:
                slot[1], slot[2] = ok, payload
                slot[0].set()

    def _gone(self, why: str) -> None:
        if self._alive:
            log.warning("%s; scoring in the server process from now on", why)
        self._alive = False
        self._fail_waiting(ScorerGone(why))

    def _fail_waiting(self, error: BaseException) -> None:
        with self._waiting_lock:
            waiting, self._waiting = self._waiting, {}
        for slot in waiting.values():
            slot[1], slot[2] = False, error
            slot[0].set()


# ---------------------------------------------------------------------- the child
def _load(settings: Any, model_dir: str, records: list) -> Any:
    from threadpoolctl import threadpool_limits

    from coldbrew.service.state import ServiceState, prepare_model
    from coldbrew.storage import load_model

    threadpool_limits(limits=1, user_api="blas")  # one core's worth, like the parent
    model = load_model(model_dir)
    replica = ServiceState(settings=settings, store=None, model=model, model_version="")
    replica.apply_items(model, records)
    prepare_model(model)
    return replica


def _child_main(conn: Any, settings: Any, model_dir: str, records: list) -> None:
    try:
        active = _load(settings, model_dir, records)
    except BaseException as exc:  # reported to the parent, which serves without us
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    from coldbrew.service.state import freeze_heap

    freeze_heap()  # the replica is long-lived: keep it out of the collector's full scans
    conn.send(("ready", None))
    send_lock = threading.Lock()
    staged: dict[str, Any] = {}

    def reply(call_id: int, ok: bool, payload: Any) -> None:
        with send_lock:
            conn.send((call_id, ok, payload))

    def stage(call_id: int, directory: str, items: list) -> None:
        try:
            staged["replica"] = _load(settings, directory, items)
            reply(call_id, True, None)
        except BaseException as exc:
            reply(call_id, False, RuntimeError(f"staging {directory}: {type(exc).__name__}: {exc}"))

    while True:
        try:
            call_id, kind, payload = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        try:
            if kind == "stop":
                return
            if kind == "score":
                requests, k = payload
                reply(call_id, True, active.model.recommend(requests, k))
            elif kind == "apply":
                reply(call_id, True, active.apply_items(active.model, payload))
            elif kind == "stage":
                directory, items = payload
                threading.Thread(target=stage, args=(call_id, directory, items), daemon=True).start()
            elif kind == "commit":
                fresh = staged.pop("replica", None)
                if fresh is None:
                    raise RuntimeError("commit without a staged model")
                fresh.apply_items(fresh.model, payload)
                active = fresh
                reply(call_id, True, None)
            else:
                raise ValueError(f"unknown call {kind!r}")
        except Exception as exc:  # the parent gets the error; the child goes on
            try:
                reply(call_id, False, exc)
            except Exception:  # an exception that does not pickle
                reply(call_id, False, RuntimeError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
