"""`vaesweep` end to end on tiny data: run, resume, extend, and every bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from click.testing import CliRunner

from vaesweep.cli import main
from vaesweep.spec.design import Design
from vaesweep.spec.studies import STUDIES_DIR
from vaesweep.store.storage import default_storage_url, redact
from vaesweep.training.data import load_fashion_mnist

from conftest import TINY_SETTINGS


def vaesweep(*args: str):
    # A wide virtual terminal, so rich does not wrap table cells.
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args), catch_exceptions=False)


def run_args(
    results: Path, data_dir: Path, trials: int, *extra: str, study: str = "warmup"
) -> list[str]:
    places = ["--study", study, "--trials", str(trials), "--results", str(results)]
    return ["run", *places, "--data-dir", str(data_dir), *TINY_SETTINGS, *extra]


def stored_trials(results: Path, name: str = "warmup") -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=default_storage_url(results))
    return study.get_trials(deepcopy=False)


def snapshot(results: Path) -> dict:
    """Every stored trial and every file's hash: what a failing command must leave untouched."""
    trials = [(t.number, t.state.name, t.values, t.params) for t in stored_trials(results)]
    files = {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file() and p.name != "vaesweep.db"
    }
    return {"trials": trials, "files": files}


@pytest.fixture
def study_with_two_trials(tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2))
    assert outcome.exit_code == 0, outcome.output
    return results


def test_run_leaves_a_folder_per_trial_and_records_point_to_it(study_with_two_trials):
    results = study_with_two_trials
    trials = stored_trials(results)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        folder = results / trial.user_attrs["folder"]
        assert folder == results / "warmup" / f"trial-{trial.number:04d}"
        metrics = trial.user_attrs["metrics"]  # their one stored copy: no metrics.json
        assert trial.values == [metrics["val_knn_accuracy"]]  # the warm-up study's objective
        assert not (folder / "metrics.json").exists()
        assert {"test_ssim", "test_knn_accuracy", "val_mse", "test_kl"} <= set(metrics)
        config = json.loads((folder / "config.json").read_text())
        assert config["warmup_epochs"] == trial.params["warmup_epochs"]
        replicate = trial.user_attrs["replicate"]
        assert trial.user_attrs["phase"] == "grid"
        assert config["epochs"] == 2
        assert config["seed"] == Design().seed(0, trial.params, "grid", replicate)
        # The database keeps the seed; the whole config is stored once, in config.json.
        assert trial.user_attrs["seed"] == config["seed"] and "config" not in trial.user_attrs
        assert (folder / "model.pt").is_file() and (folder / "history.csv").is_file()


def test_rerun_adds_nothing_and_more_trials_adds_the_difference(
    study_with_two_trials, tiny_data_dir
):
    results = study_with_two_trials
    before = snapshot(results)
    again = vaesweep(*run_args(results, tiny_data_dir, 2))
    assert again.exit_code == 0 and "2/2 trials finished (0 run now" in again.output
    assert snapshot(results) == before
    more = vaesweep(*run_args(results, tiny_data_dir, 3))
    assert more.exit_code == 0, more.output
    assert [t.number for t in stored_trials(results)] == [0, 1, 2]
    assert (results / "warmup" / "trial-0002" / "model.pt").is_file()


