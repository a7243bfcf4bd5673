"""Database connections and storage calls per second with many simulated workers, straight to
PostgreSQL, through `vaesweep serve-storage` (Optuna's gRPC proxy), on loopback, and to a journal
file (no server: every worker appends under Optuna's file lock):

    python benchmarks/storage_load.py --workers 50 --seconds 20 [--storages direct,proxy,journal]

A throwaway PostgreSQL cluster is started (tests/postgres_server.py), with room for every
direct connection (PostgreSQL's default of 100 is fewer than 50 direct workers hold). Each
worker is a process that opens the storage as `vaesweep run` does (`open_storage`; with a
grpc:// URL, the proxy's client) and, once every worker is ready, loops for the given seconds
without training: ask, one user attribute (as an epoch's progress), one heartbeat, tell, so four
storage calls a trial. The database's connections are counted in pg_stat_activity twice a
second (this script's own excluded); the largest count is reported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CALLS_PER_TRIAL = 4
STUDY = "load"


def worker(url: str, folder: Path, index: int, seconds: float) -> None:
    import warnings

    import optuna

    from vaesweep.store.storage import open_storage, quiet_optuna

    quiet_optuna()
    warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)  # as run's loop does
    storage = open_storage(url)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    (folder / f"ready-{index}").touch()
    while not (folder / "go").exists():
        time.sleep(0.05)
    trials, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        trial = study.ask()
        trial.set_user_attr("epochs_done", 1)
        storage.set_trial_system_attr(trial._trial_id, "vaesweep_heartbeat", time.time())
        study.tell(trial, 1.0)
        trials += 1
    print(trials)


def connections(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        )
        return db.execute(query, ("vaesweep",)).fetchone()[0]


def measure(url: str, database: str, workers: int, seconds: float) -> tuple[float, int]:
    """(storage calls a second in all, most database connections seen)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        processes = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", url, str(folder), str(i), str(seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(workers)
        ]
        while len(list(folder.glob("ready-*"))) < workers:
            if any(p.poll() not in (None, 0) for p in processes):
                raise SystemExit("a worker failed to start")
            time.sleep(0.2)
        (folder / "go").touch()
        most, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            most = max(most, connections(database))
            time.sleep(0.5)
        trials = sum(int(p.communicate()[0]) for p in processes)
    return trials * CALLS_PER_TRIAL / seconds, most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--storages", default="direct,proxy,journal")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        url, folder, index, seconds = options.worker
        worker(url, Path(folder), int(index), float(seconds))
        return

    import optuna
    from postgres_server import throwaway_postgres

    from vaesweep.store.storage import open_storage, quiet_optuna

    quiet_optuna()
    wanted = options.storages.split(",")
    # Room for every direct connection: each worker holds about three (its pool and its beat).
    with throwaway_postgres(max_connections=4 * options.workers + 20) as server:
        optuna.create_study(study_name=STUDY, storage=open_storage(server.url))
        if "direct" in wanted:
            rate, most = measure(server.url, server.url, options.workers, options.seconds)
            print(f"direct: {options.workers} workers, {rate:,.0f} calls/s, {most} connections")
        if "proxy" in wanted:
            rate, most = _through_proxy(server.url, options.workers, options.seconds)
            print(f"proxy: {options.workers} workers, {rate:,.0f} calls/s, {most} connections")
        if "journal" in wanted:
            with tempfile.TemporaryDirectory() as scratch:
                journal = f"journal:///{Path(scratch) / 'load.log'}"
                optuna.create_study(study_name=STUDY, storage=open_storage(journal))
                rate, _ = measure(journal, server.url, options.workers, options.seconds)
            print(f"journal: {options.workers} workers, {rate:,.0f} calls/s, no server")


def _through_proxy(database: str, workers: int, seconds: float) -> tuple[float, int]:
    from postgres_server import free_port

    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "vaesweep", "serve-storage", database, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        while not proxy.stdout.readline().startswith("serving"):  # until it listens
            pass
        return measure(f"grpc://127.0.0.1:{port}", database, workers, seconds)
    finally:
        proxy.terminate()
        proxy.wait()


if __name__ == "__main__":
    main()
