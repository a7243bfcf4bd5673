"""A throwaway PostgreSQL server on loopback, for the tests of shared storage and the storage
benchmark: its own cluster in a temporary folder, trust authentication, removed afterwards."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _server_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root: drop to the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Server:
    url: str
    pg_ctl: str
    data: Path
    options: str
    log: Path

    def stop(self) -> None:
        _ctl(self, "-m", "fast", "stop")

    def start(self) -> None:
        _ctl(self, "-o", self.options, "-l", str(self.log), "-w", "start")


def _ctl(server: Server, *args: str) -> None:
    command = _as_postgres([server.pg_ctl, "-D", str(server.data), *args])
    subprocess.run(command, check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def throwaway_postgres(max_connections: int = 100) -> Iterator[Server]:
    """A running server with an empty database `vaesweep` (FileNotFoundError where PostgreSQL
    is not installed); 100 connections at most, PostgreSQL's default."""
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise FileNotFoundError("no PostgreSQL server here (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="vaesweep-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    data = root / "data"
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-U", "vaesweep", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections={max_connections}"
    )
    subprocess.run(
        _as_postgres(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "vaesweep",
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE vaesweep",
            ],
            check=True,
            capture_output=True,
        )
        url = f"postgresql://vaesweep@127.0.0.1:{port}/vaesweep"
        yield Server(url, pg_ctl, data, options, root / "log")
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)
