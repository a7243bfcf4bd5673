"""Every bad input to `vaesweep run` is one line and a non-zero exit before anything is trained,
and nothing stored changes; an unforeseen failure is one line too."""

from __future__ import annotations

import shutil

import pytest

from vaesweep.store.storage import redact

from helpers import (
    run_args,
    snapshot,
    vaesweep,
)

BAD_INPUTS = {
    "unknown study": (["--study", "nope"], "unknown study 'nope'"),
    "zero trials": (["--trials", "0"], "'--trials': 0 is not in the range 1<=x<=100000"),
    "negative trials": (["--trials", "-3"], "'--trials': -3 is not in the range 1<=x<=100000"),
    "a million trials": (
        ["--trials", "1000000"],
        "'--trials': 1000000 is not in the range 1<=x<=100000",
    ),
    "non-numeric trials": (["--trials", "many"], "'many' is not a valid integer"),
    "unknown --set key": (
        ["--set", "epoch=2"],
        "--set epoch: unknown setting (did you mean 'epochs'?",
    ),
    "misspelt study": (["--study", "warmpu"], "unknown study 'warmpu' (did you mean 'warmup'?"),
    "bad --set value": (["--set", "epochs=-1"], "--set: 'epochs' must be a positive integer"),
    "searched --set key": (["--set", "warmup_epochs=1"], "'warmup_epochs' is searched"),
    "malformed --set": (["--set", "epochs"], "expected KEY=VALUE"),
    "missing data": (["--data-dir", "{empty}"], "no Fashion-MNIST here"),
    "corrupt data": (["--data-dir", "{corrupt}"], "train-images-idx3-ubyte.gz: cannot read"),
    "test file is the training file": (["--data-dir", "{same}"], "images are also in"),
    "results under a file": (["--results", "{file}"], "cannot be made: "),
    "results is a file": (["--results", "{a-file}"], "is a file, not a folder"),
    "malformed storage": (["--storage", "nonsense"], "is not a URL"),
    "unknown storage dialect": (["--storage", "nosuchdb://x/y"], "cannot open storage"),
    "unreachable storage": (
        ["--storage", "postgresql://user:secret@127.0.0.1:9/db"],
        "cannot open storage",
    ),
    "changed definition": (["--set", "epochs=3"], "was created with different fixed"),
    "bad device": (["--device", "tpu"], "'tpu' is not one of"),
    "zero jobs": (["--jobs", "0"], "'--jobs': must be between 1 and"),
    "too many jobs": (["--jobs", "999"], "'--jobs': must be between 1 and"),
    "non-numeric jobs": (["--jobs", "lots"], "'--jobs': must be a number or auto"),
    "name is a path": (["--name", "a/b"], "is not a plain name"),
    "name is the parent": (["--name", ".."], "is not a plain name"),
    "name too long": (["--name", "n" * 250], "is not a plain name"),
    "name one too long": (["--name", "n" * 101], "... (101 characters) is not a plain name"),
    "results folder name over the system's limit": (
        ["--results", "/tmp/" + "r" * 300],
        "is longer than this system allows (300 bytes; at most 255)",
    ),
    "results path over the system's limit": (
        ["--results", "/tmp/" + "/".join(["r" * 200] * 20)],
        "is too long a path for this system",
    ),
    "negative seed": (["--seed", "-1"], "'--seed': -1 is not in the range 0<=x<=4294967295"),
    "seed too large": (
        ["--seed", "4294967296"],
        "'--seed': 4294967296 is not in the range 0<=x<=4294967295",
    ),
    "in-memory storage": (["--storage", "sqlite://"], "in-memory SQLite database"),
    "in-memory storage file": (["--storage", "sqlite:///:memory:"], "in-memory SQLite database"),
    "infinite learning rate": (["--set", "lr=inf"], "'lr' must be a finite number"),
    "huge latent": (["--set", "latent_dim=100000000"], "'latent_dim' must be at most 1024"),
    "read-only storage": (["--storage", "{readonly}"], "readonly database"),
    "journal with two slashes": (["--storage", "journal://s.log"], "a journal storage is a file"),
    "journal in no folder": (["--storage", "journal:///no/such/s.log"], "there is no folder"),
    "journal that is a folder": (["--storage", "{journal-folder}"], "is a folder, not a file"),
    "damaged journal": (["--storage", "{damaged-journal}"], "is malformed: a line is not JSON"),
    "journal not Optuna's": (["--storage", "{foreign-journal}"], "is not an Optuna journal"),
    "proxy without a port": (["--storage", "grpc://localhost"], "a storage proxy is grpc://"),
    "proxy not listening": (["--storage", "grpc://127.0.0.1:9"], "nothing answers at"),
    "empty artifact store": (["--artifacts", " "], "--artifacts is empty"),
    "artifact store of another kind": (["--artifacts", "gs://b/x"], "not a folder or s3://"),
    "not a bucket name": (["--artifacts", "s3://My_Bucket/x"], "is not an S3 bucket name"),
    "artifact store is a file": (["--artifacts", "{a-file}"], "is a file, not a folder"),
    "artifact store under a file": (["--artifacts", "{file}"], "cannot be made: "),
    "learning rate that must diverge": (["--set", "lr=1e300"], "'lr' must be at most 10.0"),
    # An integer no float holds: it was an OverflowError, not a one-line refusal.
    "400-digit learning rate": (["--set", "lr=1" + "0" * 400], "'lr' must be at most 10.0"),
    "early stop never starts": (
        ["--set", "early_stop_start=1e308"],
        "'early_stop_start' must be at most 100.0",
    ),
    "validation takes every image": (["--set", "val_size=100000"], "leaves 0 of the"),
    "name of the database": (["--name", "vaesweep.db"], "is not a plain name"),
    "a megabyte of value": (["--set", "arch=" + "x" * 10**6], "'arch' must be one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_loses_nothing(
    case, study_with_two_trials, tiny_data_dir, tmp_path
):
    results = study_with_two_trials
    changes, message = BAD_INPUTS[case]
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for source in tiny_data_dir.iterdir():
        (corrupt / source.name).write_bytes(source.read_bytes())
    (corrupt / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    same = shutil.copytree(tiny_data_dir, tmp_path / "same")
    for part in ("images", "labels"):
        shutil.copy(
            same / f"train-{part}-idx{3 if part == 'images' else 1}-ubyte.gz",
            same / f"t10k-{part}-idx{3 if part == 'images' else 1}-ubyte.gz",
        )
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    readonly = f"sqlite:///file:{results / 'vaesweep.db'}?mode=ro&uri=true"
    (tmp_path / "damaged.log").write_text("not JSON\n{}\n")
    (tmp_path / "foreign.log").write_text('{"level": "info"}\n')
    places = {
        "{empty}": str(empty),
        "{corrupt}": str(corrupt),
        "{same}": str(same),
        "{file}": str(a_file / "results"),
        "{a-file}": str(a_file),
        "{readonly}": readonly,
        "{journal-folder}": f"journal:///{empty}",
        "{damaged-journal}": f"journal:///{tmp_path / 'damaged.log'}",
        "{foreign-journal}": f"journal:///{tmp_path / 'foreign.log'}",
    }
    args = run_args(results, tiny_data_dir, 3)
    for i in range(0, len(changes), 2):
        option, value = changes[i], places.get(changes[i + 1], changes[i + 1])
        args += [option, value]  # the last of a repeated option wins; --set appends
        if option in ("--study", "--trials", "--results", "--data-dir"):
            position = args.index(option)
            args[position + 1] = value
            del args[-2:]
    before = snapshot(results)
    outcome = vaesweep(*args)
    assert outcome.exit_code != 0
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1, outcome.output
    assert lines[0].startswith("Error: ") and message in lines[0]
    assert "secret" not in lines[0] and len(lines[0]) < 500
    assert snapshot(results) == before
    # The same mistake on a results folder yet to be made makes nothing (where it is a mistake
    # there too: not a clash with the stored study, the results folder or storage named).
    fresh = tmp_path / "fresh"
    args[args.index("--results") + 1] = str(fresh / "results")
    if not case.startswith(("changed", "results")) and "--storage" not in changes:
        again = vaesweep(*args)
        assert again.exit_code != 0 and not fresh.exists(), again.output


@pytest.mark.parametrize(
    ("search", "extra", "message"),
    [
        (
            'train_subset = { type = "categorical", choices = [10, 100000] }',
            (),
            "'train_subset' (100000) exceeds the 500 training images left after holding out "
            "100 for validation (searched: train_subset = 100000)",
        ),
        (
            'latent_dim = { type = "categorical", choices = [2, 3] }',
            ("--set", "val_size=599"),
            "'val_size' (599) leaves 1 of the 600 training images to train on; at least 5 are "
            "needed (the k-NN metrics' neighbours)",
        ),
    ],
)
def test_searched_values_beyond_the_data_are_refused_before_anything_is_stored(
    search, extra, message, tmp_path, tiny_data_dir
):
    study = tmp_path / "beyond.toml"
    study.write_text(f'description = "d"\nobjectives = ["val_loss"]\n[search]\n{search}\n')
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2, *extra, study=str(study)))
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines() == [f"Error: {message}"]
    assert not (results / "vaesweep.db").exists()  # no empty database left behind


