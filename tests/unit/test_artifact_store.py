"""The artifact store as a second home for trial folders: each file uploaded and linked from the
trial by Optuna, fetched back whole into a reader's results folder, and every failure one line."""

from __future__ import annotations

import socket
import time

import optuna
import pytest

from vaesweep.errors import VaesweepError
from vaesweep.store import artifact_store
from vaesweep.store.artifact_store import (
    FOLDER_FILES,
    ArtifactStoreFailed,
    TrialFiles,
    open_store,
    parse,
    upload_folder,
)
from vaesweep.store.layout import HISTORY_FILE, LATENTS_FILE, WEIGHTS_FILE
from vaesweep.store.waiting import environment_failure


def _folder(path, files=FOLDER_FILES):
    path.mkdir(parents=True)
    for i, name in enumerate(files):
        (path / name).write_bytes(f"{name} {i}".encode() * 100)
    return path


def _trial():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    return storage, study, study.ask()


@pytest.mark.parametrize(
    ("where", "place"),
    [
        ("s3://my-bucket", ("my-bucket", "")),
        ("s3://my-bucket/team/study/", ("my-bucket", "team/study")),
        ("artifacts", (None, None)),
    ],
)
def test_places_parse(where, place):
    parsed = parse(where)
    if place[0] is None:
        assert str(parsed.folder) == where and not parsed.bucket
    else:
        assert (parsed.bucket, parsed.prefix) == place and parsed.folder is None


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("", "--artifacts is empty"),
        ("gs://bucket/x", "not a folder or s3://BUCKET/PREFIX"),
        ("s3://Upper_Case/x", "'Upper_Case' is not an S3 bucket name"),
        ("s3:///x", "'' is not an S3 bucket name"),
        ("s3://a..b/x", "is not an S3 bucket name"),
    ],
)
def test_bad_places_are_one_line(where, said):
    with pytest.raises(VaesweepError, match=said):
        parse(where)


