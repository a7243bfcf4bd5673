"""Machines that share no disk: each keeps its trial folders in an S3 bucket (moto's server on
loopback, with credentials checked), and any machine reads the study from the storage and the
bucket alone. Bad settings are one line before anything trains; a bucket that fails mid-run
fails the trial with its reason and keeps its local folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest
import torch
from s3_server import BUCKET, s3_server

import vaesweep as vaesweep_api
from vaesweep import results
from vaesweep.store.fate import Fate, fate_of
from vaesweep.store.layout import trial_folder
from vaesweep.store.storage import open_storage

from helpers import run_args, vaesweep


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3, monkeypatch):
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


def _machine(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vaesweep", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )


def test_a_machine_that_ran_nothing_reads_every_trial_from_storage_and_bucket(
    s3, s3_env, tmp_path, tiny_data_dir
):
    url, store = f"journal:///{tmp_path / 'study.log'}", f"s3://{BUCKET}/{tmp_path.name}/trials"
    machines = [
        _machine(
            [
                *run_args(tmp_path / f"machine-{i}", tiny_data_dir, 4, "--seed", str(i)),
                *("--storage", url, "--artifacts", store),
            ],
            s3.env(),
        )
        for i in range(2)
    ]
    outputs = [m.communicate(timeout=300)[0] for m in machines]
    assert [m.returncode for m in machines] == [0, 0], outputs
    assert s3.secret not in "".join(outputs)

    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    ours = [k for k in keys if k.startswith(f"{tmp_path.name}/trials/")]
    assert len(ours) == 4 * 5  # five files a trial, under the prefix

    reader = tmp_path / "laptop"
    outcome = vaesweep("report", "--results", str(reader), "--storage", url, "--artifacts", store)
    assert outcome.exit_code == 0, outcome.output
    assert "1 study, 4 trials" in outcome.output and "warning" not in outcome.output
    assert "study warmup: fetching the trial folders missing here from the artifact store\n" in (
        outcome.output
    )
    data = results.load("warmup", url, reader, artifacts=store)
    assert [e.problem for e in data.study.entries] == [None] * 4
    number = data.study.entries[0].trial.number
    model, _ = vaesweep_api.load_model(
        study="warmup", trial=number, storage=url, results=reader, artifacts=store
    )
    ran_on = next(
        folder
        for i in range(2)
        if (folder := trial_folder(tmp_path / f"machine-{i}", "warmup", number)).is_dir()
    )
    original = torch.load(ran_on / "model.pt")
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("wrong secret", "the S3 credentials from the environment (AWS_ACCESS_KEY_ID, "),
        ("no credentials", "no S3 credentials found: set AWS_ACCESS_KEY_ID and"),
        ("missing bucket", "the bucket does not exist at http://127.0.0.1:"),
        ("endpoint not listening", "cannot reach the S3 endpoint http://127.0.0.1:9 "),
    ],
)
def test_bad_s3_settings_are_one_line_before_anything_is_made(
    case, said, s3_env, monkeypatch, tmp_path, tiny_data_dir
):
    store = f"s3://{'no-such-bucket' if case == 'missing bucket' else BUCKET}/x"
    if case == "wrong secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    if case == "no credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if case == "endpoint not listening":
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    url = f"journal:///{tmp_path / 'study.log'}"
    ran = vaesweep(
        *run_args(tmp_path / "results", tiny_data_dir, 2), "--storage", url, "--artifacts", store
    )
    assert ran.exit_code == 1
    assert ran.output.startswith(f"Error: artifact store '{store}': {said}"), ran.output
    assert len(ran.output.splitlines()) == 1 and s3_env.secret not in ran.output
    assert not (tmp_path / "results").exists() and not (tmp_path / "study.log").exists()
    report = vaesweep(
        "report", "--results", str(tmp_path / "r"), "--storage", url, "--artifacts", store
    )
    assert report.exit_code == 1 and report.output.startswith(
        f"Error: artifact store '{store}': {said}"
    )
    assert not (tmp_path / "r").exists()


def test_a_bucket_lost_mid_run_fails_the_trial_and_keeps_its_folder(tmp_path, tiny_data_dir):
    url, store = f"journal:///{tmp_path / 'study.log'}", f"s3://{BUCKET}/lost"
    folder = tmp_path / "results"
    with s3_server() as s3:
        run = _machine(
            [*run_args(folder, tiny_data_dir, 3), "--storage", url, "--artifacts", store],
            s3.env(),
        )
        deadline = time.monotonic() + 120
        while not trial_folder(folder, "warmup", 0).is_dir() and time.monotonic() < deadline:
            time.sleep(0.02)
        s3.stop()  # the bucket's server is gone: the trial being stored, or the next, fails
        output = run.communicate(timeout=120)[0]
    assert run.returncode == 1, output
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"Error: artifact store '{store}' failed while storing trial "), last
    assert "cannot reach the S3 endpoint" in last and "Traceback" not in output

    trials = optuna.load_study(
        study_name="warmup", storage=open_storage(url, reading=True)
    ).get_trials(deepcopy=False)
    [failed] = [t for t in trials if t.state.name == "FAIL"]
    assert "failed while storing trial" in failed.user_attrs["fail_reason"]
    assert fate_of(failed) == Fate.UNSTORED
    assert all(t.state.name == "COMPLETE" for t in trials if t.number < failed.number)
    kept = trial_folder(folder, "warmup", failed.number)
    assert kept.is_dir()

    with s3_server() as s3:  # the store is back: re-running goes on, and keeps that folder
        more = str(failed.number + 1)
        again = _machine(
            [
                *run_args(folder, tiny_data_dir, 3),
                "--storage",
                url,
                "--artifacts",
                store,
                "--trials",
                more,
            ],
            s3.env(),
        )
        output = again.communicate(timeout=120)[0]
    assert again.returncode == 0, output
    assert kept.is_dir() and "removed" not in output
