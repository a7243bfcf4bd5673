"""Three workers (as on three machines) share one study: through a real PostgreSQL server,
through Optuna's journal file on a filesystem they share, or through `vaesweep serve-storage`
(Optuna's gRPC proxy) in front of one SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from postgres_server import free_port, throwaway_postgres

from vaesweep.store.fate import Fate, fate_of
from vaesweep.store.storage import open_storage

from helpers import LONG, run_args, vaesweep

WORKERS, TRIALS = 3, 7
# Three workers started at once must all be mid-trial at one moment: trials twice as long as
# LONG's cover their staggered start-ups.
KILLABLE = (*LONG, "--set", "epochs=40")


@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    return postgres_server.url


@pytest.fixture(params=["postgresql", "journal", "grpc"])
def shared_url(request, tmp_path):
    """A storage several machines share: a database server, a journal file, or a proxy."""
    if request.param == "journal":
        return f"journal:///{tmp_path / 'study.log'}"
    if request.param == "grpc":
        return request.getfixturevalue("proxy_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def proxy_url(tmp_path):
    """`vaesweep serve-storage` in front of an SQLite file, on a free loopback port."""
    port = free_port()
    command = ["serve-storage", f"sqlite:///{tmp_path / 'proxied.db'}", "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", "vaesweep", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    database, address = f"sqlite:///{tmp_path / 'proxied.db'}", f"grpc://127.0.0.1:{port}"
    said = server.stdout.readline() + server.stdout.readline()
    assert said == (
        f"starting the storage proxy for {database} at {address}\n"
        f"serving storage {database} at {address}: give workers --storage {address}; Ctrl-C "
        "stops it\n"
    ), said
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)
        rest = server.communicate(timeout=30)[0]
        assert server.returncode == 130 and "Traceback" not in rest, rest


@pytest.fixture(scope="module")
def postgres_server():
    try:
        with throwaway_postgres() as server:
            yield server
    except FileNotFoundError as missing:
        pytest.skip(str(missing))


# On a journal, three "nodes" sharing a study is the Slurm recipe's test, and machines with
# results folders of their own the artifact store's; the proxy's sharing is in the killed-worker
# test below (each kept once, for the suite's time).
@pytest.mark.parametrize("shared_url", ["postgresql"], indirect=True)
def test_three_workers_share_one_study_and_stop_at_the_count(shared_url, tmp_path, tiny_data_dir):
    results = [tmp_path / f"machine-{i}" for i in range(WORKERS)]
    workers = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "vaesweep"),
                *run_args(folder, tiny_data_dir, TRIALS, "--seed", str(i)),
                *("--storage", shared_url.replace("vaesweep@", "vaesweep:hunter2@")),
            ],  # trust authentication ignores the password
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, folder in enumerate(results)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0] * WORKERS, outputs
    assert not any("hunter2" in out for out in outputs)  # a password is never printed
    said = [[line for line in out.splitlines() if line.startswith("storage ")] for out in outputs]
    shown = "vaesweep:***@" if shared_url.startswith("postgresql") else shared_url
    assert all(len(lines) == 1 and shown in lines[0] for lines in said)

    study = optuna.load_study(study_name="warmup", storage=open_storage(shared_url))
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == TRIALS
    assert not [t for t in trials if t.state.name == "RUNNING"]
    # Anything else can only be a trial that stepped aside because the study was already full.
    for trial in trials:
        if trial not in finished:
            assert trial.user_attrs.get("fail_reason", "").startswith("surplus"), (
                trial.state,
                trial.user_attrs,
                trial.system_attrs,
            )
    # Every finished trial's folder is on exactly one "machine", where its record points.
    for trial in finished:
        homes = [f for f in results if (f / trial.user_attrs["folder"] / "model.pt").is_file()]
        assert len(homes) == 1, trial.number
    assert (
        sum(len(list((f / "warmup").glob("trial-*"))) for f in results if (f / "warmup").is_dir())
        == TRIALS
    )
    assert sum("trial" in out and " started" in out for out in outputs) >= 2  # the work was shared


def test_no_password_form_is_ever_printed_or_put_on_the_page(postgres_url, tmp_path, tiny_data_dir):
    host = postgres_url.removeprefix("postgresql://vaesweep@")
    forms = [
        postgres_url.replace("vaesweep@", "vaesweep:hunter2@"),
        f"{postgres_url}?password=hunter2",
        f"postgresql:///vaesweep?host=127.0.0.1&port={host.split(':')[1].split('/')[0]}"
        "&user=vaesweep&password=hunter2",
        f"{postgres_url}?sslmode=disable&password=hunter2&application_name=vaesweep",
    ]
    results = tmp_path / "results"
    outputs = []
    for i, url in enumerate(forms):
        outcome = vaesweep(
            *run_args(results, tiny_data_dir, 1, "--storage", url, "--name", f"s{i}")
        )
        assert outcome.exit_code == 0, outcome.output
        outputs.append(outcome.output)
    out = tmp_path / "report"
    shown = vaesweep(
        "report",
        "--storage",
        forms[1],
        "--results",
        str(results),
        "--out",
        str(out),
        "--data-dir",
        str(tiny_data_dir),
    )
    assert shown.exit_code == 0, shown.output
    unknown = vaesweep("report", "--storage", forms[2], "--results", str(results), "--study", "x")
    assert unknown.exit_code == 1 and "unknown study 'x'" in unknown.output
    for text in [*outputs, shown.output, unknown.output, (out / "index.html").read_text()]:
        assert "hunter2" not in text
    assert "password=***" in (out / "index.html").read_text()


def test_a_server_restarted_during_a_trial_is_reconnected_and_the_run_ends_normally(
    postgres_server, tmp_path, tiny_data_dir
):
    """A restart drops every pooled connection: each is re-opened, and the answer is printed."""
    results = tmp_path / "results"
    name = ("--name", "restarted", "--storage", postgres_server.url)
    command = [sys.executable, "-m", "vaesweep", *run_args(results, tiny_data_dir, 2, *LONG)]
    worker = subprocess.Popen(
        [*command, "--set", "epochs=25", *name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    storage = open_storage(postgres_server.url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until trial 0 has trained a few epochs
        try:
            study = optuna.load_study(study_name="restarted", storage=storage)
            trials = study.get_trials(deepcopy=False)
        except KeyError:
            trials = []
        if trials and trials[0].user_attrs.get("epochs_done", 0) >= 3:
            break
        assert worker.poll() is None, worker.stdout.read()
        time.sleep(0.5)
    postgres_server.stop()
    time.sleep(12)  # down for several heartbeats and epochs, even on a loaded machine
    postgres_server.start()
    output = worker.communicate(timeout=300)[0]
    assert worker.returncode == 0, output
    assert "Error:" not in output and "Traceback" not in output
    # Said once, in the driver's words and without its type names: which words depends on
    # whether a call was under way when the server stopped ("terminating connection ...") or
    # started while it was down ("connection failed: ...").
    lost = [line for line in output.splitlines() if line.startswith("storage connection lost (")]
    assert len(lost) == 1 and "reconnecting for up to 60 s" in lost[0], output
    assert "psycopg" not in output and "OperationalError" not in output
    assert output.count("reconnecting for up to") == 1
    assert "\nstudy restarted: 2/2 trials finished (2 run now, 0 failed)\n" in output
    answer = " ".join(output.split("\nstorage ")[-1].split()[1:])  # after the URL, unwrapped
    assert answer.startswith("best mean at warmup_epochs = 0: val 5-NN accuracy")
    study = optuna.load_study(study_name="restarted", storage=open_storage(postgres_server.url))
    assert [t.state.name for t in study.get_trials(deepcopy=False)] == ["COMPLETE"] * 2


def test_one_of_three_workers_killed_leaves_one_study_with_exact_counts(
    shared_url, tmp_path, tiny_data_dir
):
    """SIGKILL one of three workers mid-trial: its trial's heartbeat stops, another worker fails
    it and retrains its place, and the study ends with exactly the trials asked for; a later
    run resumes it to a larger count."""
    trials, name = 4, ("--name", "killed", "--storage", shared_url)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VAESWEEP_GRACE_SECONDS": "3"}
    workers = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "vaesweep"),
                *run_args(tmp_path / f"machine-{i}", tiny_data_dir, trials, *KILLABLE),
                *("--seed", "0", *name),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(WORKERS)
    ]
    storage = open_storage(shared_url)
    deadline, running = time.monotonic() + 180, []
    while len(running) < WORKERS and time.monotonic() < deadline:  # each worker trains one
        try:
            running = [
                t
                for t in optuna.load_study(study_name="killed", storage=storage).get_trials()
                if t.state.name == "RUNNING" and t.user_attrs.get("epochs_done", 0) >= 2
            ]
        except KeyError:
            running = []
        time.sleep(0.3)
    assert len(running) == WORKERS, "the three workers did not all train in time"
    workers[0].kill()  # SIGKILL: nothing recorded, no goodbye
    outputs = [w.communicate(timeout=300)[0] for w in workers[1:]]
    assert [w.returncode for w in workers[1:]] == [0, 0], outputs
    study = optuna.load_study(study_name="killed", storage=storage)
    stored = study.get_trials(deepcopy=False)
    finished = [t for t in stored if t.state.name == "COMPLETE"]
    assert len(finished) == trials and not [t for t in stored if t.state.name == "RUNNING"]
    places = sorted((t.user_attrs["replicate"], t.params["warmup_epochs"]) for t in finished)
    assert len(set(places)) == trials  # every place once
    fates = [fate_of(t) for t in stored if t.state.name == "FAIL"]
    assert set(fates) <= {Fate.SURPLUS, Fate.STALE} and Fate.STALE in fates, fates
    reasons = [t.user_attrs.get("fail_reason", "") for t in stored if t.state.name == "FAIL"]
    assert all(r.startswith(("surplus", "no heartbeat")) for r in reasons), reasons
    assert any(r.startswith("no heartbeat") for r in reasons)  # the killed worker's trial
    # Resumed from one machine to one more trial: exactly that many, every place once.
    more = run_args(tmp_path / "machine-1", tiny_data_dir, trials + 1, *KILLABLE)
    outcome = vaesweep(*more, "--seed", "0", *name)
    assert outcome.exit_code == 0, outcome.output
    stored = optuna.load_study(study_name="killed", storage=storage).get_trials(deepcopy=False)
    finished = [t for t in stored if t.state.name == "COMPLETE"]
    places = {(t.user_attrs["replicate"], t.params["warmup_epochs"]) for t in finished}
    assert len(finished) == len(places) == trials + 1