def test_a_folder_store_to_read_must_exist(tmp_path):
    with pytest.raises(VaesweepError, match="'.*missing' does not exist"):
        open_store(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(VaesweepError, match="is not a folder"):
        open_store(str(tmp_path / "file"))
    with pytest.raises(VaesweepError, match="is a file, not a folder"):
        open_store(str(tmp_path / "file"), writing=True)
    open_store(str(tmp_path / "to-be-made"), writing=True)  # made later, by the run
    assert not (tmp_path / "to-be-made").exists()


def test_a_folder_goes_to_the_store_and_comes_back_whole(tmp_path):
    (tmp_path / "store").mkdir()
    store = open_store(str(tmp_path / "store"))
    storage, study, trial = _trial()
    original = _folder(tmp_path / "machine-a" / "trial-0000")
    upload_folder(store, str(tmp_path / "store"), trial, original)
    study.tell(trial, 1.0)

    [frozen] = study.get_trials()
    fetched = tmp_path / "machine-b" / "warmup" / "trial-0000"
    assert TrialFiles(store, storage).fetch(frozen, fetched) is None
    assert sorted(p.name for p in fetched.iterdir()) == sorted(FOLDER_FILES)
    for name in FOLDER_FILES:
        assert (fetched / name).read_bytes() == (original / name).read_bytes()
    assert [p.name for p in fetched.parent.iterdir()] == ["trial-0000"]  # no staging left


def test_a_folder_missing_a_needed_file_is_not_fetched(tmp_path):
    (tmp_path / "store").mkdir()
    store = open_store(str(tmp_path / "store"))
    storage, study, trial = _trial()
    without = [n for n in FOLDER_FILES if n != WEIGHTS_FILE]
    upload_folder(store, "store", trial, _folder(tmp_path / "a", without))
    study.tell(trial, 1.0)
    fetched = tmp_path / "b" / "trial-0000"
    problem = TrialFiles(store, storage).fetch(study.get_trials()[0], fetched)
    assert problem is not None and problem.endswith(f"the artifact store lacks {WEIGHTS_FILE}")
    assert not fetched.exists()


def test_a_file_gone_from_the_store_leaves_no_half_folder(tmp_path):
    (tmp_path / "store").mkdir()
    store = open_store(str(tmp_path / "store"))
    storage, study, trial = _trial()
    upload_folder(store, "store", trial, _folder(tmp_path / "a"))
    study.tell(trial, 1.0)
    [frozen] = study.get_trials()
    metas = optuna.artifacts.get_all_artifact_meta(frozen, storage=storage)
    store.remove(next(m.artifact_id for m in metas if m.filename == HISTORY_FILE))
    fetched = tmp_path / "b" / "trial-0000"
    problem = TrialFiles(store, storage).fetch(frozen, fetched)
    assert (
        problem == "its folder could not be fetched from the artifact store: a file is gone from it"
    )
    assert not fetched.exists() and list(fetched.parent.iterdir()) == []


def test_only_a_folders_own_names_are_fetched(tmp_path):
    """A name another tool linked to the trial (or a path in it) is never written."""
    (tmp_path / "store").mkdir()
    store = open_store(str(tmp_path / "store"))
    storage, study, trial = _trial()
    upload_folder(
        store,
        "store",
        trial,
        _folder(tmp_path / "a", [n for n in FOLDER_FILES if n != LATENTS_FILE]),
    )
    other = tmp_path / "notes.txt"
    other.write_text("someone else's")
    optuna.artifacts.upload_artifact(
        artifact_store=store, file_path=str(other), study_or_trial=trial
    )
    study.tell(trial, 1.0)
    fetched = tmp_path / "b" / "trial-0000"
    assert TrialFiles(store, storage).fetch(study.get_trials()[0], fetched) is None
    assert "notes.txt" not in {p.name for p in fetched.iterdir()}


def test_a_failing_store_fails_the_trial_with_its_reason_not_as_the_disk(tmp_path):
    """The work loop stops a run for a failing disk or storage (an OSError behind the error);
    a failing artifact store is the trial's own failure, said with the folder kept."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    store = open_store(str(store_dir))
    store_dir.rmdir()
    store_dir.write_text("now a file")  # every write into it fails
    _, _, trial = _trial()
    folder = _folder(tmp_path / "a" / "trial-0000")
    with pytest.raises(ArtifactStoreFailed) as failed:
        upload_folder(store, str(store_dir), trial, folder)
    message = str(failed.value)
    assert message.startswith(
        f"artifact store '{store_dir}' failed while storing trial 0: Not a directory"
    )
    assert f"its folder kept at {folder}" in message
    assert environment_failure(failed.value) is None
    assert folder.is_dir()


def test_a_trial_its_run_kept_no_files_of_is_said_so(tmp_path):
    (tmp_path / "store").mkdir()
    storage, study, trial = _trial()
    study.tell(trial, 1.0)
    fetched = tmp_path / "b" / "trial-0000"
    problem = TrialFiles(open_store(str(tmp_path / "store")), storage).fetch(
        study.get_trials()[0], fetched
    )
    assert (
        problem == f"trial folder {fetched} is missing, and its run kept none in an artifact store"
    )


class _Slow:
    """A store whose writes take a while (a congested network)."""

    def __init__(self, store, seconds: float):
        self.store, self.seconds = store, seconds

    def open_reader(self, artifact_id):
        return self.store.open_reader(artifact_id)

    def write(self, artifact_id, content_body):
        time.sleep(self.seconds)
        self.store.write(artifact_id, content_body)

    def remove(self, artifact_id):
        self.store.remove(artifact_id)


def test_a_slow_store_is_said_not_waited_for_silently(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(artifact_store, "SAY_AFTER", 0.1)
    (tmp_path / "store").mkdir()
    quick = open_store(str(tmp_path / "store"))
    _, _, trial = _trial()
    upload_folder(_Slow(quick, 0.05), "store", trial, _folder(tmp_path / "a"))  # 5 files: 0.25 s
    assert (
        capsys.readouterr().err
        == "artifact store 'store' is slow to take trial 0's folder; waiting\n"
    )
    upload_folder(quick, "store", trial, _folder(tmp_path / "b"))
    assert capsys.readouterr().err == ""  # quick: nothing said


def test_an_s3_endpoint_that_never_answers_is_said_then_one_line(tmp_path, monkeypatch, capsys):
    """A port that takes connections and never answers (a hung proxy): the check says it is
    waiting, then gives up in one line, within its bound."""
    for name, value in (("SAY_AFTER", 0.1), ("CONNECT_SECONDS", 0.3), ("CHECK_READ_SECONDS", 0.3)):
        monkeypatch.setattr(artifact_store, name, value)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections queue; nobody reads or answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        started = time.monotonic()
        with pytest.raises(VaesweepError) as refused:
            open_store("s3://bucket-one/x", writing=True)
        took = time.monotonic() - started
    assert str(refused.value) == (
        f"artifact store 's3://bucket-one/x': the S3 endpoint {endpoint} did not answer in time"
    )
    assert capsys.readouterr().err == (
        f"artifact store 's3://bucket-one/x': waiting for {endpoint} (up to 1.2 s)\n"
    )
    assert took < 5
