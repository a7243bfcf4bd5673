"""The Python results API (`vaesweep.results`), and the README's example of it, run as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from vaesweep import results
from vaesweep.errors import VaesweepError
from vaesweep.layout import HISTORY_FILE, trial_folder

from test_report import reported  # noqa: F401 (a fixture: the tiny reported study)

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [example] = [b for b in blocks if "from vaesweep import results" in b]
    return example


def test_the_readme_example_runs_as_written(reported, tmp_path, monkeypatch, capsys):  # noqa: F811
    stored, _, _ = reported
    shutil.copytree(stored, tmp_path / "results")
    monkeypatch.chdir(tmp_path)  # the example reads ./results, as `vaesweep run` writes it
    namespace: dict = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert results.answer("warmup")[0].sentence in printed
    assert isinstance(namespace["trials"], pd.DataFrame) and len(namespace["trials"]) == 4


def test_trials_are_plain_columns_of_the_stored_values(reported):  # noqa: F811
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


def test_the_answer_is_the_one_the_run_and_the_report_give(reported):  # noqa: F811
    stored, _, _ = reported
    answer, effects = results.answer("warmup", results=stored)
    assert answer.objective == "val_loss" and answer.direction == "minimize"
    assert answer.sentence in (stored / "report" / "index.html").read_text().replace("&#x27;", "'")
    written = pd.read_csv(stored / "report" / "warmup" / "effects.csv")
    assert list(written.columns) == list(effects.columns) and len(written) == len(effects)


def test_a_trial_s_history_is_its_history_csv(reported):  # noqa: F811
    stored, _, _ = reported
    history = results.history("warmup", 2, results=stored)
    expected = pd.read_csv(trial_folder(stored, "warmup", 2) / HISTORY_FILE)
    pd.testing.assert_frame_equal(history, expected)
    assert list(history["epoch"]) == [0, 1]  # as stored: 0 is the first epoch


def test_what_cannot_be_read_is_one_line(reported, tmp_path):  # noqa: F811
    stored, _, _ = reported
    copy = tmp_path / "results"
    shutil.copytree(stored, copy)
    (trial_folder(copy, "warmup", 1) / HISTORY_FILE).unlink()
    cases = {
        lambda: results.load("nope", results=copy): "unknown study 'nope'",
        lambda: results.load("warmup", results=tmp_path / "none"): "no results in",
        lambda: results.history("warmup", 9, results=copy): "has no finished trial 9",
        lambda: results.history("warmup", 1, results=copy): "trial 1: ",
    }
    for call, message in cases.items():
        with pytest.raises(VaesweepError, match=message) as raised:
            call()
        assert "\n" not in str(raised.value)
