"""The live view as a researcher sees it, in a narrow terminal too."""

from __future__ import annotations

import pytest
from rich.console import Console

from vaesweep.run.progress import LiveProgress

RECORD = {
    "epoch": 0,
    "beta": 0.5,
    "lr": 2e-3,
    "train_loss": 263.54,
    "train_recon": 257.1,
    "train_kl": 6.41,
    "val_elbo": 262.3,
}
PARAMS = {"latent_dim": 16, "warmup_epochs": 2, "lr": 0.001234, "likelihood": "bce"}


@pytest.mark.parametrize("width", [80, 100])
def test_each_running_trial_shows_its_number_epoch_loss_and_beta(width):
    console = Console(width=width, record=True, force_terminal=True, color_system=None)
    progress = LiveProgress(console)
    progress.start("joint", ["val_ssim", "val_knn_accuracy"], target=25, finished=3)
    progress.stop()  # render by hand below, not from the live display's thread
    console.export_text()
    console.print(progress._render())
    assert "loading Fashion-MNIST" in console.export_text()  # the first seconds say what happens
    for number in (3, 4):
        progress.trial_started(number, PARAMS, epochs=8)
        progress.epoch_finished(number, RECORD)
    console.print(progress._render())
    lines = console.export_text().splitlines()
    for number in (3, 4):
        shown = [line for line in lines if line.startswith(f"trial {number} ")]
        [line] = shown
        assert "epoch 1/8" in line and "loss 263.5" in line and "β 0.50" in line, line
        assert len(line) <= width
    # Nothing cut: the parameters and the other terms wrap at spaces in their column.
    assert "…" not in "\n".join(lines)
    text = " ".join(" ".join(lines).split())
    for term in ("latent_dim=16", "lr=0.00123", "recon 257.1", "kl 6.41", "val_elbo 262.3"):
        assert term in text, term
    assert not any("loading Fashion-MNIST" in line for line in lines)


def test_at_100_columns_a_short_parameter_list_leaves_room_for_every_term_and_evaluating():
    console = Console(width=100, record=True, force_terminal=True, color_system=None)
    progress = LiveProgress(console)
    progress.start("warmup", ["val_knn_accuracy"], target=30, finished=0)
    progress.stop()
    progress.trial_started(3, {"warmup_epochs": 2}, epochs=7)
    progress.epoch_finished(3, RECORD)
    console.export_text()
    console.print(progress._render())
    [line] = [line for line in console.export_text().splitlines() if line.startswith("trial 3 ")]
    assert line.rstrip().endswith("warmup_epochs=2  recon 257.1 kl 6.41 val_elbo 262.3"), line
    progress.evaluating(3, "test SSIM", 5, 7)
    console.print(progress._render())
    [line] = [line for line in console.export_text().splitlines() if line.startswith("trial 3 ")]
    assert "evaluating 6/7" in line and line.rstrip().endswith("warmup_epochs=2  test SSIM"), line


def test_user_text_is_shown_as_it_is_never_read_as_markup():
    import optuna

    from vaesweep.console import make_console

    console = make_console(width=100, record=True, force_terminal=True, color_system=None)
    progress = LiveProgress(console)
    progress.start("warmup", ["val_loss"], target=2, finished=0)
    progress.stop()
    progress.trial_started(0, {"arch": "[/x] [bold]"}, epochs=2)
    failed = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={"fail_reason": "could not write r[/x]"}
    )
    progress.trial_finished(failed, finished=0)
    console.print(progress._render())
    console.print("storage sqlite:////tmp/r[/x]/vaesweep.db")
    text = console.export_text()
    assert "could not write r[/x]" in text and "r[/x]/vaesweep.db" in text


def test_the_eta_waits_for_this_run_s_own_trials_then_follows_its_pace():
    from rich.progress import Progress as RichProgress

    from vaesweep.run.progress import MIN_TRIALS_FOR_ETA, EtaColumn

    bars = RichProgress(EtaColumn())
    task_id = bars.add_task("study", total=20, completed=5, first=5)  # resumed at 5 of 20
    task = bars.tasks[0]
    task.start_time, task.stop_time = 0.0, 60.0  # a minute into this run
    bars.update(task_id, completed=5 + MIN_TRIALS_FOR_ETA - 1)
    assert EtaColumn().render(task).plain == f"ETA after {MIN_TRIALS_FOR_ETA} trials"
    bars.update(task_id, completed=5 + MIN_TRIALS_FOR_ETA)
    # 3 trials a minute, 12 left: 4 minutes.
    assert EtaColumn().render(task).plain == "ETA 0:04:00"
    bars.update(task_id, completed=20)
    assert EtaColumn().render(task).plain == "done"
    # A run of fewer trials than an estimate needs promises none.
    short = bars.add_task("study", total=7, completed=5, first=5)
    assert EtaColumn().render(bars.tasks[short]).plain == ""


def test_the_table_is_headed_by_the_objectives_and_a_wait_ends_with_its_trial():
    import datetime
    import io

    import optuna

    console = Console(width=120, file=io.StringIO(), force_terminal=True)
    live = LiveProgress(console)
    live.start("warmup", ["val_knn_accuracy"], 3, 0)
    shown = console.file.getvalue()  # what the terminal has been sent so far
    assert "val_knn_accuracy" in shown and "value" not in shown
    live.waiting("waiting for running trial 2 (no new heartbeat for 2 s of 60)")
    now = datetime.datetime.now()
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, params={}, distributions={}, value=None
    )
    trial.datetime_start, trial.datetime_complete, trial.number = now, now, 2
    live.trial_finished(trial, 1)
    assert live.status == ""
    live.stop()


def test_the_report_s_bar_says_what_is_being_drawn_and_how_far_along():
    import io

    from vaesweep.console import StudyBars

    screen = io.StringIO()
    bars = StudyBars(Console(file=screen, force_terminal=True, width=120))
    bars("warmup", 0, 3, "the study's figures")
    bars("warmup", 1, 3, "trial 7's figures")
    [task] = bars.bars.tasks
    assert (task.description, task.completed, task.total) == (
        "study warmup: trial 7's figures",
        1,
        3,
    )
    bars("warmup", 3, 3, "done")
    bars.stop()
    assert "study warmup: done" in screen.getvalue() and "3/3" in screen.getvalue()
