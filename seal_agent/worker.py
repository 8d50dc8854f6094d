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

__all__ = ["DeriveWorker"]

log = logging.getLogger("seal_agent.worker")
_STOP = object()


class DeriveWorker:
    def __init__(self, job: Callable[[str], None], turn_idle: threading.Event) -> None:
        self._job = job
        self._turn_idle = turn_idle
        self._queue: queue.Queue[object] = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seal-agent-derive", daemon=True)
        self._thread.start()

    def submit(self, interaction_id: str) -> None:
        self._queue.put(interaction_id)

    @property
    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job has run; False if the timeout came first."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def stop(self, *, cancel_queued: bool = False) -> None:
        """End the thread; with ``cancel_queued`` skip jobs not yet started
        (they stay ``pending`` in the journal for the next run)."""
        if cancel_queued:
            self._cancel.set()
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._cancel.is_set():
                    continue
                self._turn_idle.wait()  # let a turn in progress have the cores
                self._job(str(item))
            except Exception:  # the job records its own failure in the journal
                log.exception("derivation of %s failed", item)
            finally:
                self._queue.task_done()