def test_a_study_stored_before_blocking_resumes_unblocked_and_unchanged(
    study_with_two_trials, tiny_data_dir
):
    """A definition an earlier vaesweep stored has no 'blocked': the study resumes with its
    own (independent) seeds, its definition and trials untouched, and says so."""
    results = study_with_two_trials
    study = optuna.load_study(study_name="warmup", storage=default_storage_url(results))
    definition = study.user_attrs["vaesweep_definition"]
    del definition["design"]["blocked"]
    study.set_user_attr("vaesweep_definition", definition)
    before = snapshot(results)
    more = vaesweep(*run_args(results, tiny_data_dir, 3))
    assert more.exit_code == 0, more.output
    assert "stored with independent seeds per configuration" in more.output
    assert "compared unpaired" in more.output
    after = snapshot(results)
    assert after["trials"][:2] == before["trials"] and len(after["trials"]) == 3
    assert {k: v for k, v in after["files"].items() if "trial-0002" not in k} == before["files"]
    study = optuna.load_study(study_name="warmup", storage=default_storage_url(results))
    assert study.user_attrs["vaesweep_definition"] == definition  # still without 'blocked'
    new = stored_trials(results)[2]
    unblocked = Design(blocked=False).seed(0, new.params, "grid", new.user_attrs["replicate"])
    assert new.user_attrs["seed"] == unblocked
    # Saying `blocked = true` now is another definition.
    blocked = results.parent / "blocked.toml"
    blocked.write_text("blocked = true\n" + (STUDIES_DIR / "warmup.toml").read_text())
    refused = vaesweep(*run_args(results, tiny_data_dir, 4, study=str(blocked)), "--name", "warmup")
    assert refused.exit_code == 1 and "different design" in refused.output


def test_brackets_in_a_path_are_printed_as_they_are(tmp_path, tiny_data_dir):
    results = tmp_path / "r[" / "x]"  # 'r[/x]': a closing tag to rich
    outcome = vaesweep(*run_args(results, tiny_data_dir, 1))
    assert outcome.exit_code == 0, outcome.output
    assert f"storage sqlite:///{results}/vaesweep.db" in outcome.output


# A path with a complete OSC sequence (sets the terminal's title), a line break and a bidi override.
HOSTILE_PATH = "osc\x1b]0;TITLE\x07 rtl\u202e\nnext"


def test_control_characters_in_paths_are_shown_visibly(tmp_path, tiny_data_dir):
    results = tmp_path / HOSTILE_PATH
    outcome = vaesweep(*run_args(results, tiny_data_dir, 1))
    assert outcome.exit_code == 0, outcome.output
    seen = HOSTILE_PATH.encode("unicode_escape").decode()
    assert f"storage sqlite:///{tmp_path}/{seen}/vaesweep.db" in outcome.output
    for args in (
        run_args(tmp_path / "r", tiny_data_dir, 1, study=str(tmp_path / f"{HOSTILE_PATH}.toml")),
        run_args(results / "vaesweep.db", tiny_data_dir, 1),  # a file, not a folder
        ["report", "--results", str(tmp_path / HOSTILE_PATH / "nothing")],
    ):
        refused = vaesweep(*args)
        assert refused.exit_code != 0, refused.output
        assert refused.output.startswith("Error: ") and refused.output.count("\n") == 1
        assert seen in refused.output
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in refused.output, refused.output


TYPO_WITHOUT_TORCH = """
import sys
from click.testing import CliRunner
from vaesweep.cli import main
outcome = CliRunner().invoke(main, ["run", "--study", "warmpu", "--trials", "3"])
print(outcome.exit_code, "torch" in sys.modules, outcome.output.strip())
"""


def test_a_misspelt_study_or_setting_is_refused_before_torch_is_imported(tmp_path):
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", TYPO_WITHOUT_TORCH], capture_output=True, text=True, cwd=tmp_path
    )
    code, imported, line = run.stdout.split(" ", 2)
    assert (code, imported) == ("1", "False"), run.stdout + run.stderr
    assert line.startswith("Error: unknown study 'warmpu' (did you mean 'warmup'?")


@pytest.mark.parametrize("columns", [60, 80, 120, 200])
def test_the_run_s_last_lines_wrap_at_spaces_at_any_width(
    columns, study_with_two_trials, tiny_data_dir
):
    """Warnings, the summary and the answer: no word or number is split across lines."""
    args = run_args(study_with_two_trials, tiny_data_dir, 2, "--set", "epochs=2")

    def output(width: int) -> str:
        outcome = CliRunner(env={"COLUMNS": str(width)}).invoke(main, args)
        assert outcome.exit_code == 0, outcome.output
        return outcome.output

    wide = output(5000).splitlines()
    whole = {word for line in wide for word in line.split()}
    lines = output(columns).splitlines()
    storage = [line for line in lines if line.startswith("storage ")]
    assert len(storage) == 1  # the URL stays whole, to be copied
    lines.remove(storage[0])
    assert all(len(line) <= columns for line in lines)
    assert {word for line in lines for word in line.split()} <= whole
    too_long = any(len(line) > columns for line in wide if not line.startswith("storage "))
    assert (len(lines) + 1 > len(wide)) == too_long  # wrapped where a line was too long


