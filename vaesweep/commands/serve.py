"""`vaesweep serve-storage`: one process holds the database connections and serves the storage to
many workers through Optuna's gRPC storage proxy (`--storage grpc://HOST:PORT` on each)."""

from __future__ import annotations

import socket
import threading
import time

import click

from vaesweep.commands.common import quiet_optuna
from vaesweep.errors import VaesweepError, shown, visible

LISTEN_SECONDS = 30  # the proxy is listening within this, or something is wrong and is said


@click.command("serve-storage")
@click.argument("url")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 for every interface (the proxy has no authentication "
    "or encryption: a trusted network only).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=13000, show_default=True)
def serve_storage(url, host, port) -> None:
    """Serve the SQLite or PostgreSQL storage URL to workers given --storage grpc://HOST:PORT,
    through Optuna's gRPC storage proxy, until Ctrl-C."""
    import optuna

    from vaesweep.store.storage import open_storage, redact

    quiet_optuna()
    if not url.startswith(("sqlite", "postgresql")):
        raise VaesweepError(
            f"serve-storage {shown(redact(url))}: the proxy serves an SQLite or PostgreSQL "
            "storage (Optuna's proxy does not serve a journal or another proxy)"
        )
    storage = open_storage(url)
    _check_free(host, port)
    address, served = visible(f"grpc://{host}:{port}"), visible(redact(url))
    click.echo(f"starting the storage proxy for {served} at {address}")
    said = f"serving storage {served} at {address}: give workers --storage {address}"
    threading.Thread(target=_say_when_listening, args=(host, port, said), daemon=True).start()
    optuna.storages.run_grpc_proxy_server(
        optuna.storages.get_storage(storage), host=host, port=port
    )


def _say_when_listening(host: str, port: int, said: str) -> None:
    """Say `said` once the proxy accepts connections (Optuna's server says nothing we show), so
    that a line saying it serves is never printed before it does."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    deadline = time.monotonic() + LISTEN_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection((target, port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
            continue
        click.echo(said + "; Ctrl-C stops it")
        return
    click.echo(f"the storage proxy did not start listening within {LISTEN_SECONDS} s", err=True)


def _check_free(host: str, port: int) -> None:
    """Refuse an address this machine cannot listen on (in use, or not its own) in one line;
    gRPC's own refusal is a log line and a bare RuntimeError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.bind(infos[0][4])
    except OSError as err:
        raise VaesweepError(
            f"serve-storage: cannot listen on {shown(host)} port {port}: {err.strerror or err}"
        ) from None
