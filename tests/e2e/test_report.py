"""`vaesweep report` end to end on a tiny study."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from vaesweep import results as results_api
from vaesweep.errors import VaesweepError

from helpers import (
    TERMINAL_HOSTILE,
    assert_shown_visibly,
    run_args,
    small_warmup,
    stored_trials,
    vaesweep,
)

TRIAL_FIGURES = ("latent", "manifold", "reconstructions", "uncertainty", "history", "kl-per-dim")
# A one-parameter grid: no importances.
STUDY_FIGURES = ("paired-differences", "effects", "learning-curves")


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and not value.startswith("#"):
                self.targets.append(value)


def links_of(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text())
    return parser.targets


def test_the_report_says_what_it_draws_off_a_terminal(reported):
    _, _, outcome = reported
    lines = outcome.output.splitlines()
    assert "study warmup: drawing its figures and those of 4 trials" in lines
    [done] = [line for line in lines if line.startswith("study warmup: done")]
    assert re.fullmatch(r"study warmup: done in \d+ s", done)
    assert lines.index(done) > lines.index(
        "study warmup: drawing its figures and those of 4 trials"
    )
    assert lines[-1].startswith("report ")  # the summary last


def test_every_figure_and_table_is_written(reported):
    results, _, outcome = reported
    report = results / "report"
    assert "1 study, 4 trials" in outcome.output
    images = [report / "classes.png"] + [report / "warmup" / f"{n}.png" for n in STUDY_FIGURES]
    for number in range(4):
        images += [report / "warmup" / f"trial-{number:04d}" / f"{n}.png" for n in TRIAL_FIGURES]
    for path in images:
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300
    markdown = (report / "warmup" / "trials.md").read_text().splitlines()
    assert len(markdown) == 6 and all(line.startswith("|") for line in markdown)  # header, rule, 4


def test_table_has_one_row_per_trial_with_the_stored_values(reported):
    results, _, _ = reported
    table = pd.read_csv(results / "report" / "warmup" / "trials.csv")
    trials = stored_trials(results)
    assert table["trial"].tolist() == [t.number for t in trials]
    for trial, row in zip(trials, table.itertuples(), strict=True):
        assert row.state == trial.state.name
        assert row.warmup_epochs == trial.params["warmup_epochs"]
        for name, value in trial.user_attrs["metrics"].items():
            if not name.endswith("_kl_per_dim"):  # lists: in metrics.json and their figure
                assert getattr(row, name) == value, name
    # One meaning of "best": the answer's configuration, marked only where the answer shows it
    # better than every other.
    answer = results_api.answer("warmup", results=results)[0]
    marked = table.loc[table["best"], "warmup_epochs"].astype(str).unique().tolist()
    assert marked == ([answer.best] if answer.shown_best else [])


def test_effects_agree_with_the_trials_table(reported):
    results, _, _ = reported
    report = results / "report" / "warmup"
    table = pd.read_csv(report / "trials.csv")
    effects = pd.read_csv(report / "effects.csv")
    fair = table[table["in_answer"]]
    assert set(effects["param"]) == {"warmup_epochs"}
    assert {"val_knn_accuracy", "test_knn_accuracy", "val_ssim", "test_loss"} <= set(
        effects["metric"]
    )
    for row in effects.itertuples():
        values = fair.loc[fair["warmup_epochs"] == int(row.value), row.metric]
        assert row.n == len(values)
        assert row.mean == pytest.approx(values.mean())


def test_the_answer_comes_first_in_the_study_section(reported):
    results, _, _ = reported
    page = (results / "report" / "index.html").read_text()
    section = page[page.index('<section id="warmup">') :]
    assert section.index("Question:") < section.index("Answer:") < section.index("<img")
    assert "warmup_epochs = " in section[: section.index("<img")]
    # The answer's evidence, each configuration minus the best, comes right after it.
    first = section.index("<img")
    assert section[first:].startswith('<img src="warmup/paired-differences.png"')
    assert first < section.index("Compared: 4 completed grid trials") < section.index("effects.png")
    assert "paired t tests within 2 seed blocks" in section[:first]
    assert "Fixed settings:" in section[: section.index("effects.png")]
    # Anchors under the answer, only those whose protocol the study shares (2-D, grey images).
    anchors = section[section.index("<h3>anchors</h3>") : section.index("<h3>trials</h3>")]
    assert "Parametric UMAP" in anchors and "2-D PCA of the pixels" in anchors
    assert "Exemplar VAE" not in anchors
    # Beside them, the answer's configuration, named by what chose it: "best" is the answer's word.
    assert "<th>this study at its best mean of val loss (β=1 −ELBO) (95% CI)</th>" in anchors
    assert "best configuration" not in anchors
    # Above every section, the study's answer in a line: each objective's verdict, named, with
    # its best mean and interval, linking to the whole sentence.
    [top] = re.findall(r"<ul class=answers><li>(.*?)</li>", page)
    answer = results_api.load("warmup", results=results).answers[0]
    expected = f"val loss (β=1 −ELBO): {answer.headline} (best mean {answer.mean:.4g} ± "
    assert html.unescape(top).startswith(f'<a href="#warmup">warmup</a>: {expected}'), top
    assert top.endswith('<a href="#warmup">(the answer)</a>')


def test_every_link_in_the_page_resolves(reported):
    results, _, _ = reported
    page = results / "report" / "index.html"
    targets = links_of(page)
    assert "warmup/trials.csv" in targets and "classes.png" in targets
    assert len([t for t in targets if t.endswith(".png")]) >= 1 + len(STUDY_FIGURES) + 4 * 5
    for target in targets:
        assert not target.startswith(("/", "http")), target
        assert (page.parent / target).is_file(), target


def test_rerun_redraws_nothing_and_a_new_trial_redraws_only_its_own(copy_of):
    results, data_dir = copy_of
    report = results / "report"
    pngs = sorted(report.rglob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in pngs}
    again = vaesweep("report", "--results", str(results), "--data-dir", str(data_dir))
    assert again.exit_code == 0 and "0 figures drawn" in again.output
    assert {p: p.stat().st_mtime_ns for p in pngs} == before

    study = str(data_dir.parent / "warmup.toml")
    assert vaesweep(*run_args(results, data_dir, 5, study=study)).exit_code == 0
    more = vaesweep("report", "--results", str(results), "--data-dir", str(data_dir))
    assert f"{len(TRIAL_FIGURES) + len(STUDY_FIGURES)} figures drawn" in more.output
    assert all(p.stat().st_mtime_ns == before[p] for p in pngs if "trial-" in str(p))
    assert (report / "warmup" / "trial-0004" / "manifold.png").is_file()
    # Its seed block is incomplete: shown, greyed, not compared yet.
    table = pd.read_csv(report / "warmup" / "trials.csv")
    assert not table.loc[4, "in_answer"] and table.loc[4, "note"] == "its seed block is incomplete"
    assert table.loc[:3, "in_answer"].all()


def test_missing_folder_and_unreadable_weights_mark_the_trial_and_the_rest_renders(copy_of):
    results, data_dir = copy_of
    shutil.rmtree(results / "report")
    shutil.rmtree(results / "warmup" / "trial-0001")
    (results / "warmup" / "trial-0002" / "model.pt").write_bytes(b"garbage")
    outcome = vaesweep("report", "--results", str(results), "--data-dir", str(data_dir))
    assert outcome.exit_code == 0, outcome.output
    assert "trial 1: trial folder" in outcome.output and "is missing" in outcome.output
    assert "trial 2: " in outcome.output and "cannot load weights" in outcome.output
    report = results / "report"
    assert (report / "warmup" / "trial-0000" / "manifold.png").is_file()
    assert not (report / "warmup" / "trial-0001").exists()
    table = pd.read_csv(report / "warmup" / "trials.csv")
    assert "is missing" in table.loc[1, "note"]
    assert "cannot load weights" in (report / "index.html").read_text()
    for target in links_of(report / "index.html"):
        assert (report / target).is_file(), target


def test_damaged_files_and_foreign_studies_are_marked_and_the_rest_renders(copy_of):
    results, data_dir = copy_of
    shutil.rmtree(results / "report")
    (results / "warmup" / "trial-0000" / "history.csv").write_text("")
    (results / "warmup" / "trial-0001" / "latents.npz").write_bytes(b"other bytes")
    # Older folders hold a metrics.json too; the record's copy is the one read, so it is ignored.
    (results / "warmup" / "trial-0002" / "metrics.json").write_text("[1, 2]")
    plain = optuna.create_study(study_name="plain", storage=f"sqlite:///{results}/vaesweep.db")
    plain.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    outcome = vaesweep("report", "--results", str(results), "--data-dir", str(data_dir))
    assert outcome.exit_code == 0, outcome.output
    assert "Traceback" not in outcome.output
    for number, file in ((0, "history.csv"), (1, "latents.npz")):
        assert f"trial {number}: " in outcome.output and f"{file}: cannot read" in outcome.output
    assert "trial 2: " not in outcome.output and "metrics.json" not in outcome.output
    table = pd.read_csv(results / "report" / "warmup" / "trials.csv")
    assert "history.csv: cannot read" in table.loc[0, "note"]
    assert pd.isna(table.loc[2, "note"])
    assert (results / "report" / "warmup" / "trial-0002" / "kl-per-dim.png").is_file()
    page = results / "report" / "index.html"
    assert '<section id="plain">' in page.read_text()
    for target in links_of(page):
        assert (page.parent / target).is_file(), target


def test_a_one_dimensional_latent_is_drawn(tmp_path, tiny_data_dir):
    study = tmp_path / "one.toml"
    study.write_text(
        'description = "1-D"\nobjectives = ["val_loss"]\n'
        '[search]\nwarmup_epochs = { type = "int", low = 0, high = 1 }\n'
        "[fixed]\nlatent_dim = 1\n"
    )
    results = tmp_path / "results"
    args = run_args(results, tiny_data_dir, 1)
    args[args.index("warmup")] = str(study)
    assert vaesweep(*args).exit_code == 0
    outcome = vaesweep("report", "--results", str(results), "--data-dir", str(tiny_data_dir))
    assert outcome.exit_code == 0, outcome.output
    assert "Traceback" not in outcome.output
    page = (results / "report" / "index.html").read_text()
    assert '<section id="one">' in page
    for name in TRIAL_FIGURES:
        assert (results / "report" / "one" / "trial-0000" / f"{name}.png").is_file(), name


def test_the_page_says_what_the_run_warned_and_fits_its_trials_table(tmp_path, tiny_data_dir):
    """A warning the run printed is on the page too; the page's trials table holds the trial,
    its parameters and objectives (every metric is in trials.csv); no panel is drawn empty."""
    results = tmp_path / "results"
    run = vaesweep(
        *run_args(results, tiny_data_dir, 2, "--set", "epochs=1", "--set", "iwae_samples=0")
    )
    assert run.exit_code == 0, run.output
    [warned] = [line for line in run.output.splitlines() if "beta never reaches 1" in line]
    outcome = vaesweep("report", "--results", str(results), "--data-dir", str(tiny_data_dir))
    assert outcome.exit_code == 0, outcome.output
    page = (results / "report" / "index.html").read_text()
    assert f"The run warned: {html.escape(warned.removeprefix('warning: '))}" in page
    header = page.split("<h3>trials</h3>")[1].split("</tr>")[0]
    columns = re.findall(r"<th>([^<]*)</th>", header)
    assert columns[:3] == ["trial", "best", "state"] and "warmup_epochs" in columns
    assert "val_knn_accuracy" in columns and "val_ssim" not in columns and "val_nll" not in columns
    assert "val_ssim" in pd.read_csv(results / "report" / "warmup" / "trials.csv").columns


def test_error_cases_give_one_line(copy_of, tmp_path):
    results, data_dir = copy_of
    a_file = tmp_path / "a-file"
    cases = [
        (["--study", "nope"], "unknown study 'nope'"),
        (
            ["--results", str(tmp_path / "nothing")],
            f"no results yet: the folder {tmp_path / 'nothing'} holds no vaesweep.db",
        ),
        (["--storage", "nonsense"], "is not a URL"),
        (["--out", str(a_file / "report")], f"cannot be made: {a_file} is a file, not a folder"),
        (["--out", str(a_file)], f"report folder {a_file} is a file, not a folder"),
    ]
    a_file.write_text("")
    empty = optuna.create_study(study_name="empty", storage=f"sqlite:///{results}/vaesweep.db")
    assert not empty.trials
    cases.append((["--study", "empty"], "study 'empty' has no finished trials"))
    for args, message in cases:
        outcome = vaesweep("report", "--results", str(results), "--data-dir", str(data_dir), *args)
        assert outcome.exit_code != 0
        lines = outcome.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines


def _emptied(db: Path) -> None:
    db.write_bytes(b"")  # as a crash or a full disk leaves it, a while ago
    os.utime(db, (time.time() - 60, time.time() - 60))


def _damaged(db: Path) -> None:
    size = db.stat().st_size
    with db.open("r+b") as handle:  # 8 KB of random bytes in its middle
        handle.seek(size // 2 - 4096)
        handle.write(np.random.default_rng(0).bytes(8192))


@pytest.mark.parametrize(
    "damage, message",
    [
        (_emptied, "is an empty file (0 bytes), not an Optuna database"),
        (_damaged, "database disk image is malformed; "),
    ],
    ids=["0 bytes", "random bytes inside"],
)
def test_a_damaged_database_is_one_line_everywhere_and_left_as_it_is(damage, message, copy_of):
    results, data_dir = copy_of
    db = results / "vaesweep.db"
    damage(db)
    before = db.read_bytes()
    for args in (
        ("report", "--results", str(results), "--data-dir", str(data_dir)),
        run_args(results, data_dir, 6, study=small_warmup(results.parent)),
    ):
        outcome = vaesweep(*args)
        assert outcome.exit_code == 1, outcome.output
        [line] = outcome.output.strip().splitlines()
        assert line.startswith("Error: storage ") and message in line, line
        assert "re-running" not in line  # only restoring it mends it
    with pytest.raises(VaesweepError, match=re.escape(message)):
        results_api.load("warmup", results=results)
    assert db.read_bytes() == before


def test_hostile_study_names_write_nothing_outside_out_and_link_only_files(copy_of, tmp_path):
    """Plain-Optuna studies of any name share the storage: each gets a safe folder in the
    report, every link is a relative file, and every name is shown as text."""
    results, data_dir = copy_of
    storage = f"sqlite:///{results}/vaesweep.db"
    hostile = [
        f"{tmp_path}/absolute/x",
        "../x",
        "javascript:alert(1)",
        "a/b",
        "index.html",
        "<b>bold</b>\"'",
        "two\nlines",
        "[red]rich[/red]",
        "a" * 300,
        *TERMINAL_HOSTILE,
    ]
    for name in hostile:
        plain = optuna.create_study(study_name=name, storage=storage)
        plain.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    two = optuna.create_study(study_name="pareto", storage=storage, directions=["minimize"] * 2)
    two.optimize(lambda trial: (trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)), 3)

    out = results / "out"
    outside = {p for p in tmp_path.rglob("*") if out not in p.parents} | {out}
    outcome = vaesweep(
        "report", "--results", str(results), "--out", str(out), "--data-dir", str(data_dir)
    )
    assert outcome.exit_code == 0, outcome.output
    assert "Traceback" not in outcome.output and "Error" not in outcome.output
    assert {p for p in tmp_path.rglob("*") if out not in p.parents} | {out} == outside
    assert not (tmp_path / "absolute").exists() and not (results / "x").exists()
    assert len([p for p in out.iterdir() if p.is_dir()]) == len(hostile) + 2  # + warmup, pareto
    page = out / "index.html"
    text = page.read_text()
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert_shown_visibly(outcome.output)
    assert_shown_visibly(text)
    assert 'href="javascript:' not in text
    for target in links_of(page):
        assert not target.startswith("/") and ":" not in target.split("/")[0], target
        assert (page.parent / target).resolve().is_relative_to(out.resolve()), target
        assert (page.parent / target).is_file(), target
    assert (out / "pareto" / "trials.csv").is_file()


def test_damage_after_a_report_is_found_by_the_next_one(copy_of):
    import numpy as np

    results, data_dir = copy_of
    folders = results / "warmup"
    (folders / "trial-0000" / "history.csv").unlink()
    (folders / "trial-0001" / "latents.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    (folders / "trial-0002" / "model.pt").write_bytes(np.random.default_rng(1).bytes(4096))
    (folders / "trial-0003" / "config.json").write_text("{")
    outcome = vaesweep("report", "--results", str(results), "--data-dir", str(data_dir))
    assert outcome.exit_code == 0, outcome.output
    warned = {line for line in outcome.output.splitlines() if line.startswith("warning: ")}
    assert any("trial 0: " in w and "history.csv: cannot read (missing)" in w for w in warned)
    assert any("trial 1: " in w and "latents.npz: cannot read (" in w for w in warned)
    assert any("trial 2: " in w and "model.pt: cannot load weights" in w for w in warned)
    assert any("trial 3: " in w and "no readable trial.json or config.json" in w for w in warned)
    for name in ("FileNotFoundError", "UnicodeDecodeError", "BadZipFile", "ValueError"):
        assert name not in outcome.output
    table = pd.read_csv(results / "report" / "warmup" / "trials.csv")
    assert table["note"].fillna("").str.contains("cannot |no readable").all()


def test_a_full_disk_while_reporting_is_one_line_that_keeps_what_is_stored(copy_of, monkeypatch):
    from vaesweep.report import render as report

    results, data_dir = copy_of
    shutil.rmtree(results / "report")

    def onto_a_full_disk(path, text):  # the kernel's own ENOSPC
        with open("/dev/full", "w") as full:
            full.write(text)

    monkeypatch.setattr(report, "_write_if_changed", onto_a_full_disk)
    outcome = vaesweep("report", "--results", str(results), "--data-dir", str(data_dir))
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines()[-1] == (
        f"Error: cannot write the report in {results / 'report'}: No space left on device; "
        "nothing stored was changed; run the report again once there is room"
    )


def test_a_metric_the_study_did_not_measure_gets_no_empty_panel():
    from vaesweep.answer.effects import effects_table
    from vaesweep.report.figures import effects_plot

    table = pd.DataFrame(
        {
            "warmup_epochs": [0, 1, 0, 1],
            "replicate": [0, 0, 1, 1],
            "val_loss": [300.0, 301.0, 299.0, 302.0],
            "val_nll": [float("nan")] * 4,  # iwae_samples = 0
        }
    )
    metrics = ["val_loss", "val_nll"]
    effects = effects_table(table, ["warmup_epochs"], metrics, blocked=True)
    figure = effects_plot(table, effects, ["warmup_epochs"], metrics, "grid")
    drawn = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert len(drawn) == 1 and "−log p(x)" not in drawn[0]


def test_a_one_epoch_history_is_drawn_around_epoch_1_with_whole_epochs():
    from vaesweep.report.figures import HISTORY_PANELS, training_history

    keys = [f"{split}_{key}" for key, _ in HISTORY_PANELS for split in ("train", "val")]
    for epochs in (1, 12):
        history = pd.DataFrame(
            {"epoch": range(epochs), "beta": 1.0, "lr": 1e-3} | {key: 1.0 for key in keys}
        )
        for ax in training_history(history, "t").axes:
            low, high = ax.get_xlim()
            assert (low, high) == (0.5, epochs + 0.5)
            shown = [tick for tick in ax.get_xticks() if low <= tick <= high]
            assert shown and all(float(tick).is_integer() for tick in shown)
            if epochs == 1:
                assert shown == [1]


def test_learning_curves_count_epochs_from_1_and_keep_the_last_epochs_readable():
    from vaesweep.report.figures import learning_curves

    lr = [0.0003250038744574342, 0.001]
    loss = {e: 300 - 10 * e + 500 * (e == 0) for e in range(7)}  # epoch 1 far above the rest
    rows = [
        {"trial": t, "lr": lr[t], "epoch": e, "val_elbo": loss[e] + t, "beta": 1.0}
        for t in (0, 1)
        for e in range(7)
    ]
    left = learning_curves(pd.DataFrame(rows), "lr").axes[0]
    assert [line.get_xdata()[0] for line in left.get_lines()[:2]] == [1, 1]
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["0.000325", "0.001"]
    low, high = left.get_ylim()
    assert high < 800 and low < 240 < 291 < high  # epochs 2-7 span the axis; epoch 1 is above
    assert "epoch 1's loss lies above it" in left.get_title()


def test_many_metrics_wrap_into_rows_and_a_constant_count_gets_a_whole_number_axis():
    import numpy as np

    from vaesweep.report.figures import explored

    metrics = ["val_loss", "val_recon", "val_kl", "val_mse", "val_ssim", "val_knn_accuracy"]
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"lr": 10 ** rng.uniform(-4, -2, 6), "state": ["COMPLETE"] * 6})
    table = table.assign(**{m: rng.normal(1, 0.1, 6) for m in metrics}, val_active_units=2)
    fig = explored(table, "lr", [*metrics, "val_active_units"], categorical=False, log=True)
    width, height = fig.get_size_inches()
    assert width < 2 * height  # 3 rows of at most 3, not a strip of 7
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 7
    assert shown[-1].get_ylim() == (1, 3)  # not 1.9 to 2.1
    assert all(tick == int(tick) for tick in shown[-1].get_yticks())


def test_the_pairing_caption_says_which_way_pairing_moved_the_variance():
    from vaesweep.answer.effects import objective_answer as answer
    from vaesweep.report.figures import pairing_caption

    def caption(values: dict[int, list[float]]) -> tuple[str, float]:
        rows = [
            {"w": w, "replicate": r, "v": v} for w, vs in values.items() for r, v in enumerate(vs)
        ]
        found = answer(pd.DataFrame(rows), ["w"], "v", "maximize", blocked=True).comparison
        return pairing_caption(found), found.variance_ratio

    # Blocks that share most of the noise: pairing cuts the variance of a difference.
    base = [0.60, 0.70, 0.80, 0.65]
    shared, ratio = caption(
        {0: base, 2: [b + d for b, d in zip(base, [0.01, 0.012, 0.009, 0.011], strict=True)]}
    )
    assert ratio > 100 and f"pairing cut the variance\nof a difference {ratio:.2g}×" in shared
    # Blocks that pull the two apart: the differences ±0.02 have variance 4/3 × 0.02², twice
    # the two configurations' own variances added (2 × 1/3 × 0.02²).
    low, high = [0.70, 0.72, 0.70, 0.72], [0.72, 0.70, 0.72, 0.70]
    apart, ratio = caption({0: low, 2: high})
    assert ratio == pytest.approx(0.5)
    assert "did not reduce the variance\nof a difference: 2× that of unpaired replicates" in apart


def test_a_large_study_draws_the_answer_s_and_the_best_trials_figures(copy_of, monkeypatch):
    """Each trial's own figures take about a second: a report draws them for the trials in the
    answer, then the best of the rest, up to a cap; --all-trials draws every one."""
    from vaesweep.report import render

    results, data_dir = copy_of
    monkeypatch.setattr(render, "MAX_TRIAL_FIGURES", 2)
    out = results.parent / "capped"
    args = ("report", "--results", str(results), "--out", str(out), "--data-dir", str(data_dir))
    outcome = vaesweep(*args)
    assert outcome.exit_code == 0, outcome.output
    drawn = sorted(p.name for p in (out / "warmup").glob("trial-*"))
    table = pd.read_csv(out / "warmup" / "trials.csv")
    best_two = table.nsmallest(2, "val_loss")["trial"]  # all 4 are in the answer: the best two
    assert drawn == [f"trial-{n:04d}" for n in sorted(best_two)]
    page = (out / "index.html").read_text()
    # All 4 are in the answer: the page says that only the best 2 of them are drawn.
    assert "Figures of 2 of 4 trials: 2 of the 4 in the answer, the best by val loss" in page
    assert page.count("<details>") == 2
    assert "study warmup: drawing its figures and those of 2 trials" in outcome.output
    everything = vaesweep(*args, "--all-trials")
    assert everything.exit_code == 0, everything.output
    assert len(list((out / "warmup").glob("trial-*"))) == 4
    assert "Figures of" not in (out / "index.html").read_text()


def test_an_empty_database_made_just_now_is_refused_everywhere(tmp_path, tiny_data_dir):
    """vaesweep never shows a database empty while making it, so a 0-byte file is refused
    however young: no fresh schema written into it, nothing stored, and one line."""
    results = tmp_path / "results"
    results.mkdir()
    db = results / "vaesweep.db"
    db.write_bytes(b"")  # made a moment ago
    for args in (
        run_args(results, tiny_data_dir, 2),
        ("report", "--results", str(results)),
    ):
        outcome = vaesweep(*args)
        assert outcome.exit_code == 1, outcome.output
        assert "is an empty file (0 bytes), not an Optuna database" in outcome.output
        assert db.read_bytes() == b""
    with pytest.raises(VaesweepError, match="is an empty file"):
        results_api.load("warmup", results=results)
    assert sorted(p.name for p in results.iterdir()) == ["vaesweep.db"]


def test_processes_making_one_database_at_once_never_see_it_empty(tmp_path):
    """Eight processes open a new SQLite storage at the same moment: each gets the database,
    none finds an empty file, and nothing is left beside it."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        "import sys, optuna\n"
        "from vaesweep.store.storage import open_storage\n"
        "optuna.create_study(storage=open_storage(sys.argv[1]), study_name='s', "
        "load_if_exists=True)\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 8, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]


