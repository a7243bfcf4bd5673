"""`vaesweep run` and `studies` end to end on tiny data: run, resume, extend, workers, divergence,
pruning, warnings and the listing of studies."""

from __future__ import annotations

import json
import shutil

import optuna
import pandas as pd
import pytest
from click.testing import CliRunner

from vaesweep.cli import main
from vaesweep.spec.design import Design
from vaesweep.spec.studies import STUDIES_DIR
from vaesweep.store.storage import default_storage_url
from vaesweep.training.data import load_fashion_mnist

from helpers import (
    PRUNABLE_STUDY,
    TINY_SETTINGS,
    run_args,
    run_each,
    run_unstable,
    snapshot,
    stored_trials,
    vaesweep,
)


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


def test_each_trial_says_where_its_time_went_and_the_run_sums_it(tmp_path, tiny_data_dir):
    from vaesweep.run.phases import PHASES

    results = tmp_path / "results"
    outcome = vaesweep(*run_args(results, tiny_data_dir, 2, "--jobs", "1"))
    assert outcome.exit_code == 0, outcome.output
    for trial in stored_trials(results):
        recorded = trial.user_attrs["phase_seconds"]
        written = json.loads((results / trial.user_attrs["folder"] / "trial.json").read_text())
        in_folder = written["phase_seconds"]
        assert set(recorded) == set(in_folder) == set(PHASES)
        assert all(v >= 0 for v in recorded.values())
        assert recorded["training"] > 0 and recorded["evaluation"] > 0
        # The record's copy adds the folder's own write to storage; nothing else changes.
        assert recorded["storage"] > in_folder["storage"]
        assert {k: v for k, v in recorded.items() if k != "storage"} == {
            k: v for k, v in in_folder.items() if k != "storage"
        }
        # Each second once: the phases add up to no more than the trial's wall time, which is
        # from its worker's previous trial to its tell.
        span = (trial.datetime_complete - trial.datetime_start).total_seconds()
        assert sum(recorded.values()) - recorded["waiting"] <= span + 0.05
    line = next(x for x in outcome.output.splitlines() if x.startswith("time per phase"))
    assert line.startswith("time per phase, 2 trials: ") and "training " in line


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


def test_a_study_stored_unblocked_resumes_unblocked_and_unchanged(
    study_with_two_trials, tiny_data_dir
):
    """A study stored with `blocked = false`, run again from a file that does not say: it
    resumes with its own (independent) seeds, its definition and trials untouched, and says so."""
    results = study_with_two_trials
    study = optuna.load_study(study_name="warmup", storage=default_storage_url(results))
    definition = study.user_attrs["vaesweep_definition"]
    definition["design"]["blocked"] = False
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
    assert study.user_attrs["vaesweep_definition"] == definition  # still unblocked
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
    """Warnings, the summary and the answer: no word or number is split across lines; the
    storage URL and the next command stay on one line each."""
    args = run_args(study_with_two_trials, tiny_data_dir, 2, "--set", "epochs=2")

    def output(width: int) -> str:
        outcome = CliRunner(env={"COLUMNS": str(width)}).invoke(main, args)
        assert outcome.exit_code == 0, outcome.output
        return outcome.output

    wide = output(5000).splitlines()
    whole = {word for line in wide for word in line.split()}
    lines = output(columns).splitlines()
    # The URL, and the next command, stay whole, to be copied.
    storage = [line for line in lines if line.startswith("storage ")]
    command = [line for line in lines if line.startswith("  vaesweep run ")]
    assert len(storage) == 1 and len(command) == 1
    lines.remove(storage[0])
    lines.remove(command[0])
    assert all(len(line) <= columns for line in lines)
    assert {word for line in lines for word in line.split()} <= whole
    copied = ("storage ", "  vaesweep run ")
    too_long = any(len(line) > columns for line in wide if not line.startswith(copied))
    assert (len(lines) + 2 > len(wide)) == too_long  # wrapped where a line was too long


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


def test_a_run_whose_epochs_end_inside_the_warmup_warns_once(tmp_path, tiny_data_dir):
    outcome = vaesweep(*run_args(tmp_path / "results", tiny_data_dir, 1))  # epochs 2, warm-up 0-8
    warnings = [line for line in outcome.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: warmup_epochs up to 8 with epochs = 2: beta never reaches 1 where "
        "warmup_epochs >= 2, so those trials never train the ELBO they report; train more than "
        "8 epochs to cover every warm-up"
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
    text = " ".join(outcome.output.split())
    assert "design grid 3 × 10 seed blocks --trials 30 complete the design" in text
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


def test_a_run_ends_with_the_next_command_to_paste(tmp_path, tiny_data_dir):
    """A study without an answer yet says when its confirmation phase starts, and prints the
    command that completes it: this run's own, with only --trials changed."""
    import shlex

    results = tmp_path / "results"
    args = run_args(results, tiny_data_dir, 2, "--name", "first-look", study="lr")
    outcome = vaesweep(*args)
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.splitlines()
    at = lines.index(
        "next (the confirmation phase starts after 10 exploration trials; this completes it):"
    )
    command = shlex.split(lines[at + 1])
    assert command[:2] == ["vaesweep", "run"]
    pairs = lambda words: sorted(zip(words[::2], words[1::2], strict=True))  # noqa: E731
    wanted = run_args(results, tiny_data_dir, 28, "--name", "first-look", study="lr")[1:]
    # Everything that names the study and its settings, not how many workers trained it.
    assert pairs(command[2:]) == [p for p in pairs(wanted) if p[0] != "--jobs"]
