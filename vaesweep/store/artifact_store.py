"""A second home for trial folders, for machines that share no disk: Optuna's artifact store, a
folder (`FileSystemArtifactStore`) or an S3 bucket (`Boto3ArtifactStore`).

A run uploads each file of a trial's folder, linked from the trial's record by Optuna
(`upload_artifact`), before the trial is told complete; a reader fetches a folder it lacks into
its own results folder, which is then the local cache. Only the names a trial folder holds are
fetched, never a path read from the storage. S3 takes boto3's usual settings: credentials and
`AWS_ENDPOINT_URL` from the environment or `~/.aws`; a credential is named, never shown.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from vaesweep.errors import VaesweepError, first_line, shown, visible
from vaesweep.store.layout import (
    CONFIG_FILE,
    HISTORY_FILE,
    LATENTS_FILE,
    TRIAL_FILE,
    WEIGHTS_FILE,
    check_writable,
    make_folder,
    staging_folder,
)

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from vaesweep.store.optuna_private import ArtifactStore

S3 = "s3://"
FOLDER_FILES = (CONFIG_FILE, TRIAL_FILE, HISTORY_FILE, WEIGHTS_FILE, LATENTS_FILE)
NEEDED_FILES = (CONFIG_FILE, TRIAL_FILE, HISTORY_FILE, WEIGHTS_FILE)  # latents: older folders

# S3's rules for a bucket's name (3-63 lowercase letters, digits, dots and hyphens).
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# S3 calls are tried this many times by botocore (its "standard" mode; Optuna's Backoff would log
# each retry with a traceback), then the trial fails; the check before a run tries fewer, sooner.
ATTEMPTS, CHECK_ATTEMPTS = 3, 2
CONNECT_SECONDS = 3
READ_SECONDS, CHECK_READ_SECONDS = 30, 5
# A call to a store that takes longer than this is said on stderr: no silent wait.
SAY_AFTER = 2.0


class ArtifactStoreFailed(VaesweepError):
    """The artifact store failed while a run stored a trial's folder: the trial fails with this
    reason and its local folder is kept."""


@dataclass(frozen=True)
class Place:
    """Where an artifact store is: a local folder, or an S3 bucket and key prefix."""

    text: str  # as the user wrote it
    folder: Path | None = None
    bucket: str = ""
    prefix: str = ""

    def __str__(self) -> str:
        return shown(self.text)


def parse(where: str) -> Place:
    """`--artifacts`: a folder, or s3://BUCKET or s3://BUCKET/PREFIX."""
    if not where.strip():
        raise VaesweepError("--artifacts is empty: give a folder or s3://BUCKET/PREFIX")
    if not where.startswith(S3):
        if "://" in where:
            raise VaesweepError(
                f"artifact store {shown(where)}: not a folder or s3://BUCKET/PREFIX (the "
                "artifact stores vaesweep opens)"
            )
        return Place(where, folder=Path(where))
    bucket, _, prefix = where.removeprefix(S3).partition("/")
    if not BUCKET.fullmatch(bucket) or ".." in bucket:
        raise VaesweepError(
            f"artifact store {shown(where)}: {shown(bucket)} is not an S3 bucket name (3-63 "
            "lowercase letters, digits, '.' and '-')"
        )
    return Place(where, bucket=bucket, prefix=prefix.strip("/"))


def open_store(where: str, writing: bool = False) -> ArtifactStore:
    """The artifact store at `where`, checked: it exists and answers, and, `writing`, takes a
    file. Each failure is one line; nothing is made here (a missing folder is made later, by
    `make_store_folder`)."""
    from optuna.artifacts import FileSystemArtifactStore

    place = parse(where)
    if place.folder is not None:
        if writing:
            check_writable(place.folder, "artifact store")
        elif not place.folder.is_dir():
            what = "is not a folder" if place.folder.exists() else "does not exist"
            raise VaesweepError(f"artifact store {place} {what}")
        return FileSystemArtifactStore(place.folder)
    return _s3_store(place, writing)


def make_store_folder(where: str | None) -> None:
    """A folder store, made once a run's checks have passed."""
    place = parse(where) if where else None
    if place is not None and place.folder is not None:
        make_folder(place.folder, "artifact store")


class _Prefixed:
    """An artifact store whose keys all start with a prefix: one bucket, several studies' or
    teams' trials (Optuna's Boto3ArtifactStore keys artifacts by their id alone)."""

    def __init__(self, store: ArtifactStore, prefix: str):
        self.store, self.prefix = store, f"{prefix}/" if prefix else ""

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.store.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(self.prefix + artifact_id)


def _s3_store(place: Place, writing: bool) -> ArtifactStore:
    import boto3
    import botocore.config
    import botocore.exceptions
    from optuna.artifacts import Boto3ArtifactStore

    def client(read_seconds: float, attempts: int):
        config = botocore.config.Config(
            connect_timeout=CONNECT_SECONDS,
            read_timeout=read_seconds,
            retries={"total_max_attempts": attempts, "mode": "standard"},
        )
        return boto3.session.Session().client("s3", config=config)

    most = CHECK_ATTEMPTS * (CONNECT_SECONDS + CHECK_READ_SECONDS)
    waiting = f"artifact store {place}: waiting for {visible(_endpoint())} (up to {most} s)"
    try:
        with said_if_slow(waiting):
            checking = client(CHECK_READ_SECONDS, CHECK_ATTEMPTS)
            checking.head_bucket(Bucket=place.bucket)
            if writing:  # a key that refuses writes is refused now, before anything trains
                key = f"{place.prefix}/" * bool(place.prefix) + f".vaesweep-check-{uuid.uuid4()}"
                checking.put_object(Bucket=place.bucket, Key=key, Body=b"")
                checking.delete_object(Bucket=place.bucket, Key=key)
        store = Boto3ArtifactStore(place.bucket, client=client(READ_SECONDS, ATTEMPTS))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        raise VaesweepError(f"artifact store {place}: {s3_problem(err)}") from None
    return _Prefixed(store, place.prefix)