def test_plain_progress_prints_at_most_a_line_per_epoch(study_with_two_trials, tiny_data_dir):
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    lines = outcome.output.splitlines()
    assert [line.split()[:3] for line in lines if " epoch " in line] == [
        ["trial", "2", "epoch"],
        ["trial", "2", "epoch"],
    ]  # one new trial, two epochs, one line each
    evaluating = [line for line in lines if " evaluating " in line]
    assert evaluating[0] == "trial 2 evaluating 1/7: k-NN reference codes"
    assert evaluating[-1] == "trial 2 evaluating 7/7: test -log p(x)"
    assert any(line.startswith("trial 2 complete value") for line in lines)
    tail = " ".join(outcome.output.split("\nstorage ")[-1].split())  # the answer, unwrapped
    assert "n = 1: no interval" in tail  # one replicate per value so far


def test_parallel_workers_stop_at_exactly_the_requested_count(tmp_path, tiny_data_dir, monkeypatch):
    from vaesweep.training import data as data_module

    def load_once(data_dir):  # the run's one load; the workers can only use its copy
        data = load_fashion_mnist(data_dir)
        shutil.rmtree(data_dir)
        return data

    monkeypatch.setattr(data_module, "load_fashion_mnist", load_once)
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 3, "--jobs", "2"))
    assert outcome.exit_code == 0, outcome.output
    trials = stored_trials(results)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3
    assert len(trials) == 3  # the start lock lets no worker begin a fourth
    folders = sorted(p.name for p in (results / "warmup").iterdir())
    assert folders == [f"trial-{t.number:04d}" for t in finished]
    assert "3/3 trials finished" in outcome.output


def test_workers_share_the_parent_s_data_where_shared_memory_has_room(tiny_data, monkeypatch):
    from collections import namedtuple

    from vaesweep.run import workers

    usage = namedtuple("usage", "total used free")
    needed = sum(t.untyped_storage().nbytes() for t in (tiny_data.train_x, tiny_data.train_y))
    monkeypatch.setattr(workers.shutil, "disk_usage", lambda _: usage(0, 0, needed))
    assert workers.shared(tiny_data) is None  # no room: each worker loads its own copy
    assert not tiny_data.train_x.is_shared()
    monkeypatch.undo()
    monkeypatch.setattr(workers, "SHARED_MEMORY", "/no/such/folder")
    assert workers.shared(tiny_data) is None
    monkeypatch.undo()
    data = workers.shared(tiny_data)
    assert data is tiny_data and all(
        t.is_shared() for t in (data.train_x, data.train_y, data.test_x, data.test_y)
    )


def run_each(tmp_path: Path, data_dir: Path, trials: int, option: str, values) -> dict[str, Path]:
    """The warm-up study run once per value of `option`, each in a results folder of its own."""
    folders = {}
    for value in values:
        folders[value] = tmp_path / f"{option.strip('-')}-{value}"
        outcome = vaesweep(*run_args(folders[value], data_dir, trials, option, value))
        assert outcome.exit_code == 0, outcome.output
    return folders


def test_a_place_gives_the_same_metrics_with_one_or_two_workers(tmp_path, tiny_data_dir):
    by_place = {
        jobs: {
            (t.params["warmup_epochs"], t.user_attrs["replicate"]): t.user_attrs["metrics"]
            for t in stored_trials(results)
        }
        for jobs, results in run_each(tmp_path, tiny_data_dir, 6, "--jobs", ("1", "2")).items()
    }
    assert len(by_place["1"]) == 6 and (0, 1) in by_place["1"]
    assert by_place["1"].keys() == by_place["2"].keys()
    # One worker runs on 2 threads, each of two on 1: the same computation, summed in another
    # order, so the metrics agree to float rounding (measured: relative 1e-7), not bit for bit.
    for place, metrics in by_place["1"].items():
        other = by_place["2"][place]
        assert other.keys() == metrics.keys()
        for name, value in metrics.items():
            assert other[name] == pytest.approx(value, rel=1e-5, abs=1e-7), (place, name)


