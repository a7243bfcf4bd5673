"""Two spawned workers given the parent's data in shared memory, or loading their own: when each
is ready and its PSS. Run: .venv/bin/python benchmarks/shared_data.py (see BENCHMARKS.md)."""

import multiprocessing
import time
from pathlib import Path

from vaesweep.run.workers import shared
from vaesweep.training.data import load_fashion_mnist


def child(data, ready, started: float) -> None:
    if data is None:
        data = load_fashion_mnist()
    float(data.train_x.sum())  # touch every image
    rollup = Path("/proc/self/smaps_rollup").read_text().splitlines()
    pss_kb = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    ready.put((time.time() - started, pss_kb / 1024))


if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    for mode in ("own", "shared", "own", "shared"):
        data = load_fashion_mnist()
        given = shared(data) if mode == "shared" else None
        ready, started = context.Queue(), time.time()
        workers = [context.Process(target=child, args=(given, ready, started)) for _ in range(2)]
        for worker in workers:
            worker.start()
        out = [ready.get() for _ in workers]
        for worker in workers:
            worker.join()
        times = ", ".join(f"{seconds:.2f} s" for seconds, _ in out)
        pss = ", ".join(f"{mb:.0f} MB" for _, mb in out)
        print(f"{mode}: ready after {times}; PSS {pss}")
