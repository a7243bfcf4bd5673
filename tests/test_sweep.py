"""A run in two steps: `plan_run` checks and decides everything and writes nothing; `execute`
carries the plan out."""

from __future__ import annotations

from vaesweep.console import make_console
from vaesweep.run.progress import PlainProgress
from vaesweep.run.sweep import Answered, RunOptions, execute, plan_run
from vaesweep.spec.studies import load_study, parse_overrides

from helpers import snapshot

TINY = ("epochs=2", "val_size=100", 'arch="mlp"')


def test_a_plan_decides_everything_and_writes_nothing(tmp_path, tiny_data_dir):
    spec = load_study("warmup").with_overrides(parse_overrides(TINY))
    results = tmp_path / "results"
    options = RunOptions(n_trials=2, results_dir=results, data_dir=tiny_data_dir, jobs=None)
    plan = plan_run(spec, options)
    assert not results.exists()  # no folder, no database
    assert plan.finished == 0 and plan.name == "warmup"
    training = plan.training
    assert training is not None and training.compute.device.type == "cpu"
    assert training.population == 1 and 1 <= training.jobs <= 2  # no more workers than trials
    assert any("beta never reaches 1" in w for w in plan.warnings)  # 2 epochs, warm-ups to 4

    warned: list[str] = []
    progress = PlainProgress(make_console(record=True))
    summary = execute(plan, progress, lambda study: Answered(["an answer"]), warn=warned.append)
    assert (summary.finished, summary.ran, summary.failed) == (2, 2, 0)
    assert summary.answers == ["an answer"]
    assert warned[: len(plan.warnings)] == list(plan.warnings)  # said when carried out

    # Planned again: the study has its trials, so there is nothing to train and no data to load.
    before = snapshot(results)
    again = plan_run(spec, RunOptions(n_trials=2, results_dir=results, data_dir=tmp_path / "none"))
    assert again.training is None and again.finished == 2
    assert snapshot(results) == before
