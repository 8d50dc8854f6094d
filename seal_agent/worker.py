"""A background thread that derives self-edits after the turn has answered.

Jobs are interaction ids; the journal already holds each one as ``pending``,
so a job lost with the process is found again (``SealAgent`` resumes pending
interactions when it starts, and ``seal-agent reprocess`` retries failures).
The worker waits while a chat turn is generating, so the two do not fight
over the CPU cores more than they must.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future

__all__ = ["DeriveWorker"]

log = logging.getLogger("seal_agent.worker")


class DeriveWorker:
    """One daemon thread and a queue; each job carries a ``Future`` that says when it is done.

    A daemon thread, not a ``ThreadPoolExecutor``: the executor's threads are
    joined at interpreter exit after running everything still queued, while
    queued jobs here may be dropped with the process (they stay ``pending``).
    """

    def __init__(self, job: Callable[[str], None], turn_idle: threading.Event) -> None:
        self._job = job
        self._turn_idle = turn_idle
        self._queue: queue.Queue[tuple[str, Future[None]] | None] = queue.Queue()  # None: stop
        self._cancel = threading.Event()
        self._outstanding: set[Future[None]] = set()
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="seal-agent-derive", daemon=True)
        self._thread.start()

    def submit(self, interaction_id: str) -> None:
        done: Future[None] = Future()
        with self._guard:
            self._outstanding.add(done)
        done.add_done_callback(self._finished)
        self._queue.put((interaction_id, done))

    @property
    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every job submitted so far has run; False if the timeout came first."""
        with self._guard:
            waiting = list(self._outstanding)
        _, not_done = futures.wait(waiting, timeout)
        return not not_done

    def stop(self, *, cancel_queued: bool = False) -> None:
        """End the thread; with ``cancel_queued`` skip jobs not yet started
        (they stay ``pending`` in the journal for the next run)."""
        if cancel_queued:
            self._cancel.set()
        self._queue.put(None)
        self._thread.join()

    def _finished(self, done: Future[None]) -> None:
        with self._guard:
            self._outstanding.discard(done)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                interaction_id, done = item
                if self._cancel.is_set():
                    done.cancel()
                    continue
                done.set_running_or_notify_cancel()
                try:
                    self._turn_idle.wait()  # let a turn in progress have the cores
                    self._job(interaction_id)
                except Exception:  # the job records its own failure in the journal
                    log.exception("derivation of %s failed", interaction_id)
                finally:
                    done.set_result(None)
            finally:
                self._queue.task_done()