@contextmanager
def said_if_slow(message: str) -> Iterator[None]:
    """`message` on stderr if the block takes longer than SAY_AFTER seconds."""
    timer = threading.Timer(SAY_AFTER, lambda: print(message, file=sys.stderr, flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def s3_problem(err: Exception) -> str:
    """What an S3 failure means, in words: credentials are named by where they came from, never
    shown."""
    import botocore.exceptions as bx

    if isinstance(err, bx.NoCredentialsError | bx.PartialCredentialsError):
        return (
            "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
            "AWS_PROFILE)"
        )
    if isinstance(err, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        return f"cannot reach the S3 endpoint {visible(_endpoint())} (is AWS_ENDPOINT_URL right?)"
    if isinstance(err, bx.ReadTimeoutError):
        return f"the S3 endpoint {visible(_endpoint())} did not answer in time"
    if isinstance(err, bx.ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket"):
            return f"the bucket does not exist at {visible(_endpoint())}"
        if status in (401, 403) or code in _REFUSED:
            return (
                f"the S3 credentials from {_credentials_source()} were refused "
                f"({visible(code or status)}): check them, and that they may read and write "
                "the bucket"
            )
        return f"S3 said {visible(code or status)}"
    return visible(first_line(err))


_REFUSED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken")

# botocore's name for where credentials came from -> what a user would look at.
_SOURCES = {
    "env": "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    "shared-credentials-file": "~/.aws/credentials",
    "config-file": "~/.aws/config",
    "iam-role": "this machine's IAM role",
    "container-role": "this container's role",
}


def _credentials_source() -> str:
    import boto3

    credentials = boto3.session.Session().get_credentials()
    method = getattr(credentials, "method", None)
    return _SOURCES.get(method, f"boto3's {method}") if method else "nowhere"


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


def upload_folder(store: ArtifactStore, where: str, trial: optuna.Trial, folder: Path) -> None:
    """Each file of a trial's folder, into the store and linked from the trial's record; a
    failure is `ArtifactStoreFailed`, raised with no exception chained (it is not the storage's
    or the disk's failure, which stop a run otherwise)."""
    from optuna.artifacts import upload_artifact

    problem = None
    try:
        slow = f"artifact store {parse(where)} is slow to take trial {trial.number}'s folder"
        slow += "; waiting"
        with said_if_slow(slow):
            for name in FOLDER_FILES:
                if (folder / name).is_file():
                    upload_artifact(
                        artifact_store=store, file_path=str(folder / name), study_or_trial=trial
                    )
    except Exception as err:  # a store's failure, whatever its library raises
        problem = _problem(err)
    if problem is not None:
        raise ArtifactStoreFailed(
            f"artifact store {parse(where)} failed while storing trial {trial.number}: "
            f"{problem}; the trial is recorded as failed, its folder kept at {visible(folder)}; "
            "finished trials are kept; re-running resumes once the store works again"
        )


def _problem(err: Exception) -> str:
    if type(err).__module__.startswith("botocore"):
        return s3_problem(err)
    if isinstance(err, OSError):
        return err.strerror or first_line(err)
    return visible(first_line(err))


@dataclass(frozen=True)
class TrialFiles:
    """A reader's way to a trial's folder through the artifact store: `fetch` makes a missing
    folder from the files linked from the trial's record."""

    store: ArtifactStore
    storage: optuna.storages.BaseStorage

    def fetch(self, trial: FrozenTrial, folder: Path) -> str | None:
        """Fetch `trial`'s files into `folder` (written whole, then renamed into place); why it
        could not, or None."""
        from optuna.artifacts import download_artifact, get_all_artifact_meta

        linked = {
            m.filename: m.artifact_id for m in get_all_artifact_meta(trial, storage=self.storage)
        }
        missing = [name for name in NEEDED_FILES if name not in linked]
        if len(missing) == len(NEEDED_FILES):
            return f"trial folder {folder} is missing, and its run kept none in an artifact store"
        if missing:
            return f"trial folder {folder} is missing, and the artifact store lacks " + ", ".join(
                missing
            )
        staging = staging_folder(folder)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            make_folder(staging, "results folder")
            for name in FOLDER_FILES:
                if name in linked:
                    download_artifact(
                        artifact_store=self.store,
                        file_path=str(staging / name),
                        artifact_id=linked[name],
                    )
            os.rename(staging, folder)
        except Exception as err:
            shutil.rmtree(staging, ignore_errors=True)
            if folder.is_dir():  # another reader fetched it meanwhile
                return None
            return f"its folder could not be fetched from the artifact store: {_fetch_problem(err)}"
        return None


def _fetch_problem(err: Exception) -> str:
    from optuna.artifacts.exceptions import ArtifactNotFound

    if isinstance(err, ArtifactNotFound):
        return "a file is gone from it"
    if isinstance(err, VaesweepError):
        return str(err)
    return _problem(err)