UNSTABLE_STUDY = (
    'description = "some learning rates diverge"\nobjectives = ["val_loss"]\n'
    '[search]\nlr = {{ type = "categorical", choices = {choices} }}\n'
    "[fixed]\nmin_lr = 0.0\n"
)


def run_unstable(tmp_path: Path, data_dir: Path, trials: int, choices: str):
    study_file = tmp_path / "unstable.toml"
    study_file.write_text(UNSTABLE_STUDY.format(choices=choices))
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, data_dir, trials, study=str(study_file)))
    return outcome, stored_trials(results, "unstable"), results


def test_diverging_trials_are_recorded_and_the_study_goes_on(tmp_path, tiny_data_dir):
    # The grid alternates: fine, diverging, fine. A diverged place is not tried again (its seed
    # is fixed, so it would diverge again).
    outcome, trials, results = run_unstable(tmp_path, tiny_data_dir, 2, "[2e-3, 10.0]")
    assert outcome.exit_code == 0, outcome.output
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert [t.user_attrs["replicate"] for t in trials] == [0, 0, 1]
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert all(t.params["lr"] == 10.0 for t in failed)
    assert all("diverged: loss became NaN" in t.user_attrs["fail_reason"] for t in failed)
    assert not any((results / "unstable" / f"trial-{t.number:04d}").exists() for t in failed)


def test_five_failures_in_a_row_stop_the_study(tmp_path, tiny_data_dir):
    outcome, trials, _ = run_unstable(tmp_path, tiny_data_dir, 1, "[10.0, 9.0, 8.0]")
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines()[-1].startswith("Error: 5 trials in a row failed")
    assert [t.state.name for t in trials] == ["FAIL"] * 5


PRUNABLE_STUDY = (
    'description = "a learning rate too small to learn"\nobjectives = ["val_loss"]\n'
    "explore = 4\n"
    '[search]\nlr = { type = "categorical", choices = [2e-3, 1e-7] }\n'
    '[fixed]\nmin_lr = 0.0\nwarmup_epochs = 0\n[sampler]\nname = "random"\n'
    '[pruner]\nname = "median"\nn_startup_trials = 1\n'
)


def test_pruned_trials_keep_weights_metrics_and_reason(tmp_path, tiny_data_dir):
    study_file = tmp_path / "prunable.toml"
    study_file.write_text(PRUNABLE_STUDY)
    results = tmp_path / "results"
    # With seed 2 the random sampler draws 2e-3 three times, then 1e-7.
    outcome = vaesweep(
        "run",
        "--study",
        str(study_file),
        "--trials",
        "4",
        "--results",
        str(results),
        "--data-dir",
        str(tiny_data_dir),
        "--seed",
        "2",
        *TINY_SETTINGS,
    )
    assert outcome.exit_code == 0, outcome.output
    trials = stored_trials(results, "prunable")
    assert len(trials) == 4 and trials[0].state.name == "COMPLETE"
    assert trials[3].params["lr"] == 1e-7 and trials[3].state.name == "PRUNED"
    for trial in trials:  # every stored value is on the objective's (val_loss) scale
        history = pd.read_csv(results / trial.user_attrs["folder"] / "history.csv")
        expected = (
            trial.user_attrs["metrics"]["val_loss"]
            if trial.state.name == "COMPLETE"
            else history["val_elbo"].iloc[-1]  # the same beta=1 loss, at the pruning epoch
        )
        assert trial.value == pytest.approx(expected) and trial.value > 0
    for pruned in (t for t in trials if t.state.name == "PRUNED"):
        assert "worse than the median" in pruned.user_attrs["prune_reason"]
        folder = results / pruned.user_attrs["folder"]
        assert {"model.pt", "history.csv"} <= {p.name for p in folder.iterdir()}
        assert json.loads((folder / "trial.json").read_text())["state"] == "PRUNED"
        assert {"val_loss", "test_ssim"} <= set(pruned.user_attrs["metrics"])


