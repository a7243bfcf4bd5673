"""Fault injection with real processes and real signals: nothing finished is lost, nothing
half-written is taken for finished, and re-running reaches exactly the requested count."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vaesweep.spec.studies import load_study
from vaesweep.store.fate import Fate, fate_of
from vaesweep.store.storage import default_storage_url

from helpers import finish, start, trials_of


def wait_for_running(
    process: subprocess.Popen, results: Path, count: int = 1, epochs: int = 3, timeout: float = 90
) -> None:
    """Until `count` trials are running and each has reported some epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"run ended early ({process.returncode}): {process.stdout.read()}")
        if (results / "vaesweep.db").is_file():
            running = [t for t in trials_of(results) if t.state.name == "RUNNING"]
            if len(running) >= count and all(
                t.user_attrs.get("epochs_done", 0) >= epochs for t in running
            ):
                return
        time.sleep(0.2)
    raise AssertionError("no trial started in time")


def resume_and_check(results: Path, data_dir: Path, trials: int) -> list:
    """Re-run the same command: it must end with exactly `trials` finished trials."""
    code, output = finish(start(results, data_dir, trials), timeout=300)
    assert code == 0, output
    stored = trials_of(results)
    finished = [t for t in stored if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == trials
    assert all(t.state.name != "RUNNING" for t in stored)
    folders = sorted(p.name for p in (results / "warmup").glob("trial-*"))
    assert folders == [f"trial-{t.number:04d}" for t in finished]
    # The grid stays balanced by block: its first places, each filled once.
    grid = [params["warmup_epochs"] for params in load_study("warmup").grid]
    places = sorted((t.user_attrs["replicate"], t.params["warmup_epochs"]) for t in finished)
    assert places == [(k // len(grid), grid[k % len(grid)]) for k in range(trials)]
    return stored


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_first_signal_records_the_trial_as_failed_and_exits_cleanly(sig, tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 2)
    wait_for_running(process, results)
    os.killpg(process.pid, sig)
    code, output = finish(process)
    assert code == 130, output
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith("Interrupted: any running trial was recorded")
    # Said at once, before the trial reaches its next safe point.
    assert output.count("stopping at the next safe point (a training step)") == 1, output
    [trial] = trials_of(results)
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["fail_reason"] == f"interrupted ({sig.name})"
    assert fate_of(trial) is Fate.INTERRUPTED
    assert not (results / "warmup" / "trial-0000").exists()
    if sig == signal.SIGINT:  # resuming is the same after any of them
        stored = resume_and_check(results, tiny_data_dir, 2)
        assert [t.state.name for t in stored][0] == "FAIL"


def test_ctrl_c_records_every_member_of_a_population(tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 3, "--population", "3")
    wait_for_running(process, results, count=3)
    os.killpg(process.pid, signal.SIGINT)
    code, output = finish(process)
    assert code == 130 and "Traceback" not in output, output
    stored = trials_of(results)
    assert [t.state.name for t in stored] == ["FAIL"] * 3
    assert all(t.user_attrs["fail_reason"] == "interrupted (SIGINT)" for t in stored)
    resume_and_check(results, tiny_data_dir, 3)  # the grid's places refilled, in order


def test_a_killed_worker_leaves_stale_trials_that_the_next_run_fails(tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 2, "--population", "2")
    wait_for_running(process, results, count=2)
    os.killpg(process.pid, signal.SIGKILL)
    finish(process)
    assert [t.state.name for t in trials_of(results)] == ["RUNNING"] * 2  # nobody could record
    stored = resume_and_check(results, tiny_data_dir, 2)
    # Each trial's own heartbeat lapsed: failed by the heartbeat check, not run twice.
    assert [t.state.name for t in stored][:2] == ["FAIL"] * 2
    assert [fate_of(t) for t in stored][:2] == [Fate.STALE] * 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_the_run_is_starting_is_an_interrupt_too(sig, tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 2)
    time.sleep(1.0)  # importing torch and loading the data: seconds before any trial
    os.killpg(process.pid, sig)
    code, output = finish(process)
    assert code == 130, output
    said = output.strip().splitlines()
    # Said at once where the signal waits for a safe point (the imports), not where it stops
    # the command at once.
    assert [line for line in said if not line.startswith("stopping at the next safe")] == [
        "Interrupted: any running trial was recorded as failed and everything finished is kept; "
        "re-run the same command to continue."
    ]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_second_ctrl_c_leaves_at_once_and_nothing_is_corrupted(jobs, tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 2, "--jobs", jobs)
    wait_for_running(process, results)
    os.killpg(process.pid, signal.SIGINT)
    os.killpg(process.pid, signal.SIGINT)
    code, output = finish(process)
    assert code == 130, output
    assert "Traceback" not in output and "resource_tracker" not in output
    # The trial was either recorded as failed, or left running and later found stale.
    resume_and_check(results, tiny_data_dir, 2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_ctrl_c_with_two_workers_stops_both_cleanly(sig, tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 3, "--jobs", "2")
    wait_for_running(process, results, count=2)
    os.killpg(process.pid, sig)  # the whole group, as a terminal does: resource tracker too
    code, output = finish(process)
    assert code == 130, output
    assert "Traceback" not in output and "KeyError" not in output
    # The parent says it at once, while its workers reach their safe points (they say nothing).
    assert output.count("stopping at the next safe point (a training step)") == 1, output
    stored = trials_of(results)
    interrupted = [t for t in stored if t.state.name == "FAIL"]
    assert len(interrupted) == 2
    assert all(t.user_attrs["fail_reason"] == "interrupted (SIGTERM)" for t in interrupted)
    assert not [t for t in stored if t.state.name == "RUNNING"]
    if sig == signal.SIGINT:  # resuming is the same after either
        resume_and_check(results, tiny_data_dir, 3)


def test_workers_end_with_their_parent(tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 3, "--jobs", "2")
    wait_for_running(process, results, count=2)
    workers = _workers(process)
    assert len(workers) == 2
    os.kill(process.pid, signal.SIGKILL)  # the parent alone, as `kill -9` does
    finish(process)
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(pid) for pid in workers)
    stored = trials_of(results)
    assert [t.state.name for t in stored].count("RUNNING") == 0
    assert all(t.user_attrs["fail_reason"] == "interrupted (SIGTERM)" for t in stored)


def test_a_killed_worker_whose_study_the_other_finished_is_a_warning(tmp_path, tiny_data_dir):
    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 3, "--jobs", "2")
    wait_for_running(process, results, count=2)
    os.kill(
        _workers(process)[0], signal.SIGKILL
    )  # its trial goes stale; the other worker takes over
    code, output = finish(process, timeout=300)
    assert code == 0, output
    assert re.search(r"warning: worker \d exited with code -9; the other workers finished", output)
    finished = [t for t in trials_of(results) if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3
    # The trial failed for its missed heartbeat is named, and counted among the failed.
    [stale] = [t for t in trials_of(results) if t.state.name == "FAIL"]
    assert f"trial {stale.number} fail" in output and "no heartbeat" in output
    assert re.search(r"trials finished \(\d+ run now, 1 failed\)", output), output


def _workers(process: subprocess.Popen) -> list[int]:
    """The run's worker processes (its other children: multiprocessing's resource tracker)."""
    children = subprocess.run(
        ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
    ).stdout.split()
    return [int(pid) for pid in children if "spawn_main" in _command_line(int(pid))]


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's record remains


def test_processes_creating_one_fresh_storage_at_once_all_succeed(tmp_path):
    url = default_storage_url(tmp_path)
    code = f"from vaesweep.store.storage import open_storage; open_storage({url!r}); print('ok')"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, outputs


def test_a_signal_once_the_answer_is_printed_ends_the_command_with_its_line(
    tmp_path, tiny_data_dir
):
    """SIGTERM just after the last line: the command has finished, so it exits as finished
    (or, inside its last print, says it was interrupted), never as a silent death by signal."""
    from helpers import run_args

    command = [sys.executable, "-m", "vaesweep", *run_args(tmp_path / "r", tiny_data_dir, 1)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(("answer:", "no winner", "best ", "equivalent", "only ")):
            os.killpg(process.pid, signal.SIGTERM)  # right after the answer
            break
    rest, _ = process.communicate(timeout=120)
    output = "".join(lines) + rest
    assert process.returncode in (0, 130), (process.returncode, output)
    if process.returncode == 130:
        assert output.strip().splitlines()[-1].startswith("Interrupted"), output


def test_the_python_api_reads_a_study_that_a_run_is_writing(tmp_path, tiny_data_dir):
    """`results.load` while `vaesweep run` trains and records: each read is whole (finished
    trials only, never a half-written one), nothing raises, and the run ends as it would."""
    from vaesweep import results as results_api

    results = tmp_path / "results"
    process = start(results, tiny_data_dir, 3)
    wait_for_running(process, results, epochs=1)
    seen = []
    while process.poll() is None:
        data = results_api.load("warmup", results=results)
        finished = [t for t in trials_of(results) if t.state.name == "COMPLETE"]
        assert len(data.table) <= len(finished) + 1  # one may finish between the two reads
        if len(data.table):
            assert set(data.table["state"]) <= {"COMPLETE", "FAIL", "PRUNED"}
        seen.append(len(data.table))
        time.sleep(0.5)
    code, output = finish(process)
    assert code == 0, output
    assert seen and seen == sorted(seen)  # it only ever grew
    assert len(results_api.load("warmup", results=results).table) == 3
