"""The Python results API (`vaesweep.results`), and the README's example of it, run as written."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest

from vaesweep import results, stats
from vaesweep.errors import VaesweepError
from vaesweep.store.layout import HISTORY_FILE, trial_folder
from vaesweep.store.storage import ANSWER_ATTR, LOOKS_ATTR, default_storage_url

from helpers import run_args, small_warmup, snapshot, vaesweep

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [example] = [b for b in blocks if "from vaesweep import results" in b]
    return example


def test_the_readme_example_runs_as_written(reported, tmp_path, monkeypatch, capsys):
    stored, _, _ = reported
    shutil.copytree(stored, tmp_path / "results")
    monkeypatch.chdir(tmp_path)  # the example reads ./results, as `vaesweep run` writes it
    namespace: dict = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert results.answer("warmup")[0].sentence in printed
    assert isinstance(namespace["trials"], pd.DataFrame) and len(namespace["trials"]) == 4


def test_trials_are_plain_columns_of_the_stored_values(reported):
    stored, _, run = reported
    table = results.trials("warmup", results=stored)
    assert {"trial", "state", "phase", "replicate", "in_answer", "warmup_epochs"} <= set(table)
    assert {"val_loss", "val_knn_accuracy", "test_ssim", "test_knn_notebook"} <= set(table)
    assert table["in_answer"].all() and (table["state"] == "COMPLETE").all()
    assert sorted(table["warmup_epochs"]) == [0, 0, 1, 1]
    assert table["val_loss"].dtype == float  # a number, not a dict to unpack
    # The report's trials.csv is this table.
    written = pd.read_csv(stored / "report" / "warmup" / "trials.csv")
    pd.testing.assert_series_equal(written["val_loss"], table["val_loss"], check_exact=True)


def test_the_answer_is_the_one_the_run_and_the_report_give(reported):
    stored, _, _ = reported
    answer, effects = results.answer("warmup", results=stored)
    assert answer.objective == "val_loss" and answer.direction == "minimize"
    assert answer.sentence in html.unescape((stored / "report" / "index.html").read_text())
    written = pd.read_csv(stored / "report" / "warmup" / "effects.csv")
    assert list(written.columns) == list(effects.columns) and len(written) == len(effects)


def test_a_trial_s_history_is_its_history_csv(reported):
    stored, _, _ = reported
    history = results.history("warmup", 2, results=stored)
    expected = pd.read_csv(trial_folder(stored, "warmup", 2) / HISTORY_FILE)
    pd.testing.assert_frame_equal(history, expected)
    assert list(history["epoch"]) == [0, 1]  # as stored: 0 is the first epoch


def test_what_cannot_be_read_is_one_line(reported, tmp_path):
    stored, _, _ = reported
    copy = tmp_path / "results"
    shutil.copytree(stored, copy)
    (trial_folder(copy, "warmup", 1) / HISTORY_FILE).unlink()
    cases = {
        lambda: results.load("nope", results=copy): "unknown study 'nope'",
        lambda: results.load("warmup", results=tmp_path / "none"): "no results yet: the folder",
        lambda: results.history("warmup", 9, results=copy): "has no finished trial 9",
        lambda: results.history("warmup", 1, results=copy): "trial 1: ",
    }
    for call, message in cases.items():
        with pytest.raises(VaesweepError, match=message) as raised:
            call()
        assert "\n" not in str(raised.value)


def test_optuna_s_tools_see_the_answer(reported):
    from optuna_dashboard import get_note

    stored, _, _ = reported
    answer, _ = results.answer("warmup", results=stored)
    study = results.load("warmup", results=stored).study.record
    published = study.user_attrs[ANSWER_ATTR]
    assert published["answers"] == [answer.sentence]
    assert published["headlines"] == [answer.headline] and answer.sentence.startswith(
        answer.headline
    )
    assert [c["configuration"] for c in published["configurations"]] == [
        "warmup_epochs=0",
        "warmup_epochs=1",
    ]
    assert "best trial" in published["advice"]
    page = get_note(study)  # optuna-dashboard's study note
    assert answer.sentence in page and "| warmup_epochs=1 | 2 |" in page
    assert "| minus the best mean of the others (MCB 95% simultaneous) | verdict |" in page


COMPLETE_WITHOUT_TORCH = """
import sys
from click.testing import CliRunner
from vaesweep.cli import main
outcome = CliRunner().invoke(main, sys.argv[1:])
print(outcome.exit_code, "torch" in sys.modules, "optuna_dashboard" in sys.modules)
"""


def test_a_complete_study_answers_without_importing_torch(reported, tmp_path):
    import subprocess
    import sys

    stored, _, _ = reported
    args = run_args(stored, tmp_path / "no-data-here", 4, study=small_warmup(tmp_path))
    run = subprocess.run(
        [sys.executable, "-c", COMPLETE_WITHOUT_TORCH, *args], capture_output=True, text=True
    )
    # Nor optuna-dashboard (a second to import): the note already holds this answer.
    assert run.stdout.split() == ["0", "False", "False"], run.stdout + run.stderr


def test_a_complete_study_says_so_without_loading_data(reported, tmp_path):
    stored, _, _ = reported
    copy = tmp_path / "results"
    shutil.copytree(stored, copy)
    before = snapshot(copy)
    args = run_args(copy, tmp_path / "no-data-here", 4, study=small_warmup(tmp_path))
    outcome = vaesweep(*args)
    assert outcome.exit_code == 0, outcome.output
    assert "has 4 finished trials already: nothing to run" in outcome.output
    unwrapped = " ".join(outcome.output.split())  # the last lines wrap at spaces
    assert results.answer("warmup", results=copy)[0].sentence in unwrapped
    assert snapshot(copy) == before
    # One more trial needs the data, and says so.
    outcome = vaesweep(*run_args(copy, tmp_path / "no-data-here", 5, study=small_warmup(tmp_path)))
    assert outcome.exit_code == 1 and "Fashion-MNIST" in outcome.output


def test_each_trial_records_its_versions_and_processor_and_the_report_shows_them(reported):
    import json
    import platform

    import optuna
    import torch

    import vaesweep

    stored, _, _ = reported
    stamp = json.loads((trial_folder(stored, "warmup", 0) / "trial.json").read_text())
    environment = stamp["environment"]
    assert environment["torch"] == torch.__version__ and environment["optuna"] == optuna.__version__
    assert environment["vaesweep"] == vaesweep.__version__
    assert environment["python"] == platform.python_version() and environment["processor"]
    page = (stored / "report" / "index.html").read_text()
    assert f"Trained with: vaesweep {vaesweep.__version__}, PyTorch {torch.__version__}" in page
    assert f"on {environment['processor']}</p>" in page


def test_a_study_s_answer_is_vaesweep_stats_compare_on_its_trials_table(reported):
    stored, _, _ = reported
    data = results.load("warmup", results=stored)
    found = stats.compare(
        data.table[data.table["in_answer"]],
        by="warmup_epochs",
        objective="val_loss",
        direction="minimize",
        margin=data.study.equivalence.get("val_loss"),
        max_blocks=data.study.design.most_blocks,
        looks=[n for n in data.study.looks if n < 2],  # the looks before this one (2 blocks)
    ).set_index("warmup_epochs")
    answer = data.answers[0]
    assert found.loc[int(answer.best), "may_be_best"]  # the best mean is never ruled out
    effects = data.effects[data.effects["metric"] == "val_loss"].set_index("value")
    for d in answer.comparison.entries:
        row = found.loc[int(d.config)]
        assert (row["diff"], row["diff_low"], row["diff_high"]) == pytest.approx(
            (d.diff, d.low, d.high)
        )
        assert (row["verdict"], row["may_be_best"]) == (d.verdict, d.may_be_best)
        assert effects.loc[d.config, "diff_low"] == pytest.approx(d.low)
        assert effects.loc[d.config, "verdict"] == d.verdict
    # Every answer shown is a recorded look: the run's and the report's saw the same 2 blocks.
    assert data.study.looks == (2,)


def test_reading_a_study_records_no_look_and_a_read_only_storage_still_answers(copy_of):
    """`results.load` only reads; a command that shows the answer records the look, and where the
    storage refuses the write (opened read-only), it still answers and says the look was not
    recorded."""
    copy, data_dir = copy_of
    record = optuna.load_study(study_name="warmup", storage=default_storage_url(copy))
    record.set_user_attr(LOOKS_ATTR, None)  # no look yet (Optuna deletes no attribute)
    loaded = results.load("warmup", results=copy)
    assert loaded.study.looks == () and loaded.answers
    assert record.user_attrs[LOOKS_ATTR] is None  # reading wrote nothing

    read_only = f"sqlite:///file:{copy / 'vaesweep.db'}?mode=ro&uri=true"
    before = (copy / "vaesweep.db").read_bytes()
    same = results.load("warmup", read_only, results=copy)
    assert same.answers[0].sentence == loaded.answers[0].sentence
    refused = results.record_look(same)
    assert refused is not None and "look at 2 blocks was not recorded" in refused
    outcome = vaesweep(
        "report", "--results", str(copy), "--storage", read_only, "--data-dir", str(data_dir)
    )
    assert outcome.exit_code == 0, outcome.output
    assert "warning: study 'warmup': this look at 2 blocks was not recorded" in outcome.output
    page = html.unescape((copy / "report" / "index.html").read_text())
    assert "this look at 2 blocks was not recorded" in page
    assert loaded.answers[0].sentence in page
    assert (copy / "vaesweep.db").read_bytes() == before

    assert results.record_look(loaded) is None  # a writable storage records it
    assert record.user_attrs[LOOKS_ATTR]["blocks"] == [2]


@pytest.mark.parametrize(
    ("definition", "said"),
    [
        (lambda d: {**d, "design": {**d["design"], "max_replicates": 4}}, "'max_replicates'"),
        (lambda d: {**d, "design": [1, 2]}, "a malformed design"),
        (lambda d: "a string", "a malformed design"),
    ],
)
def test_a_stored_definition_this_version_cannot_read_is_one_line(copy_of, definition, said):
    copy, data_dir = copy_of
    record = optuna.load_study(study_name="warmup", storage=default_storage_url(copy))
    record.set_user_attr(
        "vaesweep_definition", definition(record.user_attrs["vaesweep_definition"])
    )
    with pytest.raises(VaesweepError, match=f"study 'warmup': its stored definition has .*{said}"):
        results.load("warmup", results=copy)
    outcome = vaesweep("report", "--results", str(copy), "--data-dir", str(data_dir))
    assert outcome.exit_code == 1 and "Traceback" not in outcome.output
    assert outcome.output.startswith("Error: study 'warmup': its stored definition has")


def test_a_study_s_answer_prints_short_and_as_a_table_in_a_notebook(reported):
    stored, _, _ = reported
    data = results.load("warmup", results=stored)
    for shown in (repr(data), repr(data.answers[0]), repr(data.study)):
        assert len(shown) < 200 and shown.startswith("<") and "\n" not in shown
    assert repr(data).startswith("<StudyAnswer 'warmup': 4 trials; ")
    page = data._repr_html_()  # what Jupyter shows
    assert html.escape(data.answers[0].sentence) in page
    assert page.count("</tr>") == 1 + 2  # a header, and a row per configuration