BAD_INPUTS = {
    "unknown study": (["--study", "nope"], "unknown study 'nope'"),
    "zero trials": (["--trials", "0"], "--trials must be at least 1"),
    "negative trials": (["--trials", "-3"], "--trials must be at least 1"),
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
    "zero jobs": (["--jobs", "0"], "--jobs must be between 1 and"),
    "too many jobs": (["--jobs", "999"], "--jobs must be between 1 and"),
    "non-numeric jobs": (["--jobs", "lots"], "--jobs must be a number or auto"),
    "name is a path": (["--name", "a/b"], "is not a plain name"),
    "name is the parent": (["--name", ".."], "is not a plain name"),
    "name too long": (["--name", "n" * 250], "is not a plain name"),
    "negative seed": (["--seed", "-1"], "--seed must be between 0 and 4294967295"),
    "seed too large": (["--seed", "4294967296"], "--seed must be between 0 and 4294967295"),
    "in-memory storage": (["--storage", "sqlite://"], "in-memory SQLite database"),
    "in-memory storage file": (["--storage", "sqlite:///:memory:"], "in-memory SQLite database"),
    "infinite learning rate": (["--set", "lr=inf"], "'lr' must be a finite number"),
    "huge latent": (["--set", "latent_dim=100000000"], "'latent_dim' must be at most 1024"),
    "read-only storage": (["--storage", "{readonly}"], "readonly database"),
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
    places = {
        "{empty}": str(empty),
        "{corrupt}": str(corrupt),
        "{same}": str(same),
        "{file}": str(a_file / "results"),
        "{a-file}": str(a_file),
        "{readonly}": readonly,
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


def test_what_a_crash_leaves_is_cleaned_up_by_the_next_run(study_with_two_trials, tiny_data_dir):
    import shutil
    import socket

    results = study_with_two_trials
    study = optuna.load_study(study_name="warmup", storage=default_storage_url(results))
    # A trial whose folder was renamed into place but never recorded (then failed by the
    # heartbeat check): its trial.json carries the record's folder id.
    crashed = study.ask()
    crashed.set_user_attr("folder_id", "f" * 32)
    study.tell(crashed, state=optuna.trial.TrialState.FAIL)
    leftover = results / "warmup" / f"trial-{crashed.number:04d}"
    shutil.copytree(results / "warmup" / "trial-0000", leftover)
    stamp = json.loads((leftover / "trial.json").read_text())
    stamp |= {"number": crashed.number, "folder_id": "f" * 32}
    (leftover / "trial.json").write_text(json.dumps(stamp))
    # Staging folders: this machine's, of a process that is gone (removed at once), and another
    # machine's, still fresh (kept: its writer may be alive).
    staging = results / "warmup" / f".trial-0099.partial-{socket.gethostname()}-999999"
    elsewhere = results / "warmup" / ".trial-0098.partial-other-host-999999"
    staging.mkdir()
    elsewhere.mkdir()
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2))
    assert outcome.exit_code == 0, outcome.output
    assert not leftover.exists() and not staging.exists() and elsewhere.is_dir()
    assert f"removed {leftover}" in outcome.output
    assert (results / "warmup" / "trial-0000" / "model.pt").is_file()  # finished ones stay


def test_a_failed_trial_s_folder_number_holding_anything_else_is_never_removed(
    study_with_two_trials, tiny_data_dir
):
    results = study_with_two_trials
    study = optuna.load_study(study_name="warmup", storage=default_storage_url(results))
    crashed = study.ask()  # failed before it wrote a folder: no folder id of its own
    study.tell(crashed, state=optuna.trial.TrialState.FAIL)
    unreadable = results / "warmup" / f"trial-{crashed.number:04d}"
    unreadable.mkdir()
    (unreadable / "notes.txt").write_text("a researcher's")
    outcome = vaesweep(*run_args(results, tiny_data_dir, 3))
    assert outcome.exit_code == 0, outcome.output
    assert (unreadable / "notes.txt").is_file() and "removed" not in outcome.output