def test_a_malformed_storage_url_writes_no_folder(tmp_path, tiny_data_dir):
    results = tmp_path / "fresh-results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 1, "--storage", "x"))
    assert outcome.exit_code == 1 and "is not a URL" in outcome.output
    assert not results.exists()


def test_a_bad_grace_period_is_one_line(study_with_two_trials, tiny_data_dir, monkeypatch):
    monkeypatch.setenv("VAESWEEP_GRACE_SECONDS", "abc")
    before = snapshot(study_with_two_trials)
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines() == [
        "Error: VAESWEEP_GRACE_SECONDS must be a whole number of seconds from 1 to 86400; got 'abc'"
    ]
    assert snapshot(study_with_two_trials) == before


def test_an_unforeseen_failure_is_one_line_and_debug_shows_it(monkeypatch):
    def broken() -> list[str]:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr("vaesweep.spec.studies.available_studies", broken)
    outcome = vaesweep("studies")
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines() == [
        "Error: unexpected failure: disk on fire (nothing stored was changed; "
        "set VAESWEEP_DEBUG=1 to see where it happened)"
    ]  # outside 'run', nothing is stored at all
    monkeypatch.setenv("VAESWEEP_DEBUG", "1")
    with pytest.raises(RuntimeError, match="disk on fire"):
        vaesweep("studies")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://vs:SECRET@127.0.0.1:5432/db", "postgresql://vs:***@127.0.0.1:5432/db"),
        ("postgresql://vs@127.0.0.1:5432/db?password=SECRET", "db?password=***"),
        ("postgresql:///db?host=/tmp&user=u&password=SECRET", "?host=/tmp&user=u&password=***"),
        ("postgresql+psycopg://u@h/db?sslpassword=SECRET&sslmode=require", "sslpassword=***&"),
        ("mysql://u@h/db?passwd=SECRET", "mysql://u@h/db?passwd=***"),
    ],
)
def test_a_password_is_hidden_wherever_the_url_carries_it(url, shown):
    assert "SECRET" not in redact(url) and shown in redact(url)
    assert redact("sqlite:////tmp/r/vaesweep.db") == "sqlite:////tmp/r/vaesweep.db"


