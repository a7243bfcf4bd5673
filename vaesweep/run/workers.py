"""Worker processes sharing a study on this machine: started by spawning, each runs the work
loop; their events reach the parent's progress view through a pipe of their own; they end with
their parent.
The parent's one load of Fashion-MNIST reaches every worker in shared memory, so a run reads and
decodes the files once, and N workers hold one copy of the images, not N."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import threading
import time
from typing import NamedTuple

from vaesweep import interrupts
from vaesweep.errors import VaesweepError, first_line
from vaesweep.interrupts import graceful_interrupts, skip_final_collection
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


class EventPipe:
    """A worker's end of its own pipe to the parent, `put` from any of its threads. One pipe a
    worker, not one queue for all: a shared queue's writers take a lock across processes, and a
    worker killed while holding it (kill -9 mid-put) would block every other worker's events,
    and their exit, for ever."""

    def __init__(self, connection: multiprocessing.connection.Connection):
        self.connection, self.lock = connection, threading.Lock()

    def put(self, event: tuple) -> None:
        with self.lock, contextlib.suppress(OSError):  # the parent is gone: see _end_with_parent
            self.connection.send(event)


def _worker_main(request: RunRequest, worker: int, connection, data: FashionMNIST | None) -> None:
    """Entry point of a worker process: run the loop, report through its pipe. `data` is the
    parent's, in shared memory (None: this worker loads it)."""
    from vaesweep.run.progress import PipeProgress

    pipe = EventPipe(connection)
    quiet_optuna()
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        with graceful_interrupts(worker=True), storage_errors(request.storage_url, during=True):
            data = data if data is not None else load_fashion_mnist(request.data_dir)
            outcome = work(request, data, PipeProgress(pipe, worker), worker)
        pipe.put((worker, WorkerDone(outcome)))
    except KeyboardInterrupt:  # the parent's SIGTERM: the running trial is recorded as failed
        pipe.put((worker, WorkerInterrupted()))
    except VaesweepError as err:
        pipe.put((worker, WorkerFailed(str(err))))
    except Exception as err:  # reported by the parent as one line
        pipe.put((worker, WorkerFailed(f"worker {worker} failed: {first_line(err)}")))
    finally:
        skip_final_collection()  # the parent waits for this process to end


def run_workers(
    request: RunRequest, data: FashionMNIST, jobs: int, progress: Progress
) -> WorkerOutcome:
    """Start `jobs` worker processes; relay their events to the live progress."""
    context = multiprocessing.get_context("spawn")  # no forking of a process that runs torch
    interrupts.start_resource_tracker()
    pipes = [context.Pipe(duplex=False) for _ in range(jobs)]
    readers = [reader for reader, _ in pipes]
    data_for_workers = shared(data)
    workers = [
        context.Process(
            target=_worker_main, args=(request, w, writer, data_for_workers), daemon=True
        )
        for w, (_, writer) in enumerate(pipes)
    ]
    for process in workers:
        process.start()
        assert process.pid is not None  # set by start()
        interrupts.children.append(process.pid)
    for _, writer in pipes:
        writer.close()  # the workers hold theirs: a reader then sees its worker's end as EOF
    try:
        outcome, interrupted, errors = _relay(workers, readers, progress)
    except KeyboardInterrupt:
        # Ask every worker to stop at its next safe point: each records its running trial as
        # failed, then exits. Keep draining their events meanwhile: a worker exits only once
        # everything it queued has reached this process.
        for process in workers:
            if process.is_alive():
                process.terminate()
        _relay(workers, readers, progress)
        raise
    finally:
        interrupts.children.clear()
    if interrupted:
        raise KeyboardInterrupt("SIGTERM")
    outcome.errors += errors  # the run decides: the others may have finished the study
    return outcome


def _relay(
    workers: list, readers: list[multiprocessing.connection.Connection], progress: Progress
) -> tuple[WorkerOutcome, bool, list[str]]:
    """Pass the workers' events to the progress view until every worker has stopped; then
    (their summed outcome, whether any was interrupted, their errors)."""
    outcome, errors, running = WorkerOutcome(), [], set(range(len(workers)))
    interrupted = False
    while running:
        ready = multiprocessing.connection.wait([readers[w] for w in running], timeout=1.0)
        if not ready:
            multiprocessing.active_children()  # reaps workers that have ended: no zombies
            continue
        for w in [w for w in sorted(running) if readers[w] in ready]:
            try:
                worker, event = readers[w].recv()
            except (EOFError, OSError):  # it ended without a last word: killed, say
                workers[w].join()
                errors.append(f"worker {w} exited with code {workers[w].exitcode}")
                running.discard(w)
                continue
            interrupted |= _show(event, worker, outcome, errors, running, progress)
    for process in workers:
        process.join()
    return outcome, interrupted, errors


def _show(event, worker: int, outcome, errors: list[str], running: set, progress) -> bool:
    """One event of a worker: its last word (done, failed, interrupted: it has stopped) or
    progress to show; whether it says the worker was interrupted."""
    match event:
        case WorkerDone(result):
            outcome.merge(result)
        case WorkerFailed(message):
            errors.append(message)
        case WorkerInterrupted():
            running.discard(worker)
            return True
        case _:
            event.show(progress)
            return False
    running.discard(worker)
    return False
