"""Worker processes sharing a study on this machine: started by spawning, each runs the work
loop; their events reach the parent's progress view through a queue; they end with their parent.
The parent's one load of Fashion-MNIST reaches every worker in shared memory, so a run reads and
decodes the files once, and N workers hold one copy of the images, not N."""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import signal
import threading
import time
from typing import NamedTuple

from vaesweep import interrupts
from vaesweep.errors import VaesweepError, first_line
from vaesweep.interrupts import graceful_interrupts
from vaesweep.run.progress import Progress
from vaesweep.run.work_loop import RunRequest, WorkerOutcome, work
from vaesweep.store.storage import (
    quiet_optuna,
    storage_errors,
)
from vaesweep.training.data import FashionMNIST, load_fashion_mnist

SHARED_MEMORY = "/dev/shm"  # where torch's shared tensors live on Linux


class WorkerDone(NamedTuple):
    outcome: WorkerOutcome


class WorkerFailed(NamedTuple):
    message: str  # one line, for the user


class WorkerInterrupted(NamedTuple):
    """The parent's SIGTERM: the worker recorded its running trial as failed and stopped."""


def _end_with_parent(parent: int) -> None:
    """A worker whose parent died (kill -9) stops as if the parent had asked: its running trial
    is recorded as failed at the next safe point, and it starts no other. A worker already
    stopping (the parent's SIGTERM came first) is not signalled again, which would make it leave
    at once and say "interrupted again" after a single Ctrl-C."""
    while os.getppid() == parent:
        time.sleep(1.0)
    if not interrupts.stop_requested():
        os.kill(os.getpid(), signal.SIGTERM)


def shared(data: FashionMNIST) -> FashionMNIST | None:
    """The data moved into shared memory for the workers, or None where shared memory has no
    room for it (a container's 64 MB /dev/shm, say): each worker then loads its own copy."""
    tensors = (data.train_x, data.train_y, data.test_x, data.test_y)
    needed = sum(t.untyped_storage().nbytes() for t in tensors)
    try:
        room = shutil.disk_usage(SHARED_MEMORY).free
    except OSError:
        return None
    if room < 2 * needed:  # leave as much again for everything else that uses it
        return None
    for tensor in tensors:
        tensor.share_memory_()
    return data


def _worker_main(request: RunRequest, worker: int, events, data: FashionMNIST | None) -> None:
    """Entry point of a worker process: run the loop, report through the event queue. `data` is
    the parent's, in shared memory (None: this worker loads it)."""
    from vaesweep.run.progress import QueueProgress

    quiet_optuna()
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        with graceful_interrupts(worker=True), storage_errors(request.storage_url, during=True):
            data = data if data is not None else load_fashion_mnist(request.data_dir)
            outcome = work(request, data, QueueProgress(events, worker), worker)
        events.put((worker, WorkerDone(outcome)))
    except KeyboardInterrupt:  # the parent's SIGTERM: the running trial is recorded as failed
        events.put((worker, WorkerInterrupted()))
    except VaesweepError as err:
        events.put((worker, WorkerFailed(str(err))))
    except Exception as err:  # reported by the parent as one line
        events.put((worker, WorkerFailed(f"worker {worker} failed: {first_line(err)}")))


def run_workers(
    request: RunRequest, data: FashionMNIST, jobs: int, progress: Progress
) -> WorkerOutcome:
    """Start `jobs` worker processes; relay their events to the live progress."""
    context = multiprocessing.get_context("spawn")  # no forking of a process that runs torch
    interrupts.start_resource_tracker()
    events = context.Queue()
    data_for_workers = shared(data)
    workers = [
        context.Process(
            target=_worker_main, args=(request, w, events, data_for_workers), daemon=True
        )
        for w in range(jobs)
    ]
    for process in workers:
        process.start()
        assert process.pid is not None  # set by start()
        interrupts.children.append(process.pid)
    try:
        outcome, interrupted, errors = _relay(workers, events, progress)
    except KeyboardInterrupt:
        # Ask every worker to stop at its next safe point: each records its running trial as
        # failed, then exits. Keep draining their events meanwhile: a worker exits only once
        # everything it queued has reached this process.
        for process in workers:
            if process.is_alive():
                process.terminate()
        _relay(workers, events, progress)
        raise
    finally:
        interrupts.children.clear()
    if interrupted:
        raise KeyboardInterrupt("SIGTERM")
    outcome.errors += errors  # the run decides: the others may have finished the study
    return outcome


def _relay(workers: list, events, progress: Progress) -> tuple[WorkerOutcome, bool, list[str]]:
    """Pass the workers' events to the progress view until every worker has stopped; then
    (their summed outcome, whether any was interrupted, their errors)."""
    outcome, errors, running = WorkerOutcome(), [], set(range(len(workers)))
    interrupted = False
    while running:
        try:
            worker, event = events.get(timeout=1.0)
        except queue.Empty:
            multiprocessing.active_children()  # reaps workers that have ended: no zombies
            for w in list(running):
                if workers[w].exitcode not in (None, 0):
                    errors.append(f"worker {w} exited with code {workers[w].exitcode}")
                    running.discard(w)
            continue
        match event:
            case WorkerDone(result):
                outcome.merge(result)
                running.discard(worker)
            case WorkerFailed(message):
                errors.append(message)
                running.discard(worker)
            case WorkerInterrupted():
                interrupted = True
                running.discard(worker)
            case _:
                event.show(progress)
    for process in workers:
        process.join()
    return outcome, interrupted, errors