def test_two_storages_sharing_a_results_folder_never_touch_each_other_s_folders(
    study_with_two_trials, tiny_data_dir, tmp_path
):
    results = study_with_two_trials  # its own SQLite storage: trials 0 and 1 completed
    other = f"sqlite:///{tmp_path / 'other.db'}"
    # The other storage holds the same study: trial 0 completed elsewhere, trial 1 failed by an
    # interrupt (the case that once removed this results folder's trial 0).
    elsewhere = tmp_path / "elsewhere"
    made = vaesweep(*run_args(elsewhere, tiny_data_dir, 1, "--storage", other))
    assert made.exit_code == 0, made.output
    study = optuna.load_study(study_name="warmup", storage=other)
    interrupted = study.ask()
    interrupted.set_user_attr("fail_reason", "interrupted (SIGINT)")
    study.tell(interrupted, state=optuna.trial.TrialState.FAIL)
    before = snapshot(results)
    other_before = [(t.number, t.state, t.user_attrs) for t in study.get_trials()]

    outcome = vaesweep(*run_args(results, tiny_data_dir, 3, "--storage", other))
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines() == [
        f"Error: {results / 'warmup'} holds trial folders this storage did not write "
        "(trial-0000, trial-0001); give each storage its own --results, or this study another "
        "--name"
    ]
    assert snapshot(results) == before
    after = optuna.load_study(study_name="warmup", storage=other).get_trials()
    assert [(t.number, t.state, t.user_attrs) for t in after] == other_before

    # The other storage's completed trial 0 is never drawn from this folder's trial 0.
    out = tmp_path / "out"
    shown = vaesweep(
        "report",
        "--results",
        str(results),
        "--storage",
        other,
        "--out",
        str(out),
        "--data-dir",
        str(tiny_data_dir),
    )
    assert shown.exit_code == 0, shown.output
    assert "trial 0: its folder" in shown.output and "another storage's trial" in shown.output
    assert not (out / "warmup" / "trial-0000").exists()
    assert snapshot(results) == before


