"""An S3 server on loopback for the artifact store's tests: moto's server mode, with its
credential checks on (a wrong key is refused, as AWS refuses it)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import boto3
from postgres_server import free_port

BUCKET = "vaesweep-trials"
# moto answers this many calls before it checks credentials: the three that make the user.
_SETUP_CALLS = "3"
_ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass
class S3Server:
    endpoint: str
    key: str
    secret: str
    process: subprocess.Popen

    def env(self, **changes: str) -> dict[str, str]:
        """The environment a vaesweep process reads S3's settings from."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            **changes,
        }

    def client(self):
        return boto3.client("s3", **_settings(self.endpoint, self.key, self.secret))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _settings(endpoint: str, key: str, secret: str) -> dict[str, str]:
    return {
        "endpoint_url": endpoint,
        "aws_access_key_id": key,
        "aws_secret_access_key": secret,
        "region_name": "us-east-1",
    }


@contextlib.contextmanager
def s3_server(bucket: str = BUCKET) -> Iterator[S3Server]:
    """A fresh server with one user allowed all of S3, and `bucket` made."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": _SETUP_CALLS}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        iam = boto3.client("iam", **_settings(endpoint, "setup", "setup"))
        _wait_until_up(iam)
        iam.create_user(UserName="researcher")
        iam.put_user_policy(
            UserName="researcher", PolicyName="s3", PolicyDocument=json.dumps(_ALLOW_S3)
        )
        made = iam.create_access_key(UserName="researcher")["AccessKey"]
        server = S3Server(endpoint, made["AccessKeyId"], made["SecretAccessKey"], process)
        server.client().create_bucket(Bucket=bucket)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_up(iam, seconds: float = 30) -> None:
    """Until moto listens: its port is polled, since every call it answers counts against the
    calls it takes before checking credentials."""
    address = urlparse(iam.meta.endpoint_url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection((address.hostname, address.port), timeout=1),
        ):
            return
        time.sleep(0.1)
    raise TimeoutError("moto's S3 server did not start")
