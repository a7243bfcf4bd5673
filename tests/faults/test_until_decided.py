"""A study that grows until its answer is decided: real runs on tiny data, each added seed block
a look whose share of the error the answer spends."""

from __future__ import annotations

import os
import re
import signal
import time

import optuna
import pytest

from vaesweep.store.storage import LOOKS_ATTR, default_storage_url, open_storage

from conftest import write_dataset
from helpers import LONG, finish, run_args, small_warmup, start, trials_of, vaesweep


def growing_study(folder, margin: str, most: int = 3) -> str:
    path = small_warmup(folder)
    text = open(path).read()
    text = text.replace("equivalence = 0.01", f"equivalence = {margin}")
    text = text.replace(
        "replicates = 2 ", f"replicates = 2\nmax_blocks = {most}\nuntil_decided = true\n# "
    )
    assert "until_decided = true" in text
    open(path, "w").write(text)
    return path


def stored(results, name="warmup") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=default_storage_url(results))


def test_a_decided_study_stops_at_its_design(tmp_path):
    data_dir = write_dataset(tmp_path / "fashion")
    study = growing_study(tmp_path, "1000")  # every difference is within ±1000 nats
    outcome = vaesweep(*run_args(tmp_path / "r", data_dir, 4, study=study))
    assert outcome.exit_code == 0, outcome.output
    assert "until decided: stopped after seed block 2 (every configuration decided)" in (
        outcome.output
    )
    record = stored(tmp_path / "r")
    assert len(record.get_trials(deepcopy=False)) == 4
    assert record.user_attrs[LOOKS_ATTR]["blocks"] == [2]


@pytest.mark.parametrize("journal", [False, True], ids=["sqlite", "journal"])
def test_an_undecided_study_adds_blocks_each_a_look(tmp_path, journal):
    data_dir = write_dataset(tmp_path / "fashion")
    study = growing_study(tmp_path, "1e-9")  # nothing is equivalent within a billionth
    url = f"journal:///{tmp_path / 'study.log'}"
    storage = ("--storage", url) if journal else ()
    outcome = vaesweep(*run_args(tmp_path / "r", data_dir, 4, *storage, study=study))
    assert outcome.exit_code == 0, outcome.output
    found = re.search(r"until decided: stopped after seed block (\d) \(([^)]*)\)", outcome.output)
    assert found, outcome.output
    blocks, why = int(found.group(1)), found.group(2)
    assert blocks in (2, 3)
    assert why == "max_blocks reached" if blocks == 3 else why == "every configuration decided"
    record = (
        optuna.load_study(study_name="warmup", storage=open_storage(url))
        if journal
        else stored(tmp_path / "r")
    )
    assert len(record.get_trials(deepcopy=False)) == 2 * blocks
    assert record.user_attrs[LOOKS_ATTR]["blocks"] == list(range(2, blocks + 1))
    # Said as it starts, and each look in a line.
    said = " ".join(outcome.output.split())
    assert (
        "until decided: the design's 2 seed blocks take 4 trials (a smaller --trials stops "
        "sooner); then each look adds a block (2 trials) until every configuration is decided "
        "or max_blocks = 3 (6 trials)"
    ) in said
    looks = re.findall(
        r"until decided: look at (\d) seed blocks: val loss \(β=1 −ELBO\): (?:best |no winner: )",
        said,
    )
    assert looks == [str(b) for b in range(2, blocks + 1)]
    # The answer it ended with spent only what its looks left: the third look's share.
    if blocks == 3:
        assert "this look's share over looks up to 3 replicates; MCB intervals, 1 comparison" in (
            " ".join(outcome.output.split())  # the last lines wrap at spaces
        )


def _wait_for_block(process, results, block: int, timeout: float = 300) -> None:
    """Until a trial of seed block `block` (0-based) runs and has trained some epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        if (results / "vaesweep.db").is_file():
            running = [t for t in trials_of(results) if t.state.name == "RUNNING"]
            if any(
                t.user_attrs.get("replicate") == block and t.user_attrs.get("epochs_done", 0) >= 2
                for t in running
            ):
                return
        time.sleep(0.2)
    raise AssertionError(f"no trial of block {block} ran in time")


@pytest.mark.parametrize(
    ("sig", "block"),
    [(signal.SIGINT, 2), (signal.SIGKILL, 3)],
    ids=["SIGINT in the first added block", "SIGKILL in a later added block"],
)
def test_a_study_interrupted_while_it_grows_grows_again(sig, block, tmp_path, tiny_data_dir):
    """Interrupted in an added block, the same command completes that block and goes on
    growing until its answer decides or max_blocks is reached, and says where it stopped."""
    study, results = growing_study(tmp_path, "1e-9", most=4), tmp_path / "results"
    process = start(results, tiny_data_dir, 4, "--study", study)
    _wait_for_block(process, results, block)
    os.killpg(process.pid, sig)
    finish(process)
    code, output = finish(start(results, tiny_data_dir, 4, "--study", study), timeout=600)
    assert code == 0, output
    assert "nothing to run" not in output
    assert "until decided: stopped after seed block 4 (max_blocks reached)" in output
    finished = [t for t in trials_of(results) if t.state.name == "COMPLETE"]
    places = sorted((t.user_attrs["replicate"], t.params["warmup_epochs"]) for t in finished)
    assert places == [(r, w) for r in range(4) for w in (0, 1)]  # each place once
    assert stored(results).user_attrs[LOOKS_ATTR]["blocks"][-1] == 4
    # Run again: it says where the study stands, and trains nothing.
    again = vaesweep(*run_args(results, tiny_data_dir, 4, *LONG, study=study))
    assert again.exit_code == 0, again.output
    assert "until decided: stopped after seed block 4 (max_blocks reached)" in again.output
    assert len([t for t in trials_of(results) if t.state.name == "COMPLETE"]) == 8
