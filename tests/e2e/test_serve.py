"""`vaesweep serve-storage`: what it refuses, in one line each, before it listens."""

from __future__ import annotations

import socket

import pytest

from helpers import vaesweep


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["journal:///s.log"], "the proxy serves an SQLite or PostgreSQL storage"),
        (["grpc://127.0.0.1:13000"], "the proxy serves an SQLite or PostgreSQL storage"),
        (["nonsense"], "the proxy serves an SQLite or PostgreSQL storage"),
        (["sqlite://"], "in-memory SQLite database"),
        (["sqlite:///{tmp}/no/such/s.db"], "cannot open storage"),
        (["sqlite:///{tmp}/s.db", "--host", "203.0.113.7"], "cannot listen on '203.0.113.7'"),
        (["sqlite:///{tmp}/s.db", "--host", "no.such.host.invalid"], "cannot listen on"),
    ],
)
def test_what_serve_storage_refuses_is_one_line(args, message, tmp_path):
    outcome = vaesweep("serve-storage", *(a.replace("{tmp}", str(tmp_path)) for a in args))
    lines = outcome.output.strip().splitlines()
    assert outcome.exit_code == 1 and len(lines) == 1, outcome.output
    assert lines[0].startswith("Error: serve-storage") or lines[0].startswith("Error: ")
    assert message in lines[0], lines[0]


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = vaesweep("serve-storage", f"sqlite:///{tmp_path / 's.db'}", "--port", str(port))
    assert outcome.exit_code == 1, outcome.output
    assert outcome.output == (
        f"Error: serve-storage: cannot listen on '127.0.0.1' port {port}: Address already in use\n"
    )