def test_the_page_says_which_settings_the_study_changed_from_its_file(reported):
    """The question and note were written for the study file's settings: a study run with
    `--set` says what it changed, beside them."""
    results, _, _ = reported
    page = html.unescape((results / "report" / "index.html").read_text())
    said = re.sub(r"<[^>]+>", "", page)
    assert (
        "The question and note were written for the study file's settings; this study changed "
        "epochs to 2 (the file's: 12), precision to fp32 (the file's: auto), val_size to 100 "
        "(the file's: 10000)."
    ) in said


def test_the_answer_s_table_comes_above_its_sentence(reported):
    """Each objective's configurations in a table above the sentence: mean and interval, the
    difference from the best mean of the others with MCB's interval, may be best, verdict: the
    rows of effects.csv the answer is read from."""
    results, _, _ = reported
    page = html.unescape((results / "report" / "index.html").read_text())
    section = page[page.index('<section id="warmup">') :]
    table = section[section.index('<table class="verdicts">') : section.index("<b>Answer:</b>")]
    effects = pd.read_csv(results / "report" / "warmup" / "effects.csv")
    rows = effects[effects["metric"] == "val_loss"]
    assert table.count("<tr>") == 1 + len(rows)
    for row in rows.itertuples():
        assert f"<td>{row.value}</td><td>{row.n}</td><td>{row.mean:.4g} (" in table
        assert f"<td>{row.diff:.4g} ({row.diff_low:.4g} to {row.diff_high:.4g})</td>" in table
        assert f"<td>{row.verdict}</td></tr>" in table
