"""`vaesweep compare` on tiny studies: two variants of one study side by side."""

from __future__ import annotations

import html
import shutil

import optuna
import pytest
from scipy import stats

from vaesweep import results

from conftest import write_dataset
from helpers import TERMINAL_HOSTILE, assert_shown_visibly, run_args, small_warmup, vaesweep


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """The small warm-up study three times: as shipped (2 epochs), with 3 epochs, and with
    another validation set."""
    root = tmp_path_factory.mktemp("compare")
    data_dir = write_dataset(root / "fashion")
    results_dir = root / "results"
    study = small_warmup(root)
    for extra in (
        (),
        ("--set", "epochs=3", "--name", "longer"),
        ("--set", "val_size=150", "--name", "other-val"),
    ):
        outcome = vaesweep(*run_args(results_dir, data_dir, 4, *extra, study=study))
        assert outcome.exit_code == 0, outcome.output
    return results_dir


def test_two_studies_side_by_side_with_their_settings_and_the_answers_test(variants):
    outcome = vaesweep("compare", "warmup", "longer", "--results", str(variants))
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.splitlines()
    assert "val_loss (val loss (β=1 −ELBO); lower is better)" in outcome.output
    assert "  epochs: 2 (warmup), 3 (longer)" in lines
    assert not any(line.startswith("  val_size") for line in lines)  # the same in both
    for name in ("warmup", "longer"):
        answer = results.answer(name, results=variants)[0]
        assert f"{name}: {answer.sentence}" in lines
    [verdict] = [line for line in lines if line.startswith("each study's best-mean configuration")]
    # The two bests trained with the same seeds (the same --seed and seed blocks): compared
    # paired on them, at 5% over the 2 x 2 configurations either study could have chosen.
    best = {}
    for name in ("warmup", "longer"):
        data = results.load(name, results=variants)
        table = data.table[data.table["in_answer"]]
        chosen = table[table["warmup_epochs"] == int(data.answers[0].best)]
        seeds = [data.study.entry(t).trial.user_attrs["seed"] for t in chosen["trial"]]
        best[name] = dict(zip(seeds, chosen["val_loss"], strict=True))
    shared = sorted(set(best["warmup"]) & set(best["longer"]))
    assert len(shared) == 2
    test = stats.ttest_rel([best["warmup"][s] for s in shared], [best["longer"][s] for s in shared])
    low, high = test.confidence_interval(1 - 0.05 / 4)
    assert f"({low:.3g} to {high:.3g}, paired on 2 shared seeds)" in verdict
    assert "Bonferroni over the 4 pairs of configurations" in verdict


def test_studies_measured_on_other_images_are_shown_but_not_tested(variants):
    outcome = vaesweep("compare", "warmup", "other-val", "--results", str(variants))
    assert outcome.exit_code == 0, outcome.output
    assert "  val_size: 100 (warmup), 150 (other-val)" in outcome.output.splitlines()
    expected = (
        "not tested: the studies measure val loss (β=1 −ELBO) differently (val_size: 100 vs "
        "150), so their numbers are not like for like"
    )
    assert expected in outcome.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["warmup"], "compare needs at least two studies"),
        (["warmup", "warmup"], "compare names a study twice"),
        (["warmup", "nope"], "unknown study 'nope'"),
        (["warmup", "longer", "--objective", "val_ssim"], "objective 'val_ssim' is not one of"),
    ],
)
def test_bad_comparisons_are_one_line(variants, args, message):
    outcome = vaesweep("compare", *args, "--results", str(variants))
    assert outcome.exit_code == 1
    assert outcome.output.startswith(f"Error: {message}") and outcome.output.count("\n") == 1


def test_the_report_sets_studies_that_share_an_objective_side_by_side(variants, tmp_path):
    out = tmp_path / "report"
    studies = ("--study", "warmup", "--study", "longer")
    data_dir = str(variants.parent / "fashion")
    outcome = vaesweep(
        "report", "--results", str(variants), "--out", str(out), *studies, "--data-dir", data_dir
    )
    assert outcome.exit_code == 0, outcome.output
    page = (out / "index.html").read_text()
    assert '<a href="#side-by-side">studies side by side</a>' in page
    section = page.split('<section id="side-by-side">')[1]
    assert "<li>epochs: 2 (warmup), 3 (longer)</li>" in section
    assert "Each study's best-mean configuration compared: " in html.unescape(section)


def test_stored_names_that_drive_a_terminal_are_shown_visibly(variants, tmp_path):
    results_dir = tmp_path / "results"
    shutil.copytree(variants, results_dir, ignore=shutil.ignore_patterns("report"))
    storage = f"sqlite:///{results_dir}/vaesweep.db"
    for name in TERMINAL_HOSTILE:  # as plain Optuna names a copy
        optuna.copy_study(
            from_study_name="warmup", from_storage=storage, to_storage=storage, to_study_name=name
        )
    for name in TERMINAL_HOSTILE:
        outcome = vaesweep("compare", "warmup", name, "--results", str(results_dir))
        assert outcome.exit_code == 0, outcome.output
        assert "\x1b" not in outcome.output and "\u202e" not in outcome.output
        assert name.encode("unicode_escape").decode() in outcome.output
    outcome = vaesweep("compare", *TERMINAL_HOSTILE, "--results", str(results_dir))
    assert_shown_visibly(outcome.output)
