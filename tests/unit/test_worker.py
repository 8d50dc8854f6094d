"""DeriveWorker (worker.py) with real threads: order, join with a timeout,
waiting for a turn, failures, cancelling what is queued."""

from __future__ import annotations

import threading

from seal_agent.worker import DeriveWorker


def test_jobs_run_in_order_and_join_waits_for_them() -> None:
    idle = threading.Event()
    idle.set()
    release = threading.Event()
    ran: list[str] = []

    def job(iid: str) -> None:
        if iid == "a":
            release.wait(10)
        ran.append(iid)

    worker = DeriveWorker(job, idle)
    try:
        threads_before = threading.active_count()
        for iid in ("a", "b", "c"):
            worker.submit(iid)
        assert worker.join(timeout=0.2) is False  # "a" is held
        assert worker.pending == 3
        assert threading.active_count() == threads_before  # no helper thread per join
        release.set()
        assert worker.join(timeout=10) is True
        assert ran == ["a", "b", "c"] and worker.pending == 0
        assert worker.join(timeout=0) is True  # nothing outstanding
    finally:
        release.set()
        worker.stop()


def test_a_failing_job_does_not_stop_the_worker() -> None:
    idle = threading.Event()
    idle.set()
    ran: list[str] = []

    def job(iid: str) -> None:
        if iid == "bad":
            raise RuntimeError("boom")
        ran.append(iid)

    worker = DeriveWorker(job, idle)
    worker.submit("bad")
    worker.submit("good")
    assert worker.join(timeout=10) is True
    worker.stop()
    assert ran == ["good"]


def test_jobs_wait_for_the_turn_and_stop_can_cancel_the_queue() -> None:
    idle = threading.Event()  # a turn is generating
    started = threading.Event()
    ran: list[str] = []

    def job(iid: str) -> None:
        started.set()
        ran.append(iid)

    worker = DeriveWorker(job, idle)
    worker.submit("x")
    assert not started.wait(0.2)  # held while the turn runs
    idle.set()
    assert worker.join(timeout=10) and ran == ["x"]
    idle.clear()
    worker.submit("y")
    worker.submit("z")
    stopper = threading.Thread(target=worker.stop, kwargs={"cancel_queued": True})
    stopper.start()
    idle.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert worker.join(timeout=1) is True  # cancelled jobs count as done
    assert "z" not in ran  # at most the job already waiting for the turn ran
