"""A run in two steps: `plan_run` checks and decides everything and writes nothing; `execute`
carries the plan out."""

from __future__ import annotations

from vaesweep import results as results_api
from vaesweep.console import make_console
from vaesweep.run.progress import PlainProgress
from vaesweep.run.sweep import RunOptions, execute, plan_run
from vaesweep.spec.studies import load_study, parse_overrides

from helpers import snapshot

TINY = ("epochs=2", "val_size=100", 'arch="mlp"', 'precision="fp32"')


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
    summary = execute(plan, progress, warn=warned.append)
    assert (summary.finished, summary.ran, summary.failed) == (2, 2, 0)
    shown = results_api.load("warmup", results=results)
    assert summary.answers == [a.sentence for a in shown.answers]  # the answer stage's
    assert warned[: len(plan.warnings)] == list(plan.warnings)  # said when carried out

    # Planned again: the study has its trials, so there is nothing to train and no data to load.
    before = snapshot(results)
    again = plan_run(spec, RunOptions(n_trials=2, results_dir=results, data_dir=tmp_path / "none"))
    assert again.training is None and again.finished == 2
    assert snapshot(results) == before


def test_a_study_keeps_the_precision_its_first_run_chose(tmp_path, tiny_data_dir, monkeypatch):
    """'auto' measures bf16 against fp32 once, at the study's first run; later runs keep it, so
    one study never compares trials of two precisions (a measurement near the margin can come
    out either way)."""
    import optuna

    from vaesweep.store.storage import PRECISION_ATTR, default_storage_url
    from vaesweep.training import precision

    spec = load_study("warmup").with_overrides(parse_overrides((*TINY, "precision=auto")))
    results = tmp_path / "results"

    def rates(favoured: str):
        def throughput(arch, chosen, *args, **kwargs) -> float:
            return 3000.0 if chosen == favoured else 1000.0

        return throughput

    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    monkeypatch.setattr(precision, "training_throughput", rates("bf16"))
    options = RunOptions(n_trials=1, results_dir=results, data_dir=tiny_data_dir)
    first = plan_run(spec, options)
    assert first.training is not None and first.training.compute.precision == "bf16"
    progress = PlainProgress(make_console(record=True))
    execute(first, progress)
    study = optuna.load_study(study_name="warmup", storage=default_storage_url(results))
    assert study.user_attrs[PRECISION_ATTR] == "bf16"

    monkeypatch.setattr(precision, "training_throughput", rates("fp32"))  # now fp32 measures faster
    again = plan_run(spec, RunOptions(n_trials=2, results_dir=results, data_dir=tiny_data_dir))
    assert again.training is not None and again.training.compute.precision == "bf16"
    assert "precision auto: bf16, as this study's first run chose" in "\n".join(again.warnings)
    # A new study measures afresh.
    fresh = RunOptions(n_trials=1, results_dir=tmp_path / "other", data_dir=tiny_data_dir)
    assert plan_run(spec, fresh).training.compute.precision == "fp32"


def test_auto_precision_is_measured_on_the_threads_the_workers_get(
    tmp_path, tiny_data_dir, monkeypatch
):
    from vaesweep.training import precision

    measured_on: list[int | None] = []
    decide = precision.decide

    def recording(*args):
        measured_on.append(args[5])
        return decide(args[0], "bf16")  # nothing measured

    monkeypatch.setattr(precision, "decide", recording)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    spec = load_study("warmup").with_overrides(parse_overrides(TINY))
    for jobs, threads in ((None, 1), (2, 2), (1, 4)):  # auto: 4 workers (4 cores, 30 trials)
        options = RunOptions(n_trials=30, results_dir=tmp_path, data_dir=tiny_data_dir, jobs=jobs)
        training = plan_run(spec, options).training
        assert measured_on[-1] == threads and training is not None and training.threads == threads


def test_a_phase_entered_inside_another_pauses_it_and_each_second_counts_once(monkeypatch):
    from vaesweep.run import phases

    now = iter([0.0, 1.0, 3.0, 4.0, 10.0])  # start, enter training, enter storage, leave both
    monkeypatch.setattr(phases.time, "perf_counter", lambda: next(now))
    clock = phases.PhaseClock(waited=2.5)
    with clock("training"):
        with clock("storage"):
            pass
    assert clock.seconds["waiting"] == 2.5
    assert clock.seconds["training"] == 2.0 + 6.0  # before the write, and after it
    assert clock.seconds["storage"] == 1.0
    line = phases.totals_line([clock.seconds, clock.seconds])
    assert line == (
        "time per phase, 2 trials: training 70% (16.0 s), waiting 22% (5.0 s), storage 9% (2.0 s)"
    )
    assert phases.totals_line([]) is None


def test_a_wait_for_a_beating_trial_says_it_is_alive_and_only_silence_names_the_policy():
    from vaesweep.store.heartbeats import describe_wait

    # Beats come every sixth of the grace period: 2 s of 60 is between two beats.
    assert describe_wait({29: 2.0}, 60) == (
        "waiting for running trial 29 to finish (it is alive: it beats)"
    )
    assert describe_wait({3: 1.0, 4: 12.0}, 60) == (
        "waiting for running trials 3, 4 to finish (they are alive: they beat)"
    )
    assert describe_wait({3: 1.0, 4: 21.0}, 60) == (
        "waiting for running trial 3 (no new heartbeat for 1 s of 60), trial 4 (no new "
        "heartbeat for 21 s of 60); a silent trial is failed and retrained"
    )
    assert describe_wait({}, 60) == "waiting for the study's last trials to be recorded"