def test_a_storage_failing_during_a_run_is_one_line(
    study_with_two_trials, tiny_data_dir, monkeypatch
):
    import sqlalchemy.exc

    calls = {"n": 0}
    real = optuna.storages.RDBStorage.set_trial_intermediate_value

    def failing(self, *args, **kwargs):  # the database goes away after some epochs
        calls["n"] += 1
        if calls["n"] > 3:
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("server closed"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_intermediate_value", failing)
    unstable = study_with_two_trials.parent / "loss.toml"
    unstable.write_text(
        'description = "d"\nobjectives = ["val_loss"]\n'
        '[search]\nlatent_dim = { type = "categorical", choices = [2, 3] }\n'
    )
    args = run_args(study_with_two_trials, tiny_data_dir, 4)
    args[args.index("warmup")] = str(unstable)
    outcome = vaesweep(*args)
    assert outcome.exit_code == 1
    last = outcome.output.strip().splitlines()[-1]
    assert last.startswith("Error: storage sqlite:///") and "failed during trial 1: " in last
    assert "finished trials are kept; re-running resumes" in last
    assert "Traceback" not in outcome.output


LOCK_FOR_8_S = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(8)
db.execute("COMMIT")
"""


def test_a_database_locked_by_another_process_is_waited_for_aloud(
    study_with_two_trials, tiny_data_dir
):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_FOR_8_S, str(study_with_two_trials / "vaesweep.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    holder.wait(timeout=30)
    assert outcome.exit_code == 0, outcome.output
    said = "storage locked by another process (database is locked); waiting for up to 60 s"
    assert outcome.output.count(said) == 1, outcome.output
    assert [t.state.name for t in stored_trials(study_with_two_trials)] == ["COMPLETE"] * 3


def _storage_down_after(monkeypatch, writes: int, seconds: float) -> None:
    """Every storage call fails for `seconds` once a trial's attributes were written `writes`
    times (its seed, folder id, then its epochs: a database restarting mid-trial), heartbeats
    included."""
    import time

    import sqlalchemy.exc

    storage = optuna.storages.RDBStorage
    state = {"reports": 0, "until": 0.0}

    def wrap(name, method):
        def failing(self, *args, **kwargs):
            if name == "set_trial_user_attr":
                state["reports"] += 1
                if state["reports"] == writes + 1:
                    state["until"] = time.time() + seconds
            if time.time() < state["until"]:
                raise sqlalchemy.exc.OperationalError(name, {}, Exception("server closed"))
            return method(self, *args, **kwargs)

        return failing

    for name in dir(storage):
        if not name.startswith("_") and callable(getattr(storage, name)):
            monkeypatch.setattr(storage, name, wrap(name, getattr(storage, name)))


@pytest.mark.parametrize(("outage", "recorded"), [(1.5, True), (60.0, False)])
def test_a_storage_away_during_a_trial_is_one_line_and_the_trial_recorded_when_it_returns(
    outage, recorded, study_with_two_trials, tiny_data_dir, monkeypatch
):
    from vaesweep.run import work_loop

    monkeypatch.setattr(work_loop, "RECORD_RETRIES", (1.0, 1.0))
    monkeypatch.setenv("VAESWEEP_GRACE_SECONDS", "6")  # a heartbeat every second, into the outage
    _storage_down_after(monkeypatch, writes=3, seconds=outage)
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    monkeypatch.undo()
    assert outcome.exit_code == 1
    lines = outcome.output.strip().splitlines()
    assert "Traceback" not in outcome.output and lines[-1].startswith("Error: storage sqlite:///")
    assert "failed during trial 2: " in lines[-1] and "finished trials are kept" in lines[-1]
    trial = stored_trials(study_with_two_trials)[2]
    if recorded:
        assert "trial 2 was recorded as failed" in lines[-1]
        assert trial.state.name == "FAIL"
        assert trial.user_attrs["fail_reason"].startswith("the storage failed: ")
    else:
        assert "trial 2 stays running until its heartbeat lapses (6 s)" in lines[-1]
        assert trial.state.name == "RUNNING"


def test_no_failed_trial_is_left_without_its_reason(
    study_with_two_trials, tiny_data_dir, monkeypatch
):
    def unforeseen(*args, **kwargs):
        raise RuntimeError("cannot convert float infinity to integer")

    monkeypatch.setattr("vaesweep.run.objective.evaluate", unforeseen)
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    assert outcome.exit_code == 1 and "unexpected failure: cannot convert" in outcome.output
    trial = stored_trials(study_with_two_trials)[2]
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["fail_reason"] == "error: cannot convert float infinity to integer"


@pytest.mark.parametrize("full_at", ["latents.npz", "model.pt"])
def test_a_full_disk_during_a_trial_is_one_line_and_leaves_no_partial_folder(
    full_at, study_with_two_trials, tiny_data_dir, monkeypatch
):
    import numpy as np

    from vaesweep.store import artifacts

    real_savez, real_write_bytes = np.savez, Path.write_bytes

    def savez_onto_a_full_disk(path, **arrays):  # the kernel's own ENOSPC
        with open("/dev/full", "wb") as full:
            real_savez(full, **arrays)

    def write_bytes(path, data):
        return real_write_bytes(Path("/dev/full") if path.name == full_at else path, data)

    if full_at == "latents.npz":
        monkeypatch.setattr(artifacts.np, "savez", savez_onto_a_full_disk)
    else:  # the weights' bytes: torch's own writer once said "unexpected pos" here
        monkeypatch.setattr(Path, "write_bytes", write_bytes)
    outcome = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    monkeypatch.undo()
    assert outcome.exit_code == 1
    last = outcome.output.strip().splitlines()[-1]
    assert last.startswith("Error: trial 2 could not write ") and "No space left on device" in last
    assert "trial 2 was recorded as failed" in last and "resumes once there is room" in last
    trial = stored_trials(study_with_two_trials)[2]
    assert trial.state.name == "FAIL" and "No space left" in trial.user_attrs["fail_reason"]
    assert not list((study_with_two_trials / "warmup").glob(".trial-*"))
    assert not (study_with_two_trials / "warmup" / "trial-0002").exists()
    again = vaesweep(*run_args(study_with_two_trials, tiny_data_dir, 3))
    assert again.exit_code == 0, again.output


def test_a_worker_whose_trial_was_failed_while_it_was_stopped_goes_on(
    tmp_path, tiny_data_dir, monkeypatch
):
    from vaesweep.run.objective import Objective

    real = Objective._on_epoch

    def stopped_past_the_grace_period(self, run, record, model):
        real(self, run, record, model)
        if run.trial.number == 0 and record["epoch"] == 0:
            # What another worker's heartbeat check does while this one is stopped (SIGSTOP).
            storage = run.trial.study._storage
            storage.set_trial_state_values(run.trial._trial_id, optuna.trial.TrialState.FAIL)

    monkeypatch.setattr(Objective, "_on_epoch", stopped_past_the_grace_period)
    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2))
    assert outcome.exit_code == 0, outcome.output
    states = [t.state.name for t in stored_trials(results)]
    assert states[0] == "FAIL" and states.count("COMPLETE") == 2


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


def test_a_run_whose_epochs_end_inside_the_warmup_warns_once(tmp_path, tiny_data_dir):
    outcome = vaesweep(*run_args(tmp_path / "results", tiny_data_dir, 1))  # epochs 2, warm-up 0-4
    warnings = [line for line in outcome.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: warmup_epochs up to 4 with epochs = 2: beta never reaches 1 where "
        "warmup_epochs >= 2, so those trials never train the ELBO they report; train more than "
        "4 epochs to cover every warm-up"
    ]


def test_a_fixed_warmup_longer_than_the_run_says_every_trial_and_what_to_set(
    tmp_path, tiny_data_dir
):
    outcome = vaesweep(*run_args(tmp_path / "results", tiny_data_dir, 1, study="lr"))
    warnings = [line for line in outcome.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: warmup_epochs = 2 with epochs = 2: beta never reaches 1, so no trial trains the "
        "ELBO it reports; add --set warmup_epochs=0 for a quick look, or train more than 2 epochs"
    ]


def test_studies_lists_every_study_with_its_search_space():
    outcome = vaesweep("studies")
    assert outcome.exit_code == 0
    for name in ("warmup", "latent", "lr", "likelihood", "joint"):
        assert name in outcome.output
    assert "warmup_epochs: int [0, 4]" in outcome.output
    assert "seed blocks" in outcome.output and "--trials 30" in outcome.output
    # What each design can detect, from the noise its file says was measured here.
    assert "detects" in outcome.output and "(σ " in outcome.output


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_studies_list_what_can_be_run_and_what_was_run_at_any_width(columns, study_with_two_trials):
    looks = optuna.load_study(
        study_name="warmup", storage=default_storage_url(study_with_two_trials)
    ).user_attrs.get("vaesweep_looks")
    outcome = CliRunner(env={"COLUMNS": str(columns)}).invoke(
        main, ["studies", "--results", str(study_with_two_trials)]
    )
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.splitlines()
    assert all(len(line) <= columns for line in lines if not line.startswith("stored in "))
    assert any(line.startswith("warmup: ") for line in lines)
    text = " ".join(outcome.output.split())
    assert "warmup: 2 finished trials; best mean at warmup_epochs = " in text
    after = optuna.load_study(
        study_name="warmup", storage=default_storage_url(study_with_two_trials)
    ).user_attrs.get("vaesweep_looks")
    assert after == looks  # listing shows the stored answer: no new look


def test_studies_piped_are_whole_and_say_where_the_files_live(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    outcome = CliRunner().invoke(main, ["studies"])  # a pipe: no terminal, no COLUMNS
    assert outcome.exit_code == 0, outcome.output
    assert "…" not in outcome.output and "val_knn_accuracy" in outcome.output
    assert f"study files: {STUDIES_DIR}" in outcome.output


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