def test_an_unreachable_storage_never_prints_its_password(tmp_path, tiny_data_dir):
    url = "postgresql://vs@127.0.0.1:9/db?password=SECRET&connect_timeout=2"
    outcome = vaesweep(*run_args(tmp_path / "results", tiny_data_dir, 1, "--storage", url))
    assert outcome.exit_code == 1 and "cannot open storage" in outcome.output
    assert "SECRET" not in outcome.output and "password=***" in outcome.output


def test_an_sqlite_url_names_its_file_in_either_form(tmp_path):
    """One reading of an SQLite URL's file, for the empty-file check and the run's plan alike."""
    from vaesweep.store.storage import sqlite_file

    db = tmp_path / "vaesweep.db"
    assert sqlite_file(f"sqlite:///{db}") == db
    assert sqlite_file(f"sqlite:///file:{db}?mode=ro&uri=true") == db
    assert sqlite_file("postgresql://user@127.0.0.1/db") is None


@pytest.mark.parametrize(
    "command", [["report"], ["studies"], ["compare", "warmup", "other"]], ids=lambda c: c[0]
)
def test_every_reading_command_says_a_results_file_is_not_a_folder(command, tmp_path):
    a_file = tmp_path / "results"
    a_file.write_text("")
    outcome = vaesweep(*command, "--results", str(a_file))
    assert outcome.exit_code == 1, outcome.output
    assert outcome.output == f"Error: results folder {a_file} is a file, not a folder\n"
